//! One simulation run: a seeded schedule of edits, commits, broadcasts, sync
//! exchanges, faults and Byzantine behaviours, then the heal, the reliable sync
//! phase and the property checks. See [`run`].

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::ErrorClass;
use clientful_core::envelope::{self, EnvelopeId};
use clientful_doc::dag::{MAX_PENDING, MAX_PENDING_PER_AUTHOR};
use clientful_doc::replica::class_str;
use clientful_doc::sync::SyncSession;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition, Replica, Verdict};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::byzantine::{ALL_BEHAVIOURS, Behaviour, Forger, chain_tip, garbage_bytes};
use crate::edit;
use crate::net::{LinkFaults, Message, NetStats, Network, Payload};
use crate::rng::{below, chance, index, shuffle};
use crate::sync::sync_all;

/// The knobs of a simulation. Which faults and behaviours actually happen, and
/// when, is drawn from the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The CRDT of the document.
    pub crdt: CrdtKind,
    /// Number of replicas (member devices), honest and Byzantine (at least 5).
    pub replicas: usize,
    /// Most Byzantine devices; the seed picks 0 to this many (at most 2, and
    /// never device 0, which creates the document).
    pub max_byzantine: usize,
    /// Logical steps of the faulty phase.
    pub steps: u64,
    /// Per honest replica and step: probability of a local edit.
    pub edit: f64,
    /// Per honest replica and step: probability of committing pending edits.
    pub commit: f64,
    /// Per honest replica and step: probability of starting a sync exchange with
    /// a random peer.
    pub sync: f64,
    /// Link faults of the faulty phase.
    pub link: LinkFaults,
    /// Per step: probability that a partition starts.
    pub partition: f64,
    /// Longest partition, in steps.
    pub max_partition_len: u64,
    /// Per honest replica and step: probability of going offline.
    pub offline: f64,
    /// Longest offline period, in steps.
    pub max_offline_len: u64,
    /// Per honest replica and step: probability of a crash.
    pub crash: f64,
    /// Longest downtime after a crash, in steps.
    pub max_down_len: u64,
    /// Per Byzantine device and step: probability of misbehaving.
    pub byzantine: f64,
    /// Largest missing-parent flood in one step.
    pub max_flood: usize,
    /// The behaviours a Byzantine device may be given (the seed picks a non-empty
    /// subset). [`SimConfig::small`] leaves out [`Behaviour::Equivocate`]: see
    /// the crate README, "Known issue".
    pub behaviours: Vec<Behaviour>,
    /// Most rounds of the final sync phase.
    pub max_sync_rounds: usize,
    /// Record a human-readable trace in the report.
    pub trace: bool,
}

impl SimConfig {
    /// A small schedule (5 replicas, 20 steps): what the property tests run.
    pub fn small(crdt: CrdtKind) -> Self {
        SimConfig {
            crdt,
            replicas: 5,
            max_byzantine: 2,
            steps: 20,
            edit: 0.3,
            commit: 0.4,
            sync: 0.08,
            link: LinkFaults {
                drop: 0.15,
                duplicate: 0.1,
                max_delay: 4,
            },
            partition: 0.06,
            max_partition_len: 8,
            offline: 0.03,
            max_offline_len: 8,
            crash: 0.02,
            max_down_len: 4,
            byzantine: 0.25,
            max_flood: 16,
            behaviours: ALL_BEHAVIOURS.to_vec(),
            max_sync_rounds: 12,
            trace: false,
        }
    }

    /// [`SimConfig::small`] with every Byzantine behaviour, equivocation included.
    pub fn small_with_equivocation(crdt: CrdtKind) -> Self {
        SimConfig {
            behaviours: ALL_BEHAVIOURS.to_vec(),
            ..SimConfig::small(crdt)
        }
    }

    /// A larger schedule for the soak.
    pub fn soak(crdt: CrdtKind) -> Self {
        SimConfig {
            replicas: 6,
            steps: 60,
            max_flood: 64,
            ..SimConfig::small(crdt)
        }
    }
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Network counters (faulty phase).
    pub net: NetStats,
    /// Messages discarded at the heal.
    pub discarded_at_heal: usize,
    /// Local edits made by honest replicas.
    pub edits: u64,
    /// Edits lost in a crash before they were committed (upper bound: edits since
    /// the last commit).
    pub lost_edits: u64,
    /// Envelopes committed by honest replicas.
    pub honest_envelopes: u64,
    /// Messages (envelopes, garbage, sync) emitted by Byzantine devices.
    pub byzantine_messages: u64,
    /// Crashes.
    pub crashes: u64,
    /// Offline periods.
    pub offline_periods: u64,
    /// Sync exchanges started in the faulty phase.
    pub syncs_started: u64,
    /// Sync messages an honest session refused (all of them Byzantine garbage).
    pub sync_errors: u64,
    /// Envelope dispositions seen by honest replicas, by kind.
    pub dispositions: BTreeMap<String, u64>,
    /// `LIMIT_EXCEEDED` answers from the missing-parent buffer.
    pub limit_rejections: u64,
    /// Largest missing-parent buffer seen on an honest replica.
    pub max_pending: usize,
    /// Rounds the final sync phase took.
    pub sync_rounds: usize,
    /// Envelopes integrated on each honest replica at the end.
    pub integrated: usize,
}

/// The outcome of one run. Two runs with the same seed and configuration give
/// equal reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The CRDT.
    pub crdt: CrdtKind,
    /// Honest device indices.
    pub honest: Vec<usize>,
    /// Byzantine device indices and their behaviours.
    pub byzantine: Vec<(usize, Vec<Behaviour>)>,
    /// `HistoryDigest` of each honest replica, in `honest` order.
    pub history_digests: Vec<[u8; 32]>,
    /// `StateDigest` of each honest replica.
    pub state_digests: Vec<[u8; 32]>,
    /// The final text of each honest replica.
    pub texts: Vec<String>,
    /// Verdict of every envelope id a Byzantine device emitted, on each honest
    /// replica.
    pub byzantine_verdicts: BTreeMap<EnvelopeId, Vec<Verdict>>,
    /// Equivocators seen by the first honest replica.
    pub equivocators: Vec<([u8; 32], u64)>,
    /// Counters.
    pub stats: SimStats,
    /// Property violations; empty for a passing run.
    pub violations: Vec<String>,
    /// The trace (only if [`SimConfig::trace`]).
    pub trace: Vec<String>,
}

impl SimReport {
    /// Whether every property held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "seed {} {:?}: honest {:?} byzantine {:?}, {} envelopes, {} edits, {} crashes, {} partitions, max pending {}, sync rounds {}, {}",
            self.seed,
            self.crdt,
            self.honest,
            self.byzantine,
            self.stats.integrated,
            self.stats.edits,
            self.stats.crashes,
            self.stats.net.partitions,
            self.stats.max_pending,
            self.stats.sync_rounds,
            if self.ok() {
                "ok".to_string()
            } else {
                format!("{} VIOLATIONS", self.violations.len())
            }
        )
    }
}

struct ByzState {
    behaviours: Vec<Behaviour>,
    forger: Forger,
}

struct Node {
    idx: usize,
    byz: Option<ByzState>,
    replica: Option<Replica>,
    persisted: Vec<Vec<u8>>,
    incarnation: u64,
    offline_until: u64,
    down_until: u64,
    dirty_edits: u64,
    sessions: BTreeMap<usize, SyncSession>,
}

impl Node {
    fn up(&self, t: u64) -> bool {
        self.replica.is_some() && t >= self.offline_until
    }
}

struct Sim {
    cfg: SimConfig,
    world: World,
    rng: ChaCha20Rng,
    net: Network,
    nodes: Vec<Node>,
    stats: SimStats,
    trace: Vec<String>,
    violations: Vec<String>,
    honest_ids: BTreeSet<EnvelopeId>,
    byz_emitted: Vec<Vec<u8>>,
    byz_ids: BTreeSet<EnvelopeId>,
}

fn hex4(id: &[u8]) -> String {
    id.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn disposition_name(d: &Disposition) -> String {
    match d {
        Disposition::Applied { .. } => "applied".into(),
        Disposition::Buffered { .. } => "buffered".into(),
        Disposition::Duplicate { .. } => "duplicate".into(),
        Disposition::Rejected { class, .. } => format!("rejected:{}", class_str(*class)),
        other => format!("{other:?}"),
    }
}

fn disposition_short(d: &Disposition) -> String {
    let id = match d {
        Disposition::Applied { id, .. }
        | Disposition::Buffered { id, .. }
        | Disposition::Duplicate { id } => Some(*id),
        Disposition::Rejected { id, .. } => *id,
        _ => None,
    };
    format!(
        "{} {}",
        id.map_or_else(|| "-".to_string(), |i| hex4(&i)),
        disposition_name(d)
    )
}

impl Sim {
    fn new(seed: u64, cfg: &SimConfig) -> Self {
        let replicas = cfg.replicas.max(5);
        let world = World::new(seed, replicas, cfg.crdt);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let net_seed = rand_core::Rng::next_u64(&mut rng);
        let max_byz = cfg.max_byzantine.min(2);
        let n_byz = index(&mut rng, max_byz + 1);
        let mut candidates: Vec<usize> = (1..replicas).collect();
        shuffle(&mut rng, &mut candidates);
        let byz_set: BTreeSet<usize> = candidates.into_iter().take(n_byz).collect();
        let mut nodes = Vec::new();
        for i in 0..replicas {
            let byz = if byz_set.contains(&i) {
                let allowed = &cfg.behaviours;
                let mut behaviours: Vec<Behaviour> = allowed
                    .iter()
                    .copied()
                    .filter(|_| chance(&mut rng, 0.5))
                    .collect();
                if behaviours.is_empty()
                    && let Some(b) = allowed.get(index(&mut rng, allowed.len()))
                {
                    behaviours.push(*b);
                }
                behaviours.sort_unstable();
                behaviours.dedup();
                let fseed = rand_core::Rng::next_u64(&mut rng);
                Some(ByzState {
                    behaviours,
                    forger: Forger::new(&world, i, fseed),
                })
            } else {
                None
            };
            nodes.push(Node {
                idx: i,
                byz,
                replica: Some(Replica::new(world.config(i, 0))),
                persisted: Vec::new(),
                incarnation: 0,
                offline_until: 0,
                down_until: 0,
                dirty_edits: 0,
                sessions: BTreeMap::new(),
            });
        }
        Sim {
            cfg: cfg.clone(),
            world,
            rng,
            net: Network::new(net_seed, cfg.link),
            nodes,
            stats: SimStats::default(),
            trace: Vec::new(),
            violations: Vec::new(),
            honest_ids: BTreeSet::new(),
            byz_emitted: Vec::new(),
            byz_ids: BTreeSet::new(),
        }
    }

    fn log(&mut self, f: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("t={:>3} {}", self.net.now(), f());
            self.trace.push(line);
        }
    }

    fn is_honest(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.byz.is_none())
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.is_honest(*i))
            .collect()
    }

    /// Bootstrap: device 0 creates the shared text and everyone gets it reliably.
    fn bootstrap(&mut self) {
        let Some(r0) = self.nodes.first_mut().and_then(|n| n.replica.as_mut()) else {
            return;
        };
        edit::create_text(r0, "hello 🌍");
        match r0.commit() {
            Ok(Some(id)) => {
                self.honest_ids.insert(id);
                self.stats.honest_envelopes += 1;
            }
            other => self
                .violations
                .push(format!("bootstrap commit failed: {other:?}")),
        }
        let out = r0.drain_outbox();
        for node in self.nodes.iter_mut().skip(1) {
            if let Some(r) = node.replica.as_mut() {
                for (_, bytes) in &out {
                    r.receive(bytes);
                }
            }
        }
        for node in &mut self.nodes {
            if let Some(r) = node.replica.as_ref() {
                node.persisted = r.persisted_envelopes();
            }
        }
    }

    fn note(&mut self, to: usize, d: &Disposition) {
        if !self.is_honest(to) {
            return;
        }
        *self
            .stats
            .dispositions
            .entry(disposition_name(d))
            .or_default() += 1;
        if let Disposition::Rejected {
            class: ErrorClass::LimitExceeded,
            ..
        } = d
        {
            self.stats.limit_rejections += 1;
        }
    }

    fn deliver(&mut self, msg: Message) {
        let t = self.net.now();
        let Some(node) = self.nodes.get_mut(msg.to) else {
            return;
        };
        if !node.up(t) {
            self.log(|| format!("{} -> {} lost (receiver down/offline)", msg.from, msg.to));
            return;
        }
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        match msg.payload {
            Payload::Envelope(bytes) => {
                let d = replica.receive(&bytes);
                self.note(msg.to, &d);
                self.log(|| format!("{} -> {} env {}", msg.from, msg.to, disposition_short(&d)));
            }
            Payload::Sync(bytes) => {
                let session = node.sessions.entry(msg.from).or_default();
                match session.handle(replica, &bytes) {
                    Ok((replies, ds)) => {
                        for d in &ds {
                            self.note(msg.to, d);
                        }
                        let n = replies.len();
                        for r in replies {
                            self.net.send(msg.to, msg.from, Payload::Sync(r));
                        }
                        self.log(|| {
                            format!(
                                "{} -> {} sync: {} envelopes, {} replies",
                                msg.from,
                                msg.to,
                                ds.len(),
                                n
                            )
                        });
                    }
                    Err(e) => {
                        if self.is_honest(msg.to) {
                            self.stats.sync_errors += 1;
                        }
                        if self.is_honest(msg.from) && self.is_honest(msg.to) {
                            self.violations
                                .push(format!("honest sync message refused: {e}"));
                        }
                        self.log(|| format!("{} -> {} sync refused: {e}", msg.from, msg.to));
                    }
                }
            }
        }
    }

    fn faults(&mut self, t: u64) {
        let n = self.nodes.len();
        if chance(&mut self.rng, self.cfg.partition) {
            let mut side: Vec<bool> = (0..n).map(|_| chance(&mut self.rng, 0.5)).collect();
            let a = index(&mut self.rng, n);
            let b = (a + 1 + index(&mut self.rng, n - 1)) % n;
            if let Some(s) = side.get_mut(a) {
                *s = true;
            }
            if let Some(s) = side.get_mut(b) {
                *s = false;
            }
            let len = 1 + below(&mut self.rng, self.cfg.max_partition_len.max(1));
            let groups: Vec<usize> = (0..n).filter(|i| side.get(*i) == Some(&true)).collect();
            self.log(|| format!("partition {groups:?} | rest for {len} steps"));
            self.net.partition(side, t, t + len);
        }
        for i in 0..n {
            if !self.is_honest(i) {
                continue;
            }
            let Some(node) = self.nodes.get_mut(i) else {
                continue;
            };
            if node.replica.is_none() {
                if t >= node.down_until {
                    node.incarnation += 1;
                    let cfg = self.world.config(i, node.incarnation);
                    node.replica = Some(Replica::restore(cfg, &node.persisted));
                    node.sessions.clear();
                    let inc = node.incarnation;
                    self.log(|| format!("{i} restarts (incarnation {inc})"));
                }
                continue;
            }
            if chance(&mut self.rng, self.cfg.crash) {
                let len = 1 + below(&mut self.rng, self.cfg.max_down_len.max(1));
                if let Some(r) = node.replica.take() {
                    node.persisted = r.persisted_envelopes();
                }
                node.down_until = t + len;
                node.sessions.clear();
                self.stats.crashes += 1;
                self.stats.lost_edits += node.dirty_edits;
                node.dirty_edits = 0;
                self.log(|| format!("{i} crashes for {len} steps"));
                continue;
            }
            if t >= node.offline_until && chance(&mut self.rng, self.cfg.offline) {
                let len = 1 + below(&mut self.rng, self.cfg.max_offline_len.max(1));
                node.offline_until = t + len;
                self.stats.offline_periods += 1;
                self.log(|| format!("{i} goes offline for {len} steps"));
            }
        }
    }

    fn broadcast(&mut self, from: usize, out: Vec<(EnvelopeId, Vec<u8>)>) {
        let n = self.nodes.len();
        for (id, bytes) in out {
            self.log(|| format!("{from} broadcasts {}", hex4(&id)));
            for to in (0..n).filter(|to| *to != from) {
                self.net.send(from, to, Payload::Envelope(bytes.clone()));
            }
        }
    }

    fn honest_step(&mut self, i: usize, t: u64) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let online = node.up(t);
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        if chance(&mut self.rng, self.cfg.edit) {
            let ops = 1 + index(&mut self.rng, 3);
            for _ in 0..ops {
                if let Some(what) = edit::random_edit(replica, &mut self.rng) {
                    self.stats.edits += 1;
                    node.dirty_edits += 1;
                    if self.cfg.trace {
                        self.trace.push(format!("t={t:>3} {i} edits: {what}"));
                    }
                }
            }
        }
        if chance(&mut self.rng, self.cfg.commit) {
            match replica.commit() {
                Ok(Some(id)) => {
                    node.dirty_edits = 0;
                    self.honest_ids.insert(id);
                    self.stats.honest_envelopes += 1;
                    if self.cfg.trace {
                        self.trace
                            .push(format!("t={t:>3} {i} commits {}", hex4(&id)));
                    }
                }
                Ok(None) => {}
                Err(e) => self.violations.push(format!("{i}: commit failed: {e}")),
            }
        }
        if !online {
            return;
        }
        // Commit-before-send: everything in the outbox is already in the DAG, which
        // is what a crash persists.
        let out = replica.drain_outbox();
        for (id, _) in &out {
            self.honest_ids.insert(*id);
        }
        let want_sync = chance(&mut self.rng, self.cfg.sync);
        let peer = (i + 1 + index(&mut self.rng, self.nodes.len() - 1)) % self.nodes.len();
        self.broadcast(i, out);
        if want_sync {
            // A new connection: fresh sessions on both ends.
            let mut session = SyncSession::new();
            let hello = match self.nodes.get(i).and_then(|n| n.replica.as_ref()) {
                Some(r) => session.hello(r),
                None => return,
            };
            if let Some(node) = self.nodes.get_mut(i) {
                node.sessions.insert(peer, session);
            }
            if let Some(p) = self.nodes.get_mut(peer) {
                p.sessions.insert(i, SyncSession::new());
            }
            self.stats.syncs_started += 1;
            self.log(|| format!("{i} starts sync with {peer}"));
            self.net.send(i, peer, Payload::Sync(hello));
        }
    }

    fn byz_send(&mut self, from: usize, targets: &[usize], bytes: &[u8], what: &str) {
        if let Ok(d) = envelope::decode(bytes) {
            self.byz_ids.insert(d.id);
        }
        self.byz_emitted.push(bytes.to_vec());
        self.stats.byzantine_messages += 1;
        let id = envelope::decode(bytes).map_or_else(|_| "-".to_string(), |d| hex4(&d.id));
        self.log(|| format!("{from} (byzantine) {what} {id} -> {targets:?}"));
        for to in targets {
            self.net.send(from, *to, Payload::Envelope(bytes.to_vec()));
        }
    }

    fn random_targets(&mut self, from: usize) -> Vec<usize> {
        let all: Vec<usize> = (0..self.nodes.len()).filter(|j| *j != from).collect();
        let t: Vec<usize> = all
            .iter()
            .copied()
            .filter(|_| chance(&mut self.rng, 0.6))
            .collect();
        if t.is_empty() { all } else { t }
    }

    fn byzantine_step(&mut self, i: usize) {
        let n = self.nodes.len();
        let others: Vec<usize> = (0..n).filter(|j| *j != i).collect();
        // Honest-looking edits, so its content is woven into the document.
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        if chance(&mut self.rng, self.cfg.edit) {
            edit::random_edit(replica, &mut self.rng);
            let _ = replica.commit();
        }
        let valid = replica.drain_outbox();
        let misbehave = chance(&mut self.rng, self.cfg.byzantine);
        for (_, bytes) in &valid {
            self.byz_send(i, &others, bytes, "valid envelope");
        }
        if !misbehave {
            return;
        }
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let (Some(byz), Some(replica)) = (node.byz.as_mut(), node.replica.as_mut()) else {
            return;
        };
        let Some(behaviour) = byz
            .behaviours
            .get(index(&mut self.rng, byz.behaviours.len()))
            .copied()
        else {
            return;
        };
        let me = byz.forger.author();
        let (seq, prev) = chain_tip(replica, &me);
        let heads = replica.heads();
        let mut sends: Vec<(Vec<usize>, Vec<u8>, &'static str)> = Vec::new();
        match behaviour {
            Behaviour::Equivocate => {
                edit::random_edit(replica, &mut self.rng);
                if let Ok(Some(id)) = replica.commit() {
                    let out = replica.drain_outbox();
                    let twin = replica
                        .dag()
                        .nodes
                        .get(&id)
                        .and_then(|node| byz.forger.twin(node));
                    if let Some((_, twin_bytes)) = twin {
                        let mut shuffled = others.clone();
                        shuffle(&mut self.rng, &mut shuffled);
                        let half = shuffled.len() / 2;
                        let (a, b) = shuffled.split_at(half.max(1));
                        for (_, bytes) in out {
                            sends.push((a.to_vec(), bytes, "equivocation A"));
                        }
                        sends.push((b.to_vec(), twin_bytes, "equivocation B"));
                    }
                }
            }
            Behaviour::ForgePreds => {
                if let Some((_, bytes)) = byz.forger.forged_preds(seq + 1, prev) {
                    sends.push((Vec::new(), bytes, "forged preds"));
                }
            }
            Behaviour::SpoofActor => {
                let honest: Vec<usize> = others
                    .iter()
                    .copied()
                    .filter(|j| self.nodes.get(*j).is_some_and(|n| n.byz.is_none()))
                    .collect();
                let victim = honest
                    .get(index(&mut self.rng, honest.len()))
                    .map_or(me, |v| self.world.device(*v).public_bytes());
                if let Some(byz) = self.nodes.get_mut(i).and_then(|n| n.byz.as_mut())
                    && let Some((_, bytes)) = byz.forger.spoof(&victim, seq + 1, prev, heads)
                {
                    sends.push((Vec::new(), bytes, "spoofed actor"));
                }
            }
            Behaviour::Garbage => {
                if chance(&mut self.rng, 0.5) {
                    let g = garbage_bytes(&mut self.rng);
                    sends.push((Vec::new(), g, "garbage bytes"));
                } else if let Some((_, bytes)) = byz.forger.garbage_payload(seq + 1, prev, heads) {
                    sends.push((Vec::new(), bytes, "garbage payload"));
                }
                // And a garbage sync message to one peer.
                let to = others.get(index(&mut self.rng, others.len())).copied();
                if let Some(to) = to {
                    let g = garbage_bytes(&mut self.rng);
                    self.stats.byzantine_messages += 1;
                    self.net.send(i, to, Payload::Sync(g));
                }
            }
            Behaviour::MissingParentFlood => {
                let k = 1 + index(&mut self.rng, self.cfg.max_flood.max(1));
                if let Some(byz) = self.nodes.get_mut(i).and_then(|n| n.byz.as_mut()) {
                    for (_, bytes) in byz.forger.flood(k) {
                        sends.push((Vec::new(), bytes, "flood"));
                    }
                }
            }
        }
        for (targets, bytes, what) in sends {
            let targets = if targets.is_empty() {
                self.random_targets(i)
            } else {
                targets
            };
            self.byz_send(i, &targets, &bytes, what);
        }
    }

    fn check_buffers(&mut self) {
        for node in &self.nodes {
            if node.byz.is_some() {
                continue;
            }
            let Some(r) = node.replica.as_ref() else {
                continue;
            };
            let dag = r.dag();
            self.stats.max_pending = self.stats.max_pending.max(dag.pending.len());
            if dag.pending.len() > MAX_PENDING {
                self.violations.push(format!(
                    "replica {}: {} buffered envelopes > MAX_PENDING",
                    node.idx,
                    dag.pending.len()
                ));
            }
            let mut per_author: BTreeMap<[u8; 32], usize> = BTreeMap::new();
            for (n, _) in dag.pending.values() {
                *per_author.entry(n.author).or_default() += 1;
            }
            for (author, count) in per_author {
                let booked = dag.pending_per_author.get(&author).copied().unwrap_or(0);
                if count > MAX_PENDING_PER_AUTHOR || booked != count {
                    self.violations.push(format!(
                        "replica {}: author {} has {count} buffered (booked {booked}, max {MAX_PENDING_PER_AUTHOR})",
                        node.idx,
                        hex4(&author)
                    ));
                }
            }
        }
    }

    fn faulty_phase(&mut self) {
        for t in 0..self.cfg.steps {
            self.net.set_time(t);
            self.faults(t);
            for msg in self.net.due() {
                self.deliver(msg);
            }
            for i in 0..self.nodes.len() {
                if self.is_honest(i) {
                    self.honest_step(i, t);
                } else {
                    self.byzantine_step(i);
                }
            }
            self.check_buffers();
        }
    }

    fn heal(&mut self) {
        let t = self.cfg.steps;
        self.net.set_time(t);
        self.stats.discarded_at_heal = self.net.heal();
        self.log(|| "heal: partitions removed, everyone online, in-flight discarded".into());
        for i in 0..self.nodes.len() {
            let Some(node) = self.nodes.get_mut(i) else {
                continue;
            };
            node.offline_until = 0;
            if node.replica.is_none() {
                node.incarnation += 1;
                let cfg = self.world.config(i, node.incarnation);
                node.replica = Some(Replica::restore(cfg, &node.persisted));
            }
            node.sessions.clear();
            if node.byz.is_none()
                && let Some(r) = node.replica.as_mut()
            {
                // The debounce fires: pending local edits are committed. Unsent
                // envelopes travel in the sync phase.
                match r.commit() {
                    Ok(Some(id)) => {
                        self.honest_ids.insert(id);
                        self.stats.honest_envelopes += 1;
                        if self.cfg.trace {
                            self.trace
                                .push(format!("t={t:>3} {i} commits {} at heal", hex4(&id)));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => self.violations.push(format!("{i}: commit failed: {e}")),
                }
                for (id, _) in r.drain_outbox() {
                    self.honest_ids.insert(id);
                }
            }
        }
        // What Byzantine devices put on the wire also reaches storage, and every
        // honest replica eventually reads all of it (in its own order): verdicts
        // are compared over the same inputs.
        let emitted = std::mem::take(&mut self.byz_emitted);
        for i in self.honest() {
            let mut order: Vec<usize> = (0..emitted.len()).collect();
            shuffle(&mut self.rng, &mut order);
            for k in order {
                let Some(bytes) = emitted.get(k) else {
                    continue;
                };
                let d = match self.nodes.get_mut(i).and_then(|n| n.replica.as_mut()) {
                    Some(r) => r.receive(bytes),
                    None => continue,
                };
                self.note(i, &d);
            }
        }
        self.byz_emitted = emitted;
        self.check_buffers();
        // The reliable sync phase among honest replicas.
        let honest = self.honest();
        let mut replicas: Vec<Replica> = honest
            .iter()
            .filter_map(|i| self.nodes.get_mut(*i).and_then(|n| n.replica.take()))
            .collect();
        match sync_all(&mut replicas, self.cfg.max_sync_rounds) {
            Ok(rounds) => self.stats.sync_rounds = rounds,
            Err(e) => self.violations.push(format!("sync phase: {e}")),
        }
        for (i, r) in honest.iter().zip(replicas) {
            if let Some(n) = self.nodes.get_mut(*i) {
                n.replica = Some(r);
            }
        }
        self.check_buffers();
    }

    fn check(mut self, seed: u64) -> SimReport {
        let honest = self.honest();
        let mut history = Vec::new();
        let mut state = Vec::new();
        let mut texts = Vec::new();
        let mut equivocators = Vec::new();
        let mut verdicts: BTreeMap<EnvelopeId, Vec<Verdict>> = BTreeMap::new();
        let honest_keys: BTreeSet<[u8; 32]> = honest
            .iter()
            .map(|i| self.world.device(*i).public_bytes())
            .collect();
        for (k, i) in honest.iter().enumerate() {
            let Some(r) = self.nodes.get_mut(*i).and_then(|n| n.replica.as_mut()) else {
                continue;
            };
            history.push(r.history_digest());
            state.push(r.state_digest());
            texts.push(edit::text(r));
            let eq = r.equivocators();
            for (a, s) in &eq {
                if honest_keys.contains(a) {
                    self.violations.push(format!(
                        "replica {i}: honest device {} flagged as equivocator at seq {s}",
                        hex4(a)
                    ));
                }
            }
            if k == 0 {
                self.stats.integrated = r.dag().nodes.len();
                equivocators = eq.clone();
            } else if eq != equivocators {
                self.violations
                    .push(format!("replica {i}: equivocators differ"));
            }
            for id in &self.byz_ids {
                verdicts.entry(*id).or_default().push(r.verdict(id));
            }
            for id in &self.honest_ids {
                let v = r.verdict(id);
                if v != Verdict::Applied {
                    self.violations.push(format!(
                        "replica {i}: honest envelope {} is {v:?}, not Applied",
                        hex4(id)
                    ));
                }
            }
        }
        if history.windows(2).any(|w| w.first() != w.get(1)) {
            self.violations
                .push("honest replicas differ in HistoryDigest".into());
        }
        if state.windows(2).any(|w| w.first() != w.get(1)) {
            self.violations.push(format!(
                "honest replicas differ in StateDigest: texts {texts:?}"
            ));
        }
        for (id, vs) in &verdicts {
            if vs.windows(2).any(|w| w.first() != w.get(1)) {
                self.violations.push(format!(
                    "Byzantine envelope {}: verdicts differ across honest replicas: {vs:?}",
                    hex4(id)
                ));
            } else if self.stats.limit_rejections == 0 && vs.first() == Some(&Verdict::Unknown) {
                // Every Byzantine envelope is sealed by a member with the epoch
                // key, so it opens; after the flush every honest replica has it.
                self.violations.push(format!(
                    "Byzantine envelope {} is Unknown everywhere after the heal",
                    hex4(id)
                ));
            }
        }
        let byzantine = self
            .nodes
            .iter()
            .filter_map(|n| n.byz.as_ref().map(|b| (n.idx, b.behaviours.clone())))
            .collect();
        self.stats.net = self.net.stats.clone();
        let violations: Vec<String> = self
            .violations
            .into_iter()
            .map(|v| format!("[seed {seed}] {v}"))
            .collect();
        SimReport {
            seed,
            crdt: self.cfg.crdt,
            honest,
            byzantine,
            history_digests: history,
            state_digests: state,
            texts,
            byzantine_verdicts: verdicts,
            equivocators,
            stats: self.stats,
            violations,
            trace: self.trace,
        }
    }
}

/// Runs one simulation. Fully deterministic: the same `seed` and `cfg` give an
/// equal [`SimReport`] (no clock, no threads, no hash-order dependence).
///
/// Phases: device 0 creates the document and everyone receives it; `cfg.steps`
/// faulty steps (partitions, offline periods, crashes with restart from persisted
/// envelopes, lossy/duplicating/reordering delivery of broadcasts and sync
/// messages, Byzantine behaviours); the heal (partitions removed, everyone online
/// and restarted, in-flight messages discarded, every Byzantine emission read by
/// every honest replica); the reliable sync phase among honest replicas until
/// quiescent; the property checks, whose failures land in
/// [`SimReport::violations`].
pub fn run(seed: u64, cfg: &SimConfig) -> SimReport {
    let mut sim = Sim::new(seed, cfg);
    sim.bootstrap();
    sim.faulty_phase();
    sim.heal();
    sim.check(seed)
}
