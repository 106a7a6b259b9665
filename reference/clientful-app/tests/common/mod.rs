//! A small cluster for the application stories: replicas of one document over
//! the simulator's seeded lossy network (drops, duplicates, delays), devices that
//! go offline, and the reliable heal (sync exchanges until quiescent).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clientful_doc::testkit::{World, insert_text};
use clientful_doc::{CrdtKind, Replica};
use clientful_sim::net::{LinkFaults, Network, Payload};
use clientful_sim::sync::sync_all;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// The app's merge hook: runs on a replica after it received something.
pub type Hook = Box<dyn Fn(usize, &mut Replica)>;

pub struct Cluster {
    pub world: World,
    pub replicas: Vec<Replica>,
    pub online: Vec<bool>,
    pub net: Network,
    pub rng: ChaCha20Rng,
    /// Called on a replica after each delivery it receives (the app's merge hook).
    pub hook: Option<Hook>,
}

impl Cluster {
    pub fn new(seed: u64, n: usize, crdt: CrdtKind) -> Self {
        let world = World::new(seed, n, crdt);
        let replicas = (0..n).map(|i| world.replica(i)).collect();
        Cluster {
            world,
            replicas,
            online: vec![true; n],
            net: Network::new(
                seed ^ 0x5eed,
                LinkFaults {
                    drop: 0.2,
                    duplicate: 0.1,
                    max_delay: 3,
                },
            ),
            rng: ChaCha20Rng::seed_from_u64(seed),
            hook: None,
        }
    }

    pub fn r(&mut self, i: usize) -> &mut Replica {
        &mut self.replicas[i]
    }

    /// Sends what `i` has committed to every other replica, if `i` is online
    /// (an offline device keeps its outbox).
    pub fn broadcast(&mut self, i: usize) {
        if !self.online[i] {
            return;
        }
        let out = self.replicas[i].drain_outbox();
        for (_, bytes) in out {
            for j in 0..self.replicas.len() {
                if j != i {
                    self.net.send(i, j, Payload::Envelope(bytes.clone()));
                }
            }
        }
    }

    /// Advances the network `steps` steps, delivering what is due to online
    /// replicas (messages to offline ones are lost), broadcasting after hooks.
    pub fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            let t = self.net.now() + 1;
            self.net.set_time(t);
            for m in self.net.due() {
                if !self.online[m.to] {
                    continue;
                }
                if let Payload::Envelope(b) = m.payload {
                    self.replicas[m.to].receive(&b);
                    if let Some(h) = &self.hook {
                        h(m.to, &mut self.replicas[m.to]);
                        self.broadcast(m.to);
                    }
                }
            }
        }
    }

    /// Runs a random number of steps in `1..=max`.
    pub fn run_random(&mut self, max: u64) {
        let k = 1 + self.rng.next_u64() % max;
        self.run(k);
    }

    /// A random insert at a random position, committed and broadcast.
    pub fn random_edit(&mut self, i: usize, word: &str) {
        let len = clientful_sim::edit::text(&mut self.replicas[i])
            .encode_utf16()
            .count() as u64;
        let at = (self.rng.next_u64() % (len + 1)) as u32;
        insert_text(&mut self.replicas[i], at, word).unwrap();
        self.replicas[i].commit().unwrap();
        self.broadcast(i);
    }

    /// Appends `word` to the text, committed and broadcast (appends never split
    /// each other, so each word stays whole).
    pub fn append_edit(&mut self, i: usize, word: &str) {
        let len = clientful_sim::edit::text(&mut self.replicas[i])
            .encode_utf16()
            .count() as u32;
        insert_text(&mut self.replicas[i], len, word).unwrap();
        self.replicas[i].commit().unwrap();
        self.broadcast(i);
    }

    pub fn set_online(&mut self, i: usize, online: bool) {
        self.online[i] = online;
        if online {
            self.broadcast(i);
        }
    }

    /// Everyone online, every outbox sent, the network healed, then sync
    /// exchanges between every pair until quiescent; the hook runs on every
    /// replica after each round (its writes are synced in the next one).
    pub fn heal(&mut self) {
        for i in 0..self.replicas.len() {
            self.online[i] = true;
            let _ = self.replicas[i].drain_outbox();
        }
        self.net.heal();
        for _ in 0..6 {
            sync_all(&mut self.replicas, 64).expect("sync");
            let mut wrote = false;
            if let Some(h) = &self.hook {
                for (i, r) in self.replicas.iter_mut().enumerate() {
                    let before = r.history_digest();
                    h(i, r);
                    wrote |= r.history_digest() != before;
                    let _ = r.drain_outbox();
                }
            }
            if !wrote {
                return;
            }
        }
        panic!("the merge hook kept writing after 6 rounds: repairs fight");
    }

    pub fn assert_converged(&mut self) {
        let d0 = self.replicas[0].state_digest();
        let h0 = self.replicas[0].history_digest();
        for i in 1..self.replicas.len() {
            assert_eq!(
                self.replicas[i].history_digest(),
                h0,
                "history of replica {i}"
            );
            assert_eq!(
                self.replicas[i].state_digest(),
                d0,
                "state of replica {i}: {} vs {}",
                self.replicas[i].materialize().to_canonical_string(),
                self.replicas[0].materialize().to_canonical_string()
            );
        }
    }
}

pub fn crdts() -> [CrdtKind; 2] {
    [CrdtKind::Yjs, CrdtKind::Automerge]
}
