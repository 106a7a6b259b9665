//! Recovery shares in a space (spec §5.6): publishing this user's recovery set,
//! listing the shares this device keeps for others, and releasing one to a
//! recovering device (REC-4, REC-6).

use clientful_core::recovery::Holder;

use super::SpaceSession;
use crate::codes;
use crate::error::{AccessError, Action, ClientError, LookupError};

/// A recovery share this device keeps for another member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldShareInfo {
    /// The kit id (what [`SpaceSession::release_recovery_share`] takes a prefix of).
    pub kit_id: [u8; 32],
    /// The user the share recovers.
    pub user: [u8; 32],
    /// The share's index.
    pub index: u32,
    /// k: how many shares restore the user.
    pub threshold: u32,
    /// Whether a device of that user signed the set (REC-6); only then is it released.
    pub confirmed: bool,
}

impl SpaceSession {
    /// The holders of a new recovery set: one active device of each user in
    /// `users` (its first device), with its X25519 key.
    pub(crate) fn recovery_holders(&self, users: &[[u8; 32]]) -> Result<Vec<Holder>, ClientError> {
        let members = self.members();
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let m = members
                .iter()
                .find(|m| &m.user == u)
                .ok_or(LookupError::NoMatch {
                    what: "member",
                    prefix: hex::encode(u),
                })?;
            let device_id = *m.devices.first().ok_or(AccessError::NoDevice(*u))?;
            let device = self
                .state()
                .devices
                .get(&device_id)
                .ok_or(AccessError::NoDevice(*u))?;
            out.push(Holder {
                device_id,
                x25519: device.x25519,
            });
        }
        Ok(out)
    }

    /// Publishes a recovery set of this device's user (REC-4): stored here at once,
    /// in storage with the next sync and live with the next publish.
    pub(crate) fn publish_recovery_set(&mut self, set: &[u8]) -> Result<(), ClientError> {
        self.core.publish_recovery_set(set)?;
        self.apply()
    }

    /// The recovery shares this device keeps for other members (REC-4).
    pub fn held_recovery_shares(&self) -> Vec<HeldShareInfo> {
        self.core
            .held_recovery_shares()
            .into_iter()
            .map(|h| HeldShareInfo {
                kit_id: h.kit_id,
                user: h.held.user_key,
                index: h.held.index,
                threshold: h.held.threshold,
                confirmed: h.owner_confirmed,
            })
            .collect()
    }

    /// Releases the share of the kit whose id starts with `kit_prefix` to the
    /// recovery request `request` (a `cfrecover1-` code), returning the release
    /// code (`cfrelease1-`) for the recovering device (REC-6). Call it only when the
    /// person asked for it through a channel you trust, after comparing the request
    /// id ([`request_id`]) with what their device shows.
    pub fn release_recovery_share(
        &mut self,
        kit_prefix: &str,
        request: &str,
    ) -> Result<String, ClientError> {
        let held = self.core.held_recovery_shares();
        let (kit_id, ()) = codes::pick(
            "recovery kit",
            kit_prefix,
            held.iter().map(|h| (&h.kit_id, ())),
        )?;
        let request = codes::decode(codes::RECOVERY_REQUEST, request)?;
        let release = self.core.release_recovery_share(&kit_id, &request)?;
        Ok(codes::encode(codes::RECOVERY_RELEASE, &release))
    }
}

/// The id of a recovery request code (REC-5), in hex: the holder and the
/// recovering person compare its first characters before a share is released.
pub fn request_id(request: &str) -> Result<String, ClientError> {
    let bytes = codes::decode(codes::RECOVERY_REQUEST, request)?;
    let decoded = clientful_core::recovery::decode_request(&bytes)
        .map_err(ClientError::core(Action::RecoveryRequest))?;
    Ok(hex::encode(decoded.id()))
}
