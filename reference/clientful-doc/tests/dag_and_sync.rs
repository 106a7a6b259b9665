//! Regression tests: rejection cascades give the same verdict in every arrival
//! order (DOC-7, DOC-16); the sync exchange reaches quiescence and convergence
//! across its byte budget (SYNC-*); a restored Automerge device does not resend its
//! old changes (DOC-17).
//! spec: DOC-7, DOC-16, DOC-17, SYNC-2, SYNC-3.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use automerge::transaction::Transactable;
use clientful_core::envelope::{self, EnvelopeId, SealRequest};
use clientful_core::keys::EpochKey;
use clientful_doc::sync::SyncSession;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition, Replica, Verdict, content};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use yrs::{Text, Transact};

fn yjs_update_as(client: u64, text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(client);
    let t = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, text);
    drop(txn);
    yrs::ReadTxn::encode_state_as_update_v1(&doc.transact(), &yrs::StateVector::default())
}

fn seal(
    w: &World,
    dev: usize,
    seq: u64,
    prev: Option<EnvelopeId>,
    preds: Vec<EnvelopeId>,
    body: &[u8],
    n: u64,
) -> (EnvelopeId, Vec<u8>) {
    let s = envelope::seal(
        &w.device(dev),
        &EpochKey::new(w.epoch.0, w.epoch.1),
        &SealRequest {
            space_id: w.space_id,
            doc_id: w.doc_id,
            seq,
            prev,
            preds,
            content_type: content::YJS_UPDATE_V1,
            body,
        },
        &mut ChaCha20Rng::seed_from_u64(n),
    )
    .unwrap();
    (s.id, s.bytes)
}

#[test]
fn rejection_cascades_to_buffered_descendants_in_any_order() {
    let w = World::new(7, 3, CrdtKind::Yjs);
    let victim = w.yjs_client_id(0, 0);
    let own = w.yjs_client_id(2, 0);
    // X: device 2 writes as device 0 (invalid). Y: device 2's seq 2 on top of X,
    // also waiting for an id nobody has.
    let (x_id, x) = seal(&w, 2, 1, None, vec![], &yjs_update_as(victim, "spoof"), 1);
    let (y_id, y) = seal(
        &w,
        2,
        2,
        Some(x_id),
        vec![[9; 32], x_id],
        &yjs_update_as(own, "y"),
        2,
    );

    let mut first = w.replica(1);
    assert!(matches!(first.receive(&y), Disposition::Buffered { .. }));
    assert!(matches!(first.receive(&x), Disposition::Rejected { .. }));
    let mut second = w.replica(1);
    assert!(matches!(second.receive(&x), Disposition::Rejected { .. }));
    assert!(matches!(second.receive(&y), Disposition::Rejected { .. }));
    for r in [&first, &second] {
        assert!(matches!(r.verdict(&x_id), Verdict::Rejected(_)));
        assert!(matches!(r.verdict(&y_id), Verdict::Rejected(_)));
        assert!(r.dag().pending.is_empty());
    }
}

/// Runs two sync sessions against each other until neither has anything to say.
fn sync_pair(a: &mut Replica, b: &mut Replica) -> usize {
    let (mut sa, mut sb) = (SyncSession::new(), SyncSession::new());
    let mut to_b = vec![sa.hello(a)];
    let mut to_a: Vec<Vec<u8>> = Vec::new();
    let mut rounds = 0;
    while !(to_a.is_empty() && to_b.is_empty()) {
        rounds += 1;
        assert!(rounds < 1000, "sync did not reach quiescence");
        let mut next_to_a = Vec::new();
        for m in to_b.drain(..) {
            next_to_a.extend(sb.handle(b, &m).unwrap().0);
        }
        let mut next_to_b = Vec::new();
        for m in to_a.drain(..) {
            next_to_b.extend(sa.handle(a, &m).unwrap().0);
        }
        to_a = next_to_a;
        to_b = next_to_b;
    }
    rounds
}

#[test]
fn sync_converges_across_the_byte_budget() {
    let w = World::new(8, 2, CrdtKind::Yjs);
    let mut a = w.replica(0);
    let mut b = w.replica(1);
    // 400 envelopes of about 4 KiB each on A (more than the 1 MiB budget), a few on B.
    let chunk = "é".repeat(2000);
    for i in 0..400u32 {
        let y = a.yjs().unwrap();
        let t = y.text("text");
        t.insert(&mut y.doc().transact_mut(), 0, &format!("{i}{chunk}"));
        a.commit().unwrap();
    }
    for i in 0..5u32 {
        let y = b.yjs().unwrap();
        let t = y.text("text");
        t.insert(&mut y.doc().transact_mut(), 0, &format!("b{i}"));
        b.commit().unwrap();
    }
    a.drain_outbox();
    b.drain_outbox();
    let rounds = sync_pair(&mut a, &mut b);
    assert!(rounds >= 2);
    assert_eq!(a.history_digest(), b.history_digest());
    assert_eq!(a.state_digest(), b.state_digest());
    assert_eq!(a.dag().nodes.len(), 405);
    // A second sync has nothing left to send.
    assert!(sync_pair(&mut a, &mut b) <= 2);
}

#[test]
fn sync_fetches_missing_predecessors_by_want() {
    let w = World::new(9, 3, CrdtKind::Yjs);
    let (mut a, mut b, mut c) = (w.replica(0), w.replica(1), w.replica(2));
    let y = a.yjs().unwrap();
    y.text("text")
        .insert(&mut y.doc().transact_mut(), 0, "root");
    a.commit().unwrap();
    let root = a.drain_outbox();
    for (_, e) in &root {
        b.receive(e);
    }
    let y = b.yjs().unwrap();
    y.text("text")
        .insert(&mut y.doc().transact_mut(), 4, " child");
    b.commit().unwrap();
    let child = b.drain_outbox();
    // C gets only the child: buffered; syncing with A (who lacks the child) and B fills in.
    assert!(matches!(
        c.receive(&child[0].1),
        Disposition::Buffered { .. }
    ));
    sync_pair(&mut c, &mut a);
    sync_pair(&mut c, &mut b);
    sync_pair(&mut a, &mut b);
    assert!(c.dag().pending.is_empty());
    assert_eq!(a.state_digest(), c.state_digest());
    assert_eq!(b.state_digest(), c.state_digest());
    assert_eq!(
        c.materialize().to_canonical_string(),
        r#"{"data":{},"text":"root child"}"#
    );
}

#[test]
fn restored_automerge_device_does_not_resend_old_changes() {
    let w = World::new(10, 2, CrdtKind::Automerge);
    let mut a = w.replica(0);
    let mut b = w.replica(1);
    let doc = a.automerge_mut().unwrap().doc_mut();
    let text = doc
        .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
        .unwrap();
    doc.splice_text(&text, 0, 0, "before crash").unwrap();
    a.commit().unwrap();
    for (_, e) in a.drain_outbox() {
        b.receive(&e);
    }
    // Restart A from its persisted envelopes, edit again, and deliver to B.
    let persisted = a.persisted_envelopes();
    let mut a = Replica::restore(w.config(0, 1), &persisted);
    assert_eq!(
        a.commit().unwrap(),
        None,
        "nothing new to commit after a restore"
    );
    let doc = a.automerge_mut().unwrap().doc_mut();
    doc.splice_text(&text, 0, 0, "after: ").unwrap();
    a.commit().unwrap().unwrap();
    for (_, e) in a.drain_outbox() {
        let d = b.receive(&e);
        assert!(matches!(d, Disposition::Applied { .. }), "{d:?}");
    }
    assert_eq!(a.state_digest(), b.state_digest());
    assert_eq!(
        b.materialize().to_canonical_string(),
        r#"{"text":"after: before crash"}"#
    );
}

/// An honest author builds on one branch of an equivocator; when the fork is
/// found, its stranded operations must not break its chain: it moves to a new
/// actor incarnation, its next envelope is valid everywhere, and all converge.
/// spec: DOC-9, DOC-20, DOC-18, DOC-3, DOC-4.
#[test]
fn honest_author_survives_building_on_an_excluded_branch() {
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let w = World::new(11, 4, crdt);
        // Device 3 equivocates: two different seq-1 envelopes from two replicas
        // of itself (same key, same seq).
        let mut byz1 = w.replica(3);
        let mut byz2 = Replica::new(w.config(3, 1));
        edit(&mut byz1, 0, "QQQQ");
        edit(&mut byz2, 0, "YY");
        let e1 = byz1
            .commit()
            .unwrap()
            .map(|_| byz1.drain_outbox().remove(0).1)
            .unwrap();
        let e2 = byz2
            .commit()
            .unwrap()
            .map(|_| byz2.drain_outbox().remove(0).1)
            .unwrap();
        let (mut a, mut c) = (w.replica(0), w.replica(2));
        assert!(matches!(a.receive(&e1), Disposition::Applied { .. }));
        assert!(matches!(c.receive(&e2), Disposition::Applied { .. }));
        // C builds on the other branch before it sees the first: both branches
        // are witnessed (DOC-20), so the whole fork is excluded.
        edit(&mut c, 0, "cc");
        c.commit().unwrap().unwrap();
        let c1 = c.drain_outbox();
        // A edits right after the equivocator's text (its operations reference it).
        edit(&mut a, 2, "aa");
        a.commit().unwrap().unwrap();
        let a1 = a.drain_outbox();
        // A learns of the other branch: fork, exclusion, rebuild.
        assert!(matches!(a.receive(&e2), Disposition::Rejected { .. }));
        assert_eq!(a.equivocators().len(), 1);
        assert!(matches!(a.receive(&c1[0].1), Disposition::Applied { .. }));
        // A keeps writing; its envelope must be valid for C.
        edit(&mut a, 0, "after");
        a.commit().unwrap().unwrap();
        let a2 = a.drain_outbox();
        for env in [&e1]
            .into_iter()
            .chain(a1.iter().map(|x| &x.1))
            .chain(a2.iter().map(|x| &x.1))
        {
            let d = c.receive(env);
            assert!(
                !matches!(d, Disposition::Rejected { class, .. } if class != clientful_core::ErrorClass::Equivocation),
                "{crdt:?}: {d:?}"
            );
        }
        for (_, env) in a2.iter() {
            assert_eq!(
                c.verdict(&envelope::decode(env).unwrap().id),
                Verdict::Applied,
                "{crdt:?}"
            );
        }
        assert_eq!(a.history_digest(), c.history_digest(), "{crdt:?}");
        assert_eq!(a.state_digest(), c.state_digest(), "{crdt:?}");
        let text = a.materialize().to_canonical_string();
        assert!(
            text.contains("after") && !text.contains('Q') && !text.contains('Y'),
            "{crdt:?}: {text}"
        );
    }
}

fn edit(r: &mut Replica, pos: u32, s: &str) {
    clientful_doc::testkit::insert_text(r, pos, s).unwrap();
}

/// A replica restored from its own envelopes keeps its Automerge actor: its own
/// changes reach the fresh document through `apply`, which automerge does not count
/// as local, and the restore used to read that as a clock behind the chain and move
/// to a new incarnation each time (the browser's JS document then wrote under the
/// old actor and was refused). Its next envelope continues the chain.
/// spec: DOC-3, DOC-18.
#[test]
fn a_restored_automerge_replica_keeps_its_actor_and_chain() {
    let w = World::new(21, 2, CrdtKind::Automerge);
    let mut a = w.replica(0);
    let mut b = w.replica(1);
    let mut own = Vec::new();
    for (pos, s) in [(0, "hello"), (5, ","), (6, " there")] {
        edit(&mut a, pos, s);
        a.commit().unwrap().unwrap();
        for (_, e) in a.drain_outbox() {
            assert!(matches!(b.receive(&e), Disposition::Applied { .. }));
            own.push(e);
        }
    }
    let actor = a.automerge_mut().unwrap().actor();
    for _ in 0..3 {
        let mut r = Replica::restore(w.config(0, 1), &own);
        assert_eq!(
            r.automerge_mut().unwrap().actor(),
            actor,
            "same incarnation"
        );
        assert_eq!(r.state_digest(), a.state_digest());
    }
    let mut r = Replica::restore(w.config(0, 1), &own);
    edit(&mut r, 0, ">> ");
    r.commit().unwrap().unwrap();
    for (_, e) in r.drain_outbox() {
        let d = b.receive(&e);
        assert!(matches!(d, Disposition::Applied { .. }), "{d:?}");
    }
    assert_eq!(r.state_digest(), b.state_digest());
    assert_eq!(
        b.materialize().to_canonical_string(),
        r#"{"text":">> hello, there"}"#
    );
}
