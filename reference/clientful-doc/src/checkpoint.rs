//! CRDT-state checkpoints (spec §9.7a, STO-24 to STO-27): the state a replica
//! writes next to a storage snapshot, and the provisional, read-only view a
//! device starting cold loads from one.
//!
//! A provisional view has no DAG, no chain state and no key material: it can be
//! read and digested, never edited, and nothing is validated against it. The
//! replica rebuilt from envelopes replaces it, and the checkpoint is then checked
//! against that rebuild ([`matches`], with [`Provisional::state_digest`]: a
//! checkpoint carries no digest of its own, STO-24, the state is what is signed).

#[cfg(feature = "automerge")]
use automerge::AutoCommit;

use std::sync::OnceLock;

use crate::canonical_json::Json;
use crate::content;
#[cfg(feature = "automerge")]
use crate::crdt::AutomergeDoc;
use crate::crdt::{YjsDoc, YjsSchema};
use crate::digest;
use crate::error::DocError;
use crate::replica::{CrdtKind, Replica};

/// Largest state a provisional view loads: the storage object limit (STO-7).
pub const MAX_STATE_BYTES: usize = 64 * 1024 * 1024;

/// A document's state as a checkpoint carries it (STO-24).
#[derive(Clone, PartialEq, Eq)]
pub struct State {
    /// 18 (`YJS_SNAPSHOT`) or 25 (`AUTOMERGE_SNAPSHOT`).
    pub content_type: u32,
    /// The CRDT state bytes.
    pub state: Vec<u8>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("content_type", &self.content_type)
            .field("state_bytes", &self.state.len())
            .finish_non_exhaustive()
    }
}

/// The CRDT whose state content type `content_type` is: 18 Yjs, 25 Automerge.
pub fn crdt_of(content_type: u32) -> Option<CrdtKind> {
    match content_type {
        content::YJS_SNAPSHOT => Some(CrdtKind::Yjs),
        content::AUTOMERGE_SNAPSHOT => Some(CrdtKind::Automerge),
        _ => None,
    }
}

/// The checkpoint state of a replica (STO-25): call it on a replica that
/// integrated exactly the envelopes of the snapshot the checkpoint names.
pub fn state_of(replica: &mut Replica) -> State {
    let (content_type, state) = match replica.yjs() {
        Some(y) => (content::YJS_SNAPSHOT, y.encode_state()),
        None => automerge_state(replica),
    };
    State {
        content_type,
        state,
    }
}

#[cfg(feature = "automerge")]
fn automerge_state(replica: &mut Replica) -> (u32, Vec<u8>) {
    match replica.automerge_mut() {
        Some(a) => (content::AUTOMERGE_SNAPSHOT, a.encode_state()),
        // A replica is one of the two CRDTs; unreachable in practice.
        None => (content::AUTOMERGE_SNAPSHOT, Vec::new()),
    }
}

/// Without the `automerge` feature an Automerge replica holds no document.
#[cfg(not(feature = "automerge"))]
fn automerge_state(_replica: &mut Replica) -> (u32, Vec<u8>) {
    (content::AUTOMERGE_SNAPSHOT, Vec::new())
}

enum View {
    Yjs(Box<YjsDoc>),
    #[cfg(feature = "automerge")]
    Automerge(Box<AutoCommit>),
}

/// A provisional, read-only document loaded from a checkpoint (STO-26). It is
/// not verified: show it as such until the replica rebuilt from envelopes
/// replaces it.
pub struct Provisional {
    view: View,
    /// The canonical JSON of the view, computed on first use: a device shows the
    /// view from the CRDT at once, and materializing a large document (for its
    /// digest, STO-27) is work it does later, or never if it does not ask.
    materialized: OnceLock<Json>,
}

impl std::fmt::Debug for Provisional {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisional").finish_non_exhaustive()
    }
}

impl Provisional {
    /// Loads `state` for a document of kind `crdt` (Yjs roots as in `schema`)
    /// (STO-26). A state of the other CRDT, too large, or that does not load is
    /// an error; nothing else about it is trusted or checked here (its digest is
    /// what [`Provisional::state_digest`] computes, checked later by STO-27).
    pub fn load(
        crdt: CrdtKind,
        _doc_id: &[u8; 32],
        schema: &YjsSchema,
        state: &State,
    ) -> Result<Self, DocError> {
        if state.state.len() > MAX_STATE_BYTES {
            return Err(DocError::InvalidOperation(format!(
                "checkpoint state of {} bytes exceeds {MAX_STATE_BYTES}",
                state.state.len()
            )));
        }
        if crdt_of(state.content_type) != Some(crdt) {
            return Err(DocError::InvalidOperation(format!(
                "checkpoint content type {} is not this document's CRDT state",
                state.content_type
            )));
        }
        let view = match crdt {
            CrdtKind::Yjs => {
                // A read-only view: its client id is never used to write.
                let doc = YjsDoc::new(&[0u8; 32], schema.clone(), 0);
                doc.load_state(&state.state)?;
                View::Yjs(Box::new(doc))
            }
            #[cfg(not(feature = "automerge"))]
            CrdtKind::Automerge => {
                return Err(DocError::CrdtNotBuilt {
                    crdt: CrdtKind::Automerge.name(),
                });
            }
            #[cfg(feature = "automerge")]
            CrdtKind::Automerge => {
                View::Automerge(Box::new(AutomergeDoc::load_state(&state.state)?))
            }
        };
        Ok(Provisional {
            view,
            materialized: OnceLock::new(),
        })
    }

    /// The `StateDigest` (DOC-12) of the loaded state: what a replica rebuilt
    /// from the checkpoint's snapshot must reach (STO-27). Not the document's
    /// digest: a provisional state's digest is never reported as such (STO-26).
    pub fn state_digest(&self) -> [u8; 32] {
        digest::state_digest(self.materialize())
    }

    /// The materialized document (canonical JSON, §8.6), computed on the first
    /// call and kept.
    pub fn materialize(&self) -> &Json {
        self.materialized.get_or_init(|| match &self.view {
            View::Yjs(doc) => doc.materialize_shared(),
            #[cfg(feature = "automerge")]
            View::Automerge(doc) => crate::crdt::automerge_json(doc),
        })
    }

    /// The yrs document, to read (`None` for Automerge). Do not edit it: edits
    /// are never sent and are lost when the verified replica replaces the view.
    pub fn yjs(&self) -> Option<&yrs::Doc> {
        match &self.view {
            View::Yjs(d) => Some(d.doc()),
            #[cfg(feature = "automerge")]
            View::Automerge(_) => None,
        }
    }

    /// The Automerge document, to read (`None` for Yjs).
    #[cfg(feature = "automerge")]
    pub fn automerge(&self) -> Option<&AutoCommit> {
        match &self.view {
            View::Automerge(d) => Some(d),
            View::Yjs(_) => None,
        }
    }
}

/// The check of STO-27: whether a replica rebuilt from exactly the snapshot's
/// envelopes of the document reaches the checkpoint's `StateDigest`.
pub fn matches(rebuilt: &mut Replica, state_digest: &[u8; 32]) -> bool {
    rebuilt.state_digest() == *state_digest
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testkit::World;
    use yrs::{GetString, Text, Transact};

    fn yjs_replica_with(text: &str) -> (World, Replica) {
        let w = World::new(2, 1, CrdtKind::Yjs);
        let mut r = w.replica(0);
        {
            let y = r.yjs().unwrap();
            let t = y.text("text");
            let mut txn = y.doc().transact_mut();
            t.insert(&mut txn, 0, text);
        }
        r.commit().unwrap();
        (w, r)
    }

    #[test]
    fn yjs_state_loads_as_the_same_document() {
        let (w, mut r) = yjs_replica_with("hello checkpoint");
        let st = state_of(&mut r);
        assert_eq!(st.content_type, content::YJS_SNAPSHOT);
        let p = Provisional::load(CrdtKind::Yjs, &w.doc_id, &YjsSchema::default(), &st).unwrap();
        let doc = p.yjs().unwrap();
        let t = doc.get_or_insert_text("text");
        assert_eq!(t.get_string(&doc.transact()), "hello checkpoint");
        assert!(matches(&mut r, &p.state_digest()));
    }

    #[test]
    fn automerge_state_loads_as_the_same_document() {
        let w = World::new(2, 1, CrdtKind::Automerge);
        let mut r = w.replica(0);
        {
            use automerge::transaction::Transactable;
            let am = r.automerge_mut().unwrap().doc_mut();
            let t = am
                .put_object(automerge::ROOT, "text", automerge::ObjType::Text)
                .unwrap();
            am.splice_text(&t, 0, 0, "hello automerge").unwrap();
        }
        r.commit().unwrap();
        let st = state_of(&mut r);
        assert_eq!(st.content_type, content::AUTOMERGE_SNAPSHOT);
        let p =
            Provisional::load(CrdtKind::Automerge, &w.doc_id, &YjsSchema::default(), &st).unwrap();
        assert_eq!(p.state_digest(), r.state_digest());
        assert!(p.automerge().is_some());
    }

    #[test]
    fn lying_or_broken_states_are_refused() {
        let (w, mut r) = yjs_replica_with("true text");
        let st = state_of(&mut r);
        let schema = YjsSchema::default();
        // The other CRDT's content type.
        let mut other = st.clone();
        other.content_type = content::AUTOMERGE_SNAPSHOT;
        assert!(Provisional::load(CrdtKind::Yjs, &w.doc_id, &schema, &other).is_err());
        // Bytes that are not a state, for both CRDTs.
        for (crdt, ct) in [
            (CrdtKind::Yjs, content::YJS_SNAPSHOT),
            (CrdtKind::Automerge, content::AUTOMERGE_SNAPSHOT),
        ] {
            let junk = State {
                content_type: ct,
                state: vec![0xff; 40],
            };
            assert!(Provisional::load(crdt, &w.doc_id, &schema, &junk).is_err());
        }
        // A state that loads but says something else than the replica's envelopes.
        let (_, mut liar) = yjs_replica_with("false text");
        let lie =
            Provisional::load(CrdtKind::Yjs, &w.doc_id, &schema, &state_of(&mut liar)).unwrap();
        assert!(!matches(&mut r, &lie.state_digest()));
    }
}
