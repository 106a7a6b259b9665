//! Fuzz entry points (feature `test-utils`; for the cargo-fuzz targets `jwt`,
//! `did_document`, `plc_log`, `siwe_message` and `webauthn_data` in `fuzz/` and the stable
//! corpus replay `tests/fuzz_corpus.rs`): the parsers and verifiers of this crate
//! on untrusted bytes never panic, and what they accept obeys their limits and
//! round-trips (spec §14.8, principle 5).

use crate::did::{self, DidWeb};
use crate::jwt::{Jwks, Jws, MAX_JWS_BYTES};
use crate::oidc::{self, OidcContext, TrustedIssuer};
use crate::record::{Draft, Kind};
use crate::siwe::{self, SiweMessage, SiwePolicy};
use crate::verify::VerifierContext;
use crate::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy, authdata, cose};

/// A JWKS with one Ed25519 key, the issuer's in the fixed context.
const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fn context() -> VerifierContext {
    let mut ctx = VerifierContext::new(1_800_000_000_000);
    if let Ok(jwks) = Jwks::parse(JWKS.as_bytes()) {
        ctx.oidc = OidcContext {
            issuers: vec![TrustedIssuer {
                issuer: "https://issuer.example".into(),
                jwks,
            }],
            audiences: vec!["app".into()],
        };
    }
    ctx
}

/// JWS, JWKS and id_token evidence: the input as a compact JWS, as a JWKS, and as
/// the evidence of an `OIDC_ID_TOKEN` record verified in a fixed context. No
/// panic; an accepted JWS is within its limit.
pub fn jwt(data: &[u8]) {
    if Jws::parse(data).is_ok() {
        assert!(data.len() <= MAX_JWS_BYTES);
    }
    if let Ok(jwks) = Jwks::parse(data) {
        assert!(jwks.len() <= crate::jwt::MAX_JWKS_KEYS);
    }
    let _ = oidc::peek_issuer(data);
    let user = clientful_core::keys::SigningKey::from_seed(&[3; 32]);
    if let Ok(signed) = crate::record::sign(
        &user,
        &Draft {
            kind: Kind::OidcIdToken,
            evidence: data,
            subject: "https://issuer.example|x",
            salt: [0; 16],
            created_at_ms: 1_800_000_000_000,
        },
    ) {
        let _ = crate::verify::verify(&signed, &context());
    }
    let _ = crate::verify::verify(data, &context());
}

/// DID and DID document parsing: the input as a DID, and as the document of a
/// fixed `did:web` DID for a fixed key. No panic; an accepted document holds the
/// key's multibase text.
pub fn did_document(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(d) = DidWeb::parse(s)
    {
        let _ = d.document_url(d.is_loopback());
    }
    let key = [5u8; 32];
    if did::verify_document("did:web:example.com", data, &key).is_ok() {
        let want = did::multibase_key(&key);
        assert!(data.windows(want.len()).any(|w| w == want.as_bytes()));
    }
}

/// `did:plc` evidence and logs (§14.6, ATT-15..ATT-18): the input as the evidence
/// of a fixed DID and binding, as a bare log, and each JSON operation in it as an
/// operation. No panic; an accepted log is within ATT-LIM-6 and an accepted
/// operation re-encodes to the same JSON value.
pub fn plc_log(data: &[u8]) {
    let did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    let _ = crate::plc::verify_evidence(did, data, &[7; 32]);
    if let Ok(serde_json::Value::Array(ops)) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(state) = crate::plc::verify_log(did, ops.clone()) {
            assert!(ops.len() <= crate::plc::MAX_OPS);
            assert!(state.rotation_keys.len() <= crate::plc::MAX_ROTATION_KEYS);
        }
        for op in ops {
            if let Ok(parsed) = crate::plc::Op::from_json(op.clone()) {
                assert_eq!(parsed.to_json(), op, "a parsed operation re-encodes");
                let _ = parsed.cid();
                let _ = parsed.did();
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::plc::parse_did(s);
        let _ = crate::plc::PlcKey::parse(s);
    }
}

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
