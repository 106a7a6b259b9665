//! The randomized mode (`clientful-conformance fuzz`, spec §12.15): the
//! reference passes generated schedules over stdio; every document and
//! membership saboteur is caught within its case budget; a seeded failure is
//! shrunk to a scenario file that `run --scenario FILE` replays (failing the
//! saboteur, passing the reference).
//! spec: CONF-85, CONF-86, CONF-87, CONF-88, CONF-89, CONF-90, CONF-91.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{bin, cli};

use std::path::PathBuf;

use clientful_conformance::fuzz::{Options, fuzz, step_count};
use clientful_conformance::reference::ReferenceAdapter;
use clientful_conformance::saboteur::Saboteur;

/// Every document and membership saboteur of `saboteur::ALL`, with the case
/// budget (seed 1) within which the randomized mode must catch it (CONF-91).
/// Not listed: the vector-only saboteurs (`accept-weak-keys`,
/// `ignore-decrypt-failure`: no schedule step reaches those checks before
/// the signature; `answers-unknown-commands`, `answers-from-vectors`: the
/// probes and vectors catch them) and the storage ones (the storage
/// scenarios catch them).
const BUDGETS: &[(&str, u64)] = &[
    ("skip-signature-check", 200),
    ("accept-unknown-signer", 200),
    ("accept-non-canonical", 300),
    ("accept-wrong-context", 200),
    ("accept-unknown-epoch", 200),
    ("accept-oversized", 200),
    ("accept-future-version", 200),
    ("wrong-error-class", 200),
    ("ignore-equivocation", 200),
    ("ignore-actor-binding", 200),
    ("erase-equivocator-chain", 200),
    ("shared-client-ids", 200),
    ("apply-out-of-causal-order", 200),
    ("duplicate-as-new", 200),
    ("reuse-nonce-after-restart", 200),
    ("lose-state-on-restart", 200),
    ("byte-offset-positions", 200),
    ("non-canonical-json", 200),
    ("wrong-state-digest", 200),
    ("commit-id-mismatch", 200),
    ("constant-history-digest", 200),
    ("ignores-removal", 200),
    ("lowest-genesis-wins", 200),
    ("keep-any-secret", 200),
    ("accepts-non-writers", 300),
];

#[test]
fn every_document_and_membership_saboteur_is_caught_within_its_budget() {
    let mut missed = Vec::new();
    for (name, budget) in BUDGETS {
        let sab = Saboteur::parse(name).unwrap_or_else(|| panic!("no saboteur {name}"));
        let mut imp = ReferenceAdapter::with_saboteur(Some(sab));
        let opts = Options {
            seed: 1,
            cases: *budget,
            shrink_attempts: 0,
            ..Options::default()
        };
        let s = fuzz(&mut imp, &opts, &mut |_, _| {}).expect("fuzz runs");
        match &s.failure {
            Some(f) => println!(
                "{name}: caught at case {} of {budget}: {}",
                f.case, f.message
            ),
            None => missed.push(format!("{name} survived {} schedules", s.cases)),
        }
    }
    println!(
        "{} saboteurs caught, {} not caught",
        BUDGETS.len() - missed.len(),
        missed.len()
    );
    assert!(missed.is_empty(), "{missed:?}");
}

#[test]
fn the_reference_passes_generated_schedules_over_stdio() {
    let (code, out) = cli(&[
        "fuzz",
        "--impl-cmd",
        &format!("{} serve-reference", bin()),
        "--seed",
        "2",
        "--cases",
        "60",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let last = out.lines().last().unwrap_or_default();
    let passed: u64 = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 55, "{out}");
    assert!(out.contains("seed: 0000000000000002"), "{out}");
}

#[test]
fn a_seeded_failure_shrinks_to_a_scenario_file_that_replays() {
    let dir = std::env::temp_dir().join(format!("clientful-fuzz-shrink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sab_cmd = format!("{} serve-reference --saboteur byte-offset-positions", bin());
    let (code, out) = cli(&[
        "fuzz",
        "--impl-cmd",
        &sab_cmd,
        "--seed",
        "1",
        "--cases",
        "200",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL case "), "{out}");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    let shrunk: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    // The same seed regenerates the original schedule: the shrunk one is smaller.
    let case: u64 = shrunk["fuzz"]["case"].as_u64().unwrap();
    let original =
        clientful_conformance::fuzz::generate(1, case, &clientful_conformance::fuzz::Caps::all());
    assert!(
        step_count(&shrunk) < step_count(&original),
        "shrunk {} steps, original {}",
        step_count(&shrunk),
        step_count(&original)
    );
    let f = file.to_str().unwrap();
    let (code, out) = cli(&[
        "run",
        "--impl-cmd",
        &sab_cmd,
        "--scenario",
        f,
        "--level",
        "strict",
    ]);
    assert_eq!(code, Some(1), "the saboteur must fail the replay:\n{out}");
    assert!(out.contains("FAIL scenario/fuzz-"), "{out}");
    let (code, out) = cli(&[
        "run",
        "--impl-cmd",
        &format!("{} serve-reference", bin()),
        "--scenario",
        f,
        "--level",
        "strict",
    ]);
    assert_eq!(code, Some(0), "the reference must pass the replay:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
