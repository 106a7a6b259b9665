//! The kill matrix (spec §12.11, CONF-49): every saboteur of
//! `conformance/saboteurs.json` is run through the whole suite at the strict
//! level, and must be caught: the run must not exit 0, and every test the file
//! lists for it must fail. A saboteur that survives, a listed test that passes, or
//! a saboteur missing from the file (or from the reference) fails the matrix.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::adapter::{Adapter, StdioAdapter};
use crate::reference::ReferenceAdapter;
use crate::report::Level;
use crate::runner::{RunOptions, run_with};
use crate::saboteur::{self, Saboteur};

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Saboteur name.
    pub name: String,
    /// The run's exit code.
    pub exit_code: u8,
    /// How many tests failed.
    pub failed: usize,
    /// Listed tests that did not fail.
    pub survivors: Vec<String>,
    /// Why the row is bad, if it is.
    pub problem: Option<String>,
}

/// How to run each saboteur.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The reference in-process.
    InProcess,
    /// `<command> --saboteur NAME` over stdio (the command serves the reference).
    Stdio(String),
}

/// Runs the matrix described by `list_file`.
pub fn run_matrix(
    list_file: &Path,
    vectors: &Path,
    scenarios: &Path,
    mode: &Mode,
    seed: u64,
) -> Result<Vec<Row>, String> {
    // One set of fresh cases for every saboteur (CONF-53).
    let fresh = crate::runner::fresh_cases(seed)?;
    let list: Value = std::fs::read(list_file)
        .map_err(|e| format!("{}: {e}", list_file.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
    let entries = list
        .get("saboteurs")
        .and_then(Value::as_array)
        .ok_or("saboteurs.json needs a `saboteurs` array")?;
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    for e in entries {
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .ok_or("entry without name")?;
        listed.push(name.to_string());
        let must_fail: Vec<String> = e
            .get("mustFail")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let expect_exit = e.get("expectExit").and_then(Value::as_u64).unwrap_or(1) as u8;
        let Some(sab) = Saboteur::parse(name) else {
            rows.push(Row {
                name: name.into(),
                exit_code: 0,
                failed: 0,
                survivors: vec![],
                problem: Some("the reference has no saboteur of this name".into()),
            });
            continue;
        };
        let mut adapter: Box<dyn Adapter> = match mode {
            Mode::InProcess => {
                Box::new(ReferenceAdapter::with_saboteur(Some(sab)).with_vectors_dir(vectors))
            }
            Mode::Stdio(cmd) => Box::new(
                StdioAdapter::spawn(&format!("{cmd} --saboteur {name}"), Duration::from_secs(30))
                    .map_err(|e| e.to_string())?,
            ),
        };
        let report = run_with(
            &mut [crate::adapter::borrow(&mut adapter)],
            RunOptions {
                seed,
                fresh: Some(fresh.clone()),
                vectors: Some(vectors.to_path_buf()),
                scenarios: Some(scenarios.to_path_buf()),
                level: Level::Strict,
                ..RunOptions::default()
            },
        );
        let survivors: Vec<String> = must_fail
            .iter()
            .filter(|id| {
                !report
                    .results
                    .iter()
                    .any(|r| &r.id == *id && r.outcome.is_failure())
            })
            .cloned()
            .collect();
        let code = report.exit_code();
        let problem = if code == 0 {
            Some("SURVIVED: the suite passed it".to_string())
        } else if code != expect_exit {
            Some(format!("exit code {code}, expected {expect_exit}"))
        } else if !survivors.is_empty() {
            Some(format!("listed tests passed: {}", survivors.join(", ")))
        } else if must_fail.is_empty() && expect_exit == 1 {
            Some("no test is listed as catching it".into())
        } else {
            None
        };
        rows.push(Row {
            name: name.into(),
            exit_code: code,
            failed: report.failed(),
            survivors,
            problem,
        });
    }
    for (n, _) in saboteur::ALL {
        if !listed.iter().any(|l| l == n) {
            rows.push(Row {
                name: (*n).into(),
                exit_code: 0,
                failed: 0,
                survivors: vec![],
                problem: Some("saboteur missing from saboteurs.json".into()),
            });
        }
    }
    Ok(rows)
}
