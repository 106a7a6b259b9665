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
/// whatever the bytes; a replica's own state loads with the replica's digest.
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
        };
        // Arbitrary bytes: loading fails cleanly or gives some document.
        let _ = Provisional::load(crdt, &w.doc_id, &YjsSchema::default(), &st);
    }
    // A state written by a replica always loads as itself.
    let mut r = fuzz_world(CrdtKind::Yjs).replica(0);
    let text = String::from_utf8_lossy(data.get(..64).unwrap_or(data)).into_owned();
    if crate::testkit::insert_text(&mut r, 0, &text).is_ok() && r.commit().is_ok() {
        let st = state_of(&mut r);
        let p = Provisional::load(CrdtKind::Yjs, &w.doc_id, &YjsSchema::default(), &st)
            .expect("a replica's own state loads");
        assert_eq!(p.state_digest(), r.state_digest());
    }
}

/// Merge semantics over several replicas (spec DOC-6..DOC-9, DOC-12, DOC-13):
/// the input, read with `arbitrary`, is a schedule of local edits (text
/// inserts and deletes at any position, map sets) on three replicas of one
/// CRDT, deliveries of any sealed envelope to any replica in any order and
/// any number of times, and restarts from persisted envelopes. After a final
/// delivery of everything to everyone, the oracles are: convergence (equal
/// state and history digests and equal content on every replica) and verdict
/// determinism (every envelope has the same verdict on every replica,
/// whatever order it arrived in).
#[cfg(feature = "test-utils")]
pub fn merge_schedule(data: &[u8]) {
    let _ = merge_schedule_sealed(data);
}

/// [`merge_schedule`], answering how many envelopes the schedule sealed (so a
/// test can see the oracles were not vacuous).
#[cfg(feature = "test-utils")]
pub fn merge_schedule_sealed(data: &[u8]) -> usize {
    use arbitrary::Unstructured;
    let mut u = Unstructured::new(data);
    let crdt = if u.arbitrary::<bool>().unwrap_or(false) {
        CrdtKind::Automerge
    } else {
        CrdtKind::Yjs
    };
    let w = fuzz_world(crdt);
    let n = 3usize;
    let mut replicas: Vec<Replica> = (0..n).map(|i| w.replica(i)).collect();
    let mut incarnations = vec![0u64; n];
    let mut pool: Vec<(clientful_core::envelope::EnvelopeId, Vec<u8>)> = Vec::new();
    const TEXTS: &[&str] = &["a", "bc", "é", "😀", "日"];
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let i = u.choose_index(n).unwrap_or(0);
        let op = u.int_in_range(0u8..=5).unwrap_or(0);
        let Some(r) = replicas.get_mut(i) else { break };
        match op {
            0 | 1 => {
                let text = u.choose(TEXTS).copied().unwrap_or("a");
                let index = u.int_in_range(0u32..=8).unwrap_or(0);
                // Out of range is a typed error, not a panic.
                let _ = crate::testkit::insert_text(r, index, text);
            }
            2 => {
                let index = u.int_in_range(0u32..=8).unwrap_or(0);
                let length = u.int_in_range(1u32..=3).unwrap_or(1);
                let _ = crate::testkit::delete_text(r, index, length);
            }
            3 => {
                let key = u.choose(&["k", "m"]).copied().unwrap_or("k");
                let value = u.choose(&["1", "2"]).copied().unwrap_or("1");
                let _ = crate::testkit::set_value(r, key, value);
            }
            4 if !pool.is_empty() => {
                let k = u.choose_index(pool.len()).unwrap_or(0);
                if let Some((_, bytes)) = pool.get(k) {
                    let _ = r.receive(bytes);
                }
            }
            5 => {
                // A crash: uncommitted edits are lost, the replica comes back
                // from what it persisted (with a fresh nonce stream).
                let saved = r.persisted_envelopes();
                if let Some(inc) = incarnations.get_mut(i) {
                    *inc += 1;
                    *r = Replica::restore(w.config(i, *inc), &saved);
                }
            }
            _ => {}
        }
        if u.arbitrary::<bool>().unwrap_or(true) {
            let _ = r.commit();
            pool.extend(r.drain_outbox());
        }
    }
    for r in replicas.iter_mut() {
        let _ = r.commit();
        pool.extend(r.drain_outbox());
    }
    // Everything to everyone: a shuffled pass with duplicates, then a pass in
    // sealing order (which releases anything still buffered).
    let mut order: Vec<usize> = (0..pool.len()).collect();
    for k in (1..order.len()).rev() {
        let j = u.int_in_range(0..=k).unwrap_or(k);
        order.swap(k, j);
    }
    for r in replicas.iter_mut() {
        for k in order.iter().copied().chain(0..pool.len()) {
            if let Some((_, bytes)) = pool.get(k) {
                let _ = r.receive(bytes);
            }
        }
        check_bounds(r);
    }
    let Some((first, rest)) = replicas.split_first_mut() else {
        return pool.len();
    };
    let digests = (
        first.state_digest(),
        first.history_digest(),
        first.materialize().to_canonical_string(),
    );
    for r in rest.iter_mut() {
        let other = (
            r.state_digest(),
            r.history_digest(),
            r.materialize().to_canonical_string(),
        );
        assert_eq!(digests, other, "replicas did not converge");
    }
    for (id, _) in &pool {
        let v = first.verdict(id);
        assert_ne!(
            v,
            crate::replica::Verdict::Unknown,
            "a sealed envelope is unknown"
        );
        assert_ne!(
            v,
            crate::replica::Verdict::Buffered,
            "an envelope is still buffered"
        );
        for r in rest.iter() {
            assert_eq!(v, r.verdict(id), "verdicts differ between replicas");
        }
    }
    pool.len()
}

#[cfg(all(test, feature = "test-utils"))]
mod tests {
    #[test]
    fn merge_schedules_seal_and_converge() {
        let mut sealed = 0;
        for seed in 0u8..24 {
            let data: Vec<u8> = (0..400u32)
                .map(|i| (i.wrapping_mul(97) as u8) ^ seed.wrapping_mul(31) ^ (i >> 3) as u8)
                .collect();
            sealed += super::merge_schedule_sealed(&data);
        }
        assert!(
            sealed >= 24,
            "only {sealed} envelopes sealed in 24 schedules"
        );
    }
}
