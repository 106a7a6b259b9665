//! Binding of the CRDT's own actor to the authoring device (spec §8.3, DOC-3).
//!
//! The Yjs client id and the Automerge actor id of a device in a document are
//! derived from the device key and the document id, so every replica can check
//! that an envelope only writes as its author: nobody can insert content under
//! another device's actor.

use clientful_core::{labels, suite};

/// Largest Yjs client id (Yjs and yrs use 53-bit client ids).
pub const MAX_YJS_CLIENT_ID: u64 = (1 << 53) - 1;

fn derive(label: &str, author: &[u8; 32], doc_id: &[u8; 32]) -> [u8; 32] {
    let mut input = [0u8; 64];
    input[..32].copy_from_slice(author);
    input[32..].copy_from_slice(doc_id);
    // The label is registered and the input is 64 bytes: this cannot fail.
    suite::hash_with_label(label, &input).unwrap_or_default()
}

/// The Yjs client id of `author` in `doc_id`: the first 8 bytes of
/// `HashWithLabel("id/yjs-client", author || doc_id)` as a big-endian integer,
/// reduced to 53 bits; 0 is replaced by 1.
pub fn yjs_client_id(author: &[u8; 32], doc_id: &[u8; 32]) -> u64 {
    let h = derive(labels::ID_YJS_CLIENT, author, doc_id);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    let id = u64::from_be_bytes(first) & MAX_YJS_CLIENT_ID;
    id.max(1)
}

/// The Automerge actor id of `author` in `doc_id`: the first 16 bytes of
/// `HashWithLabel("id/automerge-actor", author || doc_id)`.
pub fn automerge_actor(author: &[u8; 32], doc_id: &[u8; 32]) -> [u8; 16] {
    let h = derive(labels::ID_AUTOMERGE_ACTOR, author, doc_id);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
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
    }
}
