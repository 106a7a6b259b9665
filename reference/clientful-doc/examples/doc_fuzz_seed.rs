//! Writes seed corpora for the document fuzz targets (`replica_receive`,
//! `sync_message`, `checkpoint_state`) into `fuzz/corpus/<target>/`, named by SHA-256. Deterministic.
//!
//! `cargo run -p clientful-doc --example doc_fuzz_seed -- fuzz/corpus`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use clientful_core::suite::sha256;
use clientful_doc::fuzzing::fuzz_world;
use clientful_doc::sync::SyncSession;
use clientful_doc::testkit;
use clientful_doc::{CrdtKind, Replica};

fn frame(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let n = u16::try_from(m.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&m[..usize::from(n)]);
    }
    out
}

fn write(dir: &Path, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let name: String = sha256(data).iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(dir.join(name), data).unwrap();
}

fn edit(r: &mut Replica, s: &str) {
    testkit::insert_text(r, 0, s).unwrap();
}

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let w = fuzz_world(crdt);
        let (mut a, mut b) = (w.replica(0), w.replica(1));
        let mut envs = Vec::new();
        for (i, s) in ["héllo", " wörld 🌍", "!"].iter().enumerate() {
            edit(if i % 2 == 0 { &mut a } else { &mut b }, s);
            for r in [&mut a, &mut b] {
                r.commit().unwrap();
            }
            let out: Vec<Vec<u8>> = a
                .drain_outbox()
                .into_iter()
                .chain(b.drain_outbox())
                .map(|(_, e)| e)
                .collect();
            for e in &out {
                let _ = a.receive(e);
                let _ = b.receive(e);
            }
            envs.extend(out);
        }
        let recv = root.join("replica_receive");
        write(&recv, &frame(&envs));
        let mut reversed = envs.clone();
        reversed.reverse();
        write(&recv, &frame(&reversed));
        for e in &envs {
            write(&recv, &frame(std::slice::from_ref(e)));
        }
        // Sync: a HELLO, a WANT and an ENVELOPES message from a real session.
        let sync = root.join("sync_message");
        let mut s = SyncSession::new();
        let hello = s.hello(&a);
        let mut fresh = w.replica(2);
        let mut t = SyncSession::new();
        let (replies, _) = t.handle(&mut fresh, &hello).unwrap();
        write(&sync, &frame(std::slice::from_ref(&hello)));
        for r in &replies {
            write(&sync, &frame(std::slice::from_ref(r)));
        }
        let (answers, _) = s.handle(&mut a, replies.last().unwrap()).unwrap();
        let mut all = vec![hello];
        all.extend(replies);
        all.extend(answers);
        write(&sync, &frame(&all));
        // Checkpoint states: whole, cut short, and with a flipped byte.
        let cp = root.join("checkpoint_state");
        for r in [&mut a, &mut b] {
            let st = clientful_doc::checkpoint::state_of(r).state;
            write(&cp, &st);
            write(&cp, &st[..st.len() / 2]);
            let mut flipped = st.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x40;
            write(&cp, &flipped);
        }
        let mut c = w.replica(2);
        write(&cp, &clientful_doc::checkpoint::state_of(&mut c).state);
        edit(&mut c, "çheckpoint ✓");
        c.commit().unwrap();
        let st = clientful_doc::checkpoint::state_of(&mut c).state;
        write(&cp, &st);
        write(&cp, &st[..st.len().min(10)]);
    }
    for target in ["replica_receive", "sync_message", "checkpoint_state"] {
        write(&root.join(target), &[]);
        write(&root.join(target), &[0, 1, 0]);
        write(&root.join(target), &[0, 3, 0x08, 0x81, 0x00]);
    }
    println!("seeded {}", root.display());
}
