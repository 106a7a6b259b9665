//! The runner against the reference (in-process and over stdio), and against
//! implementations that must not pass: one that exits at once, one that never
//! answers, and one that echoes requests back (answers "defaults").
//! spec: CONF-24, CONF-27, CONF-33, CONF-35, CONF-36.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clientful-conformance"))
        .current_dir(root())
        .arg("run")
        .args(args)
        .output()
        .expect("run runner");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn counts(stdout: &str) -> (usize, usize) {
    let last = stdout.lines().last().unwrap_or_default();
    let (p, f) = last.split_once(" passed, ").expect("closing line");
    (
        p.parse().unwrap(),
        f.trim_end_matches(" failed").parse().unwrap(),
    )
}

#[test]
fn reference_in_process_passes_everything() {
    let (code, out) = run(&["--impl", "reference"]);
    assert_eq!(code, Some(0), "{out}");
    let (passed, failed) = counts(&out);
    assert_eq!(failed, 0);
    assert!(passed >= 230, "{out}");
}

#[test]
fn reference_over_stdio_passes_everything() {
    let cmd = format!(
        "{} serve-reference",
        env!("CARGO_BIN_EXE_clientful-conformance")
    );
    let (code, out) = run(&["--impl-cmd", &cmd]);
    assert_eq!(code, Some(0), "{out}");
    let (passed, failed) = counts(&out);
    assert_eq!(failed, 0);
    assert!(passed >= 230, "{out}");
}

#[test]
fn implementation_that_exits_at_once_is_a_harness_error() {
    let (code, out) = run(&["--impl-cmd", "true"]);
    assert!(matches!(code, Some(2) | Some(3)), "{code:?} {out}");
    assert_eq!(counts(&out), (0, 0));
}

#[test]
fn implementation_that_never_answers_is_a_harness_error() {
    let (code, out) = run(&["--impl-cmd", "sleep 30", "--timeout-secs", "2"]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn implementation_that_echoes_requests_fails_the_probe() {
    // `cat` answers every request with its own bytes: hello decodes as a hello
    // result full of defaults, and the probe comes back without `unsupported`.
    let (code, out) = run(&["--impl-cmd", "cat"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unsupported"), "{out}");
}

#[test]
fn bad_arguments_still_print_the_closing_line() {
    let (code, out) = run(&[]);
    assert_eq!(code, Some(2));
    assert_eq!(counts(&out), (0, 0));
}
