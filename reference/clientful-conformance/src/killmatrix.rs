//! The kill matrix (spec §12.11, CONF-49): every saboteur of
//! `conformance/saboteurs.json` is run through the whole suite at the strict
//! level, and must be caught: the run must not exit 0, and every test the file
//! lists for it must fail. A saboteur that survives, a listed test that passes, or
//! a saboteur missing from the file (or from the reference) fails the matrix.

use std::path::Path;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::adapter::{Adapter, StdioAdapter};
use crate::reference::ReferenceAdapter;
use crate::report::Level;
use crate::runner::{RunOptions, run_with};
use crate::saboteur::{self, Saboteur};
use clientful_vectors::fresh::Fresh;

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

/// One saboteur of the list file, with what must catch it.
struct Entry {
    name: String,
    must_fail: Vec<String>,
    expect_exit: u8,
    saboteur: Option<Saboteur>,
}

/// Runs the matrix described by `list_file`, `jobs` saboteurs at a time (each
/// run is independent: its own adapter, the same seed and fresh cases, so the
/// rows do not depend on `jobs`; they come back in the file's order).
pub fn run_matrix(
    list_file: &Path,
    vectors: &Path,
    scenarios: &Path,
    mode: &Mode,
    seed: u64,
    jobs: usize,
) -> Result<Vec<Row>, String> {
    let list: Value = std::fs::read(list_file)
        .map_err(|e| format!("{}: {e}", list_file.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
    let entries = list
        .get("saboteurs")
        .and_then(Value::as_array)
        .ok_or("saboteurs.json needs a `saboteurs` array")?;
    let mut work = Vec::new();
    for e in entries {
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .ok_or("entry without name")?;
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
        work.push(Entry {
            name: name.to_string(),
            must_fail,
            expect_exit,
            saboteur: Saboteur::parse(name),
        });
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<Row, String>>>> =
        Mutex::new((0..work.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, work.len().max(1)) {
            scope.spawn(|| {
                // One set of fresh cases for every saboteur (CONF-53): generated
                // from the one seed in each worker, so every run sees the same cases.
                let fresh = crate::runner::fresh_cases(seed);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = work.get(i) else { break };
                    let row = match &fresh {
                        Ok(fresh) => run_one(entry, vectors, scenarios, mode, seed, fresh),
                        Err(e) => Err(e.clone()),
                    };
                    if let Ok(mut slots) = slots.lock()
                        && let Some(slot) = slots.get_mut(i)
                    {
                        *slot = Some(row);
                    }
                }
            });
        }
    });
    let mut rows = Vec::new();
    let slots = slots
        .into_inner()
        .map_err(|_| "a kill-matrix worker panicked")?;
    for slot in slots {
        rows.push(slot.ok_or("a kill-matrix worker stopped early")??);
    }
    let listed: Vec<&str> = work.iter().map(|e| e.name.as_str()).collect();
    for (n, _) in saboteur::ALL {
        if !listed.contains(n) {
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

/// Runs the suite against one saboteur and judges the result.
fn run_one(
    entry: &Entry,
    vectors: &Path,
    scenarios: &Path,
    mode: &Mode,
    seed: u64,
    fresh: &Rc<Fresh>,
) -> Result<Row, String> {
    let Some(sab) = entry.saboteur else {
        return Ok(Row {
            name: entry.name.clone(),
            exit_code: 0,
            failed: 0,
            survivors: vec![],
            problem: Some("the reference has no saboteur of this name".into()),
        });
    };
    let name = &entry.name;
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
    let must_fail = &entry.must_fail;
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
    } else if code != entry.expect_exit {
        Some(format!("exit code {code}, expected {}", entry.expect_exit))
    } else if !survivors.is_empty() {
        Some(format!("listed tests passed: {}", survivors.join(", ")))
    } else if must_fail.is_empty() && entry.expect_exit == 1 {
        Some("no test is listed as catching it".into())
    } else {
        None
    };
    Ok(Row {
        name: name.clone(),
        exit_code: code,
        failed: report.failed(),
        survivors,
        problem,
    })
}
