//! Fuzz entry points (feature `test-utils`): the SIWE and WebAuthn parsers and
//! verifiers must never panic on any input (spec principle 5). The cargo-fuzz
//! targets `siwe_message` and `webauthn_data` (fuzz/) and the stable corpus replay
//! (tests/fuzz_corpus.rs) call these.

use crate::siwe::{self, SiweMessage, SiwePolicy};
use crate::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy, authdata, cose};

const USER: [u8; 32] = [7; 32];
const SALT: [u8; 16] = [9; 16];

/// The input as a SIWE message and as SIWE evidence: never panics; an accepted
/// message renders back to the same bytes.
pub fn siwe_message(data: &[u8]) {
    if let Ok(m) = SiweMessage::parse(data) {
        assert_eq!(m.render().as_bytes(), data, "a parsed message renders back");
    }
    let policy = SiwePolicy {
        domains: vec!["example.com".into()],
        chain_ids: vec![1],
    };
    let _ = siwe::verify(data, &USER, &SALT, 1_796_000_000_000, &policy);
}

/// The input as WebAuthn evidence, a COSE key and authenticator data: never
/// panics; decoded evidence re-encodes to the input.
pub fn webauthn_data(data: &[u8]) {
    if let Ok(e) = WebAuthnEvidence::decode(data) {
        assert_eq!(e.encode(), data, "decoded evidence re-encodes");
    }
    let policy = WebAuthnPolicy {
        origins: vec!["http://localhost:8080".into()],
        rp_ids: vec!["localhost".into()],
        require_user_verification: false,
    };
    let _ = webauthn::verify(data, &USER, &SALT, &policy);
    let _ = cose::CoseKey::parse(data);
    let _ = authdata::AuthData::parse_assertion(data);
    let _ = authdata::attested_credential(data);
    let _ = webauthn::client_data::ClientData::parse(data);
}
