//! Attestations in a space (spec §14.9, ATT-12, ATT-13): this device's user
//! publishes a `SignedAttestation` as an `ATTESTATION` carrier; every carrier's
//! body is listed with its signer's user for the shell to verify on read
//! (`clientful-attest`: this crate does not parse attestations).

use clientful_core::membership::AttestationBody;

use crate::error::{SessionError, Step};
use crate::session::Session;

impl Session {
    /// Publishes a `SignedAttestation` of this device's user (ATT-12): a carrier
    /// under the current epoch, stored, sent to the room and delivered with the
    /// next sync. The caller verified the record.
    pub fn publish_attestation(&mut self, signed: &[u8]) -> Result<(), SessionError> {
        let epoch = self
            .replica
            .current_epoch()
            .ok_or(SessionError::NoCurrentKey {
                step: Step::Attestation,
            })?;
        let carrier = self
            .replica
            .attestation_carrier(&mut self.rng, signed)
            .map_err(SessionError::at(Step::Attestation))?;
        self.queue_carrier(carrier, epoch);
        Ok(())
    }

    /// Every attestation carrier of the space, unverified, with its signer and
    /// the signer's user (ATT-13).
    pub fn attestation_bodies(&self) -> Vec<AttestationBody> {
        self.replica.attestation_bodies()
    }
}
