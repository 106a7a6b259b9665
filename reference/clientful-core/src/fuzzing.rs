//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the corpus replay
//! test that runs on stable Rust. Each takes arbitrary bytes, must never panic for
//! any input, and asserts the invariants the spec promises (it panics only when an
//! invariant is broken, which is what a fuzzer should report).

#![allow(clippy::expect_used, clippy::panic)]

use clientful_proto::v1 as pb;

use crate::envelope::{self, StaticContext};
use crate::keys::{EpochKey, SigningKey};
use crate::{identity, padding, wire};

/// Seed of the fixed author key the fuzz context trusts (also used by the vector
/// generator to seed the corpus with envelopes that reach the deep checks).
pub const FUZZ_AUTHOR_SEED: [u8; 32] = [0x42; 32];
/// Space id of the fuzz context.
pub const FUZZ_SPACE_ID: [u8; 32] = [0x53; 32];
/// Document id of the fuzz context.
pub const FUZZ_DOC_ID: [u8; 32] = [0x44; 32];
/// Epoch id of the fuzz context.
pub const FUZZ_EPOCH_ID: [u8; 32] = [0x45; 32];
/// Epoch secret of the fuzz context.
pub const FUZZ_EPOCH_SECRET: [u8; 32] = [0x73; 32];

/// The fixed context envelopes are opened in.
pub fn fuzz_context() -> StaticContext {
    StaticContext {
        space_id: FUZZ_SPACE_ID,
        doc_id: Some(FUZZ_DOC_ID),
        signers: alloc::vec![SigningKey::from_seed(&FUZZ_AUTHOR_SEED).public_bytes()],
        epochs: alloc::vec![EpochKey::new(FUZZ_EPOCH_ID, FUZZ_EPOCH_SECRET)],
        accepted: alloc::vec::Vec::new(),
    }
}

/// Canonical scan of every schema: whenever the scan accepts, prost decodes and
/// re-encodes to the identical bytes (the decode/re-encode rule).
pub fn canonical_codec(data: &[u8]) {
    check_schema::<pb::SignedEnvelope>(data, &wire::SIGNED_ENVELOPE);
    check_schema::<pb::EnvelopePayload>(data, &wire::ENVELOPE_PAYLOAD);
    check_schema::<pb::EnvelopeHeader>(data, &wire::ENVELOPE_HEADER);
    check_schema::<pb::EnvelopeContent>(data, &wire::ENVELOPE_CONTENT);
    check_schema::<pb::DeviceBinding>(data, &wire::DEVICE_BINDING);
    check_schema::<pb::DeviceCertificate>(data, &wire::DEVICE_CERTIFICATE);
    check_schema::<pb::UserKeyContinuity>(data, &wire::USER_KEY_CONTINUITY);
    check_schema::<pb::SignedContinuity>(data, &wire::SIGNED_CONTINUITY);
    check_schema::<pb::SyncMessage>(data, &wire::SYNC_MESSAGE);
    check_schema::<pb::MembershipOp>(data, &wire::MEMBERSHIP_OP);
    check_schema::<pb::KeyMessage>(data, &wire::KEY_MESSAGE);
    check_schema::<pb::SealedKey>(data, &wire::SEALED_KEY);
    check_schema::<pb::Welcome>(data, &wire::WELCOME);
    check_schema::<pb::SignedWelcome>(data, &wire::SIGNED_WELCOME);
    check_schema::<pb::InviteCode>(data, &wire::INVITE_CODE);
    check_schema::<pb::BrokerFrame>(data, &wire::BROKER_FRAME);
    check_schema::<pb::RoomMessage>(data, &wire::ROOM_MESSAGE);
    check_schema::<pb::EphemeralPayload>(data, &wire::EPHEMERAL_PAYLOAD);
    check_schema::<pb::SignedEphemeral>(data, &wire::SIGNED_EPHEMERAL);
}

fn check_schema<M: prost::Message + Default>(data: &[u8], schema: &wire::Schema) {
    match wire::decode::<M>(data, schema) {
        Ok(msg) => assert_eq!(
            wire::encode(&msg).as_slice(),
            data,
            "accepted bytes must re-encode identically"
        ),
        Err(e) => assert!(
            matches!(
                e.class(),
                crate::ErrorClass::Malformed | crate::ErrorClass::NonCanonical
            ),
            "decoder error outside the decode classes"
        ),
    }
}

/// Structural decoding of an envelope: no panic; on success the parts re-encode
/// to the input.
pub fn decode_envelope(data: &[u8]) {
    if let Ok(d) = envelope::decode(data) {
        let back = wire::encode(&pb::SignedEnvelope {
            payload: d.payload.clone(),
            signature: d.signature.to_vec(),
        });
        assert_eq!(back.as_slice(), data, "decoded envelope must re-encode");
    }
}

/// Full open in the fixed context: no panic; an opened envelope has a non-zero
/// content type and its id is the hash of its payload.
pub fn open_envelope(data: &[u8]) {
    let ctx = fuzz_context();
    if let Ok(o) = envelope::open(data, &ctx) {
        assert_ne!(o.content_type, 0);
        let d = envelope::decode(data).expect("open implies decode");
        assert_eq!(d.id, o.id);
    }
}

/// Device certificate verification: no panic.
pub fn device_certificate(data: &[u8]) {
    if let Ok(v) = identity::verify_certificate(data, None) {
        assert_ne!(v.user_key, v.device_key);
    }
}

/// Sealed backups (spec §5.5) without the Argon2id step, which would make each
/// run cost 64 MiB: the header checks (BAK-6 steps 1 to 3) on the input, and the
/// secret checks (steps 5 and 6) on the input as a decrypted `BackupSecret`. No
/// panic; an accepted secret's seed is the named user's.
pub fn backup(data: &[u8]) {
    let _ = crate::backup::backup_user_key(data);
    let key = crate::keys::SigningKey::from_seed(&[7; 32]).public_bytes();
    if let Ok(c) = crate::backup::secret_contents(data, key) {
        assert_eq!(*c.user_seed, [7; 32]);
        assert!(c.name.len() <= crate::backup::MAX_BACKUP_NAME_BYTES);
    }
}

/// User-key continuity (spec §5.7, ROT-4) and the `ROTATE_USER` body that
/// carries it (MEM-32): no panic; a verified statement names two different
/// keys, verifies again to the same result, and a decoded body's certificate
/// belongs to the statement's new key.
pub fn continuity(data: &[u8]) {
    if let Ok(c) = crate::continuity::verify_continuity(data) {
        assert_ne!(c.old_user_key, c.new_user_key);
        assert_eq!(crate::continuity::verify_continuity(data).ok(), Some(c));
    }
    if let Ok(crate::membership::ops::OpBody::RotateUser {
        continuity, device, ..
    }) = crate::membership::ops::decode_body(crate::membership::ops::CT_ROTATE_USER, data)
    {
        assert_eq!(device.user_key.as_bytes(), &continuity.new_user_key);
    }
}

/// Recovery messages (spec §5.6): the input as a `RecoverySet` (a holder opening
/// its share), a `RecoveryKit`, a `RecoveryRequest`, and as the decrypted bodies of
/// one or two releases restoring a user (REC-7 past the box). No panic; a restore
/// that succeeds gives the seed of the kit's user.
pub fn recovery(data: &[u8]) {
    let me = crate::keys::X25519Secret::from_bytes(&[9; 32]);
    if let Ok(set) = crate::recovery::decode_set(data) {
        let _ = set.open_share(&[1; 32], &me);
    }
    let _ = crate::recovery::decode_kit(data);
    let _ = crate::recovery::decode_request(data);
    let half = data.len() / 2;
    let (a, b) = data.split_at(half);
    for releases in [alloc::vec![data], alloc::vec![a, b]] {
        let opened = crate::recovery::restore_with(&releases, |bytes| {
            Ok(zeroize::Zeroizing::new(bytes.to_vec()))
        });
        if let Ok(c) = opened {
            assert_eq!(
                crate::keys::SigningKey::from_seed(&c.user_seed).public_bytes(),
                c.user_key
            );
        }
    }
}

/// Plaintext unframing: no panic; accepted content re-frames to a prefix-compatible
/// plaintext.
pub fn plaintext_frame(data: &[u8]) {
    if let Ok(content) = padding::unframe(data) {
        let again = padding::frame(content, data.len()).expect("content fits");
        assert_eq!(again.as_slice(), data);
    }
}

/// The membership decoders (spec §11): an operation body (the first byte picks
/// the content type 32 + b % 11, the rest is the body), a key message, a sealed
/// key, a welcome for a fixed device and an invite code. No panic; a decoded key
/// message lists its recipients strictly ascending.
pub fn membership_messages(data: &[u8]) {
    use crate::keys::X25519Secret;
    use crate::membership::{epoch, invite, ops, seal};
    if let Some((first, body)) = data.split_first() {
        let _ = ops::decode_body(32 + u32::from(*first % 11), body);
    }
    if let Ok(m) = epoch::decode_key_message(data) {
        let r = m.recipients();
        assert!(r.windows(2).all(|w| matches!(w, [a, b] if a < b)));
        let _ = epoch::open_key_message(
            &m,
            &FUZZ_DOC_ID,
            &X25519Secret::from_bytes(&FUZZ_EPOCH_SECRET),
        );
    }
    let _ = seal::decode(data);
    let _ = epoch::open_welcome(
        data,
        &FUZZ_SPACE_ID,
        &FUZZ_DOC_ID,
        &X25519Secret::from_bytes(&FUZZ_EPOCH_SECRET),
    );
    if let Ok(code) = invite::decode(data) {
        assert_eq!(invite::encode(&code).as_slice(), data);
    }
}
