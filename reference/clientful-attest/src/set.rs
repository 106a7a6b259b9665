//! A space's attestation set (spec §14.9, ATT-11, ATT-13): the records that
//! `ATTESTATION` carriers brought, verified on read. Each record is verified on
//! its own ([`crate::verify::verify`]); its carrier must come from a device of the
//! attested user (`WRONG_CONTEXT`, or `UNKNOWN_SIGNER` for a device the space does
//! not know); and one piece of evidence backs at most one record: among valid
//! records with the same evidence, the one with the smallest
//! `(created_at_ms, record id)` stands and the others are `REPLAY`. The same record
//! bytes in two carriers count once.

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
    let mut seen = std::collections::BTreeSet::new();
    let mut out: Vec<Result<Verified, AttestError>> = Vec::new();
    for item in items {
        if !seen.insert(suite::sha256(item.body)) {
            continue;
        }
        let verdict = verify(item.body, ctx).and_then(|v| match item.signer_user {
            None => Err(AttestError::UnknownSigner {
                what: "carrier signer is not a device of the space",
            }),
            Some(u) if u != v.record.user_key => Err(AttestError::WrongContext {
                what: "carrier signer is a device of another user",
            }),
            Some(_) => Ok(v),
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
