//! Replays the fuzz corpora of `fuzz/corpus/<target>/` (and any saved crashes in
//! `fuzz/artifacts/<target>/`) through the `clientful_core::fuzzing` entry points on
//! stable Rust, so every CI run re-checks every input the fuzzer ever kept.

#![allow(clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

/// Fewer inputs than this means the corpus is missing or was damaged.
const MIN_CORPUS_FILES: usize = 10;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every regular file directly in `dir`, sorted by path.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = fuzz_dir();
    let corpus_dir = fuzz.join("corpus").join(target);
    assert!(
        corpus_dir.is_dir(),
        "fuzz corpus {} is missing; regenerate it with \
         `cargo run -p clientful-core --example fuzz_seed -- fuzz/corpus`",
        corpus_dir.display()
    );
    let corpus = files(&corpus_dir);
    assert!(
        corpus.len() >= MIN_CORPUS_FILES,
        "fuzz corpus {} has {} files, expected at least {MIN_CORPUS_FILES}",
        corpus_dir.display(),
        corpus.len()
    );

    let artifacts_dir = fuzz.join("artifacts").join(target);
    let artifacts = if artifacts_dir.is_dir() {
        files(&artifacts_dir)
    } else {
        Vec::new()
    };

    for path in corpus.iter().chain(&artifacts) {
        let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        eprintln!("replaying {}", path.display());
        check(&data);
    }
    println!(
        "{target}: replayed {} corpus inputs and {} artifacts",
        corpus.len(),
        artifacts.len()
    );
}

#[test]
fn canonical_codec() {
    replay("canonical_codec", clientful_core::fuzzing::canonical_codec);
}

#[test]
fn decode_envelope() {
    replay("decode_envelope", clientful_core::fuzzing::decode_envelope);
}

#[test]
fn open_envelope() {
    replay("open_envelope", clientful_core::fuzzing::open_envelope);
}

#[test]
fn device_certificate() {
    replay(
        "device_certificate",
        clientful_core::fuzzing::device_certificate,
    );
}

#[test]
fn backup() {
    replay("backup", clientful_core::fuzzing::backup);
}

#[test]
fn continuity() {
    replay("continuity", clientful_core::fuzzing::continuity);
}

#[test]
fn recovery() {
    replay("recovery", clientful_core::fuzzing::recovery);
}

#[test]
fn plaintext_frame() {
    replay("plaintext_frame", clientful_core::fuzzing::plaintext_frame);
}

#[test]
fn membership_messages() {
    replay(
        "membership_messages",
        clientful_core::fuzzing::membership_messages,
    );
}
