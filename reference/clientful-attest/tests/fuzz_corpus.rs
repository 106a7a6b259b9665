//! Replays the fuzz corpora of `fuzz/corpus/{jwt,did_document,plc_log,siwe_message,webauthn_data}`
//! (and any saved crashes in `fuzz/artifacts/<target>/`) through the
//! `clientful_attest::fuzzing` entry points on stable Rust.

#![allow(clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

/// Fewer inputs than this means the corpus is missing or was damaged.
const MIN_CORPUS_FILES: usize = 10;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let corpus_dir = fuzz.join("corpus").join(target);
    assert!(
        corpus_dir.is_dir(),
        "fuzz corpus {} is missing; regenerate it with \
         `cargo run -p clientful-attest --features test-utils --example fuzz_seed -- fuzz/corpus`",
        corpus_dir.display()
    );
    let corpus = files(&corpus_dir);
    assert!(
        corpus.len() >= MIN_CORPUS_FILES,
        "{target}: only {} inputs",
        corpus.len()
    );
    let artifacts_dir = fuzz.join("artifacts").join(target);
    let artifacts = if artifacts_dir.is_dir() {
        files(&artifacts_dir)
    } else {
        Vec::new()
    };
    for path in corpus.iter().chain(&artifacts) {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(&data);
    }
    println!(
        "{target}: replayed {} corpus inputs and {} artifacts",
        corpus.len(),
        artifacts.len()
    );
}

#[test]
fn jwt() {
    replay("jwt", clientful_attest::fuzzing::jwt);
}

#[test]
fn did_document() {
    replay("did_document", clientful_attest::fuzzing::did_document);
}

#[test]
fn siwe_message() {
    replay("siwe_message", clientful_attest::fuzzing::siwe_message);
}

#[test]
fn webauthn_data() {
    replay("webauthn_data", clientful_attest::fuzzing::webauthn_data);
}

#[test]
fn plc_log() {
    replay("plc_log", clientful_attest::fuzzing::plc_log);
}
