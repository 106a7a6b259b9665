//! A document replica (spec §8): one document of one space on one device.
//!
//! Local edits are made with the CRDT library's own API ([`Replica::yjs`],
//! [`Replica::automerge_mut`]) and sealed into an envelope by [`Replica::commit`]
//! (the caller decides when: a debounce window batches many edits into one
//! envelope). Remote envelopes go through [`Replica::receive`], which answers
//! applied, buffered, duplicate or rejected with an error class. The replica never
//! does I/O: sealed envelopes wait in the outbox until the caller takes them.

use std::collections::BTreeSet;
use std::sync::Arc;

use clientful_core::envelope::{
    self, EnvelopeId, OpenContext, ReceivedEnvelope, SealRequest, StaticContext,
};
use clientful_core::keys::PublicKey;
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::{ErrorClass, error::class_name};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::authority::{Authority, Membership};
use crate::canonical_json::Json;
#[cfg(feature = "automerge")]
use crate::crdt::AutomergeDoc;
#[cfg(not(feature = "automerge"))]
use crate::crdt::NotBuilt;
use crate::crdt::{ActorProgress, CrdtDoc, DeviceIndices, YjsDoc, YjsSchema};
use crate::dag::{Dag, Node};
use crate::digest;
use crate::error::DocError;

/// Most envelopes held while they wait for a device index (DOC-22).
pub const MAX_AWAITING: usize = 1024;

/// Which CRDT a document uses.
/// Exhaustive on purpose: spec v1 (§8) defines exactly these two CRDTs; a third is a new protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdtKind {
    /// Yjs (yrs).
    Yjs,
    /// Automerge.
    Automerge,
}

impl CrdtKind {
    /// Whether this build holds the CRDT: Automerge needs the `automerge`
    /// feature (on by default); Yjs is always built.
    pub const fn is_built(self) -> bool {
        match self {
            CrdtKind::Yjs => true,
            CrdtKind::Automerge => cfg!(feature = "automerge"),
        }
    }

    /// `"yjs"` or `"automerge"`.
    pub const fn name(self) -> &'static str {
        match self {
            CrdtKind::Yjs => "yjs",
            CrdtKind::Automerge => "automerge",
        }
    }
}

/// Everything a replica is built from.
#[derive(Debug)]
pub struct ReplicaConfig {
    /// Space id.
    pub space_id: [u8; 32],
    /// Document id.
    pub doc_id: [u8; 32],
    /// This device's signing key.
    pub device: SigningKey,
    /// The current key epoch (membership, spec §11, supplies it).
    pub epoch: EpochKey,
    /// Earlier epochs still readable.
    pub old_epochs: Vec<EpochKey>,
    /// Device keys accepted as authors, in device-index order (DOC-19: a
    /// signer's Yjs client ids follow from its position; membership supplies
    /// them in admission order).
    pub signers: Vec<[u8; 32]>,
    /// The CRDT.
    pub crdt: CrdtKind,
    /// Declared Yjs roots (ignored for Automerge).
    pub yjs_schema: YjsSchema,
    /// Seed of the replica's nonce generator (from the OS RNG in production; fixed
    /// in simulations so runs replay exactly).
    pub rng_seed: [u8; 32],
}

/// What [`Replica::receive`] did with an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// Integrated and applied; `unblocked` envelopes were integrated after it.
    Applied {
        /// The envelope.
        id: EnvelopeId,
        /// Buffered envelopes this one released, in integration order.
        unblocked: Vec<EnvelopeId>,
    },
    /// Authentic, waiting for predecessors.
    Buffered {
        /// The envelope.
        id: EnvelopeId,
        /// The ids it waits for.
        missing: Vec<EnvelopeId>,
    },
    /// Already integrated or buffered: nothing changed.
    Duplicate {
        /// The envelope.
        id: EnvelopeId,
    },
    /// Not applied. `id` is `None` when the bytes are not even an envelope.
    /// An envelope rejected as `EQUIVOCATION` is still kept as evidence.
    Rejected {
        /// The envelope, if it decoded.
        id: Option<EnvelopeId>,
        /// The spec error class.
        class: ErrorClass,
        /// Human-readable detail.
        reason: String,
    },
}

/// The current verdict on one envelope id (spec DOC-7): what every honest
/// replica agrees on once it has the same envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Integrated and part of the materialized document.
    Applied,
    /// Integrated as evidence, excluded from the document: its author equivocated.
    Excluded,
    /// Rejected by the document rules.
    Rejected(ErrorClass),
    /// Waiting for predecessors.
    Buffered,
    /// Never seen (or failed to open, which is not recorded).
    Unknown,
}

enum Crdt {
    Yjs(YjsDoc),
    #[cfg(feature = "automerge")]
    Automerge(Box<AutomergeDoc>),
    /// A CRDT left out of this build ([`CrdtKind::is_built`]).
    #[cfg(not(feature = "automerge"))]
    NotBuilt(NotBuilt),
}

impl Crdt {
    fn new(cfg: &ReplicaConfig, indices: &Arc<DeviceIndices>, incarnation: u32) -> Self {
        let device = cfg.device.public_bytes();
        match cfg.crdt {
            CrdtKind::Yjs => Crdt::Yjs(YjsDoc::with_indices(
                &device,
                Arc::clone(indices),
                cfg.yjs_schema.clone(),
                incarnation,
            )),
            #[cfg(feature = "automerge")]
            CrdtKind::Automerge => Crdt::Automerge(Box::new(AutomergeDoc::new(
                &device,
                &cfg.doc_id,
                incarnation,
            ))),
            #[cfg(not(feature = "automerge"))]
            CrdtKind::Automerge => Crdt::NotBuilt(NotBuilt {
                crdt: CrdtKind::Automerge.name(),
            }),
        }
    }

    fn as_dyn(&mut self) -> &mut dyn CrdtDoc {
        match self {
            Crdt::Yjs(d) => d,
            #[cfg(feature = "automerge")]
            Crdt::Automerge(d) => d.as_mut(),
            #[cfg(not(feature = "automerge"))]
            Crdt::NotBuilt(d) => d,
        }
    }

    fn as_dyn_ref(&self) -> &dyn CrdtDoc {
        match self {
            Crdt::Yjs(d) => d,
            #[cfg(feature = "automerge")]
            Crdt::Automerge(d) => d.as_ref(),
            #[cfg(not(feature = "automerge"))]
            Crdt::NotBuilt(d) => d,
        }
    }
}

/// Opens envelopes under one replica's context, off the replica (spec §6.8, the
/// strict signature rule SIG-3 included): the independent part of receiving,
/// which a shell may spread over threads. See [`Replica::restore_opened`].
#[derive(Debug, Clone)]
pub struct Opener {
    ctx: Arc<StaticContext>,
    keys: Arc<Vec<PublicKey>>,
}

/// The replica's context with its signers' keys validated once (not per
/// envelope): opening under it is opening under the context itself.
struct Keyed<'a> {
    ctx: &'a StaticContext,
    keys: &'a [PublicKey],
}

impl OpenContext for Keyed<'_> {
    fn space_id(&self) -> &[u8; 32] {
        self.ctx.space_id()
    }
    fn doc_id(&self) -> Option<&[u8; 32]> {
        self.ctx.doc_id()
    }
    fn is_known_signer(&self, author: &[u8; 32]) -> bool {
        self.ctx.is_known_signer(author)
    }
    fn epoch_key(&self, epoch_id: &[u8; 32]) -> Option<&clientful_core::EpochKey> {
        self.ctx.epoch_key(epoch_id)
    }
    fn accepted_id(&self, author: &[u8; 32], doc_id: &[u8; 32], seq: u64) -> Option<EnvelopeId> {
        self.ctx.accepted_id(author, doc_id, seq)
    }
    fn signer_key(&self, author: &[u8; 32]) -> Option<PublicKey> {
        self.keys.iter().find(|k| k.as_bytes() == author).copied()
    }
}

/// The signers' keys that validate (SIG-3); one that does not is left out and
/// fails when an envelope of it is opened, as before.
fn signer_keys(ctx: &StaticContext) -> Arc<Vec<PublicKey>> {
    Arc::new(
        ctx.signers
            .iter()
            .filter_map(|s| PublicKey::from_bytes(s).ok())
            .collect(),
    )
}

impl Opener {
    /// Decodes and opens `bytes` exactly as [`Replica::receive`] does (with no
    /// replica state involved: the context is fixed).
    pub fn open(&self, bytes: &[u8]) -> PreOpened {
        let outcome = envelope::decode(bytes).map(|d| {
            let id = d.id;
            let ctx = Keyed {
                ctx: &self.ctx,
                keys: &self.keys,
            };
            (id, envelope::open_decoded(d, &ctx))
        });
        PreOpened {
            ctx: Arc::clone(&self.ctx),
            bytes: bytes.to_vec(),
            outcome,
        }
    }

    /// [`Opener::open`] of an envelope already decoded: steps 7 to 15 of spec
    /// §6.8 on its decoding (no decoding again), the same outcome as
    /// [`Opener::open`] on its bytes.
    pub fn open_received(&self, e: &ReceivedEnvelope) -> PreOpened {
        let ctx = Keyed {
            ctx: &self.ctx,
            keys: &self.keys,
        };
        PreOpened {
            ctx: Arc::clone(&self.ctx),
            bytes: e.bytes().to_vec(),
            outcome: Ok((*e.id(), envelope::open_decoded(e.decoded().clone(), &ctx))),
        }
    }
}

/// An envelope opened by an [`Opener`]; hand it to [`Replica::receive_preopened`].
#[derive(Debug)]
pub struct PreOpened {
    ctx: Arc<StaticContext>,
    bytes: Vec<u8>,
    #[allow(clippy::type_complexity)]
    outcome: Result<
        (
            EnvelopeId,
            Result<envelope::OpenedEnvelope, clientful_core::Error>,
        ),
        clientful_core::Error,
    >,
}

impl PreOpened {
    /// The envelope's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One document replica. See the module documentation.
pub struct Replica {
    cfg: ReplicaConfig,
    /// Shared with every [`Opener`] handed out: an envelope opened ahead under
    /// this exact context (pointer-equal) is taken as opened; a changed context
    /// (membership) is a new allocation, so older pre-opened work falls back to
    /// opening again.
    ctx: Arc<StaticContext>,
    /// The keys of `ctx.signers`, validated once.
    keys: Arc<Vec<PublicKey>>,
    crdt: Crdt,
    dag: Dag,
    rng: ChaCha20Rng,
    outbox: Vec<(EnvelopeId, Vec<u8>)>,
    unsent: Option<(u32, Vec<u8>)>,
    incarnation: u32,
    apply_errors: u64,
    authority: Option<Authority>,
    indices: Arc<DeviceIndices>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("doc_id", &self.cfg.doc_id)
            .field("integrated", &self.dag.nodes.len())
            .field("buffered", &self.dag.pending.len())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// A new, empty replica, or [`DocError::CrdtNotBuilt`] if this build leaves
    /// the document's CRDT out ([`CrdtKind::is_built`]).
    pub fn try_new(cfg: ReplicaConfig) -> Result<Self, DocError> {
        if !cfg.crdt.is_built() {
            return Err(DocError::CrdtNotBuilt {
                crdt: cfg.crdt.name(),
            });
        }
        Ok(Replica::new(cfg))
    }

    /// A new, empty replica. In a build without its CRDT
    /// ([`CrdtKind::is_built`]) the replica holds no document and rejects every
    /// payload with [`DocError::CrdtNotBuilt`]; [`Replica::try_new`] refuses it
    /// instead.
    pub fn new(cfg: ReplicaConfig) -> Self {
        let mut epochs = vec![cfg.epoch.clone()];
        epochs.extend(cfg.old_epochs.iter().cloned());
        let ctx = StaticContext {
            space_id: cfg.space_id,
            doc_id: Some(cfg.doc_id),
            signers: cfg.signers.clone(),
            epochs,
            accepted: Vec::new(),
        };
        let indices = Arc::new(crate::binding::device_indices(&cfg.signers));
        Replica {
            crdt: Crdt::new(&cfg, &indices, 0),
            indices,
            rng: ChaCha20Rng::from_seed(cfg.rng_seed),
            keys: signer_keys(&ctx),
            ctx: Arc::new(ctx),
            cfg,
            dag: Dag::default(),
            outbox: Vec::new(),
            unsent: None,
            incarnation: 0,
            apply_errors: 0,
            authority: None,
        }
    }

    /// The end of every restore: our own envelopes came back through the remote
    /// path, so they are neither sent again (outbox) nor local edits to commit
    /// again, and the incarnation is reconciled with the chain.
    fn restored(mut self) -> Self {
        self.outbox.clear();
        let _ = self.crdt.as_dyn().take_local();
        self.reconcile_incarnation();
        self
    }

    /// A replica restored from its persisted envelopes (any order; the DAG sorts
    /// them out). This is how a device restarts after a crash.
    pub fn restore(cfg: ReplicaConfig, envelopes: &[Vec<u8>]) -> Self {
        let mut r = Replica::new(cfg);
        for e in envelopes {
            r.receive(e);
        }
        r.restored()
    }

    /// A replica of a space's document restored from its persisted envelopes
    /// under the space's membership: the membership is set first, so every
    /// envelope is checked against the device indices it claims (DOC-19) rather
    /// than against positions in `cfg.signers`.
    pub fn restore_with_membership(
        cfg: ReplicaConfig,
        membership: Membership,
        envelopes: &[Vec<u8>],
    ) -> Self {
        let mut r = Replica::new(cfg);
        r.set_membership(membership);
        for e in envelopes {
            r.receive(e);
        }
        r.restored()
    }

    /// [`Replica::restore`] (or, with a membership,
    /// [`Replica::restore_with_membership`]) with the opening of every envelope
    /// (spec §6.8 steps 1 to 15: decode, the strict signature check SIG-3, key
    /// commitment, AEAD) handed to `open_all` as independent items: the caller (a
    /// shell) may run [`Opener::open`] on several threads. The opened envelopes are
    /// then received in the order given, exactly as [`Replica::receive`] would
    /// (same checks, same order, same verdicts); an item opened under another
    /// context, or missing, is opened again here.
    pub fn restore_opened<F>(
        cfg: ReplicaConfig,
        membership: Option<Membership>,
        envelopes: &[Vec<u8>],
        open_all: F,
    ) -> Self
    where
        F: FnOnce(&Opener, &[Vec<u8>]) -> Vec<PreOpened>,
    {
        Replica::restore_preopened(cfg, membership, envelopes, open_all, |r, e, p| match p {
            Some(p) if p.bytes == *e => r.receive_preopened(p),
            _ => r.receive(e),
        })
    }

    /// The body of [`Replica::restore_opened`] and
    /// [`Replica::restore_opened_received`]: `receive` takes each item with what
    /// `open_all` gave for its position, and opens it itself when that is not
    /// the item's.
    fn restore_preopened<T>(
        cfg: ReplicaConfig,
        membership: Option<Membership>,
        items: &[T],
        open_all: impl FnOnce(&Opener, &[T]) -> Vec<PreOpened>,
        receive: impl Fn(&mut Replica, &T, Option<PreOpened>) -> Disposition,
    ) -> Self {
        let mut r = Replica::new(cfg);
        if let Some(m) = membership {
            r.set_membership(m);
        }
        let opener = r.opener();
        let mut opened = open_all(&opener, items).into_iter();
        drop(opener);
        // Automerge: one `apply_changes` for the whole history.
        #[cfg(feature = "automerge")]
        if let Crdt::Automerge(d) = &mut r.crdt {
            d.defer();
        }
        for e in items {
            receive(&mut r, e, opened.next());
        }
        // A rebuild meanwhile made a fresh document, which applied as it went.
        #[cfg(feature = "automerge")]
        if let Crdt::Automerge(d) = &mut r.crdt
            && d.apply_deferred().is_err()
        {
            // As the strict path: every envelope applied alone, failures counted.
            r.rebuild_doc();
        }
        r.restored()
    }

    /// [`Replica::restore`] (or, with a membership,
    /// [`Replica::restore_with_membership`]) of envelopes already decoded (a
    /// storage pull decodes each once: `Space::pull_received`): each is received
    /// with [`Replica::receive_received`], one after the other, so every
    /// envelope is opened strictly and gets the verdict [`Replica::receive`]
    /// gives its bytes; none is decoded again.
    pub fn restore_received(
        cfg: ReplicaConfig,
        membership: Option<Membership>,
        envelopes: Vec<ReceivedEnvelope>,
    ) -> Self {
        let mut r = Replica::new(cfg);
        if let Some(m) = membership {
            r.set_membership(m);
        }
        for e in envelopes {
            r.receive_received(e);
        }
        r.restored()
    }

    /// [`Replica::restore_opened`] of envelopes already decoded: `open_all` is
    /// given the envelopes to open with [`Opener::open_received`] (no decoding
    /// again), possibly on several threads; the results are received in the
    /// order given, exactly as [`Replica::receive_received`] would, and an item
    /// opened under another context, or missing, is opened again here. The same
    /// verdicts, state and history as [`Replica::restore_opened`] on the bytes.
    pub fn restore_opened_received<F>(
        cfg: ReplicaConfig,
        membership: Option<Membership>,
        envelopes: &[ReceivedEnvelope],
        open_all: F,
    ) -> Self
    where
        F: FnOnce(&Opener, &[ReceivedEnvelope]) -> Vec<PreOpened>,
    {
        Replica::restore_preopened(cfg, membership, envelopes, open_all, |r, e, p| match p {
            Some(p) if p.bytes == e.bytes() => r.receive_preopened(p),
            _ => r.receive_received(e.clone()),
        })
    }

    /// Opens envelopes under this replica's current context, independently of the
    /// replica (it is `Send` and `Sync`; see [`Replica::restore_opened`]).
    pub fn opener(&self) -> Opener {
        Opener {
            ctx: Arc::clone(&self.ctx),
            keys: Arc::clone(&self.keys),
        }
    }

    /// Receives an envelope opened by an [`Opener`] of this replica: the same
    /// disposition as [`Replica::receive`] on its bytes. If the replica's context
    /// changed since (a membership update), the envelope is opened again.
    pub fn receive_preopened(&mut self, p: PreOpened) -> Disposition {
        if !Arc::ptr_eq(&p.ctx, &self.ctx) {
            return self.receive(&p.bytes);
        }
        match p.outcome {
            Err(e) => Disposition::Rejected {
                id: None,
                class: e.class(),
                reason: e.to_string(),
            },
            Ok((id, opened)) => match self.seen(&id) {
                Some(d) => d,
                None => self.receive_opened(id, opened, p.bytes),
            },
        }
    }

    /// The document id.
    pub fn doc_id(&self) -> &[u8; 32] {
        &self.cfg.doc_id
    }

    /// This device's key.
    pub fn device_key(&self) -> [u8; 32] {
        self.cfg.device.public_bytes()
    }

    /// The Yjs document, for editing (`None` for an Automerge replica).
    pub fn yjs(&self) -> Option<&YjsDoc> {
        match &self.crdt {
            Crdt::Yjs(d) => Some(d),
            _ => None,
        }
    }

    /// The Automerge document, for editing (`None` for a Yjs replica).
    #[cfg(feature = "automerge")]
    pub fn automerge_mut(&mut self) -> Option<&mut AutomergeDoc> {
        match &mut self.crdt {
            Crdt::Automerge(d) => Some(d.as_mut()),
            _ => None,
        }
    }

    fn own_chain(&self) -> (u64, Option<EnvelopeId>) {
        let me = self.cfg.device.public_bytes();
        self.dag
            .chains
            .get(&me)
            .and_then(|c| c.iter().next_back())
            .and_then(|(seq, ids)| ids.first().map(|id| (*seq, Some(*id))))
            .unwrap_or((0, None))
    }

    /// Seals the local edits made since the last commit into one envelope, puts it
    /// in the outbox and returns its id; `None` if there were no edits.
    pub fn commit(&mut self) -> Result<Option<EnvelopeId>, DocError> {
        let taken = self.crdt.as_dyn().take_local();
        let Some((content_type, body)) = merge_unsent(self.unsent.take(), taken) else {
            return Ok(None);
        };
        let (seq, prev) = self.own_chain();
        let preds = envelope::heads_as_predecessors(&self.dag.heads, prev);
        let req = SealRequest {
            space_id: self.cfg.space_id,
            doc_id: self.cfg.doc_id,
            seq: seq + 1,
            prev,
            preds: preds.clone(),
            content_type,
            body: &body,
        };
        let sealed = match envelope::seal(&self.cfg.device, &self.cfg.epoch, &req, &mut self.rng) {
            Ok(s) => s,
            Err(e) => {
                // Keep the edits: they go out with the next successful commit, so
                // the chain never skips a clock or sequence number.
                self.unsent = Some((content_type, body));
                return Err(e.into());
            }
        };
        let progress = self.crdt.as_dyn().local_progress();
        let sorted = envelope::predecessors(&preds, prev);
        let node = Node {
            id: sealed.id,
            author: self.cfg.device.public_bytes(),
            seq: seq + 1,
            prev,
            preds: sorted,
            content_type,
            body,
            bytes: sealed.bytes.clone(),
            progress,
        };
        let watch = !self.dag.forks.is_empty();
        let before = if watch {
            self.dag.excluded_set()
        } else {
            BTreeSet::new()
        };
        self.dag.integrate(node);
        if (watch || !self.dag.forks.is_empty()) && self.dag.excluded_set() != before {
            // Our own chain is forked (a restored backup): the document follows
            // DOC-20 like every other replica's.
            self.rebuild_doc();
            self.reconcile_incarnation();
        }
        // A device without write authority keeps its envelope as evidence only:
        // its own edit leaves the document, as on every other replica (MEM-18).
        if self
            .authority
            .as_mut()
            .and_then(|a| a.check(&self.dag, &sealed.id))
            .is_some()
        {
            self.rebuild_doc();
            self.reconcile_incarnation();
        }
        self.outbox.push((sealed.id, sealed.bytes));
        Ok(Some(sealed.id))
    }

    /// Takes every sealed envelope waiting to be sent. The caller must have stored
    /// them durably before sending (DOC-15).
    pub fn drain_outbox(&mut self) -> Vec<(EnvelopeId, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// Handles one envelope from a peer, a relay or storage.
    pub fn receive(&mut self, bytes: &[u8]) -> Disposition {
        let decoded = match envelope::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                return Disposition::Rejected {
                    id: None,
                    class: e.class(),
                    reason: e.to_string(),
                };
            }
        };
        let id = decoded.id;
        if let Some(d) = self.seen(&id) {
            return d;
        }
        // Equivocation is detected by the DAG (both envelopes are kept), so the
        // context does not report it (ENV-16 is applied in DOC-9 form).
        let ctx = Keyed {
            ctx: &self.ctx,
            keys: &self.keys,
        };
        let opened = envelope::open_decoded(decoded, &ctx);
        self.receive_opened(id, opened, bytes.to_vec())
    }

    /// [`Replica::receive`] of an envelope already decoded: the same disposition
    /// as [`Replica::receive`] on its bytes (the same checks in the same order,
    /// spec §6.8 steps 7 to 15 on its decoding), without decoding it again.
    pub fn receive_received(&mut self, e: ReceivedEnvelope) -> Disposition {
        let id = *e.id();
        if let Some(d) = self.seen(&id) {
            return d;
        }
        let (bytes, decoded) = e.into_parts();
        let ctx = Keyed {
            ctx: &self.ctx,
            keys: &self.keys,
        };
        let opened = envelope::open_decoded(decoded, &ctx);
        self.receive_opened(id, opened, bytes)
    }

    /// The disposition of an id already integrated, buffered or rejected.
    fn seen(&self, id: &EnvelopeId) -> Option<Disposition> {
        if self.dag.nodes.contains_key(id)
            || self.dag.pending.contains_key(id)
            || self.dag.awaiting.contains_key(id)
        {
            return Some(Disposition::Duplicate { id: *id });
        }
        self.dag
            .rejected
            .get(id)
            .map(|class| Disposition::Rejected {
                id: Some(*id),
                class: *class,
                reason: "rejected before".into(),
            })
    }

    /// The receive path after opening (spec §6.8 steps 7 to 15 done by
    /// `envelope::open_decoded` under `self.ctx`).
    fn receive_opened(
        &mut self,
        id: EnvelopeId,
        opened: Result<envelope::OpenedEnvelope, clientful_core::Error>,
        bytes: Vec<u8>,
    ) -> Disposition {
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                // Not recorded: an unauthenticated input must never make an id
                // rejected for the envelope that really has it.
                return Disposition::Rejected {
                    id: Some(id),
                    class: e.class(),
                    reason: e.to_string(),
                };
            }
        };
        let node = Node {
            id,
            author: opened.header.author,
            seq: opened.header.seq,
            prev: opened.header.prev,
            preds: opened.header.preds,
            content_type: opened.content_type,
            body: opened.body,
            bytes,
            progress: ActorProgress::default(),
        };
        if let Some(dep) = node
            .deps()
            .find(|d| self.dag.rejected.contains_key(*d))
            .copied()
        {
            return self.reject_node(
                &node,
                ErrorClass::InvalidOperation,
                format!("depends on rejected envelope {}", hex8(&dep)),
            );
        }
        let missing: BTreeSet<EnvelopeId> = node
            .deps()
            .filter(|d| !self.dag.nodes.contains_key(*d))
            .copied()
            .collect();
        if !missing.is_empty() {
            let missing_list = missing.iter().copied().collect();
            return match self.dag.buffer(node, missing) {
                Ok(()) => Disposition::Buffered {
                    id,
                    missing: missing_list,
                },
                Err(reason) => Disposition::Rejected {
                    id: Some(id),
                    class: ErrorClass::LimitExceeded,
                    reason: reason.into(),
                },
            };
        }
        self.integrate_and_release(node)
    }

    /// Integrates `node` (its predecessors are integrated), then every buffered
    /// envelope that was waiting only for what got integrated.
    fn integrate_and_release(&mut self, node: Node) -> Disposition {
        let id = node.id;
        let first = self.integrate(node);
        let mut unblocked = Vec::new();
        // An envelope that waits for its index (DOC-22) releases nothing.
        let mut work: Vec<EnvelopeId> = if self.dag.awaiting.contains_key(&id) {
            Vec::new()
        } else {
            self.dag.resolve(&id)
        };
        while let Some(next) = work.pop() {
            let Some(n) = self.dag.unbuffer(&next) else {
                continue;
            };
            let nid = n.id;
            if let Disposition::Applied { .. } = self.integrate(n) {
                unblocked.push(nid);
            }
            if !self.dag.awaiting.contains_key(&nid) {
                work.extend(self.dag.resolve(&nid));
            }
        }
        match first {
            Disposition::Applied { id, .. } => Disposition::Applied { id, unblocked },
            other => other,
        }
    }

    fn reject_node(&mut self, node: &Node, class: ErrorClass, reason: String) -> Disposition {
        self.dag.reject(node.id, class);
        // Every buffered descendant is rejected too, whatever else it still misses:
        // its causal past holds an invalid envelope (DOC-16).
        let mut work = self.dag.take_waiters(&node.id);
        while let Some(w) = work.pop() {
            if let Some(n) = self.dag.unbuffer(&w) {
                self.dag.reject(n.id, ErrorClass::InvalidOperation);
                work.extend(self.dag.take_waiters(&n.id));
            }
        }
        Disposition::Rejected {
            id: Some(node.id),
            class,
            reason,
        }
    }

    /// Integrates a node whose dependencies are all integrated (DOC-6, DOC-9).
    fn integrate(&mut self, mut node: Node) -> Disposition {
        // Chain link: prev must be the author's envelope at seq - 1.
        let before = match (node.seq, node.prev) {
            (1, None) => ActorProgress::default(),
            (_, Some(p)) => match self.dag.nodes.get(&p) {
                Some(pn) if pn.author == node.author && pn.seq + 1 == node.seq => pn.progress,
                _ => {
                    return self.reject_node(
                        &node,
                        ErrorClass::InvalidOperation,
                        "prev is not the author's envelope at seq - 1".into(),
                    );
                }
            },
            _ => {
                return self.reject_node(
                    &node,
                    ErrorClass::InvalidOperation,
                    "bad chain link".into(),
                );
            }
        };
        let (progress, prepared) = match self.crdt.as_dyn_ref().validate_prepared(
            &node.author,
            node.content_type,
            &node.body,
            before,
        ) {
            Ok(p) => p,
            Err(DocError::UnassignedIndex { .. }) => {
                // DOC-22: not a verdict; wait for the membership.
                let id = node.id;
                if self.dag.awaiting.len() >= MAX_AWAITING {
                    return Disposition::Rejected {
                        id: Some(id),
                        class: ErrorClass::LimitExceeded,
                        reason: "buffer of envelopes awaiting a device index is full".into(),
                    };
                }
                self.dag.awaiting.insert(id, node);
                return Disposition::Buffered {
                    id,
                    missing: Vec::new(),
                };
            }
            Err(e) => return self.reject_node(&node, e.class(), e.to_string()),
        };
        node.progress = progress;
        let (id, author, content_type) = (node.id, node.author, node.content_type);
        let body = node.body.clone();
        // DOC-9/DOC-20: which envelopes are excluded can change with any
        // integration once an author equivocated (a fork, a new witness).
        let watch = !self.dag.forks.is_empty();
        let before = if watch {
            self.dag.excluded_set()
        } else {
            BTreeSet::new()
        };
        let new_fork = self.dag.integrate(node);
        let after = if self.dag.forks.is_empty() {
            BTreeSet::new()
        } else {
            self.dag.excluded_set()
        };
        let excluded_now = after.contains(&id);
        let others_changed = before
            .iter()
            .filter(|x| **x != id)
            .ne(after.iter().filter(|x| **x != id));
        let denied = self
            .authority
            .as_mut()
            .and_then(|a| a.check(&self.dag, &id));
        if others_changed {
            // Envelopes left or re-entered the document: rebuild it (this one
            // included, if it is applied).
            self.rebuild();
        } else if !excluded_now
            && denied.is_none()
            && self
                .crdt
                .as_dyn()
                .apply_prepared(prepared, content_type, &body)
                .is_err()
        {
            self.apply_errors += 1;
        }
        if excluded_now {
            let fork = self.dag.forks.get(&author).copied().unwrap_or(0);
            return Disposition::Rejected {
                id: Some(id),
                class: ErrorClass::Equivocation,
                reason: if new_fork.is_some() {
                    format!("author equivocated at seq {fork}; kept as evidence")
                } else {
                    "author equivocated earlier; kept as evidence".into()
                },
            };
        }
        if let Some(class) = denied {
            return Disposition::Rejected {
                id: Some(id),
                class,
                reason: "author lacks write authority (MEM-18); kept as evidence".into(),
            };
        }
        Disposition::Applied {
            id,
            unblocked: Vec::new(),
        }
    }

    /// Rebuilds the document from the DAG, leaving out excluded envelopes. Local
    /// edits not yet committed are committed first so nothing is lost.
    fn rebuild(&mut self) {
        let _ = self.commit();
        self.rebuild_doc();
        self.reconcile_incarnation();
    }

    /// The device's own progress according to its envelope chain (the last own
    /// envelope's progress), if it has written anything.
    fn own_chain_progress(&self) -> Option<ActorProgress> {
        let me = self.cfg.device.public_bytes();
        self.dag
            .chains
            .get(&me)?
            .iter()
            .next_back()
            .and_then(|(_, ids)| ids.first())
            .and_then(|id| self.dag.nodes.get(id))
            .map(|n| n.progress)
    }

    /// Keeps the local CRDT actor consistent with the device's envelope chain
    /// (DOC-18): after a rebuild left some of the device's own operations pending
    /// inside the CRDT (they built on excluded content), the local clock or seq
    /// would fall behind the chain and the next envelope would be invalid. The
    /// replica then moves to the next actor incarnation, whose clock starts afresh.
    fn reconcile_incarnation(&mut self) {
        let Some(chain) = self.own_chain_progress() else {
            return;
        };
        if chain.incarnation > self.incarnation {
            self.incarnation = chain.incarnation;
            self.rebuild_doc();
        }
        let local = self.crdt.as_dyn().local_progress();
        if chain.incarnation == self.incarnation
            && local.next < chain.next
            && self.incarnation < crate::binding::MAX_INCARNATION
        {
            self.incarnation += 1;
            self.rebuild_doc();
        }
    }

    /// A fresh CRDT document for the current incarnation, with every integrated,
    /// non-excluded envelope applied in integration order.
    fn rebuild_doc(&mut self) {
        let mut fresh = Crdt::new(&self.cfg, &self.indices, self.incarnation);
        for id in &self.dag.order {
            if let Some(n) = self.dag.nodes.get(id)
                && !self.dag.excluded(id)
                && !self
                    .authority
                    .as_ref()
                    .is_some_and(|a| a.denied.contains_key(id))
                && fresh.as_dyn().apply(n.content_type, &n.body).is_err()
            {
                self.apply_errors += 1;
            }
        }
        self.crdt = fresh;
        // The fresh document has no pending local edits; drop the echo of re-applying
        // our own envelopes.
        let _ = self.crdt.as_dyn().take_local();
    }

    /// The verdict on `id` (DOC-7).
    pub fn verdict(&self, id: &EnvelopeId) -> Verdict {
        if self.dag.nodes.contains_key(id) {
            if let Some(c) = self.authority.as_ref().and_then(|a| a.denied.get(id)) {
                Verdict::Rejected(*c)
            } else if self.dag.excluded(id) {
                Verdict::Excluded
            } else {
                Verdict::Applied
            }
        } else if let Some(c) = self.dag.rejected.get(id) {
            Verdict::Rejected(*c)
        } else if self.dag.pending.contains_key(id) || self.dag.awaiting.contains_key(id) {
            Verdict::Buffered
        } else {
            Verdict::Unknown
        }
    }

    /// Feeds the space's membership (spec §11.7): the known signers and epoch
    /// keys for opening, the current epoch for sealing, and the write authority
    /// every envelope is checked against (MEM-18). Called again whenever the
    /// membership changes; envelopes whose verdict changed are excluded from (or
    /// restored to) the document by a rebuild, as for equivocation (DOC-7).
    pub fn set_membership(&mut self, membership: Membership) {
        let ctx = Arc::make_mut(&mut self.ctx);
        ctx.signers = membership.view.signers();
        let indices = DeviceIndices::from_claims(membership.view.claims.clone());
        // Claims never move (MEM-30), but new ones arrive: remote payloads are
        // checked against all of them, and if this device's own primary index
        // changed (a concurrent addition of it with a lower position), the
        // document is rebuilt under the new client id (DOC-21).
        let me = self.cfg.device.public_bytes();
        let grew = *self.indices != indices;
        let renumbered = self.indices.primary(&me) != indices.primary(&me);
        if grew {
            self.indices = Arc::new(indices);
            if let Crdt::Yjs(y) = &mut self.crdt {
                y.set_indices(Arc::clone(&self.indices));
            }
        }
        let ctx = Arc::make_mut(&mut self.ctx);
        ctx.epochs = membership.keys.clone();
        if !ctx.epochs.iter().any(|k| k.id() == membership.current.id()) {
            ctx.epochs.push(membership.current.clone());
        }
        self.keys = signer_keys(&self.ctx);
        self.cfg.epoch = membership.current.clone();
        let old = self
            .authority
            .as_ref()
            .map(|a| a.denied.clone())
            .unwrap_or_default();
        let mut authority = Authority::new(membership);
        authority.recheck_all(&self.dag);
        let changed = authority.denied != old;
        self.authority = Some(authority);
        if changed || renumbered {
            self.rebuild();
        }
        if grew && !self.dag.awaiting.is_empty() {
            // DOC-22: envelopes that waited for a device index try again.
            let waiting = std::mem::take(&mut self.dag.awaiting);
            for (_, node) in waiting {
                self.integrate_and_release(node);
            }
        }
    }

    /// The materialized document as canonical JSON.
    pub fn materialize(&mut self) -> Json {
        self.crdt.as_dyn().materialize()
    }

    /// `StateDigest` (DOC-12).
    pub fn state_digest(&mut self) -> [u8; 32] {
        digest::state_digest(&self.materialize())
    }

    /// `HistoryDigest` (DOC-13).
    pub fn history_digest(&self) -> [u8; 32] {
        digest::history_digest(self.dag.nodes.keys())
    }

    /// The DAG heads.
    pub fn heads(&self) -> Vec<EnvelopeId> {
        self.dag.heads.iter().copied().collect()
    }

    /// Read access to the DAG (sync, storage, inspection).
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The highest `seq` of each author's chain integrated here: what a device
    /// that removes or revokes an author records as its removal cut for this
    /// document (spec MEM-18).
    pub fn chain_heights(&self) -> std::collections::BTreeMap<[u8; 32], u64> {
        let mut out = std::collections::BTreeMap::new();
        for n in self.dag.nodes.values() {
            let h = out.entry(n.author).or_insert(0u64);
            *h = (*h).max(n.seq);
        }
        out
    }

    /// Authors flagged as equivocating, with the seq where they forked.
    pub fn equivocators(&self) -> Vec<([u8; 32], u64)> {
        self.dag.forks.iter().map(|(a, s)| (*a, *s)).collect()
    }

    /// Every integrated envelope, in integration order: what a device persists.
    pub fn persisted_envelopes(&self) -> Vec<Vec<u8>> {
        self.dag
            .order
            .iter()
            .filter_map(|id| self.dag.nodes.get(id).map(|n| n.bytes.clone()))
            .collect()
    }

    /// CRDT apply errors seen (validated payloads the library refused).
    pub fn apply_errors(&self) -> u64 {
        self.apply_errors
    }
}

/// Local edits that failed to seal, merged with the edits taken now.
fn merge_unsent(
    unsent: Option<(u32, Vec<u8>)>,
    taken: Option<(u32, Vec<u8>)>,
) -> Option<(u32, Vec<u8>)> {
    match (unsent, taken) {
        (None, t) | (t, None) => t,
        (Some((ct, old)), Some((_, new))) if ct == crate::content::AUTOMERGE_CHANGES => {
            Some((ct, [old, new].concat()))
        }
        (Some((ct, old)), Some((_, new))) => yrs::merge_updates_v1([old, new])
            .ok()
            .map(|merged| (ct, merged)),
    }
}

fn hex8(id: &EnvelopeId) -> String {
    id.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Short class name, for logs and tests.
pub fn class_str(class: ErrorClass) -> &'static str {
    class_name(class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::World;

    /// With the `automerge` feature (tests always have it, through `test-utils`)
    /// both CRDTs are built and `try_new` builds either replica.
    #[test]
    fn try_new_builds_every_crdt_this_build_holds() {
        for kind in [CrdtKind::Yjs, CrdtKind::Automerge] {
            assert!(kind.is_built());
            let w = World::new(5, 2, kind);
            let r = Replica::try_new(w.config(0, 0));
            assert!(r.is_ok(), "{kind:?}: {:?}", r.err());
        }
        assert_eq!(CrdtKind::Yjs.name(), "yjs");
        assert_eq!(CrdtKind::Automerge.name(), "automerge");
        assert_eq!(
            DocError::CrdtNotBuilt { crdt: "automerge" }.class(),
            ErrorClass::UnsupportedVersion
        );
    }
}
