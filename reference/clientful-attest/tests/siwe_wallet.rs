//! SIWE evidence made by a standard wallet library (ATT-30..ATT-35): viem, pinned in
//! `scripts/attest/package-lock.json`, run by `node`, generates fresh secp256k1 keys,
//! writes the EIP-4361 messages (`createSiweMessage`) and signs them per EIP-191
//! (`signMessage`). The reference verifies them: the valid ones pass, and a wrong
//! domain, nonce, chain, an expired message, a tampered signature and a tampered
//! message each give their one class.
//!
//! Needs `node` (>= 20) on PATH; installs the pinned packages with `npm ci` when
//! `scripts/attest/node_modules` lacks viem.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clientful_attest::siwe::{
    self, SiwePolicy, nonce_for, time::format_rfc3339, user_key_resource,
};
use clientful_core::ErrorClass;
use serde_json::{Value, json};

const USER: [u8; 32] = [0x5a; 32];
const SALT: [u8; 16] = [0x3c; 16];
const T: i64 = 1_796_000_000_000;

fn wallet_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/attest")
}

fn ensure_packages() {
    let dir = wallet_dir();
    if dir.join("node_modules/viem/package.json").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("npm runs");
    assert!(status.success(), "npm ci in scripts/attest failed");
}

/// Signs each request with a fresh viem key; returns (message bytes, signature, address).
fn wallet_sign(requests: &Value) -> Vec<(Vec<u8>, [u8; 65], String)> {
    ensure_packages();
    let mut child = Command::new("node")
        .arg("siwe-sign.mjs")
        .current_dir(wallet_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "siwe-sign.mjs failed");
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            let sig =
                hex::decode(r["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
            (
                r["message"].as_str().unwrap().as_bytes().to_vec(),
                <[u8; 65]>::try_from(sig.as_slice()).unwrap(),
                r["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn request(domain: &str, chain: u64, salt: &[u8; 16], expiry: Option<i64>) -> Value {
    let mut r = json!({
        "domain": domain,
        "uri": "https://app.example.com/attest",
        "chainId": chain,
        "nonce": nonce_for(&USER, salt),
        "issuedAt": format_rfc3339(T - 5_000),
        "statement": "Link my Clientful user key to this account.",
        "resources": ["https://app.example.com/terms", user_key_resource(&USER)],
    });
    if let Some(e) = expiry {
        r["expirationTime"] = json!(format_rfc3339(e));
    }
    r
}

fn policy() -> SiwePolicy {
    SiwePolicy {
        domains: vec!["app.example.com".into()],
        chain_ids: vec![1, 10],
    }
}

#[test]
fn viem_signed_messages_verify_and_bad_ones_get_their_class() {
    let requests = json!([
        request("app.example.com", 1, &SALT, Some(T + 3_600_000)),
        request("app.example.com", 10, &SALT, None),
        request("evil.example.com", 1, &SALT, None),
        request("app.example.com", 1, &[0; 16], None),
        request("app.example.com", 5, &SALT, None),
        request("app.example.com", 1, &SALT, Some(T - 120_000)),
        request("app.example.com", 1, &SALT, None),
    ]);
    let signed = wallet_sign(&requests);
    assert_eq!(signed.len(), 7);
    let check = |i: usize| {
        let (m, s, _) = &signed[i];
        siwe::verify(&siwe::evidence(m, s), &USER, &SALT, T as u64, &policy())
    };

    // Valid: two fresh keys, chains 1 and 10, with and without an expiry.
    for i in [0, 1] {
        let v = check(i).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let chain = if i == 0 { 1 } else { 10 };
        assert_eq!(v.subject, format!("eip155:{chain}:{}", signed[i].2));
    }
    assert_ne!(signed[0].2, signed[1].2, "each message has its own key");

    // Wrong domain, wrong nonce (another salt), wrong chain: WRONG_CONTEXT.
    for i in [2, 3, 4] {
        assert_eq!(
            check(i).unwrap_err().class(),
            ErrorClass::WrongContext,
            "case {i}"
        );
    }
    assert!(matches!(
        check(2).unwrap_err(),
        siwe::SiweError::WrongDomain(_)
    ));
    assert_eq!(check(3).unwrap_err(), siwe::SiweError::WrongNonce);
    assert_eq!(check(4).unwrap_err(), siwe::SiweError::WrongChain(5));
    // Expired two minutes before the attestation: EXPIRED.
    assert_eq!(check(5).unwrap_err().class(), ErrorClass::Expired);

    // A tampered signature and a tampered message: BAD_SIGNATURE.
    let (m, s, _) = &signed[6];
    assert!(check(6).is_ok());
    let mut bad = *s;
    bad[10] ^= 0x01;
    let e = siwe::verify(&siwe::evidence(m, &bad), &USER, &SALT, T as u64, &policy()).unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadSignature);
    let tampered = String::from_utf8(m.clone())
        .unwrap()
        .replace("Link my", "Link our");
    let e = siwe::verify(
        &siwe::evidence(tampered.as_bytes(), s),
        &USER,
        &SALT,
        T as u64,
        &policy(),
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::BadSignature);
}

#[test]
fn viem_messages_are_what_the_reference_renders() {
    // The reference's parser accepts viem's text and renders the same bytes.
    let signed = wallet_sign(&json!([request("app.example.com", 1, &SALT, Some(T + 1))]));
    let (m, _, _) = &signed[0];
    let parsed = siwe::SiweMessage::parse(m).unwrap();
    assert_eq!(parsed.render().as_bytes(), m.as_slice());
}
