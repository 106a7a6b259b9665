//! Recovery without a server (spec §5.6, REC-1..REC-8): k-of-n shares of a recovery
//! secret, each sealed to a holder device, and the exchange by which a user who lost
//! every device gets the user key back from any k holders.
//!
//! - [`create_set`] (REC-2..REC-4): draws the recovery secret `R`, seals the user's
//!   secret under it in a [`RecoveryKit`](pb::RecoveryKit), splits `R` with Shamir's
//!   scheme over GF(2^8) ([`shamir`]) and seals share `i` to holder `i`
//!   (info `0x03 || kit_id`). The encoded `RecoverySet` travels as a carrier.
//! - [`decode_set`] and [`DecodedSet::open_share`]: a holder finds and checks its share.
//! - [`RequestSecret::generate`] (REC-5): the recovering device's request.
//! - [`release`] (REC-6): a holder's answer, sealed to the request (info `0x04 || id`).
//! - [`restore`] (REC-7): the recovering device opens k releases, combines, opens the
//!   kit; each failure with the class of the first failing check.
//!
//! Fewer than k shares say nothing about `R` (each byte's polynomial has k − 1 random
//! coefficients: `shamir`'s tests show the held values are uniform whatever the
//! secret), and the kit without `R` is an AEAD ciphertext under a key derived from it.

pub mod kit;
pub mod shamir;

use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use prost::Message;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::backup::BackupContents;
use crate::error::Error;
use crate::keys::{X25519Public, X25519Secret};
use crate::labels::ID_RECOVERY_REQUEST;
use crate::limits::NONCE_LEN;
use crate::membership::seal::{self, SealedKey};
use crate::suite::hash_with_label;
use crate::wire;

pub use kit::{DecodedKit, decode_kit, kit_id};

/// Format version of every recovery message (REC-1).
pub const RECOVERY_VERSION: u32 = 1;
/// The smallest threshold k (REC-1): one share alone never opens a kit.
pub const MIN_THRESHOLD: u32 = 2;
/// The largest number of shares n (REC-LIM-1).
pub const MAX_SHARES: u32 = 16;
/// Largest encoded `RecoveryKit` accepted (REC-LIM-2).
pub const MAX_KIT_BYTES: usize = 1024;
/// Largest encoded `RecoverySet` accepted (REC-LIM-3): a kit and 16 sealed shares fit.
pub const MAX_SET_BYTES: usize = 4096;
/// Largest encoded `RecoveryRequest` accepted (REC-LIM-4).
pub const MAX_REQUEST_BYTES: usize = 128;
/// `info` prefix of a share sealed to a holder (KEY-3).
pub const INFO_SHARE: u8 = 0x03;
/// `info` prefix of a release sealed to a request (KEY-3).
pub const INFO_RELEASE: u8 = 0x04;

fn info(prefix: u8, id: &[u8; 32]) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = prefix;
    out[1..].copy_from_slice(id);
    out
}

/// A holder of one share: its device id and X25519 key (from its certificate).
#[derive(Debug, Clone)]
pub struct Holder {
    /// The holder device's id (ID-5).
    pub device_id: [u8; 32],
    /// The holder device's X25519 key.
    pub x25519: X25519Public,
}

/// The random inputs of [`create_set_with`], given explicitly by test vectors.
pub struct SetRandomness {
    /// The recovery secret R.
    pub secret: Zeroizing<[u8; 32]>,
    /// The kit's AEAD nonce.
    pub nonce: [u8; NONCE_LEN],
    /// For each of R's 32 bytes, the k − 1 coefficients of degree 1..k.
    pub coefficients: Vec<Vec<u8>>,
}

impl SetRandomness {
    /// Fresh randomness for threshold `threshold`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, threshold: u32) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let degree = threshold.saturating_sub(1) as usize;
        let coefficients = (0..shamir::SECRET_LEN)
            .map(|_| {
                let mut row = alloc::vec![0u8; degree];
                rng.fill_bytes(&mut row);
                row
            })
            .collect();
        SetRandomness {
            secret,
            nonce,
            coefficients,
        }
    }
}

impl Drop for SetRandomness {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for row in &mut self.coefficients {
            row.zeroize();
        }
    }
}

/// Creates a recovery set for `user_seed` (REC-2..REC-4): any `threshold` of the
/// `holders` (one share each, in this order: holder `i` gets index `i + 1`) give the
/// user's secret back. Returns the encoded `RecoverySet`.
pub fn create_set<R: CryptoRng + ?Sized>(
    rng: &mut R,
    user_seed: &[u8; 32],
    name: &str,
    holders: &[Holder],
    threshold: u32,
) -> Result<Vec<u8>, Error> {
    let randomness = SetRandomness::generate(rng, threshold);
    create_set_with(rng, user_seed, name, holders, threshold, &randomness)
}

/// [`create_set`] with explicit randomness for the kit and the shares (`rng` only
/// draws the sealing's ephemeral keys).
pub fn create_set_with<R: CryptoRng + ?Sized>(
    rng: &mut R,
    user_seed: &[u8; 32],
    name: &str,
    holders: &[Holder],
    threshold: u32,
    randomness: &SetRandomness,
) -> Result<Vec<u8>, Error> {
    let count = u32::try_from(holders.len()).unwrap_or(u32::MAX);
    kit::check_parameters(threshold, count)?;
    for (i, h) in holders.iter().enumerate() {
        if holders.iter().take(i).any(|o| o.device_id == h.device_id) {
            return Err(Error::InvalidOperation {
                reason: "a device holds at most one share of a set",
            });
        }
    }
    let kit_bytes = kit::seal_kit(
        &randomness.secret,
        user_seed,
        name,
        threshold,
        count,
        &randomness.nonce,
    )?;
    let id = kit_id(&kit_bytes)?;
    let values = shamir::split_with(&randomness.secret, &randomness.coefficients, count as u8)?;
    let mut sealed_shares = Vec::with_capacity(holders.len());
    for (i, (holder, value)) in holders.iter().zip(values.iter()).enumerate() {
        let share = Zeroizing::new(
            pb::RecoveryShare {
                version: RECOVERY_VERSION,
                kit_id: id.to_vec(),
                index: i as u32 + 1,
                value: value.to_vec(),
            }
            .encode_to_vec(),
        );
        sealed_shares.push(seal::seal(
            rng,
            &holder.device_id,
            &holder.x25519,
            &info(INFO_SHARE, &id),
            &share,
        )?);
    }
    Ok(pb::RecoverySet {
        kit: kit_bytes,
        sealed_shares,
    }
    .encode_to_vec())
}

/// A recovery set that passed REC-4's checks.
#[derive(Debug, Clone)]
pub struct DecodedSet {
    kit_bytes: Vec<u8>,
    kit: DecodedKit,
    boxes: Vec<SealedKey>,
}

/// Decodes a `RecoverySet` (REC-4): size, canonical scan, the kit, one box per share.
pub fn decode_set(bytes: &[u8]) -> Result<DecodedSet, Error> {
    if bytes.len() > MAX_SET_BYTES {
        return Err(Error::LimitExceeded {
            what: "recovery set size",
            max: MAX_SET_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let set: pb::RecoverySet = wire::decode(bytes, &wire::RECOVERY_SET)?;
    let kit = decode_kit(&set.kit)?;
    if set.sealed_shares.len() != kit.shares() as usize {
        return Err(Error::malformed(
            "RecoverySet.sealed_shares",
            "not one box per share",
        ));
    }
    let boxes = set
        .sealed_shares
        .iter()
        .map(|b| seal::decode(b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DecodedSet {
        kit_bytes: set.kit,
        kit,
        boxes,
    })
}

/// A share a holder opened from a set: what it releases later.
#[derive(Clone)]
pub struct HeldShare {
    /// The kit's bytes, exactly as the set carried them.
    pub kit: Vec<u8>,
    /// The `RecoveryShare`'s bytes, exactly as they were sealed.
    pub share: Zeroizing<Vec<u8>>,
    /// The share's index.
    pub index: u32,
    /// k: how many shares restore the user.
    pub threshold: u32,
    /// The user the share recovers.
    pub user_key: [u8; 32],
}

impl core::fmt::Debug for HeldShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeldShare")
            .field("index", &self.index)
            .field("user_key", &self.user_key)
            .finish_non_exhaustive()
    }
}

/// A decoded `RecoveryShare` (REC-3 shapes, REC-7 step 1's share checks).
struct Share {
    kit_id: [u8; 32],
    index: u32,
    value: Zeroizing<[u8; 32]>,
}

fn decode_share(bytes: &[u8], shares: u32) -> Result<Share, Error> {
    let mut share: pb::RecoveryShare = wire::decode(bytes, &wire::RECOVERY_SHARE)?;
    let value_bytes = Zeroizing::new(core::mem::take(&mut share.value));
    if share.version != RECOVERY_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "recovery share version",
            value: u64::from(share.version),
        });
    }
    let kit_id: [u8; 32] = share
        .kit_id
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("RecoveryShare.kit_id", "length is not 32"))?;
    if share.index == 0 || share.index > shares {
        return Err(Error::malformed(
            "RecoveryShare.index",
            "not between 1 and the kit's share count",
        ));
    }
    let mut value = Zeroizing::new([0u8; 32]);
    if value_bytes.len() != 32 {
        return Err(Error::malformed("RecoveryShare.value", "length is not 32"));
    }
    value.copy_from_slice(&value_bytes);
    Ok(Share {
        kit_id,
        index: share.index,
        value,
    })
}

impl DecodedSet {
    /// The kit.
    pub fn kit(&self) -> &DecodedKit {
        &self.kit
    }

    /// The devices holding a share, in share order.
    pub fn holders(&self) -> Vec<[u8; 32]> {
        self.boxes.iter().map(|b| b.device_id).collect()
    }

    /// Opens the share sealed to this device (REC-4): none for it is
    /// `WRONG_CONTEXT`; a box that does not open, `DECRYPT_FAILED`; a share for
    /// another kit or at another position, `WRONG_CONTEXT`.
    pub fn open_share(
        &self,
        device_id: &[u8; 32],
        device_secret: &X25519Secret,
    ) -> Result<HeldShare, Error> {
        let (position, sealed) = self
            .boxes
            .iter()
            .enumerate()
            .find(|(_, b)| &b.device_id == device_id)
            .ok_or(Error::WrongContext {
                what: "recovery set holder",
            })?;
        let plain = seal::open(
            sealed,
            device_id,
            device_secret,
            &info(INFO_SHARE, self.kit.id()),
        )?;
        let share = decode_share(&plain, self.kit.shares())?;
        if &share.kit_id != self.kit.id() || share.index as usize != position + 1 {
            return Err(Error::WrongContext {
                what: "recovery share kit or position",
            });
        }
        Ok(HeldShare {
            kit: self.kit_bytes.clone(),
            share: plain,
            index: share.index,
            threshold: self.kit.threshold(),
            user_key: *self.kit.user_key(),
        })
    }
}

/// The recovering device's side of a request (REC-5): its X25519 secret and the
/// request it shows holders.
pub struct RequestSecret {
    secret: X25519Secret,
    request: Vec<u8>,
    id: [u8; 32],
}

impl RequestSecret {
    /// A fresh request.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let secret = X25519Secret::generate(rng);
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        Self::from_parts(secret, &nonce)
    }

    /// A request from its secret key and nonce (kept by the device between the request
    /// and the restore; test vectors give them explicitly).
    pub fn from_parts(secret: X25519Secret, nonce: &[u8; 16]) -> Result<Self, Error> {
        let request = pb::RecoveryRequest {
            version: RECOVERY_VERSION,
            x25519: secret.public().as_bytes().to_vec(),
            nonce: nonce.to_vec(),
        }
        .encode_to_vec();
        let id = hash_with_label(ID_RECOVERY_REQUEST, &request)?;
        Ok(RequestSecret {
            secret,
            request,
            id,
        })
    }

    /// The encoded `RecoveryRequest`, for the holders.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The request id.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }
}

/// A request as a holder decoded it (REC-5).
#[derive(Debug, Clone)]
pub struct DecodedRequest {
    x25519: X25519Public,
    id: [u8; 32],
}

impl DecodedRequest {
    /// The request id, which a holder shows so that the person can compare it with
    /// what the recovering device shows.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The requesting device's X25519 key.
    pub fn x25519(&self) -> &X25519Public {
        &self.x25519
    }
}

/// Decodes a `RecoveryRequest`: size, canonical scan, version, key and nonce shapes.
pub fn decode_request(bytes: &[u8]) -> Result<DecodedRequest, Error> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(Error::LimitExceeded {
            what: "recovery request size",
            max: MAX_REQUEST_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let request: pb::RecoveryRequest = wire::decode(bytes, &wire::RECOVERY_REQUEST)?;
    if request.version != RECOVERY_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "recovery request version",
            value: u64::from(request.version),
        });
    }
    if request.x25519.len() != 32 {
        return Err(Error::malformed(
            "RecoveryRequest.x25519",
            "length is not 32",
        ));
    }
    if request.nonce.len() != 16 {
        return Err(Error::malformed(
            "RecoveryRequest.nonce",
            "length is not 16",
        ));
    }
    Ok(DecodedRequest {
        x25519: X25519Public::from_bytes(&request.x25519)?,
        id: hash_with_label(ID_RECOVERY_REQUEST, bytes)?,
    })
}

/// A holder's release of `held` to `request` (REC-6): the encoded `SealedKey`.
pub fn release<R: CryptoRng + ?Sized>(
    rng: &mut R,
    held: &HeldShare,
    request: &DecodedRequest,
) -> Result<Vec<u8>, Error> {
    let body = Zeroizing::new(
        pb::RecoveryRelease {
            version: RECOVERY_VERSION,
            kit: held.kit.clone(),
            share: held.share.to_vec(),
        }
        .encode_to_vec(),
    );
    seal::seal(
        rng,
        &request.id,
        &request.x25519,
        &info(INFO_RELEASE, &request.id),
        &body,
    )
}

/// REC-7: the user's secret from releases of at least k distinct shares, each check
/// in order with the class of the first that fails.
pub fn restore(request: &RequestSecret, releases: &[&[u8]]) -> Result<BackupContents, Error> {
    restore_with(releases, |bytes| {
        let sealed = seal::decode(bytes)?;
        seal::open(
            &sealed,
            &request.id,
            &request.secret,
            &info(INFO_RELEASE, &request.id),
        )
    })
}

/// REC-7 with `open` doing the box part of step 1 (the fuzz target opens nothing:
/// its inputs are the plaintexts).
pub(crate) fn restore_with(
    releases: &[&[u8]],
    mut open: impl FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>, Error>,
) -> Result<BackupContents, Error> {
    let mut first_kit: Option<(Vec<u8>, DecodedKit)> = None;
    let mut shares: Vec<Share> = Vec::new();
    for bytes in releases {
        // Step 1: the box, the release, the kit and the share.
        let plain = open(bytes)?;
        let mut body: pb::RecoveryRelease = wire::decode(&plain, &wire::RECOVERY_RELEASE)?;
        let share_bytes = Zeroizing::new(core::mem::take(&mut body.share));
        if body.version != RECOVERY_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "recovery release version",
                value: u64::from(body.version),
            });
        }
        let kit = decode_kit(&body.kit)?;
        let share = decode_share(&share_bytes, kit.shares())?;
        if &share.kit_id != kit.id() {
            return Err(Error::WrongContext {
                what: "recovery share of another kit",
            });
        }
        // Step 2: one kit for all.
        match &first_kit {
            None => first_kit = Some((body.kit, kit)),
            Some((first, _)) if *first != body.kit => {
                return Err(Error::WrongContext {
                    what: "recovery releases of different kits",
                });
            }
            Some(_) => {}
        }
        // Step 3: one value per index.
        match shares.iter().find(|s| s.index == share.index) {
            Some(s) if *s.value != *share.value => {
                return Err(Error::InvalidOperation {
                    reason: "two releases give one share index different values",
                });
            }
            Some(_) => {}
            None => shares.push(share),
        }
    }
    let Some((_, kit)) = first_kit else {
        return Err(Error::InvalidOperation {
            reason: "fewer recovery shares than the threshold",
        });
    };
    // Step 4: at least k distinct shares; the k of lowest index are combined.
    if shares.len() < kit.threshold() as usize {
        return Err(Error::InvalidOperation {
            reason: "fewer recovery shares than the threshold",
        });
    }
    shares.sort_by_key(|s| s.index);
    let points: Vec<(u8, &[u8; 32])> = shares
        .iter()
        .take(kit.threshold() as usize)
        .map(|s| (s.index as u8, &*s.value))
        .collect();
    let secret = shamir::combine(&points)?;
    // Step 5: the kit.
    kit.open(&secret)
}

#[cfg(test)]
mod tests;
