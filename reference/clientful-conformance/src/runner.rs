//! The runner (spec §12): start-up probes, vector families driven through the
//! harness (the committed cases and fresh ones generated from the run's seed,
//! CONF-53), scenarios, results, the closing line and the exit code.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use clientful_core::envelope::{self, SealRequest};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, binding, content};
use clientful_vectors::families::docworld;
use clientful_vectors::fresh::Fresh;
use clientful_vectors::schema::VectorFile;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

use crate::adapter::{Adapter, HarnessError};
use crate::expected::ExpectedFailures;
use crate::pb::{self, request::Command, response::Result as R};
use crate::report::{Kind, Level, Outcome, Report, TestResult};
use crate::scenario::{ScenarioError, run_scenario_named};

/// Request bytes with a command from the reserved probe range (field 1000, never
/// defined): a conforming implementation answers `unsupported`.
pub fn probe_request(id: u64) -> Vec<u8> {
    let mut bytes = pb::Request { id, command: None }.encode_to_vec();
    bytes.extend_from_slice(&[0xc2, 0x3e, 0x00]); // field 1000, length-delimited, empty
    bytes
}

/// Every capability this runner knows (CONF-12, CONF-41): the replica and
/// space profiles, `vectors/<family>` for every family, and
/// `vectors/<family>/<crdt>` for the document families that can be claimed per
/// CRDT. Declaring any other name is a harness error.
pub fn known_capabilities() -> Vec<String> {
    let mut all: Vec<String> = KNOWN_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    for f in clientful_vectors::FAMILIES {
        all.push(format!("vectors/{f}"));
        if PER_CRDT_FAMILIES.contains(f) {
            for crdt in ["yjs", "automerge"] {
                all.push(format!("vectors/{f}/{crdt}"));
            }
        }
    }
    all
}

/// Vector families whose cases can be claimed per CRDT
/// (`vectors/crdt-merge/yjs`, ...): each group's `params.crdt` names its CRDT.
pub const PER_CRDT_FAMILIES: &[&str] = &["crdt-merge", "passive-replica"];

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
    let known = known_capabilities();
    if let Some(bad) = hello.capabilities.iter().find(|c| !known.contains(c)) {
        return Err(HarnessError::Invalid(format!(
            "hello declares the unknown capability {bad:?} (CONF-41); known: {}",
            known.join(", ")
        )));
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
    /// The run's seed (CONF-3, CONF-53): sent in `configure`, and the seed the
    /// fresh cases were generated from; recorded in every report.
    pub seed: u64,
    /// Fresh vector cases generated from `seed` (CONF-53); `None`: the committed
    /// cases only.
    pub fresh: Option<Rc<Fresh>>,
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

/// Fresh cases for the run seed `seed` (CONF-53), generated once and shared by
/// the runs that use the same seed (the kill matrix).
pub fn fresh_cases(seed: u64) -> Result<Rc<Fresh>, String> {
    clientful_vectors::fresh::generate(seed).map(Rc::new)
}

/// A new run seed: not derived from the clock, different in every process.
pub fn new_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}
/// The fixed clock sent in `configure`: 2026-01-01T00:00:00Z.
pub const CONFIGURE_CLOCK_MS: u64 = 1_767_225_600_000;

/// The capabilities this runner knows (CONF-34, CONF-41).
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "replica/yjs",
    "replica/automerge",
    "replica/restart",
    "space/membership",
    "storage/layout",
    "broker/server",
    "broker/client",
    "app/lifecycle",
    "app/invariants",
    "space/documents",
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
    if cap == "storage/layout" {
        return crate::storage_scenarios::probe(adapter, id);
    }
    if cap == "broker/server" || cap == "broker/client" {
        return crate::broker_scenarios::probe(adapter, cap, id);
    }
    if cap == "app/lifecycle" || cap == "app/invariants" || cap == "space/documents" {
        return probe_app(adapter, cap, id);
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

/// Probes the application-level capabilities (CONF-41, CONF-96, CONF-104): a
/// fresh Yjs replica (for `space/documents`, one bound to a fresh space) is
/// active with no violations, and observes well formed.
fn probe_app(adapter: &mut dyn Adapter, cap: &str, id: &mut u64) -> Result<Outcome, HarnessError> {
    let mut call = |cmd: Command| probe_call(adapter, id, cmd);
    let replica = if cap == "space/documents" {
        let space = match call(Command::CreateSpace(pb::CreateSpace {
            seeds: Some(pb::DeviceSeeds {
                user_seed: [1; 32].to_vec(),
                device_seed: [2; 32].to_vec(),
                rng_seed: [3; 32].to_vec(),
            }),
        }))? {
            Some(R::Space(h)) if h.space != 0 => h.space,
            Some(R::Unsupported(u)) => return Ok(Outcome::Unsupported(u.command)),
            other => return Ok(Outcome::Fail(format!("create_space answered {other:?}"))),
        };
        match call(Command::CreateSpaceDocument(pb::CreateSpaceDocument {
            space,
            doc_id: [4; 32].to_vec(),
            crdt: "yjs".into(),
            rng_seed: [5; 32].to_vec(),
        }))? {
            Some(R::Replica(h)) if h.replica != 0 => h.replica,
            Some(R::Unsupported(u)) => return Ok(Outcome::Unsupported(u.command)),
            other => {
                return Ok(Outcome::Fail(format!(
                    "create_space_document answered {other:?}"
                )));
            }
        }
    } else {
        let world = World::new(0x5052_4f42, 2, CrdtKind::Yjs);
        match call(Command::CreateReplica(pb::CreateReplica {
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
        }
    };
    if cap == "space/documents" {
        return match call(Command::Observe(pb::Observe { replica }))? {
            Some(R::Observation(o))
                if o.state_digest.len() == 32 && o.history_digest.len() == 32 =>
            {
                Ok(Outcome::Pass)
            }
            Some(R::Unsupported(u)) => Ok(Outcome::Unsupported(u.command)),
            other => Ok(Outcome::Fail(format!("observe answered {other:?}"))),
        };
    }
    match call(Command::ObserveApp(pb::ObserveApp { replica }))? {
        Some(R::AppObservation(o))
            if o.violations.is_empty()
                && o.trashed_by.is_empty()
                && (cap != "app/lifecycle" || o.state == pb::LifecycleState::Active as i32) =>
        {
            Ok(Outcome::Pass)
        }
        Some(R::Unsupported(u)) => Ok(Outcome::Unsupported(u.command)),
        other => Ok(Outcome::Fail(format!(
            "observe_app of a fresh replica answered {other:?} (expected active, no violations)"
        ))),
    }
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
    report.seed = Some(opts.seed);
    let mut per_impl = Vec::new();
    for (i, a) in adapters.iter_mut().enumerate() {
        match start(&mut **a, &mut report) {
            Ok(c) => per_impl.push(c),
            Err(e) => {
                report.harness_failed(format!("implementation {}: {e}", i + 1));
                report.finished();
                return report;
            }
        }
    }
    // Scenarios need every implementation: the intersection (CONF-39).
    let caps: Vec<String> = per_impl
        .first()
        .map(|first| {
            first
                .iter()
                .filter(|c| per_impl.iter().all(|other| other.contains(c)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    report.capabilities = caps.clone();
    report.declared = per_impl.clone();
    let mut id = 10u64;
    // Run configuration (CONF-52): the run's seed and a fixed clock for every implementation.
    for (i, a) in adapters.iter_mut().enumerate() {
        id += 1;
        let answer = a.call(pb::Request {
            id,
            command: Some(Command::Configure(pb::Configure {
                seed: opts.seed,
                clock_ms: CONFIGURE_CLOCK_MS,
            })),
        });
        let problem = match answer {
            Ok(pb::Response {
                result: Some(R::Done(_)),
                ..
            }) => None,
            Ok(other) => Some(format!(
                "configure must be answered `done`, got {:?}",
                other.result
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(p) = problem {
            report.harness_failed(format!("implementation {}: {p}", i + 1));
            report.finished();
            return report;
        }
    }
    report.started();
    let mut ctx = Ctx {
        adapters,
        per_impl: &per_impl,
        caps: &caps,
        id,
        report: &mut report,
    };
    let ran = ctx
        .profiles()
        .and_then(|()| match &opts.vectors {
            Some(dir) => ctx.vectors(dir, opts.fresh.as_deref()),
            None => Ok(()),
        })
        .and_then(|()| match &opts.scenarios {
            // One scenario file (`run --scenario FILE`, CONF-90): that scenario only.
            Some(file) if file.is_file() => ctx.scenarios(file),
            Some(dir) => ctx
                .scenarios(dir)
                .and_then(|()| ctx.storage(opts.seed))
                .and_then(|()| ctx.broker(opts.seed)),
            None => Ok(()),
        });
    let id = ctx.id;
    if let Err(e) = ran {
        report.harness_failed(e);
        report.finished();
        return report;
    }
    if let Some(xf) = &opts.expected_failures {
        xf.apply(&mut report);
    }
    for (i, a) in adapters.iter_mut().enumerate() {
        // Best effort: the answer to shutdown does not change any verdict.
        let _ = a.call(pb::Request {
            id: id + 1 + i as u64,
            command: Some(Command::Shutdown(pb::Shutdown {})),
        });
    }
    report.finished();
    report
}

/// The state of a run between its sections.
struct Ctx<'r, 'a, 'b> {
    adapters: &'r mut [&'a mut dyn Adapter],
    per_impl: &'r [Vec<String>],
    caps: &'r [String],
    id: u64,
    report: &'b mut Report,
}

/// The CRDT a document-family group is for (`params.crdt`), if any.
fn group_crdt(family: &str, group: &clientful_vectors::schema::Group) -> Option<String> {
    if !PER_CRDT_FAMILIES.contains(&family) {
        return None;
    }
    group
        .params
        .get("crdt")
        .and_then(Value::as_str)
        .map(String::from)
}

impl Ctx<'_, '_, '_> {
    fn mixed(&self) -> bool {
        self.adapters.len() > 1
    }

    fn tag(&self, i: usize, id: &str) -> String {
        if self.mixed() {
            format!("impl{}/{id}", i + 1)
        } else {
            id.to_string()
        }
    }

    /// Capability profiles declared at hello, probed (CONF-41).
    fn profiles(&mut self) -> Result<(), String> {
        for i in 0..self.adapters.len() {
            for cap in self.per_impl.get(i).cloned().unwrap_or_default() {
                if cap.starts_with("vectors/") {
                    continue; // probed by their cases
                }
                let t = Instant::now();
                let test = self.tag(i, &format!("profile/{cap}"));
                let adapter = self.adapters.get_mut(i).ok_or("no such implementation")?;
                let outcome = probe_capability(&mut **adapter, &cap, &mut self.id)
                    .map_err(|e| format!("{test}: {e}"))?;
                self.report.push(TestResult {
                    id: test,
                    kind: Kind::Probe,
                    level: Level::Required,
                    profiles: vec![cap.clone()],
                    outcome,
                    millis: elapsed(t),
                });
            }
        }
        Ok(())
    }

    /// Every vector case of the committed files, then the fresh cases of the
    /// run (CONF-28, CONF-53), to each implementation.
    fn vectors(&mut self, dir: &Path, fresh: Option<&Fresh>) -> Result<(), String> {
        for family in clientful_vectors::FAMILIES {
            let path = dir.join(format!("{family}.json"));
            let file: VectorFile = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| {
                    format!(
                        "cannot load the vector file {}: {e} (give the test-vectors directory with --vectors DIR)",
                        path.display()
                    )
                })?;
            self.vector_file(family, &file, "")?;
            if let Some(fresh_file) =
                fresh.and_then(|f| f.files.iter().find(|f| f.family == *family))
            {
                // Only cases whose input differs from every committed case: an
                // adapter cannot answer them from the files.
                let committed: std::collections::BTreeSet<(String, String, String)> = file
                    .cases()
                    .map(|(g, c)| {
                        (
                            g.operation.clone(),
                            g.params.to_string(),
                            c.input.to_string(),
                        )
                    })
                    .collect();
                let mut fresh_file = fresh_file.clone();
                for g in fresh_file.groups.iter_mut() {
                    let (op, params) = (g.operation.clone(), g.params.to_string());
                    g.cases.retain(|c| {
                        !committed.contains(&(op.clone(), params.clone(), c.input.to_string()))
                    });
                }
                self.vector_file(family, &fresh_file, "fresh/")?;
            }
        }
        Ok(())
    }

    fn vector_file(&mut self, family: &str, file: &VectorFile, prefix: &str) -> Result<(), String> {
        let profile = format!("vectors/{family}");
        for i in 0..self.adapters.len() {
            let declared = self.per_impl.get(i).cloned().unwrap_or_default();
            for (group, case) in file.cases() {
                let t = Instant::now();
                let crdt = group_crdt(family, group);
                let mut profiles = vec![profile.clone()];
                let by_crdt = crdt.as_ref().map(|c| format!("{profile}/{c}"));
                profiles.extend(by_crdt.clone());
                let selected = declared.contains(&profile)
                    || by_crdt.as_ref().is_some_and(|p| declared.contains(p));
                let test = self.tag(i, &format!("{prefix}{}", case.id));
                let outcome = if !selected {
                    Outcome::Skipped(match &by_crdt {
                        Some(p) => format!("capability {p} (or {profile}) not declared"),
                        None => format!("capability {profile} not declared"),
                    })
                } else {
                    self.id += 1;
                    let adapter = self.adapters.get_mut(i).ok_or("no such implementation")?;
                    vector_outcome(&mut **adapter, self.id, family, group, case)
                        .map_err(|e| format!("{test}: {e}"))?
                };
                self.report.push(TestResult {
                    id: test,
                    kind: Kind::Vector,
                    level: Level::Required,
                    profiles,
                    outcome,
                    millis: elapsed(t),
                });
            }
        }
        Ok(())
    }

    /// Every scenario file whose capabilities every implementation declared.
    fn scenarios(&mut self, dir: &Path) -> Result<(), String> {
        let mut files: Vec<_> = if dir.is_file() {
            vec![dir.to_path_buf()]
        } else {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .collect()
                })
                .unwrap_or_default()
        };
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "no scenario files in {} (give the scenarios directory with --scenarios DIR)",
                dir.display()
            ));
        }
        for f in files {
            let name = format!(
                "scenario/{}",
                f.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            let t = Instant::now();
            let scenario: Value = std::fs::read(&f)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| format!("unreadable scenario {}: {e}", f.display()))?;
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
            let missing: Vec<String> = requires
                .iter()
                .filter(|r| !self.caps.contains(r))
                .map(|r| {
                    let lacking: Vec<String> = self
                        .per_impl
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.contains(r))
                        .map(|(i, _)| format!("impl{}", i + 1))
                        .collect();
                    if self.mixed() {
                        format!("{r} (not declared by {})", lacking.join(", "))
                    } else {
                        r.clone()
                    }
                })
                .collect();
            if !missing.is_empty() {
                self.report.push(TestResult {
                    id: name.clone(),
                    kind: Kind::Scenario,
                    level,
                    profiles: requires.clone(),
                    outcome: Outcome::Skipped(format!(
                        "capability not declared: {}",
                        missing.join(", ")
                    )),
                    millis: 0,
                });
                continue;
            }
            let names = self.report.implementations.clone();
            let played = run_scenario_named(self.adapters, &names, &scenario);
            let outcome = match played.result {
                Ok(()) => Outcome::Pass,
                Err(ScenarioError::Failed(m)) => Outcome::Fail(m),
                Err(ScenarioError::Unsupported(m)) => Outcome::Unsupported(m),
                Err(ScenarioError::Harness(e)) => return Err(format!("{name}: {e}")),
            };
            self.report.push(TestResult {
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
            self.report.push(TestResult {
                id: format!("{name}/evidence"),
                kind: Kind::Evidence,
                level: Level::Strict,
                profiles: requires,
                outcome: evidence,
                millis: 0,
            });
        }
        Ok(())
    }
}

impl Ctx<'_, '_, '_> {
    /// The storage scenarios (CONF-57..CONF-68), built afresh from the run's
    /// seed, to each implementation that declared `storage/layout`; the others
    /// get each as skipped, naming the capability.
    fn storage(&mut self, seed: u64) -> Result<(), String> {
        const CAP: &str = "storage/layout";
        let fx = crate::storage_scenarios::Fixture::new(seed).map_err(|e| {
            format!("storage scenarios: the reference cannot build the stores: {e}")
        })?;
        let list = crate::storage_scenarios::scenarios(&fx)
            .map_err(|e| format!("storage scenarios: {e}"))?;
        for i in 0..self.adapters.len() {
            let declared = self
                .per_impl
                .get(i)
                .is_some_and(|c| c.iter().any(|c| c == CAP));
            for sc in &list {
                let test = self.tag(i, &format!("scenario/storage/{}", sc.name));
                let t = Instant::now();
                let outcome = if !declared {
                    Outcome::Skipped(format!("capability not declared: {CAP}"))
                } else {
                    let adapter = self.adapters.get_mut(i).ok_or("no such implementation")?;
                    match crate::storage_scenarios::run(sc, &fx, &mut **adapter, &mut self.id) {
                        Ok(()) => Outcome::Pass,
                        Err(crate::storage_scenarios::StorageFailure::Failed(m)) => {
                            Outcome::Fail(format!("{m} [{}]", sc.refs))
                        }
                        Err(crate::storage_scenarios::StorageFailure::Unsupported(m)) => {
                            Outcome::Unsupported(m)
                        }
                        Err(crate::storage_scenarios::StorageFailure::Harness(e)) => {
                            return Err(format!("{test}: {e}"));
                        }
                    }
                };
                self.report.push(TestResult {
                    id: test,
                    kind: Kind::Scenario,
                    level: Level::Required,
                    profiles: vec![CAP.to_string()],
                    outcome,
                    millis: elapsed(t),
                });
            }
        }
        Ok(())
    }
}

impl Ctx<'_, '_, '_> {
    /// The broker scenarios (CONF-71..CONF-82), built afresh from the run's
    /// seed: `broker/server` ones to each implementation that declared it,
    /// `broker/client` ones likewise; the others get each as skipped, naming
    /// the capability.
    fn broker(&mut self, seed: u64) -> Result<(), String> {
        use crate::broker_scenarios::{self as bs, BrokerFailure};
        let fx = bs::Fixture::new(seed)
            .map_err(|e| format!("broker scenarios: the reference cannot build them: {e}"))?;
        let list = bs::scenarios(&fx).map_err(|e| format!("broker scenarios: {e}"))?;
        for i in 0..self.adapters.len() {
            for sc in &list {
                let cap = sc.capability();
                let declared = self
                    .per_impl
                    .get(i)
                    .is_some_and(|c| c.iter().any(|c| c == cap));
                let test = self.tag(i, &format!("scenario/broker/{}", sc.name));
                let t = Instant::now();
                let outcome = if !declared {
                    Outcome::Skipped(format!("capability not declared: {cap}"))
                } else {
                    let adapter = self.adapters.get_mut(i).ok_or("no such implementation")?;
                    match bs::run(sc, &fx, &mut **adapter, &mut self.id) {
                        Ok(()) => Outcome::Pass,
                        Err(BrokerFailure::Failed(m)) => {
                            Outcome::Fail(format!("{m} [{}]", sc.refs))
                        }
                        Err(BrokerFailure::Unsupported(m)) => Outcome::Unsupported(m),
                        Err(BrokerFailure::Harness(e)) => return Err(format!("{test}: {e}")),
                    }
                };
                self.report.push(TestResult {
                    id: test,
                    kind: Kind::Scenario,
                    level: Level::Required,
                    profiles: vec![cap.to_string()],
                    outcome,
                    millis: elapsed(t),
                });
            }
        }
        Ok(())
    }
}

/// The CRDT body of a malicious envelope written under `actor_of`'s actor;
/// `variant` changes the content, so that two bodies differ.
/// `index` is `actor_of`'s device index (DOC-19).
fn forged_body(world: &World, actor_of: &[u8; 32], index: usize, variant: usize) -> (u32, Vec<u8>) {
    match world.crdt {
        CrdtKind::Yjs => (
            content::YJS_UPDATE_V1,
            docworld::yjs_update_as(
                world.yjs_client_id(index, 0),
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
/// `wrongSpace` (sealed for another space: BAD_SIGNATURE, since the header does not
/// name the space and the signature covers it), `wrongDocument` (sealed for another
/// document of the space: WRONG_CONTEXT), `unknownEpoch` (under an epoch the
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
        "spoof" | "forgedPredecessor" | "wrongSpace" | "wrongDocument" | "unknownEpoch"
        | "futureVersion" => world.device(by),
        other => return Err(format!("unknown forge kind {other}")),
    };
    let (actor_of, index) = if kind == "spoof" {
        (world.device(victim).public_bytes(), victim)
    } else if kind == "outsider" {
        (author.public_bytes(), world.device_seeds.len())
    } else {
        (author.public_bytes(), by)
    };
    let (ct, body) = forged_body(world, &actor_of, index, 0);
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
    let mut doc_id = world.doc_id;
    if kind == "wrongDocument" {
        doc_id[0] ^= 0xff;
    }
    let sealed = envelope::seal(
        &author,
        &epoch,
        &SealRequest {
            space_id,
            doc_id,
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
        return resealed_with_version(&author, &world.space_id, &sealed.bytes, 2);
    }
    Ok(sealed.bytes)
}

/// The envelope with its header's `protocol_version` changed, signed again.
fn resealed_with_version(
    author: &clientful_core::keys::SigningKey,
    space_id: &[u8; 32],
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
    envelope::raw::sign_payload(author, space_id, payload.encode_to_vec())
        .map_err(|e| e.to_string())
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
        let (ct, body) = forged_body(world, &actor, by, variant);
        let (_, bytes) = docworld::seal_raw(world, by, 1, None, vec![], ct, &body, variant as u64)?;
        out.push(bytes);
    }
    let two = out.pop().ok_or("fork")?;
    let one = out.pop().ok_or("fork")?;
    Ok((one, two))
}
