//! Writes the seed corpora of the cargo-fuzz targets `siwe_message`,
//! `webauthn_data` and `plc_log` into `fuzz/corpus/<target>/`, each file named by the SHA-256 of
//! its content. Deterministic (fixed keys, RFC 6979 signatures).
//!
//! ```text
//! cargo run -p clientful-attest --example attest_fuzz_seed -- fuzz/corpus
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use clientful_attest::siwe;
use clientful_attest::webauthn::{self, WebAuthnEvidence, cose::CoseKey};
use sha2::{Digest, Sha256};

const USER: [u8; 32] = [7; 32];
const SALT: [u8; 16] = [9; 16];
const T: i64 = 1_796_000_000_000;

fn write(dir: &Path, inputs: &BTreeSet<Vec<u8>>) -> std::io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut new = 0;
    for input in inputs {
        let path = dir.join(hex::encode(Sha256::digest(input)));
        if !path.exists() {
            fs::write(&path, input)?;
            new += 1;
        }
    }
    Ok(new)
}

fn siwe_inputs() -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for (i, secret) in [[0x11u8; 32], [0x22; 32], [0x33; 32]].iter().enumerate() {
        let Ok(key) = k256::ecdsa::SigningKey::from_slice(secret) else {
            continue;
        };
        let addr = siwe::address_of(key.verifying_key());
        let mut m = siwe::message_for(
            "example.com",
            &addr,
            "https://example.com",
            1,
            &USER,
            &SALT,
            T,
        );
        let variants = [
            m.clone(),
            {
                m.statement = Some("Link my Clientful key.".into());
                m.clone()
            },
            {
                m.expiration_time = Some(siwe::time::format_rfc3339(T + 60_000));
                m.not_before = Some("2026-12-07T00:00:00+01:00".into());
                m.clone()
            },
            {
                m.request_id = Some(format!("req-{i}"));
                m.scheme = Some("https".into());
                m.resources = Some(vec!["ipfs://bafy".into(), siwe::user_key_resource(&USER)]);
                m.clone()
            },
            {
                m.chain_id = 10;
                m.domain = "evil.example:8443".into();
                m.clone()
            },
        ];
        for v in variants {
            let text = v.render();
            out.insert(text.clone().into_bytes());
            out.insert(siwe::evidence(
                text.as_bytes(),
                &siwe::sign(&key, text.as_bytes()),
            ));
        }
    }
    out
}

fn webauthn_inputs() -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let challenge = webauthn::challenge_for(&USER, &SALT);
    for (i, secret) in [[0x33u8; 32], [0x44; 32]].iter().enumerate() {
        let Ok(key) = p256::ecdsa::SigningKey::from_slice(secret) else {
            continue;
        };
        for (flags, origin) in [
            (0x05, "http://localhost:8080"),
            (0x01, "http://localhost:8080"),
            (0x00, "https://evil.example"),
        ] {
            let e = webauthn::assert_es256(
                &key,
                "localhost",
                origin,
                &[i as u8; 16],
                &challenge,
                flags,
            );
            out.insert(e.encode());
            out.insert(e.cose_key.clone());
            out.insert(e.authenticator_data.clone());
            out.insert(e.client_data_json.clone());
        }
    }
    // Ed25519.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let mut e: WebAuthnEvidence = webauthn::assert_es256(
        &p256::ecdsa::SigningKey::from_slice(&[0x33; 32]).unwrap_or_else(|_| unreachable!()),
        "localhost",
        "http://localhost:8080",
        b"ed",
        &challenge,
        0x05,
    );
    e.cose_key = CoseKey::encode_ed25519(&sk.verifying_key());
    out.insert(e.encode());
    out.insert(e.cose_key.clone());
    // The Chromium assertion captured by the browser test.
    let fixture = include_str!("../tests/fixtures/chromium-passkey.json");
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(fixture)
        && let Some(Ok(bytes)) = v.get("evidence").and_then(|e| e.as_str()).map(hex::decode)
    {
        out.insert(bytes);
    }
    out
}

fn plc_inputs() -> BTreeSet<Vec<u8>> {
    use clientful_attest::plc::{self, Op};
    use k256::ecdsa::signature::Signer as _;
    let mut out = BTreeSet::new();
    let fixture = include_str!("../tests/fixtures/plc/directory-log.json");
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(fixture)
        && let Some(ev) = v.get("evidence")
    {
        out.insert(ev.to_string().into_bytes());
        if let Some(log) = ev.get("log") {
            out.insert(log.to_string().into_bytes());
            for op in log.as_array().into_iter().flatten() {
                out.insert(op.to_string().into_bytes());
            }
        }
        if let Some(did) = v.get("did").and_then(|d| d.as_str()) {
            out.insert(did.as_bytes().to_vec());
        }
    }
    let Ok(rot) = k256::ecdsa::SigningKey::from_slice(&[0x21; 32]) else {
        return out;
    };
    let sign = |op: &mut Op| {
        let s: k256::ecdsa::Signature = rot.sign(&op.dag_cbor(false));
        op.set_sig(&s.to_bytes());
    };
    let rk = plc::did_key_k256(rot.verifying_key());
    let mut genesis = Op::Operation {
        rotation_keys: vec![rk.clone()],
        verification_methods: [("clientful".to_string(), rk.clone())].into(),
        also_known_as: vec!["at://x.test".into()],
        services: Default::default(),
        prev: None,
        sig: None,
    };
    sign(&mut genesis);
    let mut tomb = Op::Tombstone {
        prev: genesis.cid(),
        sig: None,
    };
    sign(&mut tomb);
    let mut create = Op::Create {
        signing_key: rk.clone(),
        recovery_key: rk.clone(),
        handle: "x.test".into(),
        service: "https://pds.test".into(),
        sig: None,
    };
    sign(&mut create);
    let did = genesis.did();
    let stmt = plc::statement(&did, "clientful", &[7; 32]);
    let s: k256::ecdsa::Signature = rot.sign(stmt.as_bytes());
    let sig = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        s.to_bytes(),
    );
    for log in [
        vec![genesis.to_json()],
        vec![genesis.to_json(), tomb.to_json()],
        vec![create.to_json()],
    ] {
        out.insert(
            serde_json::Value::Array(log.clone())
                .to_string()
                .into_bytes(),
        );
        if let Ok(e) = plc::evidence(
            serde_json::Value::Array(log).to_string().as_bytes(),
            "clientful",
            &sig,
        ) {
            out.insert(e);
        }
    }
    for op in [&genesis, &tomb, &create] {
        out.insert(op.to_json().to_string().into_bytes());
    }
    out.insert(rk.into_bytes());
    out.insert(did.into_bytes());
    out
}

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let n = write(&root.join("siwe_message"), &siwe_inputs())?;
    println!("siwe_message: {n} new");
    let n = write(&root.join("webauthn_data"), &webauthn_inputs())?;
    println!("webauthn_data: {n} new");
    let n = write(&root.join("plc_log"), &plc_inputs())?;
    println!("plc_log: {n} new");
    Ok(())
}
