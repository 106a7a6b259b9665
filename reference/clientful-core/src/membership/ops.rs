//! Membership operations (spec §11.3): content types, the typed body of each
//! operation, and its decoding from `MembershipOp` bytes with the shape rules
//! MEM-4 and MEM-5.

use alloc::vec::Vec;

use clientful_proto::v1 as pb;

use crate::content::ContentType;
use crate::continuity::{self, Continuity};
use crate::envelope::{EnvelopeId, OpenedEnvelope};
use crate::error::Error;
use crate::identity::{self, VerifiedDevice};
use crate::keys::PublicKey;
use crate::wire;

/// `CREATE_SPACE` (MEM-6).
pub const CT_CREATE_SPACE: u32 = ContentType::CreateSpace.value();
/// `ADD_MEMBER` (MEM-8).
pub const CT_ADD_MEMBER: u32 = ContentType::AddMember.value();
/// `CHANGE_ROLE` (MEM-9).
pub const CT_CHANGE_ROLE: u32 = ContentType::ChangeRole.value();
/// `REMOVE_MEMBER` (MEM-10).
pub const CT_REMOVE_MEMBER: u32 = ContentType::RemoveMember.value();
/// `ADD_DEVICE` (MEM-11).
pub const CT_ADD_DEVICE: u32 = ContentType::AddDevice.value();
/// `REVOKE_DEVICE` (MEM-12).
pub const CT_REVOKE_DEVICE: u32 = ContentType::RevokeDevice.value();
/// `ROTATE_KEYS` (MEM-13).
pub const CT_ROTATE_KEYS: u32 = ContentType::RotateKeys.value();
/// `CREATE_INVITE` (MEM-19).
pub const CT_CREATE_INVITE: u32 = ContentType::CreateInvite.value();
/// `REVOKE_INVITE` (MEM-19).
pub const CT_REVOKE_INVITE: u32 = ContentType::RevokeInvite.value();
/// `REDEEM_INVITE` (MEM-21).
pub const CT_REDEEM_INVITE: u32 = ContentType::RedeemInvite.value();
/// `ACK` (MEM-14).
pub const CT_ACK: u32 = ContentType::Ack.value();
/// `ADMIT` (MEM-25): an admin admits a redemption.
pub const CT_ADMIT: u32 = ContentType::Admit.value();
/// `ROTATE_USER` (MEM-32): the author's user key is followed by a new one.
pub const CT_ROTATE_USER: u32 = ContentType::RotateUser.value();

/// Most devices listed by one operation (MEM-LIM-1).
pub const MAX_OP_DEVICES: usize = 16;
/// Most scope entries (MEM-LIM-2).
pub const MAX_SCOPE: usize = 64;
/// Most epochs one rotation supersedes (MEM-LIM-3).
pub const MAX_PREV_EPOCHS: usize = 16;
/// Most removal-cut entries in one operation (MEM-LIM-6).
pub const MAX_CUTS: usize = 1024;
/// Bytes of one encoded removal-cut entry: device id, document id, `u64be` seq.
pub const CUT_LEN: usize = 72;

/// One entry of a removal cut (MEM-18): the highest `seq` of device
/// `device_id`'s chain in document `doc_id` that the remover had integrated.
/// Writes of a removed or revoked device beyond its cut are `REMOVED_MEMBER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cut {
    /// The removed or revoked device.
    pub device_id: [u8; 32],
    /// The document.
    pub doc_id: [u8; 32],
    /// The last accepted sequence number (0: none).
    pub seq: u64,
}

impl Cut {
    /// The 72-byte wire form: `device_id || doc_id || u64be(seq)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(CUT_LEN);
        v.extend_from_slice(&self.device_id);
        v.extend_from_slice(&self.doc_id);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v
    }

    fn decode(bytes: &[u8]) -> Result<Cut, Error> {
        let bad = || Error::malformed("MembershipOp.cuts", "an entry is not 72 bytes");
        if bytes.len() != CUT_LEN {
            return Err(bad());
        }
        let seq: [u8; 8] = bytes
            .get(64..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Cut {
            device_id: id32(bytes.get(..32).ok_or_else(bad)?, "MembershipOp.cuts")?,
            doc_id: id32(bytes.get(32..64).ok_or_else(bad)?, "MembershipOp.cuts")?,
            seq: u64::from_be_bytes(seq),
        })
    }
}

/// A member's role (MEM-7). Ordered by privilege.
/// Exhaustive on purpose: the roles of spec v1 (§11) are a closed list, written into invite codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads.
    Reader = 1,
    /// Reads and writes documents in scope.
    Writer = 2,
    /// Writes and manages members, invites and keys.
    Admin = 3,
}

impl Role {
    /// The role with wire value `v`.
    pub fn from_u32(v: u32) -> Option<Role> {
        match v {
            1 => Some(Role::Reader),
            2 => Some(Role::Writer),
            3 => Some(Role::Admin),
            _ => None,
        }
    }

    /// The wire value.
    pub(crate) fn as_u32(self) -> u32 {
        self as u32
    }
}

/// Where a role applies (MEM-7): the whole space (empty), or the listed
/// document and folder ids, strictly ascending.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Scope(pub Vec<[u8; 32]>);

impl Scope {
    /// The whole space.
    pub fn whole() -> Scope {
        Scope(Vec::new())
    }

    /// Whether this is the whole space.
    pub(crate) fn is_whole(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the scope covers document `doc_id`, whose enclosing folders are
    /// `folders` (supplied by the application).
    pub fn covers(&self, doc_id: &[u8; 32], folders: &[[u8; 32]]) -> bool {
        self.is_whole() || self.0.contains(doc_id) || folders.iter().any(|f| self.0.contains(f))
    }
}

/// The key-rotation part of an operation (KEY-1..KEY-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new epoch id.
    pub epoch_id: [u8; 32],
    /// The epochs it supersedes, ascending.
    pub prev_epochs: Vec<[u8; 32]>,
    /// One chain link per previous epoch.
    pub chain_links: Vec<Vec<u8>>,
    /// Recipient device ids, ascending.
    pub recipients: Vec<[u8; 32]>,
    /// Id of the `KeyMessage` carrying the sealed secrets.
    pub key_message: [u8; 32],
}

/// The typed body of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // a few hundred bytes, a few hundred operations
#[non_exhaustive]
pub enum OpBody {
    /// Creates the space; the creator is its first admin.
    CreateSpace {
        /// Creator's user key.
        user: [u8; 32],
        /// Nonce of the space id.
        nonce: [u8; 32],
        /// Creator's devices.
        devices: Vec<VerifiedDevice>,
        /// The first epoch.
        rotation: Rotation,
    },
    /// Adds a user.
    AddMember {
        /// The user.
        user: [u8; 32],
        /// Role.
        role: Role,
        /// Scope.
        scope: Scope,
        /// The user's devices.
        devices: Vec<VerifiedDevice>,
    },
    /// Changes a member's role or scope.
    ChangeRole {
        /// The member.
        user: [u8; 32],
        /// New role.
        role: Role,
        /// New scope.
        scope: Scope,
    },
    /// Removes a member (or the author leaves) and rotates.
    RemoveMember {
        /// The member.
        user: [u8; 32],
        /// The new epoch.
        rotation: Rotation,
        /// Where the removed devices' document writes end (MEM-18).
        cuts: Vec<Cut>,
    },
    /// Adds a device to the author's own user.
    AddDevice {
        /// The device.
        device: VerifiedDevice,
    },
    /// Revokes a device and rotates.
    RevokeDevice {
        /// Device id.
        device_id: [u8; 32],
        /// The new epoch.
        rotation: Rotation,
        /// Where the revoked device's document writes end (MEM-18).
        cuts: Vec<Cut>,
    },
    /// Rotates on demand, or to merge concurrent epochs.
    RotateKeys {
        /// The new epoch.
        rotation: Rotation,
    },
    /// Creates an invite.
    CreateInvite {
        /// Invite public key.
        invite_key: [u8; 32],
        /// Role granted.
        role: Role,
        /// Scope granted.
        scope: Scope,
        /// Single use.
        single_use: bool,
        /// Invite epoch secret (KEY-9).
        invite_secret: [u8; 32],
        /// Advisory expiry (Unix ms, 0: none). Never part of a verdict.
        expires_at_ms: u64,
    },
    /// Revokes an invite.
    RevokeInvite {
        /// Invite public key.
        invite_key: [u8; 32],
    },
    /// Redeems an invite: asks that the author's user be admitted (MEM-21).
    RedeemInvite {
        /// Invite public key.
        invite_key: [u8; 32],
        /// The redeeming user.
        user: [u8; 32],
        /// Requested role (at most the invite's).
        role: Role,
        /// The user's devices (the author among them).
        devices: Vec<VerifiedDevice>,
        /// Proof of possession of the invite key.
        proof: [u8; 64],
    },
    /// Acknowledges the causal past (MEM-14).
    Ack,
    /// Admits a redemption (MEM-25): the redeeming user joins.
    Admit {
        /// The id of the `REDEEM_INVITE` admitted.
        redemption: EnvelopeId,
    },
    /// The author's user key is followed by a new one (MEM-32): the old user
    /// leaves, the new one takes its role, the author device continues under
    /// its new certificate, the old user's other devices are excluded, and
    /// the keys rotate.
    RotateUser {
        /// The verified continuity statement (§5.7).
        continuity: Continuity,
        /// Its exact `SignedContinuity` bytes.
        statement: Vec<u8>,
        /// The author device's certificate under the new key.
        device: VerifiedDevice,
        /// Its exact bytes.
        certificate: Vec<u8>,
        /// The new epoch.
        rotation: Rotation,
        /// Where the excluded devices' document writes end (MEM-18).
        cuts: Vec<Cut>,
    },
}

impl OpBody {
    /// The rotation this operation performs, if any.
    pub fn rotation(&self) -> Option<&Rotation> {
        match self {
            OpBody::CreateSpace { rotation, .. }
            | OpBody::RemoveMember { rotation, .. }
            | OpBody::RevokeDevice { rotation, .. }
            | OpBody::RotateKeys { rotation }
            | OpBody::RotateUser { rotation, .. } => Some(rotation),
            _ => None,
        }
    }

    /// The removal cut of a `REMOVE_MEMBER` or `REVOKE_DEVICE` (MEM-18).
    pub fn cuts(&self) -> &[Cut] {
        match self {
            OpBody::RemoveMember { cuts, .. }
            | OpBody::RevokeDevice { cuts, .. }
            | OpBody::RotateUser { cuts, .. } => cuts,
            _ => &[],
        }
    }

    /// The devices this operation lists, if any. A redemption's devices are
    /// added only when it is admitted (MEM-25).
    pub fn devices(&self) -> &[VerifiedDevice] {
        match self {
            OpBody::CreateSpace { devices, .. }
            | OpBody::AddMember { devices, .. }
            | OpBody::RedeemInvite { devices, .. } => devices,
            OpBody::AddDevice { device } | OpBody::RotateUser { device, .. } => {
                core::slice::from_ref(device)
            }
            _ => &[],
        }
    }
}

/// An opened membership operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Author device key.
    pub author: [u8; 32],
    /// Author's sequence number in the membership log.
    pub seq: u64,
    /// Author's previous operation.
    pub prev: Option<EnvelopeId>,
    /// Causal predecessors.
    pub preds: Vec<EnvelopeId>,
    /// The epoch the envelope is sealed under.
    pub epoch_id: [u8; 32],
    /// Content type.
    pub content_type: u32,
    /// Typed body.
    pub body: OpBody,
}

impl Op {
    /// The operation's DAG edges: `preds ∪ {prev}`.
    pub fn deps(&self) -> impl Iterator<Item = &EnvelopeId> {
        self.preds.iter().chain(self.prev.iter())
    }

    /// Builds an operation from an opened envelope (MEM-3..MEM-5).
    pub(crate) fn from_envelope(env: &OpenedEnvelope) -> Result<Op, Error> {
        let body = decode_body(env.content_type, &env.body)?;
        Ok(Op {
            id: env.id,
            author: env.header.author,
            seq: env.header.seq,
            prev: env.header.prev,
            preds: env.header.preds.clone(),
            epoch_id: env.header.epoch_id,
            content_type: env.content_type,
            body,
        })
    }
}

fn id32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], Error> {
    bytes
        .try_into()
        .map_err(|_| Error::malformed(what, "length is not 32"))
}

fn ascending_ids(list: &[Vec<u8>], max: usize, what: &'static str) -> Result<Vec<[u8; 32]>, Error> {
    if list.len() > max {
        return Err(Error::LimitExceeded {
            what,
            max: max as u64,
            actual: list.len() as u64,
        });
    }
    let mut out = Vec::with_capacity(list.len());
    for e in list {
        out.push(id32(e, what)?);
    }
    if out.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
        return Err(Error::non_canonical(what, "not strictly ascending"));
    }
    Ok(out)
}

fn role(v: u32) -> Result<Role, Error> {
    Role::from_u32(v).ok_or(Error::malformed("MembershipOp.role", "not 1, 2 or 3"))
}

fn devices(m: &pb::MembershipOp, user: &[u8; 32]) -> Result<Vec<VerifiedDevice>, Error> {
    if m.certificates.is_empty() {
        return Err(Error::malformed("MembershipOp.certificates", "empty"));
    }
    if m.certificates.len() > MAX_OP_DEVICES {
        return Err(Error::LimitExceeded {
            what: "devices in one operation",
            max: MAX_OP_DEVICES as u64,
            actual: m.certificates.len() as u64,
        });
    }
    let mut out: Vec<VerifiedDevice> = Vec::with_capacity(m.certificates.len());
    for c in &m.certificates {
        out.push(identity::verify_certificate(c, Some(user))?);
    }
    if out
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.device_id >= b.device_id))
    {
        return Err(Error::non_canonical(
            "MembershipOp.certificates",
            "not strictly ascending by device id",
        ));
    }
    Ok(out)
}

fn rotation(m: &pb::MembershipOp) -> Result<Rotation, Error> {
    let epoch_id = id32(&m.epoch_id, "MembershipOp.epoch_id")?;
    let prev_epochs = ascending_ids(&m.prev_epochs, MAX_PREV_EPOCHS, "MembershipOp.prev_epochs")?;
    if m.chain_links.len() != prev_epochs.len() {
        return Err(Error::malformed(
            "MembershipOp.chain_links",
            "not one per previous epoch",
        ));
    }
    if m.chain_links.iter().any(|l| l.len() != 48) {
        return Err(Error::malformed(
            "MembershipOp.chain_links",
            "a link is not 48 bytes",
        ));
    }
    let recipients = ascending_ids(
        &m.recipients,
        super::epoch::MAX_RECIPIENTS,
        "MembershipOp.recipients",
    )?;
    let key_message = id32(&m.key_message, "MembershipOp.key_message")?;
    Ok(Rotation {
        epoch_id,
        prev_epochs,
        chain_links: m.chain_links.clone(),
        recipients,
        key_message,
    })
}

fn cuts(m: &pb::MembershipOp) -> Result<Vec<Cut>, Error> {
    if m.cuts.len() > MAX_CUTS {
        return Err(Error::LimitExceeded {
            what: "removal-cut entries",
            max: MAX_CUTS as u64,
            actual: m.cuts.len() as u64,
        });
    }
    if m.cuts.iter().any(|c| c.len() != CUT_LEN) {
        return Err(Error::malformed(
            "MembershipOp.cuts",
            "an entry is not 72 bytes",
        ));
    }
    // Strictly ascending by (device, document): one entry per pair.
    if m.cuts
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.get(..64) >= b.get(..64)))
    {
        return Err(Error::non_canonical(
            "MembershipOp.cuts",
            "not strictly ascending by device and document",
        ));
    }
    m.cuts.iter().map(|c| Cut::decode(c)).collect()
}

/// Which fields an operation kind uses (MEM-4): bit i set = field i+1 used.
fn used_fields(content_type: u32) -> Option<u32> {
    const USER: u32 = 1 << 0;
    const ROLE: u32 = 1 << 1;
    const SCOPE: u32 = 1 << 2;
    const CERTS: u32 = 1 << 3;
    const DEVICE: u32 = 1 << 4;
    const INVITE_KEY: u32 = 1 << 5;
    const SINGLE: u32 = 1 << 6;
    const INVITE_SECRET: u32 = 1 << 7;
    const PROOF: u32 = 1 << 8;
    const EXPIRES: u32 = 1 << 9;
    const NONCE: u32 = 1 << 10;
    const ROT: u32 = (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15);
    const REDEMPTION: u32 = 1 << 16;
    const CUTS: u32 = 1 << 17;
    const CONTINUITY: u32 = 1 << 18;
    Some(match content_type {
        CT_CREATE_SPACE => USER | CERTS | NONCE | ROT,
        CT_ADD_MEMBER => USER | ROLE | SCOPE | CERTS,
        CT_CHANGE_ROLE => USER | ROLE | SCOPE,
        CT_REMOVE_MEMBER => USER | ROT | CUTS,
        CT_ADD_DEVICE => CERTS,
        CT_REVOKE_DEVICE => DEVICE | ROT | CUTS,
        CT_ROTATE_KEYS => ROT,
        CT_CREATE_INVITE => INVITE_KEY | ROLE | SCOPE | SINGLE | INVITE_SECRET | EXPIRES,
        CT_REVOKE_INVITE => INVITE_KEY,
        CT_REDEEM_INVITE => INVITE_KEY | USER | ROLE | CERTS | PROOF,
        CT_ACK => 0,
        CT_ADMIT => REDEMPTION,
        CT_ROTATE_USER => CONTINUITY | CERTS | ROT | CUTS,
        _ => return None,
    })
}

fn present_fields(m: &pb::MembershipOp) -> u32 {
    let flags = [
        !m.user_key.is_empty(),
        m.role != 0,
        !m.scope.is_empty(),
        !m.certificates.is_empty(),
        !m.device_id.is_empty(),
        !m.invite_key.is_empty(),
        m.single_use != 0,
        !m.invite_secret.is_empty(),
        !m.invite_proof.is_empty(),
        m.expires_at_ms != 0,
        !m.nonce.is_empty(),
        !m.epoch_id.is_empty(),
        !m.prev_epochs.is_empty(),
        !m.chain_links.is_empty(),
        !m.recipients.is_empty(),
        !m.key_message.is_empty(),
        !m.redemption.is_empty(),
        !m.cuts.is_empty(),
        !m.continuity.is_empty(),
    ];
    flags
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, f)| if *f { acc | (1 << i) } else { acc })
}

/// Decodes and shape-checks the body of a membership operation (MEM-3..MEM-5).
/// Certificates are verified here (§5.4), with the operation's user as the
/// expected user.
pub(crate) fn decode_body(content_type: u32, body: &[u8]) -> Result<OpBody, Error> {
    let used = used_fields(content_type).ok_or(Error::InvalidOperation {
        reason: "content type is not a membership operation",
    })?;
    let m: pb::MembershipOp = wire::decode(body, &wire::MEMBERSHIP_OP)?;
    if present_fields(&m) & !used != 0 {
        return Err(Error::malformed(
            "MembershipOp",
            "a field this operation does not use is present",
        ));
    }
    let user = || id32(&m.user_key, "MembershipOp.user_key");
    let scope = || ascending_ids(&m.scope, MAX_SCOPE, "MembershipOp.scope").map(Scope);
    let invite_key = || -> Result<[u8; 32], Error> {
        let k = id32(&m.invite_key, "MembershipOp.invite_key")?;
        PublicKey::from_bytes(&k)?;
        Ok(k)
    };
    Ok(match content_type {
        CT_CREATE_SPACE => {
            let user = user()?;
            OpBody::CreateSpace {
                nonce: id32(&m.nonce, "MembershipOp.nonce")?,
                devices: devices(&m, &user)?,
                rotation: rotation(&m)?,
                user,
            }
        }
        CT_ADD_MEMBER => {
            let user = user()?;
            OpBody::AddMember {
                role: role(m.role)?,
                scope: scope()?,
                devices: devices(&m, &user)?,
                user,
            }
        }
        CT_CHANGE_ROLE => OpBody::ChangeRole {
            user: user()?,
            role: role(m.role)?,
            scope: scope()?,
        },
        CT_REMOVE_MEMBER => OpBody::RemoveMember {
            user: user()?,
            rotation: rotation(&m)?,
            cuts: cuts(&m)?,
        },
        CT_ADD_DEVICE => {
            if m.certificates.len() != 1 {
                return Err(Error::malformed(
                    "MembershipOp.certificates",
                    "ADD_DEVICE takes exactly one",
                ));
            }
            let cert = m.certificates.first().map(Vec::as_slice).unwrap_or(&[]);
            OpBody::AddDevice {
                device: identity::verify_certificate(cert, None)?,
            }
        }
        CT_REVOKE_DEVICE => OpBody::RevokeDevice {
            device_id: id32(&m.device_id, "MembershipOp.device_id")?,
            rotation: rotation(&m)?,
            cuts: cuts(&m)?,
        },
        CT_ROTATE_KEYS => OpBody::RotateKeys {
            rotation: rotation(&m)?,
        },
        CT_CREATE_INVITE => OpBody::CreateInvite {
            invite_key: invite_key()?,
            role: role(m.role)?,
            scope: scope()?,
            single_use: match m.single_use {
                0 => false,
                1 => true,
                _ => return Err(Error::malformed("MembershipOp.single_use", "not 0 or 1")),
            },
            invite_secret: id32(&m.invite_secret, "MembershipOp.invite_secret")?,
            expires_at_ms: m.expires_at_ms,
        },
        CT_REVOKE_INVITE => OpBody::RevokeInvite {
            invite_key: invite_key()?,
        },
        CT_REDEEM_INVITE => {
            let user = user()?;
            OpBody::RedeemInvite {
                invite_key: invite_key()?,
                role: role(m.role)?,
                devices: devices(&m, &user)?,
                proof: m.invite_proof.as_slice().try_into().map_err(|_| {
                    Error::malformed("MembershipOp.invite_proof", "length is not 64")
                })?,
                user,
            }
        }
        CT_ADMIT => OpBody::Admit {
            redemption: id32(&m.redemption, "MembershipOp.redemption")?,
        },
        CT_ROTATE_USER => {
            // MEM-32: the statement first (it names the certificate's user),
            // then exactly one certificate under the new key, the rotation, the cut.
            let continuity = continuity::verify_continuity(&m.continuity)?;
            if m.certificates.len() != 1 {
                return Err(Error::malformed(
                    "MembershipOp.certificates",
                    "ROTATE_USER takes exactly one",
                ));
            }
            let cert = m.certificates.first().map(Vec::as_slice).unwrap_or(&[]);
            OpBody::RotateUser {
                device: identity::verify_certificate(cert, Some(&continuity.new_user_key))?,
                certificate: cert.to_vec(),
                continuity,
                statement: m.continuity.clone(),
                rotation: rotation(&m)?,
                cuts: cuts(&m)?,
            }
        }
        _ => OpBody::Ack,
    })
}

/// Encodes a body (the inverse of [`decode_body`]); certificates are given as
/// their exact bytes.
#[derive(Debug, Clone, Default)]
pub struct BodyBuilder(pub pb::MembershipOp);

impl BodyBuilder {
    /// Sets the removal cut (sorted here; entries are unique by device and
    /// document).
    pub fn cuts(mut self, cuts: &[Cut]) -> Self {
        let mut v: Vec<Cut> = cuts.to_vec();
        v.sort_unstable();
        v.dedup_by_key(|c| (c.device_id, c.doc_id));
        self.0.cuts = v.iter().map(Cut::encode).collect();
        self
    }

    /// Sets the rotation fields.
    pub fn rotation(mut self, r: &Rotation) -> Self {
        self.0.epoch_id = r.epoch_id.to_vec();
        self.0.prev_epochs = r.prev_epochs.iter().map(|e| e.to_vec()).collect();
        self.0.chain_links = r.chain_links.clone();
        self.0.recipients = r.recipients.iter().map(|e| e.to_vec()).collect();
        self.0.key_message = r.key_message.to_vec();
        self
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn unused_fields_are_malformed() {
        let body = BodyBuilder(pb::MembershipOp {
            role: 2,
            ..Default::default()
        })
        .encode();
        assert_eq!(
            decode_body(CT_ACK, &body).unwrap_err().class(),
            ErrorClass::Malformed
        );
        assert!(decode_body(CT_ACK, &[]).is_ok());
        assert_eq!(
            decode_body(43, &[]).unwrap_err().class(),
            ErrorClass::InvalidOperation
        );
    }

    #[test]
    fn scope_must_ascend() {
        let body = BodyBuilder(pb::MembershipOp {
            user_key: [1u8; 32].to_vec(),
            role: 1,
            scope: alloc::vec![[2u8; 32].to_vec(), [1u8; 32].to_vec()],
            ..Default::default()
        })
        .encode();
        assert_eq!(
            decode_body(CT_CHANGE_ROLE, &body).unwrap_err().class(),
            ErrorClass::NonCanonical
        );
    }
}
