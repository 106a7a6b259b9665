//! End-to-end: the `clientful` binary verifies the committed vectors, prints the
//! plain count line, and fails on a corrupted copy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;

fn vectors() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

#[test]
fn verify_passes_and_prints_count() {
    let out = Command::new(env!("CARGO_BIN_EXE_clientful"))
        .args(["vectors", "verify"])
        .arg(vectors())
        .output()
        .expect("run clientful");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let (passed, failed) = last.split_once(" passed, ").expect("count line");
    assert!(passed.parse::<usize>().expect("number") >= 60);
    assert_eq!(failed, "0 failed");
}

#[test]
fn verify_fails_on_a_corrupted_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(vectors()).expect("dir").flatten() {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    let target = dir.path().join("envelope-open.json");
    let mut bytes = std::fs::read(&target).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&target, bytes).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_clientful"))
        .args(["vectors", "verify"])
        .arg(dir.path())
        .output()
        .expect("run clientful");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("checksum mismatch"), "{stdout}");
}

#[test]
fn generate_check_reports_up_to_date() {
    let out = Command::new(env!("CARGO_BIN_EXE_clientful"))
        .args(["vectors", "generate", "--check"])
        .arg(vectors())
        .output()
        .expect("run clientful");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
