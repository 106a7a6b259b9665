//! Smoke test: two replicas of each CRDT exchange envelopes and converge.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use automerge::transaction::Transactable;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition};
use yrs::{Text, Transact};

#[test]
fn yjs_two_replicas_converge() {
    let w = World::new(1, 2, CrdtKind::Yjs);
    let mut a = w.replica(0);
    let mut b = w.replica(1);
    {
        let t = a.yjs().unwrap().text("text");
        let mut txn = a.yjs().unwrap().doc().transact_mut();
        t.insert(&mut txn, 0, "hello 🌍");
    }
    a.commit().unwrap().unwrap();
    {
        let t = b.yjs().unwrap().text("text");
        let mut txn = b.yjs().unwrap().doc().transact_mut();
        t.insert(&mut txn, 0, "B:");
    }
    b.commit().unwrap().unwrap();
    for (_, e) in a.drain_outbox() {
        assert!(matches!(b.receive(&e), Disposition::Applied { .. }));
    }
    for (_, e) in b.drain_outbox() {
        assert!(matches!(a.receive(&e), Disposition::Applied { .. }));
    }
    assert_eq!(a.state_digest(), b.state_digest());
    assert_eq!(a.history_digest(), b.history_digest());
    println!("{}", a.materialize().to_canonical_string());
}

#[test]
fn automerge_two_replicas_converge() {
    let w = World::new(2, 2, CrdtKind::Automerge);
    let mut a = w.replica(0);
    let mut b = w.replica(1);
    let doc = a.automerge_mut().unwrap().doc_mut();
    let text = doc
        .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
        .unwrap();
    doc.splice_text(&text, 0, 0, "hello").unwrap();
    a.commit().unwrap().unwrap();
    for (_, e) in a.drain_outbox() {
        assert!(
            matches!(b.receive(&e), Disposition::Applied { .. }),
            "{:?}",
            b.receive(&e)
        );
    }
    let doc = b.automerge_mut().unwrap().doc_mut();
    doc.splice_text(&text, 5, 0, " world").unwrap();
    b.commit().unwrap().unwrap();
    for (_, e) in b.drain_outbox() {
        let d = a.receive(&e);
        assert!(matches!(d, Disposition::Applied { .. }), "{d:?}");
    }
    assert_eq!(a.state_digest(), b.state_digest());
    assert_eq!(a.history_digest(), b.history_digest());
    assert_eq!(
        a.materialize().to_canonical_string(),
        r#"{"text":"hello world"}"#
    );
}
