//! `recovery`: recovery shares (spec §5.6): Shamir splitting over GF(2^8) with given
//! coefficients and interpolation (REC-3), a holder opening its share of a set
//! (REC-4), request ids (REC-5), and restoring from releases with the checks of REC-7
//! in order.

use clientful_core::ErrorClass;
use clientful_core::keys::{SigningKey, X25519Secret};
use clientful_core::membership::seal;
use clientful_core::recovery::{
    self, Holder, INFO_RELEASE, RequestSecret, SetRandomness, kit, shamir,
};
use clientful_proto::v1 as pb;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::generate::{FileBuilder, family_rng};
use crate::hexutil::{get_arr, get_bytes_input, get_hex_list, get_u64, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/recovery";

fn err(e: clientful_core::Error) -> String {
    e.to_string()
}

fn contents(b: &clientful_core::backup::BackupContents) -> Value {
    json!({
        "userSeed": hex(b.user_seed.as_ref()),
        "userKey": hex(b.user_key),
        "name": b.name,
    })
}

/// A request from its X25519 secret and nonce.
fn request_of(secret: &[u8; 32], nonce: &[u8; 16]) -> Result<RequestSecret, String> {
    RequestSecret::from_parts(X25519Secret::from_bytes(secret), nonce).map_err(err)
}

/// Seals any release body to `request` (REC-6's box), for crafted releases.
fn seal_release(
    rng: &mut ChaCha20Rng,
    request: &RequestSecret,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let decoded = recovery::decode_request(request.request()).map_err(err)?;
    let mut info = [0u8; 33];
    info[0] = INFO_RELEASE;
    info[1..].copy_from_slice(request.id());
    seal::seal(rng, request.id(), decoded.x25519(), &info, body).map_err(err)
}

fn release_body(kit: &[u8], share: &[u8]) -> Vec<u8> {
    pb::RecoveryRelease {
        version: 1,
        kit: kit.to_vec(),
        share: share.to_vec(),
    }
    .encode_to_vec()
}

fn restore_input(secret: &[u8; 32], nonce: &[u8; 16], releases: &[Vec<u8>]) -> Value {
    json!({
        "requestSecret": hex(secret),
        "requestNonce": hex(nonce),
        "releases": releases.iter().map(hex).collect::<Vec<_>>(),
    })
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any other
/// seed fresh cases of the same shape (CONF-53). Indexing is over the fixed world it
/// builds (five holders, their releases), never over input.
#[allow(clippy::indexing_slicing, clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut rng = family_rng(seed);
    let mut f = FileBuilder::new(
        "recovery",
        seed,
        "Recovery shares: a recovery secret split k-of-n over GF(2^8), the user seed \
         sealed under it in a kit, shares sealed to holders, and restoring from releases.",
    );
    f.note("Ktv", "BASIC", "A correct split, set or restore.");
    f.note("TooFew", "AUTH_BYPASS", "Fewer shares than the threshold.");
    f.note(
        "Transplant",
        "AUTH_BYPASS",
        "A release or share for another request, kit or holder.",
    );
    f.note(
        "LyingHolder",
        "AUTH_BYPASS",
        "A holder releases a wrong or conflicting share value.",
    );
    f.note(
        "UnpinnedVersion",
        "DEFINED",
        "A version this format does not define.",
    );
    f.note(
        "WrongShape",
        "BASIC",
        "A threshold, index or field length out of range.",
    );
    f.note(
        "Oversize",
        "RESOURCE",
        "Over a recovery size or count limit.",
    );
    f.note(
        "Tampered",
        "MALLEABILITY",
        "A ciphertext changed after sealing.",
    );
    f.note(
        "UnknownField",
        "NON_CANONICAL",
        "A field the schema does not define.",
    );
    f.note(
        "SeedMismatch",
        "AUTH_BYPASS",
        "A kit whose sealed seed is not the named user's.",
    );

    // One world: a user, five holders, threshold three.
    let mut user_seed = [0u8; 32];
    rng.fill_bytes(&mut user_seed);
    let name = "Alice Émilie";
    let holder_secrets: Vec<[u8; 32]> = (0..5)
        .map(|_| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        })
        .collect();
    let holders: Vec<Holder> = holder_secrets
        .iter()
        .enumerate()
        .map(|(i, s)| Holder {
            device_id: [i as u8 + 1; 32],
            x25519: X25519Secret::from_bytes(s).public(),
        })
        .collect();
    let randomness = SetRandomness::generate(&mut rng, 3);

    f.group(
        "split",
        "Split a 32-byte secret with the given coefficients (for each secret byte, the \
         k - 1 coefficients of degree 1..k-1): the n share values, index 1 first.",
        json!({}),
    );
    let values =
        shamir::split_with(&randomness.secret, &randomness.coefficients, 5).map_err(err)?;
    f.valid(
        "split-3-of-5",
        "A 3-of-5 split.",
        &["REC-3"],
        &["Ktv"],
        json!({
            "secret": hex(randomness.secret.as_ref()),
            "coefficients": randomness.coefficients.iter().map(hex).collect::<Vec<_>>(),
            "count": 5,
        }),
        json!({"shares": values.iter().map(|v| hex(v.as_ref())).collect::<Vec<_>>()}),
    );

    f.group(
        "combine",
        "Interpolate at zero from shares given as (index, value): the secret.",
        json!({}),
    );
    for (id, which) in [
        ("combine-1-2-3", [0usize, 1, 2]),
        ("combine-5-2-4", [4, 1, 3]),
    ] {
        f.valid(
            id,
            "Three shares of the 3-of-5 split, in the order given.",
            &["REC-3"],
            &["Ktv"],
            json!({
                "indices": which.iter().map(|&i| i + 1).collect::<Vec<_>>(),
                "values": which.iter().map(|&i| hex(values[i].as_ref())).collect::<Vec<_>>(),
            }),
            json!({"secret": hex(randomness.secret.as_ref())}),
        );
    }

    let set = recovery::create_set_with(&mut rng, &user_seed, name, &holders, 3, &randomness)
        .map_err(err)?;
    let decoded = recovery::decode_set(&set).map_err(err)?;
    let kit_bytes = pb::RecoverySet::decode(set.as_slice())
        .map_err(|e| e.to_string())?
        .kit;
    let kit_id = *decoded.kit().id();

    f.group(
        "open-share",
        "A holder device (id and X25519 secret) opens its share of a RecoverySet: the \
         share index, the kit id and the share bytes, or the class of the first failing \
         check of REC-4.",
        json!({}),
    );
    let open_input = |set: &[u8], i: usize| {
        json!({
            "set": hex(set),
            "deviceId": hex([i as u8 + 1; 32]),
            "deviceSecret": hex(holder_secrets[i]),
        })
    };
    let held: Vec<recovery::HeldShare> = (0..5)
        .map(|i| {
            decoded
                .open_share(
                    &[i as u8 + 1; 32],
                    &X25519Secret::from_bytes(&holder_secrets[i]),
                )
                .map_err(err)
        })
        .collect::<Result<_, _>>()?;
    f.valid(
        "holder-2",
        "The second holder opens share 2.",
        &["REC-4"],
        &["Ktv"],
        open_input(&set, 1),
        json!({"index": 2, "kitId": hex(kit_id), "share": hex(held[1].share.as_slice())}),
    );
    let mut not_holder = open_input(&set, 0);
    not_holder["deviceId"] = json!(hex([99u8; 32]));
    f.invalid(
        "not-a-holder",
        "A device the set names no share for.",
        &["REC-4"],
        ErrorClass::WrongContext,
        &["Transplant"],
        not_holder,
    );
    let mut wrong_key = open_input(&set, 0);
    wrong_key["deviceSecret"] = json!(hex(holder_secrets[1]));
    f.invalid(
        "wrong-device-key",
        "The first holder's id with another device's X25519 secret.",
        &["REC-4", "KEY-3"],
        ErrorClass::DecryptFailed,
        &["Transplant"],
        wrong_key,
    );
    let pb_set = pb::RecoverySet::decode(set.as_slice()).map_err(|e| e.to_string())?;
    let mut missing = pb_set.clone();
    missing.sealed_shares.pop();
    f.invalid(
        "box-missing",
        "Four boxes for a kit of five shares.",
        &["REC-4"],
        ErrorClass::Malformed,
        &["WrongShape"],
        open_input(&missing.encode_to_vec(), 0),
    );
    let mut big = pb_set.clone();
    big.sealed_shares.push(vec![0u8; recovery::MAX_SET_BYTES]);
    f.invalid(
        "set-oversize",
        "A set over 4096 bytes.",
        &["REC-LIM-3", "REC-4"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        open_input(&big.encode_to_vec(), 0),
    );

    f.group(
        "request-id",
        "The id of a RecoveryRequest, or the class of its decoding.",
        json!({}),
    );
    let mut req_secret = [0u8; 32];
    rng.fill_bytes(&mut req_secret);
    let mut req_nonce = [0u8; 16];
    rng.fill_bytes(&mut req_nonce);
    let request = request_of(&req_secret, &req_nonce)?;
    f.valid(
        "request",
        "A request's id.",
        &["REC-5"],
        &["Ktv"],
        json!({"request": hex(request.request())}),
        json!({"requestId": hex(request.id())}),
    );
    let mut r2 = pb::RecoveryRequest::decode(request.request()).map_err(|e| e.to_string())?;
    r2.version = 2;
    f.invalid(
        "request-version-2",
        "A request of version 2.",
        &["REC-5"],
        ErrorClass::UnsupportedVersion,
        &["UnpinnedVersion"],
        json!({"request": hex(r2.encode_to_vec())}),
    );
    let mut r3 = pb::RecoveryRequest::decode(request.request()).map_err(|e| e.to_string())?;
    r3.nonce.truncate(15);
    f.invalid(
        "request-nonce-15-bytes",
        "A 15-byte request nonce.",
        &["REC-5"],
        ErrorClass::Malformed,
        &["WrongShape"],
        json!({"request": hex(r3.encode_to_vec())}),
    );

    f.group(
        "restore",
        "A recovering device (its request's X25519 secret and nonce) restores from \
         releases, in the order given: the seed, user key and name, or the class of the \
         first failing check of REC-7.",
        json!({}),
    );
    let asked = recovery::decode_request(request.request()).map_err(err)?;
    let mut rel = |i: usize| recovery::release(&mut rng, &held[i], &asked).map_err(err);
    let honest: Vec<Vec<u8>> = (0..5).map(&mut rel).collect::<Result<_, _>>()?;
    let restored =
        recovery::restore(&request, &[&honest[4], &honest[0], &honest[2]]).map_err(err)?;
    let input = |releases: &[Vec<u8>]| restore_input(&req_secret, &req_nonce, releases);
    f.valid(
        "three-of-five",
        "Releases of shares 5, 1 and 3.",
        &["REC-6", "REC-7"],
        &["Ktv"],
        input(&[honest[4].clone(), honest[0].clone(), honest[2].clone()]),
        contents(&restored),
    );
    f.valid(
        "four-with-a-duplicate",
        "Releases of shares 2, 2, 4 and 3: the duplicate is ignored.",
        &["REC-7"],
        &["Ktv"],
        input(&[
            honest[1].clone(),
            honest[1].clone(),
            honest[3].clone(),
            honest[2].clone(),
        ]),
        contents(&restored),
    );
    f.invalid(
        "two-of-three",
        "Releases of shares 1 and 4 only.",
        &["REC-7"],
        ErrorClass::InvalidOperation,
        &["TooFew"],
        input(&[honest[0].clone(), honest[3].clone()]),
    );
    f.invalid(
        "same-share-three-times",
        "The release of share 2, three times.",
        &["REC-7"],
        ErrorClass::InvalidOperation,
        &["TooFew"],
        input(&[honest[1].clone(), honest[1].clone(), honest[1].clone()]),
    );
    f.invalid(
        "no-release",
        "No release at all.",
        &["REC-7"],
        ErrorClass::InvalidOperation,
        &["TooFew"],
        input(&[]),
    );

    // A release sealed to another request.
    let mut other_secret = [0u8; 32];
    rng.fill_bytes(&mut other_secret);
    let other = request_of(&other_secret, &req_nonce)?;
    let other_asked = recovery::decode_request(other.request()).map_err(err)?;
    let foreign = recovery::release(&mut rng, &held[1], &other_asked).map_err(err)?;
    f.invalid(
        "release-for-another-request",
        "A release sealed to another request, with two good ones.",
        &["REC-6", "REC-7"],
        ErrorClass::WrongContext,
        &["Transplant"],
        input(&[honest[0].clone(), foreign, honest[2].clone()]),
    );
    let mut tampered = pb::SealedKey::decode(honest[1].as_slice()).map_err(|e| e.to_string())?;
    if let Some(b) = tampered.ciphertext.last_mut() {
        *b ^= 0x80;
    }
    f.invalid(
        "release-tampered",
        "One bit of a release's ciphertext flipped.",
        &["REC-7", "KEY-3"],
        ErrorClass::DecryptFailed,
        &["Tampered"],
        input(&[
            honest[0].clone(),
            tampered.encode_to_vec(),
            honest[2].clone(),
        ]),
    );

    // Crafted release bodies, correctly sealed to the request.
    let share_bytes = |i: usize| held[i].share.to_vec();
    let share_with =
        |i: usize, change: &dyn Fn(&mut pb::RecoveryShare)| -> Result<Vec<u8>, String> {
            let mut s =
                pb::RecoveryShare::decode(held[i].share.as_slice()).map_err(|e| e.to_string())?;
            change(&mut s);
            Ok(s.encode_to_vec())
        };
    let mut crafted = |id: &str,
                       what: &str,
                       reqs: &[&str],
                       class: ErrorClass,
                       flags: &[&str],
                       kit: &[u8],
                       share: &[u8],
                       version: u32|
     -> Result<(), String> {
        let mut body = pb::RecoveryRelease::decode(release_body(kit, share).as_slice())
            .map_err(|e| e.to_string())?;
        body.version = version;
        let bad = seal_release(&mut rng, &request, &body.encode_to_vec())?;
        f.invalid(
            id,
            what,
            reqs,
            class,
            flags,
            restore_input(
                &req_secret,
                &req_nonce,
                &[honest[0].clone(), bad, honest[2].clone()],
            ),
        );
        Ok(())
    };
    crafted(
        "release-version-2",
        "A release of version 2.",
        &["REC-7"],
        ErrorClass::UnsupportedVersion,
        &["UnpinnedVersion"],
        &kit_bytes,
        &share_bytes(1),
        2,
    )?;
    let kit_pb = pb::RecoveryKit::decode(kit_bytes.as_slice()).map_err(|e| e.to_string())?;
    for (id, what, class, flags, change) in [
        (
            "kit-version-2",
            "A kit of version 2.",
            ErrorClass::UnsupportedVersion,
            "UnpinnedVersion",
            0,
        ),
        (
            "kit-threshold-1",
            "A kit with threshold 1.",
            ErrorClass::Malformed,
            "WrongShape",
            1,
        ),
        (
            "kit-threshold-over-shares",
            "A kit with threshold 6 of 5 shares.",
            ErrorClass::Malformed,
            "WrongShape",
            2,
        ),
        (
            "kit-17-shares",
            "A kit of 17 shares.",
            ErrorClass::LimitExceeded,
            "Oversize",
            3,
        ),
        (
            "kit-nonce-12-bytes",
            "A kit with a 12-byte nonce.",
            ErrorClass::Malformed,
            "WrongShape",
            4,
        ),
    ] {
        let mut k = kit_pb.clone();
        match change {
            0 => k.version = 2,
            1 => k.threshold = 1,
            2 => k.threshold = 6,
            3 => k.shares = 17,
            _ => k.nonce.truncate(12),
        }
        crafted(
            id,
            what,
            &["REC-7", "REC-LIM-1"],
            class,
            &[flags],
            &k.encode_to_vec(),
            &share_bytes(1),
            1,
        )?;
    }
    for (id, what, class, flags, change) in [
        (
            "share-index-0",
            "A share with index 0.",
            ErrorClass::Malformed,
            "WrongShape",
            0,
        ),
        (
            "share-index-6",
            "A share with index 6 of a 5-share kit.",
            ErrorClass::Malformed,
            "WrongShape",
            1,
        ),
        (
            "share-value-31-bytes",
            "A 31-byte share value.",
            ErrorClass::Malformed,
            "WrongShape",
            2,
        ),
        (
            "share-version-2",
            "A share of version 2.",
            ErrorClass::UnsupportedVersion,
            "UnpinnedVersion",
            3,
        ),
        (
            "share-of-another-kit",
            "A share naming another kit id.",
            ErrorClass::WrongContext,
            "Transplant",
            4,
        ),
    ] {
        let share = share_with(1, &|s: &mut pb::RecoveryShare| match change {
            0 => s.index = 0,
            1 => s.index = 6,
            2 => s.value.truncate(31),
            3 => s.version = 2,
            _ => s.kit_id[0] ^= 1,
        })?;
        crafted(id, what, &["REC-7"], class, &[flags], &kit_bytes, &share, 1)?;
    }
    let lie = share_with(1, &|s: &mut pb::RecoveryShare| s.value[0] ^= 1)?;
    crafted(
        "wrong-share-value",
        "Share 2's value with one bit changed: the combined secret does not open the kit.",
        &["REC-7"],
        ErrorClass::DecryptFailed,
        &["LyingHolder"],
        &kit_bytes,
        &lie,
        1,
    )?;
    // The same index twice with different values.
    let lie_box = seal_release(&mut rng, &request, &release_body(&kit_bytes, &lie))?;
    f.invalid(
        "conflicting-values",
        "Share 2 honest, then share 2 with another value.",
        &["REC-7"],
        ErrorClass::InvalidOperation,
        &["LyingHolder"],
        input(&[honest[1].clone(), lie_box, honest[2].clone()]),
    );
    // Releases from two sets of the same user.
    let randomness_b = SetRandomness::generate(&mut rng, 3);
    let set_b = recovery::create_set_with(&mut rng, &user_seed, name, &holders, 3, &randomness_b)
        .map_err(err)?;
    let held_b = recovery::decode_set(&set_b)
        .map_err(err)?
        .open_share(&[2; 32], &X25519Secret::from_bytes(&holder_secrets[1]))
        .map_err(err)?;
    let mixed = recovery::release(&mut rng, &held_b, &asked).map_err(err)?;
    f.invalid(
        "kits-differ",
        "Two releases of one set and one of another set of the same user.",
        &["REC-7"],
        ErrorClass::WrongContext,
        &["Transplant"],
        input(&[honest[0].clone(), mixed, honest[2].clone()]),
    );
    let mut unknown = release_body(&kit_bytes, &share_bytes(1));
    unknown.extend_from_slice(&[0x20, 0x01]); // field 4, varint 1
    let unknown_box = seal_release(&mut rng, &request, &unknown)?;
    f.invalid(
        "release-unknown-field",
        "A release with a field 4.",
        &["REC-7", "ENC-2"],
        ErrorClass::NonCanonical,
        &["UnknownField"],
        input(&[honest[0].clone(), unknown_box, honest[2].clone()]),
    );
    // A kit whose sealed seed is not the named user's: a whole crafted set of
    // releases, all correct for that kit.
    let mut other_seed = [0u8; 32];
    rng.fill_bytes(&mut other_seed);
    let mut header = kit_pb.clone();
    header.user_key = SigningKey::from_seed(&other_seed).public_bytes().to_vec();
    header.ciphertext = Vec::new();
    let plain = Zeroizing::new(
        pb::BackupSecret {
            version: 1,
            user_seed: user_seed.to_vec(),
            name: Vec::new(),
        }
        .encode_to_vec(),
    );
    let bad_kit = kit::seal_kit_unchecked(&randomness.secret, &header, &plain).map_err(err)?;
    let bad_kit_id = recovery::kit_id(&bad_kit).map_err(err)?;
    let mut seed_mismatch = Vec::new();
    for (i, v) in values.iter().enumerate().take(3) {
        let share = pb::RecoveryShare {
            version: 1,
            kit_id: bad_kit_id.to_vec(),
            index: i as u32 + 1,
            value: v.to_vec(),
        }
        .encode_to_vec();
        seed_mismatch.push(seal_release(
            &mut rng,
            &request,
            &release_body(&bad_kit, &share),
        )?);
    }
    f.invalid(
        "seed-of-another-user",
        "Three releases of a kit whose sealed seed is not the seed of its user key.",
        &["REC-7", "BAK-6"],
        ErrorClass::WrongContext,
        &["SeedMismatch"],
        input(&seed_mismatch),
    );
    Ok(f.finish())
}

/// Runs one case against the reference.
pub fn run(operation: &str, _params: &Value, input: &Value) -> Result<Outcome, String> {
    match operation {
        "split" => {
            let secret = get_arr::<32>(input, "secret")?;
            let coefficients = get_hex_list(input, "coefficients")?;
            let count = u8::try_from(get_u64(input, "count")?).map_err(|e| e.to_string())?;
            Ok(match shamir::split_with(&secret, &coefficients, count) {
                Ok(shares) => Outcome::Accepted(
                    json!({"shares": shares.iter().map(|v| hex(v.as_ref())).collect::<Vec<_>>()}),
                ),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        "combine" => {
            let values = get_hex_list(input, "values")?;
            let indices = input
                .get("indices")
                .and_then(Value::as_array)
                .ok_or("missing indices")?
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|x| u8::try_from(x).ok())
                        .ok_or("bad index")
                })
                .collect::<Result<Vec<u8>, _>>()?;
            let arrays: Vec<[u8; 32]> = values
                .iter()
                .map(|v| <[u8; 32]>::try_from(v.as_slice()).map_err(|_| "value not 32 bytes"))
                .collect::<Result<_, _>>()?;
            let points: Vec<(u8, &[u8; 32])> = indices.iter().copied().zip(arrays.iter()).collect();
            Ok(match shamir::combine(&points) {
                Ok(secret) => Outcome::Accepted(json!({"secret": hex(secret.as_ref())})),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        "open-share" => {
            let set = get_bytes_input(input, "set")?;
            let device_id = get_arr::<32>(input, "deviceId")?;
            let secret = X25519Secret::from_bytes(&get_arr::<32>(input, "deviceSecret")?);
            Ok(
                match recovery::decode_set(&set).and_then(|s| s.open_share(&device_id, &secret)) {
                    Ok(h) => Outcome::Accepted(json!({
                        "index": h.index,
                        "kitId": hex(recovery::kit_id(&h.kit).map_err(err)?),
                        "share": hex(h.share.as_slice()),
                    })),
                    Err(e) => Outcome::Rejected(e.class()),
                },
            )
        }
        "request-id" => {
            let request = get_bytes_input(input, "request")?;
            Ok(match recovery::decode_request(&request) {
                Ok(r) => Outcome::Accepted(json!({"requestId": hex(r.id())})),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        "restore" => {
            let request = request_of(
                &get_arr::<32>(input, "requestSecret")?,
                &get_arr::<16>(input, "requestNonce")?,
            )?;
            let releases = get_hex_list(input, "releases")?;
            let refs: Vec<&[u8]> = releases.iter().map(Vec::as_slice).collect();
            Ok(match recovery::restore(&request, &refs) {
                Ok(b) => Outcome::Accepted(contents(&b)),
                Err(e) => Outcome::Rejected(e.class()),
            })
        }
        other => Err(format!("unknown operation {other}")),
    }
}
