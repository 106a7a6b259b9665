//! Making attestations (spec §14.3, ATT-2, ATT-6): the salt and binding an
//! external party's evidence must commit to, and the user key's signature over
//! the record. The evidence is fetched by the shell (the CLI's `identity attest`).

use clientful_attest::record::{self, Draft, SALT_LEN};
use clientful_attest::{oidc, sign};
use clientful_core::keys::SigningKey;

use crate::error::ClientError;
use crate::identity::{Client, os_rng};

/// A fresh salt, and what evidence must carry for it (ATT-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationNonce {
    /// The 16-byte salt: keep it for [`Client::sign_attestation`].
    pub salt: [u8; SALT_LEN],
    /// `HashWithLabel("attest/binding", user_key || salt)`.
    pub binding: [u8; 32],
    /// The OIDC `nonce` to request: unpadded base64url of the binding.
    pub oidc_nonce: String,
}

impl Client {
    /// A fresh salt and the nonce an OpenID provider must put in the id_token for
    /// this user (ATT-6).
    pub fn attestation_nonce(&self) -> Result<AttestationNonce, ClientError> {
        let mut rng = os_rng()?;
        let salt = record::fresh_salt(&mut rng);
        self.attestation_nonce_for(salt)
    }

    /// The binding and nonce of `salt` for this user (ATT-6).
    pub fn attestation_nonce_for(
        &self,
        salt: [u8; SALT_LEN],
    ) -> Result<AttestationNonce, ClientError> {
        let binding = record::binding(&self.profile.user_key(), &salt)?;
        Ok(AttestationNonce {
            salt,
            binding,
            oidc_nonce: oidc::nonce_for(&binding),
        })
    }

    /// Signs an attestation of this user's key (ATT-2): returns the
    /// `SignedAttestation` bytes to publish with [`crate::SpaceSession::attest`].
    pub fn sign_attestation(&self, draft: &Draft<'_>) -> Result<Vec<u8>, ClientError> {
        let user = SigningKey::from_seed(&self.profile.user_seed);
        Ok(sign(&user, draft)?)
    }
}
