//! A seeded network for membership logs (spec §11): devices of one space, each a
//! session core ([`Session`] with [`Transport::Direct`], around its
//! [`SpaceReplica`]), exchange operation envelopes, key messages and welcomes
//! through a queue that delivers them in a random order, with duplicates. After a
//! random phase, [`MemberNet::settle`] runs the sessions' honest follow-ups (acks,
//! welcomes, healing rotations: the one policy the SDK and the conformance
//! adapter run too) and reliable full syncs until nothing changes, so tests can
//! assert that every replica reached the same state and verdicts.
//!
//! This module is a test harness: it is driven by tests with known-good setups,
//! and a failed setup step is a test failure, so it may panic.
#![allow(clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use clientful_core::identity::{self, DeviceKeys};
use clientful_core::keys::SigningKey;
use clientful_core::membership::space::{Identity, Outgoing};
use clientful_core::membership::state::DeviceId;
use clientful_core::membership::{Admission, SpaceReplica, State, Verdict};
use clientful_session::{Session, SessionConfig, Transport};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::rng::{chance, index};

/// What travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An operation envelope.
    Envelope(Vec<u8>),
    /// A key message.
    KeyMessage(Vec<u8>),
    /// A welcome (for the node it is queued to).
    Welcome(Vec<u8>),
}

/// One device.
pub struct Node {
    /// Name, for messages.
    pub name: String,
    /// The user's identity key (held by each of the user's devices here).
    pub user: SigningKey,
    /// The device's session core.
    pub session: Session,
}

impl Node {
    fn new(name: &str, user: SigningKey, space: SpaceReplica) -> Node {
        let device_key = space.identity().device.signing.public_bytes();
        let cfg = SessionConfig {
            replica: space,
            device_key,
            lobbies: Vec::new(),
            links: Vec::new(),
            confirm_admissions: false,
            // Unused: every draw comes from the network's one seeded stream
            // (`MemberNet::crypto`), and a direct session seals nothing.
            rng_seed: [0; 32],
        };
        Node {
            name: name.into(),
            user,
            session: Session::with_transport(cfg, Transport::Direct).expect("session"),
        }
    }

    /// The membership replica.
    pub fn space(&self) -> &SpaceReplica {
        self.session.replica()
    }

    /// The membership replica, for a test's scripted or forged steps; what it
    /// queues leaves at the next [`MemberNet::flush`].
    pub fn space_mut(&mut self) -> &mut SpaceReplica {
        self.session.replica_mut()
    }
}

/// The network. See the module documentation.
pub struct MemberNet {
    /// Devices, by index.
    pub nodes: Vec<Node>,
    queue: Vec<(usize, Item)>,
    /// Schedule randomness.
    pub rng: ChaCha20Rng,
    /// Key and nonce randomness.
    pub crypto: ChaCha20Rng,
    /// Probability that a delivered item is delivered again later.
    pub duplicate: f64,
    /// Nodes that are disconnected: items to them wait in the queue.
    pub offline: Vec<bool>,
    /// Which redemptions admins admit in [`MemberNet::settle`] (MEM-25).
    pub admission: Admission,
}

impl std::fmt::Debug for MemberNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberNet")
            .field("nodes", &self.nodes.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl MemberNet {
    /// A network whose first node creates a space.
    pub fn new(seed: u64, creator: &str) -> MemberNet {
        let mut crypto = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed_c0de);
        let user = SigningKey::generate(&mut crypto);
        let device = DeviceKeys::generate(&mut crypto);
        let me = Identity::new(&user, device).expect("identity");
        let space = SpaceReplica::create(&mut crypto, me).expect("create");
        let mut net = MemberNet {
            nodes: vec![Node::new(creator, user, space)],
            queue: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            crypto,
            duplicate: 0.2,
            offline: vec![false],
            admission: Admission::Automatic,
        };
        net.flush(0);
        net
    }

    /// A device of a new user, not yet in the space. Returns its index and
    /// certificate.
    pub fn new_user(&mut self, name: &str) -> (usize, Vec<u8>) {
        let user = SigningKey::generate(&mut self.crypto);
        self.new_device_of(name, user)
    }

    /// A new device of the user of node `of` (the user key is copied to it).
    pub fn new_device(&mut self, name: &str, of: usize) -> (usize, Vec<u8>) {
        let user = SigningKey::from_seed(&self.nodes[of].user.seed());
        self.new_device_of(name, user)
    }

    fn new_device_of(&mut self, name: &str, user: SigningKey) -> (usize, Vec<u8>) {
        let device = DeviceKeys::generate(&mut self.crypto);
        let me = Identity::new(&user, device).expect("identity");
        let cert = me.certificate.clone();
        let space = SpaceReplica::new(*self.nodes[0].space().space_id(), me).expect("replica");
        self.nodes.push(Node::new(name, user, space));
        self.offline.push(false);
        (self.nodes.len() - 1, cert)
    }

    /// Adds a node whose replica was built elsewhere (an invitee).
    pub fn push_node(&mut self, name: &str, user: SigningKey, space: SpaceReplica) -> usize {
        self.nodes.push(Node::new(name, user, space));
        self.offline.push(false);
        let i = self.nodes.len() - 1;
        self.flush(i);
        i
    }

    /// The node index of a device id.
    pub fn node_of(&self, device: &DeviceId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| &n.space().identity().device_id() == device)
    }

    /// Queues what node `from`'s session hands out to every other node (a
    /// welcome to its device only).
    pub fn flush(&mut self, from: usize) {
        let s = &mut self.nodes[from].session;
        s.flush().expect("flush");
        // No device-local store in the simulation.
        while s.poll_persist().is_some() {}
        let out: Vec<Outgoing> = std::iter::from_fn(|| s.poll_direct()).collect();
        for o in out {
            match o {
                Outgoing::Envelope(b) => self.broadcast(from, Item::Envelope(b)),
                Outgoing::KeyMessage(b) => self.broadcast(from, Item::KeyMessage(b)),
                Outgoing::Welcome { device_id, bytes } => {
                    if let Some(to) = self.node_of(&device_id) {
                        self.queue.push((to, Item::Welcome(bytes)));
                    }
                }
            }
        }
    }

    /// Queues every node's outbox.
    pub fn flush_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.flush(i);
        }
    }

    /// Queues `item` from `from` to every other node.
    pub fn broadcast(&mut self, from: usize, item: Item) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.queue.push((to, item.clone()));
            }
        }
    }

    /// Queues `item` to one node.
    pub fn send(&mut self, to: usize, item: Item) {
        self.queue.push((to, item));
    }

    /// Drops every queued item for node `to`: what storage withheld or lost.
    pub fn drop_queued_to(&mut self, to: usize) {
        self.queue.retain(|(t, _)| *t != to);
    }

    /// Hands `item` to node `to` now.
    pub fn deliver(&mut self, to: usize, item: &Item) {
        let s = &mut self.nodes[to].session;
        match item {
            Item::Envelope(b) => {
                s.handle_envelope(b);
            }
            Item::KeyMessage(b) => {
                let _ = s.handle_key_message(b);
            }
            Item::Welcome(b) => {
                let _ = s.handle_welcome(b);
            }
        }
    }

    /// Delivers queued items to online nodes in a random order (with random
    /// duplicates) until none is deliverable.
    pub fn run_random(&mut self) {
        loop {
            let ready: Vec<usize> = (0..self.queue.len())
                .filter(|i| !self.offline[self.queue[*i].0])
                .collect();
            if ready.is_empty() {
                break;
            }
            let pick = ready[index(&mut self.rng, ready.len())];
            let (to, item) = self.queue.swap_remove(pick);
            self.deliver(to, &item);
            if chance(&mut self.rng, self.duplicate) {
                self.queue.push((to, item));
            }
        }
    }

    /// Every online node sends everything it has (envelopes, key messages) to
    /// every other online node: a reliable sync, in random order.
    pub fn full_sync(&mut self) {
        for from in 0..self.nodes.len() {
            if self.offline[from] {
                continue;
            }
            let kms = self.nodes[from].space().key_messages();
            let envs = self.nodes[from].space().envelopes();
            for to in 0..self.nodes.len() {
                if to != from {
                    for k in &kms {
                        self.queue.push((to, Item::KeyMessage(k.clone())));
                    }
                    for e in &envs {
                        self.queue.push((to, Item::Envelope(e.clone())));
                    }
                }
            }
        }
        self.run_random();
    }

    /// Honest follow-ups until quiescence: each of `actors` runs its session's
    /// follow-ups (the one policy: admissions, acknowledgements, healing
    /// rotations, welcomes) with the network's admission policy and randomness,
    /// then a reliable full sync, until nobody writes anything.
    pub fn settle(&mut self, actors: &[usize]) {
        for _ in 0..32 {
            self.flush_all();
            self.run_random();
            self.full_sync();
            let mut progress = false;
            for &a in actors {
                if self.offline[a] {
                    continue;
                }
                let s = &mut self.nodes[a].session;
                s.set_admission(self.admission.clone());
                if s.follow_up_with(&mut self.crypto, None)
                    .is_ok_and(|f| f.wrote())
                {
                    progress = true;
                }
                self.flush(a);
                self.run_random();
            }
            if !progress {
                self.full_sync();
                return;
            }
        }
        panic!("membership did not settle in 32 rounds");
    }

    /// The verdict every node in `nodes` gives each operation any of them decided.
    pub fn verdicts(&self, node: usize) -> BTreeMap<[u8; 32], Verdict> {
        self.nodes[node].space().decided().into_iter().collect()
    }

    /// Asserts that `nodes` have identical resolved states, verdicts, current
    /// epochs and authenticators, and hold nothing unopened.
    pub fn assert_converged(&self, nodes: &[usize]) -> State {
        let first = nodes[0];
        let s0 = self.nodes[first].space().state().clone();
        let v0 = self.verdicts(first);
        let e0 = self.nodes[first].space().current_epoch().map(|k| *k.id());
        let a0 = self.nodes[first].space().authenticator();
        for &n in nodes {
            let sp = self.nodes[n].space();
            assert_eq!(
                sp.held_count(),
                0,
                "{} holds envelopes it cannot open",
                self.nodes[n].name
            );
            assert_eq!(
                sp.state(),
                &s0,
                "{} resolved another state",
                self.nodes[n].name
            );
            assert_eq!(
                self.verdicts(n),
                v0,
                "{} gave other verdicts",
                self.nodes[n].name
            );
            assert_eq!(
                sp.current_epoch().map(|k| *k.id()),
                e0,
                "{} has another current epoch (or lacks its key)",
                self.nodes[n].name
            );
            assert_eq!(
                sp.authenticator(),
                a0,
                "{} authenticator",
                self.nodes[n].name
            );
        }
        assert!(e0.is_some(), "no usable current epoch");
        s0
    }

    /// The user key of node `n`.
    pub fn user_key(&self, n: usize) -> [u8; 32] {
        self.nodes[n].user.public_bytes()
    }

    /// The device id of node `n`.
    pub fn device_id(&self, n: usize) -> DeviceId {
        self.nodes[n].space().identity().device_id()
    }

    /// Certifies a device of the user of node `n` (for forgery tests).
    pub fn certify(&mut self, user: &SigningKey) -> (DeviceKeys, Vec<u8>) {
        let d = DeviceKeys::generate(&mut self.crypto);
        let c = identity::issue_certificate(user, &d).expect("cert");
        (d, c)
    }
}
