//! The runner (spec §12): start-up probes, vector families driven through the
//! harness, scenarios, results, the closing line and the exit code.

use std::path::Path;

use clientful_core::envelope::{self, SealRequest};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, binding, content};
use clientful_vectors::families::docworld;
use clientful_vectors::schema::VectorFile;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

use crate::adapter::{Adapter, HarnessError};
use crate::pb::{self, request::Command, response::Result as R};
use crate::scenario::{ScenarioError, run_scenario};

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with why.
    Fail(String),
    /// Declared capability, answered `unsupported`: counts as a failure.
    Unsupported(String),
    /// Not declared by the implementation: not run.
    Skipped,
}

/// All results of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Implementation name and version from hello.
    pub implementation: String,
    /// (test id, outcome).
    pub results: Vec<(String, Outcome)>,
    /// A harness error that ended the run.
    pub harness_error: Option<String>,
}

impl Report {
    /// Passed tests.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| *o == Outcome::Pass)
            .count()
    }

    /// Failed tests (failures and unsupported declared capabilities).
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Fail(_) | Outcome::Unsupported(_)))
            .count()
    }

    /// Exit code (CONF): 0 all passed, 1 failures, 2 harness error, 3 nothing ran.
    pub fn exit_code(&self) -> u8 {
        if self.harness_error.is_some() {
            2
        } else if self.passed() + self.failed() == 0 {
            3
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }

    /// The report as JSON (`report.json`).
    pub fn to_json(&self) -> Value {
        json!({
            "implementation": self.implementation,
            "passed": self.passed(),
            "failed": self.failed(),
            "harnessError": self.harness_error,
            "exitCode": self.exit_code(),
            "results": self.results.iter().map(|(id, o)| match o {
                Outcome::Pass => json!({"id": id, "outcome": "pass"}),
                Outcome::Fail(m) => json!({"id": id, "outcome": "fail", "detail": m}),
                Outcome::Unsupported(m) => json!({"id": id, "outcome": "unsupported", "detail": m}),
                Outcome::Skipped => json!({"id": id, "outcome": "skipped"}),
            }).collect::<Vec<_>>(),
        })
    }
}

/// Request bytes with a command from the reserved probe range (field 1000, never
/// defined): a conforming implementation answers `unsupported`.
pub fn probe_request(id: u64) -> Vec<u8> {
    let mut bytes = pb::Request { id, command: None }.encode_to_vec();
    bytes.extend_from_slice(&[0xc2, 0x3e, 0x00]); // field 1000, length-delimited, empty
    bytes
}

fn start(adapter: &mut dyn Adapter, report: &mut Report) -> Result<Vec<String>, HarnessError> {
    let resp = adapter.call(pb::Request {
        id: 1,
        command: Some(Command::Hello(pb::Hello {
            harness_version: crate::HARNESS_VERSION,
        })),
    })?;
    let hello = match resp.result {
        Some(R::Hello(h)) => h,
        other => {
            return Err(HarnessError::Invalid(format!(
                "hello answered with {other:?}"
            )));
        }
    };
    if hello.harness_version != crate::HARNESS_VERSION {
        return Err(HarnessError::Invalid(format!(
            "harness version {}",
            hello.harness_version
        )));
    }
    report.implementation = format!("{} {}", hello.implementation, hello.version);
    match adapter.call_raw(2, probe_request(2))?.result {
        Some(R::Unsupported(_)) => {}
        other => {
            return Err(HarnessError::Invalid(format!(
                "the probe command must be answered `unsupported`, got {other:?}"
            )));
        }
    }
    Ok(hello.capabilities)
}

fn vector_outcome(
    adapter: &mut dyn Adapter,
    id: u64,
    family: &str,
    group: &clientful_vectors::schema::Group,
    case: &clientful_vectors::schema::Case,
) -> Result<Outcome, HarnessError> {
    let resp = adapter.call(pb::Request {
        id,
        command: Some(Command::RunVector(pb::RunVector {
            family: family.into(),
            operation: group.operation.clone(),
            params_json: group.params.to_string(),
            input_json: case.input.to_string(),
        })),
    })?;
    Ok(match resp.result {
        Some(R::Vector(v)) => match (v.outcome, case.result.as_str()) {
            (Some(pb::vector_result::Outcome::OutputJson(out)), "valid") => {
                match serde_json::from_str::<Value>(&out) {
                    Ok(v) if v == case.expected => Outcome::Pass,
                    Ok(v) => Outcome::Fail(format!("output {v} differs from expected")),
                    Err(e) => Outcome::Fail(format!("output is not JSON: {e}")),
                }
            }
            (Some(pb::vector_result::Outcome::Rejected(c)), "invalid") => {
                let got = clientful_core::ErrorClass::try_from(c)
                    .ok()
                    .filter(|c| *c != clientful_core::ErrorClass::Unspecified)
                    .map(clientful_core::error::class_name);
                if got.is_some() && got == case.error.as_deref() {
                    Outcome::Pass
                } else {
                    Outcome::Fail(format!("rejected with {got:?}, expected {:?}", case.error))
                }
            }
            // An acceptable case may go either way, but the answer must be real.
            (Some(pb::vector_result::Outcome::OutputJson(_)), "acceptable") => Outcome::Pass,
            (Some(pb::vector_result::Outcome::Rejected(c)), "acceptable") if c != 0 => {
                Outcome::Pass
            }
            (Some(pb::vector_result::Outcome::OutputJson(_)), _) => {
                Outcome::Fail(format!("accepted, expected {:?}", case.error))
            }
            (Some(pb::vector_result::Outcome::Rejected(c)), _) => {
                Outcome::Fail(format!("rejected with class {c}"))
            }
            (None, _) => Outcome::Fail("empty vector result".into()),
        },
        Some(R::Unsupported(u)) => Outcome::Unsupported(u.command),
        Some(R::Error(e)) => Outcome::Fail(format!("internal error: {}", e.message)),
        Some(other) => Outcome::Fail(format!(
            "run_vector answered with another result: {other:?}"
        )),
        None => return Err(HarnessError::Invalid("empty response".into())),
    })
}

/// Runs everything selected against `adapter`.
pub fn run(adapter: &mut dyn Adapter, vectors: Option<&Path>, scenarios: Option<&Path>) -> Report {
    let mut report = Report::default();
    let caps = match start(adapter, &mut report) {
        Ok(c) => c,
        Err(e) => {
            report.harness_error = Some(e.to_string());
            return report;
        }
    };
    let mut id = 10u64;
    if let Some(dir) = vectors {
        for family in clientful_vectors::FAMILIES {
            let file: VectorFile = match std::fs::read(dir.join(format!("{family}.json")))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(f) => f,
                Err(e) => {
                    report.harness_error = Some(format!("cannot load {family}.json: {e}"));
                    return report;
                }
            };
            let declared = caps.iter().any(|c| c == &format!("vectors/{family}"));
            for (group, case) in file.cases() {
                if !declared {
                    report.results.push((case.id.clone(), Outcome::Skipped));
                    continue;
                }
                id += 1;
                match vector_outcome(adapter, id, family, group, case) {
                    Ok(o) => report.results.push((case.id.clone(), o)),
                    Err(e) => {
                        report.harness_error = Some(e.to_string());
                        return report;
                    }
                }
            }
        }
    }
    if let Some(dir) = scenarios {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for f in files {
            let name = format!(
                "scenario/{}",
                f.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let scenario: Value = match std::fs::read(&f)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(v) => v,
                Err(e) => {
                    report
                        .results
                        .push((name, Outcome::Fail(format!("unreadable scenario: {e}"))));
                    continue;
                }
            };
            let requires: Vec<String> = scenario
                .get("requires")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if !requires.iter().all(|r| caps.contains(r)) {
                report.results.push((name, Outcome::Skipped));
                continue;
            }
            match run_scenario(adapter, &scenario) {
                Ok(()) => report.results.push((name, Outcome::Pass)),
                Err(ScenarioError::Failed(m)) => report.results.push((name, Outcome::Fail(m))),
                Err(ScenarioError::Unsupported(m)) => {
                    report.results.push((name, Outcome::Unsupported(m)))
                }
                Err(ScenarioError::Harness(e)) => {
                    report.harness_error = Some(e.to_string());
                    return report;
                }
            }
        }
    }
    report
}

/// Seals a deliberately bad envelope as a member of the scenario's world:
/// `kind` = `spoof` (content under another device's actor), `forgedPredecessor`
/// (a predecessor nobody has), `outsider` (signed by a non-member).
pub fn forge(world: &World, step: &Value) -> Result<Vec<u8>, String> {
    let kind = step
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("forge needs `kind`")?;
    let by = step.get("by").and_then(Value::as_u64).unwrap_or(0) as usize;
    let victim = step.get("victim").and_then(Value::as_u64).unwrap_or(0) as usize;
    let author = match kind {
        "outsider" => clientful_core::keys::SigningKey::from_seed(&[0x99; 32]),
        _ => world.device(by),
    };
    let actor_of = if kind == "spoof" {
        world.device(victim).public_bytes()
    } else {
        author.public_bytes()
    };
    let (ct, body) = match world.crdt {
        CrdtKind::Yjs => (
            content::YJS_UPDATE_V1,
            docworld::yjs_update_as(
                binding::yjs_client_id(&actor_of, &world.doc_id),
                "forged",
                0,
            ),
        ),
        CrdtKind::Automerge => (
            content::AUTOMERGE_CHANGES,
            docworld::automerge_changes_as(
                binding::automerge_actor(&actor_of, &world.doc_id),
                1,
                0,
            ),
        ),
    };
    let preds = if kind == "forgedPredecessor" {
        vec![[0x42; 32]]
    } else {
        vec![]
    };
    let sealed = envelope::seal(
        &author,
        &world.epoch_key(),
        &SealRequest {
            space_id: world.space_id,
            doc_id: world.doc_id,
            seq: 1,
            prev: None,
            preds,
            content_type: ct,
            body: &body,
        },
        &mut ChaCha20Rng::seed_from_u64(by as u64),
    )
    .map_err(|e| e.to_string())?;
    Ok(sealed.bytes)
}
