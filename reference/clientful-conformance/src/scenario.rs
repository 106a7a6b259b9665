//! Scenarios as data files (`conformance/scenarios/*.json`, format in its README):
//! replicas, edit intents, and the runner as the network — it moves envelopes with
//! seeded drops, duplicates and reordering, tampers with them, forges and
//! equivocates as a malicious member, restarts replicas from persisted state, and
//! checks dispositions, convergence and content. Replicas of one scenario may live
//! in different implementations (a mixed run, CONF-39): the runner assigns them in
//! turn and carries the bytes between them.
//!
//! Besides the scenario's own assertions, the runner recomputes what it can
//! (CONF-54, required): every observation's `state_digest` must be the digest of
//! its materialized JSON (DOC-12), and its `history_digest` the digest of the
//! envelope ids the replica has integrated (DOC-13), which the runner knows from
//! what the replica sealed, what it delivered and the dispositions it got back.
//! Every sealed nonce must be fresh, and a restart must not change what a replica
//! reports (CONF-38). The SHOULD-level evidence (CONF-32) is that every
//! observation's JSON is canonical and every commit id is the id of the envelope
//! the outbox then holds.

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

#[path = "app_steps.rs"]
mod app_steps;

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

/// The envelope ids one replica has integrated, as the runner knows them
/// (CONF-54): what it sealed, what it answered `applied` (or rejected as
/// EQUIVOCATION, which stays integrated, DOC-9), and what it answered `buffered`
/// once every predecessor is integrated (released by DOC-6 step 8). A restart
/// loses the buffer (CONF-21).
#[derive(Debug, Default, Clone)]
pub struct History {
    integrated: BTreeSet<[u8; 32]>,
    /// Buffered envelope id -> the ids it waits for (`prev` and `preds`).
    buffered: BTreeMap<[u8; 32], Vec<[u8; 32]>>,
}

impl History {
    /// Records what the replica sealed itself.
    pub fn sealed(&mut self, env: &[u8]) {
        if let Ok(d) = envelope::decode(env) {
            self.integrated.insert(d.id);
            self.release();
        }
    }

    /// Records a delivery and its answer (`applied`, `buffered`, `duplicate`,
    /// `rejected:<CLASS>`).
    pub fn delivered(&mut self, env: &[u8], answer: &str) {
        let Ok(d) = envelope::decode(env) else {
            return;
        };
        match answer {
            // An envelope without write authority (MEM-18) stays integrated as
            // evidence too (DOC-7, CONF-108).
            "applied"
            | "rejected:EQUIVOCATION"
            | "rejected:REMOVED_MEMBER"
            | "rejected:NOT_A_MEMBER" => {
                self.buffered.remove(&d.id);
                self.integrated.insert(d.id);
                self.release();
            }
            "buffered" if !self.integrated.contains(&d.id) => {
                let mut deps = d.header.preds.clone();
                deps.extend(d.header.prev);
                self.buffered.insert(d.id, deps);
                self.release();
            }
            _ => {}
        }
    }

    /// Buffered envelopes whose predecessors are all integrated are integrated
    /// (DOC-6 step 8), repeatedly.
    fn release(&mut self) {
        loop {
            let ready: Vec<[u8; 32]> = self
                .buffered
                .iter()
                .filter(|(_, deps)| deps.iter().all(|p| self.integrated.contains(p)))
                .map(|(id, _)| *id)
                .collect();
            if ready.is_empty() {
                return;
            }
            for id in ready {
                self.buffered.remove(&id);
                self.integrated.insert(id);
            }
        }
    }

    /// A restart drops the buffer.
    pub fn restarted(&mut self) {
        self.buffered.clear();
    }

    /// `HistoryDigest` (DOC-13) of the integrated ids.
    pub fn digest(&self) -> Vec<u8> {
        let ids: Vec<u8> = self.integrated.iter().flatten().copied().collect();
        clientful_core::suite::hash_with_label(clientful_core::labels::DIGEST_HISTORY, &ids)
            .map(|h| h.to_vec())
            .unwrap_or_default()
    }
}

struct Run<'a, 'b> {
    adapters: &'a mut [&'b mut dyn Adapter],
    /// Name and version of each implementation (for messages in mixed runs).
    impl_names: Vec<String>,
    /// What each replica has integrated, as the runner knows it (CONF-54).
    histories: BTreeMap<String, History>,
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
    /// World seed (for device seeds of space replicas).
    seed: u64,
    /// Space replica name -> (adapter index, handle).
    spaces: BTreeMap<String, (usize, u32)>,
    /// What each space replica's create/join/redeem answered.
    space_info: BTreeMap<String, pb::SpaceHandle>,
    /// Invite codes by name.
    invites: BTreeMap<String, Vec<u8>>,
    /// Every operation envelope and key message a space replica sent: (from, item).
    space_log: Vec<(String, pb::SpaceItem)>,
    /// Welcomes not yet delivered.
    welcomes: Vec<pb::SpaceItem>,
    /// Space items in flight: (to, item).
    space_queue: Vec<(String, pb::SpaceItem)>,
    /// Epochs the runner handed out that no rotation created, by name (KEY-18).
    private_epochs: BTreeMap<String, Vec<u8>>,
    /// Document replica name -> its device's signing key (for `<device:NAME>`
    /// in keys and for `trashedBy`, CONF-97).
    device_keys: BTreeMap<String, [u8; 32]>,
    /// Learning mode (CONF-87): instead of checking a learnable expectation,
    /// record what the implementation answered, by step index and field.
    learned: Option<BTreeMap<usize, serde_json::Map<String, Value>>>,
    /// The index of the step being played.
    step_index: usize,
}

fn seed_of(tag: &str, name: &str, seed: u64) -> Vec<u8> {
    let mut input = tag.as_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(name.as_bytes());
    input.extend_from_slice(&seed.to_be_bytes());
    clientful_core::suite::sha256(&input).to_vec()
}

fn seed_32(b: &[u8]) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (d, x) in s.iter_mut().zip(b) {
        *d = *x;
    }
    s
}

fn role_of(step: &Value) -> Result<i32, ScenarioError> {
    Ok(match str_of(step, "role")? {
        "reader" => pb::Role::Reader as i32,
        "writer" => pb::Role::Writer as i32,
        "admin" => pb::Role::Admin as i32,
        other => return Err(fail(format!("unknown role {other}"))),
    })
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

/// A delivery's answer as `applied`, `buffered`, `duplicate` or `rejected:<CLASS>`;
/// an invalid disposition, or a rejection without a class, fails (CONF-23).
fn delivery(d: &pb::DeliverResult) -> Result<String, ScenarioError> {
    Ok(match pb::Disposition::try_from(d.disposition) {
        Ok(pb::Disposition::Applied) => "applied".into(),
        Ok(pb::Disposition::Buffered) => "buffered".into(),
        Ok(pb::Disposition::Duplicate) => "duplicate".into(),
        Ok(pb::Disposition::Rejected) => {
            let class = clientful_core::ErrorClass::try_from(d.error)
                .ok()
                .filter(|c| *c != clientful_core::ErrorClass::Unspecified)
                .ok_or_else(|| fail("rejected without an error class"))?;
            format!("rejected:{}", clientful_core::error::class_name(class))
        }
        _ => return Err(fail(format!("invalid disposition {}", d.disposition))),
    })
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
    /// In learning mode, records `got` as the value of the current step's
    /// `key` and answers `true` (the caller skips its check); a second,
    /// different answer for the same step and key is a failure (the step is
    /// not learnable). Outside learning mode, answers `false`.
    fn learn(&mut self, key: &str, got: Value) -> Result<bool, ScenarioError> {
        let i = self.step_index;
        let Some(learned) = self.learned.as_mut() else {
            return Ok(false);
        };
        let fields = learned.entry(i).or_default();
        match fields.get(key) {
            Some(prev) if *prev != got => Err(fail(format!(
                "step {i} is not learnable: `{key}` was {prev}, then {got}"
            ))),
            _ => {
                fields.insert(key.to_string(), got);
                Ok(true)
            }
        }
    }

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

    /// Delivers an envelope; the answer as `applied`, `buffered`, `duplicate` or
    /// `rejected:<CLASS>`.
    fn deliver(&mut self, to: &str, env: Vec<u8>) -> Result<String, ScenarioError> {
        let (a, replica) = self.handle(to)?;
        let answer = match self.call_on(
            a,
            Command::Deliver(pb::Deliver {
                replica,
                envelope: env.clone(),
            }),
        )? {
            R::Deliver(d) => delivery(&d)?,
            _ => return Err(fail("deliver answered with another result")),
        };
        self.histories
            .entry(to.to_string())
            .or_default()
            .delivered(&env, &answer);
        Ok(answer)
    }

    /// Which implementation hosts replica `name`, for messages (CONF-39).
    fn host(&self, name: &str) -> String {
        match self.handles.get(name).or_else(|| self.spaces.get(name)) {
            Some((a, _)) if self.adapters.len() > 1 => format!(
                "{name} (on impl{}: {})",
                a + 1,
                self.impl_names.get(*a).map(String::as_str).unwrap_or("?")
            ),
            _ => name.to_string(),
        }
    }

    fn observe(&mut self, name: &str) -> Result<(Vec<u8>, Vec<u8>, String), ScenarioError> {
        let (a, replica) = self.handle(name)?;
        match self.call_on(a, Command::Observe(pb::Observe { replica }))? {
            R::Observation(o) => {
                if o.state_digest.len() != 32 || o.history_digest.len() != 32 {
                    return Err(fail("digests must be 32 bytes"));
                }
                // CONF-32 evidence (SHOULD): the JSON is canonical.
                let canonical = canonical_form(&o.materialized_json).ok_or_else(|| {
                    fail(format!(
                        "{}: materialized_json is not JSON: {}",
                        self.host(name),
                        o.materialized_json
                    ))
                })?;
                if canonical != o.materialized_json {
                    self.evidence.push(format!(
                        "{name}: materialized_json is not canonical (DOC-11): {:?}",
                        o.materialized_json
                    ));
                }
                // CONF-54 (MUST): both digests recomputed.
                let state = clientful_core::suite::hash_with_label(
                    clientful_core::labels::DIGEST_STATE,
                    canonical.as_bytes(),
                )
                .map(|h| h.to_vec())
                .unwrap_or_default();
                if state != o.state_digest {
                    return Err(fail(format!(
                        "{}: state_digest {} is not HashWithLabel(\"digest/state\", canonical JSON of materialized_json) = {} (DOC-12, CONF-54)",
                        self.host(name),
                        hex::encode(&o.state_digest),
                        hex::encode(&state)
                    )));
                }
                let history = self.histories.get(name).cloned().unwrap_or_default();
                let want = history.digest();
                if want != o.history_digest {
                    return Err(fail(format!(
                        "{}: history_digest {} is not the digest of the {} envelope ids it has integrated (sealed, or delivered and answered applied) = {} (DOC-13, CONF-54)",
                        self.host(name),
                        hex::encode(&o.history_digest),
                        history.integrated.len(),
                        hex::encode(&want)
                    )));
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

    fn seeds(&self, name: &str, user: u64) -> pb::DeviceSeeds {
        pb::DeviceSeeds {
            user_seed: seed_of("user", &user.to_string(), self.seed),
            device_seed: seed_of("device", name, self.seed),
            rng_seed: seed_of("rng", name, self.seed),
        }
    }

    fn space(&self, name: &str) -> Result<(usize, u32), ScenarioError> {
        self.spaces
            .get(name)
            .copied()
            .ok_or_else(|| fail(format!("unknown space replica {name}")))
    }

    fn info(&self, name: &str) -> Result<&pb::SpaceHandle, ScenarioError> {
        self.space_info
            .get(name)
            .ok_or_else(|| fail(format!("unknown space replica {name}")))
    }

    fn new_space(&mut self, name: &str, cmd: Command) -> Result<(), ScenarioError> {
        let a = self.spaces.len() % self.adapters.len().max(1);
        match self.call_on(a, cmd)? {
            R::Space(h) if h.space != 0 && h.space_id.len() == 32 && h.user_key.len() == 32 => {
                self.spaces.insert(name.to_string(), (a, h.space));
                self.space_info.insert(name.to_string(), h);
                self.collect(name).map(|_| ())
            }
            other => Err(fail(format!("space command answered {other:?}"))),
        }
    }

    /// Takes `name`'s space outbox into the log (and the pending welcomes).
    fn collect(&mut self, name: &str) -> Result<usize, ScenarioError> {
        let (a, space) = self.space(name)?;
        let items =
            match self.call_on(a, Command::TakeSpaceOutbox(pb::TakeSpaceOutbox { space }))? {
                R::SpaceOutbox(o) => o.items,
                _ => return Err(fail("take_space_outbox answered with another result")),
            };
        let n = items.len();
        for item in items {
            match pb::SpaceItemKind::try_from(item.kind) {
                Ok(pb::SpaceItemKind::Welcome) => self.welcomes.push(item),
                Ok(pb::SpaceItemKind::Envelope | pb::SpaceItemKind::KeyMessage) => {
                    self.space_log.push((name.to_string(), item))
                }
                _ => return Err(fail(format!("invalid space item kind {}", item.kind))),
            }
        }
        Ok(n)
    }

    fn deliver_space(&mut self, to: &str, item: pb::SpaceItem) -> Result<String, ScenarioError> {
        let (a, space) = self.space(to)?;
        match self.call_on(
            a,
            Command::DeliverSpace(pb::DeliverSpace {
                space,
                item: Some(item),
            }),
        )? {
            R::Deliver(d) => delivery(&d),
            _ => Err(fail("deliver_space answered with another result")),
        }
    }

    /// Reliable catch-up for `targets`: every logged key message, then every
    /// logged envelope, then the welcomes addressed to their devices.
    fn space_sync(&mut self, targets: &[String]) -> Result<(), ScenarioError> {
        for _ in 0..2 {
            let mut log = self.space_log.clone();
            log.sort_by_key(|(_, i)| i.kind != pb::SpaceItemKind::KeyMessage as i32);
            for to in targets {
                for (from, item) in &log {
                    if from != to {
                        self.deliver_space(to, item.clone())?;
                    }
                }
            }
            let welcomes = std::mem::take(&mut self.welcomes);
            for w in welcomes {
                let to = self
                    .space_info
                    .iter()
                    .find(|(_, h)| h.device_id == w.device_id)
                    .map(|(n, _)| n.clone());
                match to {
                    Some(to) if targets.contains(&to) => {
                        self.deliver_space(&to, w)?;
                    }
                    _ => self.welcomes.push(w),
                }
            }
        }
        Ok(())
    }

    fn intent(
        &mut self,
        by: &str,
        intent: pb::space_intent::Intent,
    ) -> Result<pb::SpaceIntentResult, ScenarioError> {
        let (a, space) = self.space(by)?;
        let r = match self.call_on(
            a,
            Command::SpaceIntent(pb::SpaceIntent {
                space,
                intent: Some(intent),
            }),
        )? {
            R::SpaceIntent(r) => r,
            _ => return Err(fail("space_intent answered with another result")),
        };
        self.collect(by)?;
        Ok(r)
    }

    fn export_secrets(&mut self, name: &str) -> Result<pb::Secrets, ScenarioError> {
        let (a, space) = self.space(name)?;
        match self.call_on(a, Command::ExportSecrets(pb::ExportSecrets { space }))? {
            R::Secrets(s) => Ok(s),
            _ => Err(fail("export_secrets answered with another result")),
        }
    }

    fn observe_space(&mut self, name: &str) -> Result<pb::SpaceObservation, ScenarioError> {
        let (a, space) = self.space(name)?;
        match self.call_on(a, Command::ObserveSpace(pb::ObserveSpace { space }))? {
            R::SpaceObservation(o) => {
                if o.digest.len() != 32 {
                    return Err(fail("the membership digest must be 32 bytes"));
                }
                if !(o.current_epoch.is_empty() || o.current_epoch.len() == 32) {
                    return Err(fail("current_epoch must be empty or 32 bytes"));
                }
                if canonical_form(&o.state_json).as_deref() != Some(o.state_json.as_str()) {
                    self.evidence
                        .push(format!("{name}: state_json is not canonical JSON"));
                }
                Ok(o)
            }
            _ => Err(fail("observe_space answered with another result")),
        }
    }

    fn space_names(&self, step: &Value) -> Result<Vec<String>, ScenarioError> {
        match step.get("replicas") {
            Some(_) => names(step, "replicas"),
            None => Ok(self.spaces.keys().cloned().collect()),
        }
    }

    fn space_step(&mut self, op: &str, step: &Value) -> Result<bool, ScenarioError> {
        use pb::space_intent::Intent as I;
        let user = |step: &Value| step.get("user").and_then(Value::as_u64).unwrap_or(0);
        match op {
            "createSpace" => {
                let name = str_of(step, "as")?.to_string();
                let seeds = self.seeds(&name, user(step));
                self.new_space(
                    &name,
                    Command::CreateSpace(pb::CreateSpace { seeds: Some(seeds) }),
                )?;
            }
            "joinSpace" => {
                let name = str_of(step, "as")?.to_string();
                // The space id and the genesis to pin (MEM-26), as a link code
                // carries them: the creator's.
                let (space_id, genesis) = self
                    .space_info
                    .values()
                    .next()
                    .map(|h| (h.space_id.clone(), h.genesis.clone()))
                    .ok_or_else(|| fail("joinSpace before createSpace"))?;
                if genesis.len() != 32 {
                    return Err(fail("create_space answered no 32-byte genesis"));
                }
                let seeds = self.seeds(&name, user(step));
                self.new_space(
                    &name,
                    Command::JoinSpace(pb::JoinSpace {
                        space_id,
                        seeds: Some(seeds),
                        genesis,
                    }),
                )?;
            }
            "redeemInvite" => {
                let name = str_of(step, "as")?.to_string();
                let code = self
                    .invites
                    .get(str_of(step, "invite")?)
                    .cloned()
                    .ok_or_else(|| fail("unknown invite"))?;
                let seeds = self.seeds(&name, user(step));
                let role = role_of(step)?;
                self.new_space(
                    &name,
                    Command::RedeemInvite(pb::RedeemInvite {
                        code,
                        seeds: Some(seeds),
                        role,
                    }),
                )?;
            }
            "addMember" => {
                let member = str_of(step, "member")?;
                let devices = match step.get("devices") {
                    Some(_) => names(step, "devices")?,
                    None => vec![member.to_string()],
                };
                let mut certificates = Vec::new();
                for d in &devices {
                    certificates.push(self.info(d)?.certificate.clone());
                }
                let intent = I::AddMember(pb::AddMember {
                    user_key: self.info(member)?.user_key.clone(),
                    role: role_of(step)?,
                    certificates,
                });
                self.intent(str_of(step, "by")?, intent)?;
            }
            "changeRole" => {
                let intent = I::ChangeRole(pb::ChangeRole {
                    user_key: self.info(str_of(step, "member")?)?.user_key.clone(),
                    role: role_of(step)?,
                });
                self.intent(str_of(step, "by")?, intent)?;
            }
            "removeMember" => {
                let intent = I::RemoveMember(pb::RemoveMember {
                    user_key: self.info(str_of(step, "member")?)?.user_key.clone(),
                });
                self.intent(str_of(step, "by")?, intent)?;
            }
            "addDevice" => {
                let intent = I::AddDevice(pb::AddDevice {
                    certificate: self.info(str_of(step, "device")?)?.certificate.clone(),
                });
                self.intent(str_of(step, "by")?, intent)?;
            }
            "revokeDevice" => {
                let intent = I::RevokeDevice(pb::RevokeDevice {
                    device_id: self.info(str_of(step, "device")?)?.device_id.clone(),
                });
                self.intent(str_of(step, "by")?, intent)?;
            }
            "rotateKeys" => {
                self.intent(str_of(step, "by")?, I::RotateKeys(pb::RotateKeys {}))?;
            }
            "rotateUser" => {
                // The harness holds the world's user seeds: it signs the
                // continuity statement (spec §5.7) from `user` to `newUser`.
                let by = str_of(step, "by")?.to_string();
                let new_index = step
                    .get("newUser")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| fail("rotateUser needs `newUser`"))?;
                let seed32 = |v: Vec<u8>| -> Result<[u8; 32], ScenarioError> {
                    v.try_into().map_err(|_| fail("user seed is not 32 bytes"))
                };
                let old = clientful_core::keys::SigningKey::from_seed(&seed32(seed_of(
                    "user",
                    &user(step).to_string(),
                    self.seed,
                ))?);
                let new_seed = seed_of("user", &new_index.to_string(), self.seed);
                let new = clientful_core::keys::SigningKey::from_seed(&seed32(new_seed.clone())?);
                let statement = clientful_core::continuity::sign_continuity(&old, &new)
                    .map_err(|e| fail(e.to_string()))?;
                self.intent(
                    &by,
                    I::RotateUser(pb::RotateUser {
                        statement,
                        new_user_seed: new_seed,
                    }),
                )?;
                // The device now answers for the new user key.
                if let Some(h) = self.space_info.get_mut(&by) {
                    h.user_key = new.public_bytes().to_vec();
                }
            }
            "createInvite" => {
                let single_use = step
                    .get("singleUse")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let r = self.intent(
                    str_of(step, "by")?,
                    I::CreateInvite(pb::CreateInvite {
                        role: role_of(step)?,
                        single_use,
                    }),
                )?;
                if r.invite_code.is_empty() {
                    return Err(fail("create_invite returned no code"));
                }
                self.invites
                    .insert(str_of(step, "as")?.to_string(), r.invite_code);
            }
            "revokeInvite" => {
                let code = self
                    .invites
                    .get(str_of(step, "invite")?)
                    .cloned()
                    .ok_or_else(|| fail("unknown invite"))?;
                self.intent(
                    str_of(step, "by")?,
                    I::RevokeInvite(pb::RevokeInvite { code }),
                )?;
            }
            "followUp" => {
                self.intent(str_of(step, "by")?, I::FollowUp(pb::FollowUp {}))?;
            }
            "spaceSend" => {
                let from = str_of(step, "from")?.to_string();
                let items: Vec<pb::SpaceItem> = self
                    .space_log
                    .iter()
                    .filter(|(f, _)| *f == from)
                    .map(|(_, i)| i.clone())
                    .collect();
                for to in names(step, "to")? {
                    for i in &items {
                        self.space_queue.push((to.clone(), i.clone()));
                    }
                }
            }
            "spaceFlush" => {
                let mut q = std::mem::take(&mut self.space_queue);
                for i in (1..q.len()).rev() {
                    let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
                    q.swap(i, j);
                }
                for (to, item) in q {
                    self.deliver_space(&to, item.clone())?;
                    if (self.rng.next_u64() as f64 / u64::MAX as f64) < self.duplicate {
                        self.deliver_space(&to, item)?;
                    }
                }
            }
            "spaceSync" => {
                let targets = self.space_names(step)?;
                self.space_sync(&targets)?;
            }
            "spaceSettle" => {
                // The honest follow-ups of every listed replica, with reliable
                // catch-up, until nothing is due (bounded).
                let targets = self.space_names(step)?;
                let mut quiet = false;
                for _ in 0..16 {
                    self.space_sync(&targets)?;
                    let mut wrote = 0;
                    for t in &targets {
                        wrote += self.intent(t, I::FollowUp(pb::FollowUp {}))?.written;
                    }
                    if wrote == 0 && self.welcomes.is_empty() {
                        self.space_sync(&targets)?;
                        quiet = true;
                        break;
                    }
                }
                if !quiet {
                    return Err(fail("membership did not settle in 16 rounds"));
                }
            }
            "deliverSpace" => {
                let from = str_of(step, "from")?;
                let envs: Vec<pb::SpaceItem> = self
                    .space_log
                    .iter()
                    .filter(|(f, i)| f == from && i.kind == pb::SpaceItemKind::Envelope as i32)
                    .map(|(_, i)| i.clone())
                    .collect();
                let item = match step.get("index").and_then(Value::as_u64) {
                    Some(i) => envs.get(i as usize).cloned(),
                    None => envs.last().cloned(),
                }
                .ok_or_else(|| fail("no such envelope"))?;
                let got = self.deliver_space(str_of(step, "to")?, item)?;
                if self.learn("expect", Value::String(got.clone()))? {
                    return Ok(true);
                }
                let want = str_of(step, "expect")?;
                if got != want {
                    return Err(fail(format!("expected {want}, got {got}")));
                }
            }
            "forgeGenesis" => {
                // Issue 22 finding 1: a device key certified by the user key of
                // `by` (the creator) signs a second CREATE_SPACE with the same
                // space id and a lower id; every replica in `to` gets its epoch
                // in a welcome, then the rival, whose disposition must be `expect`.
                let by = str_of(step, "by")?.to_string();
                let h = self.info(&by)?.clone();
                let genesis_env = self
                    .space_log
                    .iter()
                    .filter(|(f, i)| *f == by && i.kind == pb::SpaceItemKind::Envelope as i32)
                    .map(|(_, i)| i.bytes.clone())
                    .find(|b| {
                        envelope::decode(b).is_ok_and(|d| d.id.as_slice() == h.genesis.as_slice())
                    })
                    .ok_or_else(|| fail(format!("{by} sent no genesis")))?;
                let secrets: Vec<clientful_core::keys::EpochKey> = self
                    .export_secrets(&by)?
                    .epochs
                    .iter()
                    .filter_map(|e| {
                        Some(clientful_core::keys::EpochKey::new(
                            e.epoch_id.as_slice().try_into().ok()?,
                            e.secret.as_slice().try_into().ok()?,
                        ))
                    })
                    .collect();
                let user_seed: [u8; 32] = self
                    .seeds(&by, user(step))
                    .user_seed
                    .as_slice()
                    .try_into()
                    .map_err(|_| fail("user seed"))?;
                let space_id: [u8; 32] = h
                    .space_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| fail("space id"))?;
                let mut rng = ChaCha20Rng::from_seed(seed_32(&seed_of(
                    "attack",
                    str_of(step, "as")?,
                    self.seed,
                )));
                let (rival, e, signer) = crate::attacks::rival_genesis(
                    &mut rng,
                    space_id,
                    &genesis_env,
                    &secrets,
                    &user_seed,
                )
                .map_err(fail)?;
                let want = if self.learned.is_some() {
                    String::new()
                } else {
                    str_of(step, "expect")?.to_string()
                };
                // The rival's device signs the welcomes, naming the rival as
                // the operation that added it: never accepted, so the welcome
                // stays unchecked and its secret a candidate (KEY-21).
                let rival_id = envelope::decode(&rival)
                    .map_err(|e| fail(e.to_string()))?
                    .id;
                for to in names(step, "to")? {
                    let r =
                        crate::attacks::recipient(&self.info(&to)?.certificate).map_err(fail)?;
                    let w = crate::attacks::signed_welcome(
                        &mut rng,
                        &space_id,
                        &signer,
                        rival_id,
                        &r,
                        std::slice::from_ref(&e),
                    )
                    .map_err(fail)?;
                    self.deliver_space(
                        &to,
                        pb::SpaceItem {
                            kind: pb::SpaceItemKind::Welcome as i32,
                            bytes: w,
                            device_id: r.device_id.to_vec(),
                        },
                    )?;
                    let got = self.deliver_space(
                        &to,
                        pb::SpaceItem {
                            kind: pb::SpaceItemKind::Envelope as i32,
                            bytes: rival.clone(),
                            device_id: vec![],
                        },
                    )?;
                    if self.learn("expect", Value::String(got.clone()))? {
                        continue;
                    }
                    if got != want {
                        return Err(fail(format!(
                            "{to}: a rival genesis was {got}, expected {want}"
                        )));
                    }
                }
            }
            "privateEpoch" => {
                // Issue 22 finding 3: a writer makes an epoch no rotation
                // created and hands its secret to `to` only, in a welcome each
                // (`via` "welcome") or in one key message no operation commits
                // to (`via` "keyMessage").
                let name = str_of(step, "as")?.to_string();
                let space_id: [u8; 32] = self
                    .info(str_of(step, "by")?)?
                    .space_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| fail("space id"))?;
                let mut rng =
                    ChaCha20Rng::from_seed(seed_32(&seed_of("private", &name, self.seed)));
                let e = clientful_core::membership::epoch::new_epoch(&mut rng, &space_id)
                    .map_err(|e| fail(e.to_string()))?;
                let to = names(step, "to")?;
                let mut recipients = Vec::new();
                for t in &to {
                    recipients
                        .push(crate::attacks::recipient(&self.info(t)?.certificate).map_err(fail)?);
                }
                let via = step.get("via").and_then(Value::as_str).unwrap_or("welcome");
                let mut items = Vec::new();
                if via == "keyMessage" {
                    let (km, _) = clientful_core::membership::epoch::key_message(
                        &mut rng,
                        &space_id,
                        &e,
                        &recipients,
                    )
                    .map_err(|e| fail(e.to_string()))?;
                    for t in &to {
                        items.push((t.clone(), pb::SpaceItemKind::KeyMessage, km.clone(), vec![]));
                    }
                } else {
                    for (t, r) in to.iter().zip(&recipients) {
                        // Signed by a device outside the log (the runner holds no
                        // member's key), naming no accepted operation: the
                        // secret is a candidate either way (KEY-18, KEY-21).
                        let signer = crate::attacks::outsider(&mut rng).map_err(fail)?;
                        let w = crate::attacks::signed_welcome(
                            &mut rng,
                            &space_id,
                            &signer,
                            [0; 32],
                            r,
                            std::slice::from_ref(&e),
                        )
                        .map_err(fail)?;
                        items.push((
                            t.clone(),
                            pb::SpaceItemKind::Welcome,
                            w,
                            r.device_id.to_vec(),
                        ));
                    }
                }
                for (t, kind, bytes, device_id) in items {
                    self.deliver_space(
                        &t,
                        pb::SpaceItem {
                            kind: kind as i32,
                            bytes,
                            device_id,
                        },
                    )?;
                }
                self.private_epochs.insert(name, e.id().to_vec());
            }
            "expectSpaceConverged" => {
                let mut first: Option<(String, pb::SpaceObservation)> = None;
                for r in names(step, "replicas")? {
                    let o = self.observe_space(&r)?;
                    if o.held != 0 {
                        return Err(fail(format!(
                            "{r} holds {} envelopes it cannot open",
                            o.held
                        )));
                    }
                    match &first {
                        None => first = Some((r, o)),
                        Some((r0, o0)) => {
                            if (&o0.digest, &o0.state_json, &o0.current_epoch)
                                != (&o.digest, &o.state_json, &o.current_epoch)
                            {
                                let mut what = Vec::new();
                                if o0.digest != o.digest {
                                    what.push("membership digest");
                                }
                                if o0.current_epoch != o.current_epoch {
                                    what.push("current epoch");
                                }
                                if o0.state_json != o.state_json {
                                    what.push("state_json");
                                }
                                return Err(fail(format!(
                                    "{} differs from {} in {}: {} vs {}",
                                    self.host(&r),
                                    self.host(r0),
                                    what.join(", "),
                                    o.state_json,
                                    o0.state_json
                                )));
                            }
                        }
                    }
                }
            }
            "expectMembers" => {
                let name = str_of(step, "replica")?.to_string();
                let o = self.observe_space(&name)?;
                let state: Value = serde_json::from_str(&o.state_json)
                    .map_err(|e| fail(format!("state_json is not JSON: {e}")))?;
                let user_name = |hexkey: &str| -> String {
                    self.space_info
                        .iter()
                        .find(|(_, h)| hex::encode(&h.user_key) == hexkey)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_else(|| format!("unknown user {hexkey}"))
                };
                let mut got = BTreeMap::new();
                for m in state
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let u = m.get("user").and_then(Value::as_str).unwrap_or_default();
                    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
                    got.insert(user_name(u), role.to_string());
                }
                if self.learned.is_some() {
                    let got_json: serde_json::Map<String, Value> = got
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    self.learn("members", Value::Object(got_json))?;
                    return Ok(true);
                }
                // Expected members are named by any device of the user: map each to the
                // name the lookup above finds for that user.
                let mut want = BTreeMap::new();
                for (n, r) in step
                    .get("members")
                    .and_then(Value::as_object)
                    .ok_or_else(|| fail("step needs `members`"))?
                {
                    let key = hex::encode(&self.info(n)?.user_key);
                    want.insert(user_name(&key), r.as_str().unwrap_or_default().to_string());
                }
                // `oneOf`: exactly one of these users is also a member, with role
                // `oneOfRole` (which one depends on envelope ids, so on the implementation).
                if let Some(alts) = step.get("oneOf").and_then(Value::as_array) {
                    let role = step
                        .get("oneOfRole")
                        .and_then(Value::as_str)
                        .unwrap_or("writer");
                    let mut present = Vec::new();
                    for a in alts.iter().filter_map(Value::as_str) {
                        let key = hex::encode(&self.info(a)?.user_key);
                        let n = user_name(&key);
                        if got.get(&n).map(String::as_str) == Some(role) {
                            present.push(n);
                        }
                    }
                    if present.len() != 1 {
                        return Err(fail(format!(
                            "{name}: exactly one of {alts:?} must be a {role}, found {present:?}"
                        )));
                    }
                    for p in present {
                        want.insert(p, role.to_string());
                    }
                }
                if got != want {
                    return Err(fail(format!(
                        "{name} has members {got:?}, expected {want:?}"
                    )));
                }
            }
            "expectOtherEpoch" => {
                // `replica` does not have the current epoch of `than` (it was removed
                // or revoked before that epoch, or has not learnt it).
                let name = str_of(step, "replica")?.to_string();
                let than = str_of(step, "than")?.to_string();
                let a = self.observe_space(&name)?;
                let b = self.observe_space(&than)?;
                if b.current_epoch.is_empty() {
                    return Err(fail(format!("{than} holds no current epoch key")));
                }
                if a.current_epoch == b.current_epoch {
                    return Err(fail(format!("{name} holds {than}'s current epoch")));
                }
                let min = step.get("held").and_then(Value::as_u64).unwrap_or(0);
                if u64::from(a.held) < min {
                    return Err(fail(format!(
                        "{name} holds {} unopened envelopes, expected at least {min}",
                        a.held
                    )));
                }
            }
            "expectSecrets" => {
                // Every epoch secret the listed replicas export matches its epoch id
                // (KEY-2: the id commits to the secret); the replicas in `lacks` hold
                // no secret of `currentOf`'s current epoch.
                for r in names(step, "replicas")? {
                    let space_id = self.info(&r)?.space_id.clone();
                    for e in self.export_secrets(&r)?.epochs {
                        let mut c = space_id.clone();
                        c.extend_from_slice(&e.secret);
                        let id = clientful_core::suite::hash_with_label(
                            clientful_core::labels::ID_EPOCH,
                            &c,
                        )
                        .map_err(|e| fail(e.to_string()))?;
                        if id.as_slice() != e.epoch_id.as_slice() {
                            return Err(fail(format!(
                                "{r} exports a secret that does not match epoch {}",
                                hex::encode(&e.epoch_id)
                            )));
                        }
                    }
                }
                // `lacksPrivate`: no listed replica exports (uses) the private
                // epoch of that name, whoever was handed its secret (KEY-18).
                if let Some(p) = step.get("lacksPrivate").and_then(Value::as_str) {
                    let id = self
                        .private_epochs
                        .get(p)
                        .cloned()
                        .ok_or_else(|| fail(format!("unknown private epoch {p}")))?;
                    for r in names(step, "replicas")? {
                        if self
                            .export_secrets(&r)?
                            .epochs
                            .iter()
                            .any(|e| e.epoch_id == id)
                        {
                            return Err(fail(format!(
                                "{r} uses the private epoch {p}, which no rotation created"
                            )));
                        }
                    }
                }
                if let Some(of) = step.get("currentOf").and_then(Value::as_str) {
                    let current = self.observe_space(of)?.current_epoch;
                    if current.is_empty() {
                        return Err(fail(format!("{of} holds no current epoch key")));
                    }
                    for r in names(step, "lacks")? {
                        if self
                            .export_secrets(&r)?
                            .epochs
                            .iter()
                            .any(|e| e.epoch_id == current)
                        {
                            return Err(fail(format!("{r} holds {of}'s current epoch secret")));
                        }
                    }
                }
            }
            "expectCurrentKey" => {
                let name = str_of(step, "replica")?.to_string();
                let holds = step.get("holds").and_then(Value::as_bool).unwrap_or(true);
                let o = self.observe_space(&name)?;
                if self.learn("holds", Value::Bool(!o.current_epoch.is_empty()))? {
                    return Ok(true);
                }
                if o.current_epoch.is_empty() == holds {
                    return Err(fail(format!(
                        "{name} {} the current epoch's key",
                        if holds { "lacks" } else { "holds" }
                    )));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Takes `name`'s outbox after a command that may have sealed (`id`: the
    /// commit id it answered, empty if none; `None` for a command that answers
    /// none): CONF-32 evidence, fresh nonces, the history, the sent log.
    fn take_sent(&mut self, name: &str, id: Option<Vec<u8>>) -> Result<(), ScenarioError> {
        let name = name.to_string();
        let (a, replica) = self.handle(&name)?;
        self.dirty.remove(&name);
        let envs = match self.call_on(a, Command::TakeOutbox(pb::TakeOutbox { replica }))? {
            R::Outbox(o) => o.envelopes,
            _ => return Err(fail("take_outbox answered with another result")),
        };
        // CONF-32 evidence: the commit id is the id of the envelope sealed for it.
        let Some(id) = id else {
            return self.keep_sent(name, envs);
        };
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
        self.keep_sent(name, envs)
    }

    /// Checks the nonces of what `name` sealed and records it.
    fn keep_sent(&mut self, name: String, envs: Vec<Vec<u8>>) -> Result<(), ScenarioError> {
        self.check_nonces(&name, &envs)?;
        let h = self.histories.entry(name.clone()).or_default();
        for e in &envs {
            h.sealed(e);
        }
        self.sent.entry(name).or_default().extend(envs);
        Ok(())
    }

    fn step(&mut self, world: &World, step: &Value) -> Result<(), ScenarioError> {
        let op = str_of(step, "op")?;
        if self.space_step(op, step)? || self.app_step(op, step)? {
            return Ok(());
        }
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
                        key: self.expand(str_of(step, "key")?)?,
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
                self.take_sent(&name, Some(id))?;
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
            "coldStart" => {
                // A brand-new device of member `device` with only storage reachable:
                // the runner plays a content-addressed store and lists every envelope
                // ever sent in the order of its address (not a causal order); the new
                // replica loads them all (CONF-37).
                let name = str_of(step, "as")?.to_string();
                let d = step
                    .get("device")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| fail("coldStart needs `device`"))?
                    as usize;
                let mut stored: Vec<Vec<u8>> = self.sent.values().flatten().cloned().collect();
                stored.sort_by_key(|b| clientful_core::suite::sha256(b));
                stored.dedup();
                let mut rng_seed = [0u8; 32];
                rng_seed[0] = d as u8;
                rng_seed[1] = 0xc5;
                let device_seed = world.device_seeds.get(d).copied().unwrap_or([0xee; 32]);
                let a = self.handles.len() % self.adapters.len().max(1);
                match self.call_on(
                    a,
                    Command::CreateReplica(pb::CreateReplica {
                        world_json: world_json(world),
                        device_seed: device_seed.to_vec(),
                        rng_seed: rng_seed.to_vec(),
                    }),
                )? {
                    R::Replica(h) if h.replica != 0 => {
                        self.handles.insert(name.clone(), (a, h.replica));
                    }
                    _ => return Err(fail("create_replica must answer a non-zero handle")),
                }
                for e in stored {
                    self.deliver(&name, e)?;
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
                self.histories.entry(name.clone()).or_default().restarted();
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
                            let mut what = Vec::new();
                            if h0 != &h {
                                what.push(format!(
                                    "history_digest {} vs {}",
                                    hex::encode(&h),
                                    hex::encode(h0)
                                ));
                            }
                            if s0 != &s {
                                what.push(format!(
                                    "state_digest {} vs {}",
                                    hex::encode(&s),
                                    hex::encode(s0)
                                ));
                            }
                            if m0 != &m {
                                what.push(format!("materialized_json {m} vs {m0}"));
                            }
                            return Err(fail(format!(
                                "{} differs from {} in {}",
                                self.host(&r),
                                self.host(r0),
                                what.join("; ")
                            )));
                        }
                        Some(_) => {}
                    }
                }
            }
            "expectContent" => {
                let name = str_of(step, "replica")?;
                let (_, _, m) = self.observe(name)?;
                let got: Value = serde_json::from_str(&m)
                    .map_err(|e| fail(format!("materialized is not JSON: {e}")))?;
                if self.learn("json", got.clone())? {
                    return Ok(());
                }
                let want = step.get("json").ok_or_else(|| fail("step needs `json`"))?;
                if &got != want {
                    return Err(fail(format!(
                        "{}: content {got} != {want}",
                        self.host(name)
                    )));
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
        let got = self.deliver(to, env)?;
        if self.learn("expect", Value::String(got.clone()))? {
            return Ok(());
        }
        let want = str_of(step, "expect")?;
        if got != want {
            return Err(fail(format!(
                "{}: expected {want}, got {got}",
                self.host(to)
            )));
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
    run.seed = seed;
    let net = scenario.get("network").cloned().unwrap_or(Value::Null);
    run.rng = ChaCha20Rng::seed_from_u64(net.get("seed").and_then(Value::as_u64).unwrap_or(seed));
    run.drop = net.get("drop").and_then(Value::as_f64).unwrap_or(0.0);
    run.duplicate = net.get("duplicate").and_then(Value::as_f64).unwrap_or(0.0);
    let wj = world_json(&world);
    let no_replicas = serde_json::Map::new();
    let replicas = scenario
        .get("replicas")
        .and_then(Value::as_object)
        .unwrap_or(&no_replicas);
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
        run.device_keys.insert(
            name.clone(),
            clientful_core::keys::SigningKey::from_seed(&device_seed).public_bytes(),
        );
    }
    for (i, step) in scenario
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("missing steps"))?
        .iter()
        .enumerate()
    {
        run.step_index = i;
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
    run_scenario_named(adapters, &[], scenario)
}

impl<'a, 'b> Run<'a, 'b> {
    /// A run over `adapters` from a clean slate; `learned` is `Some` in
    /// learning mode (CONF-87).
    fn new(
        adapters: &'a mut [&'b mut dyn Adapter],
        impl_names: &[String],
        learned: Option<BTreeMap<usize, serde_json::Map<String, Value>>>,
    ) -> Self {
        Run {
            adapters,
            impl_names: impl_names.to_vec(),
            histories: BTreeMap::new(),
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
            seed: 0,
            spaces: BTreeMap::new(),
            space_info: BTreeMap::new(),
            invites: BTreeMap::new(),
            space_log: Vec::new(),
            welcomes: Vec::new(),
            space_queue: Vec::new(),
            private_epochs: BTreeMap::new(),
            device_keys: BTreeMap::new(),
            step_index: 0,
            learned,
        }
    }
}

/// Plays one scenario, naming the implementations (name and version from
/// `hello`, in adapter order) in failure messages of mixed runs.
pub fn run_scenario_named(
    adapters: &mut [&mut dyn Adapter],
    impl_names: &[String],
    scenario: &Value,
) -> ScenarioRun {
    let mut run = Run::new(adapters, impl_names, None);
    let result = play(&mut run, scenario);
    ScenarioRun {
        completed: result.is_ok(),
        result,
        evidence: run.evidence,
    }
}

/// Learning mode (CONF-87): plays `scenario` against one implementation (the
/// reference, in the randomized mode) without checking its learnable
/// expectations (`expect` of deliveries, `json` of `expectContent`, `members`
/// of `expectMembers`, `holds` of `expectCurrentKey`), and answers the
/// scenario with each of them set to what the implementation answered. Every
/// other check still applies; SHOULD-level evidence is a failure here.
pub fn learn_expectations(
    adapter: &mut dyn Adapter,
    scenario: &Value,
) -> Result<Value, ScenarioError> {
    let mut adapters: [&mut dyn Adapter; 1] = [adapter];
    let mut run = Run::new(&mut adapters, &[], Some(BTreeMap::new()));
    play(&mut run, scenario)?;
    if !run.evidence.is_empty() {
        return Err(fail(run.evidence.join("; ")));
    }
    let learned = run.learned.unwrap_or_default();
    let mut out = scenario.clone();
    if let Some(steps) = out.get_mut("steps").and_then(Value::as_array_mut) {
        for (i, fields) in learned {
            if let Some(obj) = steps.get_mut(i).and_then(Value::as_object_mut) {
                obj.extend(fields);
            }
        }
    }
    Ok(out)
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
