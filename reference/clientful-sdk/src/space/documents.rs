//! Documents (spec §8): replicas of `clientful-doc` restored from the
//! device-local store under the membership the session core resolved, edited
//! through [`Document`], each edit sealed into one envelope and stored before
//! it returns (DOC-15).

use clientful_core::envelope::{self, StaticContext};
use clientful_core::membership::ops::Role;
use clientful_doc::authority::Membership;
use clientful_doc::content;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::replica::{CrdtKind, Replica, ReplicaConfig};

use super::SpaceSession;
use crate::codes;
use crate::document::{Document, EditError};
use crate::error::{AccessError, Action, ClientError, LookupError};

/// One document as listed.
#[derive(Debug, Clone)]
pub struct DocInfo {
    /// Document id.
    pub id: [u8; 32],
    /// CRDT, if an envelope could be opened.
    pub crdt: Option<CrdtKind>,
    /// Envelopes held.
    pub envelopes: usize,
}

/// A replica of one document rebuilt from `envs` under the space's membership.
pub(super) fn restored(cfg: ReplicaConfig, membership: Membership, envs: &[Vec<u8>]) -> Replica {
    Replica::restore_with_membership(cfg, membership, envs)
}

impl SpaceSession {
    fn doc_envelopes(&self, id: &[u8; 32]) -> Result<Vec<Vec<u8>>, ClientError> {
        Ok(self.by_doc()?.remove(id).unwrap_or_default())
    }

    pub(super) fn crdt_of(&self, id: &[u8; 32], envs: &[Vec<u8>]) -> Option<CrdtKind> {
        let ctx = StaticContext {
            space_id: self.space_id,
            doc_id: Some(*id),
            signers: self.core.signers(),
            epochs: self.core.replica().epoch_chain(),
            accepted: Vec::new(),
        };
        envs.iter().find_map(|e| {
            let o = envelope::open(e, &ctx).ok()?;
            match o.content_type {
                content::YJS_UPDATE_V1 | content::YJS_UPDATE_V2 | content::YJS_SNAPSHOT => {
                    Some(CrdtKind::Yjs)
                }
                content::AUTOMERGE_CHANGES | content::AUTOMERGE_SNAPSHOT => {
                    Some(CrdtKind::Automerge)
                }
                _ => None,
            }
        })
    }

    /// The documents this device holds envelopes of.
    pub fn documents(&self) -> Result<Vec<DocInfo>, ClientError> {
        let mut out = Vec::new();
        for (id, envs) in self.by_doc()? {
            out.push(DocInfo {
                id,
                crdt: self.crdt_of(&id, &envs),
                envelopes: envs.len(),
            });
        }
        Ok(out)
    }

    /// The document whose id starts with `prefix`.
    pub fn find_document(&self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let ids: Vec<[u8; 32]> = self.by_doc()?.into_keys().collect();
        Ok(codes::pick("document", prefix, ids.iter().map(|d| (d, ())))?.0)
    }

    pub(super) fn membership_view(&self) -> Result<Membership, ClientError> {
        let replica = self.core.replica();
        let current = replica.current_epoch().ok_or(AccessError::NoCurrentKey)?;
        Ok(Membership {
            view: replica.write_view(),
            keys: replica.epoch_chain(),
            current,
            folders: Vec::new(),
        })
    }

    pub(super) fn replica_config(
        &mut self,
        id: [u8; 32],
        crdt: CrdtKind,
    ) -> Result<ReplicaConfig, ClientError> {
        let m = self.membership_view()?;
        Ok(ReplicaConfig {
            space_id: self.space_id,
            doc_id: id,
            device: self.device(),
            epoch: m.current,
            old_epochs: m.keys,
            signers: self.core.signers(),
            crdt,
            yjs_schema: YjsSchema::default(),
            rng_seed: self.seed(),
        })
    }

    /// Refuses early what every replica would refuse (MEM-18): writing without
    /// the writer or admin role.
    fn check_writer(&self) -> Result<(), ClientError> {
        let me = self.core.replica().identity().user;
        match self.core.state().members.get(&me) {
            Some(m) if m.role >= Role::Writer => Ok(()),
            Some(m) => Err(AccessError::ReadOnly(m.role).into()),
            None => Err(AccessError::NotAMember.into()),
        }
    }

    /// Creates a document with a title (stored in the document itself, so only
    /// members read it) and returns its id.
    pub fn new_document(&mut self, crdt: CrdtKind, title: &str) -> Result<[u8; 32], ClientError> {
        self.check_writer()?;
        let id = self.seed();
        let cfg = self.replica_config(id, crdt)?;
        let mut r = Replica::new(cfg);
        r.set_membership(self.membership_view()?);
        self.docs.insert(id, Document::new(r));
        self.edit(&id, |d| {
            d.set_json("title", &serde_json::Value::String(title.into()))
        })?;
        Ok(id)
    }

    /// The document `id`, restored from the local store.
    pub fn document(&mut self, id: &[u8; 32]) -> Result<&mut Document, ClientError> {
        if !self.docs.contains_key(id) {
            let envs = self.doc_envelopes(id)?;
            if envs.is_empty() {
                return Err(LookupError::NoDocument(*id).into());
            }
            let crdt = self
                .crdt_of(id, &envs)
                .ok_or(AccessError::DocumentSealed(*id))?;
            let cfg = self.replica_config(*id, crdt)?;
            let r = restored(cfg, self.membership_view()?, &envs);
            self.docs.insert(*id, Document::new(r));
        }
        self.docs
            .get_mut(id)
            .ok_or(ClientError::Lookup(LookupError::NoDocument(*id)))
    }

    /// Edits document `id` with `f`, commits the edit into one envelope and stores
    /// it (durable before this returns, DOC-15); `sync` or a live session sends it.
    pub fn edit(
        &mut self,
        id: &[u8; 32],
        f: impl FnOnce(&mut Document) -> Result<(), EditError>,
    ) -> Result<(), ClientError> {
        self.check_writer()?;
        let doc = self.document(id)?;
        f(doc)?;
        doc.replica_mut()
            .commit()
            .map_err(ClientError::doc(Action::SealEdit))?;
        let out: Vec<Vec<u8>> = doc
            .replica_mut()
            .drain_outbox()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        self.local.put_envelopes(&out, true, &[])?;
        self.live.extend(out);
        Ok(())
    }
}
