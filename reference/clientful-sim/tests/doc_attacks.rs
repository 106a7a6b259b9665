//! Attacks from the protocol design review (issue 22) on the document rules,
//! each run on every honest replica over many seeds and both CRDTs:
//!
//! * finding 4: a second device writes a Yjs update under a victim's client id
//!   (the collision is constructed directly instead of ground) — DOC-19;
//! * finding 5: a thief with a device key signs a second seq-1 envelope long
//!   after the device's work was built on — DOC-20.
//!
//! Every test also checks that the verdicts and digests do not depend on the
//! arrival order: fresh replicas receive the same envelopes shuffled.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use clientful_core::envelope::EnvelopeId;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Replica, Verdict};
use clientful_sim::byzantine::{Forger, spoof_payload};
use clientful_sim::edit;
use clientful_sim::sync::sync_all;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const CRDTS: [CrdtKind; 2] = [CrdtKind::Yjs, CrdtKind::Automerge];
const SEEDS: u64 = 12;

fn commit_and_sync(rs: &mut [Replica]) {
    for r in rs.iter_mut() {
        r.commit().unwrap();
        r.drain_outbox();
    }
    sync_all(rs, 8).unwrap();
}

/// Every replica in `rs` has the same digests, and fresh replicas that receive
/// the union of their envelopes in shuffled orders reach the same verdicts and
/// digests.
fn assert_order_independent(world: &World, rs: &mut [Replica], rng: &mut ChaCha20Rng) {
    let reference: Vec<([u8; 32], [u8; 32])> = rs
        .iter_mut()
        .map(|r| (r.history_digest(), r.state_digest()))
        .collect();
    assert!(
        reference.windows(2).all(|w| w[0] == w[1]),
        "replicas differ: {reference:?}"
    );
    let envelopes = rs[0].persisted_envelopes();
    let ids: Vec<EnvelopeId> = rs[0].dag().order.clone();
    let verdicts: BTreeMap<EnvelopeId, Verdict> =
        ids.iter().map(|id| (*id, rs[0].verdict(id))).collect();
    for r in rs.iter() {
        for id in &ids {
            assert_eq!(
                r.verdict(id),
                verdicts[id],
                "verdicts differ across replicas"
            );
        }
    }
    for _ in 0..4 {
        let mut shuffled = envelopes.clone();
        for i in (1..shuffled.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let mut fresh = Replica::new(world.config(1, 99));
        for e in &shuffled {
            fresh.receive(e);
        }
        for id in &ids {
            assert_eq!(
                fresh.verdict(id),
                verdicts[id],
                "verdict depends on arrival order"
            );
        }
        assert_eq!(
            (fresh.history_digest(), fresh.state_digest()),
            reference[0],
            "digests depend on arrival order"
        );
    }
}

/// Finding 5 (DOC-20): the victim's envelopes that other authors built on
/// before the forgery stay applied on every replica; the forged envelope and
/// the victim's envelopes nobody else built on are excluded.
#[test]
fn late_equivocation_keeps_work_others_built_on() {
    for crdt in CRDTS {
        for seed in 0..SEEDS {
            let world = World::new(seed, 3, crdt);
            let mut rs: Vec<Replica> = (0..3).map(|i| world.replica(i)).collect();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            assert!(edit::create_text(&mut rs[0], "victim-work "));
            clientful_doc::testkit::set_value(&mut rs[0], "victim", "work").unwrap();
            let v1 = rs[0].commit().unwrap().unwrap();
            rs[0].drain_outbox();
            sync_all(&mut rs, 8).unwrap();
            for r in rs.iter_mut().skip(1) {
                edit::random_edit(r, &mut rng).unwrap();
            }
            commit_and_sync(&mut rs);
            edit::random_edit(&mut rs[0], &mut rng).unwrap();
            let v2 = rs[0].commit().unwrap().unwrap();
            rs[0].drain_outbox();
            sync_all(&mut rs, 8).unwrap();
            edit::random_edit(&mut rs[1], &mut rng).unwrap();
            commit_and_sync(&mut rs);
            // The victim's last envelope nobody built on yet.
            edit::random_edit(&mut rs[0], &mut rng).unwrap();
            let v3 = rs[0].commit().unwrap().unwrap();
            let (_, v3_bytes) = rs[0].drain_outbox().pop().unwrap();
            // Long after, a thief holding the victim's key signs a second seq 1.
            let victim = world.device(0).public_bytes();
            let mut thief = Forger::new(&world, 0, seed ^ 0x7e1f);
            let (ct, body) = spoof_payload(crdt, &victim, 0, &world.doc_id, "forged").unwrap();
            let (forged, forged_bytes) = thief.seal(1, None, vec![], ct, &body).unwrap();
            let first = (rng.next_u64() % 3) as usize;
            rs[first].receive(&forged_bytes);
            for r in rs.iter_mut().skip(1) {
                r.receive(&v3_bytes);
            }
            sync_all(&mut rs, 8).unwrap();
            for (i, r) in rs.iter_mut().enumerate() {
                let what = format!("{crdt:?} seed {seed} replica {i}");
                assert_eq!(r.verdict(&forged), Verdict::Excluded, "{what}");
                assert_eq!(
                    r.verdict(&v1),
                    Verdict::Applied,
                    "{what}: built-on v1 erased"
                );
                assert_eq!(
                    r.verdict(&v2),
                    Verdict::Applied,
                    "{what}: built-on v2 erased"
                );
                assert_eq!(r.verdict(&v3), Verdict::Excluded, "{what}");
                let json = r.materialize().to_canonical_string();
                assert!(json.contains("\"victim\":\"work\""), "{what}: {json}");
                assert!(!edit::text(r).contains("forged"), "{what}");
            }
            assert_order_independent(&world, &mut rs, &mut rng);
        }
    }
}

/// Finding 5 (DOC-20), the accident: a device restored from a stale backup
/// forks its own chain while a partitioned member builds on the new branch.
/// Whatever the arrival order, every replica reaches the same verdicts and the
/// same digests, and the work others built on before the fork stays applied.
#[test]
fn forked_chain_with_witnesses_on_both_branches_converges() {
    for crdt in CRDTS {
        for seed in 0..SEEDS {
            let world = World::new(seed, 3, crdt);
            let mut rs: Vec<Replica> = (0..3).map(|i| world.replica(i)).collect();
            let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x55);
            assert!(edit::create_text(&mut rs[0], "base "));
            let v1 = rs[0].commit().unwrap().unwrap();
            rs[0].drain_outbox();
            sync_all(&mut rs, 8).unwrap();
            edit::random_edit(&mut rs[1], &mut rng).unwrap();
            commit_and_sync(&mut rs);
            // The stale backup of device 0: it knows only v1.
            let mut clone = Replica::restore(
                world.config(0, 7),
                &[rs[1].persisted_envelopes()[0].clone()],
            );
            edit::random_edit(&mut rs[0], &mut rng).unwrap();
            let a2 = rs[0].commit().unwrap().unwrap();
            let (_, a2_bytes) = rs[0].drain_outbox().pop().unwrap();
            edit::random_edit(&mut clone, &mut rng).unwrap();
            let b2 = clone.commit().unwrap().unwrap();
            let (_, b2_bytes) = clone.drain_outbox().pop().unwrap();
            // Replica 1 builds on a2, replica 2 (partitioned) on b2.
            rs[1].receive(&a2_bytes);
            edit::random_edit(&mut rs[1], &mut rng).unwrap();
            rs[1].commit().unwrap();
            rs[1].drain_outbox();
            rs[2].receive(&b2_bytes);
            edit::random_edit(&mut rs[2], &mut rng).unwrap();
            rs[2].commit().unwrap();
            rs[2].drain_outbox();
            sync_all(&mut rs, 8).unwrap();
            for (i, r) in rs.iter().enumerate() {
                let what = format!("{crdt:?} seed {seed} replica {i}");
                assert_eq!(r.verdict(&v1), Verdict::Applied, "{what}");
                assert_eq!(r.verdict(&a2), Verdict::Excluded, "{what}");
                assert_eq!(r.verdict(&b2), Verdict::Excluded, "{what}");
            }
            assert_order_independent(&world, &mut rs, &mut rng);
        }
    }
}

/// Finding 4 (DOC-3, DOC-19): a second device writes a Yjs update under the
/// victim's client id, at the victim's clocks, concurrently with the victim —
/// what a device key ground to collide with the victim's hash-derived id did
/// under the old derivation (accepted, and Yjs kept whichever struct arrived
/// first, so replicas diverged). Client ids now come from the device index, so
/// the victim's id is never the attacker's: rejected on every replica, in every
/// arrival order, and the victim's text stays.
#[test]
fn second_device_under_victims_client_id_is_rejected_everywhere() {
    use clientful_core::ErrorClass;
    for seed in 0..SEEDS {
        let world = World::new(seed, 3, CrdtKind::Yjs);
        let mut rs: Vec<Replica> = (0..3).map(|i| world.replica(i)).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x44);
        // The library of every replica edits under the assigned id.
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(
                r.yjs().unwrap().doc().client_id().get(),
                world.yjs_client_id(i, 0),
                "seed {seed}: device {i} does not edit under its assigned client id"
            );
        }
        assert!(edit::create_text(&mut rs[0], "victim"));
        let v1 = rs[0].commit().unwrap().unwrap();
        let (_, v1_bytes) = rs[0].drain_outbox().pop().unwrap();
        // Device 2 inserts under device 0's client id from clock 0.
        let victim = world.device(0).public_bytes();
        let (ct, body) = spoof_payload(CrdtKind::Yjs, &victim, 0, &world.doc_id, "EVIL").unwrap();
        let mut attacker = Forger::new(&world, 2, seed ^ 0x99);
        let (x, x_bytes) = attacker.seal(1, None, vec![], ct, &body).unwrap();
        // Replica 1 sees the collision first, replica 2 the victim first.
        let order = rng.next_u64() % 2 == 0;
        for (i, r) in rs.iter_mut().enumerate().skip(1) {
            let first_x = (i == 1) == order;
            let seq: [&Vec<u8>; 2] = if first_x {
                [&x_bytes, &v1_bytes]
            } else {
                [&v1_bytes, &x_bytes]
            };
            for e in seq {
                r.receive(e);
            }
        }
        rs[0].receive(&x_bytes);
        sync_all(&mut rs, 8).unwrap();
        for (i, r) in rs.iter_mut().enumerate() {
            let what = format!("seed {seed} replica {i}");
            assert_eq!(
                r.verdict(&x),
                Verdict::Rejected(ErrorClass::InvalidOperation),
                "{what}"
            );
            assert_eq!(r.verdict(&v1), Verdict::Applied, "{what}");
            let text = edit::text(r);
            assert!(
                text.contains("victim") && !text.contains("EVIL"),
                "{what}: {text}"
            );
        }
        assert_order_independent(&world, &mut rs, &mut rng);
    }
}

/// DOC-19: however the device keys fall, distinct devices of a context never
/// share a Yjs client id at any incarnation a chain can reach.
#[test]
fn distinct_devices_never_share_a_yjs_client_id() {
    let mut seen = std::collections::BTreeMap::new();
    for seed in 0..4 {
        let world = World::new(seed, 50, CrdtKind::Yjs);
        seen.clear();
        for i in 0..50 {
            for k in (0..=16u32).chain([1000, 65_535]) {
                let id = world.yjs_client_id(i, k);
                assert!((1..1 << 53).contains(&id));
                if let Some(other) = seen.insert(id, i) {
                    panic!("devices {other} and {i} share client id {id}");
                }
            }
        }
    }
}
