//! One device's replica of a space's membership log (spec §11): receives
//! operations (envelopes), key messages and welcomes in any order, keeps the
//! causal buffer and the held envelopes it cannot open yet, resolves the state,
//! learns the epoch keys addressed to it, and authors operations. Sans-IO: the
//! caller moves the bytes in [`SpaceReplica::outbox`] and supplies randomness.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;

use crate::ErrorClass;
use crate::envelope::{self, EnvelopeId, OpenContext, SealRequest};
use crate::error::Error;
use crate::identity::{self, DeviceKeys, VerifiedDevice};
use crate::keys::{EpochKey, SigningKey};
use crate::limits::MAX_PREDECESSORS;
use crate::{labels, suite};

use super::authority::{DeviceWrite, Ended, WriteView};
use super::delivery;
use super::epoch::{self, Delivery, KeyRing, Recipient};
use super::invite;
use super::ops::{self, BodyBuilder, Cut, Op, OpBody, Role, Rotation, Scope};
use super::resolve::{self, Entry};
use super::state::{DeviceId, EpochId, OpId, State, UserKey};

mod attestation;
mod recovery;
pub use attestation::{AttestationBody, MAX_ATTESTATION_BYTES};
pub use recovery::HeldRecovery;

/// Most envelopes held for a key the device does not have yet (MEM-LIM-4).
pub const MAX_HELD: usize = 4096;
/// Most operations in one membership log (MEM-LIM-5).
pub const MAX_OPS: usize = 4096;

/// The document id of a space's membership log (MEM-2).
pub fn membership_doc_id(space_id: &[u8; 32]) -> Result<[u8; 32], Error> {
    suite::hash_with_label(labels::ID_MEMBERSHIP_DOC, space_id)
}

/// Something to send.
/// Exhaustive on purpose: a driver must act on every output; a new one must fail to compile in every shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// An operation envelope for every member (broadcast and storage).
    Envelope(Vec<u8>),
    /// A key message (broadcast and storage), sent before its operation.
    KeyMessage(Vec<u8>),
    /// A welcome for one device.
    Welcome {
        /// Recipient device.
        device_id: DeviceId,
        /// Encoded `SealedKey`.
        bytes: Vec<u8>,
    },
}

/// What [`SpaceReplica::receive`] did with an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// Accepted (with every buffered operation it released).
    Accepted(Vec<OpId>),
    /// Waiting for predecessors.
    Buffered,
    /// Sealed under an epoch this device does not hold (yet): held (ERR-7).
    Held,
    /// Seen before.
    Duplicate,
    /// A key-delivery carrier (KEY-16): its key message or welcome was handled
    /// (learning a key if it was addressed to this device).
    Delivered,
    /// Rejected with a class; `id` is `None` if not even an envelope.
    Rejected {
        /// The envelope id.
        id: Option<OpId>,
        /// Class.
        class: ErrorClass,
    },
}

/// The verdict on one operation (MEM-17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Accepted and standing.
    Accepted,
    /// Accepted from its causal past, but void in the resolved state.
    Void(ErrorClass),
    /// Rejected from its causal past.
    Rejected(ErrorClass),
    /// Not (yet) integrated.
    Unknown,
}

/// Something the device must report to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alarm {
    /// A `CREATE_SPACE` of this space other than the pinned genesis (MEM-26,
    /// MEM-27): whoever holds a device key the creator's user key certified
    /// signed a second genesis. It is rejected; it never competes.
    RivalGenesis {
        /// The rival operation.
        op: OpId,
        /// Its author device key.
        author: [u8; 32],
    },
    /// A welcome whose signer was not an active member device where the log
    /// places it (KEY-21): a device no operation added (`NOT_A_MEMBER`), or one
    /// removed or revoked in the causal past of an epoch it delivered
    /// (`REMOVED_MEMBER`). Its secrets are dropped unless the log vouches for
    /// them (KEY-22).
    ForeignWelcome {
        /// The signing device's key (from its certificate).
        signer: [u8; 32],
        /// The signing device's id.
        device_id: DeviceId,
        /// `NOT_A_MEMBER` or `REMOVED_MEMBER`.
        class: ErrorClass,
    },
    /// Two or more `ROTATE_USER` operations compete for one user key (MEM-32):
    /// all are void. The old key leaked (or two devices of the user rotated
    /// at once): an admin should remove the user and add it again under the
    /// key the person confirms out of band.
    RivalRotation {
        /// The contested old user key.
        user: UserKey,
        /// The rival operations.
        ops: Vec<OpId>,
    },
    /// A key message gave this device a secret that does not match the epoch id
    /// committed to (KEY-7).
    KeyMismatch {
        /// The epoch.
        epoch_id: EpochId,
        /// The key message.
        key_message: [u8; 32],
    },
}

/// A verified welcome this device received (KEY-20), kept to check its
/// signer's standing once the log shows it (KEY-21).
#[derive(Debug, Clone)]
struct WelcomeIn {
    signer: VerifiedDevice,
    added_by: OpId,
    epochs: Vec<EpochId>,
    /// Whether the standing check ran (its named operation is accepted).
    checked: bool,
    /// Epochs whose creation the standing check has covered.
    covered: BTreeSet<EpochId>,
    /// Set once the signer failed the check (final).
    foreign: Option<ErrorClass>,
}

/// A redemption waiting for an admin's `ADMIT` (MEM-25), as
/// [`SpaceReplica::pending_admissions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAdmission {
    /// The `REDEEM_INVITE` operation.
    pub redemption: OpId,
    /// The redeeming user.
    pub user: UserKey,
    /// The role asked for.
    pub role: Role,
    /// The invite redeemed.
    pub invite_key: [u8; 32],
    /// Whether the invite is single-use.
    pub single_use: bool,
    /// Other redemptions waiting for the same single-use invite: only one of
    /// them can be admitted, so an application should ask a person which.
    pub rivals: usize,
    /// Whether an `ADMIT` would stand now.
    pub admissible: bool,
}

/// The device's identity in the space.
#[derive(Debug)]
pub struct Identity {
    /// User key (public).
    pub user: UserKey,
    /// Device keys.
    pub device: DeviceKeys,
    /// Device certificate bytes.
    pub certificate: Vec<u8>,
    /// The verified certificate.
    pub verified: VerifiedDevice,
}

impl Identity {
    /// Certifies `device` with `user` and verifies the result.
    pub fn new(user: &SigningKey, device: DeviceKeys) -> Result<Identity, Error> {
        let certificate = identity::issue_certificate(user, &device)?;
        let verified = identity::verify_certificate(&certificate, Some(&user.public_bytes()))?;
        Ok(Identity {
            user: user.public_bytes(),
            device,
            certificate,
            verified,
        })
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.verified.device_id
    }
}

struct Ctx<'a> {
    space_id: [u8; 32],
    doc_id: [u8; 32],
    keys: &'a KeyRing,
    invite_keys: &'a BTreeMap<EpochId, EpochKey>,
}

impl OpenContext for Ctx<'_> {
    fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }
    fn doc_id(&self) -> Option<&[u8; 32]> {
        Some(&self.doc_id)
    }
    // Every signer opens: authority is decided by MEM-17 (NOT_A_MEMBER), and the
    // redeeming device is new by definition.
    fn is_known_signer(&self, _author: &[u8; 32]) -> bool {
        true
    }
    fn epoch_key(&self, epoch_id: &[u8; 32]) -> Option<&EpochKey> {
        self.keys
            .get(epoch_id)
            .or_else(|| self.invite_keys.get(epoch_id))
    }
}

/// A device's replica of one space's membership. See the module documentation.
pub struct SpaceReplica {
    space_id: [u8; 32],
    doc_id: [u8; 32],
    delivery_doc: [u8; 32],
    carriers: BTreeMap<OpId, Vec<u8>>,
    not_addressed: BTreeSet<EpochId>,
    me: Identity,
    entries: BTreeMap<OpId, Entry>,
    bytes: BTreeMap<OpId, Vec<u8>>,
    heads: BTreeSet<OpId>,
    pending: BTreeMap<OpId, (Op, Vec<u8>)>,
    rejected: BTreeMap<OpId, ErrorClass>,
    held: Vec<Vec<u8>>,
    opened: KeyRing,
    keys: KeyRing,
    genesis: Option<OpId>,
    rivals: BTreeSet<OpId>,
    invite_keys: BTreeMap<EpochId, EpochKey>,
    key_messages: BTreeMap<[u8; 32], Vec<u8>>,
    welcomed: BTreeSet<(DeviceId, EpochId)>,
    welcomes_in: Vec<WelcomeIn>,
    vouched_elsewhere: BTreeSet<EpochId>,
    alarms: Vec<Alarm>,
    state: State,
    current: Option<EpochId>,
    epoch_events: Vec<EpochId>,
    outbox: Vec<Outgoing>,
    /// Recovery shares sealed to this device, by kit id, with the signer of the
    /// carrier that brought them (REC-4).
    recovery_held: BTreeMap<[u8; 32], (crate::recovery::HeldShare, [u8; 32])>,
    /// Attestation carriers' bodies, by carrier id, with their signer (ATT-12).
    attestations: BTreeMap<OpId, ([u8; 32], Vec<u8>)>,
}

impl core::fmt::Debug for SpaceReplica {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpaceReplica")
            .field("space_id", &self.space_id)
            .field("ops", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl SpaceReplica {
    /// A replica of `space_id` for a device that has no keys yet: it learns them
    /// from a welcome or redeems an invite.
    pub fn new(space_id: [u8; 32], me: Identity) -> Result<SpaceReplica, Error> {
        Ok(SpaceReplica {
            space_id,
            doc_id: membership_doc_id(&space_id)?,
            delivery_doc: delivery::delivery_doc_id(&space_id)?,
            carriers: BTreeMap::new(),
            recovery_held: BTreeMap::new(),
            attestations: BTreeMap::new(),
            not_addressed: BTreeSet::new(),
            me,
            entries: BTreeMap::new(),
            bytes: BTreeMap::new(),
            heads: BTreeSet::new(),
            pending: BTreeMap::new(),
            rejected: BTreeMap::new(),
            held: Vec::new(),
            opened: KeyRing::default(),
            keys: KeyRing::default(),
            genesis: None,
            rivals: BTreeSet::new(),
            invite_keys: BTreeMap::new(),
            key_messages: BTreeMap::new(),
            welcomed: BTreeSet::new(),
            welcomes_in: Vec::new(),
            vouched_elsewhere: BTreeSet::new(),
            alarms: Vec::new(),
            state: State::default(),
            current: None,
            epoch_events: Vec::new(),
            outbox: Vec::new(),
        })
    }

    /// A replica of `space_id` pinned to `genesis`, the id of its `CREATE_SPACE`
    /// as the device was given it (an invite or link code, MEM-26): any other
    /// `CREATE_SPACE` is rejected and reported (MEM-27).
    pub fn join(space_id: [u8; 32], genesis: OpId, me: Identity) -> Result<SpaceReplica, Error> {
        let mut r = SpaceReplica::new(space_id, me)?;
        r.genesis = Some(genesis);
        Ok(r)
    }

    /// Pins the genesis (MEM-26) of a replica built with [`Self::new`], before
    /// it receives anything. Fails with `WRONG_CONTEXT` if another genesis is
    /// already pinned.
    pub fn pin_genesis(&mut self, genesis: OpId) -> Result<(), Error> {
        match self.genesis {
            Some(g) if g != genesis => Err(Error::WrongContext { what: "genesis" }),
            _ => {
                self.genesis = Some(genesis);
                Ok(())
            }
        }
    }

    /// The pinned genesis (MEM-26): given at creation or joining, or, for a
    /// replica built with [`Self::new`] and never pinned, the first
    /// `CREATE_SPACE` it accepted (a device reloading its own log).
    pub fn genesis(&self) -> Option<OpId> {
        self.genesis
    }

    /// `CREATE_SPACE` operations of this space that are not the pinned genesis,
    /// rejected and kept as evidence (MEM-27).
    pub fn rival_genesis(&self) -> Vec<OpId> {
        self.rivals.iter().copied().collect()
    }

    /// Creates a space (MEM-6): the creator's device writes `CREATE_SPACE`.
    pub fn create<R: CryptoRng + ?Sized>(rng: &mut R, me: Identity) -> Result<SpaceReplica, Error> {
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let mut c = [0u8; 64];
        c[..32].copy_from_slice(&me.user);
        c[32..].copy_from_slice(&nonce);
        let space_id = suite::hash_with_label(labels::ID_SPACE, &c)?;
        let mut r = SpaceReplica::new(space_id, me)?;
        let e0 = epoch::new_epoch(rng, &space_id)?;
        let to = [Recipient {
            device_id: r.me.device_id(),
            x25519: r.me.verified.device_x25519,
        }];
        let (km, km_id) = epoch::key_message(rng, &space_id, &e0, &to)?;
        let rotation = Rotation {
            epoch_id: *e0.id(),
            prev_epochs: Vec::new(),
            chain_links: Vec::new(),
            recipients: alloc::vec![r.me.device_id()],
            key_message: km_id,
        };
        let body = BodyBuilder(pb::MembershipOp {
            user_key: r.me.user.to_vec(),
            certificates: alloc::vec![r.me.certificate.clone()],
            nonce: nonce.to_vec(),
            ..Default::default()
        })
        .rotation(&rotation)
        .encode();
        r.opened.insert(e0.clone());
        r.key_messages.insert(km_id, km.clone());
        r.outbox.push(Outgoing::KeyMessage(km));
        let genesis = r.publish(rng, ops::CT_CREATE_SPACE, &body, &e0)?;
        r.genesis = Some(genesis);
        Ok(r)
    }

    /// Redeems an invite code (MEM-21): a replica for the invitee's device whose
    /// outbox holds the `REDEEM_INVITE` operation. The device learns the space's
    /// keys from a welcome once its addition is settled.
    pub fn redeem<R: CryptoRng + ?Sized>(
        rng: &mut R,
        code: &[u8],
        me: Identity,
        role: Role,
    ) -> Result<SpaceReplica, Error> {
        let code = invite::decode(code)?;
        let keys = invite::derive(&code.space_id, &code.secret)?;
        let mut r = SpaceReplica::join(code.space_id, code.genesis, me)?;
        let inv_epoch = epoch::epoch_key(&code.space_id, &keys.epoch_secret)?;
        r.invite_keys.insert(*inv_epoch.id(), inv_epoch.clone());
        let ids = [r.me.device_id()];
        let proof = keys.signing.sign_with_label(
            labels::SIG_INVITE_REDEEM,
            &resolve::redeem_statement(&code.space_id, &r.me.user, &ids),
        )?;
        let body = BodyBuilder(pb::MembershipOp {
            user_key: r.me.user.to_vec(),
            role: role.as_u32(),
            certificates: alloc::vec![r.me.certificate.clone()],
            invite_key: keys.signing.public_bytes().to_vec(),
            invite_proof: proof.to_vec(),
            ..Default::default()
        })
        .encode();
        let sealed = envelope::seal(
            &r.me.device.signing,
            &inv_epoch,
            &SealRequest {
                space_id: code.space_id,
                doc_id: r.doc_id,
                seq: 1,
                prev: None,
                preds: alloc::vec![code.create_op],
                content_type: ops::CT_REDEEM_INVITE,
                body: &body,
            },
            rng,
        )?;
        r.receive(&sealed.bytes);
        r.outbox.push(Outgoing::Envelope(sealed.bytes));
        Ok(r)
    }

    // ----- reading -----

    /// The space id.
    pub fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }

    /// This device's identity.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The current heads of the log (at most ENV-LIM-2 of them, as an
    /// operation this device writes would name).
    pub fn heads(&self) -> Vec<OpId> {
        self.heads.iter().take(MAX_PREDECESSORS).copied().collect()
    }

    /// The resolved state over every accepted operation.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The verdict on `id`.
    pub fn verdict(&self, id: &OpId) -> Verdict {
        if let Some(c) = self.rejected.get(id) {
            Verdict::Rejected(*c)
        } else if let Some(c) = self.state.void.get(id) {
            Verdict::Void(*c)
        } else if self.entries.contains_key(id) {
            Verdict::Accepted
        } else {
            Verdict::Unknown
        }
    }

    /// Every operation id with a verdict (accepted, void or rejected).
    pub fn decided(&self) -> Vec<(OpId, Verdict)> {
        let ids: BTreeSet<OpId> = self
            .entries
            .keys()
            .chain(self.rejected.keys())
            .copied()
            .collect();
        ids.into_iter().map(|id| (id, self.verdict(&id))).collect()
    }

    /// The accepted operation `id`.
    pub fn op(&self, id: &OpId) -> Option<&Op> {
        self.entries.get(id).map(|e| &e.op)
    }

    /// Every accepted operation's envelope bytes, in a causal order.
    pub fn envelopes(&self) -> Vec<Vec<u8>> {
        let mut es: Vec<&Entry> = self.entries.values().collect();
        es.sort_by_key(|e| (e.depth, e.op.id));
        es.iter()
            .filter_map(|e| self.bytes.get(&e.op.id).cloned())
            .collect()
    }

    /// Every key message received.
    pub fn key_messages(&self) -> Vec<Vec<u8>> {
        self.key_messages.values().cloned().collect()
    }

    /// Envelopes held for a key not held yet.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    /// Alarms to show the user.
    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }

    /// The usable epoch keys this device holds (KEY-18): those of epochs an
    /// accepted operation of the membership log created. Documents, storage and
    /// broker use these and no others.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Every epoch secret this device opened, usable or not: a secret of an
    /// epoch no accepted rotation created (yet) opens membership operations and
    /// carriers only (KEY-18).
    pub fn candidate_keys(&self) -> &KeyRing {
        &self.opened
    }

    /// The current epoch's key (KEY-11), if the device holds it.
    pub fn current_epoch(&self) -> Option<EpochKey> {
        self.state
            .current_epoch()
            .and_then(|e| self.keys.get(&e).cloned())
    }

    /// Every epoch key held, oldest first (by the causal depth of the creating
    /// operation): what storage and broker derive their keys from (KEY-13).
    pub fn epoch_chain(&self) -> Vec<EpochKey> {
        let mut es: Vec<(u64, EpochId, EpochKey)> = self
            .keys
            .all()
            .into_iter()
            .map(|k| {
                let depth = self
                    .state
                    .epochs
                    .get(k.id())
                    .and_then(|e| self.entries.get(&e.created_by))
                    .map(|e| e.depth)
                    .unwrap_or(u64::MAX);
                (depth, *k.id(), k)
            })
            .collect();
        es.sort_by_key(|(d, id, _)| (*d, *id));
        es.into_iter().map(|(_, _, k)| k).collect()
    }

    /// The epochs whose storage directories and broker rooms this device reads
    /// (KEY-18): every usable epoch ([`Self::epoch_chain`]), then every
    /// candidate, ascending by id. A rotation is stored and published under the
    /// epoch it creates (KEY-15), so a device that learnt a candidate from a key
    /// message must read there to find the operation that makes it usable.
    /// What it reads passes the same checks: documents open under usable
    /// epochs only (KEY-19).
    pub fn readable_epochs(&self) -> Vec<EpochKey> {
        let mut out = self.epoch_chain();
        for k in self.opened.all() {
            if !self.keys.contains(k.id()) {
                out.push(k);
            }
        }
        out
    }

    /// Current-epoch changes since the last call (KEY-13).
    pub fn take_epoch_events(&mut self) -> Vec<EpochId> {
        core::mem::take(&mut self.epoch_events)
    }

    /// The key-epoch authenticator of the current epoch (KEY-10).
    pub fn authenticator(&self) -> Option<[u8; 32]> {
        let k = self.current_epoch()?;
        let d = self.state.digest().ok()?;
        epoch::authenticator(&self.space_id, &k, &d).ok()
    }

    /// Takes what must be sent.
    pub fn drain_outbox(&mut self) -> Vec<Outgoing> {
        core::mem::take(&mut self.outbox)
    }

    // ----- receiving -----

    /// Handles one operation envelope from a peer, relay or storage.
    pub fn receive(&mut self, bytes: &[u8]) -> Received {
        let decoded = match envelope::decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                return Received::Rejected {
                    id: None,
                    class: e.class(),
                };
            }
        };
        let id = decoded.id;
        if decoded.header.doc_id == self.delivery_doc {
            return self.receive_carrier(decoded, bytes);
        }
        if self.entries.contains_key(&id) || self.pending.contains_key(&id) {
            return Received::Duplicate;
        }
        if let Some(c) = self.rejected.get(&id) {
            return Received::Rejected {
                id: Some(id),
                class: *c,
            };
        }
        let opened = match self.open_or_hold(decoded, self.doc_id, bytes) {
            Ok(o) => o,
            Err(r) => return r,
        };
        let op = match Op::from_envelope(&opened) {
            Ok(op) => op,
            Err(e) => {
                self.rejected.insert(id, e.class());
                return Received::Rejected {
                    id: Some(id),
                    class: e.class(),
                };
            }
        };
        if self.entries.len() + self.pending.len() >= MAX_OPS {
            return Received::Rejected {
                id: Some(id),
                class: ErrorClass::LimitExceeded,
            };
        }
        let walks_back = op.body.rotation().is_some_and(|r| {
            self.opened.contains(&r.epoch_id)
                && r.prev_epochs.iter().any(|p| !self.opened.contains(p))
        });
        self.pending.insert(id, (op, bytes.to_vec()));
        let done = self.process();
        if walks_back {
            self.learn_and_retry();
        }
        match self.rejected.get(&id) {
            Some(c) => Received::Rejected {
                id: Some(id),
                class: *c,
            },
            None if self.entries.contains_key(&id) => Received::Accepted(done),
            None => Received::Buffered,
        }
    }

    /// Opens an envelope of `doc_id` under the epochs held and the invite epochs
    /// known; one sealed under an epoch not held yet is kept to retry (ERR-7).
    fn open_or_hold(
        &mut self,
        decoded: envelope::DecodedEnvelope,
        doc_id: [u8; 32],
        bytes: &[u8],
    ) -> Result<envelope::OpenedEnvelope, Received> {
        let id = decoded.id;
        let ctx = Ctx {
            space_id: self.space_id,
            doc_id,
            keys: &self.opened,
            invite_keys: &self.invite_keys,
        };
        match envelope::open_decoded(decoded, &ctx) {
            Ok(o) => Ok(o),
            Err(Error::UnknownEpoch) => {
                if !self.held.iter().any(|h| h == bytes) && self.held.len() < MAX_HELD {
                    self.held.push(bytes.to_vec());
                }
                Err(Received::Held)
            }
            Err(e) => Err(Received::Rejected {
                id: Some(id),
                class: e.class(),
            }),
        }
    }

    /// Handles a key-delivery carrier (KEY-16): opens it under an epoch this
    /// device holds (held otherwise, like an operation), then hands the key
    /// message or welcome it carries to [`Self::receive_key_message`] or
    /// [`Self::receive_welcome`]. A welcome sealed to another device is not an
    /// error: carriers are shared by everyone who can open them.
    fn receive_carrier(&mut self, decoded: envelope::DecodedEnvelope, bytes: &[u8]) -> Received {
        let id = decoded.id;
        if self.carriers.contains_key(&id) {
            return Received::Duplicate;
        }
        let opened = match self.open_or_hold(decoded, self.delivery_doc, bytes) {
            Ok(o) => o,
            Err(r) => return r,
        };
        let handled = match opened.content_type {
            delivery::CT_KEY_MESSAGE => self.receive_key_message(&opened.body),
            delivery::CT_WELCOME => match super::seal::decode(&opened.body) {
                Err(e) => Err(e),
                Ok(sk) if sk.device_id != self.me.device_id() => Ok(()),
                Ok(_) => self.receive_welcome(&opened.body),
            },
            delivery::CT_RECOVERY_SET => {
                self.receive_recovery_set(opened.header.author, &opened.body)
            }
            delivery::CT_ATTESTATION => {
                self.receive_attestation(id, opened.header.author, &opened.body)
            }
            _ => Err(Error::InvalidOperation {
                reason: "unknown key-delivery content type",
            }),
        };
        match handled {
            Ok(()) => {
                self.carriers.insert(id, bytes.to_vec());
                Received::Delivered
            }
            Err(e) => Received::Rejected {
                id: Some(id),
                class: e.class(),
            },
        }
    }

    /// Epochs announced by key messages that give this device no box and that it
    /// holds no key of: the space moved on without it (it was removed or
    /// revoked, KEY-4), or it is waiting for a welcome.
    pub fn locked_out_epochs(&self) -> Vec<EpochId> {
        self.not_addressed
            .iter()
            .filter(|e| !self.opened.contains(e))
            .copied()
            .collect()
    }

    /// Every key-delivery carrier received or written (KEY-16), to store and
    /// forward like any envelope.
    pub fn carriers(&self) -> Vec<Vec<u8>> {
        self.carriers.values().cloned().collect()
    }

    /// Carriers for a key message this device wrote (KEY-15): one per epoch the
    /// rotation that committed to it replaces, sealed under that epoch, so every
    /// recipient finds it where it already reads. Empty for the space's first
    /// epoch, whose only recipient is its creator.
    pub fn key_message_carriers<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        key_message: &[u8],
    ) -> Result<Vec<(EpochId, Vec<u8>)>, Error> {
        let km_id = suite::hash_with_label(labels::ID_KEY_MESSAGE, key_message)?;
        let prev: Vec<EpochId> = self
            .entries
            .values()
            .filter_map(|e| e.op.body.rotation())
            .filter(|r| r.key_message == km_id)
            .flat_map(|r| r.prev_epochs.iter().copied())
            .collect();
        let mut out = Vec::new();
        for p in prev {
            let Some(k) = self.opened.get(&p).cloned() else {
                continue;
            };
            let c = delivery::seal_carrier(
                rng,
                &self.me.device.signing,
                &self.space_id,
                &k,
                delivery::CT_KEY_MESSAGE,
                key_message,
            )?;
            if let Ok(d) = envelope::decode(&c) {
                self.carriers.insert(d.id, c.clone());
            }
            out.push((p, c));
        }
        Ok(out)
    }

    /// A carrier for a welcome this device wrote (KEY-15), sealed under `epoch`
    /// (the invite epoch of the device's redemption, see
    /// [`Self::invite_epoch_of`], or a device link epoch, MEM-24).
    pub fn welcome_carrier<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        welcome: &[u8],
        epoch: &EpochKey,
    ) -> Result<Vec<u8>, Error> {
        let c = delivery::seal_carrier(
            rng,
            &self.me.device.signing,
            &self.space_id,
            epoch,
            delivery::CT_WELCOME,
            welcome,
        )?;
        if let Ok(d) = envelope::decode(&c) {
            self.carriers.insert(d.id, c.clone());
        }
        Ok(c)
    }

    /// The invite epoch (KEY-9) of the accepted redemption that added `device`,
    /// if it joined by invite: where its welcome is carried (KEY-15).
    pub fn invite_epoch_of(&self, device: &DeviceId) -> Option<EpochKey> {
        self.entries
            .values()
            .filter(|e| matches!(e.op.body, OpBody::RedeemInvite { .. }))
            .filter(|e| e.op.body.devices().iter().any(|d| &d.device_id == device))
            .find_map(|e| self.invite_keys.get(&e.op.epoch_id).cloned())
    }

    /// Adds an invite or link epoch key (KEY-9, MEM-24) this device derived from
    /// a code, e.g. when it restarts after redeeming: envelopes and carriers
    /// sealed under it open again.
    pub fn add_invite_epoch(&mut self, key: EpochKey) {
        self.invite_keys.insert(*key.id(), key);
        self.learn_and_retry();
    }

    /// The `(device, epoch)` pairs this device already welcomed (KEY-8), to
    /// persist across restarts with [`Self::restore_welcomed`].
    pub fn welcomed(&self) -> Vec<(DeviceId, EpochId)> {
        self.welcomed.iter().copied().collect()
    }

    /// Restores what [`Self::welcomed`] returned, so welcomes are not written again.
    pub fn restore_welcomed(&mut self, pairs: &[(DeviceId, EpochId)]) {
        self.welcomed.extend(pairs.iter().copied());
    }

    /// Handles a key message (KEY-5, KEY-7).
    pub fn receive_key_message(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let msg = epoch::decode_key_message(bytes)?;
        if msg.space_id != self.space_id {
            return Err(Error::WrongContext { what: "space id" });
        }
        if self.key_messages.contains_key(&msg.id) {
            return Ok(());
        }
        self.key_messages.insert(msg.id, bytes.to_vec());
        match epoch::open_key_message(&msg, &self.me.device_id(), &self.me.device.x25519)? {
            Delivery::Key(k) => {
                self.vouched_elsewhere.insert(*k.id());
                self.opened.insert(k);
            }
            Delivery::NotAddressed => {
                self.not_addressed.insert(msg.epoch_id);
                return Ok(());
            }
            Delivery::Mismatch => {
                self.alarms.push(Alarm::KeyMismatch {
                    epoch_id: msg.epoch_id,
                    key_message: msg.id,
                });
                return Ok(());
            }
        }
        self.learn_and_retry();
        Ok(())
    }

    /// Handles a welcome sealed to this device (KEY-8): verified before
    /// anything in it is used (KEY-20; an error stores nothing), its secrets
    /// held as candidates (KEY-18), its signer checked against the log as soon
    /// as the log places it (KEY-21, KEY-22).
    pub fn receive_welcome(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let w = epoch::open_welcome(
            bytes,
            &self.space_id,
            &self.me.device_id(),
            &self.me.device.x25519,
        )?;
        let epochs: Vec<EpochId> = w.keys.iter().map(|k| *k.id()).collect();
        let seen = self.welcomes_in.iter().any(|x| {
            x.signer.device_id == w.signer.device_id
                && x.added_by == w.added_by
                && x.epochs == epochs
        });
        if !seen {
            self.welcomes_in.push(WelcomeIn {
                signer: w.signer,
                added_by: w.added_by,
                epochs,
                checked: false,
                covered: BTreeSet::new(),
                foreign: None,
            });
        }
        for k in w.keys {
            self.opened.insert(k);
        }
        self.learn_and_retry();
        Ok(())
    }

    /// The standing check of every welcome received (KEY-21): once the log has
    /// accepted the operation named in `signer_added_by`, the signer must be a
    /// device that operation added, and active in the state resolved from that
    /// operation, every operation that created an epoch of the welcome (as the
    /// log accepts them) and their causal pasts. A failure is final: the
    /// welcome is reported ([`Alarm::ForeignWelcome`]) and its secrets that the
    /// log does not vouch for are dropped (KEY-22).
    fn check_welcomes(&mut self) {
        let mut dropped = false;
        for i in 0..self.welcomes_in.len() {
            let Some(w) = self.welcomes_in.get(i) else {
                break;
            };
            if w.foreign.is_some() {
                continue;
            }
            let Some(added) = self.entries.get(&w.added_by) else {
                continue;
            };
            let created: Vec<(EpochId, OpId)> = w
                .epochs
                .iter()
                .filter_map(|e| self.state.epochs.get(e).map(|x| (*e, x.created_by)))
                .collect();
            let fresh = !w.checked || created.iter().any(|(e, _)| !w.covered.contains(e));
            if !fresh {
                continue;
            }
            let listed =
                added.op.body.devices().iter().any(|d| {
                    d.device_id == w.signer.device_id && d.device_key == w.signer.device_key
                }) || match &added.op.body {
                    OpBody::Admit { redemption } => self.entries.get(redemption).is_some_and(|r| {
                        r.op.body.devices().iter().any(|d| {
                            d.device_id == w.signer.device_id && d.device_key == w.signer.device_key
                        })
                    }),
                    _ => false,
                };
            let verdict = if listed {
                let mut set: BTreeSet<OpId> = added.past.clone();
                set.insert(w.added_by);
                for (_, op) in &created {
                    if let Some(e) = self.entries.get(op) {
                        set.extend(e.past.iter().copied());
                        set.insert(*op);
                    }
                }
                let s = resolve::resolve(&self.entries, &set);
                match s.device_status(w.signer.device_key.as_bytes()) {
                    Ok((id, d, _))
                        if id == w.signer.device_id && &d.user == w.signer.user_key.as_bytes() =>
                    {
                        None
                    }
                    Ok(_) => Some(ErrorClass::NotAMember),
                    Err(e) => Some(e.class()),
                }
            } else {
                Some(ErrorClass::NotAMember)
            };
            let Some(w) = self.welcomes_in.get_mut(i) else {
                break;
            };
            w.checked = true;
            w.covered.extend(created.iter().map(|(e, _)| *e));
            if let Some(class) = verdict {
                w.foreign = Some(class);
                self.alarms.push(Alarm::ForeignWelcome {
                    signer: *w.signer.device_key.as_bytes(),
                    device_id: w.signer.device_id,
                    class,
                });
                dropped = true;
            }
        }
        if dropped {
            self.drop_foreign_candidates();
        }
    }

    /// KEY-22: the secrets of foreign welcomes leave the key ring unless the log
    /// vouches for them: an accepted operation created their epoch (the id
    /// commits to the secret, KEY-2), or a key message addressed to this device,
    /// an import, or a welcome not found foreign gave them too.
    fn drop_foreign_candidates(&mut self) {
        let mut keep: BTreeSet<EpochId> = self.vouched_elsewhere.clone();
        keep.extend(self.state.epochs.keys().copied());
        for w in self.welcomes_in.iter().filter(|w| w.foreign.is_none()) {
            keep.extend(w.epochs.iter().copied());
        }
        let drop: BTreeSet<EpochId> = self
            .welcomes_in
            .iter()
            .filter(|w| w.foreign.is_some())
            .flat_map(|w| w.epochs.iter().copied())
            .filter(|e| !keep.contains(e))
            .collect();
        for e in &drop {
            self.opened.remove(e);
        }
    }

    /// Verified welcomes whose signer's standing the log has not shown yet
    /// (KEY-21): `(signer device id, signer_added_by)`. Their secrets stay
    /// candidates (KEY-18).
    pub fn unchecked_welcomes(&self) -> Vec<(DeviceId, OpId)> {
        self.welcomes_in
            .iter()
            .filter(|w| !w.checked)
            .map(|w| (w.signer.device_id, w.added_by))
            .collect()
    }

    /// Imports epoch keys the device got another way (a backup, a test vector's
    /// key ring) and opens what they unlock.
    pub fn import_keys(&mut self, keys: &[EpochKey]) {
        for k in keys {
            self.vouched_elsewhere.insert(*k.id());
            self.opened.insert(k.clone());
        }
        self.learn_and_retry();
    }

    fn learn_and_retry(&mut self) {
        loop {
            self.learn_chain();
            let held = core::mem::take(&mut self.held);
            let before = held.len();
            for h in held {
                self.receive(&h);
            }
            if self.held.len() >= before {
                break;
            }
        }
        self.ratify();
    }

    /// Recomputes the usable keys (KEY-18): the secrets held of epochs that an
    /// accepted operation created. A secret that arrived by a key message no
    /// operation commits to, or by a welcome, for an epoch no rotation created,
    /// stays a candidate: whatever a sender hands out, no envelope sealed under
    /// an epoch outside the log is opened, on any replica.
    fn ratify(&mut self) {
        self.check_welcomes();
        for k in self.opened.all() {
            if self.state.epochs.contains_key(k.id()) {
                self.keys.insert(k);
            }
        }
    }

    /// Walks chain links back from every epoch key held (KEY-6).
    fn learn_chain(&mut self) {
        loop {
            let mut new = Vec::new();
            // Buffered operations count: a device that holds only the newest
            // epoch walks back before it can integrate anything older.
            let ops = self
                .entries
                .values()
                .map(|e| &e.op)
                .chain(self.pending.values().map(|(op, _)| op));
            for op in ops {
                let Some(r) = op.body.rotation() else {
                    continue;
                };
                let Some(k) = self.opened.get(&r.epoch_id) else {
                    continue;
                };
                for (p, link) in r.prev_epochs.iter().zip(r.chain_links.iter()) {
                    if !self.opened.contains(p)
                        && let Ok(pk) = epoch::open_chain_link(&self.space_id, k, p, link)
                    {
                        new.push(pk);
                    }
                }
            }
            let mut grew = false;
            for k in new {
                grew |= self.opened.insert(k);
            }
            if !grew {
                break;
            }
        }
    }

    fn process(&mut self) -> Vec<OpId> {
        let mut accepted = Vec::new();
        loop {
            let ready: Option<OpId> = self.pending.iter().find_map(|(id, (op, _))| {
                let all = op
                    .deps()
                    .all(|d| self.entries.contains_key(d) || self.rejected.contains_key(d));
                all.then_some(*id)
            });
            let Some(id) = ready else {
                break;
            };
            let Some((op, bytes)) = self.pending.remove(&id) else {
                break;
            };
            if op.deps().any(|d| self.rejected.contains_key(d)) {
                self.rejected.insert(id, ErrorClass::InvalidOperation);
                continue;
            }
            match self.integrate(op, bytes) {
                Ok(()) => accepted.push(id),
                Err(c) => {
                    self.rejected.insert(id, c);
                }
            }
        }
        if !accepted.is_empty() {
            self.refresh();
        }
        accepted
    }

    fn integrate(&mut self, op: Op, bytes: Vec<u8>) -> Result<(), ErrorClass> {
        // MEM-26, MEM-27: one genesis, the pinned one; any other CREATE_SPACE
        // is evidence, never a competitor.
        if matches!(op.body, OpBody::CreateSpace { .. }) {
            match self.genesis {
                Some(g) if g != op.id => {
                    self.rivals.insert(op.id);
                    self.alarms.push(Alarm::RivalGenesis {
                        op: op.id,
                        author: op.author,
                    });
                    return Err(ErrorClass::InvalidOperation);
                }
                _ => {}
            }
        }
        // Author chain (as DOC-6): prev is the author's operation seq - 1.
        if let Some(p) = op.prev {
            match self.entries.get(&p) {
                Some(pe) if pe.op.author == op.author && pe.op.seq + 1 == op.seq => {}
                _ => return Err(ErrorClass::InvalidOperation),
            }
        }
        let mut past = BTreeSet::new();
        let mut depth = 0u64;
        for d in op.deps() {
            if let Some(de) = self.entries.get(d) {
                past.insert(*d);
                past.extend(de.past.iter().copied());
                depth = depth.max(de.depth + 1);
            }
        }
        let s = resolve::resolve(&self.entries, &past);
        let new_key = op
            .body
            .rotation()
            .and_then(|r| self.opened.get(&r.epoch_id).cloned());
        let (deps, user) =
            resolve::authorize(&self.space_id, &op, &s, new_key.as_ref()).map_err(|e| e.class())?;
        if matches!(op.body, OpBody::CreateSpace { .. }) && self.genesis.is_none() {
            self.genesis = Some(op.id);
        }
        let admins = s
            .members
            .iter()
            .filter(|(_, m)| m.role == Role::Admin)
            .map(|(u, _)| *u)
            .collect();
        if let OpBody::CreateInvite { invite_secret, .. } = &op.body
            && let Ok(k) = epoch::epoch_key(&self.space_id, invite_secret)
        {
            self.invite_keys.insert(*k.id(), k);
        }
        for d in op.deps() {
            self.heads.remove(d);
        }
        self.heads.insert(op.id);
        self.bytes.insert(op.id, bytes);
        self.entries.insert(
            op.id,
            Entry {
                op,
                past,
                depth,
                deps,
                user,
                admins,
            },
        );
        Ok(())
    }

    fn refresh(&mut self) {
        let all: BTreeSet<OpId> = self.entries.keys().copied().collect();
        self.state = resolve::resolve(&self.entries, &all);
        for (user, ops) in &self.state.rival_rotations {
            let known = self.alarms.iter().any(
                |a| matches!(a, Alarm::RivalRotation { user: u, ops: o } if u == user && o == ops),
            );
            if !known {
                self.alarms.push(Alarm::RivalRotation {
                    user: *user,
                    ops: ops.clone(),
                });
            }
        }
        self.ratify();
        self.follow_own_rotation();
        let cur = self.state.current_epoch();
        if cur != self.current {
            self.current = cur;
            if let Some(c) = cur {
                self.epoch_events.push(c);
            }
        }
        // Invite epochs learned from CREATE_INVITE may open held redemptions.
        let held = core::mem::take(&mut self.held);
        let mut again = Vec::new();
        for h in held {
            if let Ok(d) = envelope::decode(&h)
                && self.invite_keys.contains_key(&d.header.epoch_id)
            {
                again.push(h);
            } else {
                self.held.push(h);
            }
        }
        for h in again {
            self.receive(&h);
        }
    }

    /// MEM-32: once a standing `ROTATE_USER` moved this device's key to a new
    /// certificate, the replica acts as that device (whatever identity it was
    /// opened with: a shell that crashed before it stored the new user key).
    fn follow_own_rotation(&mut self) {
        let key = self.me.device.signing.public_bytes();
        let Some(id) = self.state.device_ids.get(&key).copied() else {
            return;
        };
        if id == self.me.device_id() {
            return;
        }
        let found = self.entries.values().find_map(|e| match &e.op.body {
            OpBody::RotateUser {
                device,
                certificate,
                continuity,
                ..
            } if device.device_id == id && !self.state.void.contains_key(&e.op.id) => {
                Some((continuity.new_user_key, certificate.clone(), device.clone()))
            }
            _ => None,
        });
        if let Some((user, certificate, verified)) = found {
            let device = DeviceKeys {
                signing: SigningKey::from_seed(&self.me.device.signing.seed()),
                x25519: crate::keys::X25519Secret::from_bytes(&self.me.device.x25519.to_bytes()),
            };
            self.me = Identity {
                user,
                device,
                certificate,
                verified,
            };
        }
    }

    // ----- authoring -----

    /// Where this device's next operation goes: its highest `seq` so far, that
    /// operation as `prev`, and the heads to name (DOC-14, as for documents).
    fn next_position(&self) -> (u64, Option<EnvelopeId>, Vec<EnvelopeId>) {
        let me = self.me.device.signing.public_bytes();
        let (seq, prev) = self
            .entries
            .values()
            .filter(|e| e.op.author == me)
            .map(|e| (e.op.seq, e.op.id))
            .max()
            .map(|(s, id)| (s, Some(id)))
            .unwrap_or((0, None));
        (
            seq,
            prev,
            envelope::heads_as_predecessors(&self.heads, prev),
        )
    }

    fn publish<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        content_type: u32,
        body: &[u8],
        epoch_key: &EpochKey,
    ) -> Result<OpId, Error> {
        let (seq, prev, preds) = self.next_position();
        let sealed = envelope::seal(
            &self.me.device.signing,
            epoch_key,
            &SealRequest {
                space_id: self.space_id,
                doc_id: self.doc_id,
                seq: seq + 1,
                prev,
                preds,
                content_type,
                body,
            },
            rng,
        )?;
        match self.receive(&sealed.bytes) {
            Received::Accepted(_) => {
                self.outbox.push(Outgoing::Envelope(sealed.bytes));
                Ok(sealed.id)
            }
            Received::Rejected { class, .. } => Err(class_error(class)),
            _ => Err(Error::InvalidOperation {
                reason: "own operation did not integrate",
            }),
        }
    }

    /// Seals an operation as this device would (next sequence number, current
    /// heads) *without* checking or integrating it: for simulations of Byzantine
    /// members and for tests that show every replica rejects it. Behind the
    /// `test-utils` feature.
    #[cfg(any(test, feature = "test-utils"))]
    pub fn seal_unchecked<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        content_type: u32,
        body: &[u8],
        epoch_key: &EpochKey,
    ) -> Result<Vec<u8>, Error> {
        let (seq, prev, preds) = self.next_position();
        Ok(envelope::seal(
            &self.me.device.signing,
            epoch_key,
            &SealRequest {
                space_id: self.space_id,
                doc_id: self.doc_id,
                seq: seq + 1,
                prev,
                preds,
                content_type,
                body,
            },
            rng,
        )?
        .bytes)
    }

    fn current_for_writing(&self) -> Result<EpochKey, Error> {
        self.current_epoch().ok_or(Error::UnknownEpoch)
    }

    fn rotation<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        excluded: &[DeviceId],
        extra: Option<Recipient>,
    ) -> Result<(Rotation, EpochKey), Error> {
        let new = epoch::new_epoch(rng, &self.space_id)?;
        let prev_epochs = self.state.frontier.clone();
        let mut chain_links = Vec::with_capacity(prev_epochs.len());
        for p in &prev_epochs {
            let pk = self.opened.get(p).ok_or(Error::UnknownEpoch)?;
            chain_links.push(epoch::chain_link(&self.space_id, &new, pk)?);
        }
        let mut to = self.state.expected_recipients(excluded);
        to.extend(extra);
        to.sort_by_key(|r| r.device_id);
        let (km, km_id) = epoch::key_message(rng, &self.space_id, &new, &to)?;
        self.opened.insert(new.clone());
        self.key_messages.insert(km_id, km.clone());
        self.outbox.push(Outgoing::KeyMessage(km));
        Ok((
            Rotation {
                epoch_id: *new.id(),
                prev_epochs,
                chain_links,
                recipients: to.iter().map(|r| r.device_id).collect(),
                key_message: km_id,
            },
            new,
        ))
    }

    fn sorted_certs(certs: &[Vec<u8>], user: &UserKey) -> Result<Vec<Vec<u8>>, Error> {
        let mut v: Vec<(DeviceId, Vec<u8>)> = Vec::with_capacity(certs.len());
        for c in certs {
            v.push((
                identity::verify_certificate(c, Some(user))?.device_id,
                c.clone(),
            ));
        }
        v.sort_by_key(|(id, _)| *id);
        Ok(v.into_iter().map(|(_, c)| c).collect())
    }

    /// `ADD_MEMBER` (MEM-8).
    pub fn add_member<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        user: &UserKey,
        role: Role,
        scope: &Scope,
        certificates: &[Vec<u8>],
    ) -> Result<OpId, Error> {
        let body = BodyBuilder(pb::MembershipOp {
            user_key: user.to_vec(),
            role: role.as_u32(),
            scope: scope.0.iter().map(|s| s.to_vec()).collect(),
            certificates: Self::sorted_certs(certificates, user)?,
            ..Default::default()
        })
        .encode();
        let k = self.current_for_writing()?;
        self.publish(rng, ops::CT_ADD_MEMBER, &body, &k)
    }

    /// `CHANGE_ROLE` (MEM-9).
    pub fn change_role<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        user: &UserKey,
        role: Role,
        scope: &Scope,
    ) -> Result<OpId, Error> {
        let body = BodyBuilder(pb::MembershipOp {
            user_key: user.to_vec(),
            role: role.as_u32(),
            scope: scope.0.iter().map(|s| s.to_vec()).collect(),
            ..Default::default()
        })
        .encode();
        let k = self.current_for_writing()?;
        self.publish(rng, ops::CT_CHANGE_ROLE, &body, &k)
    }

    /// `REMOVE_MEMBER` with its rotation (MEM-10, KEY-1). `cuts` is the removal
    /// cut (MEM-18): for each of the user's devices and each document, the
    /// highest seq of its chain this device integrated (the caller holds the
    /// documents; see `clientful_doc`). Writes beyond it are rejected
    /// everywhere; entries for other devices are dropped.
    pub fn remove_member<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        user: &UserKey,
        cuts: &[Cut],
    ) -> Result<OpId, Error> {
        let excluded: Vec<DeviceId> = self
            .state
            .devices
            .iter()
            .filter(|(_, d)| &d.user == user)
            .map(|(id, _)| *id)
            .collect();
        let cuts: Vec<Cut> = cuts
            .iter()
            .filter(|c| excluded.contains(&c.device_id))
            .copied()
            .collect();
        let (rot, k) = self.rotation(rng, &excluded, None)?;
        let body = BodyBuilder(pb::MembershipOp {
            user_key: user.to_vec(),
            ..Default::default()
        })
        .rotation(&rot)
        .cuts(&cuts)
        .encode();
        self.publish(rng, ops::CT_REMOVE_MEMBER, &body, &k)
    }

    /// `ADD_DEVICE` (MEM-11): `certificate` certifies a new device of this
    /// device's own user. Follow with [`SpaceReplica::welcomes`].
    pub fn add_device<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        certificate: &[u8],
    ) -> Result<OpId, Error> {
        let body = BodyBuilder(pb::MembershipOp {
            certificates: alloc::vec![certificate.to_vec()],
            ..Default::default()
        })
        .encode();
        let k = self.current_for_writing()?;
        self.publish(rng, ops::CT_ADD_DEVICE, &body, &k)
    }

    /// `REVOKE_DEVICE` with its rotation (MEM-12, KEY-1), with the device's
    /// removal cut (MEM-18; entries for other devices are dropped).
    pub fn revoke_device<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        device_id: &DeviceId,
        cuts: &[Cut],
    ) -> Result<OpId, Error> {
        let cuts: Vec<Cut> = cuts
            .iter()
            .filter(|c| &c.device_id == device_id)
            .copied()
            .collect();
        let (rot, k) = self.rotation(rng, &[*device_id], None)?;
        let body = BodyBuilder(pb::MembershipOp {
            device_id: device_id.to_vec(),
            ..Default::default()
        })
        .rotation(&rot)
        .cuts(&cuts)
        .encode();
        self.publish(rng, ops::CT_REVOKE_DEVICE, &body, &k)
    }

    /// `ROTATE_USER` (MEM-32): this device's user key is followed by
    /// `next.user`. `statement` is the `SignedContinuity` (§5.7) naming this
    /// device's user as the old key and `next.user` as the new one; `next` is
    /// this device (same device keys) certified by the new key. The old user's
    /// other devices are excluded and the keys rotate; `cuts` is their removal
    /// cut (MEM-18; entries for other devices are dropped). Once the operation
    /// is accepted this replica acts as `next`.
    pub fn rotate_user<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        statement: &[u8],
        next: Identity,
        cuts: &[Cut],
    ) -> Result<OpId, Error> {
        if next.device.signing.public_bytes() != self.me.device.signing.public_bytes()
            || next.verified.device_x25519 != self.me.verified.device_x25519
        {
            return Err(Error::WrongContext {
                what: "the next identity is another device",
            });
        }
        let c = crate::continuity::verify_continuity(statement)?;
        if c.old_user_key != self.me.user || c.new_user_key != next.user {
            return Err(Error::WrongContext {
                what: "the statement names other keys",
            });
        }
        let excluded: Vec<DeviceId> = self
            .state
            .devices
            .iter()
            .filter(|(_, d)| d.user == self.me.user)
            .map(|(id, _)| *id)
            .collect();
        let cuts: Vec<Cut> = cuts
            .iter()
            .filter(|c| excluded.contains(&c.device_id))
            .copied()
            .collect();
        let settled = self
            .state
            .members
            .get(&self.me.user)
            .is_some_and(|m| m.settled);
        let extra = settled.then_some(Recipient {
            device_id: next.device_id(),
            x25519: next.verified.device_x25519,
        });
        let (rot, k) = self.rotation(rng, &excluded, extra)?;
        let body = BodyBuilder(pb::MembershipOp {
            continuity: statement.to_vec(),
            certificates: alloc::vec![next.certificate.clone()],
            ..Default::default()
        })
        .rotation(&rot)
        .cuts(&cuts)
        .encode();
        let id = self.publish(rng, ops::CT_ROTATE_USER, &body, &k)?;
        self.me = next;
        Ok(id)
    }

    /// `ROTATE_KEYS` (MEM-13): on demand, or to merge or heal (KEY-12).
    pub fn rotate<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<OpId, Error> {
        let (rot, k) = self.rotation(rng, &[], None)?;
        let body = BodyBuilder::default().rotation(&rot).encode();
        self.publish(rng, ops::CT_ROTATE_KEYS, &body, &k)
    }

    /// `ACK` (MEM-14).
    pub fn ack<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<OpId, Error> {
        let k = self.current_for_writing()?;
        self.publish(rng, ops::CT_ACK, &[], &k)
    }

    /// `ADMIT` (MEM-25): admits the standing redemption `redemption`; its user
    /// joins with the role it asked for and the invite's scope.
    pub fn admit<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        redemption: &OpId,
    ) -> Result<OpId, Error> {
        let body = BodyBuilder(pb::MembershipOp {
            redemption: redemption.to_vec(),
            ..Default::default()
        })
        .encode();
        let k = self.current_for_writing()?;
        self.publish(rng, ops::CT_ADMIT, &body, &k)
    }

    /// The redemptions waiting for an admin (MEM-25), each with whether an
    /// `ADMIT` by this device would stand now (its invite open, the user not a
    /// member, no other redemption of a single-use invite admitted) and how
    /// many other waiting redemptions compete for the same single-use invite.
    pub fn pending_admissions(&self) -> Vec<PendingAdmission> {
        let s = &self.state;
        s.redemptions
            .iter()
            .filter(|(_, r)| r.admitted_by.is_empty())
            .filter_map(|(id, r)| {
                let inv = s.invites.get(&r.invite_key)?;
                let rivals = if inv.single_use {
                    inv.redeemed_by
                        .iter()
                        .filter(|o| *o != id)
                        .filter(|o| {
                            s.redemptions
                                .get(*o)
                                .is_some_and(|x| x.admitted_by.is_empty())
                        })
                        .count()
                } else {
                    0
                };
                let admissible = !inv.revoked
                    && !inv.closed
                    && (!inv.single_use || inv.admitted.is_empty())
                    && !s.members.contains_key(&r.user)
                    && s.members
                        .get(&inv.creator)
                        .is_some_and(|m| m.role == Role::Admin);
                Some(PendingAdmission {
                    redemption: *id,
                    user: r.user,
                    role: r.role,
                    invite_key: r.invite_key,
                    single_use: inv.single_use,
                    rivals,
                    admissible,
                })
            })
            .collect()
    }

    /// Redemptions this replica saw that are void in the resolved state (a
    /// used single-use invite, a closed invite, a lost concurrent admission):
    /// the users refused, to tell the admins and the application.
    pub fn refused_redemptions(&self) -> Vec<(OpId, UserKey, ErrorClass)> {
        self.entries
            .values()
            .filter_map(|e| match &e.op.body {
                OpBody::RedeemInvite { user, .. } => {
                    self.state.void.get(&e.op.id).map(|c| (e.op.id, *user, *c))
                }
                _ => None,
            })
            .collect()
    }

    /// `CREATE_INVITE` (MEM-19); returns the encoded invite code to share.
    pub fn create_invite<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        role: Role,
        scope: &Scope,
        single_use: bool,
        expires_at_ms: u64,
    ) -> Result<Vec<u8>, Error> {
        let secret = invite::new_secret(rng);
        let keys = invite::derive(&self.space_id, &secret)?;
        let body = BodyBuilder(pb::MembershipOp {
            invite_key: keys.signing.public_bytes().to_vec(),
            role: role.as_u32(),
            scope: scope.0.iter().map(|s| s.to_vec()).collect(),
            single_use: u32::from(single_use),
            invite_secret: keys.epoch_secret.to_vec(),
            expires_at_ms,
            ..Default::default()
        })
        .encode();
        let k = self.current_for_writing()?;
        let create_op = self.publish(rng, ops::CT_CREATE_INVITE, &body, &k)?;
        let genesis = self.genesis.ok_or(Error::InvalidOperation {
            reason: "no genesis pinned",
        })?;
        Ok(invite::encode(&invite::InviteCode {
            space_id: self.space_id,
            secret,
            create_op,
            genesis,
        }))
    }

    /// `REVOKE_INVITE` (MEM-19). Honest admins also log it when an invite's
    /// advisory expiry passes on their clock (MEM-22).
    pub fn revoke_invite<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        invite_key: &[u8; 32],
    ) -> Result<OpId, Error> {
        let body = BodyBuilder(pb::MembershipOp {
            invite_key: invite_key.to_vec(),
            ..Default::default()
        })
        .encode();
        let k = self.current_for_writing()?;
        self.publish(rng, ops::CT_REVOKE_INVITE, &body, &k)
    }

    /// Invites whose advisory expiry is before `now_ms` (the caller's clock) and
    /// which are still open: an admin revokes them (MEM-22).
    pub fn expired_invites(&self, now_ms: u64) -> Vec<[u8; 32]> {
        self.state
            .invites
            .iter()
            .filter(|(_, i)| {
                !i.revoked
                    && !i.closed
                    && i.expires_at_ms != 0
                    && i.expires_at_ms <= now_ms
                    && (!i.single_use || i.admitted.is_empty())
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Welcomes (KEY-8): for each active device of a settled member that cannot
    /// hold some epoch created in the space (it is not a recipient of that epoch
    /// or of any later epoch chained to it: a new device, a member added after a
    /// rotation, or an epoch a concurrently removed admin created without it),
    /// every epoch key this device holds, sealed to it. A member whose addition
    /// is not settled (MEM-15) gets none. Returns how many were queued.
    pub fn welcomes<R: CryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<usize, Error> {
        let targets: Vec<Recipient> = self
            .state
            .expected_recipients(&[])
            .into_iter()
            .filter(|r| r.device_id != self.me.device_id())
            .collect();
        let all = self.epoch_chain();
        let Some(added_by) = self
            .state
            .active_device(&self.me.device_id())
            .map(|(d, _)| d.added_by)
        else {
            return Ok(0);
        };
        let certificate = self.me.certificate.clone();
        let signer = epoch::WelcomeSigner {
            signing: &self.me.device.signing,
            certificate: &certificate,
            added_by,
        };
        let mut n = 0;
        for t in targets {
            let reach = self.reachable(&t.device_id);
            let missing: Vec<EpochId> = self
                .state
                .epochs
                .keys()
                .filter(|e| !reach.contains(*e) && self.opened.contains(e))
                .filter(|e| !self.welcomed.contains(&(t.device_id, **e)))
                .copied()
                .collect();
            if missing.is_empty() {
                continue;
            }
            let bytes = epoch::welcome(rng, &self.space_id, &signer, &t, &all)?;
            for e in missing {
                self.welcomed.insert((t.device_id, e));
            }
            self.outbox.push(Outgoing::Welcome {
                device_id: t.device_id,
                bytes,
            });
            n += 1;
        }
        Ok(n)
    }

    /// The epochs a device can hold from the log alone: those sealed to it, and
    /// every epoch chained back from them.
    fn reachable(&self, device: &DeviceId) -> BTreeSet<EpochId> {
        let mut out: BTreeSet<EpochId> = self
            .state
            .epochs
            .iter()
            .filter(|(_, e)| e.recipients.contains(device))
            .map(|(id, _)| *id)
            .collect();
        let mut work: Vec<EpochId> = out.iter().copied().collect();
        while let Some(e) = work.pop() {
            if let Some(ep) = self.state.epochs.get(&e) {
                for p in &ep.prev {
                    if out.insert(*p) {
                        work.push(*p);
                    }
                }
            }
        }
        out
    }

    /// Whether this device's user is an admin whose acknowledgement an
    /// unsettled addition waits for (MEM-15): it should write `ACK`.
    pub fn needs_my_ack(&self) -> bool {
        let me = self.me.user;
        let admin = self
            .state
            .members
            .get(&me)
            .is_some_and(|m| m.role == Role::Admin);
        if !admin {
            return false;
        }
        self.state.members.iter().any(|(u, m)| {
            u != &me
                && !m.settled
                && self
                    .entries
                    .get(&m.joined_by)
                    .is_some_and(|j| j.admins.contains(&me))
                && !self.entries.values().any(|e| {
                    e.user == me && (e.op.id == m.joined_by || e.past.contains(&m.joined_by))
                })
        })
    }

    /// The write authority of every device (MEM-18), as plain data for
    /// document replicas.
    pub fn write_view(&self) -> WriteView {
        let s = &self.state;
        let mut devices = BTreeMap::new();
        for (id, d) in &s.devices {
            // A device key a rotation moved to a new certificate (MEM-32) is
            // judged under the certificate it has now.
            if s.device_ids.get(&d.device_key) != Some(id) {
                continue;
            }
            let current = s
                .device_status(&d.device_key)
                .ok()
                .map(|(_, _, m)| (m.role, m.scope.clone()));
            let ending = d
                .revoked_by
                .or_else(|| s.removed.get(&d.user).copied())
                .or_else(|| s.members.get(&d.user).map(|m| m.granted_by));
            let device_id = s.device_ids.get(&d.device_key).copied();
            let ended = ending.and_then(|r| self.entries.get(&r)).map(|r| {
                let before = resolve::resolve(&self.entries, &r.past);
                let cut = match &r.op.body {
                    OpBody::RemoveMember { .. }
                    | OpBody::RevokeDevice { .. }
                    | OpBody::RotateUser { .. } => Some(
                        r.op.body
                            .cuts()
                            .iter()
                            .filter(|c| Some(c.device_id) == device_id)
                            .map(|c| (c.doc_id, c.seq))
                            .collect(),
                    ),
                    _ => None,
                };
                Ended {
                    before: before
                        .device_status(&d.device_key)
                        .ok()
                        .map(|(_, _, m)| (m.role, m.scope.clone())),
                    grace: s
                        .epochs
                        .iter()
                        .filter(|(_, e)| r.past.contains(&e.created_by))
                        .map(|(id, _)| *id)
                        .collect(),
                    cut,
                }
            });
            devices.insert(d.device_key, DeviceWrite { current, ended });
        }
        let claims = super::index::claims(&self.entries);
        WriteView {
            epochs: s.epochs.keys().copied().collect(),
            devices,
            contested: super::index::contested(&claims),
            claims,
        }
    }

    /// The verdict on a document envelope's authority (MEM-18): may the device
    /// `author` write its envelope `seq` of document `doc_id` (in `folders`)
    /// under epoch `epoch_id`, given the epochs of the envelopes in its causal
    /// past (`seen_epochs`)?
    pub fn write_verdict(
        &self,
        author: &[u8; 32],
        doc_id: &[u8; 32],
        folders: &[[u8; 32]],
        epoch_id: &EpochId,
        seen_epochs: &[EpochId],
        seq: u64,
    ) -> Result<(), Error> {
        if !self.state.epochs.contains_key(epoch_id) {
            return Err(Error::UnknownEpoch);
        }
        self.write_view()
            .verdict(author, doc_id, folders, epoch_id, seen_epochs, seq)
    }

    /// Whether this device is the one that heals the space now (KEY-12): the
    /// space needs a rotation and this device's user is the most senior active
    /// admin (lowest admin-grant position), this device its lowest device id.
    pub(crate) fn should_heal(&self) -> bool {
        if !self.state.needs_rotation() {
            return false;
        }
        let healer = self
            .state
            .members
            .iter()
            .filter(|(_, m)| m.role == Role::Admin && m.scope.is_whole())
            .filter_map(|(u, m)| {
                let pos = self
                    .entries
                    .get(&m.granted_by)
                    .map(|e| (e.depth, e.op.id))?;
                let dev = self.state.user_devices(u).into_iter().min()?;
                Some((pos, dev))
            })
            .min()
            .map(|(_, d)| d);
        healer == Some(self.me.device_id())
    }
}

/// Revokes `device_id` in every space it belongs to (KEY-1, security case 29):
/// each replica (of another device of the same user, or of an admin) writes a
/// `REVOKE_DEVICE`, which rotates that space's keys. `cuts_of` gives the
/// removal cut of the device in each space (by space id, MEM-18). Returns the
/// operation id per space, or the error that space gave.
pub fn revoke_device_everywhere<R: CryptoRng + ?Sized>(
    rng: &mut R,
    spaces: &mut [&mut SpaceReplica],
    device_id: &DeviceId,
    cuts_of: impl Fn(&[u8; 32]) -> Vec<Cut>,
) -> Vec<Result<OpId, Error>> {
    spaces
        .iter_mut()
        .filter(|s| s.state().devices.contains_key(device_id))
        .map(|s| {
            let cuts = cuts_of(s.space_id());
            s.revoke_device(rng, device_id, &cuts)
        })
        .collect()
}

fn class_error(class: ErrorClass) -> Error {
    match class {
        ErrorClass::NotAMember => Error::NotAMember {
            what: "own operation",
        },
        ErrorClass::RemovedMember => Error::RemovedMember {
            what: "own operation",
        },
        ErrorClass::UnknownEpoch => Error::UnknownEpoch,
        _ => Error::InvalidOperation {
            reason: "own operation rejected",
        },
    }
}
