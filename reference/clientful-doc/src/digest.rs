//! The observable digests every implementation exposes (spec §8.6).
//!
//! `StateDigest = HashWithLabel("digest/state", canonical JSON of the materialized
//! document)` and `HistoryDigest = HashWithLabel("digest/history", the ids of every
//! envelope integrated into the DAG, sorted, concatenated)`.

use clientful_core::envelope::EnvelopeId;
use clientful_core::{labels, suite};

use crate::canonical_json::Json;

/// `StateDigest` of a materialized document.
pub fn state_digest(materialized: &Json) -> [u8; 32] {
    suite::hash_with_label(
        labels::DIGEST_STATE,
        materialized.to_canonical_string().as_bytes(),
    )
    .unwrap_or_default()
}

/// `HistoryDigest` of a set of envelope ids (any order; duplicates ignored).
pub fn history_digest<'a>(ids: impl IntoIterator<Item = &'a EnvelopeId>) -> [u8; 32] {
    let mut sorted: Vec<&EnvelopeId> = ids.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut bytes = Vec::with_capacity(sorted.len() * 32);
    for id in sorted {
        bytes.extend_from_slice(id);
    }
    suite::hash_with_label(labels::DIGEST_HISTORY, &bytes).unwrap_or_default()
}
