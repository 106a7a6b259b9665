//! Recovery shares in a space (spec §5.6, REC-4, REC-6): this device's user
//! publishes a recovery set as a carrier; holders list what they keep and release
//! a share to a recovering device's request.

use clientful_core::membership::HeldRecovery;

use crate::error::{SessionError, Step};
use crate::session::Session;

impl Session {
    /// Publishes a recovery set made by this device's user (REC-4): a carrier under
    /// the current epoch, stored, sent to the room and delivered with the next sync.
    pub fn publish_recovery_set(&mut self, set: &[u8]) -> Result<(), SessionError> {
        let epoch = self
            .replica
            .current_epoch()
            .ok_or(SessionError::NoCurrentKey {
                step: Step::Recovery,
            })?;
        let carrier = self
            .replica
            .recovery_set_carrier(&mut self.rng, set)
            .map_err(SessionError::at(Step::Recovery))?;
        self.queue_carrier(carrier, epoch);
        Ok(())
    }

    /// The recovery shares this device keeps for others (REC-4).
    pub fn held_recovery_shares(&self) -> Vec<HeldRecovery> {
        self.replica.held_recovery_shares()
    }

    /// Releases the share of kit `kit_id` to `request` (REC-6): the person asked for
    /// it out of band. Returns the release (a `SealedKey`) for the requesting device.
    pub fn release_recovery_share(
        &mut self,
        kit_id: &[u8; 32],
        request: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        self.replica
            .release_recovery_share(&mut self.rng, kit_id, request)
            .map_err(SessionError::at(Step::Recovery))
    }
}
