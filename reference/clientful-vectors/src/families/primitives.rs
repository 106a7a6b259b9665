//! `primitives`: the labelled operations of spec §5.2 (M(), HashWithLabel,
//! DeriveWithLabel, SignWithLabel, verification under the pinned rule SIG-3),
//! key validity (SIG-2, X25519-1), the AEAD (AEAD-1), the padding buckets and the
//! key-epoch authenticator with its display (KEY-2, KEY-10).

use clientful_core::keys::{PublicKey, SigningKey, X25519Public};
use clientful_core::membership::epoch;
use clientful_core::{ErrorClass, labels, padding, suite};
use rand_core::Rng;
use serde_json::{Value, json};

use super::edge;
use crate::generate::{FileBuilder, Variation, family_rng};
use crate::hexutil::{get_arr, get_hex, get_str, get_u64, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/primitives";

fn random<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
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
    let mut var = Variation::new(seed, SEED);
    let mut f = FileBuilder::new(
        "primitives",
        seed,
        "Labelled inputs, hashes, derivations and signatures of cipher suite 1; the pinned \
         Ed25519 verification rule; Ed25519 and X25519 public-key validity; \
         XChaCha20-Poly1305; padding buckets.",
    );
    f.note(
        "Ktv",
        "BASIC",
        "Known-answer value computed by the reference.",
    );
    f.note(
        "WrongLabel",
        "MALLEABILITY",
        "Signature made under another label: domain separation must reject it.",
    );
    f.note(
        "ModifiedMessage",
        "BASIC",
        "The signed content was changed.",
    );
    f.note(
        "ModifiedSignature",
        "BASIC",
        "A byte of the signature was changed.",
    );
    f.note(
        "SignatureMalleability",
        "MALLEABILITY",
        "S replaced by S + L: same equation, non-canonical scalar (S >= L).",
    );
    f.note("SmallOrderR", "EDGE_CASE", "R is a point of small order.");
    f.note(
        "NonCanonicalR",
        "EDGE_CASE",
        "R is a non-canonical point encoding.",
    );
    f.note(
        "SmallOrderKey",
        "EDGE_CASE",
        "The public key is a point of small order: signatures under it can validate many messages.",
    );
    f.note(
        "NonCanonicalKey",
        "EDGE_CASE",
        "The public key is a non-canonical point encoding (y >= p).",
    );
    f.note(
        "NotOnCurve",
        "EDGE_CASE",
        "The bytes decode to no curve point.",
    );
    f.note("MixedOrderKey", "EDGE_CASE", "Mixed-order key: the signature satisfies the cofactored equation but not the pinned cofactorless one.");
    f.note(
        "WrongLength",
        "BASIC",
        "A key or signature of the wrong length.",
    );
    f.note("ModifiedTag", "BASIC", "The AEAD tag was changed.");
    f.note(
        "ModifiedCiphertext",
        "BASIC",
        "The AEAD ciphertext was changed.",
    );
    f.note("ModifiedAad", "BASIC", "The associated data differs.");
    f.note("Truncated", "BASIC", "Input shorter than required.");
    f.note(
        "LowOrderPublic",
        "EDGE_CASE",
        "X25519 public key of small order (u-coordinate of [8]P is 0).",
    );
    f.note(
        "NonCanonicalPublic",
        "EDGE_CASE",
        "X25519 public key with bit 255 set or u >= p.",
    );

    // M(label, content).
    f.group(
        "labeled-input",
        "The labelled input M(label, content) (LBL-1).",
        json!({}),
    );
    for (name, label, content) in [
        ("empty-content", "sig/envelope", &b""[..]),
        ("short-content", "id/envelope", &b"clientful"[..]),
        ("binary-content", "kdf/doc-key", &[0u8, 1, 2, 255][..]),
    ] {
        let content = &var.bytes(content)[..];
        let m = labels::labeled(label, content).ok_or("label too long")?;
        f.valid(
            name,
            "M(label, content) bytes.",
            &["LBL-1"],
            &["Ktv"],
            json!({"label": label, "content": hex(content)}),
            json!({"bytes": hex(m)}),
        );
    }

    // HashWithLabel.
    f.group(
        "hash-with-label",
        "HashWithLabel(label, content) = SHA-256(M(label, content)) (HASH-1).",
        json!({}),
    );
    for (i, label) in labels::ALL.iter().enumerate() {
        let content: Vec<u8> = var.bytes(&(0..(i * 13) as u8).collect::<Vec<u8>>());
        let h = suite::hash_with_label(label, &content).map_err(|e| e.to_string())?;
        f.valid(
            &format!("label-{}", label.replace('/', "-")),
            "Hash under a registered label.",
            &["HASH-1", "LBL-2"],
            &["Ktv"],
            json!({"label": label, "content": hex(&content)}),
            json!({"hash": hex(h)}),
        );
    }

    // DeriveWithLabel.
    f.group(
        "derive-with-label",
        "DeriveWithLabel(ikm, salt, label, context, length) (KDF-1).",
        json!({}),
    );
    for (name, salt_len, ctx_len, out_len) in [
        ("empty-salt", 0usize, 0usize, 32usize),
        ("salt-32-context-64", 32, 64, 32),
        ("nonce-salt-64-bytes", 24, 0, 64),
        ("one-byte", 32, 5, 1),
    ] {
        let ikm = random::<32>(&mut rng);
        let salt = &random::<32>(&mut rng)[..salt_len];
        let ctx: Vec<u8> = (0..ctx_len).map(|i| i as u8).collect();
        let mut okm = vec![0u8; out_len];
        suite::derive_with_label(&ikm, salt, labels::KDF_DOC_KEY, &ctx, &mut okm)
            .map_err(|e| e.to_string())?;
        f.valid(
            name,
            "HKDF-SHA256 with a labelled info string.",
            &["KDF-1", "LBL-1"],
            &["Ktv"],
            json!({"ikm": hex(ikm), "salt": hex(salt), "label": labels::KDF_DOC_KEY,
                   "context": hex(&ctx), "length": out_len}),
            json!({"okm": hex(&okm)}),
        );
    }

    // The key-epoch authenticator and its display (KEY-2, KEY-10).
    f.group(
        "epoch-authenticator",
        "Epoch id, key-epoch authenticator and the digits people compare (KEY-2, KEY-10).",
        json!({}),
    );
    for name in ["random-1", "random-2", "random-3"] {
        let space_id = random::<32>(&mut rng);
        let secret = random::<32>(&mut rng);
        let digest = random::<32>(&mut rng);
        let key = epoch::epoch_key(&space_id, &secret).map_err(|e| e.to_string())?;
        let auth = epoch::authenticator(&space_id, &key, &digest).map_err(|e| e.to_string())?;
        f.valid(
            name,
            "Derived from the epoch secret, the space id and the membership digest.",
            &["KEY-2", "KEY-10"],
            &["Ktv"],
            json!({"spaceId": hex(space_id), "epochSecret": hex(secret),
                   "membershipDigest": hex(digest)}),
            json!({"epochId": hex(key.id()), "authenticator": hex(auth),
                   "display": epoch::authenticator_display(&auth)}),
        );
    }

    // SignWithLabel.
    f.group(
        "sign-with-label",
        "Deterministic SignWithLabel(seed, label, content) (SIG-1).",
        json!({}),
    );
    for (name, label, content) in [
        (
            "envelope-label",
            labels::SIG_ENVELOPE,
            &b"payload bytes"[..],
        ),
        ("device-cert-label", labels::SIG_DEVICE_CERT, &b""[..]),
        ("device-pop-label", labels::SIG_DEVICE_POP, &[7u8; 100][..]),
    ] {
        let seed = random::<32>(&mut rng);
        let sk = SigningKey::from_seed(&seed);
        let sig = sk
            .sign_with_label(label, content)
            .map_err(|e| e.to_string())?;
        f.valid(
            name,
            "RFC 8032 signature over M(label, content).",
            &["SIG-1", "LBL-1"],
            &["Ktv"],
            json!({"seed": hex(seed), "label": label, "content": hex(content)}),
            json!({"publicKey": hex(sk.public_bytes()), "signature": hex(sig)}),
        );
    }

    // Verification under the pinned rule.
    f.group(
        "verify-with-label",
        "Verification under the pinned Ed25519 rule (SIG-2, SIG-3).",
        json!({}),
    );
    let sk = SigningKey::from_seed(&random::<32>(&mut rng));
    let pk = sk.public_bytes();
    let label = labels::SIG_ENVELOPE;
    let content = b"the bytes you ship".to_vec();
    let sig = sk
        .sign_with_label(label, &content)
        .map_err(|e| e.to_string())?;
    let case = |pk: &[u8], label: &str, content: &[u8], sig: &[u8]| json!({"publicKey": hex(pk), "label": label, "content": hex(content), "signature": hex(sig)});
    f.valid(
        "valid",
        "A correct signature.",
        &["SIG-3"],
        &["Ktv"],
        case(&pk, label, &content, &sig),
        json!({}),
    );
    let wrong = sk
        .sign_with_label(labels::SIG_DEVICE_CERT, &content)
        .map_err(|e| e.to_string())?;
    f.invalid(
        "wrong-label",
        "Signed under sig/device-cert, verified under sig/envelope.",
        &["SIG-3", "LBL-1"],
        ErrorClass::BadSignature,
        &["WrongLabel"],
        case(&pk, label, &content, &wrong),
    );
    let mut changed = content.clone();
    changed[0] ^= 1;
    f.invalid(
        "modified-message",
        "One bit of the content flipped.",
        &["SIG-3"],
        ErrorClass::BadSignature,
        &["ModifiedMessage"],
        case(&pk, label, &changed, &sig),
    );
    for (name, at) in [("modified-r", 5usize), ("modified-s", 40usize)] {
        let mut s = sig;
        s[at] ^= 0x10;
        f.invalid(
            name,
            "One byte of the signature changed.",
            &["SIG-3"],
            ErrorClass::BadSignature,
            &["ModifiedSignature"],
            case(&pk, label, &content, &s),
        );
    }
    let mut s_plus_l = sig;
    s_plus_l[32..].copy_from_slice(&edge::add_order(&sig[32..]));
    f.invalid(
        "s-plus-order",
        "S + L: satisfies the equation but S >= L.",
        &["SIG-3"],
        ErrorClass::BadSignature,
        &["SignatureMalleability"],
        case(&pk, label, &content, &s_plus_l),
    );
    let mut small_r = sig;
    small_r[..32].copy_from_slice(&edge::order8_point());
    f.invalid(
        "small-order-r",
        "R of order 8 (replacing R also breaks the equation; `small-order-r-equation-holds` \
         isolates the small-order check).",
        &["SIG-3"],
        ErrorClass::BadSignature,
        &["SmallOrderR"],
        case(&pk, label, &content, &small_r),
    );
    let (so_pk, so_sig) = edge::small_order_r_equation_holds(label, &content);
    f.invalid(
        "small-order-r-equation-holds",
        "R is the identity (small order) and S = k·a, so S < L and the cofactorless equation \
         [S]B = R + [k]A holds: only SIG-3 step 3.2 (R not of small order) fails. (No R of \
         order 2, 4 or 8 can satisfy the equation with a prime-order key.)",
        &["SIG-3"],
        ErrorClass::BadSignature,
        &["SmallOrderR"],
        case(&so_pk, label, &content, &so_sig),
    );
    let mut nc_r = sig;
    nc_r[..32].copy_from_slice(&edge::non_canonical_identity());
    f.invalid(
        "non-canonical-r",
        "R encoded with y >= p.",
        &["SIG-3"],
        ErrorClass::BadSignature,
        &["NonCanonicalR", "SmallOrderR"],
        case(&pk, label, &content, &nc_r),
    );
    let forged = edge::forgery_under_identity(3);
    f.invalid(
        "small-order-key-forgery",
        "Identity public key with (R=[r]B, S=r): cofactorless-valid for any message.",
        &["SIG-2", "SIG-3"],
        ErrorClass::InvalidKey,
        &["SmallOrderKey"],
        case(&edge::identity_point(), label, &content, &forged),
    );
    f.invalid(
        "order-8-key",
        "Public key of order 8.",
        &["SIG-2"],
        ErrorClass::InvalidKey,
        &["SmallOrderKey"],
        case(&edge::order8_point(), label, &content, &sig),
    );
    f.invalid(
        "non-canonical-key",
        "Public key y = p + 1 (non-canonical identity).",
        &["SIG-2"],
        ErrorClass::InvalidKey,
        &["NonCanonicalKey", "SmallOrderKey"],
        case(&edge::non_canonical_identity(), label, &content, &forged),
    );
    f.invalid(
        "key-not-on-curve",
        "Public key bytes that decode to no point.",
        &["SIG-2"],
        ErrorClass::InvalidKey,
        &["NotOnCurve"],
        case(&edge::not_on_curve(), label, &content, &sig),
    );
    let (mixed_pk, mixed_sig) = edge::mixed_order_signature(label, &content);
    f.invalid(
        "mixed-order-key-cofactored-only",
        "Valid under the cofactored equation only.",
        &["SIG-3"],
        ErrorClass::BadSignature,
        &["MixedOrderKey"],
        case(&mixed_pk, label, &content, &mixed_sig),
    );
    f.invalid(
        "signature-63-bytes",
        "Signature one byte short.",
        &["SIG-3"],
        ErrorClass::Malformed,
        &["WrongLength"],
        case(&pk, label, &content, &sig[..63]),
    );
    f.invalid(
        "key-31-bytes",
        "Public key one byte short.",
        &["SIG-2"],
        ErrorClass::Malformed,
        &["WrongLength"],
        case(&pk[..31], label, &content, &sig),
    );

    // X25519 public keys.
    f.group(
        "x25519-public-key",
        "X25519 public-key validity (X25519-1).",
        json!({}),
    );
    let mut nine = [0u8; 32];
    nine[0] = 9;
    let good = clientful_core::keys::X25519Secret::from_bytes(&random::<32>(&mut rng)).public();
    f.valid(
        "base-point",
        "u = 9.",
        &["X25519-1"],
        &["Ktv"],
        json!({"publicKey": hex(nine)}),
        json!({}),
    );
    f.valid(
        "random-key",
        "A freshly generated key.",
        &["X25519-1"],
        &["Ktv"],
        json!({"publicKey": hex(good.as_bytes())}),
        json!({}),
    );
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut p_minus_1 = edge::FIELD_P;
    p_minus_1[0] = 0xec;
    let mut p_plus_1 = edge::FIELD_P;
    p_plus_1[0] = 0xee;
    let mut high_bit = nine;
    high_bit[31] |= 0x80;
    for (name, key, flag, desc) in [
        ("zero", [0u8; 32], "LowOrderPublic", "u = 0."),
        ("one", one, "LowOrderPublic", "u = 1."),
        ("p-minus-one", p_minus_1, "LowOrderPublic", "u = p - 1."),
        (
            "p",
            edge::FIELD_P,
            "NonCanonicalPublic",
            "u = p (non-canonical 0).",
        ),
        (
            "p-plus-one",
            p_plus_1,
            "NonCanonicalPublic",
            "u = p + 1 (non-canonical 1).",
        ),
        (
            "high-bit-set",
            high_bit,
            "NonCanonicalPublic",
            "Bit 255 set on u = 9.",
        ),
    ] {
        f.invalid(
            name,
            desc,
            &["X25519-1"],
            ErrorClass::InvalidKey,
            &[flag],
            json!({"publicKey": hex(key)}),
        );
    }
    f.invalid(
        "length-33",
        "33 bytes.",
        &["X25519-1"],
        ErrorClass::Malformed,
        &["WrongLength"],
        json!({"publicKey": hex([9u8; 33])}),
    );

    // AEAD.
    f.group(
        "aead-open",
        "XChaCha20-Poly1305 (AEAD-1): ciphertext includes the 16-byte tag.",
        json!({}),
    );
    let key = random::<32>(&mut rng);
    let nonce = random::<24>(&mut rng);
    let aad = b"clientful aad".to_vec();
    for (name, len) in [
        ("empty-plaintext", 0usize),
        ("short", 13),
        ("multi-block", 200),
    ] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let ct = suite::aead_seal(&key, &nonce, &aad, &pt).map_err(|e| e.to_string())?;
        f.valid(
            name,
            "Decrypts to the plaintext.",
            &["AEAD-1"],
            &["Ktv"],
            json!({"key": hex(key), "nonce": hex(nonce), "aad": hex(&aad), "ciphertext": hex(&ct)}),
            json!({"plaintext": hex(&pt)}),
        );
    }
    let pt = b"attack at dawn".to_vec();
    let ct = suite::aead_seal(&key, &nonce, &aad, &pt).map_err(|e| e.to_string())?;
    let aead_case = |aad: &[u8], ct: &[u8]| json!({"key": hex(key), "nonce": hex(nonce), "aad": hex(aad), "ciphertext": hex(ct)});
    let mut bad_tag = ct.clone();
    let last = bad_tag.len() - 1;
    bad_tag[last] ^= 1;
    f.invalid(
        "modified-tag",
        "Last tag byte flipped.",
        &["AEAD-1"],
        ErrorClass::DecryptFailed,
        &["ModifiedTag"],
        aead_case(&aad, &bad_tag),
    );
    let mut bad_ct = ct.clone();
    bad_ct[0] ^= 1;
    f.invalid(
        "modified-ciphertext",
        "First ciphertext byte flipped.",
        &["AEAD-1"],
        ErrorClass::DecryptFailed,
        &["ModifiedCiphertext"],
        aead_case(&aad, &bad_ct),
    );
    f.invalid(
        "modified-aad",
        "Associated data differs.",
        &["AEAD-1"],
        ErrorClass::DecryptFailed,
        &["ModifiedAad"],
        aead_case(b"clientful aae", &ct),
    );
    f.invalid(
        "truncated",
        "Shorter than a tag.",
        &["AEAD-1"],
        ErrorClass::DecryptFailed,
        &["Truncated"],
        aead_case(&aad, &ct[..15]),
    );

    // Padding.
    f.group(
        "padding-bucket",
        "Recommended padded plaintext length for a content length (ENV-18).",
        json!({}),
    );
    for len in [0usize, 60, 61, 100, 1000, 65_536, 1_000_000] {
        f.valid(
            &format!("content-{len}"),
            "max(64, Padme(4 + len)).",
            &["ENV-18"],
            &["Ktv"],
            json!({"contentLength": len}),
            json!({"paddedLength": padding::bucket(len)}),
        );
    }
    Ok(f.finish())
}

fn reject(e: clientful_core::Error) -> Outcome {
    Outcome::Rejected(e.class())
}

/// Runs one case.
pub fn run(operation: &str, _params: &Value, input: &Value) -> Result<Outcome, String> {
    Ok(match operation {
        "labeled-input" => {
            let m = labels::labeled(get_str(input, "label")?, &get_hex(input, "content")?)
                .ok_or("label too long")?;
            Outcome::Accepted(json!({"bytes": hex(m)}))
        }
        "hash-with-label" => {
            match suite::hash_with_label(get_str(input, "label")?, &get_hex(input, "content")?) {
                Ok(h) => Outcome::Accepted(json!({"hash": hex(h)})),
                Err(e) => reject(e),
            }
        }
        "epoch-authenticator" => {
            let space_id = get_arr::<32>(input, "spaceId")?;
            let key = epoch::epoch_key(&space_id, &get_arr::<32>(input, "epochSecret")?)
                .map_err(|e| e.to_string())?;
            let digest = get_arr::<32>(input, "membershipDigest")?;
            match epoch::authenticator(&space_id, &key, &digest) {
                Ok(a) => Outcome::Accepted(json!({"epochId": hex(key.id()),
                    "authenticator": hex(a), "display": epoch::authenticator_display(&a)})),
                Err(e) => reject(e),
            }
        }
        "derive-with-label" => {
            let len = usize::try_from(get_u64(input, "length")?).map_err(|e| e.to_string())?;
            if len > suite::MAX_DERIVE_LEN {
                return Err("length out of range".into());
            }
            let mut okm = vec![0u8; len];
            match suite::derive_with_label(
                &get_hex(input, "ikm")?,
                &get_hex(input, "salt")?,
                get_str(input, "label")?,
                &get_hex(input, "context")?,
                &mut okm,
            ) {
                Ok(()) => Outcome::Accepted(json!({"okm": hex(&okm)})),
                Err(e) => reject(e),
            }
        }
        "sign-with-label" => {
            let sk = SigningKey::from_seed(&get_arr::<32>(input, "seed")?);
            match sk.sign_with_label(get_str(input, "label")?, &get_hex(input, "content")?) {
                Ok(sig) => Outcome::Accepted(
                    json!({"publicKey": hex(sk.public_bytes()), "signature": hex(sig)}),
                ),
                Err(e) => reject(e),
            }
        }
        "verify-with-label" => {
            let (label, content) = (get_str(input, "label")?, get_hex(input, "content")?);
            let signature = get_hex(input, "signature")?;
            let result = PublicKey::from_bytes(&get_hex(input, "publicKey")?)
                .and_then(|pk| pk.verify_with_label(label, &content, &signature, "vector"));
            match result {
                Ok(()) => Outcome::Accepted(json!({})),
                Err(e) => reject(e),
            }
        }
        "x25519-public-key" => match X25519Public::from_bytes(&get_hex(input, "publicKey")?) {
            Ok(_) => Outcome::Accepted(json!({})),
            Err(e) => reject(e),
        },
        "aead-open" => {
            let ct = get_hex(input, "ciphertext")?;
            match suite::aead_open(
                &get_arr::<32>(input, "key")?,
                &get_arr::<24>(input, "nonce")?,
                &get_hex(input, "aad")?,
                &ct,
            ) {
                Ok(pt) => Outcome::Accepted(json!({"plaintext": hex(pt)})),
                Err(e) => reject(e),
            }
        }
        "padding-bucket" => {
            let len =
                usize::try_from(get_u64(input, "contentLength")?).map_err(|e| e.to_string())?;
            Outcome::Accepted(json!({"paddedLength": padding::bucket(len)}))
        }
        other => return Err(format!("unknown operation {other}")),
    })
}
