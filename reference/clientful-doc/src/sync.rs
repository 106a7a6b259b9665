//! The sync exchange (spec §8.7): a sans-IO state machine, one per peer.
//!
//! ```text
//! HELLO {heads, clock}  -> the peer answers ENVELOPES for every envelope whose
//!                          (author, seq) is above the clock, WANT for heads it lacks,
//!                          and its own HELLO once
//! WANT {ids}            -> ENVELOPES with those it has
//! ENVELOPES {envs,more} -> each is received; WANT for predecessors still missing;
//!                          HELLO again if more = 1 (resumable)
//! ```
//! It works over any transport that delivers messages, and from storage (a store
//! answers HELLO with what it holds).

use std::collections::{BTreeMap, HashSet};

use clientful_core::envelope::EnvelopeId;
use clientful_core::wire;
use clientful_proto::v1 as pb;

use crate::error::DocError;
use crate::replica::{Disposition, Replica};

/// HELLO.
pub const KIND_HELLO: u32 = 1;
/// WANT.
pub const KIND_WANT: u32 = 2;
/// ENVELOPES.
pub const KIND_ENVELOPES: u32 = 3;

/// Largest encoded sync message accepted (SYNC-LIM-1).
pub const MAX_SYNC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Most heads, clock entries, wanted ids or envelopes in one message (SYNC-LIM-2).
pub const MAX_SYNC_ITEMS: usize = 4096;
/// Budget of envelope bytes per ENVELOPES message a sender aims for.
pub const ENVELOPES_BUDGET: usize = 1024 * 1024;

/// One sync session with one peer.
#[derive(Debug, Default)]
pub struct SyncSession {
    sent_hello: bool,
    wanted: HashSet<EnvelopeId>,
}

fn malformed(what: &'static str, reason: &'static str) -> DocError {
    DocError::Envelope(clientful_core::Error::Malformed { what, reason })
}

fn non_canonical(what: &'static str, reason: &'static str) -> DocError {
    DocError::Envelope(clientful_core::Error::NonCanonical { what, reason })
}

fn id32(b: &[u8]) -> Result<EnvelopeId, DocError> {
    b.try_into()
        .map_err(|_| malformed("SyncMessage", "id is not 32 bytes"))
}

fn limit(what: &'static str, n: usize) -> Result<(), DocError> {
    if n > MAX_SYNC_ITEMS {
        return Err(DocError::LimitExceeded { what });
    }
    Ok(())
}

impl SyncSession {
    /// A new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The HELLO describing `replica`.
    pub fn hello(&mut self, replica: &Replica) -> Vec<u8> {
        self.sent_hello = true;
        let clock = replica
            .dag()
            .version_vector()
            .into_iter()
            .map(|(author, seq)| {
                let mut e = author.to_vec();
                e.extend_from_slice(&seq.to_be_bytes());
                e
            })
            .collect();
        wire::encode(&pb::SyncMessage {
            kind: KIND_HELLO,
            doc_id: replica.doc_id().to_vec(),
            heads: replica.heads().iter().map(|h| h.to_vec()).collect(),
            clock,
            ..Default::default()
        })
    }

    fn envelopes_msg(replica: &Replica, envs: Vec<Vec<u8>>, more: bool) -> Vec<u8> {
        wire::encode(&pb::SyncMessage {
            kind: KIND_ENVELOPES,
            doc_id: replica.doc_id().to_vec(),
            envelopes: envs,
            more: u32::from(more),
            ..Default::default()
        })
    }

    fn want_msg(&mut self, replica: &Replica, ids: Vec<EnvelopeId>) -> Option<Vec<u8>> {
        let fresh: Vec<EnvelopeId> = ids
            .into_iter()
            .filter(|id| self.wanted.insert(*id))
            .take(MAX_SYNC_ITEMS)
            .collect();
        (!fresh.is_empty()).then(|| {
            wire::encode(&pb::SyncMessage {
                kind: KIND_WANT,
                doc_id: replica.doc_id().to_vec(),
                want: fresh.iter().map(|i| i.to_vec()).collect(),
                ..Default::default()
            })
        })
    }

    /// Handles one message from the peer; returns the messages to send back.
    /// Envelope dispositions are returned too, for the caller's bookkeeping.
    pub fn handle(
        &mut self,
        replica: &mut Replica,
        bytes: &[u8],
    ) -> Result<(Vec<Vec<u8>>, Vec<Disposition>), DocError> {
        if bytes.len() > MAX_SYNC_MESSAGE_BYTES {
            return Err(DocError::LimitExceeded {
                what: "sync message size",
            });
        }
        let msg: pb::SyncMessage = wire::decode(bytes, &wire::SYNC_MESSAGE)?;
        if msg.kind == 0 {
            return Err(malformed("SyncMessage.kind", "missing (0 is invalid)"));
        }
        if msg.more > 1 {
            return Err(malformed("SyncMessage.more", "must be 0 or 1"));
        }
        if msg.doc_id.as_slice() != replica.doc_id().as_slice() {
            return Err(DocError::Envelope(clientful_core::Error::WrongContext {
                what: "document id",
            }));
        }
        let mut out = Vec::new();
        let mut dispositions = Vec::new();
        match msg.kind {
            KIND_HELLO => {
                limit("heads", msg.heads.len())?;
                limit("clock entries", msg.clock.len())?;
                let heads: Vec<EnvelopeId> = msg
                    .heads
                    .iter()
                    .map(|h| id32(h))
                    .collect::<Result<_, _>>()?;
                if heads.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
                    return Err(non_canonical("SyncMessage.heads", "not strictly ascending"));
                }
                let mut clock = BTreeMap::new();
                let mut last_author: Option<EnvelopeId> = None;
                for e in &msg.clock {
                    if e.len() != 40 {
                        return Err(malformed("SyncMessage.clock", "entry is not 40 bytes"));
                    }
                    let (a, s) = e.split_at(32);
                    let author = id32(a)?;
                    if last_author.is_some_and(|l| l >= author) {
                        return Err(non_canonical(
                            "SyncMessage.clock",
                            "authors not strictly ascending",
                        ));
                    }
                    last_author = Some(author);
                    let mut seq = [0u8; 8];
                    seq.copy_from_slice(s);
                    clock.insert(author, u64::from_be_bytes(seq));
                }
                let dag = replica.dag();
                let mut envs = Vec::new();
                let mut size = 0usize;
                let mut more = false;
                for id in &dag.order {
                    if let Some(n) = dag.nodes.get(id)
                        && clock.get(&n.author).is_none_or(|s| n.seq > *s)
                    {
                        if size + n.bytes.len() > ENVELOPES_BUDGET && !envs.is_empty()
                            || envs.len() >= MAX_SYNC_ITEMS
                        {
                            more = true;
                            break;
                        }
                        size += n.bytes.len();
                        envs.push(n.bytes.clone());
                    }
                }
                if !envs.is_empty() {
                    out.push(Self::envelopes_msg(replica, envs, more));
                }
                let unknown: Vec<EnvelopeId> = heads
                    .into_iter()
                    .filter(|h| !replica.dag().knows(h))
                    .collect();
                if let Some(w) = self.want_msg(replica, unknown) {
                    out.push(w);
                }
                if !self.sent_hello {
                    out.push(self.hello(replica));
                }
            }
            KIND_WANT => {
                limit("wanted ids", msg.want.len())?;
                let wanted: HashSet<EnvelopeId> =
                    msg.want.iter().map(|w| id32(w)).collect::<Result<_, _>>()?;
                // Every wanted envelope we have is sent, in budget-sized messages and
                // in integration order (so each message is causally deliverable).
                let dag = replica.dag();
                let mut envs = Vec::new();
                let mut size = 0usize;
                for id in dag.order.iter().filter(|id| wanted.contains(*id)) {
                    if let Some(n) = dag.nodes.get(id) {
                        if size + n.bytes.len() > ENVELOPES_BUDGET && !envs.is_empty() {
                            out.push(Self::envelopes_msg(
                                replica,
                                std::mem::take(&mut envs),
                                false,
                            ));
                            size = 0;
                        }
                        size += n.bytes.len();
                        envs.push(n.bytes.clone());
                    }
                }
                if !envs.is_empty() {
                    out.push(Self::envelopes_msg(replica, envs, false));
                }
            }
            KIND_ENVELOPES => {
                limit("envelopes", msg.envelopes.len())?;
                for e in &msg.envelopes {
                    dispositions.push(replica.receive(e));
                }
                let missing: Vec<EnvelopeId> = replica.dag().missing().into_iter().collect();
                if let Some(w) = self.want_msg(replica, missing) {
                    out.push(w);
                }
                if msg.more == 1 {
                    out.push(self.hello(replica));
                }
            }
            _ => {} // Unknown kinds are ignored (forward compatibility).
        }
        Ok((out, dispositions))
    }
}
