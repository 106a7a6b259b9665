//! Forged membership operations (test-only, `test-utils` feature): the one copy
//! of each forgery the tests, the conformance runner and the vectors share.
//!
//! - [`rival_genesis`]: a device key certified by the creator's user key signs a
//!   second `CREATE_SPACE` of the same space (MEM-6, MEM-17, MEM-26, MEM-27).
//! - [`crafted_add_device`]: a member adds a device of its own with crafted
//!   predecessors, the lowest depth it can have (MEM-30, MEM-31).
//! - [`rotate_user_unchecked`]: a member's device publishes a `ROTATE_USER`
//!   with any continuity statement and certificate, well formed otherwise
//!   (MEM-32, §5.7): forged or foreign statements.
//!
//! Each helper draws from the caller's RNG in a fixed order (the vectors depend
//! on it): changing that order changes the generated vectors' bytes.

use alloc::vec;
use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;

use crate::envelope::{self, EnvelopeId, SealRequest};
use crate::error::Error;
use crate::identity::DeviceKeys;
use crate::keys::{EpochKey, SigningKey};
use crate::membership::SpaceReplica;
use crate::membership::epoch::{self, Recipient};
use crate::membership::ops::{self, BodyBuilder, Rotation};
use crate::membership::space::{Identity, membership_doc_id};

/// How many seals [`rival_genesis`] tries for an envelope id below the real
/// genesis before giving up (each try has even odds).
pub const RIVAL_TRIES: usize = 256;

/// Why a forgery could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForgeError {
    /// The core refused a step (key generation, certificate, seal).
    #[error(transparent)]
    Core(#[from] Error),
    /// No rival envelope id fell below the real genesis in [`RIVAL_TRIES`] seals.
    #[error("no rival envelope id below the genesis in {RIVAL_TRIES} tries")]
    NoLowerId,
    /// The member's own device is not in its replica's state.
    #[error("the member's device was never added")]
    NotAdded,
    /// The member's replica holds no current epoch to seal under.
    #[error("the member's replica holds no epoch")]
    NoEpoch,
}

/// A forging device: its signing key and the certificate the creator's user
/// key issued for it (what a welcome it signs carries, KEY-20).
pub struct ForgedDevice {
    /// The device's signing key.
    pub signing: SigningKey,
    /// Its certificate, signed by the creator's user key.
    pub certificate: Vec<u8>,
}

/// A rival genesis and what its forger holds.
pub struct RivalGenesis {
    /// The sealed rival `CREATE_SPACE` envelope.
    pub envelope: Vec<u8>,
    /// Its envelope id.
    pub id: EnvelopeId,
    /// The rival's first epoch (the one its rotation creates).
    pub epoch: EpochKey,
    /// The device that signed it.
    pub device: ForgedDevice,
}

/// A rival genesis: a fresh device certified by `creator` (the creator's user
/// key) signs a `CREATE_SPACE` with the creator's user key and the real
/// genesis's `nonce`, so the same `space_id`, whose rotation creates a fresh
/// epoch for that device alone. With `below`, it is re-sealed until its
/// envelope id is below `below` (the real genesis); without, the first seal is
/// kept.
///
/// RNG draws, in order: the device keys, the epoch secret, the key message,
/// then each seal.
pub fn rival_genesis<R: CryptoRng + ?Sized>(
    rng: &mut R,
    creator: &SigningKey,
    space_id: [u8; 32],
    nonce: [u8; 32],
    below: Option<&EnvelopeId>,
) -> Result<RivalGenesis, ForgeError> {
    let me = Identity::new(creator, DeviceKeys::generate(rng))?;
    let to = Recipient {
        device_id: me.device_id(),
        x25519: me.verified.device_x25519,
    };
    let e = epoch::new_epoch(rng, &space_id)?;
    let (_, key_message) = epoch::key_message(rng, &space_id, &e, &[to])?;
    let body = BodyBuilder(pb::MembershipOp {
        user_key: creator.public_bytes().to_vec(),
        certificates: vec![me.certificate.clone()],
        nonce: nonce.to_vec(),
        ..Default::default()
    })
    .rotation(&Rotation {
        epoch_id: *e.id(),
        prev_epochs: vec![],
        chain_links: vec![],
        recipients: vec![me.device_id()],
        key_message,
    })
    .encode();
    let device = ForgedDevice {
        signing: SigningKey::from_seed(&me.device.signing.seed()),
        certificate: me.certificate.clone(),
    };
    let m = SpaceReplica::new(space_id, me)?;
    for _ in 0..RIVAL_TRIES {
        let bytes = m.seal_unchecked(rng, ops::CT_CREATE_SPACE, &body, &e)?;
        let id = envelope::decode(&bytes)?.id;
        if below.is_none_or(|real| id < *real) {
            return Ok(RivalGenesis {
                envelope: bytes,
                id,
                epoch: e,
                device,
            });
        }
    }
    Err(ForgeError::NoLowerId)
}

/// The member whose replica is `replica` adds a device of its own user (the
/// device `certificate` names) with crafted predecessors: only the operation
/// that added the member, or, when the member has authored operations, just its
/// chain link to the last one. A valid, honest-looking `ADD_DEVICE` whose depth
/// is as low as it can be, so it sorts before every later addition (MEM-30).
/// Sealed under the replica's current epoch; one seal's RNG draws.
pub fn crafted_add_device<R: CryptoRng + ?Sized>(
    rng: &mut R,
    replica: &SpaceReplica,
    certificate: &[u8],
) -> Result<Vec<u8>, ForgeError> {
    let me = replica.identity().device.signing.public_bytes();
    let added_by = replica
        .state()
        .devices
        .values()
        .find(|d| d.device_key == me)
        .map(|d| d.added_by)
        .ok_or(ForgeError::NotAdded)?;
    let (seq, prev) = replica
        .decided()
        .into_iter()
        .filter_map(|(id, _)| replica.op(&id).map(|o| (o.author, o.seq, id)))
        .filter(|(a, _, _)| *a == me)
        .map(|(_, s, id)| (s, Some(id)))
        .max()
        .unwrap_or((0, None));
    let body = BodyBuilder(pb::MembershipOp {
        certificates: vec![certificate.to_vec()],
        ..Default::default()
    })
    .encode();
    let key = replica.current_epoch().ok_or(ForgeError::NoEpoch)?;
    let space_id = *replica.space_id();
    Ok(envelope::seal(
        &replica.identity().device.signing,
        &key,
        &SealRequest {
            space_id,
            doc_id: membership_doc_id(&space_id)?,
            seq: seq + 1,
            prev,
            preds: if prev.is_some() {
                vec![]
            } else {
                vec![added_by]
            },
            content_type: ops::CT_ADD_DEVICE,
            body: &body,
        },
        rng,
    )?
    .bytes)
}

/// A `ROTATE_USER` sealed without checks, and the key message of its epoch.
pub struct UncheckedRotation {
    /// The sealed operation envelope.
    pub envelope: Vec<u8>,
    /// The key message (sealed to the recipients a valid rotation would have).
    pub key_message: Vec<u8>,
    /// The epoch it creates.
    pub epoch: EpochKey,
}

/// The device of `replica` publishes a `ROTATE_USER` carrying `statement` (any
/// bytes: a forged or foreign continuity) and `certificate`, with a rotation
/// that is valid for the replica's state (the frontier, chain links, the
/// recipients of a rotation excluding the user's devices), sealed under the
/// epoch it creates, next in the device's chain, on the current heads. Nothing
/// is checked or integrated.
///
/// RNG draws, in order: the epoch secret, the key message, the seal.
pub fn rotate_user_unchecked<R: CryptoRng + ?Sized>(
    rng: &mut R,
    replica: &SpaceReplica,
    statement: &[u8],
    certificate: &[u8],
) -> Result<UncheckedRotation, ForgeError> {
    let space_id = *replica.space_id();
    let state = replica.state();
    let me = replica.identity();
    let excluded: Vec<[u8; 32]> = state
        .devices
        .iter()
        .filter(|(_, d)| d.user == me.user)
        .map(|(id, _)| *id)
        .collect();
    let new = epoch::new_epoch(rng, &space_id)?;
    let prev_epochs = state.frontier.clone();
    let keys = replica.keys();
    let mut chain_links = Vec::with_capacity(prev_epochs.len());
    for p in &prev_epochs {
        let pk = keys.get(p).ok_or(ForgeError::NoEpoch)?;
        chain_links.push(epoch::chain_link(&space_id, &new, pk)?);
    }
    let mut to: Vec<Recipient> = state.expected_recipients(&excluded);
    let settled = state.members.get(&me.user).is_some_and(|m| m.settled);
    if settled && let Ok(d) = crate::identity::verify_certificate(certificate, None) {
        to.push(Recipient {
            device_id: d.device_id,
            x25519: d.device_x25519,
        });
        to.sort_by_key(|r| r.device_id);
    }
    let (key_message, km_id) = epoch::key_message(rng, &space_id, &new, &to)?;
    let rot = Rotation {
        epoch_id: *new.id(),
        prev_epochs,
        chain_links,
        recipients: to.iter().map(|r| r.device_id).collect(),
        key_message: km_id,
    };
    let body = BodyBuilder(pb::MembershipOp {
        continuity: statement.to_vec(),
        certificates: vec![certificate.to_vec()],
        ..Default::default()
    })
    .rotation(&rot)
    .encode();
    let author = me.device.signing.public_bytes();
    let (seq, prev) = replica
        .decided()
        .into_iter()
        .filter_map(|(id, _)| replica.op(&id).map(|o| (o.author, o.seq, id)))
        .filter(|(a, _, _)| *a == author)
        .map(|(_, s, id)| (s, Some(id)))
        .max()
        .unwrap_or((0, None));
    let envelope = envelope::seal(
        &me.device.signing,
        &new,
        &SealRequest {
            space_id,
            doc_id: membership_doc_id(&space_id)?,
            seq: seq + 1,
            prev,
            preds: replica.heads(),
            content_type: ops::CT_ROTATE_USER,
            body: &body,
        },
        rng,
    )?
    .bytes;
    Ok(UncheckedRotation {
        envelope,
        key_message,
        epoch: new,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(24)
    }

    #[test]
    fn rival_genesis_lands_below_the_bound_and_is_signed_by_the_forged_device() {
        let creator = SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let below = [0x40; 32];
        let r = rival_genesis(&mut rng(), &creator, [7; 32], [9; 32], Some(&below)).unwrap();
        let d = envelope::decode(&r.envelope).unwrap();
        assert_eq!(d.id, r.id);
        assert!(r.id < below);
        assert_eq!(d.header.seq, 1);
        assert_eq!(d.header.prev, None);
        assert!(d.header.preds.is_empty());
        assert_eq!(d.header.doc_id, membership_doc_id(&[7; 32]).unwrap());
        assert_eq!(d.header.epoch_id, *r.epoch.id());
        assert_eq!(d.header.author, r.device.signing.public_bytes());
        let v = crate::identity::verify_certificate(
            &r.device.certificate,
            Some(&creator.public_bytes()),
        )
        .unwrap();
        assert_eq!(*v.device_key.as_bytes(), r.device.signing.public_bytes());
    }

    #[test]
    fn rival_genesis_is_deterministic_in_the_rng() {
        let creator = SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let a = rival_genesis(&mut rng(), &creator, [7; 32], [9; 32], None).unwrap();
        let b = rival_genesis(&mut rng(), &creator, [7; 32], [9; 32], None).unwrap();
        assert_eq!(a.envelope, b.envelope);
    }

    #[test]
    fn no_id_below_zero_is_a_typed_error() {
        let creator = SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let r = rival_genesis(&mut rng(), &creator, [7; 32], [9; 32], Some(&[0; 32]));
        assert_eq!(r.err(), Some(ForgeError::NoLowerId));
    }

    #[test]
    fn crafted_add_device_continues_the_creator_chain() {
        let mut rng = rng();
        let user = SigningKey::generate(&mut rng);
        let me = Identity::new(&user, DeviceKeys::generate(&mut rng)).unwrap();
        let author = me.device.signing.public_bytes();
        let sp = SpaceReplica::create(&mut rng, me).unwrap();
        let genesis = sp.genesis().unwrap();
        let cert =
            crate::identity::issue_certificate(&user, &DeviceKeys::generate(&mut rng)).unwrap();
        let bytes = crafted_add_device(&mut rng, &sp, &cert).unwrap();
        let d = envelope::decode(&bytes).unwrap();
        assert_eq!(d.header.author, author);
        assert_eq!(d.header.seq, 2);
        assert_eq!(d.header.prev, Some(genesis));
        assert!(d.header.preds.is_empty());
    }

    #[test]
    fn crafted_add_device_by_a_stranger_is_a_typed_error() {
        let mut rng = rng();
        let user = SigningKey::generate(&mut rng);
        let me = Identity::new(&user, DeviceKeys::generate(&mut rng)).unwrap();
        let sp = SpaceReplica::new([7; 32], me).unwrap();
        let cert =
            crate::identity::issue_certificate(&user, &DeviceKeys::generate(&mut rng)).unwrap();
        let r = crafted_add_device(&mut rng, &sp, &cert);
        assert_eq!(r.err(), Some(ForgeError::NotAdded));
    }
}
