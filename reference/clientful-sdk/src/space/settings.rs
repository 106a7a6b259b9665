//! The space's local settings (`space.json`) and how a session starts: a space
//! created, redeemed (MEM-21), joined by a device link (MEM-24), or reopened
//! from the device-local store (STO-20).

use std::collections::BTreeMap;
use std::sync::Arc;

use clientful_core::membership::SpaceReplica;
use clientful_core::membership::invite;
use clientful_session::stored::{KEY_EPOCHS, KEY_GENESIS, KEY_PENDING, KEY_WELCOMED};
use clientful_session::{Session, SessionConfig, Stored, lobby_key};
use clientful_storage::{LocalStore, OpendalStore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SpaceSession;
use crate::codes::{self, CodeError, CodeKind, CodeProblem};
use crate::device_dir::DeviceDir;
use crate::error::{Action, ClientError, FileKind};
use crate::identity::{Client, SPACES, os_rng, seed32};
use crate::storage_url::StorageUrl;

const SPACE_FILE: &str = "space.json";

/// A device id and the link secret this device made for it (MEM-24).
type LinkSecret = ([u8; 32], Zeroizing<[u8; 32]>);

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
    /// Loads `<folder>/space.json` from the home `dir`.
    pub(crate) fn load(dir: &dyn DeviceDir, folder: &str) -> Result<Self, ClientError> {
        let name = format!("{folder}/{SPACE_FILE}");
        let path = dir.location().join(&name);
        let bytes = dir.read(&name)?.ok_or_else(|| {
            ClientError::io(&path, std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        let f: SpaceFile =
            serde_json::from_slice(&bytes).map_err(|source| ClientError::BadFile {
                path: path.clone(),
                kind: FileKind::SpaceSettings,
                error: source,
            })?;
        if f.version != 1 {
            return Err(ClientError::UnsupportedVersion {
                path,
                kind: FileKind::SpaceSettings,
                version: f.version,
            });
        }
        Ok(f)
    }

    /// Saves `<folder>/space.json` in the home `dir`, atomically.
    pub(super) fn save(&self, dir: &dyn DeviceDir, folder: &str) -> Result<(), ClientError> {
        let name = format!("{folder}/{SPACE_FILE}");
        let text =
            Zeroizing::new(serde_json::to_vec_pretty(self).map_err(|e| {
                ClientError::io(&dir.location().join(&name), std::io::Error::other(e))
            })?);
        dir.write(&name, &text)
    }

    /// The lobby secrets, parsed.
    fn lobby_secrets(&self) -> Result<Vec<Zeroizing<[u8; 32]>>, ClientError> {
        self.lobbies
            .iter()
            .map(|l| seed32(l, FileKind::SpaceSettings))
            .collect()
    }

    /// The link secrets by device id, parsed.
    fn link_secrets(&self) -> Result<Vec<LinkSecret>, ClientError> {
        self.links
            .iter()
            .map(|(d, s)| {
                Ok((
                    *seed32(d, FileKind::SpaceSettings)?,
                    seed32(s, FileKind::SpaceSettings)?,
                ))
            })
            .collect()
    }
}

/// The folder of a space in the home.
fn space_folder(space_id: &[u8; 32]) -> String {
    format!("{SPACES}/{}", hex::encode(space_id))
}

impl SpaceSession {
    /// The session core's configuration for `replica` under `file`.
    fn core_config(
        client: &Client,
        file: &SpaceFile,
        replica: SpaceReplica,
    ) -> Result<SessionConfig, ClientError> {
        let mut rng_seed = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut os_rng()?, &mut rng_seed);
        Ok(SessionConfig {
            replica,
            device_key: client.profile().device_key(),
            lobbies: file.lobby_secrets()?,
            links: file.link_secrets()?,
            confirm_admissions: file.confirm_admissions,
            rng_seed,
        })
    }

    fn assemble(
        client: &Client,
        folder: String,
        file: SpaceFile,
        store: OpendalStore,
        local: LocalStore,
        core: Session,
    ) -> Result<SpaceSession, ClientError> {
        let profile = client.profile();
        Ok(SpaceSession {
            home: Arc::clone(client.dir()),
            folder,
            file,
            space_id: *core.space_id(),
            store,
            local,
            core,
            device_seed: profile.device_seed_bytes(),
            device_key: profile.device_key(),
            rng: os_rng()?,
            live: Vec::new(),
            docs: BTreeMap::new(),
            changes: tokio::sync::broadcast::channel(1024).0,
        })
    }

    async fn start(
        client: &Client,
        replica: SpaceReplica,
        file: SpaceFile,
    ) -> Result<SpaceSession, ClientError> {
        let space_id = *replica.space_id();
        let folder = space_folder(&space_id);
        let home = client.dir().as_ref();
        if home.read(&format!("{folder}/{SPACE_FILE}"))?.is_some() {
            return Err(ClientError::SpaceExists {
                space_id,
                name: SpaceFile::load(home, &folder)
                    .map(|f| f.name)
                    .unwrap_or_default(),
            });
        }
        let store = StorageUrl::parse(&file.storage)?.open_with(&|k| client.var(k))?;
        let cfg = Self::core_config(client, &file, replica)?;
        let local = home.open_store(&folder, false).await?;
        file.save(home, &folder)?;
        let core = Session::new(cfg)?;
        let mut s = Self::assemble(client, folder, file, store, local, core)?;
        s.apply()?;
        Ok(s)
    }

    /// Creates the local space from a fresh replica, then syncs. If the sync
    /// fails the space stays on the device (everything is stored locally) and
    /// the error says so ([`ClientError::FirstSync`]).
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
            return Err(ClientError::FirstSync(Box::new(e)));
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
            .map_err(ClientError::core(Action::CreateSpace))?;
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
            .map_err(|e| CodeError::new(CodeKind::Invite, CodeProblem::Malformed(e)))?;
        let replica =
            SpaceReplica::redeem(&mut os_rng()?, &bytes, client.profile().identity()?, role)
                .map_err(ClientError::core(Action::RedeemInvite))?;
        Self::start_and_sync(client, replica, Some(&parsed.secret), name, storage).await
    }

    pub(crate) async fn link(
        client: &Client,
        code: &str,
        name: &str,
        storage: &str,
    ) -> Result<SpaceSession, ClientError> {
        StorageUrl::parse(storage)?;
        let bytes = codes::decode(codes::LINK, code)?;
        let parsed = invite::decode(&bytes)
            .map_err(|e| CodeError::new(CodeKind::Link, CodeProblem::Malformed(e)))?;
        let mut replica = SpaceReplica::join(
            parsed.space_id,
            parsed.genesis,
            client.profile().identity()?,
        )
        .map_err(ClientError::core(Action::JoinSpace))?;
        replica.add_invite_epoch(lobby_key(&parsed.space_id, &parsed.secret)?);
        Self::start_and_sync(client, replica, Some(&parsed.secret), name, storage).await
    }

    pub(crate) async fn open(
        client: &Client,
        space_id: &[u8; 32],
    ) -> Result<SpaceSession, ClientError> {
        let folder = space_folder(space_id);
        let home = client.dir().as_ref();
        let file = SpaceFile::load(home, &folder)?;
        let store = StorageUrl::parse(&file.storage)?.open_with(&|k| client.var(k))?;
        let local = home.open_store(&folder, true).await?;
        let replica = SpaceReplica::new(*space_id, client.profile().identity()?)
            .map_err(ClientError::core(Action::OpenSpace))?;
        let stored = Stored {
            epochs: local.key(KEY_EPOCHS)?,
            welcomed: local.key(KEY_WELCOMED)?,
            pending: local.key(KEY_PENDING)?,
            genesis: local.key(KEY_GENESIS)?,
        };
        let all = local.all_envelopes()?;
        let cfg = Self::core_config(client, &file, replica)?;
        let core = Session::restore(cfg, &stored, all.iter().map(Vec::as_slice))?;
        Self::assemble(client, folder, file, store, local, core)
    }

    /// Whether redemptions wait for [`Self::admit`] (true) or are admitted
    /// automatically on sync (false, the default). Persisted.
    pub fn set_confirm_admissions(&mut self, confirm: bool) -> Result<(), ClientError> {
        self.file.confirm_admissions = confirm;
        self.core.set_confirm_admissions(confirm);
        self.file.save(self.home.as_ref(), &self.folder)
    }

    /// Records the link secret of a device this device added (MEM-24).
    pub(super) fn save_link(
        &mut self,
        device_id: &[u8; 32],
        secret: &[u8; 32],
    ) -> Result<(), ClientError> {
        self.file
            .links
            .insert(hex::encode(device_id), hex::encode(secret));
        self.file.save(self.home.as_ref(), &self.folder)
    }
}
