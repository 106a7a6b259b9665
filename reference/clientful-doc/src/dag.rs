//! The envelope DAG of one document (spec §8.5): integrated envelopes, heads,
//! per-author chains, equivocation evidence and which envelopes it excludes
//! (DOC-9, DOC-20), the bounded buffer of envelopes whose predecessors are
//! missing, and the record of rejected envelopes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use clientful_core::ErrorClass;
use clientful_core::envelope::EnvelopeId;

use crate::crdt::ActorProgress;

/// Most envelopes the missing-predecessor buffer holds (DOC-8).
pub const MAX_PENDING: usize = 4096;
/// Most buffered envelopes of one author (DOC-8).
pub const MAX_PENDING_PER_AUTHOR: usize = 1024;
/// Most bytes the buffer holds (DOC-8).
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// Most buffered bytes of one author (DOC-8).
pub const MAX_PENDING_BYTES_PER_AUTHOR: usize = 16 * 1024 * 1024;
/// Most rejected ids remembered (so their descendants are rejected too).
pub const MAX_REJECTED: usize = 65_536;

/// An opened envelope, as the DAG keeps it.
#[derive(Debug, Clone)]
pub struct Node {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Author device key.
    pub author: [u8; 32],
    /// Sequence number in the author's chain.
    pub seq: u64,
    /// The author's previous envelope.
    pub prev: Option<EnvelopeId>,
    /// Causal predecessors.
    pub preds: Vec<EnvelopeId>,
    /// Content type.
    pub content_type: u32,
    /// Decrypted content body.
    pub body: Vec<u8>,
    /// The envelope exactly as received (for sync and persistence).
    pub bytes: Vec<u8>,
    /// The author's CRDT progress after this envelope.
    pub progress: ActorProgress,
}

impl Node {
    /// `preds` and `prev`: every envelope this one depends on.
    pub fn deps(&self) -> impl Iterator<Item = &EnvelopeId> {
        self.preds.iter().chain(self.prev.iter())
    }
}

/// What DOC-20 tracks about one equivocating author.
#[derive(Debug, Default, Clone)]
struct Witnesses {
    /// Per integrated envelope whose causal past holds envelopes of the author:
    /// those of them no other one has on its `prev` chain.
    tips: HashMap<EnvelopeId, Vec<EnvelopeId>>,
    /// The author's envelopes in the causal past of an innocent witness.
    witnessed: HashSet<EnvelopeId>,
    /// Witnessed envelopes by seq.
    by_seq: BTreeMap<u64, BTreeSet<EnvelopeId>>,
    /// The lowest seq with two witnessed envelopes.
    conflict: Option<u64>,
}

/// The DAG state.
#[derive(Debug, Default)]
pub struct Dag {
    /// Integrated envelopes by id.
    pub nodes: HashMap<EnvelopeId, Node>,
    /// Integration order (a topological order).
    pub order: Vec<EnvelopeId>,
    /// Integrated envelopes no other integrated envelope depends on.
    pub heads: BTreeSet<EnvelopeId>,
    /// Per author: seq -> ids at that seq (more than one is equivocation).
    pub chains: HashMap<[u8; 32], BTreeMap<u64, Vec<EnvelopeId>>>,
    /// Equivocating authors and the lowest seq at which they forked.
    pub forks: BTreeMap<[u8; 32], u64>,
    /// Per equivocating author, the causal facts DOC-20 keeps from them.
    witnesses: BTreeMap<[u8; 32], Witnesses>,
    /// Buffered envelopes and what they still miss.
    pub pending: HashMap<EnvelopeId, (Node, BTreeSet<EnvelopeId>)>,
    /// Missing id -> buffered envelopes waiting for it.
    pub waiting: HashMap<EnvelopeId, Vec<EnvelopeId>>,
    /// Buffered count per author.
    pub pending_per_author: HashMap<[u8; 32], usize>,
    /// Buffered bytes.
    pub pending_bytes: usize,
    /// Buffered bytes per author.
    pub pending_bytes_per_author: HashMap<[u8; 32], usize>,
    /// Authenticated envelopes rejected by the document rules, with their class.
    pub rejected: HashMap<EnvelopeId, ErrorClass>,
    /// Envelopes whose predecessors are integrated but whose Yjs insertions use
    /// a device index the membership does not assign to the author yet
    /// (DOC-22): they wait for the membership, not for envelopes.
    pub awaiting: BTreeMap<EnvelopeId, Node>,
    rejected_order: VecDeque<EnvelopeId>,
}

impl Dag {
    /// Whether `id` is integrated, buffered, awaiting its index or rejected.
    pub fn knows(&self, id: &EnvelopeId) -> bool {
        self.nodes.contains_key(id)
            || self.pending.contains_key(id)
            || self.rejected.contains_key(id)
            || self.awaiting.contains_key(id)
    }

    /// Whether the integrated envelope `id` is excluded from materialization
    /// (DOC-9, DOC-20): its author equivocated at or below its `seq`, and it is
    /// not a witnessed envelope below the author's conflict seq.
    pub fn excluded(&self, id: &EnvelopeId) -> bool {
        let Some(n) = self.nodes.get(id) else {
            return false;
        };
        let Some(fork) = self.forks.get(&n.author) else {
            return false;
        };
        if n.seq < *fork {
            return false;
        }
        self.witnesses
            .get(&n.author)
            .is_none_or(|w| !(w.witnessed.contains(id) && n.seq < w.conflict.unwrap_or(u64::MAX)))
    }

    /// Every integrated envelope that is excluded now (only equivocators'
    /// envelopes can be).
    pub fn excluded_set(&self) -> BTreeSet<EnvelopeId> {
        let mut out = BTreeSet::new();
        for author in self.forks.keys() {
            if let Some(chain) = self.chains.get(author) {
                for id in chain.values().flatten() {
                    if self.excluded(id) {
                        out.insert(*id);
                    }
                }
            }
        }
        out
    }

    /// The conflict seq of an equivocating author (DOC-20): the lowest seq at
    /// which two of its envelopes are witnessed, if any.
    pub fn conflict_seq(&self, author: &[u8; 32]) -> Option<u64> {
        self.witnesses.get(author).and_then(|w| w.conflict)
    }

    /// Whether `older` is `newer` or on `newer`'s `prev` chain.
    fn on_prev_chain(&self, older: &EnvelopeId, newer: &EnvelopeId) -> bool {
        let Some(o) = self.nodes.get(older) else {
            return false;
        };
        let mut cur = self.nodes.get(newer);
        while let Some(n) = cur {
            if n.id == *older {
                return true;
            }
            if n.seq <= o.seq {
                return false;
            }
            cur = n.prev.as_ref().and_then(|p| self.nodes.get(p));
        }
        false
    }

    /// The envelopes of `author` in the causal past of `id` (itself included)
    /// that no other one of them has on its `prev` chain, from the tips of its
    /// dependencies. One tip means the author's envelopes there form one chain.
    fn tips_of(&self, author: &[u8; 32], w: &Witnesses, id: &EnvelopeId) -> Vec<EnvelopeId> {
        let Some(n) = self.nodes.get(id) else {
            return Vec::new();
        };
        let mut all: BTreeSet<EnvelopeId> = BTreeSet::new();
        if n.author == *author {
            all.insert(n.id);
        }
        for d in n.deps() {
            if let Some(t) = w.tips.get(d) {
                all.extend(t.iter().copied());
            }
        }
        let cand: Vec<EnvelopeId> = all.into_iter().collect();
        cand.iter()
            .filter(|e| !cand.iter().any(|o| o != *e && self.on_prev_chain(e, o)))
            .copied()
            .collect()
    }

    /// Updates the witnesses of `author` with the integrated envelope `id`
    /// (its dependencies are done already).
    fn witness(&self, author: &[u8; 32], w: &mut Witnesses, id: &EnvelopeId) {
        let tips = self.tips_of(author, w, id);
        let from_other = self.nodes.get(id).is_some_and(|n| n.author != *author);
        if from_other && let [tip] = tips.as_slice() {
            // An innocent witness: it saw one chain of the author. That chain
            // is witnessed, down to seq 1.
            let mut cur = Some(*tip);
            while let Some(c) = cur {
                if !w.witnessed.insert(c) {
                    break;
                }
                let Some(cn) = self.nodes.get(&c) else { break };
                let at = w.by_seq.entry(cn.seq).or_default();
                at.insert(c);
                if at.len() > 1 {
                    w.conflict = Some(w.conflict.map_or(cn.seq, |x| x.min(cn.seq)));
                }
                cur = cn.prev;
            }
        }
        if !tips.is_empty() {
            w.tips.insert(*id, tips);
        }
    }

    /// Recomputes the witnesses of a newly equivocating author over the whole
    /// DAG, in integration order.
    fn witness_all(&mut self, author: [u8; 32]) {
        let mut w = Witnesses::default();
        for id in &self.order {
            self.witness(&author, &mut w, id);
        }
        self.witnesses.insert(author, w);
    }

    /// Records an authenticated envelope as rejected.
    pub fn reject(&mut self, id: EnvelopeId, class: ErrorClass) {
        if self.rejected.insert(id, class).is_none() {
            self.rejected_order.push_back(id);
            if self.rejected_order.len() > MAX_REJECTED
                && let Some(old) = self.rejected_order.pop_front()
            {
                self.rejected.remove(&old);
            }
        }
    }

    /// Adds a node whose dependencies are all integrated. Returns the seq at which
    /// its author newly forked, if it created equivocation.
    pub fn integrate(&mut self, node: Node) -> Option<u64> {
        let id = node.id;
        let author = node.author;
        for d in node.deps() {
            self.heads.remove(d);
        }
        self.heads.insert(id);
        let at_seq = self
            .chains
            .entry(node.author)
            .or_default()
            .entry(node.seq)
            .or_default();
        at_seq.push(id);
        let forked = at_seq.len() > 1;
        let mut new_fork = None;
        if forked {
            let entry = self.forks.entry(node.author).or_insert(node.seq);
            if node.seq <= *entry {
                *entry = node.seq;
                new_fork = Some(node.seq);
            }
        }
        self.order.push(id);
        self.nodes.insert(id, node);
        // Every author already equivocating learns of this node, whoever wrote
        // it (a node that makes a second author equivocate is still a witness
        // for the first); a newly equivocating author is computed over the
        // whole DAG, this node included.
        let newly = forked && !self.witnesses.contains_key(&author);
        let authors: Vec<[u8; 32]> = self.witnesses.keys().copied().collect();
        for a in authors {
            if let Some(mut w) = self.witnesses.remove(&a) {
                self.witness(&a, &mut w, &id);
                self.witnesses.insert(a, w);
            }
        }
        if newly {
            self.witness_all(author);
        }
        new_fork
    }

    /// Buffers a node that misses `missing`. Fails when a bound would be exceeded.
    pub fn buffer(
        &mut self,
        node: Node,
        missing: BTreeSet<EnvelopeId>,
    ) -> Result<(), &'static str> {
        let per_author = self
            .pending_per_author
            .get(&node.author)
            .copied()
            .unwrap_or(0);
        if self.pending.len() >= MAX_PENDING {
            return Err("missing-predecessor buffer is full");
        }
        if per_author >= MAX_PENDING_PER_AUTHOR {
            return Err("missing-predecessor buffer is full for this author");
        }
        let size = node.bytes.len() + node.body.len();
        if self.pending_bytes + size > MAX_PENDING_BYTES {
            return Err("missing-predecessor buffer is out of bytes");
        }
        let author_bytes = self
            .pending_bytes_per_author
            .get(&node.author)
            .copied()
            .unwrap_or(0);
        if author_bytes + size > MAX_PENDING_BYTES_PER_AUTHOR {
            return Err("missing-predecessor buffer is out of bytes for this author");
        }
        self.pending_bytes_per_author
            .insert(node.author, author_bytes + size);
        for m in &missing {
            self.waiting.entry(*m).or_default().push(node.id);
        }
        self.pending_per_author.insert(node.author, per_author + 1);
        self.pending_bytes += size;
        self.pending.insert(node.id, (node, missing));
        Ok(())
    }

    /// Removes a buffered node.
    pub fn unbuffer(&mut self, id: &EnvelopeId) -> Option<Node> {
        let (node, missing) = self.pending.remove(id)?;
        for m in &missing {
            if let Some(w) = self.waiting.get_mut(m) {
                w.retain(|x| x != id);
                if w.is_empty() {
                    self.waiting.remove(m);
                }
            }
        }
        if let Some(c) = self.pending_per_author.get_mut(&node.author) {
            *c = c.saturating_sub(1);
        }
        self.pending_bytes = self
            .pending_bytes
            .saturating_sub(node.bytes.len() + node.body.len());
        Some(node)
    }

    /// Buffered envelopes that were waiting only for `id`, now that it is resolved
    /// (integrated or rejected); the resolution is recorded on every waiter.
    pub fn resolve(&mut self, id: &EnvelopeId) -> Vec<EnvelopeId> {
        let mut ready = Vec::new();
        for w in self.waiting.remove(id).unwrap_or_default() {
            if let Some((_, missing)) = self.pending.get_mut(&w) {
                missing.remove(id);
                if missing.is_empty() {
                    ready.push(w);
                }
            }
        }
        ready
    }

    /// Every buffered envelope waiting for `id`, whatever else it misses; the
    /// waiting list of `id` is dropped. Used when `id` is rejected: everything that
    /// depends on it is rejected too (DOC-16).
    pub fn take_waiters(&mut self, id: &EnvelopeId) -> Vec<EnvelopeId> {
        self.waiting.remove(id).unwrap_or_default()
    }

    /// Every id some buffered envelope is missing and nobody has (for WANT).
    pub fn missing(&self) -> BTreeSet<EnvelopeId> {
        self.waiting
            .keys()
            .filter(|id| !self.knows(id))
            .copied()
            .collect()
    }

    /// Per author, the highest integrated seq (the version vector).
    pub fn version_vector(&self) -> BTreeMap<[u8; 32], u64> {
        self.chains
            .iter()
            .filter_map(|(a, c)| c.keys().next_back().map(|s| (*a, *s)))
            .collect()
    }

    /// Integrated ids, as a set.
    pub fn ids(&self) -> HashSet<EnvelopeId> {
        self.nodes.keys().copied().collect()
    }
}
