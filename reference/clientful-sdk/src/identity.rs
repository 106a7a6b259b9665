//! A device's identity on disk, and the [`Client`] that owns a home folder.
//!
//! `identity.json` in the home folder holds the user key, this device's signing
//! and key-agreement keys (ID-3) and a display name; it is written atomically
//! with owner-only permissions. A **user backup** holds only the user key: a
//! restored user gets new device keys, so two devices never share a device key
//! (which would look like equivocation, DOC-7, BAK-7); an existing device then
//! adds the new one (`devices add`). Backups are sealed under a passphrase
//! (spec §5.5: [`Profile::backup_sealed`], [`Client::restore_sealed`], a
//! `cfbackup1-` text code); the unsealed JSON form exists only for a user who
//! asks for it ([`Profile::backup_unsealed`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{SigningKey, X25519Secret};
use clientful_core::membership::space::Identity;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use clientful_core::backup;

use crate::device_dir::DeviceDir;
#[cfg(not(target_arch = "wasm32"))]
use crate::device_dir::FsDir;
use crate::error::{Action, ClientError, FileKind};
use crate::space::{SpaceFile, SpaceSession};

/// Recovery shares for this client (spec §5.6).
#[cfg(feature = "attest")]
mod attestation;
mod recovery;
/// User-key rotation for this client (spec §5.7, MEM-32).
mod rotation;
#[cfg(feature = "attest")]
pub use attestation::AttestationNonce;
pub use rotation::{RotatedSpace, RotationReport, SpaceRotation};

const IDENTITY_FILE: &str = "identity.json";
/// The folder of the spaces' folders in the home.
pub(crate) const SPACES: &str = "spaces";
const BACKUP_KIND: &str = "clientful-user-backup";

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    version: u32,
    name: String,
    user_seed: String,
    device_seed: String,
    device_x25519: String,
}

#[derive(Serialize, Deserialize)]
struct BackupFile {
    version: u32,
    kind: String,
    name: String,
    user_seed: String,
    user_key: String,
}

/// A fresh RNG seeded from the OS.
pub(crate) fn os_rng() -> Result<ChaCha20Rng, ClientError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(ClientError::Randomness)?;
    Ok(ChaCha20Rng::from_seed(seed))
}

/// A 32-byte secret or id kept as hex in a file of kind `kind`.
pub(crate) fn seed32(hex_str: &str, kind: FileKind) -> Result<Zeroizing<[u8; 32]>, ClientError> {
    let v = Zeroizing::new(hex::decode(hex_str).map_err(|_| ClientError::BadSecret { kind })?);
    let mut out = Zeroizing::new([0u8; 32]);
    if v.len() != 32 {
        return Err(ClientError::BadSecret { kind });
    }
    out.copy_from_slice(&v);
    Ok(out)
}

/// The keys of one device of one user.
pub struct Profile {
    /// Display name (local only; never sent anywhere in the clear).
    pub name: String,
    user_seed: Zeroizing<[u8; 32]>,
    device_seed: Zeroizing<[u8; 32]>,
    x25519: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("user", &hex::encode(self.user_key()))
            .finish_non_exhaustive()
    }
}

impl Profile {
    fn generate(name: &str, user_seed: Option<Zeroizing<[u8; 32]>>) -> Result<Self, ClientError> {
        let mut rng = os_rng()?;
        let mut fresh = || {
            let mut s = Zeroizing::new([0u8; 32]);
            rand_core::Rng::fill_bytes(&mut rng, s.as_mut());
            s
        };
        Ok(Profile {
            name: name.to_owned(),
            user_seed: match user_seed {
                Some(s) => s,
                None => fresh(),
            },
            device_seed: fresh(),
            x25519: fresh(),
        })
    }

    /// The user's public identity key.
    pub fn user_key(&self) -> [u8; 32] {
        SigningKey::from_seed(&self.user_seed).public_bytes()
    }

    /// This device's signing key (public).
    pub fn device_key(&self) -> [u8; 32] {
        SigningKey::from_seed(&self.device_seed).public_bytes()
    }

    pub(crate) fn device_seed_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.device_seed)
    }

    /// The device's identity in a space: keys and certificate (ID-3).
    pub fn identity(&self) -> Result<Identity, ClientError> {
        let user = SigningKey::from_seed(&self.user_seed);
        let device = DeviceKeys {
            signing: SigningKey::from_seed(&self.device_seed),
            x25519: X25519Secret::from_bytes(&self.x25519),
        };
        Identity::new(&user, device).map_err(ClientError::core(Action::DeviceCertificate))
    }

    /// This device's id (ID-5).
    pub fn device_id(&self) -> Result<[u8; 32], ClientError> {
        Ok(self.identity()?.device_id())
    }

    /// This device's certificate as a device request code, for `devices add` on
    /// a device that is already a member.
    pub fn device_request(&self) -> Result<String, ClientError> {
        Ok(crate::codes::encode(
            crate::codes::DEVICE,
            &self.identity()?.certificate,
        ))
    }

    /// The user backup sealed under `passphrase` (spec §5.5, BAK-1..BAK-5), as a
    /// `cfbackup1-` text code: worthless without the passphrase, and it says
    /// whose backup it is ([`backup_owner`]). Refuses an empty passphrase;
    /// check [`crate::passphrase::strength`] first to warn about a weak one.
    pub fn backup_sealed(&self, passphrase: &str) -> Result<String, ClientError> {
        let mut rng = os_rng()?;
        let randomness = backup::SealRandomness::generate(&mut rng);
        let sealed = backup::seal_backup(passphrase, &self.user_seed, &self.name, &randomness)
            .map_err(ClientError::core(Action::SealBackup))?;
        Ok(crate::codes::encode(crate::codes::BACKUP, &sealed))
    }

    /// The user backup in the clear (JSON text): the user seed as hex, so
    /// whoever copies it is this user. Only for a user who asks for an unsealed
    /// copy in so many words (BAK-1); [`Profile::backup_sealed`] otherwise.
    pub fn backup_unsealed(&self) -> String {
        let b = BackupFile {
            version: 1,
            kind: BACKUP_KIND.into(),
            name: self.name.clone(),
            user_seed: hex::encode(self.user_seed.as_ref()),
            user_key: hex::encode(self.user_key()),
        };
        serde_json::to_string_pretty(&b).unwrap_or_default()
    }

    fn to_file(&self) -> IdentityFile {
        IdentityFile {
            version: 1,
            name: self.name.clone(),
            user_seed: hex::encode(self.user_seed.as_ref()),
            device_seed: hex::encode(self.device_seed.as_ref()),
            device_x25519: hex::encode(self.x25519.as_ref()),
        }
    }

    fn from_file(path: &Path, f: &IdentityFile) -> Result<Self, ClientError> {
        if f.version != 1 {
            return Err(ClientError::UnsupportedVersion {
                path: path.to_owned(),
                kind: FileKind::Identity,
                version: f.version,
            });
        }
        Ok(Profile {
            name: f.name.clone(),
            user_seed: seed32(&f.user_seed, FileKind::Identity)?,
            device_seed: seed32(&f.device_seed, FileKind::Identity)?,
            x25519: seed32(&f.device_x25519, FileKind::Identity)?,
        })
    }
}

/// The user key a sealed backup (a `cfbackup1-` code) belongs to, read
/// without the passphrase (BAK-5, BAK-6 steps 1 to 3).
pub fn backup_owner(code: &str) -> Result<[u8; 32], ClientError> {
    let sealed = crate::codes::decode(crate::codes::BACKUP, code)?;
    backup::backup_user_key(&sealed).map_err(ClientError::core(Action::OpenBackup))
}

/// Whether a text is a sealed backup code (else an unsealed JSON backup, or
/// neither).
pub fn is_sealed_backup(text: &str) -> bool {
    text.trim_start().starts_with(crate::codes::BACKUP)
}

/// One device's client: its home ([`DeviceDir`]) and identity.
#[derive(Debug)]
pub struct Client {
    home: PathBuf,
    dir: Arc<dyn DeviceDir>,
    profile: Profile,
    /// Settings the storage backends read (`AWS_ACCESS_KEY_ID`, ...), before
    /// the process environment ([`Client::set_var`]).
    vars: BTreeMap<String, String>,
}

/// A space this device belongs to, as listed.
#[derive(Debug, Clone)]
pub struct SpaceInfo {
    /// Space id.
    pub space_id: [u8; 32],
    /// Local name.
    pub name: String,
    /// Storage URL.
    pub storage: String,
}

impl Client {
    fn save(dir: Arc<dyn DeviceDir>, profile: Profile) -> Result<Client, ClientError> {
        let home = dir.location().to_owned();
        if dir.read(IDENTITY_FILE)?.is_some() {
            return Err(ClientError::IdentityExists(home));
        }
        let text =
            Zeroizing::new(serde_json::to_vec_pretty(&profile.to_file()).map_err(|e| {
                ClientError::io(&home.join(IDENTITY_FILE), std::io::Error::other(e))
            })?);
        dir.write(IDENTITY_FILE, &text)?;
        Ok(Client {
            home,
            dir,
            profile,
            vars: BTreeMap::new(),
        })
    }

    /// Creates a new user with its first device in `home`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn init(home: &Path, name: &str) -> Result<Client, ClientError> {
        Self::init_in(Arc::new(FsDir::new(home)), name)
    }

    /// Creates a new user with its first device in the home `dir`.
    pub fn init_in(dir: Arc<dyn DeviceDir>, name: &str) -> Result<Client, ClientError> {
        Self::save(dir, Profile::generate(name, None)?)
    }

    /// Restores a user from a sealed backup (a `cfbackup1-` code, spec §5.5)
    /// as a new device in `home` (BAK-7). A wrong passphrase and a damaged
    /// backup are the same error: `ClientError::Protocol` with
    /// `Action::OpenBackup` and class `DECRYPT_FAILED` (BAK-6).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn restore_sealed(
        home: &Path,
        code: &str,
        passphrase: &str,
    ) -> Result<Client, ClientError> {
        Self::restore_sealed_in(Arc::new(FsDir::new(home)), code, passphrase)
    }

    /// [`Client::restore_sealed`] into the home `dir`.
    pub fn restore_sealed_in(
        dir: Arc<dyn DeviceDir>,
        code: &str,
        passphrase: &str,
    ) -> Result<Client, ClientError> {
        let sealed = crate::codes::decode(crate::codes::BACKUP, code)?;
        let opened = backup::open_backup(&sealed, passphrase)
            .map_err(ClientError::core(Action::OpenBackup))?;
        Self::save(
            dir,
            Profile::generate(&opened.name, Some(opened.user_seed))?,
        )
    }

    /// Restores a user from an unsealed backup ([`Profile::backup_unsealed`]) as
    /// a new device in `home`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn restore(home: &Path, backup: &str) -> Result<Client, ClientError> {
        Self::restore_in(Arc::new(FsDir::new(home)), backup)
    }

    /// [`Client::restore`] into the home `dir`.
    pub fn restore_in(dir: Arc<dyn DeviceDir>, backup: &str) -> Result<Client, ClientError> {
        let b: BackupFile =
            serde_json::from_str(backup).map_err(|source| ClientError::BadFile {
                path: PathBuf::new(),
                kind: FileKind::Backup,
                error: source,
            })?;
        if b.kind != BACKUP_KIND || b.version != 1 {
            return Err(ClientError::UnsupportedVersion {
                path: PathBuf::new(),
                kind: FileKind::Backup,
                version: b.version,
            });
        }
        let seed = seed32(&b.user_seed, FileKind::Backup)?;
        if hex::encode(SigningKey::from_seed(&seed).public_bytes()) != b.user_key {
            return Err(ClientError::BackupMismatch);
        }
        Self::save(dir, Profile::generate(&b.name, Some(seed))?)
    }

    /// Opens the client in `home`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(home: &Path) -> Result<Client, ClientError> {
        Self::open_in(Arc::new(FsDir::new(home)))
    }

    /// Opens the client in the home `dir`.
    pub fn open_in(dir: Arc<dyn DeviceDir>) -> Result<Client, ClientError> {
        let home = dir.location().to_owned();
        let path = home.join(IDENTITY_FILE);
        let bytes = match dir.read(IDENTITY_FILE)? {
            Some(b) => Zeroizing::new(b),
            None => return Err(ClientError::NoIdentity(home)),
        };
        let f: IdentityFile =
            serde_json::from_slice(&bytes).map_err(|source| ClientError::BadFile {
                path: path.clone(),
                kind: FileKind::Identity,
                error: source,
            })?;
        Ok(Client {
            profile: Profile::from_file(&path, &f)?,
            home,
            dir,
            vars: BTreeMap::new(),
        })
    }

    /// The home folder (in a browser, the OPFS name of the home).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The home.
    pub fn dir(&self) -> &Arc<dyn DeviceDir> {
        &self.dir
    }

    /// Sets a setting the storage backends read (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `CLIENTFUL_WEBDAV_USER`, ...) for this client,
    /// before the process environment (a browser has none). Kept in memory only.
    pub fn set_var(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_owned(), value.to_owned());
    }

    /// A storage setting: [`Client::set_var`]'s, else the environment's.
    pub(crate) fn var(&self, key: &str) -> Option<String> {
        self.vars
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
    }

    /// The identity.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The spaces this device belongs to (or is joining).
    pub fn spaces(&self) -> Result<Vec<SpaceInfo>, ClientError> {
        let mut out = BTreeMap::new();
        for entry in self.dir.list(SPACES)? {
            let f = SpaceFile::load(self.dir.as_ref(), &format!("{SPACES}/{entry}"))?;
            out.insert(f.name.clone() + &f.space_id, f);
        }
        out.into_values()
            .map(|f| {
                Ok(SpaceInfo {
                    space_id: *seed32(&f.space_id, FileKind::SpaceSettings)?,
                    name: f.name,
                    storage: f.storage,
                })
            })
            .collect()
    }

    /// Finds a space by local name or id prefix.
    pub fn find_space(&self, selector: &str) -> Result<SpaceInfo, ClientError> {
        let all = self.spaces()?;
        if let Some(s) = all.iter().find(|s| s.name == selector) {
            return Ok(s.clone());
        }
        let (_, s) = crate::codes::pick(
            "space",
            selector,
            all.iter().map(|s| (&s.space_id, s.clone())),
        )?;
        Ok(s)
    }

    /// Creates a space on the storage at `storage_url`; this device is its
    /// first admin (MEM-6).
    pub async fn create_space(
        &self,
        name: &str,
        storage_url: &str,
    ) -> Result<SpaceSession, ClientError> {
        SpaceSession::create(self, name, storage_url).await
    }

    /// Redeems an invite code (MEM-21): the redemption is written to the invite's
    /// lobby; the device becomes able to read once an admin's device has synced
    /// and welcomed it (call [`SpaceSession::sync`] again later).
    pub async fn accept_invite(
        &self,
        code: &str,
        name: &str,
        storage_url: &str,
    ) -> Result<SpaceSession, ClientError> {
        SpaceSession::redeem(self, code, name, storage_url).await
    }

    /// Joins a space as a new device of a user who is a member, with the link
    /// code `devices add` printed on one of the user's devices (MEM-24).
    pub async fn join_device(
        &self,
        link_code: &str,
        name: &str,
        storage_url: &str,
    ) -> Result<SpaceSession, ClientError> {
        SpaceSession::link(self, link_code, name, storage_url).await
    }

    /// Opens a space by local name or id prefix.
    pub async fn open_space(&self, selector: &str) -> Result<SpaceSession, ClientError> {
        let info = self.find_space(selector)?;
        SpaceSession::open(self, &info.space_id).await
    }
}
