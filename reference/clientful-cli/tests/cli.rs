//! End-to-end: the `clientful` binary verifies the committed vectors, prints the
//! plain count line, and fails on a corrupted copy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

#[cfg(feature = "vectors")]
fn vectors() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

#[cfg(feature = "vectors")]
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

#[cfg(feature = "vectors")]
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

#[cfg(feature = "vectors")]
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

#[test]
fn doctor_compare_names_the_missing_envelopes_then_says_in_sync() {
    // spec: APP-13, APP-14
    use clientful_app::diagnose::Bundle;
    use clientful_doc::CrdtKind;
    use clientful_doc::testkit::{World, insert_text};
    let w = World::new(21, 2, CrdtKind::Yjs);
    let (mut a, mut b) = (w.replica(0), w.replica(1));
    insert_text(&mut a, 0, "private words").unwrap();
    a.commit().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let write = |p: &std::path::Path, r: &mut clientful_doc::Replica| {
        std::fs::write(p, Bundle::capture(r, &[]).to_json().to_string()).unwrap()
    };
    write(&pa, &mut a);
    write(&pb, &mut b);
    let text = std::fs::read_to_string(&pa).unwrap();
    assert!(!text.contains("private"), "plaintext in a bundle");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_clientful"))
            .args(["doctor", "compare"])
            .arg(&pa)
            .arg(&pb)
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("missing envelopes"), "{stdout}");
    assert!(stdout.contains("lacks envelopes 1..=1"), "{stdout}");
    for (_, env) in a.drain_outbox() {
        b.receive(&env);
    }
    write(&pb, &mut b);
    let out = run();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("in sync"));
    // A file that is not a bundle is an error, not a verdict.
    std::fs::write(&pb, "{}").unwrap();
    assert_eq!(run().status.code(), Some(2));
}
