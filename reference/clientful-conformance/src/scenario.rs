//! Scenarios as data files (`conformance/scenarios/*.json`, format in its README):
//! replicas, edit intents, and the runner as the network — it moves envelopes with
//! seeded drops, duplicates and reordering, tampers with them, restarts replicas
//! from persisted state, and checks dispositions, convergence and content.

use std::collections::BTreeMap;

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

/// The world JSON (as in the document vector families) of a scenario's world.
pub fn world_json(w: &World) -> String {
    docworld::world_params(w).to_string()
}

struct Run<'a> {
    adapter: &'a mut dyn Adapter,
    next_id: u64,
    handles: BTreeMap<String, u32>,
    /// Every envelope each replica has sent (for `sync`, `tamper`, `replay`).
    sent: BTreeMap<String, Vec<Vec<u8>>>,
    /// Envelopes in flight: (to, bytes).
    queue: Vec<(String, Vec<u8>)>,
    rng: ChaCha20Rng,
    drop: f64,
    duplicate: f64,
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

impl Run<'_> {
    fn call(&mut self, cmd: Command) -> Result<R, ScenarioError> {
        self.next_id += 1;
        let resp = self.adapter.call(pb::Request {
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

    fn handle(&self, name: &str) -> Result<u32, ScenarioError> {
        self.handles
            .get(name)
            .copied()
            .ok_or_else(|| fail(format!("unknown replica {name}")))
    }

    fn deliver(&mut self, to: &str, env: Vec<u8>) -> Result<(String, String), ScenarioError> {
        let replica = self.handle(to)?;
        match self.call(Command::Deliver(pb::Deliver {
            replica,
            envelope: env,
        }))? {
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
        let replica = self.handle(name)?;
        match self.call(Command::Observe(pb::Observe { replica }))? {
            R::Observation(o) => {
                if o.state_digest.len() != 32 || o.history_digest.len() != 32 {
                    return Err(fail("digests must be 32 bytes"));
                }
                Ok((o.state_digest, o.history_digest, o.materialized_json))
            }
            _ => Err(fail("observe answered with another result")),
        }
    }

    fn step(&mut self, world: &World, step: &Value) -> Result<(), ScenarioError> {
        let op = str_of(step, "op")?;
        match op {
            "insert" | "delete" | "set" => {
                let replica = self.handle(str_of(step, "replica")?)?;
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
                self.call(Command::LocalEdit(pb::LocalEdit {
                    replica,
                    edit: Some(edit),
                }))?;
            }
            "commit" => {
                let name = str_of(step, "replica")?.to_string();
                let replica = self.handle(&name)?;
                self.call(Command::Commit(pb::Commit { replica }))?;
                if let R::Outbox(o) = self.call(Command::TakeOutbox(pb::TakeOutbox { replica }))? {
                    self.sent.entry(name).or_default().extend(o.envelopes);
                }
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
                let replica = self.handle(&name)?;
                let state = match self.call(Command::Persist(pb::Persist { replica }))? {
                    R::Persisted(p) => p.state,
                    _ => return Err(fail("persist answered with another result")),
                };
                match self.call(Command::Restart(pb::Restart { replica, state }))? {
                    R::Replica(h) if h.replica != 0 => {
                        self.handles.insert(name, h.replica);
                    }
                    _ => return Err(fail("restart must answer a non-zero handle")),
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
            "deliverRaw" => {
                let bytes = hex::decode(str_of(step, "hex")?).map_err(|e| fail(e.to_string()))?;
                self.expect_delivery(str_of(step, "to")?, bytes, step)?;
            }
            "forge" => {
                // A member device seals something bad (the runner holds the world's keys).
                let env = crate::runner::forge(world, step).map_err(fail)?;
                self.expect_delivery(str_of(step, "to")?, env, step)?;
            }
            "expectConverged" => {
                let replicas = names(step, "replicas")?;
                let mut first: Option<(Vec<u8>, Vec<u8>, String, String)> = None;
                for r in replicas {
                    let (s, h, m) = self.observe(&r)?;
                    match &first {
                        None => first = Some((s, h, m, r)),
                        Some((s0, h0, m0, r0)) if (s0, h0) != (&s, &h) => {
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

/// Runs one scenario file's JSON against an adapter.
pub fn run_scenario(adapter: &mut dyn Adapter, scenario: &Value) -> Result<(), ScenarioError> {
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
    let mut run = Run {
        adapter,
        next_id: 1000,
        handles: BTreeMap::new(),
        sent: BTreeMap::new(),
        queue: Vec::new(),
        rng: ChaCha20Rng::seed_from_u64(net.get("seed").and_then(Value::as_u64).unwrap_or(seed)),
        drop: net.get("drop").and_then(Value::as_f64).unwrap_or(0.0),
        duplicate: net.get("duplicate").and_then(Value::as_f64).unwrap_or(0.0),
    };
    let wj = world_json(&world);
    let replicas = scenario
        .get("replicas")
        .and_then(Value::as_object)
        .ok_or_else(|| fail("missing replicas"))?;
    for (name, dev) in replicas {
        let d = dev.as_u64().ok_or_else(|| fail("replica device index"))? as usize;
        let mut rng_seed = [0u8; 32];
        rng_seed[0] = d as u8;
        rng_seed[1..9].copy_from_slice(&seed.to_be_bytes());
        let device_seed = world.device_seeds.get(d).copied().unwrap_or([0xee; 32]);
        match run.call(Command::CreateReplica(pb::CreateReplica {
            world_json: wj.clone(),
            device_seed: device_seed.to_vec(),
            rng_seed: rng_seed.to_vec(),
        }))? {
            R::Replica(h) if h.replica != 0 => {
                run.handles.insert(name.clone(), h.replica);
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
