//! Recovery sets in the delivery document (REC-4, REC-6, KEY-14, KEY-16): the
//! replica writes a user's set as a carrier, keeps the shares sealed to this
//! device with the carrier's signer, and releases one only if that signer is a
//! device of the kit's user in the current state.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::SpaceReplica;
use crate::error::Error;
use crate::membership::delivery;
use crate::recovery::{self, HeldShare};

/// A share this device holds for someone, as [`SpaceReplica::held_recovery_shares`]
/// lists it.
#[derive(Debug, Clone)]
pub struct HeldRecovery {
    /// The share and its kit.
    pub held: HeldShare,
    /// The kit id.
    pub kit_id: [u8; 32],
    /// The signing key of the device whose carrier brought the set.
    pub signer: [u8; 32],
    /// Whether that device is (or was) a device of the kit's user in the current
    /// state (REC-6): only then is the share released.
    pub owner_confirmed: bool,
}

impl SpaceReplica {
    /// A carrier for a recovery set this device's user made (REC-4), sealed under
    /// the current epoch: store and publish it like any carrier.
    pub fn recovery_set_carrier<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        set: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let decoded = recovery::decode_set(set)?;
        if decoded.kit().user_key() != &self.me.user {
            return Err(Error::WrongContext {
                what: "a recovery set of another user",
            });
        }
        let epoch = self.current_for_writing()?;
        let c = delivery::seal_carrier(
            rng,
            &self.me.device.signing,
            &self.space_id,
            &epoch,
            delivery::CT_RECOVERY_SET,
            set,
        )?;
        if let Ok(d) = crate::envelope::decode(&c) {
            self.carriers.insert(d.id, c.clone());
        }
        Ok(c)
    }

    /// KEY-16 for a `RECOVERY_SET` carrier from `signer`: decode the set (its class
    /// on failure), open the share sealed to this device if there is one, keep it.
    pub(super) fn receive_recovery_set(
        &mut self,
        signer: [u8; 32],
        body: &[u8],
    ) -> Result<(), Error> {
        let set = recovery::decode_set(body)?;
        let me = self.me.device_id();
        if !set.holders().contains(&me) {
            return Ok(());
        }
        let held = set.open_share(&me, &self.me.device.x25519)?;
        self.recovery_held.insert(*set.kit().id(), (held, signer));
        Ok(())
    }

    fn signer_is_owner(&self, signer: &[u8; 32], user: &[u8; 32]) -> bool {
        self.state
            .devices
            .values()
            .any(|d| &d.device_key == signer && &d.user == user)
    }

    /// The recovery shares this device holds for others (REC-4).
    pub fn held_recovery_shares(&self) -> Vec<HeldRecovery> {
        self.recovery_held
            .iter()
            .map(|(kit_id, (held, signer))| HeldRecovery {
                held: held.clone(),
                kit_id: *kit_id,
                signer: *signer,
                owner_confirmed: self.signer_is_owner(signer, &held.user_key),
            })
            .collect()
    }

    /// Releases the share of kit `kit_id` to `request` (REC-6), after the person
    /// confirmed out of band (the caller's duty). No such share is `WRONG_CONTEXT`, and
    /// so is a set whose carrier no device of the kit's user signed.
    pub fn release_recovery_share<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        kit_id: &[u8; 32],
        request: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let (held, signer) = self.recovery_held.get(kit_id).ok_or(Error::WrongContext {
            what: "no recovery share of that kit",
        })?;
        if !self.signer_is_owner(signer, &held.user_key) {
            return Err(Error::WrongContext {
                what: "recovery set not signed by a device of its user",
            });
        }
        let request = recovery::decode_request(request)?;
        recovery::release(rng, held, &request)
    }
}
