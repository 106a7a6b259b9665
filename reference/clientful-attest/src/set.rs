//! A space's attestation set (spec §14.9, ATT-11, ATT-13): the records that
//! `ATTESTATION` carriers brought, verified on read. Each record is verified on
//! its own ([`crate::verify::verify`]); some carrier of it must come from a
//! device of the attested user (else `WRONG_CONTEXT` if a known device of another
//! user carried it, `UNKNOWN_SIGNER` if only devices the space does not know did);
//! and one piece of evidence backs at most one record: among valid records with the
//! same evidence, the one with the smallest `(created_at_ms, record id)` stands and
//! the others are `REPLAY`. The same record bytes in several carriers count once.

use std::collections::BTreeMap;

use clientful_core::suite;

use crate::error::AttestError;
use crate::verify::{Verified, VerifierContext, verify};

/// One carrier's body, as the replica lists it.
#[derive(Debug, Clone)]
pub struct Carried<'a> {
    /// The `SignedAttestation` bytes.
    pub body: &'a [u8],
    /// The user of the device that signed the carrier, if the space knows it.
    pub signer_user: Option<[u8; 32]>,
}

/// The verdict on each distinct record of a set, in the order of `items` (a
/// record repeated in a later carrier is left out).
pub fn verify_set(
    items: &[Carried<'_>],
    ctx: &VerifierContext,
) -> Vec<Result<Verified, AttestError>> {
    // Distinct bodies in order of first appearance, each with every carrier's signer.
    let mut order: Vec<&[u8]> = Vec::new();
    let mut signers: BTreeMap<[u8; 32], Vec<Option<[u8; 32]>>> = BTreeMap::new();
    for item in items {
        let key = suite::sha256(item.body);
        let entry = signers.entry(key).or_default();
        if entry.is_empty() {
            order.push(item.body);
        }
        entry.push(item.signer_user);
    }
    let mut out: Vec<Result<Verified, AttestError>> = Vec::new();
    for body in order {
        let carried_by = signers
            .get(&suite::sha256(body))
            .cloned()
            .unwrap_or_default();
        let verdict = verify(body, ctx).and_then(|v| {
            if carried_by.contains(&Some(v.record.user_key)) {
                Ok(v)
            } else if carried_by.iter().any(Option::is_some) {
                Err(AttestError::WrongContext {
                    what: "carrier signer is a device of another user",
                })
            } else {
                Err(AttestError::UnknownSigner {
                    what: "carrier signer is not a device of the space",
                })
            }
        });
        out.push(verdict);
    }
    // ATT-11: the first record (by created_at_ms, then id) per evidence stands.
    let mut first: BTreeMap<[u8; 32], (u64, [u8; 32])> = BTreeMap::new();
    for v in out.iter().flatten() {
        let key = suite::sha256(&v.record.evidence);
        let rank = (v.record.created_at_ms, v.record.id);
        first
            .entry(key)
            .and_modify(|r| {
                if rank < *r {
                    *r = rank;
                }
            })
            .or_insert(rank);
    }
    out.into_iter()
        .map(|r| {
            r.and_then(|v| {
                let key = suite::sha256(&v.record.evidence);
                if first.get(&key) == Some(&(v.record.created_at_ms, v.record.id)) {
                    Ok(v)
                } else {
                    Err(AttestError::Replay)
                }
            })
        })
        .collect()
}
