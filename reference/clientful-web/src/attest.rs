//! Attestations in the browser (spec §14.10-§14.12), the same `clientful-attest`
//! code the native side runs: SIWE verification; the WebAuthn challenge for a user
//! key (the binding), the evidence of a passkey assertion and its verification; and
//! the PRF input that unlocks a passkey-sealed device home.
//!
//! Errors are thrown `Error`s named `ClientfulError`, `[CLASS] message`, with
//! the spec class (`WRONG_CONTEXT`, `BAD_SIGNATURE`, ...) in `class`.

use clientful_attest::siwe::{self, SiwePolicy};
use clientful_attest::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy, authdata};
use clientful_core::error::class_name;
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

fn js_error(kind: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(&format!("[{kind}] {message}"));
    err.set_name("ClientfulError");
    let _ = Reflect::set(&err, &"class".into(), &kind.into());
    err.into()
}

fn user_key(hex_key: &str) -> Result<[u8; 32], JsValue> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut k)
        .map_err(|_| js_error("INVALID_ARGUMENT", "a user key is 64 hex digits"))?;
    Ok(k)
}

fn salt(bytes: &[u8]) -> Result<[u8; 16], JsValue> {
    <[u8; 16]>::try_from(bytes).map_err(|_| js_error("INVALID_ARGUMENT", "a salt is 16 bytes"))
}

/// The WebAuthn challenge (32 bytes) binding the user key `userKeyHex` with the
/// attestation's 16-byte `salt`: `HashWithLabel("attest/binding", key || salt)`.
#[wasm_bindgen(js_name = attestationChallenge)]
pub fn attestation_challenge(user_key_hex: &str, salt_bytes: &[u8]) -> Result<Vec<u8>, JsValue> {
    Ok(clientful_attest::binding::binding(&user_key(user_key_hex)?, &salt(salt_bytes)?).to_vec())
}

/// The credential id and COSE public key from a registration's authenticator
/// data (`response.getAuthenticatorData()` of `navigator.credentials.create`):
/// `{ credentialId: Uint8Array, coseKey: Uint8Array }`.
#[wasm_bindgen(js_name = webauthnCredential)]
pub fn webauthn_credential(authenticator_data: &[u8]) -> Result<Object, JsValue> {
    let (id, key) = authdata::attested_credential(authenticator_data)
        .map_err(|e| js_error(class_name(e.class()), &e.to_string()))?;
    let o = Object::new();
    let _ = Reflect::set(
        &o,
        &"credentialId".into(),
        &Uint8Array::from(&id[..]).into(),
    );
    let _ = Reflect::set(&o, &"coseKey".into(), &Uint8Array::from(&key[..]).into());
    Ok(o)
}

/// The evidence bytes of a passkey attestation (ATT-40).
#[wasm_bindgen(js_name = webauthnEvidence)]
pub fn webauthn_evidence(
    rp_id: String,
    credential_id: Vec<u8>,
    cose_key: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    signature: Vec<u8>,
) -> Vec<u8> {
    WebAuthnEvidence {
        rp_id,
        credential_id,
        cose_key,
        authenticator_data,
        client_data_json,
        signature,
    }
    .encode()
}

/// Verifies passkey evidence for the user key and salt against the expected
/// origins and RP ids; returns the subject `<rpId>|<credential id>` or throws
/// `[CLASS] ...`.
#[wasm_bindgen(js_name = verifyWebauthn)]
pub fn verify_webauthn(
    evidence: &[u8],
    user_key_hex: &str,
    salt_bytes: &[u8],
    origins: Vec<String>,
    rp_ids: Vec<String>,
    require_user_verification: bool,
) -> Result<String, JsValue> {
    let policy = WebAuthnPolicy {
        origins,
        rp_ids,
        require_user_verification,
    };
    webauthn::verify(
        evidence,
        &user_key(user_key_hex)?,
        &salt(salt_bytes)?,
        &policy,
    )
    .map(|v| v.subject)
    .map_err(|e| js_error(class_name(e.class()), &e.to_string()))
}

/// Verifies Sign-In with Ethereum evidence (the EIP-4361 message bytes followed by
/// the 65-byte EIP-191 signature) for the user key and salt at the record's time
/// `createdAtMs`, against the expected domains and chain ids; returns the subject
/// `eip155:<chain>:<address>` or throws `[CLASS] ...`.
#[wasm_bindgen(js_name = verifySiwe)]
pub fn verify_siwe(
    evidence: &[u8],
    user_key_hex: &str,
    salt_bytes: &[u8],
    created_at_ms: f64,
    domains: Vec<String>,
    chain_ids: Vec<f64>,
) -> Result<String, JsValue> {
    let whole =
        |x: f64| (x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0).then_some(x as u64);
    let t = whole(created_at_ms)
        .ok_or_else(|| js_error("INVALID_ARGUMENT", "createdAtMs is a whole number of ms"))?;
    let policy = SiwePolicy {
        domains,
        chain_ids: chain_ids.into_iter().filter_map(whole).collect(),
    };
    siwe::verify(
        evidence,
        &user_key(user_key_hex)?,
        &salt(salt_bytes)?,
        t,
        &policy,
    )
    .map(|v| v.subject)
    .map_err(|e| js_error(class_name(e.class()), &e.to_string()))
}

/// The PRF input (`extensions.prf.eval.first`) whose output seals a device home
/// (`Device.createWithPasskey`, `Device.openWithPasskey`).
#[cfg(feature = "session")]
#[wasm_bindgen(js_name = passkeyPrfSalt)]
pub fn passkey_prf_salt() -> Vec<u8> {
    crate::session::home::passkey_prf_salt().to_vec()
}
