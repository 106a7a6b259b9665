//! Sealed user backups (spec §5.5, BAK-1..BAK-8): a user's identity seed sealed under a
//! passphrase, so that a backup file is worth nothing to whoever copies it without the
//! passphrase.
//!
//! Format: a canonical `SealedBackup` (version 1, KDF 1, a 16-byte salt, a 24-byte nonce,
//! the user key in the clear, and the XChaCha20-Poly1305 encryption of a canonical
//! `BackupSecret`). The key is Argon2id (version 0x13) of the passphrase's NFC UTF-8 bytes
//! with the pinned parameters of BAK-3; the associated data is
//! `M("aad/backup", SealedBackup without its ciphertext)`. Opening checks BAK-6's steps in
//! order and reports the class of the first that fails (CONV-5).
//!
//! Argon2id with 64 MiB and three passes takes a fraction of a second on a phone or in a
//! browser, and makes each passphrase guess cost the same for an attacker.

use alloc::string::String;
use alloc::vec::Vec;

use argon2::{Algorithm, Argon2, Params, Version};
use clientful_proto::v1 as pb;
use prost::Message;
use rand_core::CryptoRng;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;
use crate::keys::SigningKey;
use crate::labels::{self, AAD_BACKUP};
use crate::limits::{ID_LEN, NONCE_LEN};
use crate::suite::{aead_open, aead_seal};
use crate::wire;

/// Backup format version (BAK-2).
pub const BACKUP_VERSION: u32 = 1;
/// The one passphrase KDF of version 1: Argon2id with [`ARGON2_MEMORY_KIB`],
/// [`ARGON2_PASSES`] and [`ARGON2_LANES`] (BAK-3).
pub const KDF_ARGON2ID_V1: u32 = 1;
/// Argon2id memory, in KiB: 64 MiB (BAK-3).
pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes (BAK-3).
pub const ARGON2_PASSES: u32 = 3;
/// Argon2id lanes (BAK-3): one, so that a browser computes it as fast as a native client.
pub const ARGON2_LANES: u32 = 1;
/// Salt length (BAK-2).
pub const SALT_LEN: usize = 16;
/// Largest encoded `SealedBackup` accepted (BAK-LIM-1).
pub const MAX_BACKUP_BYTES: usize = 1024;
/// Largest display name in a backup, in bytes (BAK-LIM-2).
pub const MAX_BACKUP_NAME_BYTES: usize = 256;

/// What a sealed backup holds, once opened.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupContents {
    /// The user key's Ed25519 seed.
    pub user_seed: Zeroizing<[u8; 32]>,
    /// The user's public identity key.
    pub user_key: [u8; 32],
    /// The user's display name.
    pub name: String,
}

impl core::fmt::Debug for BackupContents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackupContents")
            .field("user_key", &self.user_key)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The random inputs of one sealing: given explicitly only by test vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealRandomness {
    /// The Argon2id salt.
    pub salt: [u8; SALT_LEN],
    /// The AEAD nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl SealRandomness {
    /// Fresh salt and nonce from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut nonce);
        SealRandomness { salt, nonce }
    }
}

/// The passphrase's bytes: the UTF-8 encoding of its NFC normal form (BAK-4), so that the
/// same text typed on systems that compose accents differently opens the same backup.
fn passphrase_bytes(passphrase: &str) -> Zeroizing<Vec<u8>> {
    let normal: String = passphrase.nfc().collect();
    let mut normal = Zeroizing::new(normal);
    let bytes = Zeroizing::new(normal.as_bytes().to_vec());
    normal.zeroize();
    bytes
}

/// The AEAD key of a backup: Argon2id of the passphrase's NFC bytes (BAK-4) with
/// `salt` and the pinned parameters (BAK-3). This is the expensive step (64 MiB,
/// three passes); a caller that tries one passphrase on several backups with the
/// same salt, or runs it off a UI thread, derives it once and opens with
/// [`DecodedBackup::open_with_key`].
pub fn backup_key(passphrase: &str, salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, Some(ID_LEN))
        .map_err(|_| Error::InvalidOperation {
            reason: "Argon2id parameters refused",
        })?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(&passphrase_bytes(passphrase), salt, key.as_mut())
        .map_err(|_| Error::InvalidOperation {
            reason: "Argon2id failed",
        })?;
    Ok(key)
}

/// The associated data: `M("aad/backup", header)`, where the header is the canonical
/// encoding of the `SealedBackup` without its ciphertext (BAK-2).
fn associated_data(header: &pb::SealedBackup) -> Result<Vec<u8>, Error> {
    let mut h = header.clone();
    h.ciphertext = Vec::new();
    labels::labeled(AAD_BACKUP, &h.encode_to_vec())
        .ok_or(Error::malformed("labelled input", "content too long"))
}

/// Seals `user_seed` and `name` under `passphrase` (BAK-2): the canonical `SealedBackup`.
/// An empty passphrase is refused (BAK-4); a name over [`MAX_BACKUP_NAME_BYTES`] too.
pub fn seal_backup(
    passphrase: &str,
    user_seed: &[u8; 32],
    name: &str,
    randomness: &SealRandomness,
) -> Result<Vec<u8>, Error> {
    if passphrase.is_empty() {
        return Err(Error::InvalidOperation {
            reason: "a backup is never sealed under an empty passphrase",
        });
    }
    let key = backup_key(passphrase, &randomness.salt)?;
    seal_under(&key, user_seed, name, randomness)
}

/// BAK-2 steps 3 to 5 with the key of step 2.
fn seal_under(
    key: &[u8; 32],
    user_seed: &[u8; 32],
    name: &str,
    randomness: &SealRandomness,
) -> Result<Vec<u8>, Error> {
    if name.len() > MAX_BACKUP_NAME_BYTES {
        return Err(Error::LimitExceeded {
            what: "backup name",
            max: MAX_BACKUP_NAME_BYTES as u64,
            actual: name.len() as u64,
        });
    }
    let secret = Zeroizing::new(
        pb::BackupSecret {
            version: BACKUP_VERSION,
            user_seed: user_seed.to_vec(),
            name: name.as_bytes().to_vec(),
        }
        .encode_to_vec(),
    );
    let mut sealed = pb::SealedBackup {
        version: BACKUP_VERSION,
        kdf: KDF_ARGON2ID_V1,
        salt: randomness.salt.to_vec(),
        nonce: randomness.nonce.to_vec(),
        user_key: SigningKey::from_seed(user_seed).public_bytes().to_vec(),
        ciphertext: Vec::new(),
    };
    let aad = associated_data(&sealed)?;
    sealed.ciphertext = aead_seal(key, &randomness.nonce, &aad, &secret)?;
    Ok(sealed.encode_to_vec())
}

/// [`seal_backup`] with the key already derived by [`backup_key`] from the
/// passphrase and `randomness.salt`: the test vectors derive each (passphrase,
/// salt) key once. A key derived from another salt gives a backup nobody can
/// open. Behind `test-utils`.
#[cfg(any(test, feature = "test-utils"))]
pub fn seal_backup_with_key(
    key: &[u8; 32],
    user_seed: &[u8; 32],
    name: &str,
    randomness: &SealRandomness,
) -> Result<Vec<u8>, Error> {
    seal_under(key, user_seed, name, randomness)
}

/// Seals arbitrary secret bytes under any header values with a key from
/// [`backup_key`], without the checks of [`seal_backup`]: the test vectors' crafted backups (a seed that is not the named
/// user's, a secret of another version, a name over the limit). Behind `test-utils`.
#[cfg(any(test, feature = "test-utils"))]
pub fn seal_backup_unchecked(
    key: &[u8; 32],
    header: &pb::SealedBackup,
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    let nonce: [u8; NONCE_LEN] = header
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("SealedBackup.nonce", "length is not 24"))?;
    let mut sealed = header.clone();
    sealed.ciphertext = aead_seal(key, &nonce, &associated_data(header)?, secret)?;
    Ok(sealed.encode_to_vec())
}

/// The user key a sealed backup names, read without the passphrase (BAK-6 steps 1–3).
pub fn backup_user_key(bytes: &[u8]) -> Result<[u8; 32], Error> {
    Ok(decode_backup(bytes)?.user_key)
}

/// A sealed backup whose header passed BAK-6 steps 1 to 3: whose it is and the
/// salt its key needs, before any passphrase.
#[derive(Debug, Clone)]
pub struct DecodedBackup {
    sealed: pb::SealedBackup,
    user_key: [u8; 32],
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
}

impl DecodedBackup {
    /// The user key the backup names (BAK-5).
    pub fn user_key(&self) -> &[u8; 32] {
        &self.user_key
    }

    /// The salt of its key ([`backup_key`]).
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// BAK-6 steps 4 (with `key` from [`backup_key`] of the passphrase and
    /// [`DecodedBackup::salt`]) to 6. A wrong key is `DECRYPT_FAILED`.
    pub fn open_with_key(&self, key: &[u8; 32]) -> Result<BackupContents, Error> {
        let aad = associated_data(&self.sealed)?;
        let plain = Zeroizing::new(aead_open(key, &self.nonce, &aad, &self.sealed.ciphertext)?);
        secret_contents(&plain, self.user_key)
    }
}

/// BAK-6 steps 1–3: size, canonical decoding, version and KDF, field lengths.
pub fn decode_backup(bytes: &[u8]) -> Result<DecodedBackup, Error> {
    if bytes.len() > MAX_BACKUP_BYTES {
        return Err(Error::LimitExceeded {
            what: "sealed backup size",
            max: MAX_BACKUP_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let sealed: pb::SealedBackup = wire::decode(bytes, &wire::SEALED_BACKUP)?;
    if sealed.version != BACKUP_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "backup version",
            value: u64::from(sealed.version),
        });
    }
    if sealed.kdf != KDF_ARGON2ID_V1 {
        return Err(Error::UnsupportedVersion {
            what: "backup KDF",
            value: u64::from(sealed.kdf),
        });
    }
    let salt: [u8; SALT_LEN] = sealed
        .salt
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("SealedBackup.salt", "length is not 16"))?;
    let nonce: [u8; NONCE_LEN] = sealed
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("SealedBackup.nonce", "length is not 24"))?;
    let user_key: [u8; 32] = sealed
        .user_key
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("SealedBackup.user_key", "length is not 32"))?;
    if sealed.ciphertext.is_empty() {
        return Err(Error::malformed("SealedBackup", "missing ciphertext"));
    }
    Ok(DecodedBackup {
        sealed,
        user_key,
        salt,
        nonce,
    })
}

/// Opens a sealed backup with `passphrase`: the checks of BAK-6 in order. A wrong
/// passphrase and a tampered file are the same failure, `DECRYPT_FAILED`.
pub fn open_backup(bytes: &[u8], passphrase: &str) -> Result<BackupContents, Error> {
    let decoded = decode_backup(bytes)?;
    // Step 4: the key and the AEAD.
    let key = backup_key(passphrase, decoded.salt())?;
    decoded.open_with_key(&key)
}

/// BAK-6 steps 5 and 6: the decrypted `BackupSecret`, checked against the user key
/// of the header.
pub(crate) fn secret_contents(plain: &[u8], user_key: [u8; 32]) -> Result<BackupContents, Error> {
    // Step 5: the secret.
    let mut secret: pb::BackupSecret = wire::decode(plain, &wire::BACKUP_SECRET)?;
    let seed_bytes = Zeroizing::new(core::mem::take(&mut secret.user_seed));
    if secret.version != BACKUP_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "backup secret version",
            value: u64::from(secret.version),
        });
    }
    let user_seed: [u8; 32] = seed_bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("BackupSecret.user_seed", "length is not 32"))?;
    let user_seed = Zeroizing::new(user_seed);
    if secret.name.len() > MAX_BACKUP_NAME_BYTES {
        return Err(Error::LimitExceeded {
            what: "backup name",
            max: MAX_BACKUP_NAME_BYTES as u64,
            actual: secret.name.len() as u64,
        });
    }
    let name = String::from_utf8(secret.name.clone())
        .map_err(|_| Error::malformed("BackupSecret.name", "not UTF-8"))?;
    // Step 6: the seed is the named user's.
    if SigningKey::from_seed(&user_seed).public_bytes() != user_key {
        return Err(Error::WrongContext {
            what: "backup seed and user key",
        });
    }
    Ok(BackupContents {
        user_seed,
        user_key,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    const RAND: SealRandomness = SealRandomness {
        salt: [7; SALT_LEN],
        nonce: [9; NONCE_LEN],
    };

    #[test]
    fn seals_and_opens_with_the_right_passphrase_only() {
        let seed = [42u8; 32];
        let sealed = seal_backup("correct horse battery staple", &seed, "Alice", &RAND).unwrap();
        let opened = open_backup(&sealed, "correct horse battery staple").unwrap();
        assert_eq!(*opened.user_seed, seed);
        assert_eq!(opened.name, "Alice");
        assert_eq!(opened.user_key, SigningKey::from_seed(&seed).public_bytes());
        assert_eq!(backup_user_key(&sealed).unwrap(), opened.user_key);
        let wrong = open_backup(&sealed, "correct horse battery stapler").unwrap_err();
        assert_eq!(wrong.class(), ErrorClass::DecryptFailed);
    }

    #[test]
    fn the_passphrase_is_compared_in_nfc() {
        let seed = [1u8; 32];
        // "é" precomposed (U+00E9) and decomposed (e + U+0301).
        let sealed = seal_backup("caf\u{e9} au lait", &seed, "", &RAND).unwrap();
        assert!(open_backup(&sealed, "cafe\u{301} au lait").is_ok());
    }

    #[test]
    fn refuses_an_empty_passphrase_and_a_long_name() {
        assert!(seal_backup("", &[1; 32], "", &RAND).is_err());
        let long = "x".repeat(MAX_BACKUP_NAME_BYTES + 1);
        assert_eq!(
            seal_backup("p", &[1; 32], &long, &RAND)
                .unwrap_err()
                .class(),
            ErrorClass::LimitExceeded
        );
    }

    #[test]
    fn every_header_field_is_bound() {
        let sealed = seal_backup("pass phrase", &[3; 32], "Bo", &RAND).unwrap();
        let pb0 = pb::SealedBackup::decode(sealed.as_slice()).unwrap();
        // Another salt, nonce or user key: not the sealed header.
        let mut other_key = pb0.clone();
        other_key.user_key = SigningKey::from_seed(&[4; 32]).public_bytes().to_vec();
        let e = open_backup(&other_key.encode_to_vec(), "pass phrase").unwrap_err();
        assert_eq!(e.class(), ErrorClass::DecryptFailed);
        let mut other_nonce = pb0.clone();
        other_nonce.nonce = [8; NONCE_LEN].to_vec();
        let e = open_backup(&other_nonce.encode_to_vec(), "pass phrase").unwrap_err();
        assert_eq!(e.class(), ErrorClass::DecryptFailed);
        let mut v2 = pb0.clone();
        v2.kdf = 2;
        let e = open_backup(&v2.encode_to_vec(), "pass phrase").unwrap_err();
        assert_eq!(e.class(), ErrorClass::UnsupportedVersion);
    }

    #[test]
    fn bad_encodings_get_their_class_before_any_key_derivation() {
        assert_eq!(
            open_backup(&[0u8; MAX_BACKUP_BYTES + 1], "p")
                .unwrap_err()
                .class(),
            ErrorClass::LimitExceeded
        );
        assert_eq!(
            open_backup(&[0x08], "p").unwrap_err().class(),
            ErrorClass::Malformed
        );
    }
}
