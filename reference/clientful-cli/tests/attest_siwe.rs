//! Sign-In with Ethereum attestations with the real `clientful` binary (spec
//! §14.10): bob's nonce and user-key resource from `identity attest nonce` go into
//! an EIP-4361 message that viem (a standard wallet library, npm, pinned by
//! `scripts/attest/package-lock.json`) signs with a fresh secp256k1 key; bob
//! attests it in the space and alice lists it as verified for the app's domain and
//! chain. A message for another domain or chain, or with another nonce, is refused
//! before anything is published, in one line with its class.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use cli_common::{alice_and_bob, as_refs, repo};
use serde_json::{Value, json};

const DOMAIN: &str = "app.example.com";

fn wallet_dir() -> PathBuf {
    repo().join("scripts/attest")
}

/// Installs viem from the lock file when it is missing (`npm ci`).
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

/// One message signed by viem with a fresh key: (message text, signature hex, address).
fn wallet_sign(domain: &str, chain: u64, nonce: &str, resource: &str) -> (String, String, String) {
    ensure_packages();
    // Milliseconds since the epoch: the script makes a JS Date of it.
    let issued = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let req = json!([{
        "domain": domain,
        "uri": format!("https://{domain}/login"),
        "chainId": chain,
        "nonce": nonce,
        "issuedAt": issued,
        "statement": "Link my Ethereum account to my Clientful user key.",
        "resources": [resource],
    }]);
    let mut child = Command::new("node")
        .arg(wallet_dir().join("siwe-sign.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "siwe-sign.mjs failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v[0];
    (
        r["message"].as_str().unwrap().to_string(),
        r["signature"].as_str().unwrap().to_string(),
        r["address"].as_str().unwrap().to_string(),
    )
}

#[test]
fn siwe_attestation_signed_by_a_wallet_library_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = alice_and_bob(tmp.path());
    let bob_key = bob.user_key();

    let field = bob.attest_nonce();
    let (salt, nonce, resource) = (field("salt"), field("siwe-nonce"), field("siwe-resource"));
    assert_eq!(nonce.len(), 64, "the SIWE nonce is the binding in hex");

    let attest = |message: &str, signature: &str, domain: &str, chain: &str| {
        let f = tmp.path().join("siwe.txt");
        std::fs::write(&f, message).unwrap();
        vec![
            "identity".to_string(),
            "attest".into(),
            "siwe".into(),
            "--message".into(),
            f.to_str().unwrap().into(),
            "--signature".into(),
            signature.into(),
            "--salt".into(),
            salt.clone(),
            "--domain".into(),
            domain.into(),
            "--chain".into(),
            chain.into(),
        ]
    };

    // Refused before publishing, one class each: another domain, another chain,
    // another nonce.
    let (m, sig, _) = wallet_sign("evil.example.com", 1, &nonce, &resource);
    let e = bob.fails(&as_refs(&attest(&m, &sig, DOMAIN, "1")));
    assert!(e.contains("WrongContext"), "wrong domain: {e}");
    let (m, sig, _) = wallet_sign(DOMAIN, 10, &nonce, &resource);
    let e = bob.fails(&as_refs(&attest(&m, &sig, DOMAIN, "1")));
    assert!(e.contains("WrongContext"), "wrong chain: {e}");
    let other_nonce = "0".repeat(64);
    let (m, sig, _) = wallet_sign(DOMAIN, 1, &other_nonce, &resource);
    let e = bob.fails(&as_refs(&attest(&m, &sig, DOMAIN, "1")));
    assert!(e.contains("WrongContext"), "wrong nonce: {e}");
    // A signature over other bytes.
    let (m, sig, _) = wallet_sign(DOMAIN, 1, &nonce, &resource);
    let tampered = m.replace("Link my", "Link our");
    let e = bob.fails(&as_refs(&attest(&tampered, &sig, DOMAIN, "1")));
    assert!(e.contains("BadSignature"), "tampered message: {e}");

    // The right message is attested and published.
    let (m, sig, address) = wallet_sign(DOMAIN, 1, &nonce, &resource);
    let out = bob.run(&as_refs(&attest(&m, &sig, DOMAIN, "1")));
    assert!(out.contains("attested in space"), "{out}");

    // Alice verifies it offline for the app's domain and chain.
    let list = alice.run(&[
        "space",
        "attestations",
        "--siwe-domain",
        DOMAIN,
        "--siwe-chain",
        "1",
    ]);
    let line = list
        .lines()
        .find(|l| l.contains("SIWE"))
        .unwrap_or_else(|| panic!("no SIWE line in {list}"));
    assert!(line.contains(&bob_key[..12]), "{line}");
    assert!(line.contains(&format!("eip155:1:{address}")), "{line}");
    assert!(line.ends_with("verified"), "{line}");
    // Without trusting that domain, the same record is refused with its class.
    let list = alice.run(&["space", "attestations", "--siwe-chain", "1"]);
    let line = list.lines().find(|l| l.contains("SIWE")).unwrap();
    assert!(line.contains("REFUSED WRONG_CONTEXT"), "{line}");
}
