//! The large-file test: a child process (`src/bin/stream-file.rs`) streams a 1 GiB
//! file of deterministic pseudo-random bytes into a local-folder store and back,
//! and reports its peak RSS (VmHWM). Bounded memory means under 64 MiB.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::process::Command;

#[test]
fn one_gib_file_streams_in_and_out_under_64_mib_peak_rss() {
    const SIZE: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stream-file"))
        .arg(dir.path())
        .arg(SIZE.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stream-file failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kv: HashMap<&str, &str> = stdout
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .collect();
    let num = |k: &str| kv[k].parse::<u64>().unwrap();
    assert_eq!(
        kv["in_hash"], kv["out_hash"],
        "the file comes back byte for byte"
    );
    assert_eq!(num("out_len"), SIZE);
    assert_eq!(
        num("put_calls"),
        SIZE / (1 << 20),
        "one progress call per 1 MiB chunk"
    );
    assert_eq!(num("put_last"), SIZE);
    assert_eq!(num("get_calls"), SIZE / (1 << 20));
    assert_eq!(num("get_last"), SIZE);
    assert_eq!(num("get_total"), SIZE);
    let peak_kib = num("vmhwm_kib");
    eprintln!("peak RSS {} KiB", peak_kib);
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is not under 64 MiB"
    );
}
