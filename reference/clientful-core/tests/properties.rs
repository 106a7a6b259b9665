//! Property tests of the core's promises, over generated inputs.
//! spec: ENV-2, ENV-3, ENV-4, ENV-9, ENV-21, CAN-9, ID-3.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::envelope::{self, SealRequest, StaticContext};
use clientful_core::identity::{self, DeviceKeys};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::wire;
use clientful_proto::v1 as pb;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn context(author: &SigningKey, epoch: &EpochKey) -> StaticContext {
    StaticContext {
        space_id: [1; 32],
        doc_id: Some([2; 32]),
        signers: vec![author.public_bytes()],
        epochs: vec![epoch.clone()],
        accepted: Vec::new(),
    }
}

prop_compose! {
    fn request_parts()(
        seq in 1u64..1_000_000,
        prev in any::<[u8; 32]>(),
        preds in proptest::collection::vec(any::<[u8; 32]>(), 0..80),
        content_type in 1u32..5000,
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) -> (u64, [u8; 32], Vec<[u8; 32]>, u32, Vec<u8>) {
        (seq, prev, preds, content_type, body)
    }
}

fn sealed(
    seed: u64,
    parts: &(u64, [u8; 32], Vec<[u8; 32]>, u32, Vec<u8>),
) -> Option<(Vec<u8>, StaticContext)> {
    let (seq, prev, preds, content_type, body) = parts;
    let author = SigningKey::from_seed(&[seed as u8; 32]);
    let epoch = EpochKey::new([3; 32], [seed as u8 ^ 0x5a; 32]);
    let req = SealRequest {
        space_id: [1; 32],
        doc_id: [2; 32],
        seq: *seq,
        prev: (*seq > 1).then_some(*prev),
        preds: preds.clone(),
        content_type: *content_type,
        body,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let out = envelope::seal(&author, &epoch, &req, &mut rng).ok()?;
    Some((out.bytes, context(&author, &epoch)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the sealer accepts opens to the same content, with canonical
    /// predecessors, and the id is the hash of the payload bytes.
    #[test]
    fn seal_then_open_round_trips(seed in any::<u64>(), parts in request_parts()) {
        let mut unique = parts.2.clone();
        unique.sort_unstable();
        unique.dedup();
        match sealed(seed, &parts) {
            None => prop_assert!(unique.len() > 64, "sealer refused a valid request"),
            Some((bytes, ctx)) => {
                let opened = envelope::open(&bytes, &ctx).expect("opens");
                prop_assert_eq!(&opened.body, &parts.4);
                prop_assert_eq!(opened.content_type, parts.3);
                prop_assert_eq!(opened.header.seq, parts.0);
                prop_assert_eq!(&opened.header.preds, &unique);
                let decoded = envelope::decode(&bytes).expect("decodes");
                prop_assert_eq!(decoded.id, opened.id);
                prop_assert_eq!(
                    decoded.id,
                    clientful_core::suite::hash_with_label("id/envelope", &decoded.payload).expect("hash")
                );
            }
        }
    }

    /// Changing any byte of a sealed envelope, or cutting it short, makes it fail
    /// to open: nothing an untrusted relay can do goes unnoticed.
    #[test]
    fn any_mutation_is_rejected(
        seed in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        position in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        let parts = (1, [0; 32], vec![[9; 32]], 1, body);
        let (bytes, ctx) = sealed(seed, &parts).expect("seals");
        let mut mutated = bytes.clone();
        let at = position.index(mutated.len());
        mutated[at] ^= xor;
        prop_assert!(envelope::open(&mutated, &ctx).is_err(), "byte {} ^ {:#x} accepted", at, xor);
        let len = cut.index(bytes.len());
        prop_assert!(envelope::open(&bytes[..len], &ctx).is_err(), "truncation to {} accepted", len);
    }

    /// Every value prost encodes is accepted by the canonical scan and decodes to
    /// itself; the encoding is the one canonical form.
    #[test]
    fn encoded_headers_are_canonical(
        protocol_version in any::<u32>(),
        cipher_suite in any::<u32>(),
        doc_id in proptest::collection::vec(any::<u8>(), 0..40),
        seq in any::<u64>(),
        preds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5),
        nonce in proptest::collection::vec(any::<u8>(), 0..30),
    ) {
        let h = pb::EnvelopeHeader {
            protocol_version, cipher_suite, doc_id, seq, preds, nonce,
            ..Default::default()
        };
        let bytes = wire::encode(&h);
        let back: pb::EnvelopeHeader = wire::decode(&bytes, &wire::ENVELOPE_HEADER).expect("canonical");
        prop_assert_eq!(back, h);
    }

    /// Whatever the canonical scan accepts, prost re-encodes to the same bytes
    /// (decode then re-encode is the identity), for every schema.
    #[test]
    fn scan_acceptance_implies_identical_reencoding(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        clientful_core::fuzzing::canonical_codec(&data);
    }

    /// Certificates round-trip, and flipping any byte breaks them.
    #[test]
    fn certificates_round_trip_and_resist_mutation(
        seed in any::<u64>(),
        position in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let user = SigningKey::generate(&mut rng);
        let device = DeviceKeys::generate(&mut rng);
        let cert = identity::issue_certificate(&user, &device).expect("issue");
        let verified = identity::verify_certificate(&cert, Some(&user.public_bytes())).expect("verify");
        prop_assert_eq!(verified.device_key.as_bytes(), &device.signing.public_bytes());
        let mut bad = cert.clone();
        let at = position.index(bad.len());
        bad[at] ^= xor;
        prop_assert!(identity::verify_certificate(&bad, Some(&user.public_bytes())).is_err());
    }
}
