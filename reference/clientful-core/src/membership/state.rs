//! The resolved membership state of a space (spec §11.4): members with roles and
//! scopes, devices, epochs, invites, and the verdict of every operation. A
//! [`State`] is a pure function of a causally closed set of accepted operations
//! ([`super::resolve::resolve`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::ErrorClass;
use crate::error::Error;
use crate::keys::X25519Public;
use crate::{labels, suite};

use super::epoch::Recipient;
use super::ops::{Role, Scope};

/// An operation id (the envelope id).
pub type OpId = [u8; 32];
/// A user key.
pub type UserKey = [u8; 32];
/// A device id (ID-5).
pub type DeviceId = [u8; 32];
/// An epoch id.
pub type EpochId = [u8; 32];

/// A current member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: Scope,
    /// The operation that set the role.
    pub granted_by: OpId,
    /// The operation that (last) added the user.
    pub joined_by: OpId,
    /// Whether the removals concurrent with the user's addition are settled
    /// (MEM-15), so the user may receive history keys.
    pub settled: bool,
}

/// A device ever certified in the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The user it belongs to.
    pub user: UserKey,
    /// Its signing key.
    pub device_key: [u8; 32],
    /// Its X25519 key.
    pub x25519: X25519Public,
    /// The operation that added it.
    pub added_by: OpId,
    /// The revocation that stands against it, if any.
    pub revoked_by: Option<OpId>,
}

/// An epoch created in the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// The operation that created it.
    pub created_by: OpId,
    /// The epochs it superseded.
    pub prev: Vec<EpochId>,
    /// The devices it was sealed to.
    pub recipients: Vec<DeviceId>,
    /// The key message carrying it.
    pub key_message: [u8; 32],
    /// Its creating operation is void (MEM-17): readable, but not part of the
    /// frontier.
    pub void: bool,
}

/// An invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The `CREATE_INVITE` operation.
    pub created_by: OpId,
    /// The user who created it.
    pub creator: UserKey,
    /// Role granted.
    pub role: Role,
    /// Scope granted.
    pub scope: Scope,
    /// Single use.
    pub single_use: bool,
    /// The invite epoch secret.
    pub invite_secret: [u8; 32],
    /// Advisory expiry (Unix ms, 0: none).
    pub expires_at_ms: u64,
    /// The device key that created it.
    pub creator_device: [u8; 32],
    /// Revoked by a standing `REVOKE_INVITE`.
    pub revoked: bool,
    /// Closed (MEM-22): revoked, or its creator removed, demoted or the
    /// creating device revoked by a standing operation it did not see. A closed
    /// invite admits nobody.
    pub closed: bool,
    /// Standing redemptions (admitted or waiting).
    pub redeemed_by: Vec<OpId>,
    /// The redemptions a standing `ADMIT` admitted.
    pub admitted: Vec<OpId>,
}

/// A standing `REDEEM_INVITE`: a request to join (MEM-21), which an admin's
/// `ADMIT` grants (MEM-25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The invite redeemed.
    pub invite_key: [u8; 32],
    /// The redeeming user.
    pub user: UserKey,
    /// The role asked for.
    pub role: Role,
    /// The user's devices listed.
    pub devices: Vec<DeviceId>,
    /// The standing `ADMIT` operations that admitted it (empty: waiting).
    pub admitted_by: Vec<OpId>,
}

/// The resolved state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// The genesis operation.
    pub genesis: Option<OpId>,
    /// Current members.
    pub members: BTreeMap<UserKey, Member>,
    /// Removed users, with the standing removal.
    pub removed: BTreeMap<UserKey, OpId>,
    /// Every device ever added by a standing operation.
    pub devices: BTreeMap<DeviceId, Device>,
    /// Device id of each device key.
    pub device_ids: BTreeMap<[u8; 32], DeviceId>,
    /// Every epoch created by an accepted operation.
    pub epochs: BTreeMap<EpochId, Epoch>,
    /// The epochs no standing rotation supersedes, ascending (KEY-11).
    pub frontier: Vec<EpochId>,
    /// Invites, by invite key.
    pub invites: BTreeMap<[u8; 32], Invite>,
    /// Standing redemptions, by operation id.
    pub redemptions: BTreeMap<OpId, Redemption>,
    /// Accepted operations that are void in this state, with the class their
    /// verdict reports (MEM-17).
    pub void: BTreeMap<OpId, ErrorClass>,
    /// Every accepted operation the state is computed from.
    pub ops: BTreeSet<OpId>,
    /// User keys retired by a standing `ROTATE_USER` (MEM-32), with it: never
    /// a member of the space again.
    pub retired: BTreeMap<UserKey, OpId>,
    /// Rotations that compete for one old (or one new) user key: all void
    /// (MEM-32), by the contested old user key. Evidence of a leaked key.
    pub rival_rotations: BTreeMap<UserKey, Vec<OpId>>,
}

impl State {
    /// A device that is active: added, not revoked, of a current member.
    pub fn active_device(&self, device_id: &DeviceId) -> Option<(&Device, &Member)> {
        let d = self.devices.get(device_id)?;
        if d.revoked_by.is_some() {
            return None;
        }
        Some((d, self.members.get(&d.user)?))
    }

    /// The status of the device whose signing key is `device_key`: its id, user
    /// and membership, or `REMOVED_MEMBER` (revoked, or user removed) or
    /// `NOT_A_MEMBER` (never added, or user not a member).
    pub(crate) fn device_status(
        &self,
        device_key: &[u8; 32],
    ) -> Result<(DeviceId, &Device, &Member), Error> {
        let id = self.device_ids.get(device_key).ok_or(Error::NotAMember {
            what: "device was never added",
        })?;
        let d = self.devices.get(id).ok_or(Error::NotAMember {
            what: "device was never added",
        })?;
        if d.revoked_by.is_some() {
            return Err(Error::RemovedMember {
                what: "device revoked",
            });
        }
        if self.removed.contains_key(&d.user) {
            return Err(Error::RemovedMember {
                what: "user removed",
            });
        }
        let m = self.members.get(&d.user).ok_or(Error::NotAMember {
            what: "user is not a member",
        })?;
        Ok((*id, d, m))
    }

    /// Whether the device with signing key `device_key` may write document
    /// `doc_id` (in `folders`) now (MEM-18).
    pub fn can_write(
        &self,
        device_key: &[u8; 32],
        doc_id: &[u8; 32],
        folders: &[[u8; 32]],
    ) -> Result<(), Error> {
        let (_, _, m) = self.device_status(device_key)?;
        if m.role < Role::Writer || !m.scope.covers(doc_id, folders) {
            return Err(Error::NotAMember {
                what: "no write capability for this document",
            });
        }
        Ok(())
    }

    /// The active devices of settled members, except `excluded`, ascending: the
    /// recipients a rotation must seal to (KEY-4).
    pub(crate) fn expected_recipients(&self, excluded: &[DeviceId]) -> Vec<Recipient> {
        self.devices
            .iter()
            .filter(|(id, d)| {
                d.revoked_by.is_none()
                    && !excluded.contains(id)
                    && self.members.get(&d.user).is_some_and(|m| m.settled)
            })
            .map(|(id, d)| Recipient {
                device_id: *id,
                x25519: d.x25519,
            })
            .collect()
    }

    /// The active devices of a user, ascending.
    pub fn user_devices(&self, user: &UserKey) -> Vec<DeviceId> {
        self.devices
            .iter()
            .filter(|(_, d)| &d.user == user && d.revoked_by.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether an epoch's recipients include no device that is inactive now.
    pub fn is_clean(&self, epoch: &EpochId) -> bool {
        self.epochs
            .get(epoch)
            .is_some_and(|e| e.recipients.iter().all(|d| self.active_device(d).is_some()))
    }

    /// The current epoch (KEY-11): the clean frontier epoch with the lowest id.
    /// `None` if every frontier epoch reached a device that is no longer active:
    /// an admin must rotate first (KEY-12).
    pub fn current_epoch(&self) -> Option<EpochId> {
        self.frontier.iter().find(|e| self.is_clean(e)).copied()
    }

    /// Whether the space needs a rotation (KEY-12): the frontier has more than
    /// one epoch, or its epoch reached a device no longer active.
    pub(crate) fn needs_rotation(&self) -> bool {
        self.frontier.len() > 1 || self.current_epoch().is_none()
    }

    /// Digest of the resolved membership (MEM-16): members, roles, scopes, active
    /// devices, removed users and frontier, in a fixed layout.
    pub fn digest(&self) -> Result<[u8; 32], Error> {
        let mut c = Vec::new();
        c.extend_from_slice(&(self.members.len() as u32).to_be_bytes());
        for (u, m) in &self.members {
            c.extend_from_slice(u);
            c.push(m.role.as_u32() as u8);
            c.extend_from_slice(&(m.scope.0.len() as u32).to_be_bytes());
            for s in &m.scope.0 {
                c.extend_from_slice(s);
            }
            let devs = self.user_devices(u);
            c.extend_from_slice(&(devs.len() as u32).to_be_bytes());
            for d in devs {
                c.extend_from_slice(&d);
            }
        }
        c.extend_from_slice(&(self.removed.len() as u32).to_be_bytes());
        for u in self.removed.keys() {
            c.extend_from_slice(u);
        }
        c.extend_from_slice(&(self.frontier.len() as u32).to_be_bytes());
        for e in &self.frontier {
            c.extend_from_slice(e);
        }
        suite::hash_with_label(labels::DIGEST_MEMBERSHIP, &c)
    }
}
