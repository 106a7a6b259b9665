//! Cipher suite 1 (spec §5.1): SHA-256, HKDF-SHA256, XChaCha20-Poly1305 and the
//! labelled operations built on them (spec §5.2). Ed25519 and X25519 live in
//! [`crate::keys`].
//!
//! | operation | definition |
//! |---|---|
//! | `HashWithLabel(label, c)` | `SHA-256(M(label, c))` |
//! | `DeriveWithLabel(ikm, salt, label, ctx, n)` | `HKDF-Expand(HKDF-Extract(salt, ikm), M(label, ctx), n)` |
//! | `SignWithLabel(sk, label, c)` | `Ed25519-Sign(sk, M(label, c))` |
//! | AEAD | XChaCha20-Poly1305, 32-byte key, 24-byte nonce, 16-byte tag appended |

use alloc::vec::Vec;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::labels;

/// A 32-byte SHA-256 output.
pub type Hash32 = [u8; 32];

/// `SHA-256(M(label, content))`.
pub fn hash_with_label(label: &str, content: &[u8]) -> Result<Hash32, Error> {
    let prefix = labels::prefix(label, content.len()).ok_or(Error::malformed(
        "labelled input",
        "label or content too long",
    ))?;
    let mut h = Sha256::new();
    h.update(&prefix);
    h.update(content);
    Ok(h.finalize().into())
}

/// Plain SHA-256, for content addresses defined elsewhere in the spec.
pub fn sha256(data: &[u8]) -> Hash32 {
    Sha256::digest(data).into()
}

/// Largest output `derive_with_label` can produce (HKDF-SHA256: 255 blocks).
pub const MAX_DERIVE_LEN: usize = 255 * 32;

/// `HKDF-Expand(HKDF-Extract(salt, ikm), M(label, context), out.len())`.
///
/// An empty `salt` is HKDF's default salt (32 zero bytes), as RFC 5869 defines.
pub fn derive_with_label(
    ikm: &[u8],
    salt: &[u8],
    label: &str,
    context: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let info = labels::labeled(label, context).ok_or(Error::malformed(
        "labelled input",
        "label or context too long",
    ))?;
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand(&info, out).map_err(|_| Error::LimitExceeded {
        what: "derived key length",
        max: MAX_DERIVE_LEN as u64,
        actual: out.len() as u64,
    })
}

/// XChaCha20-Poly1305 encryption; returns `ciphertext || tag`.
pub fn aead_seal(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    cipher
        .encrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::LimitExceeded {
            what: "AEAD plaintext",
            max: u64::MAX,
            actual: plaintext.len() as u64,
        })
}

/// XChaCha20-Poly1305 decryption of `ciphertext || tag`.
pub fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, Error> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    cipher
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| Error::DecryptFailed {
            reason: "AEAD authentication failed",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_domain_separated() {
        let a = hash_with_label("id/envelope", b"x").expect("hash");
        let b = hash_with_label("id/device", b"x").expect("hash");
        assert_ne!(a, b);
        assert_ne!(a, sha256(b"x"));
    }

    #[test]
    fn derive_rejects_oversize_output() {
        let mut out = alloc::vec![0u8; MAX_DERIVE_LEN + 1];
        let err = derive_with_label(b"k", b"", "kdf/doc-key", b"", &mut out).unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::LimitExceeded);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [7u8; 32];
        let nonce = [9u8; 24];
        let ct = aead_seal(&key, &nonce, b"aad", b"hello").expect("seal");
        assert_eq!(
            aead_open(&key, &nonce, b"aad", &ct).expect("open"),
            b"hello"
        );
        assert!(aead_open(&key, &nonce, b"aad!", &ct).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(aead_open(&key, &nonce, b"aad", &bad).is_err());
    }
}
