//! Entry points shared by the cargo-fuzz targets in `fuzz/` and the stable corpus
//! replay test. Each takes arbitrary bytes, must never panic, and asserts the
//! document layer's bounds.

#![allow(clippy::expect_used, clippy::panic)]

use crate::dag::{MAX_PENDING, MAX_PENDING_PER_AUTHOR};
use crate::replica::{CrdtKind, Replica};
use crate::sync::SyncSession;
use crate::testkit::World;

/// The world the fuzz targets run in (both CRDTs use the same keys).
pub fn fuzz_world(crdt: CrdtKind) -> World {
    World::new(0x66757a7a, 3, crdt)
}

/// Splits fuzz input into messages: each is `u16be(len) || bytes`.
pub fn split_messages(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let n = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (msg, next) = tail.split_at(n);
        out.push(msg);
        rest = next;
    }
    out
}

fn check_bounds(r: &Replica) {
    let dag = r.dag();
    assert!(dag.pending.len() <= MAX_PENDING);
    assert!(
        dag.pending_per_author
            .values()
            .all(|n| *n <= MAX_PENDING_PER_AUTHOR)
    );
}

/// Feeds every message to a fresh replica of each CRDT as an envelope: no panic,
/// buffer within bounds, and every disposition is consistent with the verdict.
pub fn replica_receive(data: &[u8]) {
    let msgs = split_messages(data);
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let mut r = fuzz_world(crdt).replica(2);
        for m in &msgs {
            let _ = r.receive(m);
            check_bounds(&r);
        }
        let _ = r.state_digest();
        let _ = r.history_digest();
    }
}

/// Feeds every message to a sync session of a replica that holds a little
/// content: no panic, and replies stay within the sync limits.
pub fn sync_message(data: &[u8]) {
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let mut r = fuzz_world(crdt).replica(2);
        let mut s = SyncSession::new();
        for m in split_messages(data) {
            if let Ok((replies, _)) = s.handle(&mut r, m) {
                for reply in replies {
                    assert!(reply.len() <= crate::sync::MAX_SYNC_MESSAGE_BYTES);
                }
            }
            check_bounds(&r);
        }
    }
}

/// Loads the bytes as a checkpoint state of each CRDT (spec STO-26): no panic,
/// whatever the bytes; a state that loads must reproduce its own digest.
pub fn checkpoint_state(data: &[u8]) {
    use crate::checkpoint::{Provisional, State, state_of};
    use crate::content;
    use crate::crdt::YjsSchema;
    let w = fuzz_world(CrdtKind::Yjs);
    for (crdt, content_type) in [
        (CrdtKind::Yjs, content::YJS_SNAPSHOT),
        (CrdtKind::Automerge, content::AUTOMERGE_SNAPSHOT),
    ] {
        let st = State {
            content_type,
            state: data.to_vec(),
            state_digest: [0; 32],
        };
        // The digest is almost surely wrong: loading must fail cleanly.
        let _ = Provisional::load(crdt, &w.doc_id, &YjsSchema::default(), &st);
    }
    // A state written by a replica always loads as itself.
    let mut r = fuzz_world(CrdtKind::Yjs).replica(0);
    let text = String::from_utf8_lossy(data.get(..64).unwrap_or(data)).into_owned();
    if crate::testkit::insert_text(&mut r, 0, &text).is_ok() && r.commit().is_ok() {
        let st = state_of(&mut r);
        let p = Provisional::load(CrdtKind::Yjs, &w.doc_id, &YjsSchema::default(), &st)
            .expect("a replica's own state loads");
        assert_eq!(
            crate::digest::state_digest(p.materialize()),
            st.state_digest
        );
    }
}
