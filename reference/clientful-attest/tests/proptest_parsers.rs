//! Properties of the SIWE and WebAuthn parsers (spec principle 5, ATT-31, ATT-40):
//! no input panics them; messages and evidence built from arbitrary fields round
//! trip; single-byte changes of valid evidence are refused (or touch only the
//! unsigned credential id), never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use clientful_attest::siwe::{self, SiweMessage, SiwePolicy, message::checksum_address};
use clientful_attest::webauthn::{self, WebAuthnEvidence, WebAuthnPolicy, cose::CoseKey};
use proptest::prelude::*;

const USER: [u8; 32] = [7; 32];
const SALT: [u8; 16] = [9; 16];
const T: i64 = 1_796_000_000_000;

fn uri() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9+.-]{0,8}:[A-Za-z0-9/?#@!$&'()*+,;=._~%:-]{1,40}"
}

prop_compose! {
    fn message()(
        scheme in proptest::option::of("[a-z][a-z0-9]{0,6}"),
        domain in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        address in any::<[u8; 20]>(),
        statement in proptest::option::of("[A-Za-z0-9 .,:/?#@!$&'()*+;=_~-]{1,60}"),
        uri in uri(),
        chain_id in any::<u64>(),
        nonce in "[A-Za-z0-9]{8,64}",
        issued in 0i64..253_402_300_799_999,
        expiration in proptest::option::of(0i64..253_402_300_799_999),
        not_before in proptest::option::of(0i64..253_402_300_799_999),
        request_id in proptest::option::of("[A-Za-z0-9:@%._~-]{0,20}"),
        resources in proptest::option::of(proptest::collection::vec(uri(), 0..5)),
    ) -> SiweMessage {
        let t = siwe::time::format_rfc3339;
        SiweMessage {
            scheme,
            domain,
            address: checksum_address(&address),
            statement: statement.filter(|s| !s.is_empty()),
            uri,
            version: "1".into(),
            chain_id,
            nonce,
            issued_at: t(issued),
            expiration_time: expiration.map(t),
            not_before: not_before.map(t),
            request_id,
            resources,
        }
    }
}

fn good_siwe() -> Vec<u8> {
    let key = k256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap();
    let addr = siwe::address_of(key.verifying_key());
    let m = siwe::message_for(
        "example.com",
        &addr,
        "https://example.com",
        1,
        &USER,
        &SALT,
        T,
    )
    .render();
    siwe::evidence(m.as_bytes(), &siwe::sign(&key, m.as_bytes()))
}

fn siwe_policy() -> SiwePolicy {
    SiwePolicy {
        domains: vec!["example.com".into()],
        chain_ids: vec![1],
    }
}

fn good_webauthn() -> WebAuthnEvidence {
    let key = p256::ecdsa::SigningKey::from_slice(&[0x33; 32]).unwrap();
    webauthn::assert_es256(
        &key,
        "localhost",
        "http://localhost:8080",
        b"cred",
        &webauthn::challenge_for(&USER, &SALT),
        0x05,
    )
}

fn webauthn_policy() -> WebAuthnPolicy {
    WebAuthnPolicy {
        origins: vec!["http://localhost:8080".into()],
        rp_ids: vec!["localhost".into()],
        require_user_verification: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn siwe_messages_round_trip(m in message()) {
        let text = m.render();
        prop_assert_eq!(SiweMessage::parse(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn siwe_parser_total_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SiweMessage::parse(&data);
        let _ = siwe::verify(&data, &USER, &SALT, T as u64, &siwe_policy());
    }

    #[test]
    fn siwe_mutations_refused_or_same(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let good = good_siwe();
        let mut bad = good.clone();
        let i = pos.index(bad.len());
        bad[i] = byte;
        match siwe::verify(&bad, &USER, &SALT, T as u64, &siwe_policy()) {
            Ok(_) => prop_assert_eq!(bad, good),
            Err(e) => prop_assert_ne!(e.class(), clientful_core::ErrorClass::Unspecified),
        }
    }

    #[test]
    fn webauthn_parsers_total_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(e) = WebAuthnEvidence::decode(&data) {
            prop_assert_eq!(e.encode(), data.clone());
        }
        let _ = webauthn::verify(&data, &USER, &SALT, &webauthn_policy());
        let _ = CoseKey::parse(&data);
        let _ = webauthn::authdata::AuthData::parse_assertion(&data);
        let _ = webauthn::authdata::attested_credential(&data);
        let _ = webauthn::client_data::ClientData::parse(&data);
    }

    #[test]
    fn webauthn_evidence_round_trips(
        rp in "[a-z.]{1,30}",
        id in proptest::collection::vec(any::<u8>(), 1..64),
        key in proptest::collection::vec(any::<u8>(), 0..100),
        ad in proptest::collection::vec(any::<u8>(), 0..100),
        cdj in proptest::collection::vec(any::<u8>(), 0..100),
        sig in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let e = WebAuthnEvidence {
            rp_id: rp,
            credential_id: id,
            cose_key: key,
            authenticator_data: ad,
            client_data_json: cdj,
            signature: sig,
        };
        prop_assert_eq!(WebAuthnEvidence::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn webauthn_mutations_refused_or_same(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let good = good_webauthn().encode();
        let mut bad = good.clone();
        let i = pos.index(bad.len());
        bad[i] = byte;
        match webauthn::verify(&bad, &USER, &SALT, &webauthn_policy()) {
            // The credential id is not covered by the assertion's signature (ATT-45:
            // it is the attester's claim, covered by the record's user-key
            // signature): every other field is as made.
            Ok(_) => {
                let mut changed = WebAuthnEvidence::decode(&bad).unwrap();
                changed.credential_id = b"cred".to_vec();
                prop_assert_eq!(changed, good_webauthn());
            }
            Err(e) => prop_assert_ne!(e.class(), clientful_core::ErrorClass::Unspecified),
        }
    }
}
