//! Scenarios as data files (`conformance/scenarios/*.json`, format in its README):
//! replicas, edit intents, and the runner as the network — it moves envelopes with
//! seeded drops, duplicates and reordering, tampers with them, forges and
//! equivocates as a malicious member, restarts replicas from persisted state, and
//! checks dispositions, convergence and content. Replicas of one scenario may live
//! in different implementations (a mixed run, CONF-39): the runner assigns them in
//! turn and carries the bytes between them.
//!
//! Besides the scenario's own assertions (required), the runner collects evidence
//! (CONF-32, CONF-38): every observation's JSON must be canonical and hash to its
//! `state_digest`, every commit id must be the id of the envelope the outbox then
//! holds, every sealed nonce must be fresh, and a restart must not change what a
//! replica reports.

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::envelope;
use clientful_doc::CrdtKind;
use clientful_doc::testkit::World;
use clientful_vectors::families::docworld;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::Value;

use crate::adapter::{Adapter, HarnessError};
use crate::pb::{self, request::Command, response::Result as R};

/// Why a scenario did not pass.
#[derive(Debug)]
pub enum ScenarioError {
    /// The implementation broke the harness (exit code 2).
    Harness(HarnessError),
    /// The implementation answered `unsupported`.
    Unsupported(String),
    /// A check failed, or the implementation reported an internal error.
    Failed(String),
}

impl From<HarnessError> for ScenarioError {
    fn from(e: HarnessError) -> Self {
        ScenarioError::Harness(e)
    }
}

fn fail(msg: impl Into<String>) -> ScenarioError {
    ScenarioError::Failed(msg.into())
}

/// What playing a scenario found.
#[derive(Debug)]
pub struct ScenarioRun {
    /// The scenario's own assertions (required level).
    pub result: Result<(), ScenarioError>,
    /// SHOULD-level evidence problems found on the way (CONF-32): empty if none.
    pub evidence: Vec<String>,
    /// Whether the run got far enough for the evidence to mean something.
    pub completed: bool,
}

/// The world JSON (as in the document vector families) of a scenario's world.
pub fn world_json(w: &World) -> String {
    docworld::world_params(w).to_string()
}

/// Name under which the runner's own malicious envelopes are logged, so that
/// `sync` spreads them like any other.
const FORGER: &str = "#forger";

struct Run<'a, 'b> {
    adapters: &'a mut [&'b mut dyn Adapter],
    next_id: u64,
    /// Replica name -> (adapter index, handle).
    handles: BTreeMap<String, (usize, u32)>,
    /// Every envelope each replica has sent (for `sync`, `tamper`, `redeliver`).
    sent: BTreeMap<String, Vec<Vec<u8>>>,
    /// Envelopes in flight: (to, bytes).
    queue: Vec<(String, Vec<u8>)>,
    rng: ChaCha20Rng,
    drop: f64,
    duplicate: f64,
    /// Replicas with local edits not yet committed.
    dirty: BTreeSet<String>,
    /// Every nonce sealed so far, per author key (CONF-38).
    nonces: BTreeMap<[u8; 32], BTreeSet<[u8; 24]>>,
    evidence: Vec<String>,
}

fn str_of<'v>(step: &'v Value, key: &str) -> Result<&'v str, ScenarioError> {
    step.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| fail(format!("step needs `{key}`")))
}

fn names(step: &Value, key: &str) -> Result<Vec<String>, ScenarioError> {
    step.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| fail(format!("step needs `{key}`")))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .ok_or_else(|| fail("names are strings"))
        })
        .collect()
}

fn u32_of(step: &Value, key: &str) -> Result<u32, ScenarioError> {
    step.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| fail(format!("step needs integer `{key}`")))
}

/// The canonical form (DOC-11) of a JSON text, if it parses.
pub fn canonical_form(text: &str) -> Option<String> {
    use clientful_doc::canonical_json::Json;
    fn conv(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Json::Int(i),
                None => Json::Number(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Json::String(s.clone()),
            Value::Array(a) => Json::Array(a.iter().map(conv).collect()),
            Value::Object(o) => Json::Object(o.iter().map(|(k, v)| (k.clone(), conv(v))).collect()),
        }
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .map(|v| conv(&v).to_canonical_string())
}

impl Run<'_, '_> {
    fn call_on(&mut self, adapter: usize, cmd: Command) -> Result<R, ScenarioError> {
        self.next_id += 1;
        let a = self
            .adapters
            .get_mut(adapter)
            .ok_or_else(|| fail("no such implementation"))?;
        let resp = a.call(pb::Request {
            id: self.next_id,
            command: Some(cmd),
        })?;
        match resp.result {
            Some(R::Unsupported(u)) => Err(ScenarioError::Unsupported(u.command)),
            Some(R::Error(e)) => Err(fail(format!("internal error: {}", e.message))),
            Some(r) => Ok(r),
            None => Err(ScenarioError::Harness(HarnessError::Invalid(
                "empty response".into(),
            ))),
        }
    }

    fn handle(&self, name: &str) -> Result<(usize, u32), ScenarioError> {
        self.handles
            .get(name)
            .copied()
            .ok_or_else(|| fail(format!("unknown replica {name}")))
    }

    fn deliver(&mut self, to: &str, env: Vec<u8>) -> Result<(String, String), ScenarioError> {
        let (a, replica) = self.handle(to)?;
        match self.call_on(
            a,
            Command::Deliver(pb::Deliver {
                replica,
                envelope: env,
            }),
        )? {
            R::Deliver(d) => {
                let disp = match pb::Disposition::try_from(d.disposition) {
                    Ok(pb::Disposition::Applied) => "applied",
                    Ok(pb::Disposition::Buffered) => "buffered",
                    Ok(pb::Disposition::Duplicate) => "duplicate",
                    Ok(pb::Disposition::Rejected) => "rejected",
                    _ => return Err(fail(format!("invalid disposition {}", d.disposition))),
                };
                let class = clientful_core::ErrorClass::try_from(d.error)
                    .map(|c| clientful_core::error::class_name(c).to_string())
                    .unwrap_or_default();
                if disp == "rejected" && (class.is_empty() || class == "UNSPECIFIED") {
                    return Err(fail("rejected without an error class"));
                }
                Ok((disp.to_string(), class))
            }
            _ => Err(fail("deliver answered with another result")),
        }
    }

    fn observe(&mut self, name: &str) -> Result<(Vec<u8>, Vec<u8>, String), ScenarioError> {
        let (a, replica) = self.handle(name)?;
        match self.call_on(a, Command::Observe(pb::Observe { replica }))? {
            R::Observation(o) => {
                if o.state_digest.len() != 32 || o.history_digest.len() != 32 {
                    return Err(fail("digests must be 32 bytes"));
                }
                // CONF-32 evidence: canonical JSON, and the digest recomputed from it.
                match canonical_form(&o.materialized_json) {
                    None => self.evidence.push(format!(
                        "{name}: materialized_json is not JSON: {}",
                        o.materialized_json
                    )),
                    Some(c) if c != o.materialized_json => self.evidence.push(format!(
                        "{name}: materialized_json is not canonical (DOC-11): {:?}",
                        o.materialized_json
                    )),
                    Some(_) => {}
                }
                let recomputed = clientful_core::suite::hash_with_label(
                    clientful_core::labels::DIGEST_STATE,
                    o.materialized_json.as_bytes(),
                )
                .map(|h| h.to_vec())
                .unwrap_or_default();
                if recomputed != o.state_digest {
                    self.evidence.push(format!(
                        "{name}: state_digest is not HashWithLabel(\"digest/state\", materialized_json) (DOC-12)"
                    ));
                }
                Ok((o.state_digest, o.history_digest, o.materialized_json))
            }
            _ => Err(fail("observe answered with another result")),
        }
    }

    /// CONF-38: a nonce sealed twice by one author is a failure (required).
    fn check_nonces(&mut self, name: &str, envs: &[Vec<u8>]) -> Result<(), ScenarioError> {
        for e in envs {
            let d = envelope::decode(e).map_err(|err| {
                fail(format!(
                    "{name} sent an envelope that does not decode: {err}"
                ))
            })?;
            if !self
                .nonces
                .entry(d.header.author)
                .or_default()
                .insert(d.header.nonce)
            {
                return Err(fail(format!(
                    "{name} sealed two envelopes with the same nonce (ENV-21 step 3)"
                )));
            }
        }
        Ok(())
    }

    fn step(&mut self, world: &World, step: &Value) -> Result<(), ScenarioError> {
        let op = str_of(step, "op")?;
        match op {
            "insert" | "delete" | "set" => {
                let name = str_of(step, "replica")?.to_string();
                let (a, replica) = self.handle(&name)?;
                let edit = match op {
                    "insert" => pb::local_edit::Edit::Insert(pb::TextInsert {
                        index: u32_of(step, "index")?,
                        text: str_of(step, "text")?.into(),
                    }),
                    "delete" => pb::local_edit::Edit::Delete(pb::TextDelete {
                        index: u32_of(step, "index")?,
                        length: u32_of(step, "length")?,
                    }),
                    _ => pb::local_edit::Edit::MapSet(pb::MapSet {
                        key: str_of(step, "key")?.into(),
                        value: str_of(step, "value")?.into(),
                    }),
                };
                self.call_on(
                    a,
                    Command::LocalEdit(pb::LocalEdit {
                        replica,
                        edit: Some(edit),
                    }),
                )?;
                self.dirty.insert(name);
            }
            "commit" => {
                let name = str_of(step, "replica")?.to_string();
                let (a, replica) = self.handle(&name)?;
                let id = match self.call_on(a, Command::Commit(pb::Commit { replica }))? {
                    R::Commit(c) => c.envelope_id,
                    _ => return Err(fail("commit answered with another result")),
                };
                self.dirty.remove(&name);
                let envs = match self.call_on(a, Command::TakeOutbox(pb::TakeOutbox { replica }))? {
                    R::Outbox(o) => o.envelopes,
                    _ => return Err(fail("take_outbox answered with another result")),
                };
                // CONF-32 evidence: the commit id is the id of the envelope sealed for it.
                match (id.is_empty(), envs.last()) {
                    (true, None) => {}
                    (false, Some(last)) => {
                        let ok = envelope::decode(last).is_ok_and(|d| d.id.as_slice() == id);
                        if !ok {
                            self.evidence.push(format!(
                                "{name}: commit id {} is not the id (ENV-4) of the envelope in the outbox",
                                hex::encode(&id)
                            ));
                        }
                    }
                    (true, Some(_)) => self.evidence.push(format!(
                        "{name}: commit returned no id but sealed an envelope"
                    )),
                    (false, None) => {
                        return Err(fail(format!(
                            "{name}: commit returned an id but the outbox is empty (CONF-17)"
                        )));
                    }
                }
                self.check_nonces(&name, &envs)?;
                self.sent.entry(name).or_default().extend(envs);
            }
            "send" => {
                // Queue everything `from` has sent so far to `to`, through the faulty network.
                let from = str_of(step, "from")?;
                let envs = self.sent.get(from).cloned().unwrap_or_default();
                for to in names(step, "to")? {
                    for e in &envs {
                        self.queue.push((to.clone(), e.clone()));
                    }
                }
            }
            "flush" => {
                // Deliver the queue in a seeded random order, with drops and duplicates.
                let mut q = std::mem::take(&mut self.queue);
                for i in (1..q.len()).rev() {
                    let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
                    q.swap(i, j);
                }
                for (to, e) in q {
                    if self.rng.next_u64() as f64 / u64::MAX as f64 >= self.drop {
                        self.deliver(&to, e.clone())?;
                    }
                    if (self.rng.next_u64() as f64 / u64::MAX as f64) < self.duplicate {
                        self.deliver(&to, e)?;
                    }
                }
            }
            "sync" => {
                // Reliable catch-up: every replica receives every envelope ever sent, in order.
                let all: Vec<Vec<u8>> = self.sent.values().flatten().cloned().collect();
                let targets: Vec<String> = self.handles.keys().cloned().collect();
                for to in targets {
                    for e in &all {
                        self.deliver(&to, e.clone())?;
                    }
                }
            }
            "restart" => {
                let name = str_of(step, "replica")?.to_string();
                let (a, replica) = self.handle(&name)?;
                // CONF-21: with nothing uncommitted, a restart changes no observable.
                let before = if self.dirty.contains(&name) {
                    None
                } else {
                    Some(self.observe(&name)?)
                };
                let state = match self.call_on(a, Command::Persist(pb::Persist { replica }))? {
                    R::Persisted(p) => p.state,
                    _ => return Err(fail("persist answered with another result")),
                };
                match self.call_on(a, Command::Restart(pb::Restart { replica, state }))? {
                    R::Replica(h) if h.replica != 0 => {
                        self.handles.insert(name.clone(), (a, h.replica));
                    }
                    _ => return Err(fail("restart must answer a non-zero handle")),
                }
                self.dirty.remove(&name);
                if let Some(before) = before {
                    let after = self.observe(&name)?;
                    if before != after {
                        return Err(fail(format!(
                            "{name} reports other observables after a restart (CONF-21): {} became {}",
                            before.2, after.2
                        )));
                    }
                }
            }
            "tamper" => {
                // Flip one byte of the last envelope `from` sent, deliver it, check the result.
                let from = str_of(step, "from")?;
                let mut env = self
                    .sent
                    .get(from)
                    .and_then(|v| v.last().cloned())
                    .ok_or_else(|| fail("nothing sent"))?;
                let at = step.get("byte").and_then(Value::as_i64).unwrap_or(-1);
                let idx = if at < 0 {
                    env.len().saturating_sub(at.unsigned_abs() as usize)
                } else {
                    at as usize
                };
                if let Some(b) = env.get_mut(idx) {
                    *b ^= 0x01;
                }
                self.expect_delivery(str_of(step, "to")?, env, step)?;
            }
            "redeliver" => {
                // Deliver one envelope `from` already sent again, directly.
                let from = str_of(step, "from")?;
                let sent = self.sent.get(from).cloned().unwrap_or_default();
                let env = match step.get("index").and_then(Value::as_u64) {
                    Some(i) => sent.get(i as usize).cloned(),
                    None => sent.last().cloned(),
                }
                .ok_or_else(|| fail("no such sent envelope"))?;
                self.expect_delivery(str_of(step, "to")?, env, step)?;
            }
            "deliverRaw" => {
                let bytes = hex::decode(str_of(step, "hex")?).map_err(|e| fail(e.to_string()))?;
                self.expect_delivery(str_of(step, "to")?, bytes, step)?;
            }
            "forge" => {
                // A member device seals something bad (the runner holds the world's keys).
                let env = crate::runner::forge(world, step).map_err(fail)?;
                self.expect_delivery(str_of(step, "to")?, env, step)?;
            }
            "equivocate" => {
                // Member `by` seals two different envelopes with seq 1 and shows one to
                // each side; both join the runner's log so `sync` spreads them.
                let (one, two) = crate::runner::fork(world, step).map_err(fail)?;
                for to in names(step, "first")? {
                    self.expect_delivery(&to, one.clone(), step)?;
                }
                for to in names(step, "second")? {
                    self.expect_delivery(&to, two.clone(), step)?;
                }
                self.sent
                    .entry(FORGER.to_string())
                    .or_default()
                    .extend([one, two]);
            }
            "expectConverged" => {
                let replicas = names(step, "replicas")?;
                let mut first: Option<(Vec<u8>, Vec<u8>, String, String)> = None;
                for r in replicas {
                    let (s, h, m) = self.observe(&r)?;
                    match &first {
                        None => first = Some((s, h, m, r)),
                        Some((s0, h0, m0, r0)) if (s0, h0, m0) != (&s, &h, &m) => {
                            return Err(fail(format!("{r} differs from {r0}: {m} vs {m0}")));
                        }
                        Some(_) => {}
                    }
                }
            }
            "expectContent" => {
                let (_, _, m) = self.observe(str_of(step, "replica")?)?;
                let want = step.get("json").ok_or_else(|| fail("step needs `json`"))?;
                let got: Value = serde_json::from_str(&m)
                    .map_err(|e| fail(format!("materialized is not JSON: {e}")))?;
                if &got != want {
                    return Err(fail(format!("content {got} != {want}")));
                }
            }
            other => return Err(fail(format!("unknown step op {other}"))),
        }
        Ok(())
    }

    fn expect_delivery(
        &mut self,
        to: &str,
        env: Vec<u8>,
        step: &Value,
    ) -> Result<(), ScenarioError> {
        let (disp, class) = self.deliver(to, env)?;
        let got = if disp == "rejected" {
            format!("rejected:{class}")
        } else {
            disp
        };
        let want = str_of(step, "expect")?;
        if got != want {
            return Err(fail(format!("expected {want}, got {got}")));
        }
        Ok(())
    }
}

fn play(run: &mut Run<'_, '_>, scenario: &Value) -> Result<(), ScenarioError> {
    let world_spec = scenario.get("world").ok_or_else(|| fail("missing world"))?;
    let crdt = match world_spec.get("crdt").and_then(Value::as_str) {
        Some("yjs") => CrdtKind::Yjs,
        Some("automerge") => CrdtKind::Automerge,
        _ => return Err(fail("world.crdt must be yjs or automerge")),
    };
    let devices = world_spec
        .get("devices")
        .and_then(Value::as_u64)
        .unwrap_or(3) as usize;
    let seed = world_spec.get("seed").and_then(Value::as_u64).unwrap_or(1);
    let world = World::new(seed, devices, crdt);
    let net = scenario.get("network").cloned().unwrap_or(Value::Null);
    run.rng = ChaCha20Rng::seed_from_u64(net.get("seed").and_then(Value::as_u64).unwrap_or(seed));
    run.drop = net.get("drop").and_then(Value::as_f64).unwrap_or(0.0);
    run.duplicate = net.get("duplicate").and_then(Value::as_f64).unwrap_or(0.0);
    let wj = world_json(&world);
    let replicas = scenario
        .get("replicas")
        .and_then(Value::as_object)
        .ok_or_else(|| fail("missing replicas"))?;
    let n_impls = run.adapters.len().max(1);
    for (i, (name, dev)) in replicas.iter().enumerate() {
        let d = dev.as_u64().ok_or_else(|| fail("replica device index"))? as usize;
        let mut rng_seed = [0u8; 32];
        rng_seed[0] = d as u8;
        rng_seed[1..9].copy_from_slice(&seed.to_be_bytes());
        let device_seed = world.device_seeds.get(d).copied().unwrap_or([0xee; 32]);
        // Mixed runs (CONF-39): replicas go to the implementations in turn.
        let a = i % n_impls;
        match run.call_on(
            a,
            Command::CreateReplica(pb::CreateReplica {
                world_json: wj.clone(),
                device_seed: device_seed.to_vec(),
                rng_seed: rng_seed.to_vec(),
            }),
        )? {
            R::Replica(h) if h.replica != 0 => {
                run.handles.insert(name.clone(), (a, h.replica));
            }
            _ => return Err(fail("create_replica must answer a non-zero handle")),
        }
    }
    for (i, step) in scenario
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("missing steps"))?
        .iter()
        .enumerate()
    {
        run.step(&world, step).map_err(|e| match e {
            ScenarioError::Failed(m) => fail(format!("step {i}: {m}")),
            other => other,
        })?;
    }
    Ok(())
}

/// Plays one scenario file's JSON against one implementation, or several (a
/// mixed run).
pub fn run_scenario(adapters: &mut [&mut dyn Adapter], scenario: &Value) -> ScenarioRun {
    let mut run = Run {
        adapters,
        next_id: 1000,
        handles: BTreeMap::new(),
        sent: BTreeMap::new(),
        queue: Vec::new(),
        rng: ChaCha20Rng::seed_from_u64(0),
        drop: 0.0,
        duplicate: 0.0,
        dirty: BTreeSet::new(),
        nonces: BTreeMap::new(),
        evidence: Vec::new(),
    };
    let result = play(&mut run, scenario);
    ScenarioRun {
        completed: result.is_ok(),
        result,
        evidence: run.evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_and_strips() {
        assert_eq!(
            canonical_form("{ \"b\": 1, \"a\": [true, null, \"x\"] }").as_deref(),
            Some("{\"a\":[true,null,\"x\"],\"b\":1}")
        );
        assert_eq!(canonical_form("nope"), None);
    }
}
