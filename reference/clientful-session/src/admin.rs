//! Membership administration (spec §11) and the views of the membership a
//! shell lists: invites (MEM-19, MEM-22), admissions (MEM-25), removals and
//! revocations with their cuts (MEM-12, MEM-13, MEM-18), device links (MEM-11,
//! MEM-24). Each action queues its outputs like every other session input.

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::envelope::{self, StaticContext};
use clientful_core::membership::Cut;
use clientful_core::membership::invite::{self, InviteCode};
use clientful_core::membership::ops::{Role, Scope};
use clientful_core::membership::space::{Identity, PendingAdmission};
use zeroize::Zeroizing;

use crate::error::{SessionError, Step};
use crate::session::{Session, lobby_key};

/// A member as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// An invite as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteInfo {
    /// The invite key (public).
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

/// A device added by [`Session::add_device`].
pub struct DeviceLink {
    /// The new device's id.
    pub device_id: [u8; 32],
    /// The link secret (the shell keeps it with the space's settings).
    pub secret: Zeroizing<[u8; 32]>,
    /// The encoded link code (an `InviteCode`, MEM-24) for the new device.
    pub code: Vec<u8>,
}

impl core::fmt::Debug for DeviceLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceLink")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether this device holds the current epoch's key and is an active
    /// device of the space (can read and write).
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

    /// Keys of the invites not revoked.
    pub fn unrevoked_invites(&self) -> Vec<[u8; 32]> {
        self.replica
            .state()
            .invites
            .iter()
            .filter(|(_, i)| !i.revoked)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The active devices of the space.
    pub fn active_devices(&self) -> Vec<[u8; 32]> {
        let st = self.replica.state();
        st.devices
            .keys()
            .filter(|d| st.active_device(d).is_some())
            .copied()
            .collect()
    }

    /// Redemptions waiting for an admin (MEM-25).
    pub fn pending_admissions(&self) -> Vec<PendingAdmission> {
        self.replica.pending_admissions()
    }

    /// Creates an invite (MEM-19) with an advisory expiry (Unix ms, 0: none,
    /// MEM-22); returns its encoded code.
    pub fn create_invite(
        &mut self,
        role: Role,
        single_use: bool,
        expires_at_ms: u64,
    ) -> Result<Vec<u8>, SessionError> {
        let code = self
            .replica
            .create_invite(
                &mut self.rng,
                role,
                &Scope::whole(),
                single_use,
                expires_at_ms,
            )
            .map_err(SessionError::at(Step::CreateInvite))?;
        self.drain()?;
        Ok(code)
    }

    /// Revokes the invite `key` (MEM-19, MEM-22).
    pub fn revoke_invite(&mut self, key: &[u8; 32]) -> Result<(), SessionError> {
        self.replica
            .revoke_invite(&mut self.rng, key)
            .map_err(SessionError::at(Step::RevokeInvite))?;
        self.drain()
    }

    /// Admits the waiting redemption `id` (MEM-25), then follows up at `now_ms`.
    pub fn admit(&mut self, id: &[u8; 32], now_ms: Option<u64>) -> Result<(), SessionError> {
        self.replica
            .admit(&mut self.rng, id)
            .map_err(SessionError::at(Step::Admit))?;
        self.follow_up(now_ms).map(|_| ())
    }

    /// Removes a member (MEM-12) with a rotation that excludes every device of
    /// theirs (KEY-4) and the removal cut of the documents held (`docs`: the
    /// local envelopes by document, MEM-18).
    pub fn remove_member(
        &mut self,
        user: &[u8; 32],
        docs: &BTreeMap<[u8; 32], Vec<Vec<u8>>>,
    ) -> Result<(), SessionError> {
        let devices: Vec<[u8; 32]> = self
            .replica
            .state()
            .devices
            .iter()
            .filter(|(_, d)| &d.user == user)
            .map(|(id, _)| *id)
            .collect();
        let cuts = self.removal_cuts(&devices, docs);
        self.replica
            .remove_member(&mut self.rng, user, &cuts)
            .map_err(SessionError::at(Step::RemoveMember))?;
        self.drain()
    }

    /// Revokes a device (MEM-13) with a rotation that excludes it and its
    /// removal cut (MEM-18).
    pub fn revoke_device(
        &mut self,
        device_id: &[u8; 32],
        docs: &BTreeMap<[u8; 32], Vec<Vec<u8>>>,
    ) -> Result<(), SessionError> {
        let cuts = self.removal_cuts(&[*device_id], docs);
        self.replica
            .revoke_device(&mut self.rng, device_id, &cuts)
            .map_err(SessionError::at(Step::RevokeDevice))?;
        self.drain()
    }

    /// Rotates this device's user key in this space (MEM-32): `statement` is the
    /// signed continuity (§5.7) from this device's user key to `next.user`,
    /// `next` this device certified by the new key. The old user's other
    /// devices are excluded, with their removal cut from `docs` (MEM-18).
    /// Returns the operation id.
    pub fn rotate_user(
        &mut self,
        statement: &[u8],
        next: Identity,
        docs: &BTreeMap<[u8; 32], Vec<Vec<u8>>>,
    ) -> Result<[u8; 32], SessionError> {
        let user = self.replica.identity().user;
        let devices: Vec<[u8; 32]> = self
            .replica
            .state()
            .devices
            .iter()
            .filter(|(_, d)| d.user == user)
            .map(|(id, _)| *id)
            .collect();
        let cuts = self.removal_cuts(&devices, docs);
        let op = self
            .replica
            .rotate_user(&mut self.rng, statement, next, &cuts)
            .map_err(SessionError::at(Step::RotateUser))?;
        self.drain()?;
        Ok(op)
    }

    /// Adds a device of this device's user from its certificate (ID-3,
    /// MEM-11) and makes the link (MEM-24) that the new device joins with;
    /// follows up at `now_ms` (which welcomes it, KEY-8).
    pub fn add_device(
        &mut self,
        certificate: &[u8],
        now_ms: Option<u64>,
    ) -> Result<DeviceLink, SessionError> {
        let verified = clientful_core::identity::verify_certificate(certificate, None)
            .map_err(SessionError::DeviceRequest)?;
        let op = self
            .replica
            .add_device(&mut self.rng, certificate)
            .map_err(SessionError::at(Step::AddDevice))?;
        let mut secret = Zeroizing::new([0u8; 32]);
        rand_core::Rng::fill_bytes(&mut self.rng, secret.as_mut());
        self.links
            .insert(verified.device_id, lobby_key(&self.space_id, &secret)?);
        let genesis = self.replica.genesis().ok_or(SessionError::NoGenesis)?;
        let code = invite::encode(&InviteCode {
            space_id: self.space_id,
            secret: secret.clone(),
            create_op: op,
            genesis,
        });
        self.follow_up(now_ms)?;
        Ok(DeviceLink {
            device_id: verified.device_id,
            secret,
            code,
        })
    }

    /// The removal cut for `devices` (spec MEM-18): for each document of
    /// `docs` and each of the devices that wrote in it, the highest `seq` of
    /// its chain held here. Their writes beyond it are rejected everywhere once
    /// the removal stands, so the shell syncs first.
    pub fn removal_cuts(
        &self,
        devices: &[[u8; 32]],
        docs: &BTreeMap<[u8; 32], Vec<Vec<u8>>>,
    ) -> Vec<Cut> {
        let st = self.replica.state();
        let keys: Vec<([u8; 32], [u8; 32])> = devices
            .iter()
            .filter_map(|id| st.devices.get(id).map(|d| (d.device_key, *id)))
            .collect();
        let mut cuts = Vec::new();
        for (doc_id, envs) in docs {
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
                        doc_id: *doc_id,
                        seq,
                    });
                }
            }
        }
        cuts
    }

    /// Among `fresh` envelopes (documents and membership log, not carriers,
    /// which KEY-15 seals under the replaced epoch on purpose): those of another
    /// active member's device sealed under an epoch that a standing rotation
    /// replaced, when this device held the replacing epoch already
    /// (`keys_before`), and that open and verify (so storage cannot make up a
    /// report). Counted per device and epoch.
    pub fn stale_writers(
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
}
