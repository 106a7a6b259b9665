//! One space on one device ([`SpaceSession`]): the IO shell that joins the
//! sans-IO membership replica (spec §11), the document replicas (§8) and the
//! storage layout (§9).
//!
//! What lives where:
//! - `spaces/<space id>/space.json`: local settings (name, storage URL, lobby
//!   and link secrets);
//! - `spaces/<space id>/local.redb`: the device-local store (STO-20): every
//!   envelope known (documents, membership log, key-delivery carriers), the
//!   outbox, the epoch keys held, and sync cursors.
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clientful_core::envelope::{self, StaticContext};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::membership::delivery;
use clientful_core::membership::epoch;
use clientful_core::membership::invite::{self, InviteCode};
use clientful_core::membership::ops::{Role, Scope};
use clientful_core::membership::space::{Outgoing, PendingAdmission, membership_doc_id};
use clientful_core::membership::{Admission, Cut, FollowUpPolicy, SpaceReplica, State};
use clientful_doc::authority::Membership;
use clientful_doc::checkpoint::{self, Provisional};
use clientful_doc::content;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::replica::{CrdtKind, Replica, ReplicaConfig};
use clientful_storage::files::FileRef;
pub use clientful_storage::hwm::Withholding;
use clientful_storage::layout::EpochStorage;
pub use clientful_storage::space::Alarm;
use clientful_storage::space::{CheckpointCheck, ChosenCheckpoint, SpaceConfig, lobby_writers};
use clientful_storage::{LocalStore, OpendalStore, Space};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::codes;
use crate::document::Document;
use crate::error::ClientError;
use crate::identity::{Client, os_rng, seed32, write_private};
use crate::storage_url::StorageUrl;

const SPACE_FILE: &str = "space.json";
const KEY_EPOCHS: &str = "epochs";
const KEY_WELCOMED: &str = "welcomed";
/// The pinned genesis (MEM-26): a reopened store pins it before feeding its
/// envelopes, among which a rival `CREATE_SPACE` received earlier may sort first.
const KEY_GENESIS: &str = "genesis";
const KEY_PENDING: &str = "pending-deliveries";
/// Rounds of pull-and-learn in one sync: each round can learn the keys that
/// open the next epoch's directory.
const MAX_SYNC_ROUNDS: usize = 8;

/// Local settings of one space (`space.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpaceFile {
    pub(crate) version: u32,
    pub(crate) space_id: String,
    pub(crate) name: String,
    pub(crate) storage: String,
    /// Epoch secrets of the lobbies this device reads: the invite epoch of its
    /// redemption or the link epoch it joined with (hex).
    #[serde(default)]
    pub(crate) lobbies: Vec<String>,
    /// Link epoch secrets of devices this device added, by device id (hex).
    #[serde(default)]
    pub(crate) links: BTreeMap<String, String>,
    /// Whether redemptions wait for [`SpaceSession::admit`] instead of being
    /// admitted automatically (spec MEM-25).
    #[serde(default)]
    pub(crate) confirm_admissions: bool,
}

impl SpaceFile {
    pub(crate) fn load(dir: &Path) -> Result<Self, ClientError> {
        let path = dir.join(SPACE_FILE);
        let bytes = std::fs::read(&path).map_err(|e| ClientError::io(&path, e))?;
        let f: SpaceFile = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::io(&path, format!("not a space settings file: {e}")))?;
        if f.version != 1 {
            return Err(ClientError::io(&path, "unsupported settings version"));
        }
        Ok(f)
    }

    fn save(&self, dir: &Path) -> Result<(), ClientError> {
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| ClientError::Invalid(e.to_string()))?;
        write_private(&dir.join(SPACE_FILE), &text)
    }
}

/// What one [`SpaceSession::sync`] did.
#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    /// Envelopes new to this device.
    pub received: usize,
    /// Segments read.
    pub segments: usize,
    /// Segments written (current epoch, replaced epochs and lobbies).
    pub uploaded: usize,
    /// Storage verdicts (rollback, fork, withholding, corruption): reported,
    /// never fatal; nothing local is removed.
    pub warnings: Vec<String>,
    /// Epoch keys held after the sync.
    pub epochs_held: usize,
    /// Whether this device can read and write the space (holds its current key).
    pub has_access: bool,
    /// Newer epochs this device was not given a key for (KEY-4): it was
    /// removed or revoked, and reads nothing written under them.
    pub locked_out: usize,
    /// Users this device admitted (MEM-25).
    pub admitted: Vec<[u8; 32]>,
    /// Redemptions waiting for an admin: rivals for one single-use invite, or
    /// any while admissions need confirmation ([`SpaceSession::admit`]).
    pub awaiting_admission: Vec<PendingAdmission>,
    /// Redemptions refused (a used single-use invite, a closed invite, a lost
    /// concurrent admission): the user and the redemption.
    pub refused: Vec<([u8; 32], [u8; 32])>,
    /// Invites this device revoked because their expiry passed (MEM-22).
    pub expired_invites: usize,
    /// Head manifests of other devices that storage withheld, rolled back or
    /// forked, as this device's high-water marks show it (STO-9). Each also
    /// comes as a [`Change::Withholding`]. Not an error of the sync, but
    /// something the user must be told: members may be kept from a removal or
    /// an edit, and only the owner of those files can put them back.
    pub withholding: Vec<Alarm>,
    /// This device's own files that storage had withheld or rolled back, found
    /// and put back at the start of the sync (STO-28); each also comes as a
    /// [`Change::Withholding`] naming this device.
    pub repaired: Vec<Alarm>,
    /// Files of this device (head manifests, segments, snapshots, checkpoints)
    /// uploaded again for `repaired`.
    pub reuploaded: usize,
    /// Members still writing under an epoch that a rotation this device already
    /// held had replaced: they have not seen the rotation (offline, or storage
    /// withholds it from them). Each also comes as a [`Change::StaleEpoch`].
    pub stale_writers: Vec<StaleWriter>,
}

/// An invite as listed ([`SpaceSession::invites`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteInfo {
    /// The invite key (public): what `revoke_invite` takes a prefix of.
    pub key: [u8; 32],
    /// The role it grants.
    pub role: Role,
    /// Single-use.
    pub single_use: bool,
    /// Advisory expiry (Unix ms, 0: none).
    pub expires_at_ms: u64,
    /// The user who created it.
    pub creator: [u8; 32],
    /// Whether it can still admit anyone (not revoked, creator still an admin,
    /// and not a used single-use invite): spec MEM-22.
    pub open: bool,
    /// Revoked by a `REVOKE_INVITE`.
    pub revoked: bool,
    /// Redemptions admitted.
    pub admitted: usize,
    /// Redemptions waiting.
    pub waiting: usize,
}

/// Envelopes of an active member's device, received in one sync, sealed under
/// an epoch that a rotation had replaced before this device's sync began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleWriter {
    /// The writing device.
    pub device: [u8; 32],
    /// The replaced epoch it sealed them under.
    pub epoch: [u8; 32],
    /// How many envelopes (authentic: opened and verified).
    pub envelopes: usize,
}

/// What changed, for subscribers ([`SpaceSession::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A replica of one document rebuilt from `envs` under the space's membership.
fn restored(cfg: ReplicaConfig, membership: Membership, envs: &[Vec<u8>]) -> Replica {
    let mut r = Replica::restore(cfg, envs);
    r.set_membership(membership);
    r
}

/// What [`SpaceSession::compact`] did.
#[derive(Debug, Clone, Default)]
pub struct CompactReport {
    /// The snapshot written (None when the device holds no key of the space).
    pub snapshot: Option<[u8; 32]>,
    /// Checkpoints written, one per document (spec §9.7a).
    pub checkpoints: usize,
}

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

/// A member as listed.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// User key.
    pub user: [u8; 32],
    /// Role.
    pub role: Role,
    /// Active device ids.
    pub devices: Vec<[u8; 32]>,
    /// Whether the member's addition is settled (MEM-15).
    pub settled: bool,
}

struct Pending {
    epoch: EpochKey,
    bytes: Vec<u8>,
}

fn encode_pending(p: &[Pending]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in p {
        out.extend_from_slice(e.epoch.id());
        out.extend_from_slice(e.epoch.secret());
        out.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.bytes);
    }
    out
}

fn decode_pending(mut b: &[u8]) -> Vec<Pending> {
    let mut out = Vec::new();
    while b.len() >= 68 {
        let (id, rest) = b.split_at(32);
        let (secret, rest) = rest.split_at(32);
        let (len, rest) = rest.split_at(4);
        let Ok(len) = <[u8; 4]>::try_from(len) else {
            break;
        };
        let n = u32::from_be_bytes(len) as usize;
        if rest.len() < n {
            break;
        }
        let (bytes, rest) = rest.split_at(n);
        if let (Ok(id), Ok(secret)) = (<[u8; 32]>::try_from(id), <[u8; 32]>::try_from(secret)) {
            out.push(Pending {
                epoch: EpochKey::new(id, secret),
                bytes: bytes.to_vec(),
            });
        }
        b = rest;
    }
    out
}

/// One space opened on this device. See the module documentation.
pub struct SpaceSession {
    dir: PathBuf,
    file: SpaceFile,
    space_id: [u8; 32],
    store: OpendalStore,
    local: Option<LocalStore>,
    replica: SpaceReplica,
    device_seed: zeroize::Zeroizing<[u8; 32]>,
    device_key: [u8; 32],
    rng: ChaCha20Rng,
    live: Vec<Vec<u8>>,
    docs: BTreeMap<[u8; 32], Document>,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// What the follow-ups did since the last sync report.
    follow: SyncReport,
}

impl std::fmt::Debug for SpaceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceSession")
            .field("space", &hex::encode(self.space_id))
            .field("name", &self.file.name)
            .finish_non_exhaustive()
    }
}

fn space_dir(client: &Client, space_id: &[u8; 32]) -> PathBuf {
    client.spaces_dir().join(hex::encode(space_id))
}

fn lobby_key(space_id: &[u8; 32], secret: &[u8; 32]) -> Result<EpochKey, ClientError> {
    let keys = invite::derive(space_id, secret).map_err(|e| ClientError::core("lobby", e))?;
    epoch::epoch_key(space_id, &keys.epoch_secret).map_err(|e| ClientError::core("lobby", e))
}

impl SpaceSession {
    fn local(&self) -> Result<&LocalStore, ClientError> {
        self.local
            .as_ref()
            .ok_or_else(|| ClientError::Invalid("local store is busy".into()))
    }

    fn device(&self) -> SigningKey {
        SigningKey::from_seed(&self.device_seed)
    }

    fn assemble(
        client: &Client,
        dir: PathBuf,
        file: SpaceFile,
        store: OpendalStore,
        local: LocalStore,
        replica: SpaceReplica,
    ) -> Result<SpaceSession, ClientError> {
        let profile = client.profile();
        Ok(SpaceSession {
            dir,
            file,
            space_id: *replica.space_id(),
            store,
            local: Some(local),
            replica,
            device_seed: profile_seed(profile),
            device_key: profile.device_key(),
            rng: os_rng()?,
            live: Vec::new(),
            docs: BTreeMap::new(),
            changes: tokio::sync::broadcast::channel(1024).0,
            follow: SyncReport::default(),
        })
    }

    async fn start(
        client: &Client,
        replica: SpaceReplica,
        file: SpaceFile,
    ) -> Result<SpaceSession, ClientError> {
        let space_id = *replica.space_id();
        let dir = space_dir(client, &space_id);
        if dir.join(SPACE_FILE).exists() {
            return Err(ClientError::Invalid(format!(
                "this device already has space {} (`{}`)",
                &hex::encode(space_id)[..12],
                SpaceFile::load(&dir).map(|f| f.name).unwrap_or_default()
            )));
        }
        let store = StorageUrl::parse(&file.storage)?.open()?;
        std::fs::create_dir_all(&dir).map_err(|e| ClientError::io(&dir, e))?;
        let local = LocalStore::open(&dir.join("local.redb"))?;
        file.save(&dir)?;
        let mut s = Self::assemble(client, dir, file, store, local, replica)?;
        s.after_change()?;
        Ok(s)
    }

    /// Creates the local space from a fresh replica, then syncs. If the sync fails
    /// the space stays on the device (everything is stored locally) and the error
    /// says to run `sync` again.
    async fn start_and_sync(
        client: &Client,
        replica: SpaceReplica,
        lobby: Option<&[u8; 32]>,
        name: &str,
        storage: &str,
    ) -> Result<SpaceSession, ClientError> {
        let file = SpaceFile {
            version: 1,
            space_id: hex::encode(replica.space_id()),
            name: name.to_owned(),
            storage: storage.to_owned(),
            lobbies: lobby.map(hex::encode).into_iter().collect(),
            links: BTreeMap::new(),
            confirm_admissions: false,
        };
        let mut s = Self::start(client, replica, file).await?;
        if let Err(e) = s.sync().await {
            return Err(ClientError::Invalid(format!(
                "{e} (the space is kept on this device: run `sync` again when the storage is reachable)"
            )));
        }
        Ok(s)
    }

    pub(crate) async fn create(
        client: &Client,
        name: &str,
        storage: &str,
    ) -> Result<SpaceSession, ClientError> {
        StorageUrl::parse(storage)?;
        let replica = SpaceReplica::create(&mut os_rng()?, client.profile().identity()?)
            .map_err(|e| ClientError::core("creating the space", e))?;
        Self::start_and_sync(client, replica, None, name, storage).await
    }

    pub(crate) async fn redeem(
        client: &Client,
        code: &str,
        name: &str,
        storage: &str,
    ) -> Result<SpaceSession, ClientError> {
        StorageUrl::parse(storage)?;
        let (role, bytes) = codes::decode_invite(code)?;
        let parsed = invite::decode(&bytes)
            .map_err(|e| ClientError::Invalid(format!("invite code is damaged: {e}")))?;
        let replica =
            SpaceReplica::redeem(&mut os_rng()?, &bytes, client.profile().identity()?, role)
                .map_err(|e| ClientError::core("redeeming the invite", e))?;
        Self::start_and_sync(client, replica, Some(&parsed.secret), name, storage).await
    }

    pub(crate) async fn link(
        client: &Client,
        code: &str,
        name: &str,
        storage: &str,
    ) -> Result<SpaceSession, ClientError> {
        StorageUrl::parse(storage)?;
        let bytes = codes::decode(codes::LINK, "a device link code", code)?;
        let parsed = invite::decode(&bytes)
            .map_err(|e| ClientError::Invalid(format!("device link code is damaged: {e}")))?;
        let mut replica = SpaceReplica::join(
            parsed.space_id,
            parsed.genesis,
            client.profile().identity()?,
        )
        .map_err(|e| ClientError::core("joining the space", e))?;
        replica.add_invite_epoch(lobby_key(&parsed.space_id, &parsed.secret)?);
        Self::start_and_sync(client, replica, Some(&parsed.secret), name, storage).await
    }

    pub(crate) async fn open(
        client: &Client,
        space_id: &[u8; 32],
    ) -> Result<SpaceSession, ClientError> {
        let dir = space_dir(client, space_id);
        let file = SpaceFile::load(&dir)?;
        let store = StorageUrl::parse(&file.storage)?.open()?;
        let local = LocalStore::open_existing(&dir.join("local.redb"))?;
        let mut replica = SpaceReplica::new(*space_id, client.profile().identity()?)
            .map_err(|e| ClientError::core("opening the space", e))?;
        if let Some(g) = local.key(KEY_GENESIS)?
            && let Ok(g) = <[u8; 32]>::try_from(g.as_slice())
        {
            replica
                .pin_genesis(g)
                .map_err(|e| ClientError::core("opening the space", e))?;
        }
        if let Some(b) = local.key(KEY_EPOCHS)? {
            let keys: Vec<EpochKey> = b
                .chunks_exact(64)
                .filter_map(|c| {
                    let id: [u8; 32] = c.get(..32)?.try_into().ok()?;
                    let secret: [u8; 32] = c.get(32..)?.try_into().ok()?;
                    Some(EpochKey::new(id, secret))
                })
                .collect();
            replica.import_keys(&keys);
        }
        for l in &file.lobbies {
            replica.add_invite_epoch(lobby_key(space_id, &*seed32(l, "lobby secret")?)?);
        }
        if let Some(b) = local.key(KEY_WELCOMED)? {
            let pairs: Vec<([u8; 32], [u8; 32])> = b
                .chunks_exact(64)
                .filter_map(|c| {
                    Some((c.get(..32)?.try_into().ok()?, c.get(32..)?.try_into().ok()?))
                })
                .collect();
            replica.restore_welcomed(&pairs);
        }
        let mut s = Self::assemble(client, dir, file, store, local, replica)?;
        s.feed_local()?;
        // Our own earlier operations came back from the local store; nothing new to send.
        let _ = s.replica.drain_outbox();
        Ok(s)
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
        &self.replica
    }

    /// The resolved membership.
    pub fn state(&self) -> &State {
        self.replica.state()
    }

    /// This device's key.
    pub fn device_key(&self) -> [u8; 32] {
        self.device_key
    }

    /// Whether this device holds the current epoch's key (can read and write).
    pub fn has_access(&self) -> bool {
        self.replica.current_epoch().is_some()
            && self.replica.locked_out_epochs().is_empty()
            && self
                .replica
                .state()
                .device_ids
                .get(&self.device_key)
                .and_then(|d| self.replica.state().active_device(d))
                .is_some()
    }

    /// The current members.
    pub fn members(&self) -> Vec<MemberInfo> {
        let st = self.replica.state();
        st.members
            .iter()
            .map(|(user, m)| MemberInfo {
                user: *user,
                role: m.role,
                settled: m.settled,
                devices: st
                    .devices
                    .iter()
                    .filter(|(id, d)| &d.user == user && st.active_device(id).is_some())
                    .map(|(id, _)| *id)
                    .collect(),
            })
            .collect()
    }

    /// The local store.
    pub fn local_store(&self) -> Result<&LocalStore, ClientError> {
        self.local()
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
        let mem = membership_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let del =
            delivery::delivery_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let mut out: BTreeMap<[u8; 32], Vec<Vec<u8>>> = BTreeMap::new();
        for e in self.local()?.all_envelopes()? {
            if let Ok(d) = envelope::decode(&e)
                && d.header.doc_id != mem
                && d.header.doc_id != del
            {
                out.entry(d.header.doc_id).or_default().push(e);
            }
        }
        Ok(out)
    }

    fn doc_counts(&self) -> Result<BTreeMap<[u8; 32], usize>, ClientError> {
        Ok(self
            .by_doc()?
            .into_iter()
            .map(|(id, v)| (id, v.len()))
            .collect())
    }

    /// Takes the envelopes written since the last call, to publish over a broker.
    pub fn take_live(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.live)
    }

    // ----- membership -----

    fn feed_local(&mut self) -> Result<usize, ClientError> {
        let mem = membership_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let del =
            delivery::delivery_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let keys_before = self.replica.keys().all().len();
        let ops_before = self.replica.state().ops.len();
        for e in self.local()?.all_envelopes()? {
            let Ok(d) = envelope::decode(&e) else {
                continue;
            };
            if d.header.doc_id == mem || d.header.doc_id == del {
                self.replica.receive(&e);
            }
        }
        let changed = self.replica.keys().all().len() != keys_before
            || self.replica.state().ops.len() != ops_before;
        if changed {
            self.docs.clear();
        }
        Ok(usize::from(changed))
    }

    /// Receives envelopes from a peer (the broker): stored, then applied.
    pub fn receive(&mut self, envelopes: &[Vec<u8>]) -> Result<usize, ClientError> {
        let fresh = self.local()?.put_envelopes(envelopes, false, &[])?.len();
        if fresh == 0 {
            return Ok(0);
        }
        let mem = membership_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let del =
            delivery::delivery_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let mut membership = false;
        let mut changed = BTreeSet::new();
        for e in envelopes {
            let Ok(d) = envelope::decode(e) else { continue };
            if d.header.doc_id == mem || d.header.doc_id == del {
                self.replica.receive(e);
                membership = true;
            } else {
                if let Some(doc) = self.docs.get_mut(&d.header.doc_id) {
                    doc.replica_mut().receive(e);
                }
                changed.insert(d.header.doc_id);
            }
        }
        if membership {
            self.docs.clear();
            self.react()?;
            self.notify(Change::Membership);
        }
        for id in changed {
            self.notify(Change::Document(id));
        }
        Ok(fresh)
    }

    /// What a member device does after the membership changed: the one
    /// follow-up policy of `clientful_core` (spec MEM-22 expiry revocations,
    /// MEM-25 admissions, MEM-15 acknowledgements, KEY-12 healing, KEY-8
    /// welcomes). Redemptions are admitted automatically unless this space
    /// asks for confirmation ([`SpaceSession::set_confirm_admissions`]) or
    /// rivals compete for one single-use invite.
    fn react(&mut self) -> Result<(), ClientError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok());
        let policy = FollowUpPolicy {
            admission: if self.file.confirm_admissions {
                Admission::Never
            } else {
                Admission::Automatic
            },
            now_ms,
        };
        let done = self
            .replica
            .follow_up(&mut self.rng, &policy)
            .map_err(|e| ClientError::core("following up a membership change", e))?;
        let st = self.replica.state();
        for r in &done.admitted {
            if let Some(x) = st.redemptions.get(r) {
                self.follow.admitted.push(x.user);
            }
        }
        self.follow.expired_invites += done.revoked_invites.len();
        self.follow.awaiting_admission = done.waiting;
        self.after_change()
    }

    fn lobby_epochs(&self) -> Result<Vec<EpochKey>, ClientError> {
        let mut out = Vec::new();
        for l in &self.file.lobbies {
            out.push(lobby_key(&self.space_id, &*seed32(l, "lobby secret")?)?);
        }
        Ok(out)
    }

    fn is_lobby(&self, epoch_id: &[u8; 32]) -> Result<Option<EpochKey>, ClientError> {
        Ok(self
            .lobby_epochs()?
            .into_iter()
            .find(|k| k.id() == epoch_id))
    }

    fn pending(&self) -> Result<Vec<Pending>, ClientError> {
        Ok(self
            .local()?
            .key(KEY_PENDING)?
            .map(|b| decode_pending(&b))
            .unwrap_or_default())
    }

    fn add_pending(&mut self, add: Vec<Pending>) -> Result<(), ClientError> {
        if add.is_empty() {
            return Ok(());
        }
        let mut p = self.pending()?;
        for a in add {
            if !p
                .iter()
                .any(|x| x.bytes == a.bytes && x.epoch.id() == a.epoch.id())
            {
                p.push(a);
            }
        }
        self.local()?.put_key(KEY_PENDING, &encode_pending(&p))?;
        Ok(())
    }

    /// Moves the membership replica's outbox to the local store (durable before
    /// anything is sent, DOC-15) and the pending deliveries; persists keys.
    fn after_change(&mut self) -> Result<(), ClientError> {
        let mut pending = Vec::new();
        for o in self.replica.drain_outbox() {
            match o {
                Outgoing::Envelope(b) => {
                    let epoch_id = envelope::decode(&b)
                        .map(|d| d.header.epoch_id)
                        .map_err(|e| ClientError::core("own operation", e))?;
                    if let Some(lobby) = self.is_lobby(&epoch_id)? {
                        // A redemption: only the lobby can carry it (MEM-21).
                        self.local()?
                            .put_envelopes(std::slice::from_ref(&b), false, &[])?;
                        pending.push(Pending {
                            epoch: lobby,
                            bytes: b.clone(),
                        });
                    } else {
                        self.local()?
                            .put_envelopes(std::slice::from_ref(&b), true, &[])?;
                    }
                    self.live.push(b);
                }
                Outgoing::KeyMessage(km) => {
                    let carriers = self
                        .replica
                        .key_message_carriers(&mut self.rng, &km)
                        .map_err(|e| ClientError::core("key message", e))?;
                    for (epoch_id, c) in carriers {
                        let Some(k) = self.replica.keys().get(&epoch_id).cloned() else {
                            continue;
                        };
                        self.local()?
                            .put_envelopes(std::slice::from_ref(&c), false, &[])?;
                        self.live.push(c.clone());
                        pending.push(Pending { epoch: k, bytes: c });
                    }
                }
                Outgoing::Welcome { device_id, bytes } => {
                    let lobby = match self.replica.invite_epoch_of(&device_id) {
                        Some(k) => Some(k),
                        None => match self.file.links.get(&hex::encode(device_id)) {
                            Some(s) => {
                                Some(lobby_key(&self.space_id, &*seed32(s, "link secret")?)?)
                            }
                            None => None,
                        },
                    };
                    // A device added without an invite or a link from this device
                    // is welcomed by the device that linked it.
                    let Some(lobby) = lobby else { continue };
                    let c = self
                        .replica
                        .welcome_carrier(&mut self.rng, &bytes, &lobby)
                        .map_err(|e| ClientError::core("welcome", e))?;
                    self.local()?
                        .put_envelopes(std::slice::from_ref(&c), false, &[])?;
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
        self.add_pending(pending)?;
        let mut keys = Vec::new();
        for k in self.replica.keys().all() {
            keys.extend_from_slice(k.id());
            keys.extend_from_slice(k.secret());
        }
        self.local()?.put_key(KEY_EPOCHS, &keys)?;
        let mut w = Vec::new();
        for (d, e) in self.replica.welcomed() {
            w.extend_from_slice(&d);
            w.extend_from_slice(&e);
        }
        self.local()?.put_key(KEY_WELCOMED, &w)?;
        if let Some(g) = self.replica.genesis() {
            self.local()?.put_key(KEY_GENESIS, &g)?;
        }
        Ok(())
    }

    fn signers(&self) -> Vec<[u8; 32]> {
        let mut s = self.replica.write_view().signers();
        if !s.contains(&self.device_key) {
            s.push(self.device_key);
        }
        s
    }

    fn main_space(&mut self) -> Result<Option<Space<OpendalStore>>, ClientError> {
        let Some(current) = self.replica.current_epoch() else {
            return Ok(None);
        };
        // Candidates too (KEY-18): a rotation is stored under the epoch it
        // creates, so its key message's epoch is read before it is usable.
        let old: Vec<EpochKey> = self
            .replica
            .readable_epochs()
            .into_iter()
            .filter(|k| k.id() != current.id())
            .collect();
        let local = self
            .local
            .take()
            .ok_or_else(|| ClientError::Invalid("local store is busy".into()))?;
        let cfg = SpaceConfig {
            space_id: self.space_id,
            device: self.device(),
            epoch: current,
            old_epochs: old,
            signers: self.signers(),
            rng_seed: None,
        };
        match Space::new(self.store.clone(), local, cfg) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(e.into()),
        }
    }

    fn give_back(&mut self, space: Space<OpendalStore>) {
        let (_, local) = space.into_parts();
        self.local = Some(local);
    }

    /// Runs `f` on the space opened at the current epoch (all held epochs
    /// readable); `None` if the device holds no key of the space yet.
    async fn with_main<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Space<OpendalStore>) -> Result<T, clientful_storage::StorageError>,
    ) -> Result<Option<T>, ClientError> {
        let Some(mut space) = self.main_space()? else {
            return Ok(None);
        };
        let r = f(&mut space).await;
        self.give_back(space);
        Ok(Some(r?))
    }

    /// Runs `f` on the space opened over the device-local store at `epochs`
    /// (the first is written to) with this device as the only signer: the
    /// directories this device writes outside the current epoch's.
    async fn with_own<T>(
        &mut self,
        epochs: Vec<EpochKey>,
        f: impl AsyncFnOnce(&mut Space<OpendalStore>) -> Result<T, clientful_storage::StorageError>,
    ) -> Result<Option<T>, ClientError> {
        // Checked before the local store is handed over, so that a failure
        // cannot lose it.
        for k in &epochs {
            EpochStorage::derive(&self.space_id, k)?;
        }
        let mut epochs = epochs.into_iter();
        let Some(epoch) = epochs.next() else {
            return Ok(None);
        };
        let mut seed = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut self.rng, &mut seed);
        let cfg = SpaceConfig {
            space_id: self.space_id,
            device: self.device(),
            epoch,
            old_epochs: epochs.collect(),
            signers: vec![self.device_key],
            rng_seed: Some(seed),
        };
        let local = self
            .local
            .take()
            .ok_or_else(|| ClientError::Invalid("local store is busy".into()))?;
        let mut space = Space::new(self.store.clone(), local, cfg)?;
        let r = f(&mut space).await;
        self.give_back(space);
        Ok(Some(r?))
    }

    /// Publishes carriers (already stored locally) into the directory of
    /// `epoch`: a replaced epoch or a lobby (KEY-15). The head manifest and
    /// segments are committed in the device-local store like the current
    /// epoch's, so a rollback there is detected and repaired (STO-8, STO-28).
    async fn write_to(
        &mut self,
        epoch: &EpochKey,
        envelopes: Vec<Vec<u8>>,
    ) -> Result<usize, ClientError> {
        let written = self
            .with_own(vec![epoch.clone()], async move |space| {
                space.init().await?;
                space.publish(envelopes).await
            })
            .await?;
        Ok(usize::from(written.flatten().is_some()))
    }

    /// Every directory this device may have written: the epochs it holds, its
    /// own lobby, the lobbies of open invites and of the devices it linked.
    fn written_epochs(&self) -> Result<Vec<EpochKey>, ClientError> {
        let mut out = self.replica.keys().all();
        out.extend(self.lobby_epochs()?);
        for inv in self.replica.state().invites.values() {
            if let Ok(k) = epoch::epoch_key(&self.space_id, &inv.invite_secret) {
                out.push(k);
            }
        }
        for s in self.file.links.values() {
            out.push(lobby_key(&self.space_id, &*seed32(s, "link secret")?)?);
        }
        let mut seen = BTreeSet::new();
        out.retain(|k| seen.insert(*k.id()));
        Ok(out)
    }

    /// Puts back what storage withheld or rolled back of this device's own
    /// files (STO-28) and reports it.
    async fn repair_own(&mut self, report: &mut SyncReport) -> Result<(), ClientError> {
        let epochs = self.written_epochs()?;
        let Some(r) = self.with_own(epochs, async |s| s.repair().await).await? else {
            return Ok(());
        };
        report.reuploaded += r.heads + r.objects;
        report
            .warnings
            .extend(r.errors.iter().map(|e| e.to_string()));
        for a in r.found {
            self.notify_alarm(&a);
            report.repaired.push(a);
        }
        Ok(())
    }

    /// Records a withholding alarm once per sync and tells subscribers. This
    /// device's own head was repaired before the pull, so it only shows here
    /// when it could not be (a fork under its key).
    fn alarm(&self, report: &mut SyncReport, a: Alarm) {
        if report.withholding.contains(&a) || report.repaired.contains(&a) {
            return;
        }
        report.withholding.push(a);
        self.notify_alarm(&a);
    }

    fn notify_alarm(&self, a: &Alarm) {
        self.notify(Change::Withholding {
            device: a.device,
            epoch: a.epoch_id,
            kind: a.kind,
        });
    }

    async fn flush_pending(&mut self, report: &mut SyncReport) -> Result<(), ClientError> {
        let pending = self.pending()?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut by_epoch: BTreeMap<[u8; 32], (EpochKey, Vec<Vec<u8>>)> = BTreeMap::new();
        for p in pending {
            by_epoch
                .entry(*p.epoch.id())
                .or_insert_with(|| (p.epoch.clone(), Vec::new()))
                .1
                .push(p.bytes);
        }
        let mut left = Vec::new();
        let mut first_err = None;
        for (_, (k, envs)) in by_epoch {
            match self.write_to(&k, envs.clone()).await {
                Ok(n) => report.uploaded += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                    left.extend(envs.into_iter().map(|bytes| Pending {
                        epoch: k.clone(),
                        bytes,
                    }));
                }
            }
        }
        self.local()?.put_key(KEY_PENDING, &encode_pending(&left))?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn pull_lobbies(&mut self, report: &mut SyncReport) -> Result<(), ClientError> {
        let mut lobbies = self.lobby_epochs()?;
        for inv in self.replica.state().invites.values().filter(|i| !i.revoked) {
            if let Ok(k) = epoch::epoch_key(&self.space_id, &inv.invite_secret) {
                lobbies.push(k);
            }
        }
        let mut seen = BTreeSet::new();
        for k in lobbies {
            if !seen.insert(*k.id()) {
                continue;
            }
            let es = EpochStorage::derive(&self.space_id, &k)?;
            let (mut writers, errors) = lobby_writers(&self.store, &es).await?;
            report.warnings.extend(errors.iter().map(|e| e.to_string()));
            writers.retain(|w| *w != self.device_key);
            if writers.is_empty() {
                continue;
            }
            writers.push(self.device_key);
            let cfg = SpaceConfig {
                space_id: self.space_id,
                device: self.device(),
                epoch: k,
                old_epochs: Vec::new(),
                signers: writers,
                rng_seed: None,
            };
            let mut space = Space::new(self.store.clone(), LocalStore::in_memory()?, cfg)?;
            let r = space.pull().await?;
            report.segments += r.segments;
            report
                .warnings
                .extend(r.errors.iter().map(|e| e.to_string()));
            let envs = space.local().all_envelopes()?;
            report.received += self.local()?.put_envelopes(&envs, false, &[])?.len();
        }
        Ok(())
    }

    /// Synchronises with storage: uploads what this device wrote, downloads
    /// what others wrote, learns new keys (and reads the epochs they open), and
    /// answers what membership asks of this device (acknowledgements, welcomes,
    /// healing rotations).
    pub async fn sync(&mut self) -> Result<SyncReport, ClientError> {
        let mut report = SyncReport::default();
        let (counts_before, ids_before) = self.index()?;
        let keys_before: BTreeSet<[u8; 32]> =
            self.replica.keys().all().iter().map(|k| *k.id()).collect();
        let ops_before = self.replica.state().ops.len();
        self.repair_own(&mut report).await?;
        self.flush_pending(&mut report).await?;
        let mut shown: BTreeMap<[u8; 32], ChosenCheckpoint> = BTreeMap::new();
        for _ in 0..MAX_SYNC_ROUNDS {
            let keys_before = self.replica.candidate_keys().all().len();
            let received_before = report.received;
            self.show_previews(&mut shown, &mut report).await?;
            if let Some(r) = self.with_main(async |s| s.pull().await).await? {
                report.received += r.new_envelopes;
                report.segments += r.segments;
                report
                    .warnings
                    .extend(r.errors.iter().map(|e| e.to_string()));
                for a in r.alarms {
                    self.alarm(&mut report, a);
                }
            }
            self.pull_lobbies(&mut report).await?;
            self.feed_local()?;
            self.react()?;
            if self.replica.candidate_keys().all().len() == keys_before
                && report.received == received_before
            {
                break;
            }
        }
        self.check_previews(&shown, &mut report).await?;
        self.flush_pending(&mut report).await?;
        // What goes to storage also goes to a live room, including edits made by
        // an earlier process (`doc edit`, then `watch`).
        for (_, b) in self.local()?.outbox()? {
            if !self.live.contains(&b) {
                self.live.push(b);
            }
        }
        if let Some(r) = self
            .with_main(async |s| {
                s.init().await?;
                s.flush().await
            })
            .await?
        {
            report.uploaded += usize::from(r.is_some());
        }
        self.docs.clear();
        let mut fresh = Vec::new();
        let mut counts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        let (mem, del) = self.log_doc_ids()?;
        for e in self.local()?.all_envelopes()? {
            let Ok(d) = envelope::decode(&e) else {
                continue;
            };
            if d.header.doc_id != mem && d.header.doc_id != del {
                *counts.entry(d.header.doc_id).or_default() += 1;
            }
            if d.header.doc_id != del && !ids_before.contains(&d.id) {
                fresh.push(e);
            }
        }
        for (id, n) in counts {
            if counts_before.get(&id).copied().unwrap_or(0) < n {
                self.notify(Change::Document(id));
            }
        }
        report.stale_writers = self.stale_writers(&keys_before, &fresh);
        for w in &report.stale_writers {
            self.notify(Change::StaleEpoch {
                device: w.device,
                epoch: w.epoch,
                envelopes: w.envelopes,
            });
        }
        if self.replica.state().ops.len() != ops_before {
            self.notify(Change::Membership);
        }
        report.epochs_held = self.replica.keys().all().len();
        report.locked_out = self.replica.locked_out_epochs().len();
        report.has_access = self.has_access();
        let follow = std::mem::take(&mut self.follow);
        report.admitted = follow.admitted;
        report.expired_invites = follow.expired_invites;
        report.awaiting_admission = self.replica.pending_admissions();
        report.awaiting_admission.retain(|p| p.admissible);
        report.refused = self
            .replica
            .refused_redemptions()
            .into_iter()
            .map(|(id, user, _)| (user, id))
            .collect();
        Ok(report)
    }

    /// The membership log's and the delivery document's ids.
    fn log_doc_ids(&self) -> Result<([u8; 32], [u8; 32]), ClientError> {
        let mem = membership_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        let del =
            delivery::delivery_doc_id(&self.space_id).map_err(|e| ClientError::core("space", e))?;
        Ok((mem, del))
    }

    /// In one scan of the local store: the envelopes held per document (not
    /// the membership log or the delivery document), and every envelope id.
    #[allow(clippy::type_complexity)]
    fn index(
        &self,
    ) -> Result<(BTreeMap<[u8; 32], usize>, BTreeSet<envelope::EnvelopeId>), ClientError> {
        let (mem, del) = self.log_doc_ids()?;
        let mut counts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for e in self.local()?.all_envelopes()? {
            if let Ok(d) = envelope::decode(&e) {
                if d.header.doc_id != mem && d.header.doc_id != del {
                    *counts.entry(d.header.doc_id).or_default() += 1;
                }
                ids.insert(d.id);
            }
        }
        Ok((counts, ids))
    }

    /// Among envelopes new in this sync (documents and membership log, not
    /// carriers, which KEY-15 seals under the replaced epoch on purpose): those
    /// of another active member's device sealed under an epoch that a standing
    /// rotation replaced, when this device held the replacing epoch before the
    /// sync began, and that open and verify (so storage cannot make up a
    /// report). Counted per device and epoch.
    fn stale_writers(
        &self,
        keys_before: &BTreeSet<[u8; 32]>,
        fresh: &[Vec<u8>],
    ) -> Vec<StaleWriter> {
        let st = self.replica.state();
        let mut replaced: BTreeSet<[u8; 32]> = BTreeSet::new();
        for (id, e) in &st.epochs {
            if !e.void && keys_before.contains(id) {
                replaced.extend(e.prev.iter().copied());
            }
        }
        let mut counts: BTreeMap<([u8; 32], [u8; 32]), usize> = BTreeMap::new();
        for e in fresh {
            let Ok(d) = envelope::decode(e) else { continue };
            let h = &d.header;
            if h.author == self.device_key || !replaced.contains(&h.epoch_id) {
                continue;
            }
            let active = st
                .device_ids
                .get(&h.author)
                .and_then(|id| st.active_device(id))
                .is_some();
            let Some(key) = self.replica.keys().get(&h.epoch_id) else {
                continue;
            };
            let ctx = StaticContext {
                space_id: self.space_id,
                doc_id: None,
                signers: vec![h.author],
                epochs: vec![key.clone()],
                accepted: Vec::new(),
            };
            if active && envelope::open(e, &ctx).is_ok() {
                *counts.entry((h.author, h.epoch_id)).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|((device, epoch), envelopes)| StaleWriter {
                device,
                epoch,
                envelopes,
            })
            .collect()
    }

    /// Shows, from checkpoints, the documents this device holds no envelope of
    /// yet (STO-26): each as a `Change::Preview`, at most once per sync.
    async fn show_previews(
        &mut self,
        shown: &mut BTreeMap<[u8; 32], ChosenCheckpoint>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        // Only a device that holds no document yet (a new device or member):
        // later syncs load new documents quickly enough, and reading every
        // checkpoint on each sync would cost more than it saves.
        if !self.doc_counts()?.is_empty() {
            return Ok(());
        }
        let Some((chosen, errors)) = self.with_main(async |s| s.checkpoints().await).await? else {
            return Ok(());
        };
        report.warnings.extend(errors.iter().map(|e| e.to_string()));
        for (doc, cp) in chosen {
            if shown.contains_key(&doc) {
                continue;
            }
            // Checkpoint::decode admits only the two snapshot content types.
            let Some(crdt) = checkpoint::crdt_of(cp.checkpoint.content_type) else {
                continue;
            };
            match Provisional::load(crdt, &doc, &YjsSchema::default(), &cp.state()) {
                Ok(view) => {
                    self.notify(Change::Preview {
                        doc,
                        json: view.materialize().to_canonical_string(),
                    });
                    shown.insert(doc, cp);
                }
                Err(e) => report.warnings.push(format!(
                    "checkpoint of document {} not shown: {e}",
                    &hex::encode(doc)[..12]
                )),
            }
        }
        Ok(())
    }

    /// Checks every checkpoint shown during this sync against its snapshot's
    /// envelopes (STO-27); a false one is reported in the warnings.
    async fn check_previews(
        &mut self,
        shown: &BTreeMap<[u8; 32], ChosenCheckpoint>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        for (doc, cp) in shown {
            let Some(crdt) = checkpoint::crdt_of(cp.checkpoint.content_type) else {
                continue;
            };
            let cfg = self.replica_config(*doc, crdt)?;
            let m = self.membership_view()?;
            let check = self
                .with_main(async |s| {
                    s.check_checkpoint(cp, move |envs| restored(cfg, m, envs).state_digest())
                        .await
                })
                .await?;
            match check {
                Some(CheckpointCheck::Matches) | None => {}
                Some(CheckpointCheck::Mismatch(e)) => report.warnings.push(e.to_string()),
                Some(CheckpointCheck::Undone(e)) => {
                    report.warnings.push(format!("checkpoint not checked: {e}"))
                }
            }
        }
        Ok(())
    }

    /// Compacts this device's objects in the current epoch (spec §9.8): one
    /// snapshot of every envelope it holds replaces its segments, and a
    /// checkpoint of each document lets a new device show it at once (§9.7a).
    /// Run `sync` first so the snapshot covers what others wrote.
    pub async fn compact(&mut self) -> Result<CompactReport, ClientError> {
        let mut configs = BTreeMap::new();
        for (id, envs) in self.by_doc()? {
            if let Some(crdt) = self.crdt_of(&id, &envs) {
                let cfg = self.replica_config(id, crdt)?;
                configs.insert(id, (cfg, self.membership_view()?));
            }
        }
        let done = self
            .with_main(async move |s| {
                s.init().await?;
                s.compact_with(|doc, envs| {
                    let (cfg, m) = configs.remove(doc)?;
                    Some(checkpoint::state_of(&mut restored(cfg, m, envs)))
                })
                .await
            })
            .await?;
        Ok(match done {
            Some((snapshot, cps)) => CompactReport {
                snapshot: Some(snapshot),
                checkpoints: cps.len(),
            },
            None => CompactReport::default(),
        })
    }

    // ----- members, invites, devices -----

    /// Creates an invite (MEM-19) and returns its code. The code is a secret:
    /// whoever holds it can join with the role given.
    pub fn create_invite(&mut self, role: Role, single_use: bool) -> Result<String, ClientError> {
        let code = self
            .replica
            .create_invite(&mut self.rng, role, &Scope::whole(), single_use, 0)
            .map_err(|e| self.refused("creating an invite", e))?;
        self.after_change()?;
        Ok(codes::encode_invite(role, &code))
    }

    /// Every invite recorded in the space (MEM-19), open or not.
    pub fn invites(&self) -> Vec<InviteInfo> {
        let st = self.replica.state();
        st.invites
            .iter()
            .map(|(k, i)| {
                let creator_admin = st
                    .members
                    .get(&i.creator)
                    .is_some_and(|m| m.role == Role::Admin);
                InviteInfo {
                    key: *k,
                    role: i.role,
                    single_use: i.single_use,
                    expires_at_ms: i.expires_at_ms,
                    creator: i.creator,
                    open: !i.revoked
                        && !i.closed
                        && creator_admin
                        && (!i.single_use || i.admitted.is_empty()),
                    revoked: i.revoked,
                    admitted: i.admitted.len(),
                    waiting: i
                        .redeemed_by
                        .iter()
                        .filter(|r| {
                            st.redemptions
                                .get(*r)
                                .is_some_and(|x| x.admitted_by.is_empty())
                        })
                        .count(),
                }
            })
            .collect()
    }

    /// Revokes the open invite whose key starts with `prefix` (MEM-19,
    /// MEM-22): nobody is admitted with it afterwards, and a redemption
    /// concurrent with the revocation is void. Returns the invite key.
    pub fn revoke_invite(&mut self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let open: Vec<[u8; 32]> = self
            .replica
            .state()
            .invites
            .iter()
            .filter(|(_, i)| !i.revoked)
            .map(|(k, _)| *k)
            .collect();
        let (key, ()) = codes::pick("invite", prefix, open.iter().map(|k| (k, ())))?;
        self.replica
            .revoke_invite(&mut self.rng, &key)
            .map_err(|e| self.refused("revoking the invite", e))?;
        self.after_change()?;
        Ok(key)
    }

    /// Redemptions waiting for an admin (MEM-25).
    pub fn pending_admissions(&self) -> Vec<PendingAdmission> {
        self.replica.pending_admissions()
    }

    /// Admits the waiting redemption whose id starts with `prefix` (MEM-25):
    /// for spaces that confirm admissions, or to choose between rivals for
    /// one single-use invite. Returns the admitted user.
    pub fn admit(&mut self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let pending = self.replica.pending_admissions();
        let (id, user) = codes::pick(
            "redemption",
            prefix,
            pending.iter().map(|p| (&p.redemption, p.user)),
        )?;
        self.replica
            .admit(&mut self.rng, &id)
            .map_err(|e| self.refused("admitting the redemption", e))?;
        self.react()?;
        Ok(user)
    }

    /// Whether redemptions wait for [`Self::admit`] (true) or are admitted
    /// automatically on sync (false, the default). Persisted.
    pub fn set_confirm_admissions(&mut self, confirm: bool) -> Result<(), ClientError> {
        self.file.confirm_admissions = confirm;
        self.file.save(&self.dir)
    }

    fn refused(&self, what: &str, e: clientful_core::Error) -> ClientError {
        if matches!(e, clientful_core::Error::UnknownEpoch) {
            return ClientError::NoAccess(format!(
                "{what}: this device holds no current key of the space (not welcomed yet, or removed); run `sync`"
            ));
        }
        ClientError::core(what, e)
    }

    /// The member whose user key starts with `prefix`.
    pub fn find_member(&self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let users: Vec<[u8; 32]> = self.replica.state().members.keys().copied().collect();
        Ok(codes::pick("member", prefix, users.iter().map(|u| (u, ())))?.0)
    }

    /// Removes a member (MEM-12) with a key rotation that excludes every device
    /// of theirs (KEY-4).
    pub fn remove_member(&mut self, user: &[u8; 32]) -> Result<(), ClientError> {
        let devices: Vec<[u8; 32]> = self
            .replica
            .state()
            .devices
            .iter()
            .filter(|(_, d)| &d.user == user)
            .map(|(id, _)| *id)
            .collect();
        let cuts = self.removal_cuts(&devices)?;
        self.replica
            .remove_member(&mut self.rng, user, &cuts)
            .map_err(|e| self.refused("removing the member", e))?;
        self.docs.clear();
        self.after_change()
    }

    /// Adds a device of this device's user from its request code (ID-3) and
    /// returns the link code for the new device (MEM-24).
    pub fn add_device(&mut self, request: &str) -> Result<String, ClientError> {
        let cert = codes::decode(codes::DEVICE, "a device request", request)?;
        let verified = clientful_core::identity::verify_certificate(&cert, None)
            .map_err(|e| ClientError::Invalid(format!("device request is not valid: {e}")))?;
        let op = self
            .replica
            .add_device(&mut self.rng, &cert)
            .map_err(|e| self.refused("adding the device", e))?;
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand_core::Rng::fill_bytes(&mut self.rng, secret.as_mut());
        self.file.links.insert(
            hex::encode(verified.device_id),
            hex::encode(secret.as_ref()),
        );
        self.file.save(&self.dir)?;
        let genesis = self.replica.genesis().ok_or_else(|| {
            ClientError::Invalid("the space has no genesis yet: sync first".into())
        })?;
        let code = invite::encode(&InviteCode {
            space_id: self.space_id,
            secret,
            create_op: op,
            genesis,
        });
        self.react()?;
        Ok(codes::encode(codes::LINK, &code))
    }

    /// Revokes a device (MEM-13) with a rotation that excludes it.
    pub fn revoke_device(&mut self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let ids: Vec<[u8; 32]> = self
            .replica
            .state()
            .devices
            .keys()
            .filter(|d| self.replica.state().active_device(d).is_some())
            .copied()
            .collect();
        let (id, ()) = codes::pick("device", prefix, ids.iter().map(|d| (d, ())))?;
        let cuts = self.removal_cuts(&[id])?;
        self.replica
            .revoke_device(&mut self.rng, &id, &cuts)
            .map_err(|e| self.refused("revoking the device", e))?;
        self.docs.clear();
        self.after_change()?;
        Ok(id)
    }

    /// The removal cut for `devices` (spec MEM-18): for each document held
    /// here and each of the devices that wrote in it, the highest `seq` of its
    /// chain this device stores. Their writes beyond it are rejected everywhere
    /// once the removal stands, so the caller syncs first.
    fn removal_cuts(&self, devices: &[[u8; 32]]) -> Result<Vec<Cut>, ClientError> {
        let st = self.replica.state();
        let keys: Vec<([u8; 32], [u8; 32])> = devices
            .iter()
            .filter_map(|id| st.devices.get(id).map(|d| (d.device_key, *id)))
            .collect();
        let mut cuts = Vec::new();
        for (doc_id, envs) in self.by_doc()? {
            for (key, device_id) in &keys {
                let seq = envs
                    .iter()
                    .filter_map(|e| envelope::decode(e).ok())
                    .filter(|d| &d.header.author == key)
                    .map(|d| d.header.seq)
                    .max();
                if let Some(seq) = seq {
                    cuts.push(Cut {
                        device_id: *device_id,
                        doc_id,
                        seq,
                    });
                }
            }
        }
        Ok(cuts)
    }

    // ----- documents -----

    fn doc_ids(&self) -> Result<Vec<[u8; 32]>, ClientError> {
        Ok(self.by_doc()?.into_keys().collect())
    }

    fn doc_envelopes(&self, id: &[u8; 32]) -> Result<Vec<Vec<u8>>, ClientError> {
        Ok(self.by_doc()?.remove(id).unwrap_or_default())
    }

    fn crdt_of(&self, id: &[u8; 32], envs: &[Vec<u8>]) -> Option<CrdtKind> {
        let ctx = StaticContext {
            space_id: self.space_id,
            doc_id: Some(*id),
            signers: self.signers(),
            epochs: self.replica.epoch_chain(),
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
        let ids = self.doc_ids()?;
        Ok(codes::pick("document", prefix, ids.iter().map(|d| (d, ())))?.0)
    }

    fn membership_view(&self) -> Result<Membership, ClientError> {
        let current = self.replica.current_epoch().ok_or_else(|| {
            ClientError::NoAccess(
                "this device holds no current key of the space (not welcomed yet, or removed); run `sync`"
                    .into(),
            )
        })?;
        Ok(Membership {
            view: self.replica.write_view(),
            keys: self.replica.epoch_chain(),
            current,
            folders: Vec::new(),
        })
    }

    fn replica_config(
        &mut self,
        id: [u8; 32],
        crdt: CrdtKind,
    ) -> Result<ReplicaConfig, ClientError> {
        let m = self.membership_view()?;
        let mut seed = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut self.rng, &mut seed);
        Ok(ReplicaConfig {
            space_id: self.space_id,
            doc_id: id,
            device: self.device(),
            epoch: m.current,
            old_epochs: m.keys,
            signers: self.signers(),
            crdt,
            yjs_schema: YjsSchema::default(),
            rng_seed: seed,
        })
    }

    /// Refuses early what every replica would refuse (MEM-18): writing without
    /// the writer or admin role.
    fn check_writer(&self) -> Result<(), ClientError> {
        let me = self.replica.identity().user;
        match self.replica.state().members.get(&me) {
            Some(m) if m.role >= Role::Writer => Ok(()),
            Some(m) => Err(ClientError::NoAccess(format!(
                "your role in this space is {:?}: it cannot write documents",
                m.role
            ))),
            None => Err(ClientError::NoAccess(
                "this device is not a member of the space (not admitted yet, or removed)".into(),
            )),
        }
    }

    /// Creates a document with a title (stored in the document itself, so only
    /// members read it) and returns its id.
    pub fn new_document(&mut self, crdt: CrdtKind, title: &str) -> Result<[u8; 32], ClientError> {
        self.check_writer()?;
        let mut id = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut self.rng, &mut id);
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
                return Err(ClientError::NotFound(format!(
                    "no document {}",
                    hex::encode(id)
                )));
            }
            let crdt = self.crdt_of(id, &envs).ok_or_else(|| {
                ClientError::NoAccess(format!(
                    "document {} is sealed under keys this device does not hold",
                    &hex::encode(id)[..12]
                ))
            })?;
            let cfg = self.replica_config(*id, crdt)?;
            let r = restored(cfg, self.membership_view()?, &envs);
            self.docs.insert(*id, Document::new(r));
        }
        self.docs
            .get_mut(id)
            .ok_or_else(|| ClientError::NotFound("document".into()))
    }

    /// Edits document `id` with `f`, commits the edit into one envelope and stores
    /// it (durable before this returns, DOC-15); `sync` or a live session sends it.
    pub fn edit(
        &mut self,
        id: &[u8; 32],
        f: impl FnOnce(&mut Document) -> Result<(), String>,
    ) -> Result<(), ClientError> {
        self.check_writer()?;
        let doc = self.document(id)?;
        f(doc).map_err(ClientError::Invalid)?;
        doc.replica_mut()
            .commit()
            .map_err(|e| ClientError::doc("sealing the edit", e))?;
        let out: Vec<Vec<u8>> = doc
            .replica_mut()
            .drain_outbox()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        self.local()?.put_envelopes(&out, true, &[])?;
        self.live.extend(out);
        Ok(())
    }

    // ----- files -----

    /// Stores a file (chunked, encrypted, STO-16) from `path`; `progress` gets the
    /// bytes stored so far. Returns its reference (hex), to put in a document.
    pub async fn put_file(
        &mut self,
        path: &Path,
        media_type: &str,
        progress: impl FnMut(u64),
    ) -> Result<String, ClientError> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::io(path, e))?;
        let media = media_type.to_owned();
        let r = self
            .with_main(async move |s| s.put_file(f, &media, progress).await)
            .await?
            .ok_or_else(|| {
                ClientError::NoAccess("this device holds no current key of the space".into())
            })?;
        Ok(hex::encode(r.to_bytes()))
    }

    /// Fetches the file `reference` into `out` (written to a temporary file,
    /// then renamed: a failed fetch leaves nothing behind); `progress` gets
    /// `(written, total)`. Returns the media type.
    pub async fn get_file(
        &mut self,
        reference: &str,
        out: &Path,
        progress: impl FnMut(u64, u64),
    ) -> Result<String, ClientError> {
        let bytes = hex::decode(reference.trim())
            .map_err(|_| ClientError::Invalid("file reference is not hex".into()))?;
        let r = FileRef::from_bytes(&bytes)
            .ok_or_else(|| ClientError::Invalid("file reference is not 64 bytes".into()))?;
        if !self.replica.keys().contains(&r.epoch_id) {
            return Err(ClientError::NoAccess(format!(
                "file {} is sealed under an epoch this device does not hold (removed from the space, or not synced yet)",
                &reference.trim()[..16.min(reference.trim().len())]
            )));
        }
        let tmp = out.with_extension("clientful-partial");
        let f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ClientError::io(&tmp, e))?;
        let res = self
            .with_main(async move |s| {
                let mut f = f;
                let m = s.get_file(&r, &mut f, progress).await?;
                tokio::io::AsyncWriteExt::flush(&mut f).await?;
                f.sync_all().await?;
                Ok(m)
            })
            .await;
        match res {
            Ok(Some(m)) => {
                std::fs::rename(&tmp, out).map_err(|e| ClientError::io(out, e))?;
                Ok(m.media_type)
            }
            Ok(None) => {
                let _ = std::fs::remove_file(&tmp);
                Err(ClientError::NoAccess(
                    "this device holds no key of the space".into(),
                ))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn profile_seed(p: &crate::identity::Profile) -> zeroize::Zeroizing<[u8; 32]> {
    p.device_seed_bytes()
}
