//! File chunks (spec §9.9), pure: each chunk is sealed under the file's random key
//! with a nonce and associated data bound to its position, so a chunk moved,
//! swapped between files, or marked last when it is not, fails to open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use clientful_core::labels;

use crate::error::StorageError;

fn nonce(index: u64) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[16..].copy_from_slice(&index.to_be_bytes());
    n
}

fn aad(index: u64, last: bool) -> Result<Vec<u8>, StorageError> {
    let mut c = index.to_be_bytes().to_vec();
    c.push(u8::from(last));
    labels::labeled(labels::AAD_STORAGE_CHUNK, &c)
        .ok_or_else(|| StorageError::corrupt("chunk", "aad"))
}

// The AEAD is suite 1's XChaCha20-Poly1305 (spec §5.1), called here directly rather
// than through `clientful_core::suite` so that this hot loop is compiled with this
// crate's optimisation level.

/// Suite 1's XChaCha20-Poly1305 seal (`ciphertext || tag`), compiled in this crate.
pub(crate) fn aead_seal(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, StorageError> {
    XChaCha20Poly1305::new(&Key::from(*key))
        .encrypt(&XNonce::from(*nonce), Payload { msg: plain, aad })
        .map_err(|_| StorageError::corrupt("AEAD input", "too large to seal"))
}

/// Suite 1's XChaCha20-Poly1305 open; `None` if it does not authenticate.
pub(crate) fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    sealed: &[u8],
) -> Option<Vec<u8>> {
    XChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(&XNonce::from(*nonce), Payload { msg: sealed, aad })
        .ok()
}

/// Seals chunk `index` of a file.
pub fn seal_chunk(
    file_key: &[u8; 32],
    index: u64,
    last: bool,
    plain: &[u8],
) -> Result<Vec<u8>, StorageError> {
    aead_seal(file_key, &nonce(index), &aad(index, last)?, plain)
}

/// Opens chunk `index` of a file; `None` if it does not authenticate.
pub fn open_chunk(file_key: &[u8; 32], index: u64, last: bool, sealed: &[u8]) -> Option<Vec<u8>> {
    aead_open(file_key, &nonce(index), &aad(index, last).ok()?, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_bound_to_position_and_key() {
        let k = [5u8; 32];
        let c = seal_chunk(&k, 3, false, b"data").expect("seal");
        assert_eq!(open_chunk(&k, 3, false, &c).as_deref(), Some(&b"data"[..]));
        assert!(open_chunk(&k, 4, false, &c).is_none());
        assert!(open_chunk(&k, 3, true, &c).is_none());
        assert!(open_chunk(&[6; 32], 3, false, &c).is_none());
        // Same construction as the suite's AEAD.
        let aad = aad(3, false).expect("aad");
        assert_eq!(
            clientful_core::suite::aead_seal(&k, &nonce(3), &aad, b"data").expect("seal"),
            c
        );
    }
}
