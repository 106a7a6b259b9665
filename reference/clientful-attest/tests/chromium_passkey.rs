//! A passkey assertion made by Chromium 156's WebAuthn virtual authenticator (ctap2,
//! ES256), captured from a run of packages/web/test/passkey.test.mjs
//! (`CLIENTFUL_PASSKEY_FIXTURE=...`): the evidence over the user key's binding
//! verifies natively to the subject the browser's wasm build gave; changed bytes,
//! another origin, user key, salt or RP id each give their one class (ATT-41).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use clientful_attest::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy};
use clientful_core::ErrorClass;
use serde_json::Value;

struct Fixture {
    evidence: Vec<u8>,
    user_key: [u8; 32],
    salt: [u8; 16],
    policy: WebAuthnPolicy,
    subject: String,
}

fn fixture() -> Fixture {
    let v: Value = serde_json::from_str(include_str!("fixtures/chromium-passkey.json")).unwrap();
    let mut user_key = [0u8; 32];
    hex::decode_to_slice(v["userKey"].as_str().unwrap(), &mut user_key).unwrap();
    let mut salt = [0u8; 16];
    hex::decode_to_slice(v["salt"].as_str().unwrap(), &mut salt).unwrap();
    let list = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    Fixture {
        evidence: hex::decode(v["evidence"].as_str().unwrap()).unwrap(),
        user_key,
        salt,
        policy: WebAuthnPolicy {
            origins: list("origins"),
            rp_ids: list("rpIds"),
            require_user_verification: true,
        },
        subject: v["subject"].as_str().unwrap().to_owned(),
    }
}

fn class(f: &Fixture, evidence: &[u8], policy: &WebAuthnPolicy) -> ErrorClass {
    webauthn::verify(evidence, &f.user_key, &f.salt, policy)
        .unwrap_err()
        .class()
}

#[test]
fn chromium_assertion_verifies_natively() {
    let f = fixture();
    let v = webauthn::verify(&f.evidence, &f.user_key, &f.salt, &f.policy).unwrap();
    assert_eq!(v.subject, f.subject);
    let e = WebAuthnEvidence::decode(&f.evidence).unwrap();
    assert_eq!(e.encode(), f.evidence);
    let cdj = String::from_utf8(e.client_data_json.clone()).unwrap();
    assert!(cdj.contains("\"type\":\"webauthn.get\""), "{cdj}");
}

#[test]
fn chromium_assertion_rejections() {
    let f = fixture();
    let e = WebAuthnEvidence::decode(&f.evidence).unwrap();

    // clientDataJSON tampered: BAD_SIGNATURE.
    let mut t = e.clone();
    t.client_data_json = String::from_utf8(t.client_data_json)
        .unwrap()
        .replace("\"crossOrigin\":false", "\"crossOrigin\": false")
        .into_bytes();
    assert_ne!(t, e);
    assert_eq!(class(&f, &t.encode(), &f.policy), ErrorClass::BadSignature);
    // The signature counter changed: BAD_SIGNATURE.
    let mut t = e.clone();
    t.authenticator_data[36] ^= 1;
    assert_eq!(class(&f, &t.encode(), &f.policy), ErrorClass::BadSignature);
    // Another expected origin, RP id: WRONG_CONTEXT.
    let mut p = f.policy.clone();
    p.origins = vec!["https://app.example.com".into()];
    assert_eq!(class(&f, &f.evidence, &p), ErrorClass::WrongContext);
    let mut t = e.clone();
    t.rp_id = "example.com".into();
    let mut p = f.policy.clone();
    p.rp_ids.push("example.com".into());
    assert_eq!(
        webauthn::verify(&t.encode(), &f.user_key, &f.salt, &p).unwrap_err(),
        webauthn::WebAuthnError::WrongContext("rpIdHash")
    );
    // Another user key or salt: WRONG_CONTEXT (challenge).
    let err = webauthn::verify(&f.evidence, &[0xab; 32], &f.salt, &f.policy).unwrap_err();
    assert_eq!(err, webauthn::WebAuthnError::WrongContext("challenge"));
    let err = webauthn::verify(&f.evidence, &f.user_key, &[0; 16], &f.policy).unwrap_err();
    assert_eq!(err.class(), ErrorClass::WrongContext);
    // Truncated: MALFORMED.
    assert_eq!(
        class(&f, &f.evidence[..f.evidence.len() - 1], &f.policy),
        ErrorClass::Malformed
    );
}
