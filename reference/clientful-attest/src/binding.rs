//! The binding an attestation's external evidence commits to (spec §14, the
//! attestation frame):
//!
//! `binding = HashWithLabel("attest/binding", user_key || salt)`
//!
//! with `user_key` the 32-byte Ed25519 user key and `salt` the record's 16 random
//! bytes. A SIWE message carries it as its nonce (lowercase hex, 64 characters), a
//! WebAuthn assertion as its challenge (the 32 bytes).

pub use crate::record::SALT_LEN;

/// Length of a user key (Ed25519 public key).
pub const USER_KEY_LEN: usize = 32;

/// `HashWithLabel("attest/binding", user_key || salt)` ([`crate::record::binding`],
/// whose only failure, an over-long label or input, cannot happen for these fixed
/// lengths).
pub fn binding(user_key: &[u8; USER_KEY_LEN], salt: &[u8; SALT_LEN]) -> [u8; 32] {
    crate::record::binding(user_key, salt).unwrap_or([0u8; 32])
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
