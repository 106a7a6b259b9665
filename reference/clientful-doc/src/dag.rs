//! The envelope DAG of one document (spec §8.5): integrated envelopes, heads,
//! per-author chains, equivocation evidence, the bounded buffer of envelopes whose
//! predecessors are missing, and the record of rejected envelopes.

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
    rejected_order: VecDeque<EnvelopeId>,
}

impl Dag {
    /// Whether `id` is integrated, buffered or rejected.
    pub fn knows(&self, id: &EnvelopeId) -> bool {
        self.nodes.contains_key(id)
            || self.pending.contains_key(id)
            || self.rejected.contains_key(id)
    }

    /// Whether envelopes of `author` at `seq` are excluded from materialization
    /// (the author equivocated at or before `seq`, DOC-9).
    pub fn excluded(&self, author: &[u8; 32], seq: u64) -> bool {
        self.forks.get(author).is_some_and(|fork| seq >= *fork)
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
