//! Replays the attestation fuzz corpora (`fuzz/corpus/siwe_message`,
//! `fuzz/corpus/webauthn_data`) through the fuzz entry points on stable Rust.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
fn siwe_message_corpus() {
    replay("siwe_message", clientful_attest::fuzzing::siwe_message);
}

#[test]
fn webauthn_data_corpus() {
    replay("webauthn_data", clientful_attest::fuzzing::webauthn_data);
}
