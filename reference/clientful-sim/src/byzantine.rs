//! Byzantine member devices: known signers that break the document rules.
//!
//! A [`Forger`] holds a member device's own key and the epoch key (a Byzantine
//! *member* has both), and seals envelopes that honest replicas must handle:
//! equivocation twins, forged predecessors, spoofed CRDT actors, garbage payloads
//! and missing-parent floods. Raw garbage bytes (not an envelope at all) come from
//! [`garbage_bytes`].

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, TextEncoding};
use clientful_core::envelope::{self, EnvelopeId, SealRequest};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::limits::MAX_SEQ;
use clientful_doc::dag::Node;
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Replica, binding, content};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use yrs::{Doc, Options, ReadTxn, StateVector, Text, Transact};

use crate::rng::{below, bytes, bytes32, index};

/// A Byzantine behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behaviour {
    /// Two different envelopes with the same seq, sent to different peers.
    Equivocate,
    /// Envelopes whose predecessors are random ids nobody has.
    ForgePreds,
    /// A CRDT payload written under another device's bound client id / actor.
    SpoofActor,
    /// Random bytes, and validly sealed envelopes with garbage CRDT payloads.
    Garbage,
    /// Many envelopes whose predecessors are unknown.
    MissingParentFlood,
}

/// Every behaviour, in a fixed order.
pub const ALL_BEHAVIOURS: [Behaviour; 5] = [
    Behaviour::Equivocate,
    Behaviour::ForgePreds,
    Behaviour::SpoofActor,
    Behaviour::Garbage,
    Behaviour::MissingParentFlood,
];

/// A sealed envelope: id and bytes.
pub type Sealed = (EnvelopeId, Vec<u8>);

/// Seals arbitrary envelopes as one member device. See the module documentation.
#[derive(Debug)]
pub struct Forger {
    key: SigningKey,
    epoch: EpochKey,
    space_id: [u8; 32],
    doc_id: [u8; 32],
    crdt: CrdtKind,
    signers: Vec<[u8; 32]>,
    rng: ChaCha20Rng,
}

impl Forger {
    /// The forger of device `device` of `world`; `seed` drives its nonces and
    /// random content.
    pub fn new(world: &World, device: usize, seed: u64) -> Self {
        Forger {
            key: world.device(device),
            epoch: world.epoch_key(),
            space_id: world.space_id,
            doc_id: world.doc_id,
            crdt: world.crdt,
            signers: world.signers(),
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// The device key.
    pub fn author(&self) -> [u8; 32] {
        self.key.public_bytes()
    }

    /// The forger's generator (for callers that need more randomness).
    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    /// Seals anything the envelope layer accepts to seal (`None` if it refuses,
    /// e.g. `seq` 0 or a `prev` that does not match `seq`).
    pub fn seal(
        &mut self,
        seq: u64,
        prev: Option<EnvelopeId>,
        preds: Vec<EnvelopeId>,
        content_type: u32,
        body: &[u8],
    ) -> Option<Sealed> {
        let req = SealRequest {
            space_id: self.space_id,
            doc_id: self.doc_id,
            seq,
            prev,
            preds,
            content_type,
            body,
        };
        envelope::seal(&self.key, &self.epoch, &req, &mut self.rng)
            .ok()
            .map(|s| (s.id, s.bytes))
    }

    /// Equivocation: a second envelope with the same seq, prev and content as
    /// `node` (one of the device's own), but a fresh nonce and hence another id.
    pub fn twin(&mut self, node: &Node) -> Option<Sealed> {
        self.seal(
            node.seq,
            node.prev,
            node.preds.clone(),
            node.content_type,
            &node.body,
        )
    }

    /// A plausible but useless CRDT body of the document's kind.
    fn filler(&mut self) -> (u32, Vec<u8>) {
        match self.crdt {
            // An empty Yjs update v1: no structs, empty delete set.
            CrdtKind::Yjs => (content::YJS_UPDATE_V1, vec![0, 0]),
            CrdtKind::Automerge => (content::AUTOMERGE_CHANGES, bytes(&mut self.rng, 16)),
        }
    }

    /// An envelope at `seq` whose `preds` (1 to 3) are random ids nobody has.
    pub fn forged_preds(&mut self, seq: u64, prev: Option<EnvelopeId>) -> Option<Sealed> {
        let n = 1 + index(&mut self.rng, 3);
        let preds = (0..n).map(|_| bytes32(&mut self.rng)).collect();
        let (ct, body) = self.filler();
        self.seal(seq, prev, preds, ct, &body)
    }

    /// A flood envelope: random seq, random prev, random preds, all unknown.
    pub fn flood_one(&mut self) -> Option<Sealed> {
        let seq = 2 + below(&mut self.rng, 1000).min(MAX_SEQ - 2);
        let prev = Some(bytes32(&mut self.rng));
        self.forged_preds(seq, prev)
    }

    /// An envelope at `seq` carrying a CRDT payload written as `victim`'s bound
    /// Yjs client id or Automerge actor (DOC-3 forbids it).
    pub fn spoof(
        &mut self,
        victim: &[u8; 32],
        seq: u64,
        prev: Option<EnvelopeId>,
        preds: Vec<EnvelopeId>,
    ) -> Option<Sealed> {
        let index = self.signers.iter().position(|k| k == victim)? as u64;
        let (ct, body) = spoof_payload(self.crdt, victim, index, &self.doc_id, "spoofed ✍")?;
        self.seal(seq, prev, preds, ct, &body)
    }

    /// A validly sealed envelope whose CRDT payload is garbage: random bytes under
    /// the document's content type, or under a content type that is not the
    /// document's.
    pub fn garbage_payload(
        &mut self,
        seq: u64,
        prev: Option<EnvelopeId>,
        preds: Vec<EnvelopeId>,
    ) -> Option<Sealed> {
        let len = 1 + index(&mut self.rng, 64);
        let body = bytes(&mut self.rng, len);
        let ct = match (index(&mut self.rng, 3), self.crdt) {
            (0, _) => 1000 + u32::try_from(below(&mut self.rng, 1000)).unwrap_or(0),
            (1, CrdtKind::Yjs) => content::AUTOMERGE_CHANGES,
            (1, CrdtKind::Automerge) => content::YJS_UPDATE_V1,
            (_, CrdtKind::Yjs) => content::YJS_UPDATE_V1,
            (_, CrdtKind::Automerge) => content::AUTOMERGE_CHANGES,
        };
        self.seal(seq, prev, preds, ct, &body)
    }

    /// `n` flood envelopes.
    pub fn flood(&mut self, n: usize) -> Vec<Sealed> {
        (0..n).filter_map(|_| self.flood_one()).collect()
    }
}

/// A CRDT payload that writes `text` as `victim` (device index `victim_index`,
/// DOC-19) in `doc_id`: a Yjs update under the victim's assigned client id, or
/// an Automerge change under its bound actor.
pub fn spoof_payload(
    crdt: CrdtKind,
    victim: &[u8; 32],
    victim_index: u64,
    doc_id: &[u8; 32],
    text: &str,
) -> Option<(u32, Vec<u8>)> {
    match crdt {
        CrdtKind::Yjs => {
            let id = binding::yjs_client_id(victim_index, 0);
            let mut options = Options::with_client_id(yrs::block::ClientID::new(id));
            options.offset_kind = yrs::OffsetKind::Utf16;
            let doc = Doc::with_options(options);
            let t = doc.get_or_insert_text(crate::edit::TEXT);
            {
                let mut txn = doc.transact_mut();
                t.insert(&mut txn, 0, text);
            }
            let update = doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            Some((content::YJS_UPDATE_V1, update))
        }
        CrdtKind::Automerge => {
            let actor = binding::automerge_actor(victim, doc_id);
            let mut doc = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit)
                .with_actor(automerge::ActorId::from(actor.to_vec()));
            let obj = doc
                .put_object(automerge::ROOT, crate::edit::TEXT, ObjType::Text)
                .ok()?;
            doc.splice_text(&obj, 0, 0, text).ok()?;
            doc.commit();
            let change = doc.get_last_local_change()?;
            Some((content::AUTOMERGE_CHANGES, change.raw_bytes().to_vec()))
        }
    }
}

/// Random bytes that are (almost certainly) not an envelope.
pub fn garbage_bytes(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let len = index(rng, 200);
    bytes(rng, len)
}

/// The highest `(seq, id)` of `author`'s integrated chain in `replica`, or
/// `(0, None)`.
pub fn chain_tip(replica: &Replica, author: &[u8; 32]) -> (u64, Option<EnvelopeId>) {
    replica
        .dag()
        .chains
        .get(author)
        .and_then(|c| c.iter().next_back())
        .and_then(|(seq, ids)| ids.first().map(|id| (*seq, Some(*id))))
        .unwrap_or((0, None))
}
