//! Attestations in a space (spec §14.9, ATT-12, ATT-13): publishing a record this
//! device's user made, and listing every member's records verified on read
//! against the caller's [`VerifierContext`] (trusted issuers with their JWKS as
//! the shell fetched them, audiences, `now`). Attestations are never required:
//! nothing in the space depends on them.

use clientful_attest::{
    Account, AttestError, Carried, Record, VerifierContext, record, verify_set,
};

use super::SpaceSession;
use crate::error::ClientError;

/// One attestation of the space, as a member sees it.
#[derive(Debug, Clone)]
pub struct AttestationView {
    /// The record as decoded (user key, kind, subject, time), if it decodes and
    /// its user-key signature holds; trust what it claims only if `verdict` is
    /// `Ok`.
    pub record: Option<Record>,
    /// The user of the device whose carrier brought it, if the space knows it.
    pub signer_user: Option<[u8; 32]>,
    /// The verified account, or why the record was refused (its class).
    pub verdict: Result<Account, AttestError>,
}

impl SpaceSession {
    /// Publishes `signed`, a `SignedAttestation` of this device's user (ATT-12):
    /// stored here at once, in storage with the next sync and live with the next
    /// publish. The record must decode and attest this user's key; its evidence is
    /// the verifiers' business (the caller checks it first with
    /// [`clientful_attest::verify`] if it wants).
    pub fn attest(&mut self, signed: &[u8]) -> Result<(), ClientError> {
        let rec = record::decode(signed)?;
        if rec.user_key != self.core.replica().identity().user {
            return Err(AttestError::WrongContext {
                what: "the record attests another user's key",
            }
            .into());
        }
        self.core.publish_attestation(signed)?;
        self.apply()
    }

    /// Every attestation of the space, verified against `ctx` (ATT-13): one entry
    /// per distinct record, its verdict `Ok` with the account or the error whose
    /// class says why it was refused (replays of the same evidence, records of
    /// another user's device, bad evidence).
    pub fn attestations(&self, ctx: &VerifierContext) -> Vec<AttestationView> {
        let bodies = self.core.attestation_bodies();
        let items: Vec<Carried<'_>> = bodies
            .iter()
            .map(|b| Carried {
                body: &b.body,
                signer_user: b.signer_user,
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let distinct: Vec<&Carried<'_>> = items
            .iter()
            .filter(|c| seen.insert(clientful_core::suite::sha256(c.body)))
            .collect();
        verify_set(&items, ctx)
            .into_iter()
            .zip(distinct)
            .map(|(verdict, carried)| AttestationView {
                record: record::decode(carried.body).ok(),
                signer_user: carried.signer_user,
                verdict: verdict.map(|v| v.account),
            })
            .collect()
    }
}
