//! Room credentials and end-to-end room traffic (spec §10.4–§10.6): what members
//! compute so that a broker can relay their messages without learning who they are
//! or what they say.
//!
//! From a space id and a key epoch ([`EpochKey`]) every member derives the same
//! [`RoomCredentials`]:
//!
//! | value | definition (BRK-5, BRK-12, BRK-14) |
//! |---|---|
//! | room seed | `DeriveWithLabel(epoch_secret, space_id, "kdf/room-seed", epoch_id, 32)` |
//! | room key | the Ed25519 key whose seed is the room seed |
//! | room id | `HashWithLabel("id/room", room_public_key)` |
//! | join proof | `SignWithLabel(room_key, "sig/room-join", challenge \|\| room_id)` |
//! | message key | `DeriveWithLabel(epoch_secret, space_id, "kdf/room-message", epoch_id, 32)` |
//! | ephemeral key | `DeriveWithLabel(epoch_secret, space_id, "kdf/ephemeral", epoch_id, 32)` |
//!
//! The broker checks a join with [`verify_join`]: it needs only the room public key
//! the client presents, never the epoch secret. A new epoch gives a new room id, so
//! rooms rotate with keys and ids of different epochs are unlinkable.
//!
//! Ephemeral messages (presence, cursors) are signed by the device key, sealed under
//! the ephemeral key, and carry a per-sender counter and the sender's time;
//! [`EphemeralReceiver`] rejects stale, future and replayed ones with `REPLAY`.
//! Time is an input: this module reads no clock.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::{EpochKey, PublicKey, SigningKey};
use crate::{labels, suite, wire};

/// Length of the broker's join challenge (BRK-6).
pub const CHALLENGE_LEN: usize = 32;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Largest sealed room message (BRK-LIM-1: the largest frame a broker must accept).
pub const MAX_SEALED_MESSAGE: usize = 1024 * 1024;
/// Largest ephemeral body (BRK-LIM-4), so that a sealed ephemeral message fits one
/// QUIC datagram on common paths.
pub const MAX_EPHEMERAL_BODY: usize = 1024;
/// Freshness window of an ephemeral message, each side of the receiver's time
/// (BRK-15).
pub const EPHEMERAL_WINDOW_MS: u64 = 30_000;

/// A room's credentials, derived by every member of a space epoch (BRK-5).
pub struct RoomCredentials {
    room_key: SigningKey,
    room_public: [u8; 32],
    room_id: [u8; 32],
    message_key: Zeroizing<[u8; 32]>,
    ephemeral_key: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for RoomCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RoomCredentials")
            .field("room_id", &self.room_id)
            .finish_non_exhaustive()
    }
}

fn derive32(epoch: &EpochKey, space_id: &[u8; 32], label: &str) -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    suite::derive_with_label(epoch.secret(), space_id, label, epoch.id(), &mut out)?;
    Ok(out)
}

/// The room id of a room public key: `HashWithLabel("id/room", room_key)`.
pub fn room_id_of(room_key: &[u8; 32]) -> Result<[u8; 32], Error> {
    suite::hash_with_label(labels::ID_ROOM, room_key)
}

fn join_content(challenge: &[u8], room_id: &[u8; 32]) -> Vec<u8> {
    let mut c = Vec::with_capacity(challenge.len() + 32);
    c.extend_from_slice(challenge);
    c.extend_from_slice(room_id);
    c
}

impl RoomCredentials {
    /// Derives the credentials of the room of `space_id` in `epoch`.
    pub fn derive(space_id: &[u8; 32], epoch: &EpochKey) -> Result<Self, Error> {
        let seed = Zeroizing::new(derive32(epoch, space_id, labels::KDF_ROOM_SEED)?);
        let room_key = SigningKey::from_seed(&seed);
        let room_public = room_key.public_bytes();
        let room_id = room_id_of(&room_public)?;
        Ok(RoomCredentials {
            room_key,
            room_public,
            room_id,
            message_key: Zeroizing::new(derive32(epoch, space_id, labels::KDF_ROOM_MESSAGE)?),
            ephemeral_key: Zeroizing::new(derive32(epoch, space_id, labels::KDF_EPHEMERAL)?),
        })
    }

    /// The opaque room id the broker routes by.
    pub fn room_id(&self) -> &[u8; 32] {
        &self.room_id
    }

    /// The room public key a client presents when it joins.
    pub fn room_public_key(&self) -> &[u8; 32] {
        &self.room_public
    }

    /// The join proof for the broker's `challenge` (BRK-6).
    pub fn join_proof(&self, challenge: &[u8]) -> Result<[u8; 64], Error> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(Error::malformed("join challenge", "length is not 32"));
        }
        self.room_key.sign_with_label(
            labels::SIG_ROOM_JOIN,
            &join_content(challenge, &self.room_id),
        )
    }

    /// Seals a room message: `nonce || AEAD(message_key, nonce, M("aad/room-message",
    /// room_id), plaintext)` (BRK-12).
    pub fn seal_message<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        seal(
            rng,
            &self.message_key,
            labels::AAD_ROOM_MESSAGE,
            &self.room_id,
            plaintext,
        )
    }

    /// Opens a sealed room message. `LIMIT_EXCEEDED`, `MALFORMED` or `DECRYPT_FAILED`.
    pub fn open_message(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() > MAX_SEALED_MESSAGE {
            return Err(Error::LimitExceeded {
                what: "sealed room message",
                max: MAX_SEALED_MESSAGE as u64,
                actual: sealed.len() as u64,
            });
        }
        open(
            &self.message_key,
            labels::AAD_ROOM_MESSAGE,
            &self.room_id,
            sealed,
        )
    }

    /// Signs and seals an ephemeral message from `device` (BRK-14).
    pub fn seal_ephemeral<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        device: &SigningKey,
        counter: u64,
        time_ms: u64,
        body: &[u8],
    ) -> Result<Vec<u8>, Error> {
        if body.len() > MAX_EPHEMERAL_BODY {
            return Err(Error::LimitExceeded {
                what: "ephemeral body",
                max: MAX_EPHEMERAL_BODY as u64,
                actual: body.len() as u64,
            });
        }
        let payload = wire::encode(&pb::EphemeralPayload {
            room_id: self.room_id.to_vec(),
            sender: device.public_bytes().to_vec(),
            counter,
            time_ms,
            body: body.to_vec(),
        });
        let signature = device.sign_with_label(labels::SIG_EPHEMERAL, &payload)?;
        let signed = wire::encode(&pb::SignedEphemeral {
            payload,
            signature: signature.to_vec(),
        });
        seal(
            rng,
            &self.ephemeral_key,
            labels::AAD_EPHEMERAL,
            &self.room_id,
            &signed,
        )
    }
}

fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    key: &[u8; 32],
    aad_label: &str,
    room_id: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let aad = labels::labeled(aad_label, room_id)
        .ok_or(Error::malformed("labelled input", "too long"))?;
    let ct = suite::aead_seal(key, &nonce, &aad, plaintext)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(
    key: &[u8; 32],
    aad_label: &str,
    room_id: &[u8; 32],
    sealed: &[u8],
) -> Result<Vec<u8>, Error> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::malformed(
            "sealed message",
            "shorter than nonce and tag",
        ));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let aad = labels::labeled(aad_label, room_id)
        .ok_or(Error::malformed("labelled input", "too long"))?;
    suite::aead_open(key, &n, &aad, ct)
}

/// The broker's join check (BRK-7): `room_key` is a valid Ed25519 key under the
/// pinned rule, it hashes to `room_id`, and `proof` is its signature over
/// `challenge || room_id`. The broker learns nothing but the room public key.
///
/// Errors, first failing check first: `MALFORMED` (lengths), `WRONG_CONTEXT`
/// (the key does not hash to the room id), `INVALID_KEY`, `BAD_SIGNATURE`.
pub fn verify_join(
    room_id: &[u8],
    room_key: &[u8],
    challenge: &[u8],
    proof: &[u8],
) -> Result<(), Error> {
    let room_id: [u8; 32] = room_id
        .try_into()
        .map_err(|_| Error::malformed("room id", "length is not 32"))?;
    let key_bytes: [u8; 32] = room_key
        .try_into()
        .map_err(|_| Error::malformed("room key", "length is not 32"))?;
    if challenge.len() != CHALLENGE_LEN {
        return Err(Error::malformed("join challenge", "length is not 32"));
    }
    if proof.len() != 64 {
        return Err(Error::malformed("join proof", "length is not 64"));
    }
    if room_id_of(&key_bytes)? != room_id {
        return Err(Error::WrongContext { what: "room id" });
    }
    let key = PublicKey::from_bytes(&key_bytes)?;
    key.verify_with_label(
        labels::SIG_ROOM_JOIN,
        &join_content(challenge, &room_id),
        proof,
        "join proof",
    )
}

/// An ephemeral message that passed every check of BRK-15.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ephemeral {
    /// The sender's device key.
    pub sender: [u8; 32],
    /// The sender's counter.
    pub counter: u64,
    /// The sender's time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The application body.
    pub body: Vec<u8>,
}

/// Sender state for ephemeral counters (BRK-14): each counter is
/// `max(last + 1, time_ms × 1024)`, so counters keep increasing across restarts
/// without persisted state (the clock has moved on). Time is an input.
#[derive(Debug, Default, Clone)]
pub struct EphemeralCounter {
    last: u64,
}

impl EphemeralCounter {
    /// A sender that has sent nothing since it started.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter for a message sent at `time_ms` (milliseconds since the Unix
    /// epoch, the same value put in the message).
    pub fn next(&mut self, time_ms: u64) -> u64 {
        let c = self
            .last
            .saturating_add(1)
            .max(time_ms.saturating_mul(1024));
        self.last = c;
        c
    }
}

/// Receiver state for ephemeral messages of one room: the highest counter accepted
/// from each member device (at most one entry per member).
#[derive(Debug, Default, Clone)]
pub struct EphemeralReceiver {
    last: BTreeMap<[u8; 32], u64>,
}

impl EphemeralReceiver {
    /// A receiver that has accepted nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens and checks one sealed ephemeral message at the receiver's time
    /// `now_ms` (BRK-15). `members` are the device keys allowed to send.
    ///
    /// Checks in order: size (`LIMIT_EXCEEDED`), AEAD (`MALFORMED`,
    /// `DECRYPT_FAILED`), decoding (`MALFORMED`, `NON_CANONICAL`), room
    /// (`WRONG_CONTEXT`), sender is a member (`UNKNOWN_SIGNER`), key and signature
    /// (`INVALID_KEY`, `BAD_SIGNATURE`), time window and counter (`REPLAY`).
    pub fn open(
        &mut self,
        room: &RoomCredentials,
        members: &[[u8; 32]],
        sealed: &[u8],
        now_ms: u64,
    ) -> Result<Ephemeral, Error> {
        let max = NONCE_LEN + TAG_LEN + MAX_EPHEMERAL_BODY + 256;
        if sealed.len() > max {
            return Err(Error::LimitExceeded {
                what: "sealed ephemeral message",
                max: max as u64,
                actual: sealed.len() as u64,
            });
        }
        let signed_bytes = open(
            &room.ephemeral_key,
            labels::AAD_EPHEMERAL,
            &room.room_id,
            sealed,
        )?;
        let signed: pb::SignedEphemeral = wire::decode(&signed_bytes, &wire::SIGNED_EPHEMERAL)?;
        let payload: pb::EphemeralPayload =
            wire::decode(&signed.payload, &wire::EPHEMERAL_PAYLOAD)?;
        if payload.room_id.as_slice() != room.room_id.as_slice() {
            return Err(Error::WrongContext { what: "room id" });
        }
        let sender: [u8; 32] = payload
            .sender
            .as_slice()
            .try_into()
            .map_err(|_| Error::malformed("ephemeral sender", "length is not 32"))?;
        if !members.contains(&sender) {
            return Err(Error::UnknownSigner);
        }
        PublicKey::from_bytes(&sender)?.verify_with_label(
            labels::SIG_EPHEMERAL,
            &signed.payload,
            &signed.signature,
            "ephemeral message",
        )?;
        if payload.body.len() > MAX_EPHEMERAL_BODY {
            return Err(Error::LimitExceeded {
                what: "ephemeral body",
                max: MAX_EPHEMERAL_BODY as u64,
                actual: payload.body.len() as u64,
            });
        }
        if payload.time_ms.saturating_add(EPHEMERAL_WINDOW_MS) < now_ms {
            return Err(Error::Replay {
                reason: "older than the freshness window",
            });
        }
        if payload.time_ms > now_ms.saturating_add(EPHEMERAL_WINDOW_MS) {
            return Err(Error::Replay {
                reason: "time ahead of the freshness window",
            });
        }
        if payload.counter == 0 {
            return Err(Error::malformed("ephemeral counter", "0 is invalid"));
        }
        if self
            .last
            .get(&sender)
            .is_some_and(|last| payload.counter <= *last)
        {
            return Err(Error::Replay {
                reason: "counter not above the last accepted one",
            });
        }
        self.last.insert(sender, payload.counter);
        Ok(Ephemeral {
            sender,
            counter: payload.counter,
            time_ms: payload.time_ms,
            body: payload.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn creds(secret: u8) -> RoomCredentials {
        RoomCredentials::derive(&[1; 32], &EpochKey::new([2; 32], [secret; 32])).expect("derive")
    }

    #[test]
    fn join_proof_verifies_and_binds_challenge_and_room() {
        let c = creds(3);
        let proof = c.join_proof(&[9; 32]).expect("proof");
        verify_join(c.room_id(), c.room_public_key(), &[9; 32], &proof).expect("valid");
        let class = |r: Result<(), Error>| r.err().map(|e| e.class());
        assert_eq!(
            class(verify_join(
                c.room_id(),
                c.room_public_key(),
                &[8; 32],
                &proof
            )),
            Some(ErrorClass::BadSignature)
        );
        let other = creds(4);
        assert_eq!(
            class(verify_join(
                other.room_id(),
                c.room_public_key(),
                &[9; 32],
                &proof
            )),
            Some(ErrorClass::WrongContext)
        );
        let mut bad = proof;
        bad[63] ^= 1;
        assert!(verify_join(c.room_id(), c.room_public_key(), &[9; 32], &bad).is_err());
        assert_eq!(
            class(verify_join(
                c.room_id(),
                c.room_public_key(),
                &[9; 31],
                &proof
            )),
            Some(ErrorClass::Malformed)
        );
    }

    #[test]
    fn room_id_rotates_with_the_epoch() {
        let a = creds(3);
        let b = RoomCredentials::derive(&[1; 32], &EpochKey::new([5; 32], [3; 32])).expect("d");
        assert_ne!(a.room_id(), b.room_id());
        assert_ne!(a.room_id(), creds(4).room_id());
        assert_eq!(a.room_id(), creds(3).room_id());
    }

    #[test]
    fn messages_round_trip_and_are_bound_to_the_room() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = creds(3);
        let sealed = a.seal_message(&mut rng, b"hello").expect("seal");
        assert_eq!(a.open_message(&sealed).expect("open"), b"hello");
        assert_eq!(
            creds(4).open_message(&sealed).err().map(|e| e.class()),
            Some(ErrorClass::DecryptFailed)
        );
        assert_eq!(
            a.open_message(&sealed[..10]).err().map(|e| e.class()),
            Some(ErrorClass::Malformed)
        );
    }

    #[test]
    fn ephemeral_checks_membership_freshness_and_replay() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let room = creds(3);
        let dev = SigningKey::from_seed(&[7; 32]);
        let members = [dev.public_bytes()];
        let now = 1_000_000;
        let mut rx = EphemeralReceiver::new();
        let m1 = room
            .seal_ephemeral(&mut rng, &dev, 1, now, b"cursor 5")
            .expect("seal");
        let got = rx.open(&room, &members, &m1, now + 10).expect("fresh");
        assert_eq!(got.body, b"cursor 5");
        let class = |r: Result<Ephemeral, Error>| r.err().map(|e| e.class());
        // Replay of the same message, and an older counter.
        assert_eq!(
            class(rx.open(&room, &members, &m1, now + 20)),
            Some(ErrorClass::Replay)
        );
        // Stale and future times.
        let old = room
            .seal_ephemeral(&mut rng, &dev, 2, now - EPHEMERAL_WINDOW_MS - 1, b"x")
            .expect("seal");
        assert_eq!(
            class(rx.open(&room, &members, &old, now)),
            Some(ErrorClass::Replay)
        );
        let future = room
            .seal_ephemeral(&mut rng, &dev, 3, now + EPHEMERAL_WINDOW_MS + 1, b"x")
            .expect("seal");
        assert_eq!(
            class(rx.open(&room, &members, &future, now)),
            Some(ErrorClass::Replay)
        );
        // Not a member.
        let stranger = SigningKey::from_seed(&[8; 32]);
        let m = room
            .seal_ephemeral(&mut rng, &stranger, 1, now, b"x")
            .expect("seal");
        assert_eq!(
            class(rx.open(&room, &members, &m, now)),
            Some(ErrorClass::UnknownSigner)
        );
        // Another room's key cannot open it.
        assert_eq!(
            class(EphemeralReceiver::new().open(&creds(4), &members, &m1, now)),
            Some(ErrorClass::DecryptFailed)
        );
        // A higher counter is accepted.
        let m4 = room
            .seal_ephemeral(&mut rng, &dev, 4, now, b"y")
            .expect("seal");
        assert_eq!(rx.open(&room, &members, &m4, now).expect("ok").counter, 4);
    }

    /// BRK-14: a sender that restarts without persisted state is still accepted,
    /// because its counters come from its clock; restarting from 1 was REPLAY.
    #[test]
    fn a_restarted_sender_is_not_refused_as_replay() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let room = creds(3);
        let dev = SigningKey::from_seed(&[7; 32]);
        let members = [dev.public_bytes()];
        let mut rx = EphemeralReceiver::new();
        let t0 = 1_700_000_000_000u64;
        let mut sender = EphemeralCounter::new();
        let mut last = 0;
        for i in 0..3000u64 {
            // Bursts within one millisecond still increase.
            let t = t0 + i / 2000;
            let c = sender.next(t);
            assert!(c > last);
            last = c;
            if i % 500 == 0 {
                let m = room
                    .seal_ephemeral(&mut rng, &dev, c, t, b"x")
                    .expect("seal");
                rx.open(&room, &members, &m, t).expect("accepted");
            }
        }
        // The sender restarts 3 ms later with no state.
        let t1 = t0 + 3;
        let naive = room
            .seal_ephemeral(&mut rng, &dev, 1, t1, b"y")
            .expect("seal");
        assert_eq!(
            rx.open(&room, &members, &naive, t1)
                .err()
                .map(|e| e.class()),
            Some(ErrorClass::Replay),
            "a counter restarted from 1 is a replay"
        );
        let c = EphemeralCounter::new().next(t1);
        let m = room
            .seal_ephemeral(&mut rng, &dev, c, t1, b"z")
            .expect("seal");
        assert_eq!(
            rx.open(&room, &members, &m, t1).expect("accepted").body,
            b"z"
        );
    }
}
