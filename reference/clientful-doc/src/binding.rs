//! Binding of the CRDT's own actor to the authoring device (spec §8.3, DOC-3,
//! DOC-19).
//!
//! The Yjs client id of a device is assigned from its device index and
//! incarnation: in a space, an index its adding operation claimed (MEM-30,
//! fixed by that operation and its causal past, never moved); in a conformance
//! world, its position in the signer list. Two devices never share one; the Automerge actor id is derived from the device
//! key and the document id (128 bits, too wide to grind). Every replica checks
//! that an envelope only writes as its author: nobody can insert content under
//! another device's actor.

use clientful_core::{labels, suite};

/// Largest Yjs client id (Yjs and yrs use 53-bit client ids).
pub const MAX_YJS_CLIENT_ID: u64 = (1 << 53) - 1;

/// Highest actor incarnation (DOC-3).
pub const MAX_INCARNATION: u32 = 65_535;

/// How far one envelope may move its author's incarnation forward (DOC-4).
pub const MAX_INCARNATION_STEP: u32 = 16;

/// Largest device index (DOC-19): `1 + d * 2^16 + 65_535` stays below 2^53.
pub const MAX_DEVICE_INDEX: u64 = (1 << 37) - 2;

/// The Yjs client id of a device that has no index in the context (it is not a
/// known signer, so nothing it writes is accepted): no index maps to it.
pub const UNINDEXED_CLIENT_ID: u64 = MAX_YJS_CLIENT_ID;

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

/// The Yjs client id of the device with index `index` at incarnation `k`
/// (DOC-3, DOC-19): `1 + index * 2^16 + k`. Injective over
/// `index <= MAX_DEVICE_INDEX`; a larger index gives [`UNINDEXED_CLIENT_ID`].
pub fn yjs_client_id(index: u64, incarnation: u32) -> u64 {
    if index > MAX_DEVICE_INDEX {
        return UNINDEXED_CLIENT_ID;
    }
    1 + (index << 16) + u64::from(incarnation.min(MAX_INCARNATION))
}

/// The device `index` and incarnation a Yjs client id stands for (the inverse
/// of [`yjs_client_id`]); `None` for 0 and ids above `2^53 - 1`.
pub fn split_client_id(client: u64) -> Option<(u64, u32)> {
    if client == 0 || client > MAX_YJS_CLIENT_ID {
        return None;
    }
    let v = client - 1;
    Some((v >> 16, (v & 0xffff) as u32))
}

/// The device indices of a context (DOC-19): what each signer may insert under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceIndices {
    /// By signer key, its indices; the first is the one it edits under (its
    /// primary). A conformance world gives each signer one; a space's
    /// membership gives every index an adding operation claimed (MEM-30).
    pub claims: std::collections::BTreeMap<[u8; 32], Vec<u64>>,
    /// Whether the context can still grow (a space: an index no known device
    /// claims may be claimed by an operation not yet received, so an insertion
    /// under it waits, DOC-22). A world's signer list is fixed.
    pub growing: bool,
}

impl DeviceIndices {
    /// The index `device` edits under, if it has one.
    pub fn primary(&self, device: &[u8; 32]) -> Option<u64> {
        self.claims.get(device).and_then(|c| c.first()).copied()
    }

    /// Whether `index` is one of `device`'s.
    pub fn holds(&self, device: &[u8; 32], index: u64) -> bool {
        self.claims.get(device).is_some_and(|c| c.contains(&index))
    }

    /// The indices of a space's membership (MEM-30): every claim, growing.
    pub fn from_claims(claims: std::collections::BTreeMap<[u8; 32], Vec<u64>>) -> Self {
        DeviceIndices {
            claims,
            growing: true,
        }
    }
}

/// Device indices of an ordered, fixed signer list (DOC-19, a conformance
/// world): each key's first position.
pub fn device_indices(signers: &[[u8; 32]]) -> DeviceIndices {
    let mut claims = std::collections::BTreeMap::new();
    for (i, k) in signers.iter().enumerate() {
        claims.entry(*k).or_insert_with(|| vec![i as u64]);
    }
    DeviceIndices {
        claims,
        growing: false,
    }
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
        assert_ne!(automerge_actor(&a, &d1), automerge_actor(&b, &d1));
        assert_ne!(automerge_actor(&a, &d1), automerge_actor(&a, &d2));
        assert_eq!(
            find_incarnation(0, |k| yjs_client_id(2, k) == yjs_client_id(2, 3)),
            Some(3)
        );
    }

    #[test]
    fn yjs_client_ids_are_injective_over_index_and_incarnation() {
        assert_eq!(yjs_client_id(0, 0), 1);
        assert_eq!(yjs_client_id(2, 0), 131_073);
        assert_eq!(yjs_client_id(2, 3), 131_076);
        assert_ne!(yjs_client_id(0, MAX_INCARNATION), yjs_client_id(1, 0));
        assert_eq!(yjs_client_id(1, 0), yjs_client_id(0, MAX_INCARNATION) + 1);
        let top = yjs_client_id(MAX_DEVICE_INDEX, MAX_INCARNATION);
        assert!(top < UNINDEXED_CLIENT_ID);
        assert_eq!(yjs_client_id(MAX_DEVICE_INDEX + 1, 0), UNINDEXED_CLIENT_ID);
        let idx = device_indices(&[[5; 32], [1; 32], [5; 32]]);
        assert_eq!(
            (idx.primary(&[5; 32]), idx.primary(&[1; 32])),
            (Some(0), Some(1))
        );
        assert_eq!(split_client_id(yjs_client_id(77, 9)), Some((77, 9)));
        assert_eq!(split_client_id(0), None);
    }
}
