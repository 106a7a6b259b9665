//! Membership administration (spec §11): invites (MEM-19, MEM-22), admissions
//! (MEM-25), removals and revocations (MEM-12, MEM-13, MEM-18) and device links
//! (MEM-11, MEM-24). The session core decides and seals; this shell resolves
//! the id prefixes people type, keeps link secrets in the settings, and
//! applies the core's outputs.

use clientful_core::membership::PendingAdmission;
use clientful_core::membership::ops::Role;

use super::{InviteInfo, SpaceSession, now_ms};
use crate::codes;
use crate::error::ClientError;

impl SpaceSession {
    /// Creates an invite (MEM-19) and returns its code. The code is a secret:
    /// whoever holds it can join with the role given.
    pub fn create_invite(&mut self, role: Role, single_use: bool) -> Result<String, ClientError> {
        let code = self.core.create_invite(role, single_use, 0)?;
        self.apply()?;
        Ok(codes::encode_invite(role, &code))
    }

    /// Every invite recorded in the space (MEM-19), open or not.
    pub fn invites(&self) -> Vec<InviteInfo> {
        self.core.invites()
    }

    /// Revokes the open invite whose key starts with `prefix` (MEM-19,
    /// MEM-22): nobody is admitted with it afterwards, and a redemption
    /// concurrent with the revocation is void. Returns the invite key.
    pub fn revoke_invite(&mut self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let open = self.core.unrevoked_invites();
        let (key, ()) = codes::pick("invite", prefix, open.iter().map(|k| (k, ())))?;
        self.core.revoke_invite(&key)?;
        self.apply()?;
        Ok(key)
    }

    /// Redemptions waiting for an admin (MEM-25).
    pub fn pending_admissions(&self) -> Vec<PendingAdmission> {
        self.core.pending_admissions()
    }

    /// Admits the waiting redemption whose id starts with `prefix` (MEM-25):
    /// for spaces that confirm admissions, or to choose between rivals for
    /// one single-use invite. Returns the admitted user.
    pub fn admit(&mut self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let pending = self.core.pending_admissions();
        let (id, user) = codes::pick(
            "redemption",
            prefix,
            pending.iter().map(|p| (&p.redemption, p.user)),
        )?;
        self.core.admit(&id, now_ms())?;
        self.apply()?;
        Ok(user)
    }

    /// The member whose user key starts with `prefix`.
    pub fn find_member(&self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let users: Vec<[u8; 32]> = self.core.state().members.keys().copied().collect();
        Ok(codes::pick("member", prefix, users.iter().map(|u| (u, ())))?.0)
    }

    /// Removes a member (MEM-12) with a key rotation that excludes every device
    /// of theirs (KEY-4).
    pub fn remove_member(&mut self, user: &[u8; 32]) -> Result<(), ClientError> {
        let docs = self.by_doc()?;
        self.core.remove_member(user, &docs)?;
        self.docs.clear();
        self.apply()
    }

    /// Adds a device of this device's user from its request code (ID-3) and
    /// returns the link code for the new device (MEM-24).
    pub fn add_device(&mut self, request: &str) -> Result<String, ClientError> {
        let cert = codes::decode(codes::DEVICE, request)?;
        let link = self.core.add_device(&cert, now_ms())?;
        self.save_link(&link.device_id, &link.secret)?;
        self.apply()?;
        Ok(codes::encode(codes::LINK, &link.code))
    }

    /// Rotates this device's user key in this space (MEM-32): publishes
    /// `ROTATE_USER` with the signed continuity `statement` (§5.7) and this
    /// device's certificate under the new key (`next`), with the removal cut
    /// of the user's other devices. Returns the operation id.
    pub fn rotate_user(
        &mut self,
        statement: &[u8],
        next: clientful_core::membership::space::Identity,
    ) -> Result<[u8; 32], ClientError> {
        let docs = self.by_doc()?;
        let op = self.core.rotate_user(statement, next, &docs)?;
        self.docs.clear();
        self.apply()?;
        Ok(op)
    }

    /// Revokes a device (MEM-13) with a rotation that excludes it.
    pub fn revoke_device(&mut self, prefix: &str) -> Result<[u8; 32], ClientError> {
        let ids = self.core.active_devices();
        let (id, ()) = codes::pick("device", prefix, ids.iter().map(|d| (d, ())))?;
        let docs = self.by_doc()?;
        self.core.revoke_device(&id, &docs)?;
        self.docs.clear();
        self.apply()?;
        Ok(id)
    }
}
