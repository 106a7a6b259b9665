//! The crate's typed error (spec §14.7, ATT-14): each variant maps to exactly one
//! error class of spec ERR-1; the table in §14.7 lists which check raises which.

use clientful_core::ErrorClass;

/// Why an attestation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// A parse failure: not a canonical `SignedAttestation`, bad base64url, bad
    /// JSON, a field of the wrong shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The structure concerned.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size or count limit of §14.8 is exceeded.
    #[error("limit exceeded: {what} is {actual}, at most {max} allowed")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The limit.
        max: u64,
        /// The value found.
        actual: u64,
    },
    /// A record version, kind, JWS algorithm (including `none`) or DID method this
    /// version does not support (ATT-9).
    #[error("unsupported {what}: {value}")]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// The value found (truncated to 64 bytes).
        value: String,
    },
    /// An issuer key that cannot be used (RSA modulus under 2048 bits, a point off
    /// the curve, a JWK missing its members).
    #[error("invalid key {what}: {reason}")]
    InvalidKey {
        /// Which key.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature that does not verify: the user key's over the record, or the
    /// issuer's over the evidence.
    #[error("bad signature: {what}")]
    BadSignature {
        /// Which signature.
        what: &'static str,
    },
    /// No key of the trusted issuer's JWKS matches the token's `kid` and `alg`.
    #[error("unknown signer: {what}")]
    UnknownSigner {
        /// What was looked for.
        what: &'static str,
    },
    /// Authentic, but for another context: issuer not trusted, audience, nonce,
    /// subject, DID or signer's user not matching.
    #[error("wrong context: {what} does not match")]
    WrongContext {
        /// Which value does not match.
        what: &'static str,
    },
    /// Evidence outside its validity at the record's `created_at_ms`, or a record
    /// made in the verifier's future (ATT-8).
    #[error("expired: {what}")]
    Expired {
        /// Which bound is crossed.
        what: &'static str,
    },
    /// The same evidence already backs another attestation of the set (ATT-11).
    #[error("replay: the evidence already backs another attestation")]
    Replay,
    /// A DID document that does not list the user key (ATT-10); a `did:plc` log
    /// that is not a chain, ends in a tombstone or does not list the statement's
    /// key (ATT-16..ATT-18).
    #[error("invalid attestation: {reason}")]
    InvalidOperation {
        /// Which rule is broken.
        reason: &'static str,
    },
    /// A class raised by `clientful-core` (the canonical scan, key checks).
    #[error(transparent)]
    Core(#[from] clientful_core::Error),
    /// SIWE evidence failed (§14.10); its class is the table's.
    #[error(transparent)]
    Siwe(#[from] crate::siwe::SiweError),
    /// WebAuthn evidence failed (§14.11); its class is the table's.
    #[error(transparent)]
    WebAuthn(#[from] crate::webauthn::WebAuthnError),
}

impl AttestError {
    /// The spec error class of this error (ERR-1).
    pub fn class(&self) -> ErrorClass {
        match self {
            AttestError::Malformed { .. } => ErrorClass::Malformed,
            AttestError::LimitExceeded { .. } => ErrorClass::LimitExceeded,
            AttestError::Unsupported { .. } => ErrorClass::UnsupportedVersion,
            AttestError::InvalidKey { .. } => ErrorClass::InvalidKey,
            AttestError::BadSignature { .. } => ErrorClass::BadSignature,
            AttestError::UnknownSigner { .. } => ErrorClass::UnknownSigner,
            AttestError::WrongContext { .. } => ErrorClass::WrongContext,
            AttestError::Expired { .. } => ErrorClass::Expired,
            AttestError::Replay => ErrorClass::Replay,
            AttestError::InvalidOperation { .. } => ErrorClass::InvalidOperation,
            AttestError::Siwe(e) => e.class(),
            AttestError::WebAuthn(e) => e.class(),
            AttestError::Core(e) => e.class(),
        }
    }

    pub(crate) fn malformed(what: &'static str, reason: &'static str) -> Self {
        AttestError::Malformed { what, reason }
    }

    pub(crate) fn unsupported(what: &'static str, value: &str) -> Self {
        let mut end = value.len().min(64);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        AttestError::Unsupported {
            what,
            value: value.get(..end).unwrap_or_default().to_string(),
        }
    }

    pub(crate) fn limit(what: &'static str, max: usize, actual: usize) -> Self {
        AttestError::LimitExceeded {
            what,
            max: max as u64,
            actual: actual as u64,
        }
    }
}
