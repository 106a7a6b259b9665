//! The binding an attestation's external evidence commits to (spec §14, the
//! attestation frame):
//!
//! `binding = HashWithLabel("attest/binding", user_key || salt)`
//!
//! with `user_key` the 32-byte Ed25519 user key and `salt` the record's 16 random
//! bytes. A SIWE message carries it as its nonce (lowercase hex, 64 characters), a
//! WebAuthn assertion as its challenge (the 32 bytes).

use clientful_core::suite::hash_with_label;

/// Length of a user key (Ed25519 public key).
pub const USER_KEY_LEN: usize = 32;
/// Length of an attestation's salt.
pub const SALT_LEN: usize = 16;

/// The label of the binding hash.
///
/// MERGE: replace with the core's `labels::ATTEST_BINDING` once the attestation
/// frame adds it to `clientful_core::labels` (same string).
pub const LABEL_BINDING: &str = "attest/binding";

/// `HashWithLabel("attest/binding", user_key || salt)`.
pub fn binding(user_key: &[u8; USER_KEY_LEN], salt: &[u8; SALT_LEN]) -> [u8; 32] {
    let mut content = Vec::with_capacity(USER_KEY_LEN + SALT_LEN);
    content.extend_from_slice(user_key);
    content.extend_from_slice(salt);
    // A 48-byte content and a 14-byte label are always within the limits of M().
    hash_with_label(LABEL_BINDING, &content).unwrap_or([0u8; 32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_commits_to_key_and_salt() {
        let a = binding(&[1; 32], &[2; 16]);
        assert_ne!(a, binding(&[1; 32], &[3; 16]));
        assert_ne!(a, binding(&[4; 32], &[2; 16]));
        assert_eq!(a, binding(&[1; 32], &[2; 16]));
    }
}
