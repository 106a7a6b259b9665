//! Property tests of the pure layout code: decoders never panic and refuse
//! arbitrary or mutated bytes, manifests round-trip, and the causal order of a
//! snapshot does not depend on the order the envelopes were held in.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::sync::OnceLock;

use clientful_core::envelope;
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_doc::CrdtKind;
use clientful_doc::testkit::{World, insert_text};
use clientful_storage::causal;
use clientful_storage::layout::EpochStorage;
use clientful_storage::object::{
    CheckpointEntry, HeadManifest, Kind, Tip, open_object, seal_object,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn es() -> EpochStorage {
    EpochStorage::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).unwrap()
}

/// Envelopes of three devices editing concurrently, with cross-dependencies.
fn envelopes() -> &'static Vec<Vec<u8>> {
    static ENVS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ENVS.get_or_init(|| {
        let w = World::new(3, 3, CrdtKind::Yjs);
        let mut rs: Vec<_> = (0..3).map(|i| w.replica(i)).collect();
        let mut all = Vec::new();
        for round in 0..6 {
            let mut new = Vec::new();
            for (i, r) in rs.iter_mut().enumerate() {
                insert_text(r, 0, &format!("{round}{i}")).unwrap();
                r.commit().unwrap();
                new.extend(r.drain_outbox().into_iter().map(|(_, b)| b));
            }
            // Only some envelopes reach the others each round: concurrency.
            for (k, e) in new.iter().enumerate() {
                for (i, r) in rs.iter_mut().enumerate() {
                    if (k + i + round) % 2 == 0 {
                        r.receive(e);
                    }
                }
            }
            all.extend(new);
        }
        all
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for kind in [Kind::Head, Kind::Segment, Kind::Snapshot, Kind::File, Kind::Checkpoint] {
            prop_assert!(open_object(&es(), kind, &bytes, &[[9; 32]]).is_err());
        }
    }

    #[test]
    fn mutated_objects_never_open(pos in any::<prop::sample::Index>(), bit in 0u8..8, seed in any::<[u8; 32]>()) {
        let sk = SigningKey::from_seed(&[9; 32]);
        let me = sk.public_bytes();
        let mut m = HeadManifest::empty(me);
        m.counter = 1;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut file = seal_object(&es(), Kind::Head, &sk, m.encode(&es()), &mut rng).unwrap();
        let i = pos.index(file.len());
        file[i] ^= 1 << bit;
        prop_assert!(open_object(&es(), Kind::Head, &file, &[me]).is_err());
    }

    #[test]
    fn head_manifests_round_trip(counter in 1u64..1000, floor in 0u64..5, live in 0u64..5, snaps in proptest::collection::btree_set(any::<[u8; 32]>(), 0..4), cps in proptest::collection::btree_map(any::<[u8; 32]>(), (any::<u64>(), any::<[u8; 32]>()), 0..4), docs in proptest::collection::btree_set(any::<[u8; 32]>(), 0..4)) {
        let sk = SigningKey::from_seed(&[4; 32]);
        let me = sk.public_bytes();
        let m = HeadManifest {
            device: me,
            counter,
            segment_count: floor + live,
            segments: (floor..floor + live).map(|i| (i, [i as u8; 32])).collect(),
            gc_floor: floor,
            base_snapshot: (floor > 0).then_some([7; 32]),
            snapshots: snaps.into_iter().collect(),
            // One entry per document, ascending by document (STO-8).
            checkpoints: cps.into_iter().map(|(doc_id, (coverage, id))| CheckpointEntry { doc_id, coverage, id }).collect(),
            // One attestation entry per document at each count from the floor up.
            tips: (floor.max(1)..=floor + live)
                .flat_map(|count| {
                    docs.iter().map(move |d| Tip { count, doc_id: *d, first: 1, last: count, id: [count as u8; 32] })
                })
                .collect(),
        };
        prop_assert_eq!(HeadManifest::decode(&m.encode(&es()), &es(), &me).unwrap(), m);
    }

    #[test]
    fn causal_order_is_a_topological_order_independent_of_input_order(perm in Just(envelopes().clone()).prop_shuffle()) {
        let (ordered, heads) = causal::order(perm);
        let (reference, reference_heads) = causal::order(envelopes().clone());
        prop_assert_eq!(&ordered, &reference);
        prop_assert_eq!(&heads, &reference_heads);
        prop_assert_eq!(ordered.len(), envelopes().len());
        let mut seen = HashSet::new();
        for e in &ordered {
            let d = envelope::decode(e).unwrap();
            for p in d.header.preds.iter().chain(d.header.prev.iter()) {
                prop_assert!(seen.contains(p), "a predecessor comes later");
            }
            seen.insert(d.id);
        }
        prop_assert!(!heads.is_empty());
    }
}
