//! `room`: the room credentials of spec §10.4 (room id and room key from an epoch),
//! the broker's join check (BRK-7), sealed room messages (BRK-12) and the receive
//! checks of ephemeral messages (BRK-15), including REPLAY.

use clientful_core::ErrorClass;
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::room::{
    EPHEMERAL_WINDOW_MS, EphemeralReceiver, RoomCredentials, room_id_of, verify_join,
};
use rand_core::Rng;
use serde_json::{Value, json};

use crate::generate::{FileBuilder, family_rng};
use crate::hexutil::{get_arr, get_bytes_input, get_hex, get_hex_list, get_u64, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/room";

fn random<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

fn epoch_json(space: &[u8; 32], epoch_id: &[u8; 32], secret: &[u8; 32]) -> Value {
    json!({"spaceId": hex(space), "epochId": hex(epoch_id), "epochSecret": hex(secret)})
}

fn creds(input: &Value) -> Result<RoomCredentials, String> {
    let epoch = EpochKey::new(get_arr(input, "epochId")?, get_arr(input, "epochSecret")?);
    RoomCredentials::derive(&get_arr(input, "spaceId")?, &epoch).map_err(|e| e.to_string())
}

fn with(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
// The generator indexes values it built itself; it reads no outside input.
#[allow(clippy::indexing_slicing)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut rng = family_rng(seed);
    let mut f = FileBuilder::new(
        "room",
        seed,
        "Broker rooms: room id and room key derived from a space epoch, the broker's join \
         check, sealed room messages, and the receive checks of ephemeral messages.",
    );
    f.note(
        "Ktv",
        "BASIC",
        "Known-answer value computed by the reference.",
    );
    f.note(
        "WrongContext",
        "CONTEXT",
        "Valid material presented for another room or challenge.",
    );
    f.note("Tampered", "BASIC", "A byte of the input was changed.");
    f.note(
        "Replay",
        "REPLAY",
        "A message outside its freshness window or already accepted.",
    );

    let space: [u8; 32] = random(&mut rng);
    let epoch_id: [u8; 32] = random(&mut rng);
    let secret: [u8; 32] = random(&mut rng);
    let base = epoch_json(&space, &epoch_id, &secret);
    let room = RoomCredentials::derive(&space, &EpochKey::new(epoch_id, secret))
        .map_err(|e| e.to_string())?;

    f.group(
        "derive-room",
        "Room id and room public key of a space epoch (BRK-5).",
        json!({}),
    );
    f.valid(
        "epoch",
        "Room of a random space epoch.",
        &["BRK-5"],
        &["Ktv"],
        base.clone(),
        json!({"roomId": hex(room.room_id()), "roomPublicKey": hex(room.room_public_key())}),
    );
    let next_epoch: [u8; 32] = random(&mut rng);
    let rotated = RoomCredentials::derive(&space, &EpochKey::new(next_epoch, secret))
        .map_err(|e| e.to_string())?;
    f.valid(
        "rotated-epoch-id",
        "Same secret under another epoch id: another room.",
        &["BRK-5"],
        &["Ktv"],
        epoch_json(&space, &next_epoch, &secret),
        json!({"roomId": hex(rotated.room_id()), "roomPublicKey": hex(rotated.room_public_key())}),
    );

    f.group(
        "verify-join",
        "The broker's check of a JOIN: room key hashes to the room id, proof verifies over \
         challenge || room id under sig/room-join (BRK-6, BRK-7).",
        json!({}),
    );
    let challenge: [u8; 32] = random(&mut rng);
    let proof = room.join_proof(&challenge).map_err(|e| e.to_string())?;
    let join = json!({
        "roomId": hex(room.room_id()),
        "roomKey": hex(room.room_public_key()),
        "challenge": hex(challenge),
        "proof": hex(proof),
    });
    f.valid(
        "valid",
        "A member's proof for this challenge.",
        &["BRK-6", "BRK-7"],
        &["Ktv"],
        join.clone(),
        json!({}),
    );
    let other_challenge: [u8; 32] = random(&mut rng);
    f.invalid(
        "other-challenge",
        "A proof made for another connection's challenge.",
        &["BRK-6", "BRK-7"],
        ErrorClass::BadSignature,
        &["WrongContext"],
        with(&join, json!({"challenge": hex(other_challenge)})),
    );
    f.invalid(
        "other-room",
        "The room key of another room presented for this room id.",
        &["BRK-7"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        with(&join, json!({"roomKey": hex(rotated.room_public_key())})),
    );
    let mut bad = proof;
    bad[10] ^= 1;
    f.invalid(
        "tampered-proof",
        "One bit of the proof flipped.",
        &["BRK-7"],
        ErrorClass::BadSignature,
        &["Tampered"],
        with(&join, json!({"proof": hex(bad)})),
    );
    f.invalid(
        "short-proof",
        "A 63-byte proof.",
        &["BRK-7"],
        ErrorClass::Malformed,
        &["Tampered"],
        with(&join, json!({"proof": hex(&proof[..63])})),
    );
    f.invalid(
        "short-room-id",
        "A 31-byte room id in JOIN: the join check fails on the lengths, so the broker \
         answers BAD_PROOF and keeps the connection (BRK-7), not MALFORMED (BRK-4).",
        &["BRK-4", "BRK-7"],
        ErrorClass::Malformed,
        &["Tampered"],
        with(&join, json!({"roomId": hex(&room.room_id()[..31])})),
    );
    // The identity point: hashes to its own room id, but is not a valid key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let identity_room = room_id_of(&identity).map_err(|e| e.to_string())?;
    f.invalid(
        "small-order-room-key",
        "A small-order room key whose hash is the room id.",
        &["BRK-7", "SIG-2"],
        ErrorClass::InvalidKey,
        &["Tampered"],
        with(
            &join,
            json!({"roomId": hex(identity_room), "roomKey": hex(identity)}),
        ),
    );

    f.group(
        "open-room-message",
        "Opening a sealed room message (BRK-12).",
        json!({}),
    );
    // The plaintext is a canonical RoomMessage (kind 4 APP), as BRK-12 says; the
    // operation covers the checks up to the AEAD and returns the bytes.
    let plaintext = clientful_core::wire::encode(&clientful_proto::v1::RoomMessage {
        kind: 4,
        session: random::<16>(&mut rng).to_vec(),
        body: b"room message plaintext".to_vec(),
    });
    let sealed = room
        .seal_message(&mut rng, &plaintext)
        .map_err(|e| e.to_string())?;
    f.valid(
        "valid",
        "Sealed under the room message key; the plaintext is a canonical RoomMessage \
         (kind 4 APP, a 16-byte session, an ASCII body).",
        &["BRK-12"],
        &["Ktv"],
        with(&base, json!({"sealed": hex(&sealed)})),
        json!({"plaintext": hex(&plaintext)}),
    );
    f.invalid(
        "shorter-than-nonce-and-tag",
        "39 bytes: shorter than the nonce and tag (MALFORMED before the AEAD).",
        &["BRK-12"],
        ErrorClass::Malformed,
        &["Tampered"],
        with(&base, json!({"sealed": hex(&sealed[..39])})),
    );
    f.invalid(
        "over-size-limit",
        "1,048,577 bytes: one over the receiver's sealed-size limit (LIMIT_EXCEEDED, \
         checked before the AEAD).",
        &["BRK-12"],
        ErrorClass::LimitExceeded,
        &["Tampered"],
        with(
            &base,
            json!({"sealed": {"prefix": hex(&sealed), "fill": "00",
                              "length": clientful_core::room::MAX_SEALED_MESSAGE + 1}}),
        ),
    );
    let mut t = sealed.clone();
    if let Some(last) = t.last_mut() {
        *last ^= 1;
    }
    f.invalid(
        "tampered",
        "One bit of the tag flipped.",
        &["BRK-12"],
        ErrorClass::DecryptFailed,
        &["Tampered"],
        with(&base, json!({"sealed": hex(&t)})),
    );
    f.invalid(
        "other-epoch",
        "Opened with the keys of another epoch.",
        &["BRK-12", "BRK-5"],
        ErrorClass::DecryptFailed,
        &["WrongContext"],
        json!({"spaceId": hex(space), "epochId": hex(next_epoch), "epochSecret": hex(secret),
               "sealed": hex(&sealed)}),
    );

    f.group(
        "open-ephemeral",
        "Receive checks of an ephemeral message at time `now` (ms), after the messages in \
         `accepted` were accepted in order (BRK-14, BRK-15).",
        json!({}),
    );
    let device = SigningKey::from_seed(&random::<32>(&mut rng));
    let stranger = SigningKey::from_seed(&random::<32>(&mut rng));
    let members = vec![hex(device.public_bytes())];
    let now: u64 = 1_800_000_000_000;
    let eph = |rng: &mut _, key: &SigningKey, counter: u64, time: u64| {
        room.seal_ephemeral(rng, key, counter, time, b"cursor 7:3")
            .map_err(|e| e.to_string())
    };
    let m1 = eph(&mut rng, &device, 1, now - 1_000)?;
    let case = |sealed: &[u8], accepted: &[&[u8]]| {
        with(
            &base,
            json!({"members": members, "now": now, "sealed": hex(sealed),
                   "accepted": accepted.iter().map(hex).collect::<Vec<_>>()}),
        )
    };
    f.valid(
        "fresh",
        "A member's message one second old.",
        &["BRK-14", "BRK-15"],
        &["Ktv"],
        case(&m1, &[]),
        json!({"sender": hex(device.public_bytes()), "counter": 1, "timeMs": now - 1_000,
               "body": hex(b"cursor 7:3")}),
    );
    f.invalid(
        "replayed",
        "The same message a second time.",
        &["BRK-15"],
        ErrorClass::Replay,
        &["Replay"],
        case(&m1, &[&m1]),
    );
    let m5 = eph(&mut rng, &device, 5, now)?;
    let m4 = eph(&mut rng, &device, 4, now)?;
    f.invalid(
        "lower-counter",
        "Counter 4 after counter 5 was accepted.",
        &["BRK-15"],
        ErrorClass::Replay,
        &["Replay"],
        case(&m4, &[&m5]),
    );
    let stale = eph(&mut rng, &device, 2, now - EPHEMERAL_WINDOW_MS - 1)?;
    f.invalid(
        "stale",
        "One millisecond older than the freshness window.",
        &["BRK-15"],
        ErrorClass::Replay,
        &["Replay"],
        case(&stale, &[]),
    );
    let edge = eph(&mut rng, &device, 2, now - EPHEMERAL_WINDOW_MS)?;
    f.valid(
        "window-edge",
        "Exactly at the edge of the freshness window.",
        &["BRK-15"],
        &["Ktv"],
        case(&edge, &[]),
        json!({"sender": hex(device.public_bytes()), "counter": 2,
               "timeMs": now - EPHEMERAL_WINDOW_MS, "body": hex(b"cursor 7:3")}),
    );
    let future = eph(&mut rng, &device, 3, now + EPHEMERAL_WINDOW_MS + 1)?;
    f.invalid(
        "future",
        "Ahead of the receiver's clock by more than the window.",
        &["BRK-15"],
        ErrorClass::Replay,
        &["Replay"],
        case(&future, &[]),
    );
    let foreign = eph(&mut rng, &stranger, 1, now)?;
    f.invalid(
        "not-a-member",
        "Signed by a device that is not a member.",
        &["BRK-15"],
        ErrorClass::UnknownSigner,
        &["WrongContext"],
        case(&foreign, &[]),
    );
    let mut tampered = m1.clone();
    tampered[30] ^= 1;
    f.invalid(
        "tampered",
        "One bit of the ciphertext flipped.",
        &["BRK-15"],
        ErrorClass::DecryptFailed,
        &["Tampered"],
        case(&tampered, &[]),
    );
    f.invalid(
        "over-size-limit",
        "1,321 bytes: one over the receiver's sealed-size limit of an ephemeral message \
         (LIMIT_EXCEEDED, checked first).",
        &["BRK-15"],
        ErrorClass::LimitExceeded,
        &["Tampered"],
        case(&[0x5a; 1321], &[]),
    );
    f.invalid(
        "shorter-than-nonce-and-tag",
        "39 bytes: shorter than the nonce and tag (MALFORMED before the AEAD).",
        &["BRK-15"],
        ErrorClass::Malformed,
        &["Tampered"],
        case(&m1[..39], &[]),
    );
    Ok(f.finish())
}

fn reject(e: clientful_core::Error) -> Outcome {
    Outcome::Rejected(e.class())
}

/// Runs one case.
pub fn run(operation: &str, _params: &Value, input: &Value) -> Result<Outcome, String> {
    Ok(match operation {
        "derive-room" => {
            let c = creds(input)?;
            Outcome::Accepted(
                json!({"roomId": hex(c.room_id()), "roomPublicKey": hex(c.room_public_key())}),
            )
        }
        "verify-join" => match verify_join(
            &get_hex(input, "roomId")?,
            &get_hex(input, "roomKey")?,
            &get_hex(input, "challenge")?,
            &get_hex(input, "proof")?,
        ) {
            Ok(()) => Outcome::Accepted(json!({})),
            Err(e) => reject(e),
        },
        "open-room-message" => match creds(input)?.open_message(&get_bytes_input(input, "sealed")?)
        {
            Ok(p) => Outcome::Accepted(json!({"plaintext": hex(p)})),
            Err(e) => reject(e),
        },
        "open-ephemeral" => {
            let room = creds(input)?;
            let members: Vec<[u8; 32]> = get_hex_list(input, "members")?
                .into_iter()
                .map(|m| {
                    m.try_into()
                        .map_err(|_| "member is not 32 bytes".to_string())
                })
                .collect::<Result<_, _>>()?;
            let now = get_u64(input, "now")?;
            let mut rx = EphemeralReceiver::new();
            for a in get_hex_list(input, "accepted")? {
                rx.open(&room, &members, &a, now)
                    .map_err(|e| format!("an accepted message was rejected: {e}"))?;
            }
            match rx.open(&room, &members, &get_hex(input, "sealed")?, now) {
                Ok(e) => Outcome::Accepted(json!({
                    "sender": hex(e.sender), "counter": e.counter, "timeMs": e.time_ms,
                    "body": hex(e.body),
                })),
                Err(e) => reject(e),
            }
        }
        other => return Err(format!("unknown operation {other}")),
    })
}
