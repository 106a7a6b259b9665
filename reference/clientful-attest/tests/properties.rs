//! Properties of the record and the verifier (spec §14): any draft within the
//! limits signs and decodes back to itself; verifying arbitrary evidence of any
//! kind never panics and names a class; the same record verifies the same way
//! twice (ATT-7: a pure function of bytes and context).
//! spec: ATT-2, ATT-7, ATT-LIM-2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clientful_attest::{Draft, Kind, VerifierContext, record, sign, verify};
use clientful_core::keys::SigningKey;
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::OidcIdToken),
        Just(Kind::DidDocument),
        Just(Kind::Siwe),
        Just(Kind::WebAuthn)
    ]
}

proptest! {
    #[test]
    fn sign_decode_round_trip_and_verify_is_total(
        seed in any::<[u8; 32]>(),
        kind in kind(),
        evidence in proptest::collection::vec(any::<u8>(), 1..2048),
        subject in "[ -~]{0,512}",
        salt in any::<[u8; 16]>(),
        created in any::<u64>(),
        now in any::<u64>(),
    ) {
        let user = SigningKey::from_seed(&seed);
        let signed = sign(&user, &Draft { kind, evidence: &evidence, subject: &subject, salt, created_at_ms: created }).unwrap();
        let r = record::decode(&signed).unwrap();
        prop_assert_eq!(r.user_key, user.public_bytes());
        prop_assert_eq!(r.kind, kind);
        prop_assert_eq!(&r.evidence, &evidence);
        prop_assert_eq!(&r.subject, &subject);
        prop_assert_eq!(r.salt, salt);
        prop_assert_eq!(r.created_at_ms, created);
        let ctx = VerifierContext::new(now);
        let a = verify(&signed, &ctx).map_err(|e| e.class());
        let b = verify(&signed, &ctx).map_err(|e| e.class());
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Err(x), Err(y)) = (&a, &b) {
            prop_assert_eq!(x, y);
            prop_assert_ne!(*x, clientful_core::ErrorClass::Unspecified);
        }
    }

    #[test]
    fn arbitrary_bytes_are_never_a_record(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = record::decode(&bytes);
        let _ = verify(&bytes, &VerifierContext::new(0));
    }
}
