//! Deterministic resolution (spec §11.4): the verdict of each operation from its
//! causal past (MEM-17 step 1, [`authorize`]), and the state of a causally closed
//! set of operations with the concurrent cases settled ([`resolve`]). Both are
//! pure functions of the operations: no clock, no arrival order.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::ErrorClass;
use crate::error::Error;
use crate::keys::{EpochKey, PublicKey};
use crate::{labels, suite};

use super::epoch;
use super::ops::{Op, OpBody, Role, Rotation};
use super::state::{Device, Epoch, Invite, Member, OpId, State, UserKey};

/// An accepted operation with what resolution needs about it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The operation.
    pub op: Op,
    /// Its strict causal past.
    pub past: BTreeSet<OpId>,
    /// Longest path from a root (0 for roots).
    pub depth: u64,
    /// The operations its authority derives from (the author device's addition,
    /// the author's role grant, the redeemed invite).
    pub deps: Vec<OpId>,
    /// The author's user.
    pub user: UserKey,
}

fn sort_key(e: &Entry) -> (u64, OpId) {
    (e.depth, e.op.id)
}

fn grants_admin(body: &OpBody) -> Option<UserKey> {
    match body {
        OpBody::CreateSpace { user, .. } => Some(*user),
        OpBody::AddMember {
            user,
            role: Role::Admin,
            ..
        }
        | OpBody::ChangeRole {
            user,
            role: Role::Admin,
            ..
        }
        | OpBody::RedeemInvite {
            user,
            role: Role::Admin,
            ..
        } => Some(*user),
        _ => None,
    }
}

/// The state of the causally closed set `set` of accepted operations (MEM-17).
pub fn resolve(entries: &BTreeMap<OpId, Entry>, set: &BTreeSet<OpId>) -> State {
    let mut order: Vec<&Entry> = set.iter().filter_map(|id| entries.get(id)).collect();
    order.sort_by_key(|e| sort_key(e));

    // Static facts, whatever is void: who owns which device, seniority.
    let mut device_key_user: BTreeMap<[u8; 32], UserKey> = BTreeMap::new();
    let mut device_id_key: BTreeMap<[u8; 32], [u8; 32]> = BTreeMap::new();
    let mut seniority: BTreeMap<UserKey, (u64, OpId)> = BTreeMap::new();
    for e in &order {
        for d in e.op.body.devices() {
            device_key_user
                .entry(*d.device_key.as_bytes())
                .or_insert(*d.user_key.as_bytes());
            device_id_key
                .entry(d.device_id)
                .or_insert(*d.device_key.as_bytes());
        }
        if let Some(u) = grants_admin(&e.op.body) {
            seniority.entry(u).or_insert(sort_key(e));
        }
    }
    let senior = |u: &UserKey| seniority.get(u).copied().unwrap_or((u64::MAX, *u));

    let mut void: BTreeMap<OpId, ErrorClass> = BTreeMap::new();
    let cascade = |void: &mut BTreeMap<OpId, ErrorClass>| {
        for e in &order {
            if !void.contains_key(&e.op.id) && e.deps.iter().any(|d| void.contains_key(d)) {
                void.insert(e.op.id, ErrorClass::NotAMember);
            }
        }
    };

    // (a) One genesis: the lowest id.
    let mut geneses: Vec<&Entry> = order
        .iter()
        .filter(|e| matches!(e.op.body, OpBody::CreateSpace { .. }))
        .copied()
        .collect();
    geneses.sort_by_key(|e| e.op.id);
    for e in geneses.iter().skip(1) {
        void.insert(e.op.id, ErrorClass::InvalidOperation);
    }
    cascade(&mut void);

    // Invites by key, with their creator's user and device.
    let invite_creator: BTreeMap<[u8; 32], (UserKey, [u8; 32])> = order
        .iter()
        .filter_map(|e| match &e.op.body {
            OpBody::CreateInvite { invite_key, .. } => Some((*invite_key, (e.user, e.op.author))),
            _ => None,
        })
        .collect();
    let redeemed_invite = |e: &Entry| match &e.op.body {
        OpBody::RedeemInvite { invite_key, .. } => invite_creator.get(invite_key).copied(),
        _ => None,
    };

    // (b) Removals and revocations, most senior author first (MEM-17 (b)).
    let mut removals: Vec<&Entry> = order
        .iter()
        .filter(|e| {
            matches!(
                e.op.body,
                OpBody::RemoveMember { .. } | OpBody::RevokeDevice { .. }
            )
        })
        .copied()
        .collect();
    removals.sort_by_key(|e| (senior(&e.user), sort_key(e)));
    for r in removals {
        if void.contains_key(&r.op.id) {
            continue;
        }
        let hit = |e: &Entry| -> bool {
            match &r.op.body {
                OpBody::RemoveMember { user, .. } => {
                    &e.user == user || redeemed_invite(e).is_some_and(|(u, _)| &u == user)
                }
                OpBody::RevokeDevice { device_id, .. } => {
                    device_id_key.get(device_id).is_some_and(|k| {
                        &e.op.author == k || redeemed_invite(e).is_some_and(|(_, a)| &a == k)
                    })
                }
                _ => false,
            }
        };
        for e in &order {
            if e.op.id != r.op.id
                && !r.past.contains(&e.op.id)
                && !void.contains_key(&e.op.id)
                && hit(e)
            {
                void.insert(e.op.id, ErrorClass::RemovedMember);
            }
        }
        cascade(&mut void);
    }

    // (c) Redemptions concurrent with the invite's revocation.
    for k in order.iter() {
        let OpBody::RevokeInvite { invite_key } = &k.op.body else {
            continue;
        };
        if void.contains_key(&k.op.id) {
            continue;
        }
        for e in &order {
            if let OpBody::RedeemInvite { invite_key: ik, .. } = &e.op.body
                && ik == invite_key
                && !k.past.contains(&e.op.id)
                && !void.contains_key(&e.op.id)
            {
                void.insert(e.op.id, ErrorClass::InvalidOperation);
            }
        }
    }
    cascade(&mut void);

    // (d) Single-use invites: one standing redemption, the lowest id.
    for c in order.iter() {
        let OpBody::CreateInvite {
            invite_key,
            single_use: true,
            ..
        } = &c.op.body
        else {
            continue;
        };
        let mut reds: Vec<OpId> = order
            .iter()
            .filter(|e| {
                matches!(&e.op.body, OpBody::RedeemInvite { invite_key: ik, .. } if ik == invite_key)
                    && !void.contains_key(&e.op.id)
            })
            .map(|e| e.op.id)
            .collect();
        reds.sort_unstable();
        for r in reds.iter().skip(1) {
            void.insert(*r, ErrorClass::InvalidOperation);
        }
    }
    cascade(&mut void);

    build_state(&order, set, void)
}

fn build_state(order: &[&Entry], set: &BTreeSet<OpId>, void: BTreeMap<OpId, ErrorClass>) -> State {
    let standing: Vec<&Entry> = order
        .iter()
        .filter(|e| !void.contains_key(&e.op.id))
        .copied()
        .collect();
    let mut s = State {
        ops: set.clone(),
        ..State::default()
    };
    let by_id: BTreeMap<OpId, &Entry> = order.iter().map(|e| (e.op.id, *e)).collect();
    let before = |a: &OpId, b: &OpId| by_id.get(b).is_some_and(|e| e.past.contains(a));

    // Devices.
    for e in &standing {
        if matches!(e.op.body, OpBody::CreateSpace { .. }) {
            s.genesis = Some(e.op.id);
        }
        for d in e.op.body.devices() {
            s.devices.entry(d.device_id).or_insert(Device {
                user: *d.user_key.as_bytes(),
                device_key: *d.device_key.as_bytes(),
                x25519: d.device_x25519,
                added_by: e.op.id,
                revoked_by: None,
            });
            s.device_ids
                .entry(*d.device_key.as_bytes())
                .or_insert(d.device_id);
        }
    }
    for e in &standing {
        if let OpBody::RevokeDevice { device_id, .. } = &e.op.body
            && let Some(d) = s.devices.get_mut(device_id)
            && d.revoked_by.is_none()
        {
            d.revoked_by = Some(e.op.id);
        }
    }

    // Users: the maximal role-setting and removing operations decide (MEM-17 (e)).
    let mut per_user: BTreeMap<UserKey, Vec<&Entry>> = BTreeMap::new();
    for e in &standing {
        let u = match &e.op.body {
            OpBody::CreateSpace { user, .. }
            | OpBody::AddMember { user, .. }
            | OpBody::ChangeRole { user, .. }
            | OpBody::RedeemInvite { user, .. }
            | OpBody::RemoveMember { user, .. } => *user,
            _ => continue,
        };
        per_user.entry(u).or_default().push(e);
    }
    for (u, list) in &per_user {
        let maximal: Vec<&Entry> = list
            .iter()
            .filter(|x| !list.iter().any(|y| before(&x.op.id, &y.op.id)))
            .copied()
            .collect();
        if let Some(r) = maximal
            .iter()
            .filter(|e| matches!(e.op.body, OpBody::RemoveMember { .. }))
            .map(|e| e.op.id)
            .min()
        {
            s.removed.insert(*u, r);
            continue;
        }
        let pick = maximal
            .iter()
            .filter_map(|e| match &e.op.body {
                OpBody::CreateSpace { .. } => {
                    Some((Role::Admin, super::ops::Scope::whole(), e.op.id))
                }
                OpBody::AddMember { role, scope, .. } | OpBody::ChangeRole { role, scope, .. } => {
                    Some((*role, scope.clone(), e.op.id))
                }
                OpBody::RedeemInvite {
                    role, invite_key, ..
                } => {
                    let scope = list
                        .iter()
                        .chain(order.iter())
                        .find_map(|c| match &c.op.body {
                            OpBody::CreateInvite {
                                invite_key: k,
                                scope,
                                ..
                            } if k == invite_key => Some(scope.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    Some((*role, scope, e.op.id))
                }
                _ => None,
            })
            .min_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
        let joined = list
            .iter()
            .filter(|e| {
                matches!(
                    e.op.body,
                    OpBody::CreateSpace { .. }
                        | OpBody::AddMember { .. }
                        | OpBody::RedeemInvite { .. }
                )
            })
            .max_by_key(|e| sort_key(e));
        if let (Some((role, scope, granted_by)), Some(j)) = (pick, joined) {
            s.members.insert(
                *u,
                Member {
                    role,
                    scope,
                    granted_by,
                    joined_by: j.op.id,
                    settled: false,
                },
            );
        }
    }

    // Settlement (MEM-15): every admin acknowledged the addition.
    let admins: Vec<UserKey> = s
        .members
        .iter()
        .filter(|(_, m)| m.role == Role::Admin)
        .map(|(u, _)| *u)
        .collect();
    let settled: BTreeSet<UserKey> = s
        .members
        .iter()
        .filter(|(u, m)| {
            let Some(j) = by_id.get(&m.joined_by) else {
                return false;
            };
            if matches!(j.op.body, OpBody::CreateSpace { .. }) {
                return true;
            }
            admins.iter().filter(|a| a != u).all(|a| {
                j.user == *a
                    || s.members
                        .get(a)
                        .is_some_and(|am| before(&m.joined_by, &am.joined_by))
                    || order
                        .iter()
                        .any(|o| o.user == *a && o.past.contains(&m.joined_by))
            })
        })
        .map(|(u, _)| *u)
        .collect();
    for (u, m) in s.members.iter_mut() {
        m.settled = settled.contains(u);
    }

    // Epochs and frontier (KEY-11).
    for e in order {
        if let Some(r) = e.op.body.rotation() {
            s.epochs.insert(
                r.epoch_id,
                Epoch {
                    created_by: e.op.id,
                    prev: r.prev_epochs.clone(),
                    recipients: r.recipients.clone(),
                    key_message: r.key_message,
                    void: void.contains_key(&e.op.id),
                },
            );
        }
    }
    let superseded: BTreeSet<[u8; 32]> = s
        .epochs
        .values()
        .filter(|e| !e.void)
        .flat_map(|e| e.prev.iter().copied())
        .collect();
    s.frontier = s
        .epochs
        .iter()
        .filter(|(id, e)| !e.void && !superseded.contains(*id))
        .map(|(id, _)| *id)
        .collect();

    // Invites.
    for e in &standing {
        if let OpBody::CreateInvite {
            invite_key,
            role,
            scope,
            single_use,
            invite_secret,
            expires_at_ms,
        } = &e.op.body
        {
            s.invites.entry(*invite_key).or_insert(Invite {
                created_by: e.op.id,
                creator: e.user,
                role: *role,
                scope: scope.clone(),
                single_use: *single_use,
                invite_secret: *invite_secret,
                expires_at_ms: *expires_at_ms,
                revoked: false,
                redeemed_by: Vec::new(),
            });
        }
    }
    for e in &standing {
        match &e.op.body {
            OpBody::RevokeInvite { invite_key } => {
                if let Some(i) = s.invites.get_mut(invite_key) {
                    i.revoked = true;
                }
            }
            OpBody::RedeemInvite { invite_key, .. } => {
                if let Some(i) = s.invites.get_mut(invite_key) {
                    i.redeemed_by.push(e.op.id);
                }
            }
            _ => {}
        }
    }
    s.void = void;
    s
}

/// The statement an invitee signs with the invite key (MEM-21).
pub fn redeem_statement(space_id: &[u8; 32], user: &UserKey, device_ids: &[[u8; 32]]) -> Vec<u8> {
    let mut c = Vec::with_capacity(64 + 32 * device_ids.len());
    c.extend_from_slice(space_id);
    c.extend_from_slice(user);
    for d in device_ids {
        c.extend_from_slice(d);
    }
    c
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidOperation { reason }
}

fn check_rotation(
    s: &State,
    space_id: &[u8; 32],
    r: &Rotation,
    excluded: &[[u8; 32]],
    new_key: Option<&EpochKey>,
) -> Result<(), Error> {
    if r.prev_epochs != s.frontier {
        return Err(invalid("rotation does not supersede exactly the frontier"));
    }
    let expected: Vec<[u8; 32]> = s
        .expected_recipients(excluded)
        .iter()
        .map(|r| r.device_id)
        .collect();
    if r.recipients != expected {
        return Err(invalid(
            "recipients are not the active devices of settled members",
        ));
    }
    if let Some(k) = new_key {
        for (p, link) in r.prev_epochs.iter().zip(r.chain_links.iter()) {
            epoch::open_chain_link(space_id, k, p, link)
                .map_err(|_| invalid("chain link does not open to the previous epoch"))?;
        }
    }
    Ok(())
}

/// MEM-17 step 1: is `op` authorised by the state `s` of its causal past? On
/// success, returns the operations its authority derives from and the author's
/// user. `new_key` is the key of the epoch a rotating operation creates (the
/// receiver opened the envelope with it), used to check its chain links.
pub fn authorize(
    space_id: &[u8; 32],
    op: &Op,
    s: &State,
    new_key: Option<&EpochKey>,
) -> Result<(Vec<OpId>, UserKey), Error> {
    // Genesis (MEM-6).
    if let OpBody::CreateSpace {
        user,
        nonce,
        devices,
        rotation,
    } = &op.body
    {
        if !s.ops.is_empty() || op.seq != 1 {
            return Err(invalid("CREATE_SPACE must be the first operation"));
        }
        let mut c = [0u8; 64];
        c[..32].copy_from_slice(user);
        c[32..].copy_from_slice(nonce);
        if &suite::hash_with_label(labels::ID_SPACE, &c)? != space_id {
            return Err(invalid(
                "space id is not derived from the creator and nonce",
            ));
        }
        if !devices
            .iter()
            .any(|d| d.device_key.as_bytes() == &op.author)
        {
            return Err(invalid("author is not one of the creator's devices"));
        }
        if op.epoch_id != rotation.epoch_id || !rotation.prev_epochs.is_empty() {
            return Err(invalid("genesis epoch"));
        }
        let ids: Vec<[u8; 32]> = devices.iter().map(|d| d.device_id).collect();
        if rotation.recipients != ids {
            return Err(invalid(
                "genesis epoch must be sealed to the creator's devices",
            ));
        }
        return Ok((Vec::new(), *user));
    }
    if s.genesis.is_none() {
        return Err(invalid("no CREATE_SPACE in the causal past"));
    }

    // Redemption: the author is a new device of the redeeming user (MEM-21).
    if let OpBody::RedeemInvite {
        invite_key,
        user,
        role,
        devices,
        proof,
    } = &op.body
    {
        let inv = s
            .invites
            .get(invite_key)
            .ok_or(invalid("no such invite in the causal past"))?;
        if inv.revoked {
            return Err(invalid("invite revoked"));
        }
        if inv.single_use && !inv.redeemed_by.is_empty() {
            return Err(invalid("single-use invite already redeemed"));
        }
        let creator_admin = s
            .members
            .get(&inv.creator)
            .is_some_and(|m| m.role == Role::Admin);
        if !creator_admin {
            return Err(invalid("the invite's creator is no longer an admin"));
        }
        if op.epoch_id != epoch::epoch_id(space_id, &inv.invite_secret)? {
            return Err(invalid("redemption must be sealed under the invite epoch"));
        }
        if *role > inv.role {
            return Err(invalid("redemption asks for more than the invite grants"));
        }
        if s.members.contains_key(user) {
            return Err(invalid("user is already a member"));
        }
        if !devices
            .iter()
            .any(|d| d.device_key.as_bytes() == &op.author)
        {
            return Err(invalid("author is not one of the redeeming user's devices"));
        }
        if devices.iter().any(|d| s.devices.contains_key(&d.device_id)) {
            return Err(invalid("device already added"));
        }
        let ids: Vec<[u8; 32]> = devices.iter().map(|d| d.device_id).collect();
        PublicKey::from_bytes(invite_key)?.verify_with_label(
            labels::SIG_INVITE_REDEEM,
            &redeem_statement(space_id, user, &ids),
            proof,
            "invite proof",
        )?;
        return Ok((alloc::vec![inv.created_by], *user));
    }

    // Everyone else: an active device of a member (MEM-17 step 1).
    let (author_id, dev, member) = s.device_status(&op.author)?;
    let (user, role, whole) = (dev.user, member.role, member.scope.is_whole());
    let deps = alloc::vec![dev.added_by, member.granted_by];
    let admin = || -> Result<(), Error> {
        if role == Role::Admin && whole {
            Ok(())
        } else {
            Err(Error::NotAMember {
                what: "operation needs an admin",
            })
        }
    };
    // MEM-17 step 1.3: the epoch the envelope is sealed under.
    match op.body.rotation() {
        None if !s.epochs.contains_key(&op.epoch_id) => {
            return Err(invalid(
                "sealed under an epoch not created in the causal past",
            ));
        }
        Some(r) if op.epoch_id != r.epoch_id => {
            return Err(invalid("a rotation is sealed under the epoch it creates"));
        }
        Some(r) if s.epochs.contains_key(&r.epoch_id) => {
            return Err(invalid("epoch already exists"));
        }
        _ => {}
    }
    match &op.body {
        OpBody::AddMember {
            user: target,
            role: r,
            scope,
            devices,
        } => {
            admin()?;
            if s.members.contains_key(target) {
                return Err(invalid("user is already a member"));
            }
            if *r == Role::Admin && !scope.is_whole() {
                return Err(invalid("an admin's scope is the whole space"));
            }
            if devices.iter().any(|d| s.devices.contains_key(&d.device_id)) {
                return Err(invalid("device already added"));
            }
        }
        OpBody::ChangeRole {
            user: target,
            role: r,
            scope,
        } => {
            admin()?;
            if !s.members.contains_key(target) {
                return Err(invalid("not a member"));
            }
            if *r == Role::Admin && !scope.is_whole() {
                return Err(invalid("an admin's scope is the whole space"));
            }
        }
        OpBody::RemoveMember {
            user: target,
            rotation,
        } => {
            if target != &user {
                admin()?;
            }
            if !s.members.contains_key(target) {
                return Err(invalid("not a member"));
            }
            let excluded: Vec<[u8; 32]> = s
                .devices
                .iter()
                .filter(|(_, d)| &d.user == target)
                .map(|(id, _)| *id)
                .collect();
            check_rotation(s, space_id, rotation, &excluded, new_key)?;
        }
        OpBody::AddDevice { device } => {
            if device.user_key.as_bytes() != &user {
                return Err(invalid("a device is added by its own user"));
            }
            if s.devices.contains_key(&device.device_id) {
                return Err(invalid("device already added"));
            }
        }
        OpBody::RevokeDevice {
            device_id,
            rotation,
        } => {
            let target = s.devices.get(device_id).ok_or(invalid("no such device"))?;
            if target.revoked_by.is_some() {
                return Err(invalid("device already revoked"));
            }
            if target.user != user {
                admin()?;
            }
            let _ = author_id;
            check_rotation(s, space_id, rotation, &[*device_id], new_key)?;
        }
        OpBody::RotateKeys { rotation } => {
            admin()?;
            check_rotation(s, space_id, rotation, &[], new_key)?;
        }
        OpBody::CreateInvite {
            invite_key,
            role: r,
            scope,
            ..
        } => {
            admin()?;
            if s.invites.contains_key(invite_key) {
                return Err(invalid("invite key already used"));
            }
            if *r == Role::Admin && !scope.is_whole() {
                return Err(invalid("an admin's scope is the whole space"));
            }
        }
        OpBody::RevokeInvite { invite_key } => {
            admin()?;
            match s.invites.get(invite_key) {
                Some(i) if !i.revoked => {}
                _ => return Err(invalid("no such unrevoked invite")),
            }
        }
        OpBody::Ack => {}
        OpBody::CreateSpace { .. } | OpBody::RedeemInvite { .. } => {}
    }
    Ok((deps, user))
}
