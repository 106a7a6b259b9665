//! The four application stories of spec chapter 13, each played across 3 or 4
//! replicas over the simulator's lossy, reordering network with random delivery
//! schedules (proptest draws the seeds), each ending in its documented state on
//! every replica. spec: APP-1 to APP-15.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use clientful_app::AppError;
use clientful_app::data::{self, MapOp};
use clientful_app::diagnose::{Bundle, Verdict as DiagVerdict, compare};
use clientful_app::invariants::{
    AfterMerge, CommentsNeedPost, Decision, Invariant, LOST_AND_FOUND, RepairRule, Strategy,
    after_merge, comment_value, resolve,
};
use clientful_app::lifecycle::{DeleteOutcome, DeletePolicy, Lifecycle, Status, status};
use clientful_app::migrate::{Gate, Migration, Schema, protocol_skew};
use clientful_doc::CrdtKind;
use clientful_doc::testkit::insert_text;
use common::{Cluster, crdts};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Replica 0 writes the shared text and everyone syncs: the common start.
fn started(seed: u64, n: usize, crdt: CrdtKind) -> Cluster {
    let mut c = Cluster::new(seed, n, crdt);
    insert_text(c.r(0), 0, "draft").unwrap();
    c.r(0).commit().unwrap();
    c.heal();
    c
}

fn statuses(c: &mut Cluster) -> Vec<Status> {
    (0..c.replicas.len()).map(|i| status(c.r(i))).collect()
}

// ---------------------------------------------------------------- story 1

/// The plane: device 2 deletes the document while offline; the others keep
/// editing; it comes back. The deletion never saw those edits, so every replica
/// undoes it: the document is active, with every edit, on every replica.
fn offline_delete_is_undone(seed: u64, crdt: CrdtKind) {
    let mut c = started(seed, 4, crdt);
    c.set_online(2, false);
    let mut life = Lifecycle::new(DeletePolicy::TrashWithUndo);
    assert_eq!(
        life.request_delete(c.r(2), false).unwrap(),
        DeleteOutcome::Committed
    );
    assert!(matches!(status(c.r(2)), Status::Trashed { .. }));
    let edits = 1 + (seed % 4) as usize;
    for k in 0..edits {
        let who = [0, 1, 3][k % 3];
        c.append_edit(who, &format!("[e{k}]"));
        c.run_random(4);
    }
    c.set_online(2, true);
    c.run_random(6);
    c.heal();
    c.assert_converged();
    for (i, s) in statuses(&mut c).into_iter().enumerate() {
        assert_eq!(s, Status::Active, "replica {i}");
    }
    let text = clientful_sim::edit::text(c.r(2));
    for k in 0..edits {
        assert!(text.contains(&format!("[e{k}]")), "{text}");
    }
}

/// A deletion that saw everything stands, on every replica; a later restore
/// by another device brings it back everywhere.
fn informed_delete_stands_and_restore_wins(seed: u64, crdt: CrdtKind) {
    let mut c = started(seed, 3, crdt);
    c.random_edit(1, "[x]");
    c.heal();
    let mut life = Lifecycle::new(DeletePolicy::TrashWithUndo);
    life.request_delete(c.r(0), true).unwrap();
    c.broadcast(0);
    c.run_random(5);
    c.heal();
    c.assert_converged();
    let me = c.r(0).device_key();
    for s in statuses(&mut c) {
        assert_eq!(s, Status::Trashed { by: vec![me] });
    }
    Lifecycle::default().restore(c.r(2)).unwrap();
    c.broadcast(2);
    c.run_random(5);
    c.heal();
    c.assert_converged();
    for s in statuses(&mut c) {
        assert_eq!(s, Status::Active);
    }
}

/// The two policies: no deletes while offline refuses; hold-until-seen waits
/// until the device has caught up, then deletes with everything seen, so the
/// deletion stands on every replica.
fn policies(seed: u64, crdt: CrdtKind) {
    let mut c = started(seed, 3, crdt);
    c.set_online(2, false);
    let mut strict = Lifecycle::new(DeletePolicy::NoDeletesWhileOffline);
    assert!(matches!(
        strict.request_delete(c.r(2), false),
        Err(AppError::Offline)
    ));
    let mut held = Lifecycle::new(DeletePolicy::HoldUntilSeen);
    assert_eq!(
        held.request_delete(c.r(2), false).unwrap(),
        DeleteOutcome::Held
    );
    assert_eq!(status(c.r(2)), Status::Active);
    c.random_edit(0, "[late]");
    c.random_edit(1, "[later]");
    c.run_random(5);
    c.set_online(2, true);
    c.heal();
    assert!(held.caught_up(c.r(2)).unwrap());
    c.broadcast(2);
    c.run_random(5);
    c.heal();
    c.assert_converged();
    let by = vec![c.r(2).device_key()];
    for s in statuses(&mut c) {
        assert_eq!(s, Status::Trashed { by: by.clone() });
    }
}

// ---------------------------------------------------------------- story 2

fn posts_start(seed: u64, crdt: CrdtKind) -> Cluster {
    let mut c = started(seed, 3, crdt);
    data::apply_and_commit(
        c.r(0),
        &[
            MapOp::Set("post/p1".into(), "Trip".into()),
            MapOp::Set("comment/c1".into(), comment_value("p1", "Fun", "Trip")),
            MapOp::Set("post/p2".into(), "Other".into()),
        ],
    )
    .unwrap();
    c.heal();
    c
}

/// Replica 1, offline, deletes the post and its comments; replica 2, not yet
/// aware, comments on it. Then the network delivers at random, every replica
/// running the invariants after every merge.
fn race(c: &mut Cluster) {
    c.set_online(1, false);
    data::apply_and_commit(
        c.r(1),
        &[
            MapOp::Delete("post/p1".into()),
            MapOp::Delete("comment/c1".into()),
        ],
    )
    .unwrap();
    data::apply_and_commit(
        c.r(2),
        &[MapOp::Set(
            "comment/c2".into(),
            comment_value("p1", "Me too", "Trip"),
        )],
    )
    .unwrap();
    c.broadcast(2);
    c.run_random(4);
    c.set_online(1, true);
    c.run_random(8);
    c.heal();
    c.assert_converged();
}

fn hook(strategy: Strategy) -> common::Hook {
    Box::new(move |_, r| {
        after_merge(r, &[(&CommentsNeedPost as &dyn Invariant, strategy)]).unwrap();
    })
}

fn invariant_story(seed: u64, crdt: CrdtKind, strategy: Strategy) {
    let mut c = posts_start(seed, crdt);
    c.hook = Some(hook(strategy));
    race(&mut c);
    let views: Vec<_> = (0..3).map(|i| data::read(c.r(i))).collect();
    for (i, d) in views.iter().enumerate() {
        // The invariant holds everywhere, and a further pass writes nothing (the
        // repairs do not fight).
        assert!(CommentsNeedPost.check(d).is_empty(), "replica {i}: {d:?}");
        let again =
            after_merge(c.r(i), &[(&CommentsNeedPost as &dyn Invariant, strategy)]).unwrap();
        assert_eq!(again.writes, 0);
        assert!(!d.contains_key("comment/c1"), "the deletion of c1 stands");
        assert_eq!(d.get("post/p2").map(String::as_str), Some("Other"));
        match strategy {
            Strategy::Repair(RepairRule::RemoveOrphans) => {
                assert!(!d.contains_key("comment/c2"));
                assert!(!d.contains_key("post/p1"));
            }
            Strategy::Repair(RepairRule::Reparent) => {
                assert!(!d.contains_key("post/p1"));
                assert_eq!(
                    d.get(LOST_AND_FOUND).map(String::as_str),
                    Some("Lost and found")
                );
                assert!(
                    d["comment/c2"].contains("\"post\":\"lost-and-found\""),
                    "{d:?}"
                );
            }
            Strategy::Recreate => {
                assert_eq!(d.get("post/p1").map(String::as_str), Some("Trip"));
                assert!(d["comment/c2"].contains("Me too"));
            }
            Strategy::Surface => unreachable!(),
        }
    }
}

/// Conflict surfacing: nothing is written; every replica reports the same
/// conflict; a user on replica 0 decides, and the decision reaches everyone.
fn surfaced_conflict(seed: u64, crdt: CrdtKind, decision: Decision) {
    let mut c = posts_start(seed, crdt);
    c.hook = Some(hook(Strategy::Surface));
    race(&mut c);
    let reports: Vec<AfterMerge> = (0..3)
        .map(|i| {
            after_merge(
                c.r(i),
                &[(&CommentsNeedPost as &dyn Invariant, Strategy::Surface)],
            )
            .unwrap()
        })
        .collect();
    for r in &reports {
        assert_eq!(r.writes, 0);
        assert_eq!(r.conflicts, reports[0].conflicts);
    }
    assert_eq!(reports[0].conflicts.len(), 1);
    assert_eq!(reports[0].conflicts[0].subject, "comment/c2");
    let v = reports[0].conflicts[0].clone();
    resolve(c.r(0), &CommentsNeedPost, &v, decision).unwrap();
    c.broadcast(0);
    c.run_random(5);
    c.heal();
    c.assert_converged();
    for i in 0..3 {
        let d = data::read(c.r(i));
        assert!(CommentsNeedPost.check(&d).is_empty());
        match decision {
            Decision::Drop => assert!(!d.contains_key("comment/c2")),
            Decision::Recreate => assert_eq!(d.get("post/p1").map(String::as_str), Some("Trip")),
        }
    }
}

// ---------------------------------------------------------------- story 3

/// v2 splits `person/<id>` = "First Last" into `person/<id>/first` and `/last`.
fn split_names(d: &data::Data) -> Vec<MapOp> {
    let mut ops = Vec::new();
    for (k, v) in d {
        let Some(id) = k.strip_prefix("person/") else {
            continue;
        };
        if id.contains('/') {
            continue;
        }
        let (first, last) = v.split_once(' ').unwrap_or((v.as_str(), ""));
        ops.push(MapOp::Set(format!("person/{id}/first"), first.into()));
        ops.push(MapOp::Set(format!("person/{id}/last"), last.into()));
        ops.push(MapOp::Delete(k.clone()));
    }
    ops
}

/// v3 adds an optional `email` (nothing to move; not breaking).
fn add_email(_: &data::Data) -> Vec<MapOp> {
    Vec::new()
}

/// v4 renames `last` to `family`, breaking for older writers.
fn rename_last(d: &data::Data) -> Vec<MapOp> {
    let mut ops = Vec::new();
    for (k, v) in d {
        if let Some(id) = k
            .strip_prefix("person/")
            .and_then(|r| r.strip_suffix("/last"))
        {
            ops.push(MapOp::Set(format!("person/{id}/family"), v.clone()));
            ops.push(MapOp::Delete(k.clone()));
        }
    }
    ops
}

fn schema(version: u32) -> Schema {
    let all = [
        Migration {
            to: 2,
            breaking_for_writers: false,
            apply: split_names,
        },
        Migration {
            to: 3,
            breaking_for_writers: false,
            apply: add_email,
        },
        Migration {
            to: 4,
            breaking_for_writers: true,
            apply: rename_last,
        },
    ];
    Schema {
        version,
        migrations: all.into_iter().filter(|m| m.to <= version).collect(),
    }
}

/// Two v2 devices migrate concurrently while a v1 device keeps writing old-shape
/// data: nothing is duplicated or lost, and every replica ends in the v2 shape.
/// Then a v3 device adds a field the v2 device does not know (kept), and a v4
/// device makes a breaking change: older apps get "update the app".
fn migrations_and_skew(seed: u64, crdt: CrdtKind) {
    let mut c = started(seed, 4, crdt);
    let v1 = schema(1);
    v1.open(c.r(2)).unwrap();
    v1.write(
        c.r(2),
        &[
            MapOp::Set("person/1".into(), "Ada Lovelace".into()),
            MapOp::Set("person/2".into(), "Alan Turing".into()),
        ],
    )
    .unwrap();
    c.heal();
    // Devices 0 and 1 run v2; they and device 2 (v1) work concurrently.
    c.hook = Some(Box::new(|i, r| {
        let app = match i {
            0 | 1 => schema(2),
            3 => schema(1),
            _ => schema(1),
        };
        app.open(r).unwrap();
    }));
    c.set_online(1, false);
    schema(2).open(c.r(0)).unwrap();
    c.broadcast(0);
    schema(2).open(c.r(1)).unwrap();
    v1.write(
        c.r(2),
        &[MapOp::Set("person/3".into(), "Grace Hopper".into())],
    )
    .unwrap();
    c.broadcast(2);
    c.run_random(4);
    c.set_online(1, true);
    c.run_random(6);
    c.heal();
    c.assert_converged();
    for i in 0..4 {
        let d = data::read(c.r(i));
        let persons: Vec<(String, String)> = d
            .iter()
            .filter(|(k, _)| k.starts_with("person/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let want: Vec<(String, String)> = [
            ("person/1/first", "Ada"),
            ("person/1/last", "Lovelace"),
            ("person/2/first", "Alan"),
            ("person/2/last", "Turing"),
            ("person/3/first", "Grace"),
            ("person/3/last", "Hopper"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(persons, want, "replica {i}");
        assert_eq!(clientful_app::migrate::version(&d), 2);
    }
    // v3 on device 3 adds an email; device 0 (v2) edits the same person
    // concurrently: the field it does not know is kept.
    c.hook = None;
    let v3 = schema(3);
    v3.open(c.r(3)).unwrap();
    v3.write(
        c.r(3),
        &[MapOp::Set(
            "person/1/email".into(),
            "ada@example.org".into(),
        )],
    )
    .unwrap();
    c.broadcast(3);
    schema(2)
        .write(
            c.r(0),
            &[MapOp::Set("person/1/first".into(), "Augusta Ada".into())],
        )
        .unwrap();
    c.broadcast(0);
    c.run_random(5);
    c.heal();
    c.assert_converged();
    let d = data::read(c.r(0));
    assert_eq!(
        d.get("person/1/email").map(String::as_str),
        Some("ada@example.org")
    );
    assert_eq!(
        d.get("person/1/first").map(String::as_str),
        Some("Augusta Ada")
    );
    // v4 is breaking for writers: the v1, v2 and v3 apps stop writing with a clear signal.
    schema(4).open(c.r(3)).unwrap();
    c.broadcast(3);
    c.run_random(5);
    c.heal();
    c.assert_converged();
    for (i, app) in [(0usize, 2u32), (1, 2), (2, 1)] {
        assert_eq!(
            schema(app).open(c.r(i)).unwrap(),
            Gate::ReadOnly { need: 4 }
        );
        let before = c.r(i).history_digest();
        let err = schema(app).write(c.r(i), &[MapOp::Set("person/1/first".into(), "X".into())]);
        assert!(
            matches!(err, Err(AppError::UpdateRequired { need: 4 })),
            "{err:?}"
        );
        assert_eq!(c.r(i).history_digest(), before, "nothing written");
    }
    let d = data::read(c.r(2));
    assert_eq!(
        d.get("person/1/family").map(String::as_str),
        Some("Lovelace")
    );
    assert!(!d.contains_key("person/1/last"));
}

// ---------------------------------------------------------------- story 4

/// Three devices edit over a lossy network and stop before syncing. Their
/// bundles hold no plaintext; comparing them names exactly the envelopes each
/// lacks (checked against the replicas themselves); after the heal every pair
/// compares as in sync.
fn diagnosis(seed: u64, crdt: CrdtKind) {
    let mut c = started(seed, 3, crdt);
    c.set_online(2, false);
    for k in 0..(2 + seed % 3) {
        c.random_edit((k % 3) as usize, &format!("secret-{k}"));
        c.run_random(3);
    }
    let bundles: Vec<Bundle> = (0..3).map(|i| Bundle::capture(c.r(i), &[])).collect();
    for b in &bundles {
        let text = b.to_json().to_string();
        assert!(!text.contains("secret"), "plaintext in bundle: {text}");
        assert!(!text.contains("draft"));
        assert!(
            !text.contains(&hex::encode(c.world.doc_id)),
            "raw doc id in bundle"
        );
        assert_eq!(Bundle::from_json(&b.to_json()).unwrap(), *b);
    }
    for a in 0..3 {
        for b in 0..3 {
            let d = compare(&bundles[a], &bundles[b]);
            let same = c.replicas[a].history_digest() == c.replicas[b].history_digest();
            if same {
                assert_eq!(d.verdict, DiagVerdict::InSync, "{:?}", d.findings);
            } else {
                assert_eq!(d.verdict, DiagVerdict::Behind, "{:?}", d.findings);
                // Every chain-length difference is named.
                let va = c.replicas[a].dag().version_vector();
                let vb = c.replicas[b].dag().version_vector();
                let differing = va
                    .keys()
                    .chain(vb.keys())
                    .filter(|k| va.get(*k) != vb.get(*k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                let named = d
                    .findings
                    .iter()
                    .filter(|f| f.contains(" lacks envelopes "))
                    .count();
                assert_eq!(named, differing, "{:?}", d.findings);
            }
        }
    }
    c.heal();
    let bundles: Vec<Bundle> = (0..3).map(|i| Bundle::capture(c.r(i), &[])).collect();
    for a in 0..3 {
        for b in 0..3 {
            assert_eq!(
                compare(&bundles[a], &bundles[b]).verdict,
                DiagVerdict::InSync
            );
        }
    }
}

#[test]
fn a_state_divergence_is_told_apart_from_missing_envelopes() {
    let mut c = started(9, 2, CrdtKind::Yjs);
    let a = Bundle::capture(c.r(0), &[clientful_core::ErrorClass::BadSignature]);
    let mut b = Bundle::capture(c.r(1), &[]);
    assert!(a.to_json()["recentErrors"][0] == "BAD_SIGNATURE");
    b.state_digest = "00".repeat(32);
    let d = compare(&a, &b);
    assert_eq!(d.verdict, DiagVerdict::StateDiverged);
    assert!(d.findings[0].contains("same envelopes but different states"));
    b.document = "other".into();
    assert_eq!(compare(&a, &b).verdict, DiagVerdict::NotComparable);
}

#[test]
fn a_future_protocol_version_says_update_the_app() {
    use clientful_proto::v1 as w;
    use prost::Message;
    let mut c = started(3, 2, CrdtKind::Yjs);
    insert_text(c.r(0), 0, "x").unwrap();
    c.r(0).commit().unwrap();
    let (_, bytes) = c.r(0).drain_outbox().pop().unwrap();
    let signed = w::SignedEnvelope::decode(bytes.as_slice()).unwrap();
    let mut payload = w::EnvelopePayload::decode(signed.payload.as_slice()).unwrap();
    let mut header = w::EnvelopeHeader::decode(payload.header.as_slice()).unwrap();
    header.protocol_version = 2;
    payload.header = header.encode_to_vec();
    let dev = c.world.device(0);
    let v2 = clientful_core::envelope::raw::sign_payload(
        &dev,
        &c.world.space_id,
        payload.encode_to_vec(),
    )
    .unwrap();
    let d = c.r(1).receive(&v2);
    assert!(
        matches!(protocol_skew(&d), Some(AppError::ProtocolTooNew)),
        "{d:?}"
    );
    assert!(protocol_skew(&c.r(1).receive(&bytes)).is_none());
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn story_1_offline_delete_is_undone_by_unseen_edits(seed in any::<u64>()) {
        for crdt in crdts() { offline_delete_is_undone(seed, crdt); }
    }

    #[test]
    fn story_1_informed_delete_stands_and_restore_wins(seed in any::<u64>()) {
        for crdt in crdts() { informed_delete_stands_and_restore_wins(seed, crdt); }
    }

    #[test]
    fn story_1_delete_policies(seed in any::<u64>()) {
        for crdt in crdts() { policies(seed, crdt); }
    }

    #[test]
    fn story_2_after_merge_repair_removes_orphans(seed in any::<u64>()) {
        for crdt in crdts() { invariant_story(seed, crdt, Strategy::Repair(RepairRule::RemoveOrphans)); }
    }

    #[test]
    fn story_2_after_merge_repair_reparents(seed in any::<u64>()) {
        for crdt in crdts() { invariant_story(seed, crdt, Strategy::Repair(RepairRule::Reparent)); }
    }

    #[test]
    fn story_2_preemptive_recreation(seed in any::<u64>()) {
        for crdt in crdts() { invariant_story(seed, crdt, Strategy::Recreate); }
    }

    #[test]
    fn story_2_conflict_surfacing(seed in any::<u64>(), drop in any::<bool>()) {
        let decision = if drop { Decision::Drop } else { Decision::Recreate };
        for crdt in crdts() { surfaced_conflict(seed, crdt, decision); }
    }

    #[test]
    fn story_3_migrations_converge_and_old_apps_stop_cleanly(seed in any::<u64>()) {
        for crdt in crdts() { migrations_and_skew(seed, crdt); }
    }

    #[test]
    fn story_4_diagnosis_names_the_divergence_without_plaintext(seed in any::<u64>()) {
        for crdt in crdts() { diagnosis(seed, crdt); }
    }
}
