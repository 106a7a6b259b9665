//! Deterministic resolution (spec §11.4): the verdict of each operation from its
//! causal past (MEM-17 step 1, [`authorize`]), and the state of a causally closed
//! set of operations with the concurrent cases settled ([`resolve`]), user-key
//! rotations included (MEM-32: rivals void, a rotation as a removal of its old
//! user, the new user inheriting the old one's role). Both are
//! pure functions of the operations: no clock, no arrival order.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::ErrorClass;
use crate::error::Error;
use crate::keys::{EpochKey, PublicKey};
use crate::{labels, suite};

use super::epoch;
use super::ops::{Op, OpBody, Role, Rotation, Scope};
use super::state::{Device, Epoch, Invite, Member, OpId, Redemption, State, UserKey};
use crate::identity::VerifiedDevice;

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
    /// the author's role grant, the redeemed invite, the admitted redemption).
    pub deps: Vec<OpId>,
    /// The author's user.
    pub user: UserKey,
    /// The admins of the state of its causal past: who must acknowledge it if
    /// it adds a user (MEM-15), and whether a role change demotes an admin.
    pub admins: BTreeSet<UserKey>,
}

fn sort_key(e: &Entry) -> (u64, OpId) {
    (e.depth, e.op.id)
}

/// What a joining operation grants: the user, role, scope and devices.
struct Grant<'a> {
    user: UserKey,
    role: Role,
    scope: Scope,
    devices: &'a [VerifiedDevice],
}

/// Facts about the whole set that hold whatever is void: operations by id,
/// invites by key, the redemption an `ADMIT` names.
struct Facts<'a> {
    by_id: BTreeMap<OpId, &'a Entry>,
    /// Invite key -> the `CREATE_INVITE` (lowest position first).
    invites: BTreeMap<[u8; 32], &'a Entry>,
}

impl<'a> Facts<'a> {
    fn new(order: &[&'a Entry]) -> Self {
        let mut invites = BTreeMap::new();
        for e in order {
            if let OpBody::CreateInvite { invite_key, .. } = &e.op.body {
                invites.entry(*invite_key).or_insert(*e);
            }
        }
        Facts {
            by_id: order.iter().map(|e| (e.op.id, *e)).collect(),
            invites,
        }
    }

    /// The redemption an operation redeems or admits.
    fn redemption(&self, e: &'a Entry) -> Option<&'a Entry> {
        match &e.op.body {
            OpBody::RedeemInvite { .. } => Some(e),
            OpBody::Admit { redemption } => self.by_id.get(redemption).copied(),
            _ => None,
        }
    }

    /// The invite key an operation redeems or admits a redemption of.
    fn invite_key(&self, e: &'a Entry) -> Option<[u8; 32]> {
        match &self.redemption(e)?.op.body {
            OpBody::RedeemInvite { invite_key, .. } => Some(*invite_key),
            _ => None,
        }
    }

    /// The `CREATE_INVITE` of the invite an operation redeems or admits.
    fn invite(&self, e: &'a Entry) -> Option<&'a Entry> {
        self.invites.get(&self.invite_key(e)?).copied()
    }

    /// What a joining operation (`CREATE_SPACE`, `ADD_MEMBER`, `ADMIT`) grants.
    fn grant(&self, e: &'a Entry) -> Option<Grant<'a>> {
        match &e.op.body {
            OpBody::CreateSpace { user, devices, .. } => Some(Grant {
                user: *user,
                role: Role::Admin,
                scope: Scope::whole(),
                devices,
            }),
            OpBody::AddMember {
                user,
                role,
                scope,
                devices,
            } => Some(Grant {
                user: *user,
                role: *role,
                scope: scope.clone(),
                devices,
            }),
            OpBody::Admit { .. } => {
                let r = self.redemption(e)?;
                let OpBody::RedeemInvite {
                    user,
                    role,
                    devices,
                    ..
                } = &r.op.body
                else {
                    return None;
                };
                let scope = match &self.invite(e)?.op.body {
                    OpBody::CreateInvite { scope, .. } => scope.clone(),
                    _ => return None,
                };
                Some(Grant {
                    user: *user,
                    role: *role,
                    scope,
                    devices,
                })
            }
            _ => None,
        }
    }

    /// The user an operation makes admin, if it does (seniority, MEM-17 (b)).
    fn grants_admin(&self, e: &'a Entry) -> Option<UserKey> {
        match &e.op.body {
            OpBody::ChangeRole {
                user,
                role: Role::Admin,
                ..
            } => Some(*user),
            _ => self
                .grant(e)
                .filter(|g| g.role == Role::Admin)
                .map(|g| g.user),
        }
    }

    /// Whether `z` closes the invite created by `c` (MEM-22): a revocation of
    /// it, or an operation ending its creator's admin role (removal, demotion,
    /// revocation of the creating device) that the invite did not see.
    fn closes(&self, z: &Entry, c: &Entry, invite_key: &[u8; 32]) -> bool {
        if c.past.contains(&z.op.id) {
            return false;
        }
        match &z.op.body {
            OpBody::RevokeInvite { invite_key: k } => k == invite_key,
            OpBody::RemoveMember { user, .. } => user == &c.user,
            OpBody::RotateUser { continuity, .. } => continuity.old_user_key == c.user,
            OpBody::ChangeRole { user, role, .. } => {
                user == &c.user && *role < Role::Admin && z.admins.contains(user)
            }
            OpBody::RevokeDevice { device_id, .. } => self
                .device_key_of(device_id)
                .is_some_and(|k| k == c.op.author),
            _ => false,
        }
    }

    /// The signing key of device `id`, from any operation that lists it.
    fn device_key_of(&self, id: &[u8; 32]) -> Option<[u8; 32]> {
        self.by_id.values().find_map(|e| {
            e.op.body
                .devices()
                .iter()
                .find(|d| &d.device_id == id)
                .map(|d| *d.device_key.as_bytes())
        })
    }
}

/// The state of the causally closed set `set` of accepted operations (MEM-17).
pub fn resolve(entries: &BTreeMap<OpId, Entry>, set: &BTreeSet<OpId>) -> State {
    let mut order: Vec<&Entry> = set.iter().filter_map(|id| entries.get(id)).collect();
    order.sort_by_key(|e| sort_key(e));
    let facts = Facts::new(&order);

    // Static facts, whatever is void: who owns which device, seniority.
    let mut device_id_key: BTreeMap<[u8; 32], [u8; 32]> = BTreeMap::new();
    let mut seniority: BTreeMap<UserKey, (u64, OpId)> = BTreeMap::new();
    for e in &order {
        for d in e.op.body.devices() {
            device_id_key
                .entry(d.device_id)
                .or_insert(*d.device_key.as_bytes());
        }
        if let Some(u) = facts.grants_admin(e) {
            seniority.entry(u).or_insert(sort_key(e));
        }
        // MEM-32: the new user key keeps the old one's seniority.
        if let OpBody::RotateUser { continuity, .. } = &e.op.body
            && let Some(p) = seniority.get(&continuity.old_user_key).copied()
        {
            seniority.entry(continuity.new_user_key).or_insert(p);
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

    // (a) One genesis. A replica accepts only the genesis it pinned (MEM-26),
    // so a set of accepted operations holds one; should a caller resolve a set
    // with several, all but the lowest id are void, as a guard.
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

    // MEM-32: rotations that share an old or a new user key are all void: a
    // leaked key gives no grindable winner; admins decide.
    let rotations: Vec<&Entry> = order
        .iter()
        .filter(|e| matches!(e.op.body, OpBody::RotateUser { .. }) && !void.contains_key(&e.op.id))
        .copied()
        .collect();
    let mut rivals: BTreeMap<UserKey, Vec<OpId>> = BTreeMap::new();
    for a in &rotations {
        let OpBody::RotateUser { continuity: ca, .. } = &a.op.body else {
            continue;
        };
        let contested = rotations.iter().any(|b| {
            b.op.id != a.op.id
                && matches!(&b.op.body, OpBody::RotateUser { continuity: cb, .. }
                    if cb.old_user_key == ca.old_user_key || cb.new_user_key == ca.new_user_key)
        });
        if contested {
            rivals.entry(ca.old_user_key).or_default().push(a.op.id);
            void.insert(a.op.id, ErrorClass::InvalidOperation);
        }
    }
    cascade(&mut void);

    // The creator (user, device) of the invite an operation redeems or admits.
    let invite_creator = |e: &Entry| facts.invite(e).map(|c| (c.user, c.op.author));

    // (b) Removals and revocations, most senior author first (MEM-17 (b)).
    let mut removals: Vec<&Entry> = order
        .iter()
        .filter(|e| {
            matches!(
                e.op.body,
                OpBody::RemoveMember { .. }
                    | OpBody::RevokeDevice { .. }
                    | OpBody::RotateUser { .. }
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
                    &e.user == user || invite_creator(e).is_some_and(|(u, _)| &u == user)
                }
                // MEM-32: a rotation ends the old user's authority as a removal does.
                OpBody::RotateUser { continuity, .. } => {
                    let user = &continuity.old_user_key;
                    &e.user == user || invite_creator(e).is_some_and(|(u, _)| &u == user)
                }
                OpBody::RevokeDevice { device_id, .. } => {
                    device_id_key.get(device_id).is_some_and(|k| {
                        &e.op.author == k || invite_creator(e).is_some_and(|(_, a)| &a == k)
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

    // (c) Closed invites (MEM-22): a standing revocation of the invite, or a
    // standing operation ending its creator's admin role, voids every
    // redemption and admission of it that the closing operation did not see.
    for (key, c) in &facts.invites {
        if void.contains_key(&c.op.id) {
            continue;
        }
        let closers: Vec<&Entry> = order
            .iter()
            .filter(|z| !void.contains_key(&z.op.id) && facts.closes(z, c, key))
            .copied()
            .collect();
        for z in closers {
            for e in &order {
                if facts.invite_key(e).as_ref() == Some(key)
                    && !z.past.contains(&e.op.id)
                    && !void.contains_key(&e.op.id)
                {
                    void.insert(e.op.id, ErrorClass::InvalidOperation);
                }
            }
        }
    }
    cascade(&mut void);

    // (d) Single-use invites: the redemption admitted first (the standing
    // ADMIT with the lowest position) is the only one; every other redemption
    // of the invite, and every admission of one, is void.
    for (key, c) in &facts.invites {
        if !matches!(
            c.op.body,
            OpBody::CreateInvite {
                single_use: true,
                ..
            }
        ) {
            continue;
        }
        let winner = order
            .iter()
            .filter(|e| matches!(e.op.body, OpBody::Admit { .. }))
            .filter(|e| !void.contains_key(&e.op.id) && facts.invite_key(e).as_ref() == Some(key))
            .find_map(|e| facts.redemption(e).map(|r| r.op.id));
        let Some(winner) = winner else {
            continue;
        };
        for e in &order {
            if facts.invite_key(e).as_ref() == Some(key)
                && facts.redemption(e).is_some_and(|r| r.op.id != winner)
                && !void.contains_key(&e.op.id)
            {
                void.insert(e.op.id, ErrorClass::InvalidOperation);
            }
        }
    }
    cascade(&mut void);

    let mut s = build_state(&order, &facts, set, void);
    s.rival_rotations = rivals;
    s
}

/// What the operations that concern one user make of it (MEM-17 step 3).
#[derive(Debug, Clone)]
enum Outcome {
    Member(Member),
    Removed(OpId),
    Nothing,
}

/// The outcome of user `u` from its standing role-setting and removing
/// operations (`per_user`), leaving out `skip`. A `ROTATE_USER` that retires
/// `u` removes it; one that names `u` as the new key sets what `inherited`
/// recorded for it (the old user's outcome without the rotation).
fn user_outcome(
    u: &UserKey,
    per_user: &BTreeMap<UserKey, Vec<&Entry>>,
    skip: Option<&OpId>,
    facts: &Facts<'_>,
    inherited: &BTreeMap<OpId, Outcome>,
) -> Outcome {
    let by_id = &facts.by_id;
    let before = |a: &OpId, b: &OpId| by_id.get(b).is_some_and(|e| e.past.contains(a));
    let list: Vec<&Entry> = per_user
        .get(u)
        .map(|l| {
            l.iter()
                .filter(|e| Some(&e.op.id) != skip)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let maximal: Vec<&Entry> = list
        .iter()
        .filter(|x| !list.iter().any(|y| before(&x.op.id, &y.op.id)))
        .copied()
        .collect();
    let removes = |e: &Entry| match &e.op.body {
        OpBody::RemoveMember { .. } => true,
        OpBody::RotateUser { continuity, .. } => &continuity.old_user_key == u,
        _ => false,
    };
    if let Some(r) = maximal.iter().filter(|e| removes(e)).map(|e| e.op.id).min() {
        return Outcome::Removed(r);
    }
    let from_rotation = |e: &Entry| match inherited.get(&e.op.id) {
        Some(Outcome::Member(m)) => Some(m.clone()),
        _ => None,
    };
    let pick = maximal
        .iter()
        .filter_map(|e| match &e.op.body {
            OpBody::ChangeRole { role, scope, .. } => Some((*role, scope.clone(), e.op.id, None)),
            OpBody::RotateUser { .. } => {
                from_rotation(e).map(|m| (m.role, m.scope, e.op.id, Some(m.granted_by)))
            }
            _ => facts.grant(e).map(|g| (g.role, g.scope, e.op.id, None)),
        })
        .min_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
    let joined = list
        .iter()
        .filter(|e| facts.grant(e).is_some() || matches!(e.op.body, OpBody::RotateUser { .. }))
        .max_by_key(|e| sort_key(e))
        .and_then(|e| match &e.op.body {
            OpBody::RotateUser { .. } => from_rotation(e).map(|m| m.joined_by),
            _ => Some(e.op.id),
        });
    match (pick, joined) {
        (Some((role, scope, id, inherited_grant)), Some(j)) => Outcome::Member(Member {
            role,
            scope,
            granted_by: inherited_grant.unwrap_or(id),
            joined_by: j,
            settled: false,
        }),
        _ => Outcome::Nothing,
    }
}

fn build_state(
    order: &[&Entry],
    facts: &Facts<'_>,
    set: &BTreeSet<OpId>,
    void: BTreeMap<OpId, ErrorClass>,
) -> State {
    let standing: Vec<&Entry> = order
        .iter()
        .filter(|e| !void.contains_key(&e.op.id))
        .copied()
        .collect();
    let mut s = State {
        ops: set.clone(),
        ..State::default()
    };
    let by_id = &facts.by_id;

    // Devices: listed by standing operations that add them (a redemption's
    // devices once it is admitted).
    for e in &standing {
        if matches!(e.op.body, OpBody::CreateSpace { .. }) {
            s.genesis = Some(e.op.id);
        }
        let listed: &[VerifiedDevice] = match &e.op.body {
            OpBody::AddDevice { device } | OpBody::RotateUser { device, .. } => {
                core::slice::from_ref(device)
            }
            OpBody::RedeemInvite { .. } => &[],
            _ => facts.grant(e).map(|g| g.devices).unwrap_or(&[]),
        };
        for d in listed {
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
    // MEM-32: a standing rotation moves the author's device key to its new
    // certificate (in position order, so a chain of rotations ends on the last).
    for e in &standing {
        if let OpBody::RotateUser {
            device, continuity, ..
        } = &e.op.body
        {
            s.device_ids
                .insert(*device.device_key.as_bytes(), device.device_id);
            s.retired.insert(continuity.old_user_key, e.op.id);
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

    // Users: the maximal role-setting and removing operations decide (MEM-17
    // step 3). A standing `ROTATE_USER` removes its old user and sets its new
    // user's role to what the old user's would be without it (MEM-32).
    let mut per_user: BTreeMap<UserKey, Vec<&Entry>> = BTreeMap::new();
    for e in &standing {
        match &e.op.body {
            OpBody::ChangeRole { user, .. } | OpBody::RemoveMember { user, .. } => {
                per_user.entry(*user).or_default().push(e);
            }
            OpBody::RotateUser { continuity, .. } => {
                per_user.entry(continuity.old_user_key).or_default().push(e);
                per_user.entry(continuity.new_user_key).or_default().push(e);
            }
            _ => {
                if let Some(g) = facts.grant(e) {
                    per_user.entry(g.user).or_default().push(e);
                }
            }
        }
    }
    // What each standing rotation hands its new user: the old user's outcome
    // without the rotation, in position order (a rotation's old user was made
    // a member by operations before it).
    let mut inherited: BTreeMap<OpId, Outcome> = BTreeMap::new();
    for e in &standing {
        if let OpBody::RotateUser { continuity, .. } = &e.op.body {
            let o = user_outcome(
                &continuity.old_user_key,
                &per_user,
                Some(&e.op.id),
                facts,
                &inherited,
            );
            inherited.insert(e.op.id, o);
        }
    }
    for u in per_user.keys() {
        match user_outcome(u, &per_user, None, facts, &inherited) {
            Outcome::Removed(r) => {
                s.removed.insert(*u, r);
            }
            Outcome::Member(m) => {
                s.members.insert(*u, m);
            }
            Outcome::Nothing => {}
        }
    }

    // Settlement (MEM-15): every admin of the addition's causal past that is
    // still an admin has acknowledged it (authored it, or some operation with
    // it in its causal past). Monotone: acknowledgements only accumulate.
    let admins: BTreeSet<UserKey> = s
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
            j.admins
                .iter()
                .filter(|a| *a != *u && admins.contains(*a))
                .all(|a| {
                    j.user == *a
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

    // Invites and redemptions.
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
            let closed = standing.iter().any(|z| facts.closes(z, e, invite_key));
            s.invites.entry(*invite_key).or_insert(Invite {
                created_by: e.op.id,
                creator: e.user,
                creator_device: e.op.author,
                role: *role,
                scope: scope.clone(),
                single_use: *single_use,
                invite_secret: *invite_secret,
                expires_at_ms: *expires_at_ms,
                revoked: false,
                closed,
                redeemed_by: Vec::new(),
                admitted: Vec::new(),
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
            OpBody::RedeemInvite {
                invite_key,
                user,
                role,
                devices,
                ..
            } => {
                if let Some(i) = s.invites.get_mut(invite_key) {
                    i.redeemed_by.push(e.op.id);
                }
                s.redemptions.insert(
                    e.op.id,
                    Redemption {
                        invite_key: *invite_key,
                        user: *user,
                        role: *role,
                        devices: devices.iter().map(|d| d.device_id).collect(),
                        admitted_by: Vec::new(),
                    },
                );
            }
            _ => {}
        }
    }
    for e in &standing {
        if let OpBody::Admit { redemption } = &e.op.body
            && let Some(r) = s.redemptions.get_mut(redemption)
        {
            r.admitted_by.push(e.op.id);
            if let Some(i) = s.invites.get_mut(&r.invite_key)
                && !i.admitted.contains(redemption)
            {
                i.admitted.push(*redemption);
            }
        }
    }
    s.void = void;
    s
}

/// The statement an invitee signs with the invite key (MEM-21).
pub(crate) fn redeem_statement(
    space_id: &[u8; 32],
    user: &UserKey,
    device_ids: &[[u8; 32]],
) -> Vec<u8> {
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

/// An invite that can still admit someone (MEM-21, MEM-22, MEM-25): recorded,
/// not closed (revoked, or its creator removed, demoted or the creating device
/// revoked), its creator an admin whose creating device is active, and, if
/// single-use, no redemption of it admitted yet.
fn open_invite<'s>(s: &'s State, invite_key: &[u8; 32]) -> Result<&'s Invite, Error> {
    let inv = s
        .invites
        .get(invite_key)
        .ok_or(invalid("no such invite in the causal past"))?;
    if inv.revoked {
        return Err(invalid("invite revoked"));
    }
    let creator_admin = s
        .members
        .get(&inv.creator)
        .is_some_and(|m| m.role == Role::Admin);
    let creator_device = s
        .device_ids
        .get(&inv.creator_device)
        .and_then(|id| s.active_device(id))
        .is_some();
    if inv.closed || !creator_admin || !creator_device {
        return Err(invalid(
            "the invite's creator is no longer an admin (or its device is revoked)",
        ));
    }
    if inv.single_use && !inv.admitted.is_empty() {
        return Err(invalid("single-use invite already used"));
    }
    Ok(inv)
}

/// MEM-32: a user key a standing rotation retired is never added again.
fn retired(s: &State, user: &UserKey) -> Result<(), Error> {
    if s.retired.contains_key(user) {
        return Err(Error::RemovedMember {
            what: "user key retired by a rotation",
        });
    }
    Ok(())
}

/// Every cut entry names a device the operation removes or revokes (MEM-18).
fn check_cuts(cuts: &[super::ops::Cut], removed: &[[u8; 32]]) -> Result<(), Error> {
    if cuts.iter().any(|c| !removed.contains(&c.device_id)) {
        return Err(invalid(
            "a cut names a device the operation does not remove or revoke",
        ));
    }
    Ok(())
}

fn check_rotation(
    s: &State,
    space_id: &[u8; 32],
    r: &Rotation,
    excluded: &[[u8; 32]],
    extra: Option<[u8; 32]>,
    new_key: Option<&EpochKey>,
) -> Result<(), Error> {
    if r.prev_epochs != s.frontier {
        return Err(invalid("rotation does not supersede exactly the frontier"));
    }
    let mut expected: Vec<[u8; 32]> = s
        .expected_recipients(excluded)
        .iter()
        .map(|r| r.device_id)
        .collect();
    expected.extend(extra);
    expected.sort_unstable();
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
pub(crate) fn authorize(
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
        let inv = open_invite(s, invite_key)?;
        retired(s, user)?;
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
            retired(s, target)?;
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
            cuts,
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
            check_cuts(cuts, &excluded)?;
            check_rotation(s, space_id, rotation, &excluded, None, new_key)?;
        }
        OpBody::AddDevice { device } => {
            // MEM-11: a device of the same user, or an admin for a current member
            // (a user who lost every device, REC-8): the certificate carries the
            // user key's signature either way.
            if device.user_key.as_bytes() != &user {
                retired(s, device.user_key.as_bytes())?;
                if !s.members.contains_key(device.user_key.as_bytes()) {
                    return Err(invalid("a device of a user who is not a member"));
                }
                admin()?;
            }
            if s.devices.contains_key(&device.device_id) {
                return Err(invalid("device already added"));
            }
        }
        OpBody::RevokeDevice {
            device_id,
            rotation,
            cuts,
        } => {
            check_cuts(cuts, core::slice::from_ref(device_id))?;
            let target = s.devices.get(device_id).ok_or(invalid("no such device"))?;
            if target.revoked_by.is_some() {
                return Err(invalid("device already revoked"));
            }
            if target.user != user {
                admin()?;
            }
            let _ = author_id;
            check_rotation(s, space_id, rotation, &[*device_id], None, new_key)?;
        }
        OpBody::RotateKeys { rotation } => {
            admin()?;
            check_rotation(s, space_id, rotation, &[], None, new_key)?;
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
        OpBody::Admit { redemption } => {
            admin()?;
            let r = s.redemptions.get(redemption).ok_or(invalid(
                "no standing redemption of that id in the causal past",
            ))?;
            if !r.admitted_by.is_empty() {
                return Err(invalid("redemption already admitted"));
            }
            open_invite(s, &r.invite_key)?;
            retired(s, &r.user)?;
            if s.members.contains_key(&r.user) {
                return Err(invalid("user is already a member"));
            }
            if r.devices.iter().any(|d| s.devices.contains_key(d)) {
                return Err(invalid("device already added"));
            }
            let mut deps = deps;
            deps.push(*redemption);
            return Ok((deps, user));
        }
        OpBody::RotateUser {
            continuity,
            device,
            rotation,
            cuts,
            ..
        } => {
            // MEM-32: the author's own user key, the author's own device keys.
            if continuity.old_user_key != user {
                return Err(Error::WrongContext {
                    what: "continuity statement of another user key",
                });
            }
            if device.device_key.as_bytes() != &op.author || device.device_x25519 != dev.x25519 {
                return Err(Error::WrongContext {
                    what: "certificate of another device than the author",
                });
            }
            let new = &continuity.new_user_key;
            if s.members.contains_key(new)
                || s.removed.contains_key(new)
                || s.retired.contains_key(new)
                || s.devices.values().any(|d| &d.user == new)
            {
                return Err(invalid("the new user key is already known in the space"));
            }
            if s.devices.contains_key(&device.device_id) {
                return Err(invalid("device already added"));
            }
            let excluded: Vec<[u8; 32]> = s
                .devices
                .iter()
                .filter(|(_, d)| d.user == user)
                .map(|(id, _)| *id)
                .collect();
            check_cuts(cuts, &excluded)?;
            let extra = member.settled.then_some(device.device_id);
            check_rotation(s, space_id, rotation, &excluded, extra, new_key)?;
        }
        OpBody::Ack => {}
        OpBody::CreateSpace { .. } | OpBody::RedeemInvite { .. } => {}
    }
    Ok((deps, user))
}
