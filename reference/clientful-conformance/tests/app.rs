//! The application level and documents of a space through the harness (spec
//! §12.14): the app-level scenarios (trash with causal undo, orphan
//! compensation) and the membership-gated document scenarios pass against the
//! reference over stdio; each of their saboteurs fails exactly the scenarios
//! `conformance/saboteurs.json` lists for it and nothing outside its level; an
//! implementation without the capabilities gets each scenario skipped naming
//! the capability it lacks.
//! spec: CONF-96, CONF-101, CONF-102, CONF-103, CONF-108, CONF-109, CONF-110.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{bin, root, run_stdio, run_without_capabilities};

use clientful_conformance::report::{Outcome, Report};
use serde_json::Value;

/// Which tests a saboteur's bug may show in.
type Own = fn(&str) -> bool;

fn is_app(id: &str) -> bool {
    id.starts_with("scenario/app-")
}

fn is_space_doc(id: &str) -> bool {
    id.starts_with("scenario/space-doc-")
}

fn results(report: &Report, pick: Own) -> Vec<(String, Outcome)> {
    report
        .results
        .iter()
        .filter(|r| pick(&r.id))
        .map(|r| (r.id.clone(), r.outcome.clone()))
        .collect()
}

#[test]
fn app_and_space_document_scenarios_pass_against_the_reference_over_stdio() {
    let report = run_stdio(&format!("{} serve-reference", bin()), 17);
    let app = results(&report, is_app);
    let docs = results(&report, is_space_doc);
    // Each scenario and its strict evidence line.
    assert!(app.len() >= 2 * 11, "{app:?}");
    assert!(docs.len() >= 2 * 4, "{docs:?}");
    for (id, outcome) in app.iter().chain(&docs) {
        assert!(matches!(outcome, Outcome::Pass), "{id}: {outcome:?}");
    }
    for cap in ["app/lifecycle", "app/invariants", "space/documents"] {
        let id = format!("profile/{cap}");
        assert!(
            report
                .results
                .iter()
                .any(|r| r.id == id && matches!(r.outcome, Outcome::Pass)),
            "{id}"
        );
    }
    assert_eq!(report.failed(), 0);
}

#[test]
fn every_app_and_space_document_saboteur_is_caught_where_listed_over_stdio() {
    let list: Value =
        serde_json::from_slice(&std::fs::read(root().join("conformance/saboteurs.json")).unwrap())
            .unwrap();
    let saboteurs: [(&str, Own); 3] = [
        ("trash-by-arrival-order", is_app),
        ("orphans-left-unrepaired", is_app),
        ("accepts-non-writers", is_space_doc),
    ];
    for (name, own) in saboteurs {
        let entry = list["saboteurs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from saboteurs.json"));
        let report = run_stdio(&format!("{} serve-reference --saboteur {name}", bin()), 7);
        assert_eq!(report.exit_code(), 1, "{name}");
        let must: Vec<&str> = entry["mustFail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(must.len() >= 3, "{name}");
        for id in &must {
            let r = report
                .results
                .iter()
                .find(|r| r.id == *id)
                .unwrap_or_else(|| panic!("{name}: no test {id}"));
            assert!(r.outcome.is_failure(), "{name}: {id} passed");
        }
        // The bug shows at its own level only.
        for r in &report.results {
            if r.outcome.is_failure() {
                assert!(own(&r.id), "{name}: {} failed", r.id);
            }
        }
    }
}

#[test]
fn without_the_capabilities_app_and_space_document_scenarios_are_skipped_naming_them() {
    let report = run_without_capabilities();
    let app = results(&report, is_app);
    let docs = results(&report, is_space_doc);
    assert!(app.len() >= 11 && docs.len() >= 4);
    for (id, outcome) in &app {
        match outcome {
            Outcome::Skipped(why) => assert!(why.contains("app/"), "{id}: {why}"),
            other => panic!("{id}: {other:?}"),
        }
    }
    for (id, outcome) in &docs {
        match outcome {
            Outcome::Skipped(why) => assert!(why.contains("space/"), "{id}: {why}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}
