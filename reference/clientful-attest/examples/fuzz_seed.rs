//! Writes the seed corpora of the `jwt` and `did_document` fuzz targets:
//!
//! cargo run -p clientful-attest --example fuzz_seed -- fuzz/corpus
//!
//! Each seed is a file named by the SHA-256 of its bytes; existing files are kept.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clientful_attest::did::multibase_key;
use sha2::Digest as _;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn write(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut new = 0;
    for s in seeds {
        let path = dir.join(hex::encode(sha2::Sha256::digest(s)));
        if !path.exists() {
            std::fs::write(path, s)?;
            new += 1;
        }
    }
    Ok(new)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: fuzz_seed <corpus dir, e.g. fuzz/corpus>")?;
    let out = Path::new(&out);
    let claims = r#"{"iss":"https://issuer.example","sub":"x","aud":"app","exp":1800000100,"iat":1799999990,"nonce":"abc"}"#;
    let mut jwt = Vec::new();
    for header in [
        r#"{"alg":"EdDSA","kid":"k"}"#,
        r#"{"alg":"RS256","kid":"rsa-1"}"#,
        r#"{"alg":"ES256"}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"EdDSA","crit":["b64"]}"#,
        r#"{"alg":1}"#,
        r#"[]"#,
    ] {
        jwt.push(
            format!(
                "{}.{}.{}",
                b64(header),
                b64(claims),
                URL_SAFE_NO_PAD.encode([7u8; 64])
            )
            .into_bytes(),
        );
    }
    jwt.push(format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims)).into_bytes());
    jwt.push(format!("{}.{}", b64(r#"{"alg":"EdDSA"}"#), b64(claims)).into_bytes());
    jwt.push(
        format!(
            "{}.{}.AA",
            b64(r#"{"alg":"EdDSA"}"#),
            b64(r#"{"aud":["a","app"],"exp":1.5}"#)
        )
        .into_bytes(),
    );
    jwt.push(br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.to_vec());
    jwt.push(br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"oct","k":"AA"}]}"#.to_vec());
    jwt.push(b"...".to_vec());
    jwt.push(Vec::new());

    let key = [5u8; 32];
    let did = "did:web:example.com";
    let mb = multibase_key(&key);
    let mut docs: Vec<Vec<u8>> = vec![
        format!(r#"{{"id":"{did}","verificationMethod":[{{"id":"{did}#k","type":"Multikey","controller":"{did}","publicKeyMultibase":"{mb}"}}]}}"#).into_bytes(),
        format!(r#"{{"id":"{did}","assertionMethod":[{{"type":"Ed25519VerificationKey2020","controller":"{did}","publicKeyMultibase":"{mb}"}}]}}"#).into_bytes(),
        format!(r#"{{"id":"{did}","authentication":["{did}#k"],"verificationMethod":[{{"type":"JsonWebKey2020","controller":"{did}","publicKeyJwk":{{}}}}]}}"#).into_bytes(),
        br#"{"id":"did:web:other.example","verificationMethod":[]}"#.to_vec(),
        br#"{"id":1}"#.to_vec(),
        br#"[]"#.to_vec(),
        br#"{"id":"did:web:example.com","verificationMethod":{}}"#.to_vec(),
        b"did:web:example.com".to_vec(),
        b"did:web:localhost%3A8080:users:bob".to_vec(),
        b"did:plc:ewvi7nxzyoun6zhxrhs64oiz".to_vec(),
        b"did:web:a.com:..".to_vec(),
        Vec::new(),
    ];
    docs.push(
        format!(
            "{{\"id\":\"{did}\",\"verificationMethod\":[{}]}}",
            "{},".repeat(70) + "{}"
        )
        .into_bytes(),
    );
    println!(
        "jwt: {} seeds ({} new)",
        jwt.len(),
        write(&out.join("jwt"), &jwt)?
    );
    println!(
        "did_document: {} seeds ({} new)",
        docs.len(),
        write(&out.join("did_document"), &docs)?
    );
    Ok(())
}
