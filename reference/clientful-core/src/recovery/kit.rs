//! The recovery kit (spec REC-2): the user's secret sealed under the recovery secret,
//! and its id.

use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use prost::Message;
use zeroize::Zeroizing;

use crate::backup::{self, BackupContents, MAX_BACKUP_NAME_BYTES};
use crate::error::Error;
use crate::keys::SigningKey;
use crate::labels::{self, AAD_RECOVERY_KIT, ID_RECOVERY_KIT, KDF_RECOVERY_KIT};
use crate::limits::NONCE_LEN;
use crate::suite::{aead_open, aead_seal, derive_with_label, hash_with_label};
use crate::wire;

use super::{MAX_KIT_BYTES, MAX_SHARES, MIN_THRESHOLD, RECOVERY_VERSION};

/// The AEAD key of a kit: `DeriveWithLabel(R, empty salt, "kdf/recovery-kit", user_key, 32)`.
fn kit_key(secret: &[u8; 32], user_key: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let mut key = Zeroizing::new([0u8; 32]);
    derive_with_label(secret, &[], KDF_RECOVERY_KIT, user_key, key.as_mut())?;
    Ok(key)
}

/// `M("aad/recovery-kit", kit without ciphertext)`.
fn associated_data(kit: &pb::RecoveryKit) -> Result<Vec<u8>, Error> {
    let mut header = kit.clone();
    header.ciphertext = Vec::new();
    labels::labeled(AAD_RECOVERY_KIT, &header.encode_to_vec())
        .ok_or(Error::malformed("labelled input", "content too long"))
}

/// The id of a kit: `HashWithLabel("id/recovery-kit", kit bytes)`.
pub fn kit_id(kit: &[u8]) -> Result<[u8; 32], Error> {
    hash_with_label(ID_RECOVERY_KIT, kit)
}

/// Checks the threshold and count of REC-1 for a sealer.
pub(super) fn check_parameters(threshold: u32, shares: u32) -> Result<(), Error> {
    if shares > MAX_SHARES {
        return Err(Error::LimitExceeded {
            what: "recovery shares",
            max: u64::from(MAX_SHARES),
            actual: u64::from(shares),
        });
    }
    if threshold < MIN_THRESHOLD || threshold > shares {
        return Err(Error::malformed(
            "RecoveryKit.threshold",
            "not between 2 and the number of shares",
        ));
    }
    Ok(())
}

/// Seals `user_seed` and `name` under the recovery secret (REC-2 steps 2 and 3).
pub(super) fn seal_kit(
    secret: &[u8; 32],
    user_seed: &[u8; 32],
    name: &str,
    threshold: u32,
    shares: u32,
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, Error> {
    check_parameters(threshold, shares)?;
    if name.len() > MAX_BACKUP_NAME_BYTES {
        return Err(Error::LimitExceeded {
            what: "backup name",
            max: MAX_BACKUP_NAME_BYTES as u64,
            actual: name.len() as u64,
        });
    }
    let user_key = SigningKey::from_seed(user_seed).public_bytes();
    let plain = Zeroizing::new(
        pb::BackupSecret {
            version: backup::BACKUP_VERSION,
            user_seed: user_seed.to_vec(),
            name: name.as_bytes().to_vec(),
        }
        .encode_to_vec(),
    );
    let mut kit = pb::RecoveryKit {
        version: RECOVERY_VERSION,
        user_key: user_key.to_vec(),
        threshold,
        shares,
        nonce: nonce.to_vec(),
        ciphertext: Vec::new(),
    };
    let aad = associated_data(&kit)?;
    kit.ciphertext = aead_seal(&*kit_key(secret, &user_key)?, nonce, &aad, &plain)?;
    Ok(kit.encode_to_vec())
}

/// Seals arbitrary plaintext under any kit header with the key of `secret`, without
/// the checks of the sealer: the test vectors' crafted kits (a seed that is not the
/// named user's, a secret of another version). Behind `test-utils`.
#[cfg(any(test, feature = "test-utils"))]
pub fn seal_kit_unchecked(
    secret: &[u8; 32],
    header: &pb::RecoveryKit,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let user_key: [u8; 32] = header
        .user_key
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("RecoveryKit.user_key", "length is not 32"))?;
    let nonce: [u8; NONCE_LEN] = header
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("RecoveryKit.nonce", "length is not 24"))?;
    let mut kit = header.clone();
    kit.ciphertext = aead_seal(
        &*kit_key(secret, &user_key)?,
        &nonce,
        &associated_data(header)?,
        plaintext,
    )?;
    Ok(kit.encode_to_vec())
}

/// A kit that passed REC-7 step 1's checks: whose it is and how many shares open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedKit {
    kit: pb::RecoveryKit,
    user_key: [u8; 32],
    nonce: [u8; NONCE_LEN],
    id: [u8; 32],
}

impl DecodedKit {
    /// The user whose secret the kit seals.
    pub fn user_key(&self) -> &[u8; 32] {
        &self.user_key
    }

    /// k: how many shares open it.
    pub fn threshold(&self) -> u32 {
        self.kit.threshold
    }

    /// n: how many shares were made.
    pub fn shares(&self) -> u32 {
        self.kit.shares
    }

    /// The kit id (REC-2).
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// REC-7 step 5: opens the kit with the recombined secret, then BAK-6 steps 5 and
    /// 6 on what it holds. A wrong secret (a wrong share among those combined) is
    /// `DECRYPT_FAILED`.
    pub fn open(&self, secret: &[u8; 32]) -> Result<BackupContents, Error> {
        let aad = associated_data(&self.kit)?;
        let plain = Zeroizing::new(aead_open(
            &*kit_key(secret, &self.user_key)?,
            &self.nonce,
            &aad,
            &self.kit.ciphertext,
        )?);
        backup::secret_contents(&plain, self.user_key)
    }
}

/// Decodes a kit: size, canonical scan, version, field shapes, threshold and count
/// (REC-7 step 1, the kit's part).
pub fn decode_kit(bytes: &[u8]) -> Result<DecodedKit, Error> {
    if bytes.len() > MAX_KIT_BYTES {
        return Err(Error::LimitExceeded {
            what: "recovery kit size",
            max: MAX_KIT_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let kit: pb::RecoveryKit = wire::decode(bytes, &wire::RECOVERY_KIT)?;
    if kit.version != RECOVERY_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "recovery kit version",
            value: u64::from(kit.version),
        });
    }
    let user_key: [u8; 32] = kit
        .user_key
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("RecoveryKit.user_key", "length is not 32"))?;
    check_parameters(kit.threshold, kit.shares)?;
    let nonce: [u8; NONCE_LEN] = kit
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("RecoveryKit.nonce", "length is not 24"))?;
    if kit.ciphertext.is_empty() {
        return Err(Error::malformed("RecoveryKit", "missing ciphertext"));
    }
    Ok(DecodedKit {
        id: kit_id(bytes)?,
        kit,
        user_key,
        nonce,
    })
}
