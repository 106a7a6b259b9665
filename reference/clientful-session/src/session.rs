//! [`Session`]: the state of one space on one device, and its outputs.
//!
//! The shell feeds it what it reads (`handle_*`), asks it to act (the
//! membership administration in [`crate::admin`]), and after each call drains
//! its outputs, in this order: [`Session::poll_persist`] (writes to the
//! device-local store, durable before anything is sent, DOC-15), then
//! [`Session::poll_transmit`] (envelopes to publish live, BRK-12), then
//! [`Session::poll_timeout`] (when to call [`Session::handle_timeout`]).
//! Time is handed in (`now_ms`), never read.
//!
//! Implements the outbox of spec KEY-15 (carriers into the epoch they are
//! sealed under), MEM-21 (a redemption only in its lobby), KEY-8 (a welcome
//! and the membership log into the newcomer's lobby), and calls the one
//! follow-up policy of `clientful_core` (`SpaceReplica::follow_up`).
//!
//! Three drivers run it: the native SDK (through storage, [`Transport::Storage`]),
//! and the conformance reference adapter and the simulator, which carry key
//! messages and welcomes to devices themselves ([`Transport::Direct`],
//! [`Session::poll_direct`]) and hand in their own seeded randomness
//! ([`Session::follow_up_with`]). No other crate calls the policy.

use std::collections::{BTreeMap, VecDeque};

use clientful_core::envelope;
use clientful_core::keys::EpochKey;
use clientful_core::membership::delivery;
use clientful_core::membership::epoch;
use clientful_core::membership::invite;
use clientful_core::membership::space::{Outgoing, PendingAdmission, membership_doc_id};
use clientful_core::membership::{
    Admission, FollowUpPolicy, FollowUps, Received, SpaceReplica, State,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use zeroize::Zeroizing;

use crate::deliveries::{Deliveries, Pending};
use crate::error::{SessionError, Step};
use crate::stored::{self, KEY_EPOCHS, KEY_GENESIS, KEY_PENDING, KEY_WELCOMED, Persist, Stored};

/// The key of the lobby (an invite's or a device link's epoch, MEM-21,
/// MEM-24) whose secret is `secret`.
pub fn lobby_key(space_id: &[u8; 32], secret: &[u8; 32]) -> Result<EpochKey, SessionError> {
    let keys = invite::derive(space_id, secret).map_err(SessionError::core(Step::Lobby))?;
    epoch::epoch_key(space_id, &keys.epoch_secret).map_err(SessionError::core(Step::Lobby))
}

/// How a session starts: the membership replica and this device's local
/// settings.
pub struct SessionConfig {
    /// The membership replica (fresh, redeemed, or to be restored).
    pub replica: SpaceReplica,
    /// This device's signing key (public).
    pub device_key: [u8; 32],
    /// Secrets of the lobbies this device reads (its redemption's invite, or
    /// the link it joined with).
    pub lobbies: Vec<Zeroizing<[u8; 32]>>,
    /// Link secrets of the devices this device added, by device id.
    pub links: Vec<([u8; 32], Zeroizing<[u8; 32]>)>,
    /// Whether redemptions wait for [`Session::admit`] (MEM-25).
    pub confirm_admissions: bool,
    /// Seed of the session's randomness (the shell draws it from the OS).
    pub rng_seed: [u8; 32],
}

impl core::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("space", self.replica.space_id())
            .finish_non_exhaustive()
    }
}

/// How the session hands out what the membership replica sends: key messages
/// and welcomes either travel through storage (sealed into carriers) or are
/// handed to a driver that delivers them to devices itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// Through storage, as the native SDK does: own operations go to
    /// [`Session::poll_persist`] and [`Session::poll_transmit`], key messages
    /// are sealed into carriers (KEY-15) and welcomes into the newcomer's lobby
    /// (KEY-8), queued as pending deliveries ([`Session::deliveries`]).
    #[default]
    Storage,
    /// Handed out as they are, in the replica's order, by
    /// [`Session::poll_direct`] (operation envelopes, key messages, welcomes
    /// with their device): for a driver that carries them to devices itself,
    /// such as the conformance reference adapter (the harness protocol's space
    /// items) and the simulator. Nothing is sealed, so nothing draws
    /// randomness; [`Session::poll_transmit`] stays empty and
    /// [`Session::poll_persist`] gets the same writes as with
    /// [`Transport::Storage`] (own envelopes and keys).
    Direct,
}

/// What the follow-ups did since [`Session::take_follow_report`] was last called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowReport {
    /// Users this device admitted (MEM-25).
    pub admitted: Vec<[u8; 32]>,
    /// Invites this device revoked because their expiry passed (MEM-22).
    pub expired_invites: usize,
    /// Redemptions the last follow-up left waiting.
    pub awaiting_admission: Vec<PendingAdmission>,
}

/// One space on one device, sans IO. See the module documentation.
pub struct Session {
    pub(crate) space_id: [u8; 32],
    pub(crate) device_key: [u8; 32],
    pub(crate) replica: SpaceReplica,
    pub(crate) lobbies: Vec<EpochKey>,
    pub(crate) links: BTreeMap<[u8; 32], EpochKey>,
    pub(crate) admission: Admission,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) deliveries: Deliveries,
    transport: Transport,
    persist: VecDeque<Persist>,
    transmit: VecDeque<Vec<u8>>,
    direct: VecDeque<Outgoing>,
    pub(crate) follow: FollowReport,
    log_ids: ([u8; 32], [u8; 32]),
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("space", &self.space_id)
            .field("pending", &self.deliveries.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    fn assemble(cfg: SessionConfig, transport: Transport) -> Result<Session, SessionError> {
        let space_id = *cfg.replica.space_id();
        let mut lobbies = Vec::new();
        for s in &cfg.lobbies {
            lobbies.push(lobby_key(&space_id, s)?);
        }
        let mut links = BTreeMap::new();
        for (device, s) in &cfg.links {
            links.insert(*device, lobby_key(&space_id, s)?);
        }
        let mem = membership_doc_id(&space_id).map_err(SessionError::core(Step::Space))?;
        let del = delivery::delivery_doc_id(&space_id).map_err(SessionError::core(Step::Space))?;
        Ok(Session {
            space_id,
            device_key: cfg.device_key,
            replica: cfg.replica,
            lobbies,
            links,
            admission: if cfg.confirm_admissions {
                Admission::Never
            } else {
                Admission::Automatic
            },
            rng: ChaCha20Rng::from_seed(cfg.rng_seed),
            deliveries: Deliveries::default(),
            transport,
            persist: VecDeque::new(),
            transmit: VecDeque::new(),
            direct: VecDeque::new(),
            follow: FollowReport::default(),
            log_ids: (mem, del),
        })
    }

    /// A space new on this device (created, redeemed or joined by a link):
    /// whatever the replica has to send is queued at once.
    pub fn new(cfg: SessionConfig) -> Result<Session, SessionError> {
        Self::with_transport(cfg, Transport::Storage)
    }

    /// As [`Session::new`], handing out what the replica sends by `transport`
    /// ([`Transport::Direct`]: a driver that delivers key messages and
    /// welcomes itself).
    pub fn with_transport(
        cfg: SessionConfig,
        transport: Transport,
    ) -> Result<Session, SessionError> {
        let mut s = Self::assemble(cfg, transport)?;
        s.drain()?;
        Ok(s)
    }

    /// A space reopened: the keys, welcomes and pending deliveries stored
    /// earlier, then the membership log and key deliveries held locally
    /// (`log`: every local envelope; others are skipped). The operations this
    /// device sent before come back from `log`: nothing new is queued.
    pub fn restore<'a>(
        cfg: SessionConfig,
        stored: &Stored,
        log: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Session, SessionError> {
        let mut s = Self::assemble(cfg, Transport::Storage)?;
        if let Some(g) = stored
            .genesis
            .as_deref()
            .and_then(|g| <[u8; 32]>::try_from(g).ok())
        {
            s.replica
                .pin_genesis(g)
                .map_err(SessionError::core(Step::Space))?;
        }
        if let Some(b) = &stored.epochs {
            s.replica.import_keys(&stored::decode_keys(b));
        }
        for k in s.lobbies.clone() {
            s.replica.add_invite_epoch(k);
        }
        if let Some(b) = &stored.welcomed {
            s.replica.restore_welcomed(&stored::decode_pairs(b));
        }
        if let Some(b) = &stored.pending {
            s.deliveries = Deliveries::decode(b);
        }
        s.handle_log(log);
        let _ = s.replica.drain_outbox();
        Ok(s)
    }

    // ----- getters -----

    /// The space id.
    pub fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }

    /// This device's signing key.
    pub fn device_key(&self) -> [u8; 32] {
        self.device_key
    }

    /// The membership replica.
    pub fn replica(&self) -> &SpaceReplica {
        &self.replica
    }

    /// The membership replica, to change: for a driver that writes operations
    /// the session has no action for (the conformance adapter's intents, a
    /// simulator's scripted or forged steps) or replaces the replica. What
    /// the replica queues leaves it at the next [`Session::flush`] (or any
    /// session action).
    pub fn replica_mut(&mut self) -> &mut SpaceReplica {
        &mut self.replica
    }

    /// How the session hands out what the replica sends.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The resolved membership.
    pub fn state(&self) -> &State {
        self.replica.state()
    }

    /// The pending deliveries.
    pub fn deliveries(&self) -> &Deliveries {
        &self.deliveries
    }

    /// Whether redemptions wait for [`Session::admit`] (the follow-ups admit
    /// none automatically).
    pub fn confirm_admissions(&self) -> bool {
        self.admission != Admission::Automatic
    }

    /// Sets whether redemptions wait for [`Session::admit`] (the shell persists
    /// the setting): [`Admission::Never`] or [`Admission::Automatic`].
    pub fn set_confirm_admissions(&mut self, confirm: bool) {
        self.admission = if confirm {
            Admission::Never
        } else {
            Admission::Automatic
        };
    }

    /// Which redemptions the follow-ups admit (MEM-25).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Sets which redemptions the follow-ups admit (MEM-25), for a driver
    /// that chooses them itself ([`Admission::Confirmed`]: a person, or a
    /// simulated one, picked among rivals).
    pub fn set_admission(&mut self, admission: Admission) {
        self.admission = admission;
    }

    /// The document an envelope belongs to, or `None` for the membership log,
    /// the key-delivery document and bytes that are no envelope.
    pub fn document_of(&self, bytes: &[u8]) -> Option<[u8; 32]> {
        let d = envelope::decode(bytes).ok()?;
        let id = d.header.doc_id;
        (id != self.log_ids.0 && id != self.log_ids.1).then_some(id)
    }

    /// Whether an envelope belongs to the membership log or the key-delivery
    /// document (what [`Session::handle_log`] takes).
    pub fn is_log(&self, bytes: &[u8]) -> bool {
        envelope::decode(bytes)
            .is_ok_and(|d| d.header.doc_id == self.log_ids.0 || d.header.doc_id == self.log_ids.1)
    }

    /// Whether an envelope belongs to the key-delivery document.
    pub fn is_delivery(&self, bytes: &[u8]) -> bool {
        envelope::decode(bytes).is_ok_and(|d| d.header.doc_id == self.log_ids.1)
    }

    // ----- outputs -----

    /// The next write to the device-local store.
    pub fn poll_persist(&mut self) -> Option<Persist> {
        self.persist.pop_front()
    }

    /// The next envelope to publish live (documents are published by the
    /// shell that edits them; these are membership operations and carriers).
    /// Empty with [`Transport::Direct`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// With [`Transport::Direct`]: the next thing to carry, in the order the
    /// replica sent it (an operation envelope for every device, a key message
    /// for every device, a welcome for the one device it names). Empty with
    /// [`Transport::Storage`].
    pub fn poll_direct(&mut self) -> Option<Outgoing> {
        self.direct.pop_front()
    }

    /// When (Unix ms) the session next wants [`Session::handle_timeout`]: the
    /// earliest expiry of an open invite (MEM-22), which an admin revokes.
    pub fn poll_timeout(&self) -> Option<u64> {
        let me = self.replica.identity().user;
        let admin = self
            .replica
            .state()
            .members
            .get(&me)
            .is_some_and(|m| m.role == clientful_core::membership::Role::Admin);
        if !admin {
            return None;
        }
        self.replica
            .state()
            .invites
            .values()
            .filter(|i| !i.revoked && i.expires_at_ms > 0)
            .map(|i| i.expires_at_ms)
            .min()
    }

    /// The time given by [`Session::poll_timeout`] has come: runs the
    /// follow-ups at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Result<(), SessionError> {
        self.follow_up(Some(now_ms)).map(|_| ())
    }

    /// What the follow-ups did since the last call.
    pub fn take_follow_report(&mut self) -> FollowReport {
        std::mem::take(&mut self.follow)
    }

    // ----- inputs -----

    /// Feeds envelopes of the membership log and the key-delivery document
    /// (others are skipped) to the replica. Returns whether keys or operations
    /// changed (the shell drops document replicas built on the old membership).
    pub fn handle_log<'a>(&mut self, envelopes: impl IntoIterator<Item = &'a [u8]>) -> bool {
        let keys_before = self.replica.keys().all().len();
        let ops_before = self.replica.state().ops.len();
        for e in envelopes {
            if self.is_log(e) {
                self.replica.receive(e);
            }
        }
        self.replica.keys().all().len() != keys_before
            || self.replica.state().ops.len() != ops_before
    }

    /// An envelope of the membership log or the key-delivery document (a
    /// carrier), given to the replica as it is, with its disposition: for a
    /// driver that reports each one (the conformance adapter). Nothing is
    /// filtered: an envelope of another document is the replica's to refuse.
    pub fn handle_envelope(&mut self, bytes: &[u8]) -> Received {
        self.replica.receive(bytes)
    }

    /// A key message carried directly ([`Transport::Direct`]): the replica
    /// opens the secrets addressed to this device.
    pub fn handle_key_message(&mut self, bytes: &[u8]) -> Result<(), clientful_core::Error> {
        self.replica.receive_key_message(bytes)
    }

    /// A welcome carried directly ([`Transport::Direct`]), addressed to this
    /// device (KEY-8).
    pub fn handle_welcome(&mut self, bytes: &[u8]) -> Result<(), clientful_core::Error> {
        self.replica.receive_welcome(bytes)
    }

    /// What a member device does after the membership changed: the one
    /// follow-up policy of `clientful_core` (MEM-22 expiry revocations at
    /// `now_ms`, MEM-25 admissions, MEM-15 acknowledgements, KEY-12 healing,
    /// KEY-8 welcomes), then its outputs queued like every other action.
    /// Redemptions are admitted as [`Session::admission`] says: by default
    /// automatically, unless the space asks for confirmation or rivals compete
    /// for one single-use invite. Returns what the policy did.
    pub fn follow_up(&mut self, now_ms: Option<u64>) -> Result<FollowUps, SessionError> {
        let policy = self.policy(now_ms);
        let done = self
            .replica
            .follow_up(&mut self.rng, &policy)
            .map_err(SessionError::core(Step::FollowUp))?;
        self.followed(done)
    }

    /// As [`Session::follow_up`], drawing the policy's randomness (keys,
    /// nonces, signatures' inputs) from `rng` instead of the session's own:
    /// for seeded drivers whose runs must replay exactly (the conformance
    /// reference adapter, the simulator, whose devices share one stream).
    /// Carriers sealed afterwards ([`Transport::Storage`]) still draw from the
    /// session's own randomness; [`Transport::Direct`] seals none.
    pub fn follow_up_with<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now_ms: Option<u64>,
    ) -> Result<FollowUps, SessionError> {
        let policy = self.policy(now_ms);
        let done = self
            .replica
            .follow_up(rng, &policy)
            .map_err(SessionError::core(Step::FollowUp))?;
        self.followed(done)
    }

    fn policy(&self, now_ms: Option<u64>) -> FollowUpPolicy {
        FollowUpPolicy {
            admission: self.admission.clone(),
            now_ms,
        }
    }

    /// Records what the follow-ups did and queues their outputs.
    fn followed(&mut self, done: FollowUps) -> Result<FollowUps, SessionError> {
        let st = self.replica.state();
        for r in &done.admitted {
            if let Some(x) = st.redemptions.get(r) {
                self.follow.admitted.push(x.user);
            }
        }
        self.follow.expired_invites += done.revoked_invites.len();
        self.follow.awaiting_admission = done.waiting.clone();
        self.drain()?;
        Ok(done)
    }

    /// Moves what the replica queued (after a change made through
    /// [`Session::replica_mut`]) into the outputs.
    pub fn flush(&mut self) -> Result<(), SessionError> {
        self.drain()
    }

    /// The shell wrote `envelopes` into the directory of `epoch_id` (a
    /// [`crate::Delivery`]): they leave the pending deliveries.
    pub fn delivered(&mut self, epoch_id: &[u8; 32], envelopes: &[Vec<u8>]) {
        self.deliveries.delivered(epoch_id, envelopes);
        self.persist.push_back(Persist::Key {
            name: KEY_PENDING,
            value: self.deliveries.encode(),
        });
    }

    // ----- the outbox -----

    fn lobby_of(&self, epoch_id: &[u8; 32]) -> Option<EpochKey> {
        self.lobbies.iter().find(|k| k.id() == epoch_id).cloned()
    }

    /// Moves the replica's outbox into persist writes (durable before anything
    /// is sent, DOC-15), transmits and pending deliveries; persists the keys.
    pub(crate) fn drain(&mut self) -> Result<(), SessionError> {
        if self.transport == Transport::Direct {
            for o in self.replica.drain_outbox() {
                if let Outgoing::Envelope(b) = &o {
                    let in_lobby = envelope::decode(b)
                        .is_ok_and(|d| self.lobby_of(&d.header.epoch_id).is_some());
                    self.persist.push_back(Persist::Envelope {
                        bytes: b.clone(),
                        outbox: !in_lobby,
                    });
                }
                self.direct.push_back(o);
            }
            self.persist_keys();
            return Ok(());
        }
        let mut pending = Vec::new();
        for o in self.replica.drain_outbox() {
            match o {
                Outgoing::Envelope(b) => {
                    let epoch_id = envelope::decode(&b)
                        .map(|d| d.header.epoch_id)
                        .map_err(SessionError::core(Step::OwnOperation))?;
                    if let Some(lobby) = self.lobby_of(&epoch_id) {
                        // A redemption: only the lobby can carry it (MEM-21).
                        self.persist.push_back(Persist::Envelope {
                            bytes: b.clone(),
                            outbox: false,
                        });
                        pending.push(Pending {
                            epoch: lobby,
                            bytes: b.clone(),
                        });
                    } else {
                        self.persist.push_back(Persist::Envelope {
                            bytes: b.clone(),
                            outbox: true,
                        });
                    }
                    self.transmit.push_back(b);
                }
                Outgoing::KeyMessage(km) => {
                    let carriers = self
                        .replica
                        .key_message_carriers(&mut self.rng, &km)
                        .map_err(SessionError::core(Step::KeyMessage))?;
                    for (epoch_id, c) in carriers {
                        let Some(k) = self.replica.keys().get(&epoch_id).cloned() else {
                            continue;
                        };
                        self.persist.push_back(Persist::Envelope {
                            bytes: c.clone(),
                            outbox: false,
                        });
                        self.transmit.push_back(c.clone());
                        pending.push(Pending { epoch: k, bytes: c });
                    }
                }
                Outgoing::Welcome { device_id, bytes } => {
                    let lobby = self
                        .replica
                        .invite_epoch_of(&device_id)
                        .or_else(|| self.links.get(&device_id).cloned());
                    // A device added without an invite or a link from this device
                    // is welcomed by the device that linked it.
                    let Some(lobby) = lobby else { continue };
                    let c = self
                        .replica
                        .welcome_carrier(&mut self.rng, &bytes, &lobby)
                        .map_err(SessionError::core(Step::Welcome))?;
                    self.persist.push_back(Persist::Envelope {
                        bytes: c.clone(),
                        outbox: false,
                    });
                    pending.push(Pending {
                        epoch: lobby.clone(),
                        bytes: c,
                    });
                    // The newcomer learns the members (and so the signers of the
                    // space's storage) from the log itself.
                    for e in self.replica.envelopes() {
                        pending.push(Pending {
                            epoch: lobby.clone(),
                            bytes: e,
                        });
                    }
                }
            }
        }
        if !pending.is_empty() {
            self.deliveries.add(pending);
            self.persist.push_back(Persist::Key {
                name: KEY_PENDING,
                value: self.deliveries.encode(),
            });
        }
        self.persist_keys();
        Ok(())
    }

    /// Queues a carrier this device wrote under `epoch` (a recovery set, REC-4):
    /// stored with the device's envelopes, sent to the room, and delivered to
    /// `epoch`'s storage directory with the next sync.
    pub(crate) fn queue_carrier(&mut self, carrier: Vec<u8>, epoch: EpochKey) {
        self.persist.push_back(Persist::Envelope {
            bytes: carrier.clone(),
            outbox: false,
        });
        self.transmit.push_back(carrier.clone());
        self.deliveries.add(vec![Pending {
            epoch,
            bytes: carrier,
        }]);
        self.persist.push_back(Persist::Key {
            name: KEY_PENDING,
            value: self.deliveries.encode(),
        });
    }

    /// Queues the writes of the keys held, the welcomes sent and the genesis.
    fn persist_keys(&mut self) {
        self.persist.push_back(Persist::Key {
            name: KEY_EPOCHS,
            value: stored::encode_keys(&self.replica.keys().all()),
        });
        self.persist.push_back(Persist::Key {
            name: KEY_WELCOMED,
            value: stored::encode_pairs(&self.replica.welcomed()),
        });
        if let Some(g) = self.replica.genesis() {
            self.persist.push_back(Persist::Key {
                name: KEY_GENESIS,
                value: g.to_vec(),
            });
        }
    }
}
