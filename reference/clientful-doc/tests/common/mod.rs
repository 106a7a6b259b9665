//! Helpers shared by the restore tests (`preopened_restore.rs`,
//! `received_restore.rs`): an honest history and random tampering of it.

use clientful_core::envelope;
use clientful_doc::testkit::{World, insert_text};
use clientful_doc::{CrdtKind, Replica};
use proptest::prelude::*;

/// A history of `rounds` rounds in which each of three devices edits and
/// exchanges its envelopes with the others (concurrent heads, many authors).
pub fn history(seed: u64, crdt: CrdtKind, rounds: usize) -> (World, Vec<Vec<u8>>) {
    let w = World::new(seed, 3, crdt);
    let mut rs: Vec<Replica> = (0..3).map(|i| w.replica(i)).collect();
    let mut all = Vec::new();
    for round in 0..rounds {
        let mut sent = Vec::new();
        for (i, r) in rs.iter_mut().enumerate() {
            insert_text(r, 0, &format!("{i}:{round} ")).unwrap();
            r.commit().unwrap();
            sent.extend(r.drain_outbox().into_iter().map(|(_, e)| e));
        }
        // Device 2 only hears every other round: more concurrency.
        for (i, r) in rs.iter_mut().enumerate() {
            if i == 2 && round % 2 == 1 {
                continue;
            }
            for e in &sent {
                r.receive(e);
            }
        }
        all.extend(sent);
    }
    (w, all)
}

#[derive(Debug, Clone)]
pub enum Tamper {
    FlipBit(usize, u8),
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Truncate(usize, usize),
}

pub fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Tamper::FlipBit(i, b)),
        any::<usize>().prop_map(Tamper::Drop),
        any::<usize>().prop_map(Tamper::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Truncate(a, b)),
    ]
}

pub fn apply(envs: &mut Vec<Vec<u8>>, t: &Tamper) {
    if envs.is_empty() {
        return;
    }
    let n = envs.len();
    match *t {
        Tamper::FlipBit(i, b) => {
            let e = &mut envs[i % n];
            let len = e.len();
            if len > 0 {
                // Mostly the signature and payload tail, sometimes anywhere.
                let at = if i % 3 == 0 {
                    i / 3 % len
                } else {
                    len - 1 - (i / 3 % 96.min(len))
                };
                e[at] ^= 1 << b;
            }
        }
        Tamper::Drop(i) => {
            envs.remove(i % n);
        }
        Tamper::Duplicate(i) => {
            let e = envs[i % n].clone();
            envs.push(e);
        }
        Tamper::Swap(a, b) => envs.swap(a % n, b % n),
        Tamper::Truncate(i, k) => {
            let e = &mut envs[i % n];
            let keep = k % (e.len() + 1);
            e.truncate(keep);
        }
    }
}

/// Everything two restore paths must agree on.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdicts: Vec<String>,
    pub state: [u8; 32],
    pub history: [u8; 32],
    pub heads: Vec<[u8; 32]>,
    pub apply_errors: u64,
}

pub fn outcome(r: &mut Replica, envs: &[Vec<u8>]) -> Outcome {
    let verdicts = envs
        .iter()
        .map(|e| match envelope::decode(e) {
            Ok(d) => format!("{:?}", r.verdict(&d.id)),
            Err(_) => "undecodable".into(),
        })
        .collect();
    Outcome {
        verdicts,
        state: r.state_digest(),
        history: r.history_digest(),
        heads: r.heads(),
        apply_errors: r.apply_errors(),
    }
}
