//! The runner (spec §12): start-up probes, vector families driven through the
//! harness, scenarios, results, the closing line and the exit code.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clientful_core::envelope::{self, SealRequest};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, binding, content};
use clientful_vectors::families::docworld;
use clientful_vectors::schema::VectorFile;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

use crate::adapter::{Adapter, HarnessError};
use crate::expected::ExpectedFailures;
use crate::pb::{self, request::Command, response::Result as R};
use crate::report::{Kind, Level, Outcome, Report, TestResult};
use crate::scenario::{ScenarioError, run_scenario};

/// Request bytes with a command from the reserved probe range (field 1000, never
/// defined): a conforming implementation answers `unsupported`.
pub fn probe_request(id: u64) -> Vec<u8> {
    let mut bytes = pb::Request { id, command: None }.encode_to_vec();
    bytes.extend_from_slice(&[0xc2, 0x3e, 0x00]); // field 1000, length-delimited, empty
    bytes
}

fn start(adapter: &mut dyn Adapter, report: &mut Report) -> Result<Vec<String>, HarnessError> {
    report.implementations.push("(no answer to hello)".into());
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
    if let Some(last) = report.implementations.last_mut() {
        *last = format!("{} {}", hello.implementation, hello.version);
    }
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

/// What a run selects and how it reports.
#[derive(Default)]
pub struct RunOptions {
    /// Vector files directory (`None`: no vectors).
    pub vectors: Option<PathBuf>,
    /// Scenario files directory (`None`: no scenarios).
    pub scenarios: Option<PathBuf>,
    /// The level the run is judged at.
    pub level: Level,
    /// The implementation's expected-failures file.
    pub expected_failures: Option<ExpectedFailures>,
    /// The JSON-lines log.
    pub log: Option<Box<dyn std::io::Write>>,
}

/// The run seed sent in `configure` (CONF-52).
pub const CONFIGURE_SEED: u64 = 0x636c_6965_6e74_6675;
/// The fixed clock sent in `configure`: 2026-01-01T00:00:00Z.
pub const CONFIGURE_CLOCK_MS: u64 = 1_767_225_600_000;

/// The capabilities this runner knows (CONF-34, CONF-41).
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "replica/yjs",
    "replica/automerge",
    "replica/restart",
    "space/membership",
];

fn elapsed(t: Instant) -> u64 {
    t.elapsed().as_millis().min(u64::MAX as u128) as u64
}

/// Probes one declared replica capability (CONF-41): a replica of the profile's
/// kind is created, observed (and, for `replica/restart`, persisted and
/// restarted), and its observables must be well formed.
fn probe_capability(
    adapter: &mut dyn Adapter,
    cap: &str,
    id: &mut u64,
) -> Result<Outcome, HarnessError> {
    if cap == "space/membership" {
        return probe_space(adapter, id);
    }
    let crdt = if cap == "replica/automerge" {
        CrdtKind::Automerge
    } else {
        CrdtKind::Yjs
    };
    let world = World::new(0x5052_4f42, 2, crdt);
    let mut call = |cmd: Command| probe_call(adapter, id, cmd);
    let mut handle = match call(Command::CreateReplica(pb::CreateReplica {
        world_json: crate::scenario::world_json(&world),
        device_seed: world
            .device_seeds
            .first()
            .copied()
            .unwrap_or_default()
            .to_vec(),
        rng_seed: [7; 32].to_vec(),
    }))? {
        Some(R::Replica(h)) if h.replica != 0 => h.replica,
        other => return Ok(Outcome::Fail(format!("create_replica answered {other:?}"))),
    };
    if cap == "replica/restart" {
        let state = match call(Command::Persist(pb::Persist { replica: handle }))? {
            Some(R::Persisted(p)) => p.state,
            other => return Ok(Outcome::Fail(format!("persist answered {other:?}"))),
        };
        handle = match call(Command::Restart(pb::Restart {
            replica: handle,
            state,
        }))? {
            Some(R::Replica(h)) if h.replica != 0 => h.replica,
            other => return Ok(Outcome::Fail(format!("restart answered {other:?}"))),
        };
    }
    match call(Command::Observe(pb::Observe { replica: handle }))? {
        Some(R::Observation(o)) if o.state_digest.len() == 32 && o.history_digest.len() == 32 => {
            match crate::scenario::canonical_form(&o.materialized_json) {
                Some(_) => Ok(Outcome::Pass),
                None => Ok(Outcome::Fail("materialized_json is not JSON".into())),
            }
        }
        Some(R::Unsupported(u)) => Ok(Outcome::Unsupported(u.command)),
        other => Ok(Outcome::Fail(format!("observe answered {other:?}"))),
    }
}

/// Sends one probe command with the next id; the answer's result.
fn probe_call(
    adapter: &mut dyn Adapter,
    id: &mut u64,
    cmd: Command,
) -> Result<Option<R>, HarnessError> {
    *id += 1;
    Ok(adapter
        .call(pb::Request {
            id: *id,
            command: Some(cmd),
        })?
        .result)
}

/// Probes `space/membership`: a space is created and observed; the digest is 32
/// bytes, the state canonical JSON, and the creator holds the current epoch.
fn probe_space(adapter: &mut dyn Adapter, id: &mut u64) -> Result<Outcome, HarnessError> {
    let mut call = |cmd: Command| probe_call(adapter, id, cmd);
    let space = match call(Command::CreateSpace(pb::CreateSpace {
        seeds: Some(pb::DeviceSeeds {
            user_seed: [1; 32].to_vec(),
            device_seed: [2; 32].to_vec(),
            rng_seed: [3; 32].to_vec(),
        }),
    }))? {
        Some(R::Space(h)) if h.space != 0 && h.space_id.len() == 32 => h.space,
        Some(R::Unsupported(u)) => return Ok(Outcome::Unsupported(u.command)),
        other => return Ok(Outcome::Fail(format!("create_space answered {other:?}"))),
    };
    match call(Command::ObserveSpace(pb::ObserveSpace { space }))? {
        Some(R::SpaceObservation(o))
            if o.digest.len() == 32
                && o.current_epoch.len() == 32
                && crate::scenario::canonical_form(&o.state_json).as_deref()
                    == Some(o.state_json.as_str()) =>
        {
            Ok(Outcome::Pass)
        }
        other => Ok(Outcome::Fail(format!("observe_space answered {other:?}"))),
    }
}

/// Runs everything selected against one implementation.
pub fn run(adapter: &mut dyn Adapter, vectors: Option<&Path>, scenarios: Option<&Path>) -> Report {
    run_with(
        &mut [adapter],
        RunOptions {
            vectors: vectors.map(Path::to_path_buf),
            scenarios: scenarios.map(Path::to_path_buf),
            ..RunOptions::default()
        },
    )
}

/// Runs everything selected against one implementation, or a mixed run of
/// several (CONF-39): vectors and probes go to each, and each scenario's
/// replicas are spread over all of them.
pub fn run_with(adapters: &mut [&mut dyn Adapter], opts: RunOptions) -> Report {
    let mut report = Report::new(opts.level, opts.log);
    let mut caps: Option<Vec<String>> = None;
    let mut per_impl = Vec::new();
    for a in adapters.iter_mut() {
        match start(&mut **a, &mut report) {
            Ok(c) => {
                caps = Some(match caps {
                    None => c.clone(),
                    Some(prev) => prev.into_iter().filter(|x| c.contains(x)).collect(),
                });
                per_impl.push(c);
            }
            Err(e) => {
                report.harness_failed(e.to_string());
                report.finished();
                return report;
            }
        }
    }
    let caps = caps.unwrap_or_default();
    report.capabilities = caps.clone();
    let mut id = 10u64;
    // Run configuration (CONF-52): one seed and a fixed clock for every implementation.
    for a in adapters.iter_mut() {
        id += 1;
        match a.call(pb::Request {
            id,
            command: Some(Command::Configure(pb::Configure {
                seed: CONFIGURE_SEED,
                clock_ms: CONFIGURE_CLOCK_MS,
            })),
        }) {
            Ok(pb::Response {
                result: Some(R::Done(_)),
                ..
            }) => {}
            Ok(other) => {
                report.harness_failed(format!(
                    "configure must be answered `done`, got {:?}",
                    other.result
                ));
                report.finished();
                return report;
            }
            Err(e) => {
                report.harness_failed(e.to_string());
                report.finished();
                return report;
            }
        }
    }
    report.started();
    let mixed = adapters.len() > 1;
    let tag = |i: usize, id: &str| {
        if mixed {
            format!("impl{}/{id}", i + 1)
        } else {
            id.to_string()
        }
    };
    // Capability profiles declared at hello, probed (CONF-41).
    for (i, a) in adapters.iter_mut().enumerate() {
        for cap in per_impl.get(i).cloned().unwrap_or_default() {
            if cap.starts_with("vectors/")
                && clientful_vectors::FAMILIES
                    .iter()
                    .any(|f| cap == format!("vectors/{f}"))
            {
                continue;
            }
            let t = Instant::now();
            let (outcome, level) = if KNOWN_CAPABILITIES.contains(&cap.as_str()) {
                match probe_capability(&mut **a, &cap, &mut id) {
                    Ok(o) => (o, Level::Required),
                    Err(e) => {
                        report.harness_failed(e.to_string());
                        report.finished();
                        return report;
                    }
                }
            } else {
                (
                    Outcome::Fail(format!("unknown capability {cap:?} declared (CONF-41)")),
                    Level::Strict,
                )
            };
            report.push(TestResult {
                id: tag(i, &format!("profile/{cap}")),
                kind: Kind::Probe,
                level,
                profiles: vec![cap.clone()],
                outcome,
                millis: elapsed(t),
            });
        }
    }
    if let Some(dir) = &opts.vectors {
        for family in clientful_vectors::FAMILIES {
            let file: VectorFile = match std::fs::read(dir.join(format!("{family}.json")))
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(f) => f,
                Err(e) => {
                    report.harness_failed(format!("cannot load {family}.json: {e}"));
                    report.finished();
                    return report;
                }
            };
            let profile = format!("vectors/{family}");
            for (i, a) in adapters.iter_mut().enumerate() {
                let declared = per_impl.get(i).is_some_and(|c| c.contains(&profile));
                for (group, case) in file.cases() {
                    let t = Instant::now();
                    let outcome = if !declared {
                        Outcome::Skipped(format!("{profile} not declared"))
                    } else {
                        id += 1;
                        match vector_outcome(&mut **a, id, family, group, case) {
                            Ok(o) => o,
                            Err(e) => {
                                report.harness_failed(e.to_string());
                                report.finished();
                                return report;
                            }
                        }
                    };
                    report.push(TestResult {
                        id: tag(i, &case.id),
                        kind: Kind::Vector,
                        level: Level::Required,
                        profiles: vec![profile.clone()],
                        outcome,
                        millis: elapsed(t),
                    });
                }
            }
        }
    }
    if let Some(dir) = &opts.scenarios {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if files.is_empty() {
            report.harness_failed(format!("no scenario files in {}", dir.display()));
            report.finished();
            return report;
        }
        for f in files {
            let name = format!(
                "scenario/{}",
                f.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let t = Instant::now();
            let scenario: Value = match std::fs::read(&f)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(v) => v,
                Err(e) => {
                    report.harness_failed(format!("unreadable scenario {}: {e}", f.display()));
                    report.finished();
                    return report;
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
            let level = match scenario.get("level").and_then(Value::as_str) {
                Some("strict") => Level::Strict,
                _ => Level::Required,
            };
            if !requires.iter().all(|r| caps.contains(r)) {
                report.push(TestResult {
                    id: name.clone(),
                    kind: Kind::Scenario,
                    level,
                    profiles: requires.clone(),
                    outcome: Outcome::Skipped("a required capability is not declared".into()),
                    millis: 0,
                });
                continue;
            }
            let played = run_scenario(adapters, &scenario);
            let outcome = match played.result {
                Ok(()) => Outcome::Pass,
                Err(ScenarioError::Failed(m)) => Outcome::Fail(m),
                Err(ScenarioError::Unsupported(m)) => Outcome::Unsupported(m),
                Err(ScenarioError::Harness(e)) => {
                    report.harness_failed(format!("{name}: {e}"));
                    report.finished();
                    return report;
                }
            };
            report.push(TestResult {
                id: name.clone(),
                kind: Kind::Scenario,
                level,
                profiles: requires.clone(),
                outcome,
                millis: elapsed(t),
            });
            let evidence = if !played.completed {
                Outcome::Skipped("the scenario did not complete".into())
            } else if played.evidence.is_empty() {
                Outcome::Pass
            } else {
                Outcome::Fail(played.evidence.join("; "))
            };
            report.push(TestResult {
                id: format!("{name}/evidence"),
                kind: Kind::Evidence,
                level: Level::Strict,
                profiles: requires,
                outcome: evidence,
                millis: 0,
            });
        }
    }
    if let Some(xf) = &opts.expected_failures {
        xf.apply(&mut report);
    }
    for a in adapters.iter_mut() {
        id += 1;
        // Best effort: the answer to shutdown does not change any verdict.
        let _ = a.call(pb::Request {
            id,
            command: Some(Command::Shutdown(pb::Shutdown {})),
        });
    }
    report.finished();
    report
}

/// The CRDT body of a malicious envelope written under `actor_of`'s actor;
/// `variant` changes the content, so that two bodies differ.
fn forged_body(world: &World, actor_of: &[u8; 32], variant: usize) -> (u32, Vec<u8>) {
    match world.crdt {
        CrdtKind::Yjs => (
            content::YJS_UPDATE_V1,
            docworld::yjs_update_as(
                binding::yjs_client_id(actor_of, &world.doc_id),
                if variant == 0 { "forged" } else { "other fork" },
                0,
            ),
        ),
        CrdtKind::Automerge => (
            content::AUTOMERGE_CHANGES,
            docworld::automerge_changes_as(
                binding::automerge_actor(actor_of, &world.doc_id),
                1 + variant,
                0,
            ),
        ),
    }
}

/// Seals a deliberately bad envelope as a member of the scenario's world.
/// `kind`: `spoof` (content under another device's actor), `forgedPredecessor`
/// (a predecessor nobody has), `outsider` (signed by a non-member),
/// `wrongSpace` (sealed for another space), `unknownEpoch` (under an epoch the
/// space never had), `futureVersion` (protocol version 2, signed), `oversized`
/// (one byte over the envelope size limit).
pub fn forge(world: &World, step: &Value) -> Result<Vec<u8>, String> {
    let kind = step
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("forge needs `kind`")?;
    let by = step.get("by").and_then(Value::as_u64).unwrap_or(0) as usize;
    let victim = step.get("victim").and_then(Value::as_u64).unwrap_or(0) as usize;
    if kind == "oversized" {
        return Ok(vec![0x0a; clientful_core::limits::MAX_ENVELOPE_BYTES + 1]);
    }
    let author = match kind {
        "outsider" => clientful_core::keys::SigningKey::from_seed(&[0x99; 32]),
        "spoof" | "forgedPredecessor" | "wrongSpace" | "unknownEpoch" | "futureVersion" => {
            world.device(by)
        }
        other => return Err(format!("unknown forge kind {other}")),
    };
    let actor_of = if kind == "spoof" {
        world.device(victim).public_bytes()
    } else {
        author.public_bytes()
    };
    let (ct, body) = forged_body(world, &actor_of, 0);
    let preds = if kind == "forgedPredecessor" {
        vec![[0x42; 32]]
    } else {
        vec![]
    };
    let epoch = if kind == "unknownEpoch" {
        clientful_core::keys::EpochKey::new([0x5e; 32], [0x5f; 32])
    } else {
        world.epoch_key()
    };
    let mut space_id = world.space_id;
    if kind == "wrongSpace" {
        space_id[0] ^= 0xff;
    }
    let sealed = envelope::seal(
        &author,
        &epoch,
        &SealRequest {
            space_id,
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
    if kind == "futureVersion" {
        return resealed_with_version(&author, &sealed.bytes, 2);
    }
    Ok(sealed.bytes)
}

/// The envelope with its header's `protocol_version` changed, signed again.
fn resealed_with_version(
    author: &clientful_core::keys::SigningKey,
    bytes: &[u8],
    version: u32,
) -> Result<Vec<u8>, String> {
    use clientful_proto::v1 as w;
    let signed = w::SignedEnvelope::decode(bytes).map_err(|e| e.to_string())?;
    let mut payload =
        w::EnvelopePayload::decode(signed.payload.as_slice()).map_err(|e| e.to_string())?;
    let mut header =
        w::EnvelopeHeader::decode(payload.header.as_slice()).map_err(|e| e.to_string())?;
    header.protocol_version = version;
    payload.header = header.encode_to_vec();
    envelope::raw::sign_payload(author, payload.encode_to_vec()).map_err(|e| e.to_string())
}

/// Two different envelopes with seq 1 by member `by` (an equivocation, DOC-9).
pub fn fork(world: &World, step: &Value) -> Result<(Vec<u8>, Vec<u8>), String> {
    let by = step
        .get("by")
        .and_then(Value::as_u64)
        .ok_or("equivocate needs `by`")? as usize;
    let actor = world.device(by).public_bytes();
    let mut out = Vec::new();
    for variant in 0..2 {
        let (ct, body) = forged_body(world, &actor, variant);
        let (_, bytes) = docworld::seal_raw(world, by, 1, None, vec![], ct, &body, variant as u64)?;
        out.push(bytes);
    }
    let two = out.pop().ok_or("fork")?;
    let one = out.pop().ok_or("fork")?;
    Ok((one, two))
}
