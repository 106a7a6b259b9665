//! Verifies one piece of attestation evidence natively and prints the verdict as
//! JSON: `{"subject": ...}` or `{"class": "WRONG_CONTEXT", "message": ...}`. The
//! browser test (packages/web/test/passkey.test.mjs) passes it the evidence a
//! Chromium passkey made, so the same bytes are checked by the wasm build and by
//! native code.
//!
//! `cargo run -p clientful-attest --example attest_check -- FILE.json` (or stdin), with
//! `{"kind": "webauthn", "evidence": hex, "userKey": hex, "salt": hex, "origins": [..],
//! "rpIds": [..], "requireUserVerification": bool}` or `{"kind": "siwe", "evidence":
//! hex, "userKey": hex, "salt": hex, "createdAtMs": n, "domains": [..], "chainIds": [..]}`.

use std::io::Read;

use clientful_attest::siwe::{self, SiwePolicy};
use clientful_attest::webauthn::{self, WebAuthnPolicy};
use clientful_core::error::class_name;
use serde_json::{Value, json};

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

fn bytes<const N: usize>(v: &Value, key: &str) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    hex::decode_to_slice(field(v, key).as_str().unwrap_or(""), &mut out)
        .map_err(|e| format!("{key}: {e}"))?;
    Ok(out)
}

fn run(input: &Value) -> Result<Value, String> {
    let evidence =
        hex::decode(field(input, "evidence").as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    let user_key = bytes::<32>(input, "userKey")?;
    let salt = bytes::<16>(input, "salt")?;
    let verdict = match field(input, "kind").as_str() {
        Some("webauthn") => {
            let policy = WebAuthnPolicy {
                origins: strings(input, "origins"),
                rp_ids: strings(input, "rpIds"),
                require_user_verification: field(input, "requireUserVerification")
                    .as_bool()
                    .unwrap_or(false),
            };
            webauthn::verify(&evidence, &user_key, &salt, &policy)
                .map(|v| v.subject)
                .map_err(|e| (class_name(e.class()), e.to_string()))
        }
        Some("siwe") => {
            let policy = SiwePolicy {
                domains: strings(input, "domains"),
                chain_ids: field(input, "chainIds")
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default(),
            };
            let t = field(input, "createdAtMs").as_u64().ok_or("createdAtMs")?;
            siwe::verify(&evidence, &user_key, &salt, t, &policy)
                .map(|v| v.subject)
                .map_err(|e| (class_name(e.class()), e.to_string()))
        }
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok(match verdict {
        Ok(subject) => json!({ "subject": subject }),
        Err((class, message)) => json!({ "class": class, "message": message }),
    })
}

fn main() {
    let mut text = String::new();
    let read = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path).map(|t| text = t),
        None => std::io::stdin().read_to_string(&mut text).map(|_| ()),
    };
    let result = read
        .map_err(|e| e.to_string())
        .and_then(|()| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()))
        .and_then(|input| run(&input));
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("attest_check: {e}");
            std::process::exit(2);
        }
    }
}
