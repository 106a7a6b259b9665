//! One space on one device ([`SpaceSession`]): the native shell that drives
//! the session core (`clientful_session`, the per-space state machine: the
//! membership follow-ups, the outbox of key deliveries, the sync exchange)
//! with the device-local store (redb), the storage backend (OpenDAL), tokio,
//! the clock and the document replicas (§8).
//!
//! What lives where:
//! - `spaces/<space id>/space.json`: local settings (name, storage URL, lobby
//!   and link secrets), in [`settings`](self);
//! - `spaces/<space id>/local.redb`: the device-local store (STO-20): every
//!   envelope known (documents, membership log, key-delivery carriers), the
//!   outbox, the epoch keys held, and sync cursors.
//!
//! The `impl SpaceSession` is split by concern: settings and opening
//! (`settings.rs`), the sync loop (`sync.rs`), membership administration
//! (`admin.rs`), documents (`documents.rs`) and files (`files.rs`); this
//! module holds the type, the reading API, the application of the session
//! core's outputs and live input.
//!
//! Writing: document envelopes and membership operations go to the current
//! epoch's directory; key-delivery carriers (KEY-15) go to the directory of the
//! epoch they are sealed under (the replaced epoch for a rotation's key message,
//! the lobby for a welcome), through a pending list that survives restarts.
//! Reading ([`SpaceSession::sync`]): every epoch held, then every lobby
//! (STO-23), until no new key is learned.
//!
//! Withholding: each sync first puts back what storage withheld or rolled back
//! of this device's own files, in every directory it wrote (STO-28), and
//! reports it, like a rollback or fork of anyone's head manifest (STO-9), as
//! [`Change::Withholding`]; a member still writing under an epoch a rotation
//! replaced is reported as [`Change::StaleEpoch`].
//!
//! Membership evidence: what the membership replica records for the user
//! (a rival `CREATE_SPACE`, MEM-26/MEM-27; a welcome from a device that was
//! not an active member, KEY-22; a key message whose secret does not match its
//! epoch, KEY-7) is [`SpaceSession::membership_alarms`], copied into each
//! [`SyncReport`] and announced once as [`Change::Evidence`].
//!
//! Cancellation: no state is moved out of the session across an await. The
//! device-local store is lent to a storage operation through a guard that
//! gives it back when dropped, so a `sync` (or any async method) whose future
//! is dropped mid-way leaves the session usable.

mod admin;
#[cfg(feature = "attest")]
mod attestation;
mod documents;
mod files;
mod recovery;
mod settings;
mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Evidence the membership replica records for the user (MEM-27, KEY-7,
/// KEY-22): never a verdict, always worth telling.
#[cfg(feature = "attest")]
pub use attestation::AttestationView;
use clientful_core::envelope;
use clientful_core::keys::SigningKey;
pub use clientful_core::membership::space::Alarm as MembershipAlarm;
use clientful_core::membership::{SpaceReplica, State};
pub use clientful_session::{InviteInfo, MemberInfo, StaleWriter};
use clientful_session::{Persist, Session};
pub use clientful_storage::hwm::Withholding;
pub use clientful_storage::space::Alarm;
use clientful_storage::space::SpaceConfig;
use clientful_storage::{LocalStore, OpendalStore, Space};
use rand_chacha::ChaCha20Rng;
pub use recovery::{HeldShareInfo, request_id};

use crate::device_dir::DeviceDir;
use crate::document::Document;
use crate::error::ClientError;
pub use documents::DocInfo;
pub(crate) use settings::SpaceFile;
pub use sync::{CompactReport, SyncReport};

/// What changed, for subscribers ([`SpaceSession::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A document received envelopes from other devices.
    Document([u8; 32]),
    /// The membership changed (members, devices, epochs).
    Membership,
    /// A document this device holds no envelope of yet, shown from a checkpoint
    /// (spec §9.7a) while the sync loads and verifies its envelopes: its canonical
    /// JSON, **not verified**. A `Document` change follows once the verified
    /// document replaces it; a checkpoint found false is reported in the sync's
    /// warnings.
    Preview {
        /// The document.
        doc: [u8; 32],
        /// Its materialized state (canonical JSON, §8.6), unverified.
        json: String,
    },
    /// Storage withheld, rolled back or forked a head manifest (STO-9), or
    /// withheld this device's objects (STO-28). When `device` is this device,
    /// the sync has uploaded its files again; for another device, only that
    /// device can put them back, and members should compare their epoch
    /// authenticators (KEY-10).
    Withholding {
        /// The device whose files storage withheld or rolled back.
        device: [u8; 32],
        /// The epoch whose directory holds them.
        epoch: [u8; 32],
        /// What storage did.
        kind: Withholding,
    },
    /// The membership replica recorded new evidence (see
    /// [`MembershipAlarm`]): a rival genesis, a welcome from a non-member or
    /// removed device, a key message with a mismatched secret.
    Evidence(MembershipAlarm),
    /// An active member's device still writes under an epoch a rotation
    /// replaced (see [`StaleWriter`]).
    StaleEpoch {
        /// The writing device.
        device: [u8; 32],
        /// The replaced epoch.
        epoch: [u8; 32],
        /// Envelopes received in this sync.
        envelopes: usize,
    },
}

/// One space opened on this device. See the module documentation.
pub struct SpaceSession {
    /// The device's home and this space's folder in it.
    home: Arc<dyn DeviceDir>,
    folder: String,
    file: SpaceFile,
    space_id: [u8; 32],
    store: OpendalStore,
    /// Always the device's store between calls: lent only through [`Lease`].
    local: LocalStore,
    core: Session,
    device_seed: zeroize::Zeroizing<[u8; 32]>,
    device_key: [u8; 32],
    /// Randomness of the shell's own objects (document ids, replica and
    /// storage seeds); the session core has its own.
    rng: ChaCha20Rng,
    live: Vec<Vec<u8>>,
    docs: BTreeMap<[u8; 32], Document>,
    changes: tokio::sync::broadcast::Sender<Change>,
}

impl std::fmt::Debug for SpaceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceSession")
            .field("space", &hex::encode(self.space_id))
            .field("name", &self.file.name)
            .finish_non_exhaustive()
    }
}

/// The shell's clock, handed to the session core (MEM-22 expiries): the
/// platform's (`std::time` natively, `Date.now()` in a browser, where
/// `SystemTime::now()` panics).
fn now_ms() -> Option<u64> {
    Some(clientful_net::platform::unix_ms()).filter(|&t| t > 0)
}

/// The device-local store lent to a storage [`Space`] for one operation. The
/// session keeps an empty in-memory store in its place meanwhile; dropping the
/// lease (when the operation ends, or when the future running it is dropped
/// mid-await) puts the device's store back.
struct Lease<'a> {
    slot: &'a mut LocalStore,
    space: Option<Space<OpendalStore>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(space) = self.space.take() {
            let (_, local) = space.into_parts();
            *self.slot = local;
        }
    }
}

/// Runs `f` on a space opened with `cfg` over `store` and the device-local
/// store in `slot`, which is back in `slot` when this returns or its future
/// is dropped. `cfg.rng_seed` is set and every epoch is checked derivable
/// before the store is handed over, so that opening the space cannot fail
/// with the store inside.
async fn lend<T>(
    slot: &mut LocalStore,
    store: OpendalStore,
    cfg: SpaceConfig,
    f: impl AsyncFnOnce(&mut Space<OpendalStore>) -> Result<T, clientful_storage::StorageError>,
) -> Result<T, ClientError> {
    for k in std::iter::once(&cfg.epoch).chain(cfg.old_epochs.iter()) {
        clientful_storage::layout::EpochStorage::derive(&cfg.space_id, k)?;
    }
    let placeholder = LocalStore::in_memory()?;
    let local = std::mem::replace(slot, placeholder);
    let mut lease = Lease { slot, space: None };
    let space = lease.space.insert(Space::new(store, local, cfg)?);
    Ok(f(space).await?)
}

impl SpaceSession {
    pub(crate) fn device(&self) -> SigningKey {
        SigningKey::from_seed(&self.device_seed)
    }

    fn seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut self.rng, &mut seed);
        seed
    }

    /// Applies the session core's outputs: its writes to the device-local
    /// store, in order, then the envelopes to publish live.
    fn apply(&mut self) -> Result<(), ClientError> {
        while let Some(p) = self.core.poll_persist() {
            match p {
                Persist::Envelope { bytes, outbox } => {
                    self.local
                        .put_envelopes(std::slice::from_ref(&bytes), outbox, &[])?;
                }
                Persist::Key { name, value } => self.local.put_key(name, &value)?,
            }
        }
        while let Some(b) = self.core.poll_transmit() {
            self.live.push(b);
        }
        Ok(())
    }

    // ----- reading -----

    /// The space id.
    pub fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }

    /// The local name.
    pub fn name(&self) -> &str {
        &self.file.name
    }

    /// The storage URL.
    pub fn storage_url(&self) -> &str {
        &self.file.storage
    }

    /// The storage backend.
    pub fn store(&self) -> &OpendalStore {
        &self.store
    }

    /// The membership replica.
    pub fn membership(&self) -> &SpaceReplica {
        self.core.replica()
    }

    /// The session core driven by this shell.
    pub fn session_core(&self) -> &Session {
        &self.core
    }

    /// Membership evidence recorded on this device, oldest first (MEM-27: a
    /// rival `CREATE_SPACE` of this space; KEY-22: a welcome signed by a device
    /// that was not an active member; KEY-7: a key message whose secret does
    /// not match its epoch). Reported, never fatal: the rival is rejected, the
    /// welcome's unvouched secrets dropped.
    pub fn membership_alarms(&self) -> &[MembershipAlarm] {
        self.core.replica().alarms()
    }

    /// The resolved membership.
    pub fn state(&self) -> &State {
        self.core.state()
    }

    /// This device's key.
    pub fn device_key(&self) -> [u8; 32] {
        self.device_key
    }

    /// Whether this device holds the current epoch's key (can read and write).
    pub fn has_access(&self) -> bool {
        self.core.has_access()
    }

    /// The current members.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.core.members()
    }

    /// The local store.
    pub fn local_store(&self) -> Result<&LocalStore, ClientError> {
        Ok(&self.local)
    }

    /// Changes made by other devices, as they arrive (through [`Self::sync`] or a
    /// live session, [`crate::live`]). A slow subscriber misses old changes
    /// (`RecvError::Lagged`) and should re-read the documents it shows.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn notify(&self, c: Change) {
        // No subscriber is fine.
        let _ = self.changes.send(c);
    }

    /// The local envelopes of every document (not the membership log or the
    /// delivery document), grouped by document id in one scan of the store.
    fn by_doc(&self) -> Result<BTreeMap<[u8; 32], Vec<Vec<u8>>>, ClientError> {
        let mut out: BTreeMap<[u8; 32], Vec<Vec<u8>>> = BTreeMap::new();
        for e in self.local.all_envelopes()? {
            if let Some(doc) = self.core.document_of(&e) {
                out.entry(doc).or_default().push(e);
            }
        }
        Ok(out)
    }

    /// In one scan of the local store: the envelopes held per document (not
    /// the membership log or the delivery document), and every envelope id.
    #[allow(clippy::type_complexity)]
    fn index(
        &self,
    ) -> Result<(BTreeMap<[u8; 32], usize>, BTreeSet<envelope::EnvelopeId>), ClientError> {
        let mut counts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for e in self.local.all_envelopes()? {
            if let Ok(d) = envelope::decode(&e) {
                if let Some(doc) = self.core.document_of(&e) {
                    *counts.entry(doc).or_default() += 1;
                }
                ids.insert(d.id);
            }
        }
        Ok((counts, ids))
    }

    /// Takes the envelopes written since the last call, to publish over a broker.
    pub fn take_live(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.live)
    }

    /// Feeds the membership log and key deliveries held locally to the
    /// session core; drops document replicas built on an older membership.
    fn feed_local(&mut self) -> Result<(), ClientError> {
        let all = self.local.all_envelopes()?;
        if self.core.handle_log(all.iter().map(Vec::as_slice)) {
            self.docs.clear();
        }
        Ok(())
    }

    /// Receives envelopes from a peer (the broker): stored, then applied.
    pub fn receive(&mut self, envelopes: &[Vec<u8>]) -> Result<usize, ClientError> {
        let fresh = self.local.put_envelopes(envelopes, false, &[])?.len();
        if fresh == 0 {
            return Ok(0);
        }
        let mut log = Vec::new();
        let mut changed = BTreeSet::new();
        for e in envelopes {
            if let Some(doc) = self.core.document_of(e) {
                if let Some(d) = self.docs.get_mut(&doc) {
                    d.replica_mut().receive(e);
                }
                changed.insert(doc);
            } else if self.core.is_log(e) {
                log.push(e.as_slice());
            }
        }
        if !log.is_empty() {
            self.core.handle_log(log);
            self.docs.clear();
            self.core.follow_up(now_ms())?;
            self.apply()?;
            self.notify(Change::Membership);
        }
        for id in changed {
            self.notify(Change::Document(id));
        }
        Ok(fresh)
    }

    /// When (Unix ms) the session core next wants [`Self::handle_timeout`]
    /// (an open invite's expiry, MEM-22), if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.core.poll_timeout()
    }

    /// Runs the membership follow-ups now, as [`Self::poll_timeout`] asked.
    pub fn handle_timeout(&mut self) -> Result<(), ClientError> {
        self.core.handle_timeout(now_ms().unwrap_or(0))?;
        self.apply()
    }
}
