//! Capability declarations as an implementer makes them: a misspelt capability
//! is a harness error, and the document vector families can be claimed per CRDT.
//! spec: CONF-12, CONF-34, CONF-41, CONF-47.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::root;

use clientful_conformance::adapter::{Adapter, HarnessError};
use clientful_conformance::pb::{self, response::Result as R};
use clientful_conformance::reference::ReferenceAdapter;
use clientful_conformance::report::{Kind, Outcome};
use clientful_conformance::runner::{RunOptions, run_with};

/// The reference, declaring `capabilities` instead of its own.
struct Declaring {
    inner: ReferenceAdapter,
    capabilities: Vec<String>,
}

impl Declaring {
    fn new(capabilities: &[&str]) -> Self {
        Declaring {
            inner: ReferenceAdapter::new(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn rewrite(&self, mut resp: pb::Response) -> pb::Response {
        if let Some(R::Hello(h)) = resp.result.as_mut() {
            h.capabilities = self.capabilities.clone();
        }
        resp
    }
}

impl Adapter for Declaring {
    fn call(&mut self, req: pb::Request) -> Result<pb::Response, HarnessError> {
        let resp = self.inner.call(req)?;
        Ok(self.rewrite(resp))
    }

    fn call_raw(&mut self, id: u64, bytes: Vec<u8>) -> Result<pb::Response, HarnessError> {
        let resp = self.inner.call_raw(id, bytes)?;
        Ok(self.rewrite(resp))
    }
}

fn options() -> RunOptions {
    RunOptions {
        vectors: Some(root().join("test-vectors")),
        scenarios: Some(root().join("conformance/scenarios")),
        ..RunOptions::default()
    }
}

#[test]
fn an_unknown_capability_is_a_harness_error() {
    let mut a = Declaring::new(&["vectors/primitives", "replica/yjss"]);
    let report = run_with(&mut [&mut a], options());
    assert_eq!(report.exit_code(), 2);
    let e = report.harness_error.clone().unwrap_or_default();
    assert!(e.contains("\"replica/yjss\""), "{e}");
    assert!(e.contains("replica/yjs,"), "{e}");
    assert!(report.results.is_empty());
}

#[test]
fn crdt_merge_and_passive_replica_can_be_claimed_for_one_crdt() {
    let mut a = Declaring::new(&["vectors/crdt-merge/yjs", "vectors/passive-replica/yjs"]);
    let report = run_with(&mut [&mut a], options());
    assert_eq!(report.exit_code(), 0, "{:?}", report.harness_error);
    let mut yjs = 0;
    let mut skipped_automerge = 0;
    for r in report.results.iter().filter(|r| r.kind == Kind::Vector) {
        if r.profiles.iter().any(|p| p.ends_with("/yjs")) {
            assert_eq!(r.outcome, Outcome::Pass, "{}", r.id);
            yjs += 1;
        }
        if r.profiles.iter().any(|p| p.ends_with("/automerge")) {
            match &r.outcome {
                Outcome::Skipped(why) => {
                    assert!(why.contains("/automerge"), "{why}");
                    skipped_automerge += 1;
                }
                other => panic!("{} ran: {other:?}", r.id),
            }
        }
    }
    assert!(yjs > 0 && skipped_automerge > 0);
    let profiles = report.profiles();
    for p in ["vectors/crdt-merge/yjs", "vectors/passive-replica/yjs"] {
        assert_eq!(profiles[p]["required"], "conformant", "{p}");
    }
    // Not "failed with zero failures": the other CRDT is listed as not run.
    let not_run = report.profiles_not_run();
    assert!(
        not_run.contains(&"vectors/crdt-merge/automerge (not declared)".to_string()),
        "{not_run:?}"
    );
    // A scenario skip names the missing capability.
    let skip = report
        .results
        .iter()
        .find(|r| r.id == "scenario/yjs-concurrent-edits")
        .map(|r| r.outcome.clone());
    assert!(
        matches!(&skip, Some(Outcome::Skipped(w)) if w.contains("replica/yjs")),
        "{skip:?}"
    );
    assert!(report.to_markdown().contains("Profiles not run"));
}
