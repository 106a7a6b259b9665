//! Recovery without a server for this client (spec §5.6): making a recovery set of
//! the user's secret for chosen members, and, on a device that lost everything,
//! the request and the restore from k releases (REC-5, REC-7, BAK-7).

use std::path::{Path, PathBuf};

use clientful_core::keys::X25519Secret;
use clientful_core::recovery::{self, RequestSecret};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Client, Profile, os_rng, write_private};
use crate::codes;
use crate::error::{Action, ClientError, FileKind};
use crate::space::SpaceSession;

/// File in a home folder holding the recovery request in progress (REC-5): its
/// X25519 secret and nonce, private like the identity.
const REQUEST_FILE: &str = "recovery-request.json";

#[derive(Serialize, Deserialize)]
struct RequestFile {
    version: u32,
    x25519_secret: String,
    nonce: String,
}

fn request_path(home: &Path) -> PathBuf {
    home.join(REQUEST_FILE)
}

fn read_request(home: &Path) -> Result<RequestSecret, ClientError> {
    let path = request_path(home);
    let bytes = match std::fs::read(&path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ClientError::NoRecoveryRequest(home.to_owned()));
        }
        Err(e) => return Err(ClientError::io(&path, e)),
    };
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
    pub fn recovery_request(home: &Path) -> Result<String, ClientError> {
        if home.join(super::IDENTITY_FILE).exists() {
            return Err(ClientError::IdentityExists(home.to_owned()));
        }
        let request = match read_request(home) {
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
                        .map_err(|e| ClientError::io(home, std::io::Error::other(e)))?,
                );
                write_private(&request_path(home), &text)?;
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
    pub fn restore_from_shares(home: &Path, releases: &[&str]) -> Result<Client, ClientError> {
        let request = read_request(home)?;
        let bytes = releases
            .iter()
            .map(|r| codes::decode(codes::RECOVERY_RELEASE, r))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let opened = recovery::restore(&request, &refs)
            .map_err(ClientError::core(Action::RestoreFromShares))?;
        let client = Self::save(
            home,
            Profile::generate(&opened.name, Some(opened.user_seed))?,
        )?;
        let path = request_path(home);
        std::fs::remove_file(&path).map_err(|e| ClientError::io(&path, e))?;
        Ok(client)
    }
}
