//! Per-envelope write permission from the space's membership (spec MEM-18): a
//! replica fed a [`Membership`] checks every integrated envelope's author against
//! the [`WriteView`], with the epochs of the envelope's causal past, and keeps the
//! envelopes that fail as evidence, out of the materialized document. The
//! verdicts are recomputed whenever the membership changes, so an envelope
//! accepted before a concurrent removal arrived is excluded afterwards, on every
//! replica alike.

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::ErrorClass;
use clientful_core::envelope::{self, EnvelopeId};
use clientful_core::keys::EpochKey;
use clientful_core::membership::WriteView;

use crate::dag::Dag;

/// What a replica needs from the space's membership.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Write authority of every device ever added (MEM-18).
    pub view: WriteView,
    /// Every epoch key the device holds (opening).
    pub keys: Vec<EpochKey>,
    /// The current epoch (sealing, KEY-11).
    pub current: EpochKey,
    /// The folders that contain this document (scopes may name them).
    pub folders: Vec<[u8; 32]>,
}

/// The authority state of one replica.
#[derive(Debug, Clone)]
pub(crate) struct Authority {
    pub(crate) membership: Membership,
    /// Epochs of each integrated envelope's causal past, itself included.
    seen: BTreeMap<EnvelopeId, BTreeSet<[u8; 32]>>,
    /// Integrated envelopes whose author lacks the authority, with the class.
    pub(crate) denied: BTreeMap<EnvelopeId, ErrorClass>,
}

fn epoch_of(bytes: &[u8]) -> Option<[u8; 32]> {
    envelope::decode(bytes).ok().map(|d| d.header.epoch_id)
}

impl Authority {
    pub(crate) fn new(membership: Membership) -> Self {
        Authority {
            membership,
            seen: BTreeMap::new(),
            denied: BTreeMap::new(),
        }
    }

    /// Evaluates one integrated envelope (its predecessors are integrated);
    /// returns the class if its author lacks the authority.
    pub(crate) fn check(&mut self, dag: &Dag, id: &EnvelopeId) -> Option<ErrorClass> {
        let node = dag.nodes.get(id)?;
        let own = epoch_of(&node.bytes)?;
        let mut past: BTreeSet<[u8; 32]> = BTreeSet::new();
        for d in node.deps() {
            if let Some(s) = self.seen.get(d) {
                past.extend(s.iter().copied());
            } else if let Some(n) = dag.nodes.get(d).and_then(|n| epoch_of(&n.bytes)) {
                past.insert(n);
            }
        }
        let seen: Vec<[u8; 32]> = past.iter().copied().collect();
        let mut all = past;
        all.insert(own);
        self.seen.insert(*id, all);
        let m = &self.membership;
        let verdict = m
            .view
            .verdict(
                &node.author,
                &dag_doc(node),
                &m.folders,
                &own,
                &seen,
                node.seq,
            )
            .err()
            .map(|e| e.class())
            .or_else(|| {
                // DOC-23: a chain that inserted under a contested index (one an
                // equivocating adder claimed for two devices) is withdrawn.
                crate::binding::split_client_id(node.progress.client)
                    .filter(|(d, _)| m.view.contested.contains(d))
                    .map(|_| ErrorClass::InvalidOperation)
            });
        match verdict {
            Some(c) => {
                self.denied.insert(*id, c);
                Some(c)
            }
            None => {
                self.denied.remove(id);
                None
            }
        }
    }

    /// Re-evaluates every integrated envelope in integration order.
    pub(crate) fn recheck_all(&mut self, dag: &Dag) {
        self.denied.clear();
        self.seen.clear();
        for id in &dag.order {
            self.check(dag, id);
        }
    }
}

fn dag_doc(node: &crate::dag::Node) -> [u8; 32] {
    envelope::decode(&node.bytes)
        .map(|d| d.header.doc_id)
        .unwrap_or([0u8; 32])
}
