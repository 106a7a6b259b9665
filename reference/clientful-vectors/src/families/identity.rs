//! `identity`: device certificates and user-to-device chains (spec §5.4):
//! issuance, proof of possession, certification, key validity and the check order
//! ID-V1..ID-V7; and user-key continuity statements (spec §5.7, ROT-V1..ROT-V5).

use clientful_core::identity::{self, DeviceKeys, sign_binding};
use clientful_core::keys::{SigningKey, X25519Secret};
use clientful_core::{ErrorClass, labels, wire};
use clientful_proto::v1 as pb;
use serde_json::{Value, json};

use super::edge;
use crate::generate::{FileBuilder, family_rng};
use crate::hexutil::{get_arr, get_bytes_input, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/identity";

fn binding(user: &[u8], device: &[u8], x: &[u8]) -> pb::DeviceBinding {
    pb::DeviceBinding {
        version: 1,
        user_key: user.to_vec(),
        device_key: device.to_vec(),
        device_x25519: x.to_vec(),
    }
}

fn device_json(v: &identity::VerifiedDevice) -> Value {
    json!({
        "deviceId": hex(v.device_id),
        "userKey": hex(v.user_key.as_bytes()),
        "deviceKey": hex(v.device_key.as_bytes()),
        "deviceX25519": hex(v.device_x25519.as_bytes()),
    })
}

fn expected(cert: &[u8]) -> Result<Value, String> {
    let v = identity::verify_certificate(cert, None).map_err(|e| e.to_string())?;
    Ok(device_json(&v))
}

fn input(cert: &[u8]) -> Value {
    json!({"certificate": hex(cert)})
}

fn err(e: clientful_core::Error) -> String {
    e.to_string()
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
// The generator indexes and slices values it built itself; it reads no outside input.
#[allow(clippy::indexing_slicing)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut rng = family_rng(seed);
    let mut f = FileBuilder::new(
        "identity",
        seed,
        "Device certificates: a user identity key certifies each device's Ed25519 key and its \
         one X25519 key; the device proves possession of its key.",
    );
    f.note("Ktv", "BASIC", "A correct certificate.");
    f.note(
        "MissingProofOfPossession",
        "AUTH_BYPASS",
        "The device signature is not by the device key.",
    );
    f.note(
        "ForgedCertification",
        "AUTH_BYPASS",
        "The user signature is not by the named user key.",
    );
    f.note(
        "WrongLabel",
        "MALLEABILITY",
        "A signature made under the other certificate label.",
    );
    f.note(
        "SmallOrderKey",
        "EDGE_CASE",
        "An Ed25519 key of small order.",
    );
    f.note(
        "NonCanonicalKey",
        "EDGE_CASE",
        "A non-canonical Ed25519 key encoding.",
    );
    f.note(
        "LowOrderPublic",
        "EDGE_CASE",
        "An X25519 key of small order.",
    );
    f.note(
        "NonCanonicalPublic",
        "EDGE_CASE",
        "An X25519 key with bit 255 set.",
    );
    f.note(
        "KeyReuse",
        "EDGE_CASE",
        "The device key equals the user key.",
    );
    f.note(
        "UnknownField",
        "NON_CANONICAL",
        "A field the schema does not define, correctly signed.",
    );
    f.note(
        "WrongVersion",
        "DEFINED",
        "A certificate version other than 1.",
    );
    f.note(
        "WrongLength",
        "BASIC",
        "A key or signature of the wrong length.",
    );
    f.note("MissingField", "BASIC", "A required field is absent.");
    f.note("Truncated", "BASIC", "The encoding is cut short.");
    f.note(
        "Oversize",
        "RESOURCE",
        "Larger than the certificate size limit.",
    );
    f.note(
        "WrongUser",
        "AUTH_BYPASS",
        "A valid certificate of another user than the one expected.",
    );

    let user = SigningKey::generate(&mut rng);
    let user_pk = user.public_bytes();
    let devices: Vec<DeviceKeys> = (0..3).map(|_| DeviceKeys::generate(&mut rng)).collect();
    let other_user = SigningKey::generate(&mut rng);
    let other_device = DeviceKeys::generate(&mut rng);

    // A chain: one user, three devices, verified against the expected user.
    f.group(
        "verify-chain",
        "Certificates of one user's devices, each verified against the expected user key (ID-V4).",
        json!({"expectedUser": hex(user_pk)}),
    );
    for (i, d) in devices.iter().enumerate() {
        let cert = identity::issue_certificate(&user, d).map_err(err)?;
        f.valid(
            &format!("device-{}", i + 1),
            "A device of the expected user.",
            &["ID-3", "ID-5", "ID-V4", "ID-V6", "ID-V7"],
            &["Ktv"],
            input(&cert),
            expected(&cert)?,
        );
    }
    let foreign = identity::issue_certificate(&other_user, &other_device).map_err(err)?;
    f.invalid(
        "device-of-another-user",
        "A valid certificate of a different user.",
        &["ID-V4"],
        ErrorClass::WrongContext,
        &["WrongUser"],
        input(&foreign),
    );

    f.group(
        "verify-certificate",
        "A certificate verified on its own (no expected user).",
        json!({}),
    );
    let d = &devices[0];
    let dk = d.signing.public_bytes();
    let dx = *d.x25519.public().as_bytes();
    let good = identity::issue_certificate(&user, d).map_err(err)?;
    f.valid(
        "valid",
        "A correct certificate.",
        &["ID-2", "ID-3", "ID-5", "ID-V6"],
        &["Ktv"],
        input(&good),
        expected(&good)?,
    );

    let b = wire::encode(&binding(&user_pk, &dk, &dx));
    // Device signature by another key.
    let no_pop = sign_binding(&user, &other_device.signing, b.clone()).map_err(err)?;
    f.invalid(
        "pop-by-other-key",
        "The device signature is made by another key.",
        &["ID-3", "ID-V6"],
        ErrorClass::BadSignature,
        &["MissingProofOfPossession"],
        input(&no_pop),
    );
    let forged = sign_binding(&other_user, &d.signing, b.clone()).map_err(err)?;
    f.invalid(
        "certification-by-other-user",
        "The user signature is made by another user.",
        &["ID-3", "ID-V6"],
        ErrorClass::BadSignature,
        &["ForgedCertification"],
        input(&forged),
    );
    // Labels swapped.
    let swapped = wire::encode(&pb::DeviceCertificate {
        binding: b.clone(),
        device_signature: d
            .signing
            .sign_with_label(labels::SIG_DEVICE_CERT, &b)
            .map_err(err)?
            .to_vec(),
        user_signature: user
            .sign_with_label(labels::SIG_DEVICE_CERT, &b)
            .map_err(err)?
            .to_vec(),
    });
    f.invalid(
        "pop-under-cert-label",
        "The device signed under sig/device-cert instead of sig/device-pop.",
        &["ID-3", "LBL-1"],
        ErrorClass::BadSignature,
        &["WrongLabel"],
        input(&swapped),
    );

    // Bad keys, correctly signed where a signature is possible.
    let small = edge::order8_point();
    let cert_small_device = sign_binding(
        &user,
        &d.signing,
        wire::encode(&binding(&user_pk, &small, &dx)),
    )
    .map_err(err)?;
    f.invalid(
        "device-key-small-order",
        "Device key of order 8.",
        &["SIG-2", "ID-V5"],
        ErrorClass::InvalidKey,
        &["SmallOrderKey"],
        input(&cert_small_device),
    );
    let nc = edge::non_canonical_identity();
    let cert_nc_user =
        sign_binding(&user, &d.signing, wire::encode(&binding(&nc, &dk, &dx))).map_err(err)?;
    f.invalid(
        "user-key-non-canonical",
        "User key encoded with y >= p.",
        &["SIG-2", "ID-V5"],
        ErrorClass::InvalidKey,
        &["NonCanonicalKey", "SmallOrderKey"],
        input(&cert_nc_user),
    );
    let cert_zero_x = sign_binding(
        &user,
        &d.signing,
        wire::encode(&binding(&user_pk, &dk, &[0u8; 32])),
    )
    .map_err(err)?;
    f.invalid(
        "x25519-zero",
        "X25519 key u = 0.",
        &["X25519-1", "ID-V5"],
        ErrorClass::InvalidKey,
        &["LowOrderPublic"],
        input(&cert_zero_x),
    );
    let mut high = dx;
    high[31] |= 0x80;
    let cert_high_x = sign_binding(
        &user,
        &d.signing,
        wire::encode(&binding(&user_pk, &dk, &high)),
    )
    .map_err(err)?;
    f.invalid(
        "x25519-high-bit",
        "X25519 key with bit 255 set.",
        &["X25519-1", "ID-V5"],
        ErrorClass::InvalidKey,
        &["NonCanonicalPublic"],
        input(&cert_high_x),
    );
    let same = sign_binding(
        &user,
        &user,
        wire::encode(&binding(&user_pk, &user_pk, &dx)),
    )
    .map_err(err)?;
    f.invalid(
        "device-key-equals-user-key",
        "The user key certifies itself as a device.",
        &["ID-6", "ID-V5"],
        ErrorClass::InvalidKey,
        &["KeyReuse"],
        input(&same),
    );

    // Encoding problems.
    let mut unknown_binding = b.clone();
    unknown_binding.extend_from_slice(&[0x2a, 0x01, 0x00]); // field 5, bytes
    let cert_unknown = sign_binding(&user, &d.signing, unknown_binding).map_err(err)?;
    f.invalid(
        "binding-unknown-field",
        "Binding with an extra field 5, correctly signed.",
        &["ENV-2", "CAN-4", "ID-V3"],
        ErrorClass::NonCanonical,
        &["UnknownField"],
        input(&cert_unknown),
    );
    let mut outer_unknown = good.clone();
    outer_unknown.extend_from_slice(&[0x20, 0x01]); // field 4, varint
    f.invalid(
        "certificate-unknown-field",
        "Certificate with an extra field 4.",
        &["CAN-4", "ID-V2"],
        ErrorClass::NonCanonical,
        &["UnknownField"],
        input(&outer_unknown),
    );
    let mut v2 = binding(&user_pk, &dk, &dx);
    v2.version = 2;
    let cert_v2 = sign_binding(&user, &d.signing, wire::encode(&v2)).map_err(err)?;
    f.invalid(
        "version-2",
        "Certificate version 2.",
        &["ID-2", "ID-V3"],
        ErrorClass::UnsupportedVersion,
        &["WrongVersion"],
        input(&cert_v2),
    );
    let cert_short_key = sign_binding(
        &user,
        &d.signing,
        wire::encode(&binding(&user_pk, &dk[..31], &dx)),
    )
    .map_err(err)?;
    f.invalid(
        "device-key-31-bytes",
        "Device key one byte short.",
        &["ID-V3"],
        ErrorClass::Malformed,
        &["WrongLength"],
        input(&cert_short_key),
    );
    let mut parsed: pb::DeviceCertificate =
        wire::decode(&good, &wire::DEVICE_CERTIFICATE).map_err(err)?;
    parsed.user_signature.clear();
    f.invalid(
        "missing-user-signature",
        "No user signature.",
        &["ID-V2"],
        ErrorClass::Malformed,
        &["MissingField"],
        input(&wire::encode(&parsed)),
    );
    f.invalid(
        "truncated",
        "Last byte removed.",
        &["ID-V2", "CAN-8"],
        ErrorClass::Malformed,
        &["Truncated"],
        input(&good[..good.len() - 1]),
    );
    f.invalid(
        "empty",
        "Zero bytes: every field absent.",
        &["ID-V2"],
        ErrorClass::Malformed,
        &["MissingField"],
        input(&[]),
    );
    f.invalid(
        "oversize",
        "1025 bytes.",
        &["ID-LIM-1", "ID-V1"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        json!({"certificate": {"prefix": hex(&good), "fill": "00", "length": 1025}}),
    );
    // An X25519 key not bound by the device: the device signs a binding naming
    // another device's X25519 key. Valid (the certificate vouches for it) but the
    // misbinding gains nothing: sealing binds the device id (ID-4).
    let foreign_x = *X25519Secret::from_bytes(&[0x5a; 32]).public().as_bytes();
    let misbound = sign_binding(
        &user,
        &d.signing,
        wire::encode(&binding(&user_pk, &dk, &foreign_x)),
    )
    .map_err(err)?;
    f.valid(
        "copied-x25519-key",
        "A device may name any valid X25519 key; the device id differs.",
        &["ID-4", "ID-5"],
        &["Ktv"],
        input(&misbound),
        expected(&misbound)?,
    );
    continuity_cases(&mut f)?;
    Ok(f.finish())
}

/// User-key continuity statements (spec §5.7, ROT-V1..ROT-V5), with fixed keys
/// (no draw from the family's stream, so the cases above keep their bytes).
fn continuity_cases(f: &mut FileBuilder) -> Result<(), String> {
    use clientful_core::continuity::{sign_continuity, sign_statement, statement};
    let old = SigningKey::from_seed(&[0x31; 32]);
    let new = SigningKey::from_seed(&[0x32; 32]);
    let thief = SigningKey::from_seed(&[0x33; 32]);
    let (o, n) = (old.public_bytes(), new.public_bytes());
    let cont = |c: &[u8]| json!({"continuity": hex(c)});
    f.note(
        "ForgedContinuity",
        "AUTH_BYPASS",
        "A continuity statement not signed by the old key, or not accepted by the new one.",
    );
    f.group(
        "verify-continuity",
        "A signed user-key continuity statement (SignedContinuity) verified on its own: the old \
         and new user keys out, or the class of the first failing check of ROT-4.",
        json!({}),
    );
    let good = sign_continuity(&old, &new).map_err(err)?;
    f.valid(
        "valid",
        "The old key names the new one; the new key accepts.",
        &["ROT-1", "ROT-2", "ROT-4"],
        &["Ktv"],
        cont(&good),
        json!({"oldUserKey": hex(o), "newUserKey": hex(n)}),
    );
    /// Name, description, requirements, class, flag, the statement's bytes.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        ErrorClass,
        &'a str,
        Vec<u8>,
    );
    let cases: Vec<Case> = vec![
        (
            "old-signature-by-other-key",
            "The statement names the old key but another key signs it (a thief without the old key).",
            &["ROT-V5"],
            ErrorClass::BadSignature,
            "ForgedContinuity",
            sign_statement(&thief, &new, statement(&o, &n)).map_err(err)?,
        ),
        (
            "new-signature-by-other-key",
            "The new key's acceptance is signed by another key.",
            &["ROT-V5"],
            ErrorClass::BadSignature,
            "ForgedContinuity",
            sign_statement(&old, &thief, statement(&o, &n)).map_err(err)?,
        ),
        (
            "same-key",
            "The new key is the old key.",
            &["ROT-V4"],
            ErrorClass::InvalidKey,
            "ForgedContinuity",
            sign_statement(&old, &old, statement(&o, &o)).map_err(err)?,
        ),
        (
            "version-2",
            "A statement with version 2.",
            &["ROT-V3"],
            ErrorClass::UnsupportedVersion,
            "ForgedContinuity",
            sign_statement(
                &old,
                &new,
                wire::encode(&pb::UserKeyContinuity {
                    version: 2,
                    old_user_key: o.to_vec(),
                    new_user_key: n.to_vec(),
                }),
            )
            .map_err(err)?,
        ),
        (
            "short-new-key",
            "A 31-byte new key.",
            &["ROT-V3"],
            ErrorClass::Malformed,
            "ForgedContinuity",
            sign_statement(
                &old,
                &new,
                wire::encode(&pb::UserKeyContinuity {
                    version: 1,
                    old_user_key: o.to_vec(),
                    new_user_key: n[..31].to_vec(),
                }),
            )
            .map_err(err)?,
        ),
        (
            "truncated",
            "Last byte removed.",
            &["ROT-V2"],
            ErrorClass::Malformed,
            "Truncated",
            good.split_last()
                .map(|(_, rest)| rest.to_vec())
                .unwrap_or_default(),
        ),
    ];
    for (name, desc, refs, class, flag, bytes) in cases {
        f.invalid(name, desc, refs, class, &[flag], cont(&bytes));
    }
    f.invalid(
        "oversize",
        "513 bytes.",
        &["ROT-LIM-1", "ROT-V1"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        json!({"continuity": {"prefix": hex(&good), "fill": "00", "length": 513}}),
    );
    Ok(())
}

/// Runs one case.
pub fn run(operation: &str, params: &Value, input: &Value) -> Result<Outcome, String> {
    if operation == "verify-continuity" {
        let bytes = get_bytes_input(input, "continuity")?;
        return Ok(
            match clientful_core::continuity::verify_continuity(&bytes) {
                Ok(c) => Outcome::Accepted(json!({
                    "oldUserKey": hex(c.old_user_key),
                    "newUserKey": hex(c.new_user_key),
                })),
                Err(e) => Outcome::Rejected(e.class()),
            },
        );
    }
    let expected_user = match operation {
        "verify-chain" => Some(get_arr::<32>(params, "expectedUser")?),
        "verify-certificate" => None,
        other => return Err(format!("unknown operation {other}")),
    };
    let cert = get_bytes_input(input, "certificate")?;
    Ok(
        match identity::verify_certificate(&cert, expected_user.as_ref()) {
            Ok(v) => Outcome::Accepted(device_json(&v)),
            Err(e) => Outcome::Rejected(e.class()),
        },
    )
}
