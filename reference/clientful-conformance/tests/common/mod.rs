//! Helpers shared by the runner's integration tests: the repository root, the
//! `clientful-conformance` binary, running it, and a probes-and-scenarios run
//! over stdio. Each test file uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clientful_conformance::adapter::{Adapter, StdioAdapter};
use clientful_conformance::report::{Level, Outcome, Report};
use clientful_conformance::runner::{RunOptions, run_with};

/// The repository root (scenarios, vectors and saboteurs.json live there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `clientful-conformance` binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_clientful-conformance")
}

/// Runs the binary with `args` from the repository root: exit code and stdout.
pub fn cli(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .current_dir(root())
        .args(args)
        .output()
        .expect("run clientful-conformance");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Probes and scenarios only (no vector files), against `cmd` over stdio.
pub fn run_stdio(cmd: &str, seed: u64) -> Report {
    let mut adapter = StdioAdapter::spawn(cmd, Duration::from_secs(60)).expect("spawn");
    let a: &mut dyn Adapter = &mut adapter;
    run_with(
        &mut [a],
        RunOptions {
            seed,
            scenarios: Some(root().join("conformance/scenarios")),
            level: Level::Strict,
            ..RunOptions::default()
        },
    )
}

/// The results whose id starts with `prefix`, with their outcomes.
pub fn results_under(report: &Report, prefix: &str) -> Vec<(String, Outcome)> {
    report
        .results
        .iter()
        .filter(|r| r.id.starts_with(prefix))
        .map(|r| (r.id.clone(), r.outcome.clone()))
        .collect()
}
