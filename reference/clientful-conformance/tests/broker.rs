//! The broker protocol through the harness (spec §12.13): the broker scenarios
//! run against the reference over stdio and all pass; they are new in every
//! run; an implementation without `broker/server` or `broker/client` gets each
//! skipped naming the capability; each broker saboteur, served over stdio,
//! fails exactly where `conformance/saboteurs.json` says and nowhere else; a
//! client's JOIN is checked on its own, its failure named by class.
//! spec: CONF-71, CONF-72, CONF-73, CONF-74, CONF-75, CONF-81, CONF-83, CONF-84.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{assert_caught_where_listed, bin, results_under, run_stdio, run_without_capabilities};

use clientful_conformance::broker::{client_run, server_run};
use clientful_conformance::broker_scenarios::{Fixture, check_joins, scenarios};
use clientful_conformance::pb;
use clientful_conformance::report::Outcome;
use clientful_conformance::saboteur::Saboteur;

#[test]
fn broker_scenarios_pass_against_the_reference_over_stdio() {
    for seed in [1u64, 0xb40c_e125] {
        let report = run_stdio(&format!("{} serve-reference", bin()), seed);
        let broker = results_under(&report, "scenario/broker/");
        assert!(broker.len() >= 15, "{broker:?}");
        for (id, outcome) in &broker {
            assert!(matches!(outcome, Outcome::Pass), "{id}: {outcome:?}");
        }
        for cap in ["broker/server", "broker/client"] {
            assert!(report.results.iter().any(
                |r| r.id == format!("profile/{cap}") && matches!(r.outcome, Outcome::Pass)
            ));
        }
        assert_eq!(report.failed(), 0);
    }
}

#[test]
fn the_sessions_are_new_in_every_run() {
    // CONF-74: keys, challenges and payloads from the run seed.
    let dump = |seed: u64| {
        let fx = Fixture::new(seed).unwrap();
        let list = scenarios(&fx).unwrap();
        assert!(list.len() >= 15);
        list.iter()
            .map(|s| format!("{}:{:?}", s.name, s.request()))
            .collect::<Vec<_>>()
    };
    assert_eq!(dump(1), dump(1));
    assert_ne!(dump(1), dump(2));
}

#[test]
fn every_broker_saboteur_is_caught_where_listed_over_stdio() {
    let broker = [
        "broker-skips-join-proof",
        "broker-stores-ephemeral",
        "broker-leaks-across-rooms",
        "client-resumes-from-zero",
        "client-signs-wrong-challenge",
        "client-accepts-other-room",
    ];
    for name in broker {
        assert_caught_where_listed(name, "scenario/broker/");
    }
}

#[test]
fn without_the_capability_broker_scenarios_are_skipped_naming_it() {
    let report = run_without_capabilities();
    let broker = results_under(&report, "scenario/broker/");
    assert!(broker.len() >= 15);
    for (id, outcome) in broker {
        match outcome {
            Outcome::Skipped(why) => assert!(why.contains("broker/"), "{id}: {why}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[test]
fn a_join_signed_over_the_wrong_challenge_is_named_bad_signature() {
    // CONF-81: the runner checks a client's JOIN itself, by class.
    let fx = Fixture::new(5).unwrap();
    let sc = scenarios(&fx)
        .unwrap()
        .into_iter()
        .find(|s| s.name == "client-hello-join-proof")
        .unwrap();
    let pb::request::Command::BrokerClientRun(req) = sc.request() else {
        panic!("a client scenario");
    };
    let good = client_run(&req, None).unwrap();
    assert_eq!(check_joins(&fx, &req, &good), None);
    let bad = client_run(&req, Some(Saboteur::ClientSignsWrongChallenge)).unwrap();
    let why = check_joins(&fx, &req, &bad).unwrap();
    assert!(why.contains("BAD_SIGNATURE"), "{why}");
}

#[test]
fn a_broker_run_answers_one_step_per_event() {
    let fx = Fixture::new(9).unwrap();
    for sc in scenarios(&fx).unwrap() {
        match sc.request() {
            pb::request::Command::BrokerServerRun(req) => {
                assert_eq!(
                    server_run(&req, None).unwrap().steps.len(),
                    req.events.len()
                );
                assert_eq!(sc.capability(), "broker/server");
            }
            pb::request::Command::BrokerClientRun(req) => {
                assert_eq!(
                    client_run(&req, None).unwrap().steps.len(),
                    req.events.len()
                );
                assert_eq!(sc.capability(), "broker/client");
            }
            other => panic!("{other:?}"),
        }
    }
}
