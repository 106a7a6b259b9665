//! The randomized mode, `clientful-conformance fuzz` (spec §12.15,
//! CONF-85..CONF-95): schedules generated with the `arbitrary` crate from a
//! seeded byte stream, each written as a scenario in the standard format
//! (`conformance/scenarios/README.md`), its expectations learnt from the
//! reference (the oracle: same deliveries, same dispositions, same content and
//! digests), then played against the implementation under test over the
//! harness protocol. A failing schedule is shrunk by delta debugging (drop
//! steps, drop replicas, quiet the network) to a minimal scenario file that
//! `clientful-conformance run --scenario FILE` replays exactly.
//!
//! A case is identified by the run seed and its index (CONF-86): the same seed
//! generates the same schedules, so `--seed S` reproduces a run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::adapter::{Adapter, HarnessError};
use crate::pb::{self, request::Command, response::Result as R};
use crate::reference::ReferenceAdapter;
use crate::scenario::{ScenarioError, learn_expectations, run_scenario};

/// Bytes of the seeded stream each schedule is drawn from.
const STREAM_BYTES: usize = 1024;

/// What a fuzz run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The run seed (CONF-86).
    pub seed: u64,
    /// How many schedules at most.
    pub cases: u64,
    /// Stop starting new schedules after this long (CONF-88).
    pub time: Option<Duration>,
    /// Where the shrunk scenario of a failure is written.
    pub out: Option<PathBuf>,
    /// The bound on shrinking attempts (each plays one candidate), CONF-89.
    pub shrink_attempts: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            cases: 1000,
            time: None,
            out: None,
            shrink_attempts: 300,
        }
    }
}

/// A schedule the implementation failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The case index (with the run seed, it regenerates the schedule).
    pub case: u64,
    /// Why the implementation failed the original schedule.
    pub message: String,
    /// Why it fails the shrunk one.
    pub shrunk_message: String,
    /// The original schedule, expectations learnt.
    pub original: Value,
    /// The shrunk schedule, expectations learnt (a standard scenario).
    pub shrunk: Value,
    /// Shrinking attempts made.
    pub attempts: usize,
    /// Where the shrunk scenario was written.
    pub file: Option<PathBuf>,
}

/// What a fuzz run found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The run seed.
    pub seed: u64,
    /// Schedules played against the implementation.
    pub cases: u64,
    /// Schedules the implementation passed.
    pub passed: u64,
    /// Schedules the reference itself could not play (generator limits),
    /// with why: not counted as passes (CONF-87).
    pub discarded: Vec<(u64, String)>,
    /// The first schedule the implementation failed, shrunk.
    pub failure: Option<Failure>,
    /// The implementation broke the harness (crash, bad frame, timeout).
    pub harness_error: Option<String>,
}

impl Summary {
    /// Exit code: 0 every schedule passed, 1 a failure, 2 harness error, 3
    /// nothing ran.
    pub fn exit_code(&self) -> u8 {
        if self.harness_error.is_some() {
            2
        } else if self.failure.is_some() {
            1
        } else if self.passed == 0 {
            3
        } else {
            0
        }
    }

    /// The closing line: `N passed, M failed, K discarded`.
    pub fn closing_line(&self) -> String {
        format!(
            "{} passed, {} failed, {} discarded",
            self.passed,
            u64::from(self.failure.is_some()),
            self.discarded.len()
        )
    }
}

/// Why a fuzz run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// The implementation broke the harness.
    #[error("harness error: {0}")]
    Harness(#[from] HarnessError),
    /// The implementation's hello or configure answer was not usable.
    #[error("harness error: {0}")]
    Start(String),
    /// The shrunk scenario could not be written.
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// The capabilities the generator respects (CONF-85).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps {
    /// `replica/yjs`.
    pub yjs: bool,
    /// `replica/automerge`.
    pub automerge: bool,
    /// `replica/restart`.
    pub restart: bool,
    /// `space/membership`.
    pub membership: bool,
    /// `space/documents`: document replicas bound to space replicas.
    pub space_documents: bool,
}

impl Caps {
    /// From the capability names an implementation declared.
    pub fn from_names(names: &[String]) -> Caps {
        let has = |c: &str| names.iter().any(|n| n == c);
        Caps {
            yjs: has("replica/yjs"),
            automerge: has("replica/automerge"),
            restart: has("replica/restart"),
            membership: has("space/membership"),
            space_documents: has("space/documents"),
        }
    }

    /// Every capability the generator uses.
    pub fn all() -> Caps {
        Caps {
            yjs: true,
            automerge: true,
            restart: true,
            membership: true,
            space_documents: true,
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        if self.yjs {
            k.push("yjs");
        }
        if self.automerge {
            k.push("automerge");
        }
        if self.membership {
            k.push("space");
        }
        k
    }
}

/// Draws from the seeded stream; an exhausted stream gives the smallest
/// choices (as `arbitrary` does), so every schedule is finite.
struct Draw<'a> {
    u: Unstructured<'a>,
}

impl Draw<'_> {
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        self.u.int_in_range(lo..=hi).unwrap_or(lo)
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> Option<T> {
        if xs.is_empty() {
            return None;
        }
        let i = self.range(0, xs.len() - 1);
        xs.get(i).cloned()
    }
    fn chance(&mut self, num: u8, den: u8) -> bool {
        self.u.ratio(num, den).unwrap_or(false)
    }
    fn subset(&mut self, xs: &[String]) -> Vec<String> {
        let mut out: Vec<String> = xs.iter().filter(|_| self.chance(1, 2)).cloned().collect();
        if out.is_empty()
            && let Some(x) = self.pick(xs)
        {
            out.push(x);
        }
        out
    }
}

/// The 32-byte seed of case `case` of run `seed`.
pub fn case_seed(seed: u64, case: u64) -> [u8; 32] {
    let mut input = b"clientful-conformance/fuzz\0".to_vec();
    input.extend_from_slice(&seed.to_be_bytes());
    input.extend_from_slice(&case.to_be_bytes());
    clientful_core::suite::sha256(&input)
}

/// The schedule of case `case` of run `seed`, as a scenario without its
/// learnable expectations (CONF-85, CONF-86).
pub fn generate(seed: u64, case: u64, caps: &Caps) -> Value {
    let s = case_seed(seed, case);
    let mut rng = ChaCha20Rng::from_seed(s);
    let mut bytes = vec![0u8; STREAM_BYTES];
    rng.fill_bytes(&mut bytes);
    let mut d = Draw {
        u: Unstructured::new(&bytes),
    };
    let world_seed = u64::from_be_bytes([s[0], s[1], s[2], s[3], 0, 0, 0, 0]) >> 32;
    let kinds = caps.kinds();
    let mut sc = match d.pick(&kinds) {
        // A quarter of the membership cases bind documents to the space
        // (chosen from the case seed, so the draws of the others stay as
        // they were).
        Some("space") if caps.space_documents && s[31] & 3 == 0 => {
            let crdts: Vec<&str> = [(caps.yjs, "yjs"), (caps.automerge, "automerge")]
                .into_iter()
                .filter_map(|(has, c)| has.then_some(c))
                .collect();
            match d.pick(&crdts) {
                Some(crdt) => space_doc_schedule(&mut d, crdt, world_seed),
                None => space_schedule(&mut d, world_seed),
            }
        }
        Some("space") => space_schedule(&mut d, world_seed),
        Some(crdt) => doc_schedule(&mut d, crdt, caps.restart, world_seed),
        None => json!({ "steps": [] }),
    };
    if let Some(o) = sc.as_object_mut() {
        o.insert("name".into(), json!(format!("fuzz-{seed:016x}-{case}")));
        o.insert(
            "fuzz".into(),
            json!({ "seed": format!("{seed:016x}"), "case": case }),
        );
    }
    sc
}

/// Texts with 1- and 2-unit UTF-16 characters (positions are UTF-16, DOC-14).
const TEXTS: &[&str] = &["a", "xy", "é", "😀", "日本", "🙂b", "q"];
const KEYS: &[&str] = &["k", "m", "z"];
const VALUES: &[&str] = &["1", "two", "ü"];
const FORGE_KINDS: &[&str] = &[
    "spoof",
    "forgedPredecessor",
    "outsider",
    "wrongSpace",
    "wrongDocument",
    "unknownEpoch",
    "futureVersion",
    "oversized",
];
const TAMPER_BYTES: &[i64] = &[-1, -3, -40, 2, 30];

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A document schedule: 2 or 3 replicas of one CRDT, two malicious member
/// devices, edits, partitions (sends to a subset), lossy flushes, direct
/// redeliveries, restarts, tampering, forgeries and equivocation; then a
/// reliable catch-up, convergence and the reference's content.
fn doc_schedule(d: &mut Draw<'_>, crdt: &str, restart: bool, world_seed: u64) -> Value {
    let n = d.range(2, 3);
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .take(n)
        .map(|s| s.to_string())
        .collect();
    let devices = n + 2;
    // A conservative lower bound of each replica's text length (in UTF-16
    // units): what it inserted itself, less every deletion anyone made.
    let mut own = vec![0usize; n];
    let mut deleted = 0usize;
    let mut sent = vec![0usize; n];
    // Replicas whose device equivocated: their own content may be excluded
    // (DOC-9), so their text has no known length.
    let mut tainted = vec![false; n];
    let mut forger = 0usize;
    let mut steps: Vec<Value> = Vec::new();
    let actions = d.range(3, 10);
    for _ in 0..actions {
        let r = d.range(0, n - 1);
        let rn = names.get(r).cloned().unwrap_or_default();
        let to = d.range(0, n - 1);
        let tn = names.get(to).cloned().unwrap_or_default();
        let sent_r = sent.get(r).copied().unwrap_or(0);
        match d.range(0, 9) {
            0..=2 => {
                for _ in 0..d.range(1, 2) {
                    let bound = if tainted.get(r).copied().unwrap_or(true) {
                        0
                    } else {
                        own.get(r).copied().unwrap_or(0).saturating_sub(deleted)
                    };
                    match d.range(0, 3) {
                        0 | 1 => {
                            let text = d.pick(TEXTS).unwrap_or("a");
                            let index = d.range(0, bound);
                            steps.push(json!({"op": "insert", "replica": rn, "index": index, "text": text}));
                            if let Some(o) = own.get_mut(r) {
                                *o += utf16_len(text);
                            }
                        }
                        2 if bound > 0 => {
                            let index = d.range(0, bound - 1);
                            let length = d.range(1, (bound - index).min(2));
                            steps.push(json!({"op": "delete", "replica": rn, "index": index, "length": length}));
                            deleted += length;
                        }
                        _ => {
                            let key = d.pick(KEYS).unwrap_or("k");
                            // Never the value a key already has (a set that
                            // changes nothing seals nothing).
                            let value = format!("{}{}", d.pick(VALUES).unwrap_or("1"), steps.len());
                            steps.push(
                                json!({"op": "set", "replica": rn, "key": key, "value": value}),
                            );
                        }
                    }
                }
                steps.push(json!({"op": "commit", "replica": rn}));
                if let Some(c) = sent.get_mut(r) {
                    *c += 1;
                }
            }
            3 if sent_r > 0 => {
                let others: Vec<String> = names.iter().filter(|x| **x != rn).cloned().collect();
                let to = d.subset(&others);
                steps.push(json!({"op": "send", "from": rn, "to": to}));
                if d.chance(2, 3) {
                    steps.push(json!({"op": "flush"}));
                }
            }
            4 => steps.push(json!({"op": "flush"})),
            5 if sent_r > 0 => {
                let index = d.range(0, sent_r - 1);
                steps.push(json!({"op": "redeliver", "from": rn, "index": index, "to": tn}));
            }
            6 if restart => steps.push(json!({"op": "restart", "replica": rn})),
            7 if sent_r > 0 => {
                let byte = d.pick(TAMPER_BYTES).unwrap_or(-1);
                steps.push(json!({"op": "tamper", "from": rn, "byte": byte, "to": tn}));
            }
            8 => {
                let kind = d.pick(FORGE_KINDS).unwrap_or("spoof");
                let by = d.range(n, devices - 1);
                let victim = d.range(0, n - 1);
                steps.push(
                    json!({"op": "forge", "kind": kind, "by": by, "victim": victim, "to": tn}),
                );
            }
            9 => {
                // Either a malicious device or one of the replicas' own
                // (a late equivocation others may have built on).
                let by = d.range(0, devices - 1);
                if let Some(t) = tainted.get_mut(by) {
                    *t = true;
                }
                steps.push(json!({"op": "equivocate", "by": by, "first": [tn], "second": []}));
                forger += 2;
                if d.chance(2, 3) {
                    let t2 = names.get(d.range(0, n - 1)).cloned().unwrap_or_default();
                    steps.push(json!({"op": "redeliver", "from": "#forger", "index": forger - 1, "to": t2}));
                }
            }
            _ => {}
        }
    }
    steps.push(json!({"op": "sync"}));
    steps.push(json!({"op": "expectConverged", "replicas": names}));
    let last = names.get(d.range(0, n - 1)).cloned().unwrap_or_default();
    steps.push(json!({"op": "expectContent", "replica": last}));
    let drop = d.pick(&[0.0, 0.0, 0.2, 0.4]).unwrap_or(0.0);
    let duplicate = d.pick(&[0.0, 0.2, 0.4]).unwrap_or(0.0);
    let mut requires = vec![format!("replica/{crdt}")];
    if steps.iter().any(|s| s["op"] == "restart") {
        requires.push("replica/restart".into());
    }
    let replicas: serde_json::Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), json!(i)))
        .collect();
    json!({
        "description": "A generated schedule (clientful-conformance fuzz); expectations from the reference.",
        "requires": requires,
        "world": {"crdt": crdt, "devices": devices, "seed": world_seed},
        "replicas": replicas,
        "network": {"seed": world_seed ^ 0x5eed, "drop": drop, "duplicate": duplicate},
        "steps": steps,
    })
}

/// The roles a generated member may get.
const ROLES: &[&str] = &["reader", "writer", "admin"];

/// The people of a generated space, alice (its creator) and 2 or 3 joiners,
/// with the steps that create the space and let the joiners ask to join.
fn space_founders(d: &mut Draw<'_>) -> (Vec<String>, Vec<Value>) {
    let joiners = d.range(2, 3);
    let all: Vec<String> = ["alice", "bob", "carol", "dave"]
        .iter()
        .take(joiners + 1)
        .map(|s| s.to_string())
        .collect();
    let mut steps = vec![json!({"op": "createSpace", "as": "alice", "user": 0})];
    for (i, n) in all.iter().enumerate().skip(1) {
        steps.push(json!({"op": "joinSpace", "as": n, "user": i}));
    }
    (all, steps)
}

/// A membership schedule: a creator and 2 or 3 joiners; concurrent adds,
/// removals, role changes and rotations, settled in partitions (a subset of
/// the members at a time) or all together; private epochs and rival genesis
/// operations as Byzantine injections; then the reference's members, current
/// keys and convergence.
fn space_schedule(d: &mut Draw<'_>, world_seed: u64) -> Value {
    let (all, mut steps) = space_founders(d);
    // Members and roles as the generator expects them; `settled`: admins
    // whose addition every member has seen (they may act).
    let mut members: Vec<(String, String)> = vec![("alice".into(), "admin".into())];
    let mut settled_admins: Vec<String> = vec!["alice".into()];
    let mut removed: Vec<String> = Vec::new();
    let mut privates: Vec<String> = Vec::new();
    let mut rivals = 0usize;
    let actions = d.range(2, 6);
    for _ in 0..actions {
        let member_names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let others: Vec<String> = member_names
            .iter()
            .filter(|n| *n != "alice")
            .cloned()
            .collect();
        match d.range(0, 7) {
            0..=2 => {
                let candidates: Vec<String> = all
                    .iter()
                    .filter(|n| !member_names.contains(n) && !removed.contains(n))
                    .cloned()
                    .collect();
                if let (Some(m), Some(by)) = (d.pick(&candidates), d.pick(&settled_admins)) {
                    let role = d.pick(ROLES).unwrap_or("writer");
                    steps.push(json!({"op": "addMember", "by": by, "member": m, "role": role}));
                    members.push((m, role.to_string()));
                }
            }
            3 => {
                if let Some(m) = d.pick(&others) {
                    steps.push(json!({"op": "removeMember", "by": "alice", "member": m}));
                    members.retain(|(n, _)| *n != m);
                    settled_admins.retain(|n| *n != m);
                    removed.push(m);
                }
            }
            4 => {
                if let Some(m) = d.pick(&others) {
                    let role = d.pick(ROLES).unwrap_or("writer");
                    steps.push(
                        json!({"op": "changeRole", "by": "alice", "member": m, "role": role}),
                    );
                    for (n, r) in members.iter_mut() {
                        if *n == m {
                            *r = role.to_string();
                        }
                    }
                    if role != "admin" {
                        settled_admins.retain(|n| *n != m);
                    }
                }
            }
            5 => {
                if let Some(by) = d.pick(&settled_admins) {
                    steps.push(json!({"op": "rotateKeys", "by": by}));
                }
            }
            6 => {
                // A partition settles on its own, or everyone does.
                if d.chance(1, 2) && member_names.len() > 1 {
                    // Catch-up for a subset only: the others stay behind.
                    let part = d.subset(&member_names);
                    steps.push(json!({"op": "spaceSync", "replicas": part}));
                } else {
                    steps.push(json!({"op": "spaceSettle", "replicas": member_names.clone()}));
                    settled_admins = members
                        .iter()
                        .filter(|(_, r)| r == "admin")
                        .map(|(n, _)| n.clone())
                        .collect();
                }
            }
            _ => {
                if d.chance(1, 2) {
                    let writers: Vec<String> = members
                        .iter()
                        .filter(|(_, r)| r != "reader")
                        .map(|(n, _)| n.clone())
                        .collect();
                    if let Some(by) = d.pick(&writers) {
                        let name = format!("p{}", privates.len());
                        let to = d.subset(&member_names);
                        let via = d.pick(&["welcome", "keyMessage"]).unwrap_or("welcome");
                        steps.push(json!({"op": "privateEpoch", "by": by, "as": name, "to": to, "via": via}));
                        privates.push(name);
                    }
                } else {
                    let name = format!("rival{rivals}");
                    rivals += 1;
                    steps.push(json!({"op": "forgeGenesis", "by": "alice", "user": 0, "as": name, "to": all}));
                }
            }
        }
    }
    let member_names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
    steps.push(json!({"op": "spaceSettle", "replicas": member_names}));
    steps.push(json!({"op": "spaceSync"}));
    steps.push(json!({"op": "expectSpaceConverged", "replicas": member_names}));
    for m in &member_names {
        steps.push(json!({"op": "expectMembers", "replica": m}));
    }
    for r in &removed {
        steps.push(json!({"op": "expectCurrentKey", "replica": r}));
    }
    for p in &privates {
        steps.push(json!({"op": "expectSecrets", "replicas": all, "lacksPrivate": p}));
    }
    json!({
        "description": "A generated membership schedule (clientful-conformance fuzz); expectations from the reference.",
        "requires": ["space/membership"],
        "world": {"crdt": "yjs", "devices": 1, "seed": world_seed},
        "network": {"seed": world_seed ^ 0x5eed, "drop": 0.0, "duplicate": d.pick(&[0.0, 0.2]).unwrap_or(0.0)},
        "steps": steps,
    })
}

/// A schedule of one document bound to every member's space replica
/// (CONF-104..CONF-109): members of every role, and members the creator
/// removes without their knowing, write to it while deliveries are partial;
/// the reference decides each write's authority (MEM-18), and the content
/// it ends with, the dispositions of redelivered writes and convergence are
/// the expectations.
fn space_doc_schedule(d: &mut Draw<'_>, crdt: &str, world_seed: u64) -> Value {
    let (all, mut steps) = space_founders(d);
    let doc = |n: &str| format!("{n}Doc");
    for n in all.iter().skip(1) {
        let role = d.pick(ROLES).unwrap_or("writer");
        steps.push(json!({"op": "addMember", "by": "alice", "member": n, "role": role}));
    }
    steps.push(json!({"op": "spaceSettle"}));
    for n in &all {
        steps.push(
            json!({"op": "spaceDocument", "as": doc(n), "space": n, "doc": "d1", "crdt": crdt}),
        );
    }
    let docs: Vec<String> = all.iter().map(|n| doc(n)).collect();
    // Members still in the space (alice never leaves), and how many
    // envelopes each document replica has sealed.
    let mut active: Vec<String> = all.clone();
    let mut sealed = vec![0usize; all.len()];
    for _ in 0..d.range(3, 9) {
        let w = d.range(0, all.len() - 1);
        let Some(wd) = docs.get(w).cloned() else {
            continue;
        };
        match d.range(0, 6) {
            0..=2 => {
                // Anyone writes: a reader, a writer, or a member removed
                // behind its back (its own space replica never hears of it).
                let text = d.pick(TEXTS).unwrap_or("a");
                steps.push(json!({"op": "insert", "replica": wd, "index": 0, "text": text}));
                steps.push(json!({"op": "commit", "replica": wd}));
                if let Some(c) = sealed.get_mut(w) {
                    *c += 1;
                }
                let others: Vec<String> = docs.iter().filter(|x| **x != wd).cloned().collect();
                let to = d.subset(&others);
                steps.push(json!({"op": "send", "from": wd, "to": to}));
            }
            3 => steps.push(json!({"op": "flush"})),
            4 => {
                let others: Vec<String> =
                    active.iter().filter(|n| *n != "alice").cloned().collect();
                if let Some(m) = d.pick(&others) {
                    steps.push(json!({"op": "removeMember", "by": "alice", "member": m}));
                    active.retain(|n| *n != m);
                    steps.push(json!({"op": "spaceSettle", "replicas": active}));
                }
            }
            5 if sealed.get(w).copied().unwrap_or(0) > 0 => {
                let to = d.pick(&docs).unwrap_or_default();
                if to != wd {
                    steps.push(json!({"op": "redeliver", "from": wd, "to": to}));
                }
            }
            _ => steps.push(json!({"op": "spaceSettle", "replicas": active})),
        }
    }
    steps.push(json!({"op": "spaceSettle", "replicas": active}));
    steps.push(json!({"op": "sync"}));
    let active_docs: Vec<String> = active.iter().map(|n| doc(n)).collect();
    steps.push(json!({"op": "expectConverged", "replicas": active_docs}));
    for r in &active_docs {
        steps.push(json!({"op": "expectContent", "replica": r}));
    }
    json!({
        "description": "A generated schedule of a document bound to a space (clientful-conformance fuzz); expectations from the reference.",
        "requires": ["space/membership", "space/documents", format!("replica/{crdt}")],
        "world": {"crdt": crdt, "devices": 1, "seed": world_seed},
        "replicas": {},
        "network": {"seed": world_seed ^ 0x5eed, "drop": 0.0, "duplicate": d.pick(&[0.0, 0.25]).unwrap_or(0.0)},
        "steps": steps,
    })
}

/// The reference's expectations for `scenario` (CONF-87), played by a fresh
/// in-process reference.
pub fn learn(scenario: &Value) -> Result<Value, String> {
    let mut reference = ReferenceAdapter::new();
    learn_expectations(&mut reference, scenario).map_err(|e| match e {
        ScenarioError::Failed(m) | ScenarioError::Unsupported(m) => m,
        ScenarioError::Harness(h) => h.to_string(),
    })
}

/// How playing a learnt scenario against the implementation went.
enum Played {
    Pass,
    Fail(String),
    Harness(String),
}

fn play(imp: &mut dyn Adapter, scenario: &Value) -> Played {
    let run = run_scenario(&mut [imp], scenario);
    match run.result {
        Ok(()) if run.evidence.is_empty() => Played::Pass,
        Ok(()) => Played::Fail(format!("evidence (CONF-32): {}", run.evidence.join("; "))),
        Err(ScenarioError::Failed(m)) => Played::Fail(m),
        Err(ScenarioError::Unsupported(m)) => Played::Fail(format!("unsupported: {m}")),
        Err(ScenarioError::Harness(h)) => Played::Harness(h.to_string()),
    }
}

/// Says hello (the implementation's capabilities) and sends `configure`.
pub fn start(imp: &mut dyn Adapter, seed: u64) -> Result<Caps, FuzzError> {
    let hello = match imp
        .call(pb::Request {
            id: 1,
            command: Some(Command::Hello(pb::Hello {
                harness_version: crate::HARNESS_VERSION,
            })),
        })?
        .result
    {
        Some(R::Hello(h)) => h,
        other => return Err(FuzzError::Start(format!("hello answered {other:?}"))),
    };
    let known = crate::runner::known_capabilities();
    if let Some(bad) = hello.capabilities.iter().find(|c| !known.contains(c)) {
        return Err(FuzzError::Start(format!(
            "hello declares the unknown capability {bad:?} (CONF-41)"
        )));
    }
    match imp
        .call(pb::Request {
            id: 2,
            command: Some(Command::Configure(pb::Configure {
                seed,
                clock_ms: crate::runner::CONFIGURE_CLOCK_MS,
            })),
        })?
        .result
    {
        Some(R::Done(_)) => {}
        other => return Err(FuzzError::Start(format!("configure answered {other:?}"))),
    }
    Ok(Caps::from_names(&hello.capabilities))
}

/// Runs the randomized mode against `imp` (CONF-85..CONF-89): `progress` is
/// told each case's index and outcome (`pass`, `fail`, `discard`).
pub fn fuzz(
    imp: &mut dyn Adapter,
    opts: &Options,
    progress: &mut dyn FnMut(u64, &str),
) -> Result<Summary, FuzzError> {
    let caps = start(imp, opts.seed)?;
    let started = Instant::now();
    let mut summary = Summary {
        seed: opts.seed,
        ..Summary::default()
    };
    for case in 0..opts.cases {
        if opts.time.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        let scenario = generate(opts.seed, case, &caps);
        let learnt = match learn(&scenario) {
            Ok(l) => l,
            Err(why) => {
                progress(case, "discard");
                summary.discarded.push((case, why));
                continue;
            }
        };
        summary.cases += 1;
        match play(imp, &learnt) {
            Played::Pass => {
                summary.passed += 1;
                progress(case, "pass");
            }
            Played::Harness(h) => {
                progress(case, "harness error");
                summary.harness_error = Some(format!("case {case}: {h}"));
                if let Some(dir) = &opts.out {
                    write_scenario(dir, &learnt)?;
                }
                return Ok(summary);
            }
            Played::Fail(message) => {
                progress(case, "fail");
                let (shrunk, shrunk_message, attempts) =
                    shrink(imp, &learnt, &message, opts.shrink_attempts);
                let file = match &opts.out {
                    Some(dir) => Some(write_scenario(dir, &shrunk)?),
                    None => None,
                };
                summary.failure = Some(Failure {
                    case,
                    message,
                    shrunk_message,
                    original: learnt,
                    shrunk,
                    attempts,
                    file,
                });
                return Ok(summary);
            }
        }
    }
    Ok(summary)
}

/// Writes `scenario` as `<dir>/<name>.json`, pretty-printed.
pub fn write_scenario(dir: &Path, scenario: &Value) -> Result<PathBuf, FuzzError> {
    let name = scenario
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("fuzz-scenario");
    std::fs::create_dir_all(dir).map_err(|e| FuzzError::Write(dir.to_path_buf(), e))?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, format!("{scenario:#}\n"))
        .map_err(|e| FuzzError::Write(path.clone(), e))?;
    Ok(path)
}

/// The number of steps of a scenario.
pub fn step_count(scenario: &Value) -> usize {
    scenario
        .get("steps")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The replica names of a scenario: document replicas, or the space replicas
/// its `createSpace`/`joinSpace` steps make.
pub fn replica_names(scenario: &Value) -> Vec<String> {
    let mut out: Vec<String> = scenario
        .get("replicas")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for s in scenario
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if (s["op"] == "createSpace" || s["op"] == "joinSpace")
            && let Some(n) = s.get("as").and_then(Value::as_str)
        {
            out.push(n.to_string());
        }
    }
    out
}

/// Learnt fields, removed before a candidate is learnt again.
const LEARNT: &[&str] = &["expect", "json", "members", "holds"];

fn unlearn(scenario: &Value) -> Value {
    let mut s = scenario.clone();
    if let Some(steps) = s.get_mut("steps").and_then(Value::as_array_mut) {
        for st in steps {
            if let Some(o) = st.as_object_mut() {
                for k in LEARNT {
                    o.remove(*k);
                }
            }
        }
    }
    s
}

fn with_steps(scenario: &Value, steps: Vec<Value>) -> Value {
    let mut s = scenario.clone();
    if let Some(o) = s.as_object_mut() {
        o.insert("steps".into(), Value::Array(steps));
    }
    s
}

/// The scenario without replica `name`: its entry, the steps it makes or that
/// need it, and its place in the lists of other steps.
fn without_replica(scenario: &Value, name: &str) -> Value {
    let mut s = scenario.clone();
    if let Some(r) = s.get_mut("replicas").and_then(Value::as_object_mut) {
        r.remove(name);
    }
    let steps: Vec<Value> = scenario
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|st| {
            let mut st = st.clone();
            let o = st.as_object_mut()?;
            for (k, v) in o.iter_mut() {
                match v {
                    Value::String(x) if x == name && k != "op" => return None,
                    Value::Array(a) => {
                        a.retain(|x| x.as_str() != Some(name));
                        if a.is_empty() && k != "second" {
                            return None;
                        }
                    }
                    _ => {}
                }
            }
            Some(st)
        })
        .collect();
    with_steps(&s, steps)
}

/// Delta debugging (CONF-89): drop replicas, then chunks of steps of halving
/// size, then quiet the network, keeping each change after which the
/// reference still plays the schedule and the implementation still fails it;
/// at most `attempts` candidates. Answers the smallest failing scenario (its
/// expectations learnt again), why it fails, and the attempts made.
pub fn shrink(
    imp: &mut dyn Adapter,
    learnt: &Value,
    message: &str,
    attempts: usize,
) -> (Value, String, usize) {
    let mut best = learnt.clone();
    let mut why = message.to_string();
    let mut tried = 0usize;
    let mut try_candidate = |cand: Value, tried: &mut usize| -> Option<(Value, String)> {
        if *tried >= attempts {
            return None;
        }
        *tried += 1;
        let l = learn(&unlearn(&cand)).ok()?;
        match play(imp, &l) {
            Played::Fail(m) => Some((l, m)),
            _ => None,
        }
    };
    // Replicas (keep at least one; never the space's creator).
    for name in replica_names(&best) {
        if name == "alice" || replica_names(&best).len() <= 1 {
            continue;
        }
        if let Some((l, m)) = try_candidate(without_replica(&best, &name), &mut tried) {
            best = l;
            why = m;
        }
    }
    // Steps, in chunks of halving size.
    let mut chunk = step_count(&best).div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < step_count(&best) && tried < attempts {
            let steps: Vec<Value> = best
                .get("steps")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let end = (start + chunk).min(steps.len());
            let kept: Vec<Value> = steps
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < start || *i >= end)
                .map(|(_, s)| s.clone())
                .collect();
            match try_candidate(with_steps(&best, kept), &mut tried) {
                Some((l, m)) => {
                    best = l;
                    why = m;
                }
                None => start += chunk,
            }
        }
        if chunk == 1 || tried >= attempts {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    // A quiet network.
    for key in ["drop", "duplicate"] {
        let nonzero = best
            .get("network")
            .and_then(|n| n.get(key))
            .and_then(Value::as_f64)
            .is_some_and(|v| v > 0.0);
        if nonzero {
            let mut cand = best.clone();
            if let Some(n) = cand.get_mut("network").and_then(Value::as_object_mut) {
                n.insert(key.into(), json!(0.0));
            }
            if let Some((l, m)) = try_candidate(cand, &mut tried) {
                best = l;
                why = m;
            }
        }
    }
    if let Some(o) = best.as_object_mut() {
        o.insert(
            "description".into(),
            json!(format!(
                "Shrunk by clientful-conformance fuzz ({tried} attempts) from a failing generated schedule; expectations from the reference. The implementation failed: {why}"
            )),
        );
    }
    (best, why, tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_and_capabilities_respected() {
        let caps = Caps::all();
        assert_eq!(generate(7, 3, &caps), generate(7, 3, &caps));
        assert_ne!(generate(7, 3, &caps), generate(7, 4, &caps));
        let yjs_only = Caps {
            yjs: true,
            ..Caps::default()
        };
        for case in 0..50 {
            let s = generate(9, case, &yjs_only);
            assert_eq!(s["requires"], json!(["replica/yjs"]), "case {case}");
            assert!(step_count(&s) > 0);
        }
    }
}
