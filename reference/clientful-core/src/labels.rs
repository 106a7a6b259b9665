//! Domain separation (spec §5.2): the labelled input `M(label, content)` that every
//! signature, hash id, key derivation and AEAD associated-data string is computed
//! over, and the registry of labels.
//!
//! `M(label, content) = u8(len(L)) || L || u32be(len(content)) || content`
//! where `L = "clientful/v1/" || label`. Both parts are length-prefixed, so no two
//! distinct (label, content) pairs give the same bytes.

use alloc::vec::Vec;

/// Prefix of every full label.
pub const LABEL_PREFIX: &[u8] = b"clientful/v1/";

/// Signature over an `EnvelopePayload` (ENV-5).
pub const SIG_ENVELOPE: &str = "sig/envelope";
/// Signature of the user key over a `DeviceBinding` (ID-3).
pub const SIG_DEVICE_CERT: &str = "sig/device-cert";
/// Proof-of-possession signature of the device key over a `DeviceBinding` (ID-3).
pub const SIG_DEVICE_POP: &str = "sig/device-pop";
/// Envelope id (ENV-4).
pub const ID_ENVELOPE: &str = "id/envelope";
/// Device id (ID-5).
pub const ID_DEVICE: &str = "id/device";
/// Document key derivation from an epoch secret (ENV-11).
pub const KDF_DOC_KEY: &str = "kdf/doc-key";
/// Per-envelope encryption key and key commitment (ENV-12).
pub const KDF_ENVELOPE_KEYS: &str = "kdf/envelope-keys";
/// AEAD associated data of an envelope (ENV-13).
pub const AAD_ENVELOPE: &str = "aad/envelope";

/// Yjs client id of a device in a document (DOC-3).
pub const ID_YJS_CLIENT: &str = "id/yjs-client";
/// Automerge actor id of a device in a document (DOC-3).
pub const ID_AUTOMERGE_ACTOR: &str = "id/automerge-actor";
/// `StateDigest` of a document (DOC-12).
pub const DIGEST_STATE: &str = "digest/state";
/// `HistoryDigest` of a document (DOC-13).
pub const DIGEST_HISTORY: &str = "digest/history";

/// Room seed from an epoch secret (BRK-5).
pub const KDF_ROOM_SEED: &str = "kdf/room-seed";
/// Room id from the room public key (BRK-5).
pub const ID_ROOM: &str = "id/room";
/// Join proof: the room key's signature over the broker's challenge (BRK-6).
pub const SIG_ROOM_JOIN: &str = "sig/room-join";
/// Key that seals room messages (BRK-12).
pub const KDF_ROOM_MESSAGE: &str = "kdf/room-message";
/// AEAD associated data of a room message (BRK-12).
pub const AAD_ROOM_MESSAGE: &str = "aad/room-message";
/// Key that seals ephemeral messages (BRK-14).
pub const KDF_EPHEMERAL: &str = "kdf/ephemeral";
/// AEAD associated data of an ephemeral message (BRK-14).
pub const AAD_EPHEMERAL: &str = "aad/ephemeral";
/// Device signature over an ephemeral payload (BRK-14).
pub const SIG_EPHEMERAL: &str = "sig/ephemeral";

/// Every label the protocol defines, for registry checks.
pub const ALL: &[&str] = &[
    SIG_ENVELOPE,
    SIG_DEVICE_CERT,
    SIG_DEVICE_POP,
    ID_ENVELOPE,
    ID_DEVICE,
    KDF_DOC_KEY,
    KDF_ENVELOPE_KEYS,
    AAD_ENVELOPE,
    ID_YJS_CLIENT,
    ID_AUTOMERGE_ACTOR,
    DIGEST_STATE,
    DIGEST_HISTORY,
    KDF_ROOM_SEED,
    ID_ROOM,
    SIG_ROOM_JOIN,
    KDF_ROOM_MESSAGE,
    AAD_ROOM_MESSAGE,
    KDF_EPHEMERAL,
    AAD_EPHEMERAL,
    SIG_EPHEMERAL,
];

/// The prefix of `M(label, content)` up to (not including) the content.
///
/// Returns `None` when the label is longer than 255 bytes or the content longer
/// than `u32::MAX` bytes, which no protocol value is.
pub fn prefix(label: &str, content_len: usize) -> Option<Vec<u8>> {
    let full_len = LABEL_PREFIX.len().checked_add(label.len())?;
    let full_len_u8 = u8::try_from(full_len).ok()?;
    let content_len_u32 = u32::try_from(content_len).ok()?;
    let mut out = Vec::with_capacity(1 + full_len + 4);
    out.push(full_len_u8);
    out.extend_from_slice(LABEL_PREFIX);
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(&content_len_u32.to_be_bytes());
    Some(out)
}

/// `M(label, content)` as one buffer.
pub fn labeled(label: &str, content: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix(label, content.len())?;
    out.extend_from_slice(content);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_short() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.is_ascii() && !a.is_empty());
            assert!(LABEL_PREFIX.len() + a.len() <= 255);
            for b in ALL.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn labeled_layout() {
        let m = labeled("x", b"ab").expect("fits");
        let mut want = alloc::vec![14u8];
        want.extend_from_slice(b"clientful/v1/x");
        want.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        assert_eq!(m, want);
    }
}
