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
/// Pseudonyms of documents and authors in diagnostic bundles (APP-13).
pub const DIAG_PSEUDONYM: &str = "diag/pseudonym";

/// Storage root key of one (space, epoch) from the epoch secret (STO-3).
pub const KDF_STORAGE_KEY: &str = "kdf/storage-key";
/// Path tags derived from a storage root key (STO-3).
pub const KDF_STORAGE_PATH: &str = "kdf/storage-path";
/// AEAD key of stored objects derived from a storage root key (STO-3).
pub const KDF_STORAGE_SEAL: &str = "kdf/storage-seal";
/// Content address of a stored object (STO-5).
pub const ID_STORAGE_OBJECT: &str = "id/storage-object";
/// AEAD associated data of a stored object (STO-6).
pub const AAD_STORAGE_OBJECT: &str = "aad/storage-object";
/// AEAD associated data of a file chunk (STO-17).
pub const AAD_STORAGE_CHUNK: &str = "aad/storage-chunk";
/// Signature over a head manifest (STO-6).
pub const SIG_STORAGE_HEAD: &str = "sig/storage-head";
/// Signature over a segment (STO-6).
pub const SIG_STORAGE_SEGMENT: &str = "sig/storage-segment";
/// Signature over a snapshot (STO-6).
pub const SIG_STORAGE_SNAPSHOT: &str = "sig/storage-snapshot";
/// Signature over a file manifest (STO-6).
pub const SIG_STORAGE_FILE: &str = "sig/storage-file";
/// Signature over a checkpoint (STO-6, STO-24).
pub const SIG_STORAGE_CHECKPOINT: &str = "sig/storage-checkpoint";

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
/// AEAD associated data of a sealed user backup (BAK-2).
pub const AAD_BACKUP: &str = "aad/backup";
/// Key of a recovery kit from the recovery secret (REC-2).
pub const KDF_RECOVERY_KIT: &str = "kdf/recovery-kit";
/// AEAD associated data of a recovery kit (REC-2).
pub const AAD_RECOVERY_KIT: &str = "aad/recovery-kit";
/// Id of a recovery kit (REC-2).
pub const ID_RECOVERY_KIT: &str = "id/recovery-kit";
/// Id of a recovery request (REC-5).
pub const ID_RECOVERY_REQUEST: &str = "id/recovery-request";
/// Signature of the old user key over a `UserKeyContinuity` (ROT-2).
pub const SIG_USER_CONTINUITY: &str = "sig/user-continuity";
/// Signature of the new user key over a `UserKeyContinuity` (ROT-2).
pub const SIG_USER_CONTINUITY_ACCEPT: &str = "sig/user-continuity-accept";
/// Signature of the user key over an `Attestation` (ATT-2, spec §14).
pub const SIG_ATTESTATION: &str = "sig/attestation";
/// The binding an attestation's evidence commits to: `user_key || salt` (ATT-6).
pub const ATTEST_BINDING: &str = "attest/binding";

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
    DIAG_PSEUDONYM,
    KDF_STORAGE_KEY,
    KDF_STORAGE_PATH,
    KDF_STORAGE_SEAL,
    ID_STORAGE_OBJECT,
    AAD_STORAGE_OBJECT,
    AAD_STORAGE_CHUNK,
    SIG_STORAGE_HEAD,
    SIG_STORAGE_SEGMENT,
    SIG_STORAGE_SNAPSHOT,
    SIG_STORAGE_FILE,
    ID_SPACE,
    ID_MEMBERSHIP_DOC,
    ID_DELIVERY_DOC,
    ID_EPOCH,
    ID_KEY_MESSAGE,
    KDF_SEAL,
    AAD_SEAL,
    KDF_EPOCH_CHAIN,
    AAD_EPOCH_CHAIN,
    KDF_INVITE_KEY,
    KDF_INVITE_EPOCH,
    SIG_INVITE_REDEEM,
    KDF_EPOCH_AUTHENTICATOR,
    DIGEST_MEMBERSHIP,
    KDF_ROOM_SEED,
    ID_ROOM,
    SIG_ROOM_JOIN,
    KDF_ROOM_MESSAGE,
    AAD_ROOM_MESSAGE,
    KDF_EPHEMERAL,
    AAD_EPHEMERAL,
    SIG_EPHEMERAL,
    SIG_STORAGE_CHECKPOINT,
    SIG_WELCOME,
    AAD_BACKUP,
    KDF_RECOVERY_KIT,
    AAD_RECOVERY_KIT,
    ID_RECOVERY_KIT,
    ID_RECOVERY_REQUEST,
    SIG_USER_CONTINUITY,
    SIG_USER_CONTINUITY_ACCEPT,
    SIG_ATTESTATION,
    ATTEST_BINDING,
];

/// Space id from the creator's user key and a nonce (MEM-6).
pub const ID_SPACE: &str = "id/space";
/// Document id of a space's membership log (MEM-2).
pub const ID_MEMBERSHIP_DOC: &str = "id/membership-doc";
/// Epoch id: the commitment to an epoch secret (KEY-2).
pub const ID_EPOCH: &str = "id/epoch";
/// Id of a `KeyMessage` (KEY-5).
pub const ID_KEY_MESSAGE: &str = "id/key-message";
/// Key and nonce of a secret sealed to a device (KEY-3).
pub const KDF_SEAL: &str = "kdf/seal";
/// Associated data of a secret sealed to a device (KEY-3).
pub const AAD_SEAL: &str = "aad/seal";
/// Key and nonce of an epoch chain link (KEY-6).
pub const KDF_EPOCH_CHAIN: &str = "kdf/epoch-chain";
/// Associated data of an epoch chain link (KEY-6).
pub const AAD_EPOCH_CHAIN: &str = "aad/epoch-chain";
/// Invite key seed from an invite secret (MEM-20).
pub const KDF_INVITE_KEY: &str = "kdf/invite-key";
/// Invite epoch secret from an invite secret (KEY-9).
pub const KDF_INVITE_EPOCH: &str = "kdf/invite-epoch";
/// The invitee's proof of possession of the invite key (MEM-21).
pub const SIG_INVITE_REDEEM: &str = "sig/invite-redeem";
/// The key-epoch authenticator compared out of band (KEY-10).
pub const KDF_EPOCH_AUTHENTICATOR: &str = "kdf/epoch-authenticator";
/// Digest of a resolved membership state (MEM-16).
pub const DIGEST_MEMBERSHIP: &str = "digest/membership";
/// Document id of a space's key-delivery document (KEY-14).
pub const ID_DELIVERY_DOC: &str = "id/delivery-doc";
/// A welcome signed by the sending member device (KEY-20).
pub const SIG_WELCOME: &str = "sig/welcome";

/// The labels chapter 11 (membership and keys) registers. Also in [`ALL`].
pub const MEMBERSHIP: &[&str] = &[
    ID_SPACE,
    ID_MEMBERSHIP_DOC,
    ID_DELIVERY_DOC,
    ID_EPOCH,
    ID_KEY_MESSAGE,
    KDF_SEAL,
    AAD_SEAL,
    KDF_EPOCH_CHAIN,
    AAD_EPOCH_CHAIN,
    KDF_INVITE_KEY,
    KDF_INVITE_EPOCH,
    SIG_INVITE_REDEEM,
    KDF_EPOCH_AUTHENTICATOR,
    DIGEST_MEMBERSHIP,
    SIG_WELCOME,
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
        // Chapter 11's labels are registered in ALL too.
        assert!(MEMBERSHIP.iter().all(|m| ALL.contains(m)));
        let all: Vec<&str> = ALL.to_vec();
        for (i, a) in all.iter().enumerate() {
            assert!(a.is_ascii() && !a.is_empty());
            assert!(LABEL_PREFIX.len() + a.len() <= 255);
            for b in all.iter().skip(i + 1) {
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
