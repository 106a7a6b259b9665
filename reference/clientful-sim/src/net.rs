//! The simulated network: a seeded, lossy, reordering message queue in logical
//! time, with partitions.
//!
//! Every message gets a delivery time `now + 1 + delay` with a random delay, so
//! messages overtake each other. A message may be dropped or duplicated (the copy
//! gets its own delay). A partition splits the nodes into two sides for an
//! interval; a message whose endpoints are on different sides at delivery time is
//! lost. Nothing here reads a clock or spawns a thread: the same seed gives the same
//! deliveries in the same order.

use std::collections::BTreeMap;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::rng::{below, chance};

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A raw envelope broadcast (from `drain_outbox`, or forged).
    Envelope(Vec<u8>),
    /// A sync-exchange message between two peers.
    Sync(Vec<u8>),
}

/// A message in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sender node index.
    pub from: usize,
    /// Receiver node index.
    pub to: usize,
    /// Contents.
    pub payload: Payload,
}

/// Transport faults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Largest extra delay in steps (0: every message takes exactly one step).
    pub max_delay: u64,
}

/// A network partition: `side[i]` tells which side node `i` is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Side of each node.
    pub side: Vec<bool>,
    /// First step of the partition.
    pub from: u64,
    /// First step after the partition.
    pub until: u64,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages lost by the drop fault.
    pub dropped: u64,
    /// Extra copies made by the duplicate fault.
    pub duplicated: u64,
    /// Messages lost to a partition.
    pub partitioned: u64,
    /// Messages handed to their receiver.
    pub delivered: u64,
    /// Partitions started.
    pub partitions: u64,
}

/// The network. See the module documentation.
#[derive(Debug)]
pub struct Network {
    rng: ChaCha20Rng,
    faults: LinkFaults,
    now: u64,
    next_id: u64,
    in_flight: BTreeMap<(u64, u64), Message>,
    partitions: Vec<Partition>,
    /// Counters.
    pub stats: NetStats,
}

impl Network {
    /// A network whose faults are drawn from `seed`.
    pub fn new(seed: u64, faults: LinkFaults) -> Self {
        Network {
            rng: ChaCha20Rng::seed_from_u64(seed),
            faults,
            now: 0,
            next_id: 0,
            in_flight: BTreeMap::new(),
            partitions: Vec::new(),
            stats: NetStats::default(),
        }
    }

    /// The current logical time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Advances logical time to `t`.
    pub fn set_time(&mut self, t: u64) {
        self.now = t;
        let now = self.now;
        self.partitions.retain(|p| p.until > now);
    }

    /// Replaces the link faults (the heal makes the network reliable).
    pub fn set_faults(&mut self, faults: LinkFaults) {
        self.faults = faults;
    }

    fn enqueue(&mut self, msg: Message) {
        let delay = if self.faults.max_delay == 0 {
            0
        } else {
            below(&mut self.rng, self.faults.max_delay + 1)
        };
        let at = self.now + 1 + delay;
        self.in_flight.insert((at, self.next_id), msg);
        self.next_id += 1;
    }

    /// Sends a message, subject to the drop and duplicate faults.
    pub fn send(&mut self, from: usize, to: usize, payload: Payload) {
        self.stats.sent += 1;
        if chance(&mut self.rng, self.faults.drop) {
            self.stats.dropped += 1;
            return;
        }
        if chance(&mut self.rng, self.faults.duplicate) {
            self.stats.duplicated += 1;
            self.enqueue(Message {
                from,
                to,
                payload: payload.clone(),
            });
        }
        self.enqueue(Message { from, to, payload });
    }

    /// Starts a partition.
    pub fn partition(&mut self, side: Vec<bool>, from: u64, until: u64) {
        self.stats.partitions += 1;
        self.partitions.push(Partition { side, from, until });
    }

    /// Whether `a` and `b` are cut off from each other now.
    pub fn partitioned(&self, a: usize, b: usize) -> bool {
        self.partitions
            .iter()
            .any(|p| p.from <= self.now && self.now < p.until && p.side.get(a) != p.side.get(b))
    }

    /// The messages due now, in delivery order, minus those a partition cuts.
    pub fn due(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let msg = entry.remove();
            if self.partitioned(msg.from, msg.to) {
                self.stats.partitioned += 1;
            } else {
                self.stats.delivered += 1;
                out.push(msg);
            }
        }
        out
    }

    /// Messages still in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The heal: removes every partition and discards what is still in flight
    /// (the reliable sync phase takes over). Returns how many were discarded.
    pub fn heal(&mut self) -> usize {
        self.partitions.clear();
        let n = self.in_flight.len();
        self.in_flight.clear();
        n
    }
}
