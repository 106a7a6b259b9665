//! Recovery without a server for this client (spec §5.6): making a recovery set of
//! the user's secret for chosen members, and, on a device that lost everything,
//! the request and the restore from k releases (REC-5, REC-7, BAK-7).

#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;
use std::sync::Arc;

use clientful_core::keys::X25519Secret;
use clientful_core::recovery::{self, RequestSecret};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Client, IDENTITY_FILE, Profile, os_rng};
use crate::codes;
use crate::device_dir::DeviceDir;
#[cfg(not(target_arch = "wasm32"))]
use crate::device_dir::FsDir;
use crate::error::{Action, ClientError, FileKind};
use crate::space::SpaceSession;

/// Folder of a home holding the recovery request in progress (REC-5), removed once
/// the identity is restored.
const REQUEST_FOLDER: &str = "recovery";
/// The request's file in it: its X25519 secret and nonce, private like the identity.
const REQUEST_FILE: &str = "recovery/request.json";

#[derive(Serialize, Deserialize)]
struct RequestFile {
    version: u32,
    x25519_secret: String,
    nonce: String,
}

fn read_request(dir: &dyn DeviceDir) -> Result<RequestSecret, ClientError> {
    let path = dir.location().join(REQUEST_FILE);
    let bytes = Zeroizing::new(
        dir.read(REQUEST_FILE)?
            .ok_or_else(|| ClientError::NoRecoveryRequest(dir.location().to_owned()))?,
    );
    let f: RequestFile = serde_json::from_slice(&bytes).map_err(|error| ClientError::BadFile {
        path: path.clone(),
        kind: FileKind::RecoveryRequest,
        error,
    })?;
    if f.version != 1 {
        return Err(ClientError::UnsupportedVersion {
            path,
            kind: FileKind::RecoveryRequest,
            version: f.version,
        });
    }
    let secret = super::seed32(&f.x25519_secret, FileKind::RecoveryRequest)?;
    let nonce: [u8; 16] = hex::decode(&f.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(ClientError::BadSecret {
            kind: FileKind::RecoveryRequest,
        })?;
    RequestSecret::from_parts(X25519Secret::from_bytes(&secret), &nonce)
        .map_err(ClientError::core(Action::RecoveryRequest))
}

impl Client {
    /// Makes a recovery set of this user's secret (REC-2..REC-4): any `threshold`
    /// of the members whose user keys start with `holders` (one share each, kept by
    /// their first active device) can give it back, fewer learn nothing. The set is
    /// published in `space` (stored now, in storage with the next sync). Returns the
    /// kit id.
    pub fn create_recovery(
        &self,
        space: &mut SpaceSession,
        holders: &[&str],
        threshold: u32,
    ) -> Result<[u8; 32], ClientError> {
        let users = holders
            .iter()
            .map(|p| space.find_member(p))
            .collect::<Result<Vec<_>, _>>()?;
        let holders = space.recovery_holders(&users)?;
        let mut rng = os_rng()?;
        let set = recovery::create_set(
            &mut rng,
            &self.profile.user_seed,
            &self.profile.name,
            &holders,
            threshold,
        )
        .map_err(ClientError::core(Action::CreateRecovery))?;
        let kit_id = *recovery::decode_set(&set)
            .map_err(ClientError::core(Action::CreateRecovery))?
            .kit()
            .id();
        space.publish_recovery_set(&set)?;
        Ok(kit_id)
    }

    /// Starts a recovery in `home`, a device with no identity (REC-5): keeps the
    /// request's secret there and returns the request code to show the holders.
    /// A request already started is shown again rather than replaced.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn recovery_request(home: &Path) -> Result<String, ClientError> {
        Self::recovery_request_in(&FsDir::new(home))
    }

    /// [`Client::recovery_request`] in the home `dir`.
    pub fn recovery_request_in(dir: &dyn DeviceDir) -> Result<String, ClientError> {
        if dir.read(IDENTITY_FILE)?.is_some() {
            return Err(ClientError::IdentityExists(dir.location().to_owned()));
        }
        let request = match read_request(dir) {
            Ok(r) => r,
            Err(ClientError::NoRecoveryRequest(_)) => {
                let mut rng = os_rng()?;
                let secret = X25519Secret::generate(&mut rng);
                let mut nonce = [0u8; 16];
                rand_core::Rng::fill_bytes(&mut rng, &mut nonce);
                let file = RequestFile {
                    version: 1,
                    x25519_secret: hex::encode(*secret.to_bytes()),
                    nonce: hex::encode(nonce),
                };
                let text = Zeroizing::new(
                    serde_json::to_vec_pretty(&file)
                        .map_err(|e| ClientError::io(dir.location(), std::io::Error::other(e)))?,
                );
                dir.write(REQUEST_FILE, &text)?;
                RequestSecret::from_parts(secret, &nonce)
                    .map_err(ClientError::core(Action::RecoveryRequest))?
            }
            Err(e) => return Err(e),
        };
        Ok(codes::encode(codes::RECOVERY_REQUEST, request.request()))
    }

    /// Restores the user in `home` from holders' releases (`cfrelease1-` codes) of
    /// the request started there (REC-7), as a new device (BAK-7). Fewer releases
    /// than the threshold: `ClientError::Protocol` with class `INVALID_OPERATION`.
    /// The request file is removed once the identity is written.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn restore_from_shares(home: &Path, releases: &[&str]) -> Result<Client, ClientError> {
        Self::restore_from_shares_in(Arc::new(FsDir::new(home)), releases)
    }

    /// [`Client::restore_from_shares`] in the home `dir`.
    pub fn restore_from_shares_in(
        dir: Arc<dyn DeviceDir>,
        releases: &[&str],
    ) -> Result<Client, ClientError> {
        let request = read_request(dir.as_ref())?;
        let bytes = releases
            .iter()
            .map(|r| codes::decode(codes::RECOVERY_RELEASE, r))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let opened = recovery::restore(&request, &refs)
            .map_err(ClientError::core(Action::RestoreFromShares))?;
        let client = Self::save(
            dir.clone(),
            Profile::generate(&opened.name, Some(opened.user_seed))?,
        )?;
        dir.remove(REQUEST_FOLDER)?;
        Ok(client)
    }
}
