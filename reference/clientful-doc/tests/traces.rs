//! Real editing traces (josephg/editing-traces, CC BY 4.0, see
//! `test-data/editing-traces/ATTRIBUTION.md`) replayed through Clientful envelopes, on
//! Yjs and on Automerge replicas.
//!
//! - `automerge-paper` (259,778 single-character edits by one writer): replica A makes
//!   every edit with the CRDT's own API and commits every [`BATCH`] edits (one envelope
//!   per batch, as a debounce window would); each envelope goes to replica B at once and
//!   must be applied. Both replicas end with the trace's `endContent` and equal digests.
//! - `friendsforever` (26,078 keystrokes by two people typing at the same time): each
//!   agent has its own replica. A transaction is applied on its agent's replica once
//!   exactly its `parents` have been delivered there: the other agent's envelopes are
//!   delivered lazily, only up to what the parents require, so the replicas really edit
//!   concurrently and the CRDTs merge. Then everything is delivered and both replicas
//!   must hold `endContent`.
//!
//! `CLIENTFUL_TRACE_UNBATCHED=1` commits after every single edit instead (one envelope
//! per edit: 259,778 envelopes for `automerge-paper`). That is a soak run, not part of
//! CI: `CLIENTFUL_TRACE_UNBATCHED=1 cargo test -p clientful-doc --test traces --release`
//! (Automerge's `apply_changes` costs ~15 ms per change once the document is large, so
//! the Automerge half takes about an hour).
//!
//! Dev-profile times on 2 cores (batched): Yjs 8 s (`automerge-paper`) and 4 s
//! (`friendsforever`); Automerge 70 s and 60 s, spent in Automerge's `apply_changes` on
//! the receiving replica. This needs `debug-assertions = false` for the automerge
//! package (root `Cargo.toml`): its debug assertions re-check the op set on every edit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use clientful_doc::binding;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition, Replica};
use serde::Deserialize;
use yrs::{GetString, Text, TextRef, Transact};

/// Edits per envelope in the batched replay of the sequential trace.
const BATCH: usize = 64;

/// The environment variable that switches to one envelope per edit.
const UNBATCHED_VAR: &str = "CLIENTFUL_TRACE_UNBATCHED";

fn unbatched() -> bool {
    std::env::var(UNBATCHED_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

// ------------------------------------------------------------------ trace files

/// `[position, deleted, inserted]`; position and count in Unicode code points.
#[derive(Debug, Deserialize)]
struct Patch(usize, usize, String);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SequentialTrace {
    start_content: String,
    end_content: String,
    txns: Vec<SequentialTxn>,
}

#[derive(Debug, Deserialize)]
struct SequentialTxn {
    patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConcurrentTrace {
    kind: String,
    end_content: String,
    num_agents: usize,
    txns: Vec<ConcurrentTxn>,
}

#[derive(Debug, Deserialize)]
struct ConcurrentTxn {
    parents: Vec<usize>,
    agent: usize,
    patches: Vec<Patch>,
}

fn trace_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test-data/editing-traces")
        .join(name)
}

fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = trace_path(name);
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

/// Whether every inserted string is in the Basic Multilingual Plane: then a position in
/// code points is also a position in UTF-16 code units (the unit both CRDTs use here),
/// and the replay can pass trace positions straight through.
fn all_bmp<'a>(mut inserted: impl Iterator<Item = &'a str>) -> bool {
    inserted.all(|s| s.chars().all(|c| c.len_utf16() == 1))
}

/// Converts `[pos, pos + del)` in code points of `text` to UTF-16 code units.
fn utf16_range(text: &str, pos: usize, del: usize) -> (usize, usize) {
    let mut chars = text.chars();
    let start: usize = chars.by_ref().take(pos).map(char::len_utf16).sum();
    let len: usize = chars.take(del).map(char::len_utf16).sum();
    (start, len)
}

// ------------------------------------------------------------------ editing

/// Edits the `text` root of one replica through the CRDT's own API, with UTF-16
/// offsets (yrs is configured with `OffsetKind::Utf16`, Automerge with
/// `TextEncoding::Utf16CodeUnit`).
struct Editor {
    replica: Replica,
    yjs_text: Option<TextRef>,
    am_text: Option<automerge::ObjId>,
    /// Positions are code points that must be converted (a non-BMP trace).
    convert: bool,
}

impl Editor {
    fn new(replica: Replica, convert: bool) -> Self {
        let yjs_text = replica.yjs().map(|y| y.text("text"));
        Editor {
            replica,
            yjs_text,
            am_text: None,
            convert,
        }
    }

    fn am_text(&mut self) -> automerge::ObjId {
        if let Some(id) = &self.am_text {
            return id.clone();
        }
        let doc = self.replica.automerge_mut().unwrap().doc_mut();
        let id = match doc.get(automerge::ROOT, "text").unwrap() {
            Some((automerge::Value::Object(ObjType::Text), id)) => id,
            Some(other) => panic!("`text` is not a text object: {other:?}"),
            None => doc
                .put_object(automerge::ROOT, "text", ObjType::Text)
                .unwrap(),
        };
        self.am_text = Some(id.clone());
        id
    }

    /// One patch of the trace, in its own CRDT transaction.
    fn splice(&mut self, pos: usize, del: usize, ins: &str) {
        let (pos, del) = if self.convert {
            utf16_range(&self.text(), pos, del)
        } else {
            (pos, del)
        };
        if let Some(t) = &self.yjs_text {
            let y = self.replica.yjs().unwrap();
            let mut txn = y.doc().transact_mut();
            let p = u32::try_from(pos).unwrap();
            if del > 0 {
                t.remove_range(&mut txn, p, u32::try_from(del).unwrap());
            }
            if !ins.is_empty() {
                t.insert(&mut txn, p, ins);
            }
        } else {
            let text = self.am_text();
            let doc = self.replica.automerge_mut().unwrap().doc_mut();
            doc.splice_text(&text, pos, isize::try_from(del).unwrap(), ins)
                .unwrap();
        }
    }

    fn text(&mut self) -> String {
        if let Some(t) = &self.yjs_text {
            let y = self.replica.yjs().unwrap();
            return t.get_string(&y.doc().transact());
        }
        let doc = self.replica.automerge_mut().unwrap().doc_mut();
        match doc.get(automerge::ROOT, "text").unwrap() {
            Some((_, id)) => doc.text(&id).unwrap(),
            None => String::new(),
        }
    }

    /// Commits the pending local edits; returns the sealed envelope, if any.
    fn commit(&mut self) -> Option<Vec<u8>> {
        self.replica.commit().unwrap()?;
        let mut out = self.replica.drain_outbox();
        assert_eq!(out.len(), 1, "one commit, one envelope");
        out.pop().map(|(_, bytes)| bytes)
    }
}

fn deliver(to: &mut Replica, envelope: &[u8]) {
    let d = to.receive(envelope);
    assert!(matches!(d, Disposition::Applied { .. }), "{d:?}");
}

fn assert_converged(a: &mut Editor, b: &mut Editor, expected: &str) {
    for (name, e) in [("A", &mut *a), ("B", &mut *b)] {
        let text = e.text();
        assert!(
            text == expected,
            "replica {name}: text differs from endContent ({} vs {} chars)",
            text.chars().count(),
            expected.chars().count()
        );
        assert_eq!(e.replica.apply_errors(), 0, "replica {name}: apply errors");
    }
    assert_eq!(a.replica.state_digest(), b.replica.state_digest());
    assert_eq!(a.replica.history_digest(), b.replica.history_digest());
    assert_eq!(a.replica.heads(), b.replica.heads());
}

// ------------------------------------------------------------------ sequential

fn replay_sequential(crdt: CrdtKind) {
    let started = Instant::now();
    let trace: SequentialTrace = load("automerge-paper.json.gz");
    assert!(trace.start_content.is_empty());
    assert_eq!(trace.txns.len(), 259_778);
    let convert = !all_bmp(
        trace
            .txns
            .iter()
            .flat_map(|t| t.patches.iter().map(|p| p.2.as_str())),
    );
    let loaded = started.elapsed();

    let world = World::new(0x7472_6163, 2, crdt);
    let mut a = Editor::new(world.replica(0), convert);
    let mut b = Editor::new(world.replica(1), convert);
    let batch = if unbatched() { 1 } else { BATCH };
    let (mut edits, mut envelopes) = (0usize, 0usize);
    for txn in &trace.txns {
        for Patch(pos, del, ins) in &txn.patches {
            a.splice(*pos, *del, ins);
            edits += 1;
            if edits.is_multiple_of(batch)
                && let Some(env) = a.commit()
            {
                deliver(&mut b.replica, &env);
                envelopes += 1;
            }
        }
    }
    if let Some(env) = a.commit() {
        deliver(&mut b.replica, &env);
        envelopes += 1;
    }
    assert_eq!(edits, 259_778);
    assert_eq!(envelopes, edits.div_ceil(batch));
    assert_converged(&mut a, &mut b, &trace.end_content);
    eprintln!(
        "automerge-paper on {crdt:?}: {edits} edits, {envelopes} envelopes (batch {batch}), \
         load {loaded:.2?}, total {:.2?}",
        started.elapsed()
    );
}

#[test]
fn yjs_replays_automerge_paper() {
    replay_sequential(CrdtKind::Yjs);
}

#[test]
fn automerge_replays_automerge_paper() {
    replay_sequential(CrdtKind::Automerge);
}

// ------------------------------------------------------------------ concurrent

/// The device that plays each agent: agent `k` is the device with the `k`-th smallest
/// bound CRDT actor (Yjs client id, Automerge actor id).
///
/// The order matters. The trace promises no concurrent inserts at the same place, but it
/// has concurrent inserts into the same gap *across a deleted character*: after txn
/// 22359, agent 0 replaces the character at 3798 (txns 22364..22368: delete it, type
/// `", hu"`) while agent 1 types `" The"` right after that character (txns 22360..).
/// Where the two runs land relative to each other is a CRDT tie-break on actor ids, and
/// later positions in the trace assume the order the recording editor chose. Yjs (JS
/// `yjs` and `yrs` alike) reproduces `endContent` only when agent 0 has the smaller
/// client id; with the client ids swapped both replicas still converge, to a text that
/// differs from `endContent`. Automerge actors are hashes of device keys (and Yjs client
/// ids follow the device index, DOC-19), so the assignment is chosen here rather than
/// left to the seed.
fn agent_devices(world: &World, crdt: CrdtKind) -> Vec<usize> {
    let mut devices: Vec<(Vec<u8>, usize)> = (0..world.device_seeds.len())
        .map(|i| {
            let key = world.device(i).public_bytes();
            let actor = match crdt {
                CrdtKind::Yjs => world.yjs_client_id(i, 0).to_be_bytes().to_vec(),
                CrdtKind::Automerge => binding::automerge_actor(&key, &world.doc_id).to_vec(),
            };
            (actor, i)
        })
        .collect();
    devices.sort();
    devices.into_iter().map(|(_, i)| i).collect()
}

fn replay_concurrent(crdt: CrdtKind) {
    let started = Instant::now();
    let trace: ConcurrentTrace = load("friendsforever.json.gz");
    assert_eq!(trace.kind, "concurrent");
    assert_eq!(trace.num_agents, 2);
    assert_eq!(trace.txns.len(), 26_078);
    let convert = !all_bmp(
        trace
            .txns
            .iter()
            .flat_map(|t| t.patches.iter().map(|p| p.2.as_str())),
    );

    let world = World::new(0x6672_6965, trace.num_agents, crdt);
    let mut eds: Vec<Editor> = agent_devices(&world, crdt)
        .into_iter()
        .map(|i| Editor::new(world.replica(i), convert))
        .collect();
    // sent[x]: the envelopes agent x has sealed, in chain order.
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); trace.num_agents];
    // delivered[to][from]: how many of `from`'s envelopes `to` has received.
    let mut delivered = vec![vec![0usize; trace.num_agents]; trace.num_agents];
    // after[i]: how many envelopes txn i's agent had sealed once txn i was committed.
    let mut after = vec![0usize; trace.txns.len()];
    let mut concurrent_txns = 0usize;
    let per_patch = unbatched();

    for (i, txn) in trace.txns.iter().enumerate() {
        let me = txn.agent;
        assert!(me < trace.num_agents);
        // Deliver exactly what the parents require. The upstream rules guarantee
        // parents point to earlier txns and each agent's txns are totally ordered, so
        // the causal past of a parent by another agent is a prefix of that agent's
        // chain plus txns of `me` already applied here.
        for &p in &txn.parents {
            assert!(p < i, "txn {i}: parent {p} is not earlier");
            let from = trace.txns[p].agent;
            if from == me {
                continue;
            }
            let need = after[p];
            while delivered[me][from] < need {
                let env = &sent[from][delivered[me][from]];
                deliver(&mut eds[me].replica, env);
                delivered[me][from] += 1;
            }
        }
        // Concurrent: the other agents have sealed envelopes this replica has not seen.
        if (0..trace.num_agents).any(|x| x != me && delivered[me][x] < sent[x].len()) {
            concurrent_txns += 1;
        }
        for Patch(pos, del, ins) in &txn.patches {
            eds[me].splice(*pos, *del, ins);
            if per_patch && let Some(env) = eds[me].commit() {
                sent[me].push(env);
            }
        }
        if let Some(env) = eds[me].commit() {
            sent[me].push(env);
        }
        after[i] = sent[me].len();
    }
    // Deliver everything that is left.
    for to in 0..trace.num_agents {
        for from in 0..trace.num_agents {
            if from == to {
                continue;
            }
            while delivered[to][from] < sent[from].len() {
                deliver(&mut eds[to].replica, &sent[from][delivered[to][from]]);
                delivered[to][from] += 1;
            }
        }
    }
    assert!(
        concurrent_txns > 1000,
        "the replay should be concurrent: {concurrent_txns} txns"
    );
    let (a, rest) = eds.split_first_mut().unwrap();
    for b in rest {
        assert_converged(a, b, &trace.end_content);
    }
    eprintln!(
        "friendsforever on {crdt:?}: {} txns, {} envelopes, {concurrent_txns} txns made \
         while the other agent had unseen edits, total {:.2?}",
        trace.txns.len(),
        sent.iter().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
}

#[test]
fn yjs_replays_friendsforever_concurrently() {
    replay_concurrent(CrdtKind::Yjs);
}

#[test]
fn automerge_replays_friendsforever_concurrently() {
    replay_concurrent(CrdtKind::Automerge);
}

#[test]
fn utf16_conversion_counts_surrogate_pairs() {
    assert_eq!(utf16_range("a🌍bc", 2, 1), (3, 1));
    assert_eq!(utf16_range("a🌍bc", 1, 2), (1, 3));
    assert!(all_bmp(["héllo", "中文"].into_iter()));
    assert!(!all_bmp(["ok", "🌍"].into_iter()));
}
