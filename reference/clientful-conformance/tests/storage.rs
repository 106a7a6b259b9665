//! Storage through the harness (spec §12.12): the storage scenarios run against
//! the reference over stdio and all pass; an implementation without
//! `storage/layout` gets each skipped naming the capability; each storage
//! saboteur, served over stdio, fails exactly where `conformance/saboteurs.json`
//! says; cross-load in both directions through the library.
//! spec: CONF-57, CONF-58, CONF-59, CONF-61, CONF-62, CONF-69, CONF-70.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{assert_caught_where_listed, bin, results_under, run_stdio, run_without_capabilities};

use clientful_conformance::report::Outcome;
use clientful_conformance::storage_scenarios::{Fixture, scenarios};

#[test]
fn storage_scenarios_pass_against_the_reference_over_stdio() {
    for seed in [1u64, 0x5eed_5eed] {
        let report = run_stdio(&format!("{} serve-reference", bin()), seed);
        let storage = results_under(&report, "scenario/storage/");
        assert!(storage.len() >= 15, "{storage:?}");
        for (id, outcome) in &storage {
            assert!(matches!(outcome, Outcome::Pass), "{id}: {outcome:?}");
        }
        assert!(
            report
                .results
                .iter()
                .any(|r| r.id == "profile/storage/layout" && matches!(r.outcome, Outcome::Pass))
        );
        assert_eq!(report.failed(), 0);
    }
}

#[test]
fn the_stores_are_new_in_every_run() {
    // CONF-61: fresh worlds, keys and stores from the run seed.
    let a = Fixture::new(1).unwrap();
    let b = Fixture::new(2).unwrap();
    let a2 = Fixture::new(1).unwrap();
    let names: Vec<&str> = scenarios(&a).unwrap().iter().map(|s| s.name).collect();
    assert!(names.len() >= 15);
    assert_eq!(format!("{:?}", a.stores()), format!("{:?}", a2.stores()));
    assert_ne!(format!("{:?}", a.stores()), format!("{:?}", b.stores()));
}

#[test]
fn every_storage_saboteur_is_caught_where_listed_over_stdio() {
    let storage = [
        "no-rollback-check",
        "unclamped-coverage",
        "object-epoch-unchecked",
        "trusts-listing",
        "restarts-head-counter",
    ];
    for name in storage {
        assert_caught_where_listed(name, "scenario/storage/");
    }
}

#[test]
fn without_the_capability_storage_scenarios_are_skipped_naming_it() {
    let report = run_without_capabilities();
    let storage = results_under(&report, "scenario/storage/");
    assert!(storage.len() >= 15);
    for (id, outcome) in storage {
        match outcome {
            Outcome::Skipped(why) => assert!(why.contains("storage/layout"), "{id}: {why}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}
