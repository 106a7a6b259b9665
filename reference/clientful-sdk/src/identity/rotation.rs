//! User-key rotation for this client (spec §5.7, MEM-32): a new user key, one
//! signed continuity statement from the old key, a `ROTATE_USER` in every space
//! this device belongs to, then the new key in `identity.json`.
//!
//! The rotation in progress is kept in `rotation/pending.json` (the new user
//! seed, the statement), written before any space is touched: a rotation
//! interrupted (storage unreachable, a crash) is resumed by calling
//! [`Client::rotate_user_key`] again, with the same new key and statement, so the
//! old key never signs a second statement (ROT-3). A space where this device
//! already moved to the new key is skipped. The old user seed is dropped once
//! every space is done.

use clientful_core::continuity;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{SigningKey, X25519Secret};
use clientful_core::membership::space::Identity;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Client, IDENTITY_FILE, Profile, os_rng, seed32};
use crate::error::{Action, ClientError, FileKind};
use crate::space::SpaceSession;

/// Folder of a home holding the rotation in progress.
const ROTATION_FOLDER: &str = "rotation";
/// Its file: the new user seed and the signed statement, private like the identity.
const ROTATION_FILE: &str = "rotation/pending.json";

#[derive(Serialize, Deserialize)]
struct RotationFile {
    version: u32,
    old_user_key: String,
    new_user_seed: String,
    statement: String,
}

/// What a rotation did in one space.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpaceRotation {
    /// `ROTATE_USER` published: the operation id.
    Rotated([u8; 32]),
    /// This device was already under the new key there (a resumed rotation).
    AlreadyRotated,
    /// This device is not an active member there (left, removed, or not
    /// admitted yet): nothing to rotate.
    NotAMember,
}

/// One space of a [`RotationReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedSpace {
    /// Space id.
    pub space_id: [u8; 32],
    /// Local name.
    pub name: String,
    /// What happened there.
    pub outcome: SpaceRotation,
}

/// What [`Client::rotate_user_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The retired user key.
    pub old_user_key: [u8; 32],
    /// The user key now in `identity.json`.
    pub new_user_key: [u8; 32],
    /// Every space of this device, in the order listed.
    pub spaces: Vec<RotatedSpace>,
    /// The new user key sealed under the passphrase given (a `cfbackup1-` code,
    /// spec §5.5), to replace the old backup.
    pub backup: Option<String>,
}

impl Client {
    /// The rotation in progress, or a new one (new user key, statement signed
    /// by the old key and the new one, kept in the home before use).
    fn pending_rotation(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>), ClientError> {
        let path = self.home.join(ROTATION_FILE);
        if let Some(bytes) = self.dir.read(ROTATION_FILE)? {
            let bytes = Zeroizing::new(bytes);
            let f: RotationFile =
                serde_json::from_slice(&bytes).map_err(|error| ClientError::BadFile {
                    path: path.clone(),
                    kind: FileKind::Rotation,
                    error,
                })?;
            if f.version != 1 {
                return Err(ClientError::UnsupportedVersion {
                    path,
                    kind: FileKind::Rotation,
                    version: f.version,
                });
            }
            let seed = seed32(&f.new_user_seed, FileKind::Rotation)?;
            let statement = hex::decode(&f.statement).map_err(|_| ClientError::BadSecret {
                kind: FileKind::Rotation,
            })?;
            let c = continuity::verify_continuity(&statement)
                .map_err(ClientError::core(Action::RotateUserKey))?;
            if c.old_user_key != self.profile.user_key()
                || c.new_user_key != SigningKey::from_seed(&seed).public_bytes()
            {
                return Err(ClientError::BadSecret {
                    kind: FileKind::Rotation,
                });
            }
            return Ok((seed, statement));
        }
        let mut rng = os_rng()?;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand_core::Rng::fill_bytes(&mut rng, seed.as_mut());
        let old = SigningKey::from_seed(&self.profile.user_seed);
        let new = SigningKey::from_seed(&seed);
        let statement = continuity::sign_continuity(&old, &new)
            .map_err(ClientError::core(Action::RotateUserKey))?;
        let file = RotationFile {
            version: 1,
            old_user_key: hex::encode(old.public_bytes()),
            new_user_seed: hex::encode(seed.as_ref()),
            statement: hex::encode(&statement),
        };
        let text = Zeroizing::new(
            serde_json::to_vec_pretty(&file)
                .map_err(|e| ClientError::io(&path, std::io::Error::other(e)))?,
        );
        self.dir.write(ROTATION_FILE, &text)?;
        Ok((seed, statement))
    }

    /// Rotates this user's key (spec §5.7, MEM-32): makes a new user key, signs
    /// the continuity statement with the old key and the new one, and in every
    /// space of this device syncs, publishes `ROTATE_USER` (this device
    /// continues under a certificate of the new key; the user's other devices
    /// are excluded and come back by a device link from this one) and syncs
    /// again. Then the new key replaces the old one in `identity.json`.
    ///
    /// A sealed backup or recovery set of the old key restores a key no space
    /// accepts any more: with `backup_passphrase`, the report carries the new
    /// key's sealed backup ([`Profile::backup_sealed`]) to replace the old one;
    /// make a new recovery set too ([`Client::create_recovery`]). An error (storage unreachable, ...) leaves
    /// the rotation in progress; calling this again resumes it with the same
    /// new key. Each space is opened here: close the [`SpaceSession`]s this
    /// process holds for the device first (a device-local store opens once).
    pub async fn rotate_user_key(
        &mut self,
        backup_passphrase: Option<&str>,
    ) -> Result<RotationReport, ClientError> {
        let old_user_key = self.profile.user_key();
        let (seed, statement) = self.pending_rotation()?;
        let new_user = SigningKey::from_seed(&seed);
        let new_user_key = new_user.public_bytes();
        let mut spaces = Vec::new();
        for info in self.spaces()? {
            let mut space = SpaceSession::open(self, &info.space_id).await?;
            space.sync().await?;
            let me = space.device_key();
            let st = space.state();
            let mine = st
                .device_ids
                .get(&me)
                .and_then(|id| st.active_device(id))
                .map(|(d, _)| d.user);
            let outcome = if mine == Some(new_user_key) {
                SpaceRotation::AlreadyRotated
            } else if mine == Some(old_user_key) {
                let next = Identity::new(
                    &new_user,
                    DeviceKeys {
                        signing: SigningKey::from_seed(&self.profile.device_seed),
                        x25519: X25519Secret::from_bytes(&self.profile.x25519),
                    },
                )
                .map_err(ClientError::core(Action::RotateUserKey))?;
                let op = space.rotate_user(&statement, next)?;
                space.sync().await?;
                SpaceRotation::Rotated(op)
            } else {
                SpaceRotation::NotAMember
            };
            spaces.push(RotatedSpace {
                space_id: info.space_id,
                name: info.name,
                outcome,
            });
        }
        let profile = Profile {
            name: self.profile.name.clone(),
            user_seed: seed,
            device_seed: self.profile.device_seed.clone(),
            x25519: self.profile.x25519.clone(),
        };
        let path = self.home.join(IDENTITY_FILE);
        let text = Zeroizing::new(
            serde_json::to_vec_pretty(&profile.to_file())
                .map_err(|e| ClientError::io(&path, std::io::Error::other(e)))?,
        );
        self.dir.write(IDENTITY_FILE, &text)?;
        self.profile = profile;
        self.dir.remove(ROTATION_FOLDER)?;
        let backup = match backup_passphrase {
            Some(p) => Some(self.profile.backup_sealed(p)?),
            None => None,
        };
        Ok(RotationReport {
            old_user_key,
            new_user_key,
            spaces,
            backup,
        })
    }
}
