//! Replays the document fuzz corpora (`fuzz/corpus/replica_receive`,
//! `fuzz/corpus/sync_message`, `fuzz/corpus/checkpoint_state`,
//! `fuzz/corpus/merge_schedule`) on stable Rust.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("missing corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "corpus {target} has only {} files",
        files.len()
    );
    for f in &files {
        check(&std::fs::read(f).unwrap());
    }
    eprintln!("{target}: replayed {} inputs", files.len());
}

#[test]
fn replica_receive_corpus() {
    replay("replica_receive", clientful_doc::fuzzing::replica_receive);
}

#[test]
fn sync_message_corpus() {
    replay("sync_message", clientful_doc::fuzzing::sync_message);
}

#[test]
fn merge_schedule_corpus() {
    replay("merge_schedule", clientful_doc::fuzzing::merge_schedule);
}

#[test]
fn checkpoint_state_corpus() {
    replay("checkpoint_state", clientful_doc::fuzzing::checkpoint_state);
}
