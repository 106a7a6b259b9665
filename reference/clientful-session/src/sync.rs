//! The sync exchange with storage (spec §9): which directories to repair,
//! what to upload where, what to pull, when another round is needed, and what
//! the sync found. A [`SyncExchange`] is a small state machine: the shell asks
//! [`SyncExchange::poll_step`] what to do next, does it against its storage,
//! reports the result (`received`, `learned`, [`Session::delivered`]) and asks
//! again until `None`; [`SyncExchange::finish`] then assembles the outcome.
//!
//! The order is the one of STO-28 (repair this device's own files first), then
//! KEY-15 deliveries, then rounds of pull-and-learn over the current epoch and
//! every lobby (STO-23) until no new key is learned (at most
//! [`MAX_SYNC_ROUNDS`]), the STO-27 check of checkpoints shown, the deliveries
//! the follow-ups queued, and the flush of the outbox (STO-8).
//!
//! Nothing here holds a borrow of storage across an await: the exchange is
//! plain data, so a shell whose sync future is dropped mid-way loses only the
//! exchange, never the session.

use std::collections::{BTreeSet, VecDeque};

use clientful_core::keys::EpochKey;
use clientful_core::membership::epoch;
use clientful_core::membership::space::PendingAdmission;

use crate::admin::StaleWriter;
use crate::deliveries::Delivery;
use crate::session::Session;

/// Rounds of pull-and-learn in one sync: each round can learn the keys that
/// open the next epoch's directory.
pub const MAX_SYNC_ROUNDS: usize = 8;

/// The epochs and signers of a directory the shell opens for reading and
/// writing (with its own device key and randomness added).
#[derive(Clone)]
pub struct EpochView {
    /// The epoch written to (and read).
    pub epoch: EpochKey,
    /// Older epochs also read.
    pub old_epochs: Vec<EpochKey>,
    /// Devices whose files are read (this device included).
    pub signers: Vec<[u8; 32]>,
}

impl core::fmt::Debug for EpochView {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpochView")
            .field("epoch", self.epoch.id())
            .field("old_epochs", &self.old_epochs.len())
            .field("signers", &self.signers.len())
            .finish()
    }
}

/// What the shell does next in a sync.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SyncStep {
    /// Put back what storage withheld or rolled back of this device's own
    /// files (STO-28) in these directories (the first is written to), reading
    /// with this device as the only signer.
    RepairOwn(Vec<EpochKey>),
    /// Write each delivery into its epoch's directory (init, then publish one
    /// segment); call [`Session::delivered`] for each one written. A failure
    /// ends the sync with that error once every delivery was tried.
    Deliver(Vec<Delivery>),
    /// The device holds no document yet: show documents from the checkpoints
    /// of this directory (STO-26) while the sync goes on.
    ShowPreviews(EpochView),
    /// Pull this directory (the current epoch, every older epoch held); report
    /// new envelopes with [`SyncExchange::received`].
    Pull(EpochView),
    /// Pull the lobby of this epoch (STO-23), signed by whoever wrote there,
    /// into the device-local store; report with [`SyncExchange::received`].
    PullLobby(EpochKey),
    /// Feed the membership log and key deliveries now held locally to
    /// [`Session::handle_log`], run [`Session::follow_up`] at the current
    /// time, then call [`SyncExchange::learned`].
    Learn,
    /// Check the checkpoints shown during this sync against their snapshots
    /// (STO-27).
    CheckPreviews,
    /// Flush the outbox into this directory (init, then flush).
    Flush(EpochView),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Repair,
    FirstDeliveries,
    RoundStart,
    RoundPull,
    RoundLobbies,
    RoundLearn,
    RoundEnd,
    CheckPreviews,
    LastDeliveries,
    Flush,
    Done,
}

/// What a finished sync found, beyond what the shell counted itself.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// Envelopes new to this device (as the shell reported them).
    pub received: usize,
    /// Whether the membership log gained operations.
    pub membership_changed: bool,
    /// Members still writing under a replaced epoch (see [`StaleWriter`]).
    pub stale_writers: Vec<StaleWriter>,
    /// Epoch keys held.
    pub epochs_held: usize,
    /// Newer epochs this device was not given a key for (KEY-4).
    pub locked_out: usize,
    /// Whether this device can read and write the space.
    pub has_access: bool,
    /// Users this device admitted (MEM-25).
    pub admitted: Vec<[u8; 32]>,
    /// Invites revoked because their expiry passed (MEM-22).
    pub expired_invites: usize,
    /// Admissible redemptions waiting for an admin.
    pub awaiting_admission: Vec<PendingAdmission>,
    /// Redemptions refused: `(user, redemption)`.
    pub refused: Vec<([u8; 32], [u8; 32])>,
}

/// One sync in progress. See the module documentation.
#[derive(Debug, Clone)]
pub struct SyncExchange {
    phase: Phase,
    round: usize,
    received: usize,
    round_keys: usize,
    round_received: usize,
    documents_held: usize,
    lobbies: VecDeque<EpochKey>,
    keys_before: BTreeSet<[u8; 32]>,
    ops_before: usize,
}

impl Session {
    /// The current epoch's directory as this device reads it: every older
    /// epoch of the chain, and the signers of the write view (with itself).
    pub fn current_view(&self) -> Option<EpochView> {
        let current = self.replica.current_epoch()?;
        let old_epochs = self
            .replica
            .epoch_chain()
            .into_iter()
            .filter(|k| k.id() != current.id())
            .collect();
        Some(EpochView {
            epoch: current,
            old_epochs,
            signers: self.signers(),
        })
    }

    /// The devices whose files this device reads: the write view's, and itself.
    pub fn signers(&self) -> Vec<[u8; 32]> {
        let mut s = self.replica.write_view().signers();
        if !s.contains(&self.device_key) {
            s.push(self.device_key);
        }
        s
    }

    /// The lobbies a sync reads: this device's own, and those of the invites
    /// not revoked (where redemptions arrive). Deduplicated.
    pub fn lobbies_to_read(&self) -> Vec<EpochKey> {
        let mut out = self.lobbies.clone();
        for inv in self.replica.state().invites.values().filter(|i| !i.revoked) {
            if let Ok(k) = epoch::epoch_key(&self.space_id, &inv.invite_secret) {
                out.push(k);
            }
        }
        let mut seen = BTreeSet::new();
        out.retain(|k| seen.insert(*k.id()));
        out
    }

    /// Every directory this device may have written: the epochs it holds, its
    /// own lobby, the lobbies of every invite and of the devices it linked.
    pub fn written_epochs(&self) -> Vec<EpochKey> {
        let mut out = self.replica.keys().all();
        out.extend(self.lobbies.iter().cloned());
        for inv in self.replica.state().invites.values() {
            if let Ok(k) = epoch::epoch_key(&self.space_id, &inv.invite_secret) {
                out.push(k);
            }
        }
        out.extend(self.links.values().cloned());
        let mut seen = BTreeSet::new();
        out.retain(|k| seen.insert(*k.id()));
        out
    }

    fn key_count(&self) -> usize {
        self.replica.keys().all().len()
    }
}

impl SyncExchange {
    /// Starts a sync of `session`; `documents_held`: how many documents the
    /// device-local store holds envelopes of.
    pub fn start(session: &Session, documents_held: usize) -> SyncExchange {
        SyncExchange {
            phase: Phase::Repair,
            round: 0,
            received: 0,
            round_keys: 0,
            round_received: 0,
            documents_held,
            lobbies: VecDeque::new(),
            keys_before: session
                .replica
                .keys()
                .all()
                .iter()
                .map(|k| *k.id())
                .collect(),
            ops_before: session.replica.state().ops.len(),
        }
    }

    /// The epoch keys held when the sync started.
    pub fn keys_before(&self) -> &BTreeSet<[u8; 32]> {
        &self.keys_before
    }

    /// The shell stored `n` envelopes new to this device.
    pub fn received(&mut self, n: usize) {
        self.received += n;
    }

    /// The shell ran [`SyncStep::Learn`]; `documents_held` as in
    /// [`SyncExchange::start`].
    pub fn learned(&mut self, documents_held: usize) {
        self.documents_held = documents_held;
    }

    /// What to do next; `None` once the sync is done.
    pub fn poll_step(&mut self, session: &Session) -> Option<SyncStep> {
        loop {
            match self.phase {
                Phase::Repair => {
                    self.phase = Phase::FirstDeliveries;
                    let epochs = session.written_epochs();
                    if !epochs.is_empty() {
                        return Some(SyncStep::RepairOwn(epochs));
                    }
                }
                Phase::FirstDeliveries => {
                    self.phase = Phase::RoundStart;
                    if !session.deliveries.is_empty() {
                        return Some(SyncStep::Deliver(session.deliveries.uploads()));
                    }
                }
                Phase::RoundStart => {
                    self.round += 1;
                    self.round_keys = session.key_count();
                    self.round_received = self.received;
                    self.phase = Phase::RoundPull;
                    // Only a device that holds no document yet (a new device or
                    // member): later syncs load new documents quickly enough.
                    if self.documents_held == 0
                        && let Some(v) = session.current_view()
                    {
                        return Some(SyncStep::ShowPreviews(v));
                    }
                }
                Phase::RoundPull => {
                    self.phase = Phase::RoundLobbies;
                    self.lobbies = session.lobbies_to_read().into();
                    if let Some(v) = session.current_view() {
                        return Some(SyncStep::Pull(v));
                    }
                }
                Phase::RoundLobbies => match self.lobbies.pop_front() {
                    Some(k) => return Some(SyncStep::PullLobby(k)),
                    None => self.phase = Phase::RoundLearn,
                },
                Phase::RoundLearn => {
                    self.phase = Phase::RoundEnd;
                    return Some(SyncStep::Learn);
                }
                Phase::RoundEnd => {
                    let quiet = session.key_count() == self.round_keys
                        && self.received == self.round_received;
                    self.phase = if quiet || self.round >= MAX_SYNC_ROUNDS {
                        Phase::CheckPreviews
                    } else {
                        Phase::RoundStart
                    };
                }
                Phase::CheckPreviews => {
                    self.phase = Phase::LastDeliveries;
                    return Some(SyncStep::CheckPreviews);
                }
                Phase::LastDeliveries => {
                    self.phase = Phase::Flush;
                    if !session.deliveries.is_empty() {
                        return Some(SyncStep::Deliver(session.deliveries.uploads()));
                    }
                }
                Phase::Flush => {
                    self.phase = Phase::Done;
                    if let Some(v) = session.current_view() {
                        return Some(SyncStep::Flush(v));
                    }
                }
                Phase::Done => return None,
            }
        }
    }

    /// The outcome, once [`SyncExchange::poll_step`] returned `None`: `fresh`
    /// are the envelopes (not key deliveries) new since the start, for the
    /// stale-writer check. Takes the session's follow-up report.
    pub fn finish(self, session: &mut Session, fresh: &[Vec<u8>]) -> SyncOutcome {
        let follow = session.take_follow_report();
        let mut awaiting = session.replica.pending_admissions();
        awaiting.retain(|p| p.admissible);
        SyncOutcome {
            received: self.received,
            membership_changed: session.replica.state().ops.len() != self.ops_before,
            stale_writers: session.stale_writers(&self.keys_before, fresh),
            epochs_held: session.key_count(),
            locked_out: session.replica.locked_out_epochs().len(),
            has_access: session.has_access(),
            admitted: follow.admitted,
            expired_invites: follow.expired_invites,
            awaiting_admission: awaiting,
            refused: session
                .replica
                .refused_redemptions()
                .into_iter()
                .map(|(id, user, _)| (user, id))
                .collect(),
        }
    }
}
