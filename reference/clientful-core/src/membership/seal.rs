//! Secrets sealed to one device (spec KEY-3): an HPKE-style construction over
//! suite 1 (X25519, HKDF-SHA256, XChaCha20-Poly1305) that binds the recipient
//! device id (ID-4) and a purpose-specific `info` string.
//!
//! ```text
//! eph            = fresh X25519 key pair
//! dh             = X25519(eph, device_x25519)              (all-zero result rejected)
//! key || nonce   = DeriveWithLabel(dh, eph_pub || device_x25519, "kdf/seal",
//!                                  device_id || info, 56)
//! ciphertext     = AEAD-Seal(key, nonce, M("aad/seal", device_id || info), secret)
//! SealedKey      = { device_id, ephemeral = eph_pub, ciphertext }
//! ```

use alloc::vec::Vec;

use clientful_proto::v1 as pb;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::{X25519Public, X25519Secret};
use crate::limits::{ID_LEN, NONCE_LEN};
use crate::{labels, suite, wire};

/// Largest encoded `SealedKey` accepted (KEY-LIM-1): a signed welcome with 64
/// secrets and a certificate of the largest size fits.
pub const MAX_SEALED_KEY_BYTES: usize = 4096;

/// A decoded, structurally valid `SealedKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The recipient device id.
    pub device_id: [u8; 32],
    /// The sender's ephemeral X25519 key (validated).
    pub ephemeral: X25519Public,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

fn key_and_nonce(
    dh: &[u8; 32],
    ephemeral: &X25519Public,
    recipient: &X25519Public,
    device_id: &[u8; 32],
    info: &[u8],
) -> Result<(Zeroizing<[u8; 32]>, [u8; NONCE_LEN]), Error> {
    let mut salt = Vec::with_capacity(64);
    salt.extend_from_slice(ephemeral.as_bytes());
    salt.extend_from_slice(recipient.as_bytes());
    let mut ctx = Vec::with_capacity(32 + info.len());
    ctx.extend_from_slice(device_id);
    ctx.extend_from_slice(info);
    let mut out = Zeroizing::new([0u8; 32 + NONCE_LEN]);
    suite::derive_with_label(dh, &salt, labels::KDF_SEAL, &ctx, out.as_mut())?;
    let mut key = Zeroizing::new([0u8; 32]);
    let mut nonce = [0u8; NONCE_LEN];
    let (k, n) = out.split_at(32);
    key.copy_from_slice(k);
    nonce.copy_from_slice(n);
    Ok((key, nonce))
}

fn aad(device_id: &[u8; 32], info: &[u8]) -> Result<Vec<u8>, Error> {
    let mut content = Vec::with_capacity(32 + info.len());
    content.extend_from_slice(device_id);
    content.extend_from_slice(info);
    labels::labeled(labels::AAD_SEAL, &content)
        .ok_or(Error::malformed("labelled input", "too long"))
}

/// Seals `secret` to the device `device_id` whose X25519 key is `recipient`.
/// Returns the encoded `SealedKey`.
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    device_id: &[u8; 32],
    recipient: &X25519Public,
    info: &[u8],
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    let eph = X25519Secret::generate(rng);
    let eph_pub = eph.public();
    let dh = eph.diffie_hellman(recipient)?;
    let (key, nonce) = key_and_nonce(&dh, &eph_pub, recipient, device_id, info)?;
    let ciphertext = suite::aead_seal(&key, &nonce, &aad(device_id, info)?, secret)?;
    Ok(wire::encode(&pb::SealedKey {
        device_id: device_id.to_vec(),
        ephemeral: eph_pub.as_bytes().to_vec(),
        ciphertext,
    }))
}

/// Decodes a `SealedKey` (size, canonical scan, field shapes, ephemeral key).
pub fn decode(bytes: &[u8]) -> Result<SealedKey, Error> {
    if bytes.len() > MAX_SEALED_KEY_BYTES {
        return Err(Error::LimitExceeded {
            what: "sealed key size",
            max: MAX_SEALED_KEY_BYTES as u64,
            actual: bytes.len() as u64,
        });
    }
    let m: pb::SealedKey = wire::decode(bytes, &wire::SEALED_KEY)?;
    let device_id: [u8; ID_LEN] = m
        .device_id
        .as_slice()
        .try_into()
        .map_err(|_| Error::malformed("SealedKey.device_id", "length is not 32"))?;
    if m.ephemeral.len() != ID_LEN {
        return Err(Error::malformed("SealedKey.ephemeral", "length is not 32"));
    }
    if m.ciphertext.len() < crate::limits::TAG_LEN {
        return Err(Error::malformed(
            "SealedKey.ciphertext",
            "shorter than the AEAD tag",
        ));
    }
    let ephemeral = X25519Public::from_bytes(&m.ephemeral)?;
    Ok(SealedKey {
        device_id,
        ephemeral,
        ciphertext: m.ciphertext,
    })
}

/// Opens a sealed key addressed to this device. A box for another device is
/// `WRONG_CONTEXT`; a box that does not authenticate is `DECRYPT_FAILED`.
pub fn open(
    sealed: &SealedKey,
    device_id: &[u8; 32],
    device_secret: &X25519Secret,
    info: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if &sealed.device_id != device_id {
        return Err(Error::WrongContext {
            what: "sealed key recipient",
        });
    }
    let dh = device_secret.diffie_hellman(&sealed.ephemeral)?;
    let (key, nonce) = key_and_nonce(
        &dh,
        &sealed.ephemeral,
        &device_secret.public(),
        device_id,
        info,
    )?;
    let plain = suite::aead_open(&key, &nonce, &aad(device_id, info)?, &sealed.ciphertext)?;
    Ok(Zeroizing::new(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn seal_open_and_bindings() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let dev = X25519Secret::generate(&mut rng);
        let other = X25519Secret::generate(&mut rng);
        let id = [1u8; 32];
        let bytes = seal(&mut rng, &id, &dev.public(), b"info", b"secret").expect("seal");
        let sealed = decode(&bytes).expect("decode");
        assert_eq!(
            &*open(&sealed, &id, &dev, b"info").expect("open"),
            b"secret"
        );
        // Another device's key, another device id, another info: all fail.
        assert_eq!(
            open(&sealed, &id, &other, b"info").unwrap_err().class(),
            ErrorClass::DecryptFailed
        );
        assert_eq!(
            open(&sealed, &[2u8; 32], &dev, b"info")
                .unwrap_err()
                .class(),
            ErrorClass::WrongContext
        );
        assert_eq!(
            open(&sealed, &id, &dev, b"other").unwrap_err().class(),
            ErrorClass::DecryptFailed
        );
        let mut moved = sealed.clone();
        moved.device_id = [2u8; 32];
        assert_eq!(
            open(&moved, &[2u8; 32], &dev, b"info").unwrap_err().class(),
            ErrorClass::DecryptFailed
        );
    }

    #[test]
    fn low_order_ephemeral_is_rejected() {
        let bytes = wire::encode(&pb::SealedKey {
            device_id: [1u8; 32].to_vec(),
            ephemeral: [0u8; 32].to_vec(),
            ciphertext: [0u8; 16].to_vec(),
        });
        assert_eq!(decode(&bytes).unwrap_err().class(), ErrorClass::InvalidKey);
    }
}
