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

/// Serves the reference with saboteur `name` over stdio and asserts that the
/// run fails, that every test `conformance/saboteurs.json` lists for it fails,
/// and that nothing outside `prefix` fails.
pub fn assert_caught_where_listed(name: &str, prefix: &str) {
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("conformance/saboteurs.json")).unwrap())
            .unwrap();
    let entry = list["saboteurs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from saboteurs.json"));
    let report = run_stdio(&format!("{} serve-reference --saboteur {name}", bin()), 7);
    assert_eq!(report.exit_code(), 1, "{name}");
    for id in entry["mustFail"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        let r = report
            .results
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{name}: no test {id}"));
        assert!(r.outcome.is_failure(), "{name}: {id} passed");
    }
    for r in &report.results {
        if r.outcome.is_failure() {
            assert!(r.id.starts_with(prefix), "{name}: {} failed", r.id);
        }
    }
}

/// A run of an implementation that declares the vector families only (the
/// saboteur `answers-from-vectors`): every capability-gated scenario is skipped.
pub fn run_without_capabilities() -> Report {
    run_stdio(
        &format!(
            "{} serve-reference --saboteur answers-from-vectors --vectors {}",
            bin(),
            root().join("test-vectors").display()
        ),
        3,
    )
}
