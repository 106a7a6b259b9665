//! Targeted Byzantine scenarios: each asserts the documented outcome on every
//! honest replica (spec DOC-3, DOC-7, DOC-8, DOC-9).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::ErrorClass;
use clientful_doc::dag::MAX_PENDING_PER_AUTHOR;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition, Replica, Verdict};
use clientful_sim::byzantine::{Forger, chain_tip, garbage_bytes};
use clientful_sim::edit;
use clientful_sim::sync::sync_all;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const HONEST: usize = 3;
const BYZ: usize = 3;
const CRDTS: [CrdtKind; 2] = [CrdtKind::Yjs, CrdtKind::Automerge];

/// Three honest replicas (devices 0..3) that share a document with some text,
/// the Byzantine device's own replica (device 3), and its forger.
fn setup(crdt: CrdtKind, seed: u64) -> (World, Vec<Replica>, Replica, Forger) {
    let world = World::new(seed, HONEST + 1, crdt);
    let mut honest: Vec<Replica> = (0..HONEST).map(|i| world.replica(i)).collect();
    let mut byz = world.replica(BYZ);
    assert!(edit::create_text(&mut honest[0], "hello é🌍"));
    honest[0].commit().unwrap().unwrap();
    let out = honest[0].drain_outbox();
    for r in honest.iter_mut().skip(1).chain(std::iter::once(&mut byz)) {
        for (_, e) in &out {
            assert!(matches!(r.receive(e), Disposition::Applied { .. }));
        }
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for r in &mut honest {
        edit::random_edit(r, &mut rng).unwrap();
        r.commit().unwrap().unwrap();
        r.drain_outbox();
    }
    sync_all(&mut honest, 8).unwrap();
    let forger = Forger::new(&world, BYZ, seed ^ 0xb12);
    (world, honest, byz, forger)
}

fn digests(rs: &mut [Replica]) -> Vec<([u8; 32], [u8; 32])> {
    rs.iter_mut()
        .map(|r| (r.history_digest(), r.state_digest()))
        .collect()
}

fn assert_converged(rs: &mut [Replica]) {
    let d = digests(rs);
    assert!(d.windows(2).all(|w| w[0] == w[1]), "digests differ: {d:?}");
}

#[test]
fn actor_spoofing_is_rejected_as_invalid_operation() {
    for crdt in CRDTS {
        let (world, mut honest, _byz, mut forger) = setup(crdt, 11);
        let before = digests(&mut honest);
        let victim = world.device(1).public_bytes();
        let heads = honest[0].heads();
        let (id, bytes) = forger.spoof(&victim, 1, None, heads).unwrap();
        for r in &mut honest {
            match r.receive(&bytes) {
                Disposition::Rejected { class, .. } => {
                    assert_eq!(class, ErrorClass::InvalidOperation, "{crdt:?}")
                }
                other => panic!("{crdt:?}: spoof was {other:?}"),
            }
            assert_eq!(
                r.verdict(&id),
                Verdict::Rejected(ErrorClass::InvalidOperation)
            );
        }
        sync_all(&mut honest, 8).unwrap();
        assert_eq!(
            digests(&mut honest),
            before,
            "{crdt:?}: spoof changed something"
        );
        // An envelope building on the spoof is rejected too.
        let (_, child) = forger
            .seal(
                2,
                Some(id),
                vec![id],
                clientful_doc::content::YJS_UPDATE_V1,
                &[0, 0],
            )
            .unwrap();
        for r in &mut honest {
            assert!(matches!(
                r.receive(&child),
                Disposition::Rejected {
                    class: ErrorClass::InvalidOperation,
                    ..
                }
            ));
        }
    }
}

#[test]
fn forged_predecessor_is_buffered_and_never_applied() {
    for crdt in CRDTS {
        let (_world, mut honest, _byz, mut forger) = setup(crdt, 12);
        let before = digests(&mut honest);
        let (id, bytes) = forger.forged_preds(1, None).unwrap();
        for r in &mut honest {
            assert!(
                matches!(r.receive(&bytes), Disposition::Buffered { .. }),
                "{crdt:?}"
            );
            assert_eq!(r.verdict(&id), Verdict::Buffered);
            assert!(r.dag().pending.len() <= MAX_PENDING_PER_AUTHOR);
        }
        sync_all(&mut honest, 8).unwrap();
        for r in &honest {
            assert_eq!(r.verdict(&id), Verdict::Buffered, "{crdt:?}");
            assert!(!r.dag().nodes.contains_key(&id));
            assert_eq!(r.dag().pending.len(), 1);
        }
        assert_eq!(digests(&mut honest), before, "{crdt:?}");
    }
}

#[test]
fn equivocation_is_kept_as_evidence_and_excluded_everywhere() {
    for crdt in CRDTS {
        let (world, mut honest, mut byz, mut forger) = setup(crdt, 13);
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        edit::random_edit(&mut byz, &mut rng).unwrap();
        let a = byz.commit().unwrap().unwrap();
        let (_, a_bytes) = byz.drain_outbox().pop().unwrap();
        let (b, b_bytes) = forger.twin(byz.dag().nodes.get(&a).unwrap()).unwrap();
        assert_ne!(a, b);
        // A to replica 0, B to replicas 1 and 2.
        assert!(matches!(
            honest[0].receive(&a_bytes),
            Disposition::Applied { .. }
        ));
        for r in honest.iter_mut().skip(1) {
            assert!(matches!(r.receive(&b_bytes), Disposition::Applied { .. }));
        }
        sync_all(&mut honest, 8).unwrap();
        let author = world.device(BYZ).public_bytes();
        for r in &honest {
            assert!(r.dag().nodes.contains_key(&a) && r.dag().nodes.contains_key(&b));
            assert_eq!(r.verdict(&a), Verdict::Excluded, "{crdt:?}");
            assert_eq!(r.verdict(&b), Verdict::Excluded, "{crdt:?}");
            assert!(r.equivocators().contains(&(author, 1)), "{crdt:?}");
        }
        assert_converged(&mut honest);
        // The excluded content is not in the document.
        let texts: Vec<String> = honest.iter_mut().map(edit::text).collect();
        let reference = {
            let mut fresh = world.replica(0);
            for e in honest[1].persisted_envelopes() {
                fresh.receive(&e);
            }
            edit::text(&mut fresh)
        };
        assert!(texts.iter().all(|t| *t == reference), "{crdt:?}: {texts:?}");
    }
}

#[test]
fn missing_parent_flood_is_bounded_per_author() {
    const FLOOD: usize = 2000;
    for crdt in CRDTS {
        let (world, mut honest, _byz, mut forger) = setup(crdt, 14);
        let flood = forger.flood(FLOOD);
        assert_eq!(flood.len(), FLOOD);
        let author = world.device(BYZ).public_bytes();
        for r in &mut honest {
            let (mut buffered, mut limited) = (0usize, 0usize);
            for (_, e) in &flood {
                match r.receive(e) {
                    Disposition::Buffered { .. } => buffered += 1,
                    Disposition::Rejected {
                        class: ErrorClass::LimitExceeded,
                        ..
                    } => limited += 1,
                    other => panic!("{crdt:?}: flood envelope was {other:?}"),
                }
            }
            assert_eq!(buffered, MAX_PENDING_PER_AUTHOR, "{crdt:?}");
            assert_eq!(limited, FLOOD - MAX_PENDING_PER_AUTHOR, "{crdt:?}");
            let dag = r.dag();
            assert_eq!(
                dag.pending_per_author.get(&author),
                Some(&MAX_PENDING_PER_AUTHOR)
            );
            assert!(dag.pending.len() <= MAX_PENDING_PER_AUTHOR);
        }
        // Honest envelopes still integrate.
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        edit::random_edit(&mut honest[1], &mut rng).unwrap();
        honest[1].commit().unwrap().unwrap();
        let out = honest[1].drain_outbox();
        for (k, r) in honest.iter_mut().enumerate() {
            if k != 1 {
                for (_, e) in &out {
                    assert!(
                        matches!(r.receive(e), Disposition::Applied { .. }),
                        "{crdt:?}"
                    );
                }
            }
        }
        sync_all(&mut honest, 8).unwrap();
        assert_converged(&mut honest);
    }
}

#[test]
fn garbage_is_rejected_and_changes_nothing() {
    let decode_classes = [
        ErrorClass::Malformed,
        ErrorClass::NonCanonical,
        ErrorClass::UnsupportedVersion,
        ErrorClass::LimitExceeded,
    ];
    for crdt in CRDTS {
        let (_world, mut honest, _byz, mut forger) = setup(crdt, 15);
        let before = digests(&mut honest);
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        let mut garbage: Vec<Vec<u8>> = (0..200).map(|_| garbage_bytes(&mut rng)).collect();
        garbage.push(Vec::new());
        garbage.push(vec![0xff; 64]);
        for r in &mut honest {
            for g in &garbage {
                match r.receive(g) {
                    Disposition::Rejected {
                        id: None, class, ..
                    } => {
                        assert!(decode_classes.contains(&class), "{class:?}")
                    }
                    other => panic!("{crdt:?}: garbage was {other:?}"),
                }
            }
        }
        // Validly sealed envelopes with garbage CRDT payloads are rejected too
        // (malformed payload or wrong content type), and recorded.
        let heads = honest[0].heads();
        let tip = chain_tip(&honest[0], &forger.author());
        assert_eq!(tip, (0, None));
        let mut sealed = Vec::new();
        for _ in 0..30 {
            sealed.push(forger.garbage_payload(1, None, heads.clone()).unwrap());
        }
        for r in &mut honest {
            for (id, e) in &sealed {
                let d = r.receive(e);
                match d {
                    Disposition::Rejected {
                        class: ErrorClass::Malformed | ErrorClass::InvalidOperation,
                        ..
                    } => {}
                    // A random body can be a valid empty Yjs update; then it is a
                    // legitimate (empty) envelope and several of them equivocate.
                    Disposition::Applied { .. } if crdt == CrdtKind::Yjs => {}
                    other => panic!("{crdt:?}: garbage payload was {other:?}"),
                }
                assert_ne!(r.verdict(id), Verdict::Unknown);
            }
        }
        sync_all(&mut honest, 8).unwrap();
        assert_converged(&mut honest);
        let after = digests(&mut honest);
        assert_eq!(
            after.iter().map(|d| d.1).collect::<Vec<_>>(),
            before.iter().map(|d| d.1).collect::<Vec<_>>(),
            "{crdt:?}: garbage changed the document"
        );
    }
}
