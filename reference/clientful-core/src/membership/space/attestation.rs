//! Attestation carriers in the delivery document (spec §14, ATT-12, KEY-14): the
//! replica writes a `SignedAttestation` made by this device's user as an
//! `ATTESTATION` carrier, and keeps every such carrier's body with the device
//! key that signed it. It does not parse the body: the attestation crate
//! (`clientful-attest`) verifies records on read, so this crate stays free of
//! JSON, JWS and DID handling. Only the size bound (ATT-LIM-1) is checked here.

use alloc::vec::Vec;

use rand_core::CryptoRng;

use super::SpaceReplica;
use crate::error::Error;
use crate::membership::delivery;

/// Largest `SignedAttestation` body a carrier may hold (ATT-LIM-1): 64 KiB.
pub const MAX_ATTESTATION_BYTES: usize = 64 * 1024;

/// An attestation carrier as [`SpaceReplica::attestation_bodies`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationBody {
    /// The carrier envelope's id.
    pub carrier_id: [u8; 32],
    /// The signing key of the device that wrote the carrier.
    pub signer: [u8; 32],
    /// The user key of that device in the current state, if it is (or was) a
    /// device of a user of the space.
    pub signer_user: Option<[u8; 32]>,
    /// The `SignedAttestation` bytes, unverified.
    pub body: Vec<u8>,
}

impl SpaceReplica {
    /// A carrier for a `SignedAttestation` this device's user made (ATT-12), sealed
    /// under the current epoch: store and publish it like any carrier. Only the size
    /// is checked here; the caller verified the record (`clientful-attest`).
    pub fn attestation_carrier<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        signed: &[u8],
    ) -> Result<Vec<u8>, Error> {
        check_size(signed)?;
        let epoch = self.current_for_writing()?;
        let c = delivery::seal_carrier(
            rng,
            &self.me.device.signing,
            &self.space_id,
            &epoch,
            delivery::CT_ATTESTATION,
            signed,
        )?;
        if let Ok(d) = crate::envelope::decode(&c) {
            self.carriers.insert(d.id, c.clone());
            self.attestations.insert(
                d.id,
                (self.me.device.signing.public_bytes(), signed.to_vec()),
            );
        }
        Ok(c)
    }

    /// KEY-16 for an `ATTESTATION` carrier from `signer`: keep its body (ATT-12).
    pub(super) fn receive_attestation(
        &mut self,
        carrier_id: [u8; 32],
        signer: [u8; 32],
        body: &[u8],
    ) -> Result<(), Error> {
        check_size(body)?;
        self.attestations
            .insert(carrier_id, (signer, body.to_vec()));
        Ok(())
    }

    /// Every attestation carrier received or written, by carrier id, with its
    /// signer and that signer's user (ATT-13). The bodies are unverified.
    pub fn attestation_bodies(&self) -> Vec<AttestationBody> {
        self.attestations
            .iter()
            .map(|(id, (signer, body))| AttestationBody {
                carrier_id: *id,
                signer: *signer,
                signer_user: self
                    .state
                    .devices
                    .values()
                    .find(|d| &d.device_key == signer)
                    .map(|d| d.user),
                body: body.clone(),
            })
            .collect()
    }
}

fn check_size(body: &[u8]) -> Result<(), Error> {
    if body.len() > MAX_ATTESTATION_BYTES {
        return Err(Error::LimitExceeded {
            what: "SignedAttestation",
            max: MAX_ATTESTATION_BYTES as u64,
            actual: body.len() as u64,
        });
    }
    Ok(())
}
