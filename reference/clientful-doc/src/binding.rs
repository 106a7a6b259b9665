//! Binding of the CRDT's own actor to the authoring device (spec §8.3, DOC-3).
//!
//! The Yjs client id and the Automerge actor id of a device in a document are
//! derived from the device key and the document id, so every replica can check
//! that an envelope only writes as its author: nobody can insert content under
//! another device's actor.

use clientful_core::{labels, suite};

/// Largest Yjs client id (Yjs and yrs use 53-bit client ids).
pub const MAX_YJS_CLIENT_ID: u64 = (1 << 53) - 1;

/// Highest actor incarnation (DOC-3).
pub const MAX_INCARNATION: u32 = 65_535;

/// How far one envelope may move its author's incarnation forward (DOC-4).
pub const MAX_INCARNATION_STEP: u32 = 16;

/// `HashWithLabel(label, author || doc_id)` for incarnation 0, and
/// `HashWithLabel(label, author || doc_id || u32be(k))` for incarnation k > 0.
fn derive(label: &str, author: &[u8; 32], doc_id: &[u8; 32], incarnation: u32) -> [u8; 32] {
    let mut input = Vec::with_capacity(68);
    input.extend_from_slice(author);
    input.extend_from_slice(doc_id);
    if incarnation > 0 {
        input.extend_from_slice(&incarnation.to_be_bytes());
    }
    // The label is registered and the input is short: this cannot fail.
    suite::hash_with_label(label, &input).unwrap_or_default()
}

/// The Yjs client id of `author` in `doc_id`, incarnation `k`: the first 8 bytes of
/// the binding hash as a big-endian integer, reduced to 53 bits; 0 becomes 1.
pub fn yjs_client_id_at(author: &[u8; 32], doc_id: &[u8; 32], incarnation: u32) -> u64 {
    let h = derive(labels::ID_YJS_CLIENT, author, doc_id, incarnation);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    let id = u64::from_be_bytes(first) & MAX_YJS_CLIENT_ID;
    id.max(1)
}

/// The Yjs client id of `author` in `doc_id` at incarnation 0.
pub fn yjs_client_id(author: &[u8; 32], doc_id: &[u8; 32]) -> u64 {
    yjs_client_id_at(author, doc_id, 0)
}

/// The Automerge actor id of `author` in `doc_id`, incarnation `k`: the first 16
/// bytes of the binding hash.
pub fn automerge_actor_at(author: &[u8; 32], doc_id: &[u8; 32], incarnation: u32) -> [u8; 16] {
    let h = derive(labels::ID_AUTOMERGE_ACTOR, author, doc_id, incarnation);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

/// The Automerge actor id of `author` in `doc_id` at incarnation 0.
pub fn automerge_actor(author: &[u8; 32], doc_id: &[u8; 32]) -> [u8; 16] {
    automerge_actor_at(author, doc_id, 0)
}

/// The incarnation `k` in `[from, from + MAX_INCARNATION_STEP]` whose binding
/// `matches`, if any.
pub fn find_incarnation(from: u32, matches: impl Fn(u32) -> bool) -> Option<u32> {
    let last = from
        .saturating_add(MAX_INCARNATION_STEP)
        .min(MAX_INCARNATION);
    (from..=last).find(|k| matches(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_differ_per_device_and_document() {
        let (a, b, d1, d2) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
        assert_ne!(yjs_client_id(&a, &d1), yjs_client_id(&b, &d1));
        assert_ne!(yjs_client_id(&a, &d1), yjs_client_id(&a, &d2));
        assert!(yjs_client_id(&a, &d1) <= MAX_YJS_CLIENT_ID);
        assert_ne!(automerge_actor(&a, &d1), automerge_actor(&b, &d1));
        assert_ne!(yjs_client_id_at(&a, &d1, 1), yjs_client_id(&a, &d1));
        assert_eq!(
            find_incarnation(0, |k| yjs_client_id_at(&a, &d1, k)
                == yjs_client_id_at(&a, &d1, 3)),
            Some(3)
        );
    }
}
