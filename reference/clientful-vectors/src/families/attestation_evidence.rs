//! Cases of the `attestation` family for the SIWE (kind 3) and WebAuthn (kind 4)
//! evidence verifiers (spec §14.10, §14.11): groups `siwe-verify` and
//! `webauthn-verify`, each group with one verifier policy in its `params`.
//!
//! The `attestation` family's `generate_seeded` (the attestation frame)
//! calls [`add_notes`] and [`add_cases`] with its builder and its rng, and its
//! `run` hands the operations `siwe-verify` and `webauthn-verify` to [`run`].
//! Deterministic: every key and salt comes from the family rng, signatures are
//! RFC 6979 (ECDSA) or Ed25519.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful_attest::siwe::{self, SiwePolicy};
use clientful_attest::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy, cose::CoseKey};
use clientful_core::ErrorClass;
use p256::ecdsa::signature::Signer;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::generate::FileBuilder;
use crate::hexutil::{get_arr, get_hex, get_u64, hex};
use crate::verify::Outcome;

/// Operation of the SIWE cases.
pub const OP_SIWE: &str = "siwe-verify";
/// Operation of the WebAuthn cases.
pub const OP_WEBAUTHN: &str = "webauthn-verify";

const T: i64 = 1_796_000_000_000;
const DOMAIN: &str = "app.example.com";
const ORIGIN: &str = "https://app.example.com";
const RP: &str = "app.example.com";

/// Documents the flags the cases use (those the frame does not already define).
pub fn add_notes(f: &mut FileBuilder) {
    f.note("Ktv", "BASIC", "A correct attestation.");
    f.note(
        "WrongContext",
        "AUTH_BYPASS",
        "Evidence made for another domain, chain, origin, relying party, challenge or user key.",
    );
    f.note(
        "Forgery",
        "SIGNATURE_FORGERY",
        "A signature by another key, or over other bytes.",
    );
    f.note(
        "SignatureMalleability",
        "SIGNATURE_MALLEABILITY",
        "A second form of a valid signature (high s, EIP-2).",
    );
    f.note(
        "Expired",
        "DEFINED",
        "Outside the message's validity window at the attestation's time.",
    );
    f.note("Malformed", "BASIC", "Not a well-formed encoding.");
    f.note("Oversize", "RESOURCE", "Over a size limit.");
    f.note(
        "UnknownAlgorithm",
        "DEFINED",
        "A COSE algorithm other than ES256 and EdDSA.",
    );
    f.note(
        "InvalidKey",
        "DEFINED",
        "A credential key that is not a curve point.",
    );
    f.note(
        "MissingFlag",
        "DEFINED",
        "The authenticator did not report user presence (or verification, when required).",
    );
    f.note(
        "RealWorld",
        "BASIC",
        "Evidence made by real software (Chromium's WebAuthn virtual authenticator).",
    );
}

fn bytes<const N: usize>(rng: &mut ChaCha20Rng) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

fn k256_key(rng: &mut ChaCha20Rng) -> Result<k256::ecdsa::SigningKey, String> {
    k256::ecdsa::SigningKey::from_slice(&bytes::<32>(rng)).map_err(|e| e.to_string())
}

fn p256_key(rng: &mut ChaCha20Rng) -> Result<p256::ecdsa::SigningKey, String> {
    p256::ecdsa::SigningKey::from_slice(&bytes::<32>(rng)).map_err(|e| e.to_string())
}

fn siwe_input(evidence: &[u8], user: &[u8; 32], salt: &[u8; 16], t: i64) -> Value {
    json!({"evidence": hex(evidence), "userKey": hex(user), "salt": hex(salt), "createdAtMs": t})
}

fn webauthn_input(evidence: &[u8], user: &[u8; 32], salt: &[u8; 16]) -> Value {
    json!({"evidence": hex(evidence), "userKey": hex(user), "salt": hex(salt)})
}

/// An ES256 assertion with the given `clientDataJSON` text and flags.
fn es256_assertion(
    key: &p256::ecdsa::SigningKey,
    rp_id: &str,
    credential_id: &[u8],
    client_data_json: String,
    flags: u8,
) -> WebAuthnEvidence {
    let mut authenticator_data = Sha256::digest(rp_id.as_bytes()).to_vec();
    authenticator_data.push(flags);
    authenticator_data.extend_from_slice(&7u32.to_be_bytes());
    let client_data_json = client_data_json.into_bytes();
    let sig: p256::ecdsa::Signature = key.sign(&webauthn::signed_bytes(
        &authenticator_data,
        &client_data_json,
    ));
    WebAuthnEvidence {
        rp_id: rp_id.to_owned(),
        credential_id: credential_id.to_vec(),
        cose_key: CoseKey::encode_es256(key.verifying_key()),
        authenticator_data,
        client_data_json,
        signature: sig.to_der().as_bytes().to_vec(),
    }
}

fn client_data(kind: &str, challenge: &[u8], origin: &str, cross_origin: bool) -> String {
    format!(
        r#"{{"type":"{kind}","challenge":"{}","origin":"{origin}","crossOrigin":{cross_origin}}}"#,
        URL_SAFE_NO_PAD.encode(challenge)
    )
}

/// Adds the groups `siwe-verify` and `webauthn-verify` and their cases.
pub fn add_cases(f: &mut FileBuilder, rng: &mut ChaCha20Rng) -> Result<(), String> {
    siwe_cases(f, rng)?;
    webauthn_cases(f, rng)?;
    chromium_cases(f)
}

fn siwe_cases(f: &mut FileBuilder, rng: &mut ChaCha20Rng) -> Result<(), String> {
    f.group(
        OP_SIWE,
        "Verify SIWE evidence (EIP-4361 message || 65-byte EIP-191 signature) for the user key \
         and salt at createdAtMs; the output is the subject eip155:<chain>:<address>.",
        json!({"domains": [DOMAIN], "chainIds": [1, 10]}),
    );
    let user = bytes::<32>(rng);
    let salt = bytes::<16>(rng);
    let key = k256_key(rng)?;
    let other = k256_key(rng)?;
    let addr = siwe::address_of(key.verifying_key());
    let base = siwe::message_for(
        DOMAIN,
        &addr,
        "https://app.example.com/attest",
        1,
        &user,
        &salt,
        T - 5_000,
    );
    let sign = |m: &siwe::SiweMessage| {
        let text = m.render();
        siwe::evidence(text.as_bytes(), &siwe::sign(&key, text.as_bytes()))
    };
    let subject = |chain: u64| json!({"subject": format!("eip155:{chain}:{}", base.address)});
    let refs = &["ATT-30", "ATT-31", "ATT-32"];

    f.valid(
        "basic",
        "A message with the nonce and user-key resource, signed by its address.",
        refs,
        &["Ktv"],
        siwe_input(&sign(&base), &user, &salt, T),
        subject(1),
    );
    let mut m = base.clone();
    m.statement = Some("Link my Clientful user key to this account.".into());
    m.expiration_time = Some(siwe::time::format_rfc3339(T + 3_600_000));
    m.not_before = Some(siwe::time::format_rfc3339(T - 60_000));
    m.request_id = Some("r-1".into());
    m.resources = Some(vec![
        "https://app.example.com/terms".into(),
        siwe::user_key_resource(&user),
    ]);
    m.chain_id = 10;
    f.valid(
        "every-optional-field",
        "Statement, expiry, not-before, request id and two resources, chain 10.",
        refs,
        &["Ktv"],
        siwe_input(&sign(&m), &user, &salt, T),
        subject(10),
    );
    f.valid(
        "issued-within-skew",
        "Issued 55 s after the attestation's time: within the 60 s skew.",
        &["ATT-33"],
        &["Ktv"],
        siwe_input(&sign(&base), &user, &salt, T - 60_000),
        subject(1),
    );

    let mut m = base.clone();
    m.domain = "evil.example.com".into();
    f.invalid(
        "wrong-domain",
        "Signed for another domain.",
        &["ATT-34"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        siwe_input(&sign(&m), &user, &salt, T),
    );
    let mut m = base.clone();
    m.chain_id = 5;
    f.invalid(
        "wrong-chain",
        "Signed for a chain the verifier does not expect.",
        &["ATT-34"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        siwe_input(&sign(&m), &user, &salt, T),
    );
    let mut m = base.clone();
    m.nonce = siwe::nonce_for(&user, &bytes::<16>(rng));
    f.invalid(
        "wrong-nonce",
        "The nonce is the binding of another salt.",
        &["ATT-34"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        siwe_input(&sign(&m), &user, &salt, T),
    );
    f.invalid(
        "other-user-key",
        "Checked against another user key: the nonce no longer matches.",
        &["ATT-34"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        siwe_input(&sign(&base), &bytes::<32>(rng), &salt, T),
    );
    let mut m = base.clone();
    m.resources = Some(vec!["https://app.example.com/terms".into()]);
    f.invalid(
        "user-key-not-named",
        "No resource names the user key.",
        &["ATT-34"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        siwe_input(&sign(&m), &user, &salt, T),
    );
    let mut m = base.clone();
    m.expiration_time = Some(siwe::time::format_rfc3339(T - 120_000));
    f.invalid(
        "expired",
        "Expired two minutes before the attestation's time.",
        &["ATT-33"],
        ErrorClass::Expired,
        &["Expired"],
        siwe_input(&sign(&m), &user, &salt, T),
    );
    let mut m = base.clone();
    m.not_before = Some(siwe::time::format_rfc3339(T + 120_000));
    f.invalid(
        "not-yet-valid",
        "Not valid before two minutes after the attestation's time.",
        &["ATT-33"],
        ErrorClass::Expired,
        &["Expired"],
        siwe_input(&sign(&m), &user, &salt, T),
    );
    f.invalid(
        "issued-after",
        "Issued more than the skew after the attestation's time.",
        &["ATT-33"],
        ErrorClass::Expired,
        &["Expired"],
        siwe_input(&sign(&base), &user, &salt, T - 70_000),
    );

    let good = sign(&base);
    let n = good.len();
    let mut t = good.clone();
    if let Some(b) = t.get_mut(n - 50) {
        *b ^= 1;
    }
    f.invalid(
        "tampered-signature",
        "One bit of s changed.",
        &["ATT-32"],
        ErrorClass::BadSignature,
        &["Forgery"],
        siwe_input(&t, &user, &salt, T),
    );
    let text = base.render();
    let forged = siwe::evidence(text.as_bytes(), &siwe::sign(&other, text.as_bytes()));
    f.invalid(
        "other-signer",
        "The message naming one address signed by another key.",
        &["ATT-32"],
        ErrorClass::BadSignature,
        &["Forgery"],
        siwe_input(&forged, &user, &salt, T),
    );
    let tampered = text.replace("URI: https://app", "URI: https://ap");
    let moved = siwe::evidence(tampered.as_bytes(), &siwe::sign(&key, text.as_bytes()));
    f.invalid(
        "tampered-message",
        "The URI changed after signing.",
        &["ATT-32"],
        ErrorClass::BadSignature,
        &["Forgery"],
        siwe_input(&moved, &user, &salt, T),
    );
    // High s: s' = n - s with the recovery bit flipped recovers the same address.
    let sig = k256::ecdsa::Signature::from_slice(good.get(n - 65..n - 1).unwrap_or(&[]))
        .map_err(|e| e.to_string())?;
    let (r, s) = sig.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r, -*s).map_err(|e| e.to_string())?;
    let mut t = text.as_bytes().to_vec();
    t.extend_from_slice(&high.to_bytes());
    t.push(good.last().copied().unwrap_or(27) ^ 0x1b ^ 0x1c);
    f.invalid(
        "high-s",
        "The same signature with s in the upper half (EIP-2).",
        &["ATT-32"],
        ErrorClass::BadSignature,
        &["SignatureMalleability"],
        siwe_input(&t, &user, &salt, T),
    );
    let mut t = good.clone();
    if let Some(v) = t.last_mut() {
        *v = 1;
    }
    f.invalid(
        "v-not-27-or-28",
        "The recovery byte is 1 (only 27 and 28 are defined).",
        &["ATT-30"],
        ErrorClass::BadSignature,
        &["Malformed"],
        siwe_input(&t, &user, &salt, T),
    );
    let crlf = text.replace('\n', "\r\n");
    f.invalid(
        "crlf",
        "Lines separated by CR LF.",
        &["ATT-31"],
        ErrorClass::Malformed,
        &["Malformed"],
        siwe_input(
            &siwe::evidence(crlf.as_bytes(), &siwe::sign(&key, crlf.as_bytes())),
            &user,
            &salt,
            T,
        ),
    );
    let lower = text.replace(&base.address, &base.address.to_lowercase());
    f.invalid(
        "address-not-checksummed",
        "The address in lower case (not EIP-55).",
        &["ATT-31"],
        ErrorClass::Malformed,
        &["Malformed"],
        siwe_input(
            &siwe::evidence(lower.as_bytes(), &siwe::sign(&key, lower.as_bytes())),
            &user,
            &salt,
            T,
        ),
    );
    f.invalid(
        "shorter-than-a-signature",
        "Evidence of 64 bytes.",
        &["ATT-30"],
        ErrorClass::Malformed,
        &["Malformed"],
        siwe_input(&[0x41; 64], &user, &salt, T),
    );
    let mut big = base.clone();
    big.statement = Some("a".repeat(siwe::MAX_MESSAGE_LEN));
    let big = big.render();
    f.invalid(
        "oversize",
        "A message over 8192 bytes.",
        &["ATT-31"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        siwe_input(
            &siwe::evidence(big.as_bytes(), &siwe::sign(&key, big.as_bytes())),
            &user,
            &salt,
            T,
        ),
    );
    Ok(())
}

fn webauthn_cases(f: &mut FileBuilder, rng: &mut ChaCha20Rng) -> Result<(), String> {
    f.group(
        OP_WEBAUTHN,
        "Verify WebAuthn evidence (six u16be-length-prefixed fields) for the user key and salt; \
         the output is the subject <rpId>|<base64url(credentialId)>.",
        json!({"origins": [ORIGIN], "rpIds": [RP], "requireUserVerification": false}),
    );
    let user = bytes::<32>(rng);
    let salt = bytes::<16>(rng);
    let key = p256_key(rng)?;
    let cred = bytes::<16>(rng);
    let challenge = webauthn::challenge_for(&user, &salt);
    let subject = json!({"subject": format!("{RP}|{}", URL_SAFE_NO_PAD.encode(cred))});
    let get = |ch: &[u8], origin: &str| client_data("webauthn.get", ch, origin, false);
    let refs = &["ATT-40", "ATT-41", "ATT-42"];
    let good = es256_assertion(&key, RP, &cred, get(&challenge, ORIGIN), 0x05);
    f.valid(
        "es256",
        "An ES256 passkey assertion over the binding (UP and UV set).",
        refs,
        &["Ktv"],
        webauthn_input(&good.encode(), &user, &salt),
        subject.clone(),
    );
    let up_only = es256_assertion(&key, RP, &cred, get(&challenge, ORIGIN), 0x01);
    f.valid(
        "user-present-only",
        "UP without UV, which this verifier does not require.",
        &["ATT-46"],
        &["Ktv"],
        webauthn_input(&up_only.encode(), &user, &salt),
        subject.clone(),
    );
    let ed = ed25519_dalek::SigningKey::from_bytes(&bytes::<32>(rng));
    let mut e = good.clone();
    e.cose_key = CoseKey::encode_ed25519(&ed.verifying_key());
    e.signature = ed25519_dalek::Signer::sign(
        &ed,
        &webauthn::signed_bytes(&e.authenticator_data, &e.client_data_json),
    )
    .to_bytes()
    .to_vec();
    f.valid(
        "eddsa",
        "An Ed25519 (COSE alg -8) passkey.",
        &["ATT-42"],
        &["Ktv"],
        webauthn_input(&e.encode(), &user, &salt),
        subject.clone(),
    );

    let mut e = good.clone();
    e.client_data_json = get(&challenge, ORIGIN)
        .replace("false", "false ")
        .into_bytes();
    f.invalid(
        "tampered-client-data",
        "clientDataJSON changed after signing (still JSON).",
        &["ATT-41"],
        ErrorClass::BadSignature,
        &["Forgery"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut e = good.clone();
    if let Some(b) = e.authenticator_data.get_mut(36) {
        *b ^= 1;
    }
    f.invalid(
        "tampered-authenticator-data",
        "The signature counter changed after signing.",
        &["ATT-41"],
        ErrorClass::BadSignature,
        &["Forgery"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut e = good.clone();
    e.cose_key = CoseKey::encode_es256(p256_key(rng)?.verifying_key());
    f.invalid(
        "other-key",
        "Another credential's key.",
        &["ATT-41"],
        ErrorClass::BadSignature,
        &["Forgery"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let e = es256_assertion(
        &key,
        RP,
        &cred,
        get(&challenge, "https://evil.example.com"),
        0x05,
    );
    f.invalid(
        "wrong-origin",
        "Made on another origin.",
        &["ATT-44"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let e = es256_assertion(
        &key,
        RP,
        &cred,
        get(&webauthn::challenge_for(&user, &bytes::<16>(rng)), ORIGIN),
        0x05,
    );
    f.invalid(
        "wrong-challenge",
        "Made over the binding of another salt.",
        &["ATT-44"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    f.invalid(
        "other-user-key",
        "Checked against another user key.",
        &["ATT-44"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&good.encode(), &bytes::<32>(rng), &salt),
    );
    let e = es256_assertion(
        &key,
        RP,
        &cred,
        client_data("webauthn.create", &challenge, ORIGIN, false),
        0x05,
    );
    f.invalid(
        "create-not-get",
        "clientDataJSON type webauthn.create.",
        &["ATT-44"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let e = es256_assertion(
        &key,
        RP,
        &cred,
        client_data("webauthn.get", &challenge, ORIGIN, true),
        0x05,
    );
    f.invalid(
        "cross-origin",
        "Made in a cross-origin iframe.",
        &["ATT-44"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let e = es256_assertion(
        &key,
        "other.example.com",
        &cred,
        get(&challenge, ORIGIN),
        0x05,
    );
    f.invalid(
        "wrong-rp-id",
        "A credential of a relying party the verifier does not expect.",
        &["ATT-45"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut e = es256_assertion(
        &key,
        "other.example.com",
        &cred,
        get(&challenge, ORIGIN),
        0x05,
    );
    e.rp_id = RP.into();
    f.invalid(
        "rp-id-hash-mismatch",
        "The RP id field names the expected party, rpIdHash another.",
        &["ATT-45"],
        ErrorClass::WrongContext,
        &["WrongContext"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let e = es256_assertion(&key, RP, &cred, get(&challenge, ORIGIN), 0x04);
    f.invalid(
        "no-user-presence",
        "UP not set.",
        &["ATT-46"],
        ErrorClass::InvalidOperation,
        &["MissingFlag"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut e = good.clone();
    e.cose_key = clientful_attest_cose_rs256();
    f.invalid(
        "rs256",
        "A COSE key with alg RS256 (-257).",
        &["ATT-42"],
        ErrorClass::UnsupportedVersion,
        &["UnknownAlgorithm"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut e = good.clone();
    if let Some(b) = e.cose_key.last_mut() {
        *b ^= 1;
    }
    f.invalid(
        "not-a-point",
        "The y coordinate changed: not on P-256.",
        &["ATT-42"],
        ErrorClass::InvalidKey,
        &["InvalidKey"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut b = good.encode();
    b.push(0);
    f.invalid(
        "trailing-byte",
        "A byte after the six fields.",
        &["ATT-40"],
        ErrorClass::Malformed,
        &["Malformed"],
        webauthn_input(&b, &user, &salt),
    );
    let mut e = good.clone();
    e.authenticator_data.push(0);
    f.invalid(
        "authenticator-data-trailing",
        "Authenticator data without ED followed by a byte.",
        &["ATT-43"],
        ErrorClass::Malformed,
        &["Malformed"],
        webauthn_input(&e.encode(), &user, &salt),
    );
    let mut e = good.clone();
    e.signature = vec![0x30; webauthn::MAX_SIGNATURE_LEN + 1];
    f.invalid(
        "oversize-signature",
        "A 129-byte signature.",
        &["ATT-40"],
        ErrorClass::LimitExceeded,
        &["Oversize"],
        webauthn_input(&e.encode(), &user, &salt),
    );

    f.group(
        OP_WEBAUTHN,
        "The same verifier, requiring user verification (UV).",
        json!({"origins": [ORIGIN], "rpIds": [RP], "requireUserVerification": true}),
    );
    f.valid(
        "uv-required",
        "UP and UV set.",
        &["ATT-46"],
        &["Ktv"],
        webauthn_input(&good.encode(), &user, &salt),
        subject,
    );
    f.invalid(
        "uv-required-missing",
        "UP set, UV not, and the verifier requires UV.",
        &["ATT-46"],
        ErrorClass::InvalidOperation,
        &["MissingFlag"],
        webauthn_input(&up_only.encode(), &user, &salt),
    );
    Ok(())
}

fn clientful_attest_cose_rs256() -> Vec<u8> {
    // {1: 3 (RSA), 3: -257 (RS256), -1: n (1 byte), -2: e}
    vec![
        0xa4, 0x01, 0x03, 0x03, 0x39, 0x01, 0x00, 0x20, 0x41, 0x01, 0x21, 0x43, 0x01, 0x00, 0x01,
    ]
}

/// A passkey assertion captured from Chromium's virtual authenticator by the
/// browser test (reference/clientful-attest/tests/fixtures/chromium-passkey.json).
fn chromium_cases(f: &mut FileBuilder) -> Result<(), String> {
    let v: Value = serde_json::from_str(include_str!(
        "../../../clientful-attest/tests/fixtures/chromium-passkey.json"
    ))
    .map_err(|e| e.to_string())?;
    f.group(
        OP_WEBAUTHN,
        "An assertion made by Chromium 156's WebAuthn virtual authenticator (ctap2, ES256).",
        json!({"origins": field(&v, "origins"), "rpIds": field(&v, "rpIds"), "requireUserVerification": true}),
    );
    let input = json!({"evidence": field(&v, "evidence"), "userKey": field(&v, "userKey"), "salt": field(&v, "salt")});
    f.valid(
        "chromium",
        "Chromium's assertion over the binding.",
        &["ATT-41"],
        &["RealWorld"],
        input.clone(),
        json!({"subject": field(&v, "subject")}),
    );
    let mut other = input;
    if let Some(salt) = other.get_mut("salt") {
        *salt = json!(hex([0u8; 16]));
    }
    f.invalid(
        "chromium-other-salt",
        "Chromium's assertion checked against another salt.",
        &["ATT-44"],
        ErrorClass::WrongContext,
        &["RealWorld", "WrongContext"],
        other,
    );
    Ok(())
}

/// `obj[key]`, or null.
fn field(obj: &Value, key: &str) -> Value {
    obj.get(key).cloned().unwrap_or(Value::Null)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    field(v, key)
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one case of the groups above; `Ok(None)` for another operation.
pub fn run(operation: &str, params: &Value, input: &Value) -> Result<Option<Outcome>, String> {
    let evidence = || get_hex(input, "evidence");
    match operation {
        OP_SIWE => {
            let policy = SiwePolicy {
                domains: strings(params, "domains"),
                chain_ids: field(params, "chainIds")
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
            };
            let r = siwe::verify(
                &evidence()?,
                &get_arr::<32>(input, "userKey")?,
                &get_arr::<16>(input, "salt")?,
                get_u64(input, "createdAtMs")?,
                &policy,
            );
            Ok(Some(match r {
                Ok(v) => Outcome::Accepted(json!({"subject": v.subject})),
                Err(e) => Outcome::Rejected(e.class()),
            }))
        }
        OP_WEBAUTHN => {
            let policy = WebAuthnPolicy {
                origins: strings(params, "origins"),
                rp_ids: strings(params, "rpIds"),
                require_user_verification: field(params, "requireUserVerification")
                    .as_bool()
                    .unwrap_or(false),
            };
            let r = webauthn::verify(
                &evidence()?,
                &get_arr::<32>(input, "userKey")?,
                &get_arr::<16>(input, "salt")?,
                &policy,
            );
            Ok(Some(match r {
                Ok(v) => Outcome::Accepted(json!({"subject": v.subject})),
                Err(e) => Outcome::Rejected(e.class()),
            }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::generate::family_rng;
    use clientful_core::error::class_name;

    fn file(seed: &str) -> crate::schema::VectorFile {
        let mut f = FileBuilder::new("attestation", seed, "test");
        add_notes(&mut f);
        add_cases(&mut f, &mut family_rng(seed)).unwrap();
        f.finish()
    }

    /// Every case gives its intended verdict; generation is deterministic.
    #[test]
    fn cases_hold_and_are_deterministic() {
        let seed = "clientful/v1/vectors/attestation";
        let f = file(seed);
        assert!(f.number_of_cases >= 40, "{}", f.number_of_cases);
        for (group, case) in f.cases() {
            assert!(
                case.spec_refs.iter().all(|r| crate::verify::is_spec_ref(r)),
                "{}",
                case.id
            );
            assert!(
                case.flags.iter().all(|fl| f.notes.contains_key(fl)),
                "{}",
                case.id
            );
            let outcome = run(&group.operation, &group.params, &case.input)
                .unwrap()
                .unwrap();
            match (case.result.as_str(), outcome) {
                ("valid", Outcome::Accepted(out)) => assert_eq!(out, case.expected, "{}", case.id),
                ("invalid", Outcome::Rejected(c)) => {
                    assert_eq!(Some(class_name(c)), case.error.as_deref(), "{}", case.id)
                }
                (r, o) => panic!("{}: {r} but {o:?}", case.id),
            }
        }
        let again = crate::generate::to_bytes(&file(seed)).unwrap();
        assert_eq!(crate::generate::to_bytes(&f).unwrap(), again);
        assert_ne!(crate::generate::to_bytes(&file("other")).unwrap(), again);
    }
}
