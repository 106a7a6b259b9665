//! The closed list of error classes (spec §4) and the crate's typed error.
//!
//! [`ErrorClass`] is the protobuf enum `clientful.v1.ErrorClass`; its short names
//! (`MALFORMED`, `BAD_SIGNATURE`, ...) are what test vectors and the conformance
//! harness compare. [`Error`] carries a human-readable detail on top of the class;
//! only the class is normative.

pub use clientful_proto::v1::ErrorClass;

/// Short (vector) name of an error class: the protobuf name without `ERROR_CLASS_`.
pub fn class_name(class: ErrorClass) -> &'static str {
    let full = class.as_str_name();
    full.strip_prefix("ERROR_CLASS_").unwrap_or(full)
}

/// Parses a short class name (`"MALFORMED"`) back to the class.
pub fn class_from_name(name: &str) -> Option<ErrorClass> {
    let mut full = alloc::string::String::from("ERROR_CLASS_");
    full.push_str(name);
    ErrorClass::from_str_name(&full).filter(|c| *c != ErrorClass::Unspecified)
}

/// Why the core rejected an input. Each variant maps to exactly one spec class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a well-formed encoding of the expected message.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The message or field concerned.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Decodes, but is not the canonical encoding.
    #[error("non-canonical {what}: {reason}")]
    NonCanonical {
        /// The message or field concerned.
        what: &'static str,
        /// Which canonical-form rule is broken.
        reason: &'static str,
    },
    /// A version or cipher suite this implementation does not support.
    #[error("unsupported {what}: {value}")]
    UnsupportedVersion {
        /// Which version field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A limit of spec §7 is exceeded.
    #[error("limit exceeded: {what} is {actual}, at most {max} allowed")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The limit.
        max: u64,
        /// The value found.
        actual: u64,
    },
    /// A public key that is non-canonical, of small order, or otherwise unusable.
    #[error("invalid key {what}: {reason}")]
    InvalidKey {
        /// Which key.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature that does not verify under the pinned rule.
    #[error("bad signature: {what}")]
    BadSignature {
        /// Which signature.
        what: &'static str,
    },
    /// The signer is not known in the verifying context.
    #[error("unknown signer")]
    UnknownSigner,
    /// Authentic, but for another space, document or user.
    #[error("wrong context: {what} does not match")]
    WrongContext {
        /// Which identifier does not match.
        what: &'static str,
    },
    /// The key epoch is not known to the receiver.
    #[error("unknown key epoch")]
    UnknownEpoch,
    /// Key commitment mismatch or AEAD authentication failure.
    #[error("decryption failed: {reason}")]
    DecryptFailed {
        /// Commitment or tag.
        reason: &'static str,
    },
    /// An ephemeral message outside its freshness window, or replayed (spec §10.6).
    #[error("replay: {reason}")]
    Replay {
        /// Stale, from the future, or a counter already seen.
        reason: &'static str,
    },
    /// A different envelope with the same author, document and sequence number was
    /// already accepted.
    #[error("equivocation at sequence number {seq}")]
    Equivocation {
        /// The sequence number both envelopes claim.
        seq: u64,
    },
    /// The signer is not a member with the capability the operation needs (§11).
    #[error("not a member: {what}")]
    NotAMember {
        /// Which capability is missing.
        what: &'static str,
    },
    /// The signer was removed (or its device revoked) in the causal past (§11).
    #[error("removed member: {what}")]
    RemovedMember {
        /// What was removed.
        what: &'static str,
    },
    /// Authentic evidence outside its validity period at the instant it is checked
    /// at (spec §14, ATT-8).
    #[error("expired: {what}")]
    Expired {
        /// What is outside its validity.
        what: &'static str,
    },
    /// Well-formed and authentic, but breaks a semantic rule of its layer.
    #[error("invalid operation: {reason}")]
    InvalidOperation {
        /// Which rule is broken.
        reason: &'static str,
    },
}

impl Error {
    /// The spec error class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Malformed { .. } => ErrorClass::Malformed,
            Error::NonCanonical { .. } => ErrorClass::NonCanonical,
            Error::UnsupportedVersion { .. } => ErrorClass::UnsupportedVersion,
            Error::LimitExceeded { .. } => ErrorClass::LimitExceeded,
            Error::InvalidKey { .. } => ErrorClass::InvalidKey,
            Error::BadSignature { .. } => ErrorClass::BadSignature,
            Error::UnknownSigner => ErrorClass::UnknownSigner,
            Error::WrongContext { .. } => ErrorClass::WrongContext,
            Error::UnknownEpoch => ErrorClass::UnknownEpoch,
            Error::DecryptFailed { .. } => ErrorClass::DecryptFailed,
            Error::Replay { .. } => ErrorClass::Replay,
            Error::Equivocation { .. } => ErrorClass::Equivocation,
            Error::NotAMember { .. } => ErrorClass::NotAMember,
            Error::RemovedMember { .. } => ErrorClass::RemovedMember,
            Error::Expired { .. } => ErrorClass::Expired,
            Error::InvalidOperation { .. } => ErrorClass::InvalidOperation,
        }
    }

    pub(crate) fn malformed(what: &'static str, reason: &'static str) -> Self {
        Error::Malformed { what, reason }
    }

    pub(crate) fn non_canonical(what: &'static str, reason: &'static str) -> Self {
        Error::NonCanonical { what, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_round_tripping_short_name() {
        for value in 1..=19 {
            let class = ErrorClass::try_from(value).expect("class in range");
            let name = class_name(class);
            assert!(!name.starts_with("ERROR_CLASS_"));
            assert_eq!(class_from_name(name), Some(class));
        }
        assert_eq!(class_from_name("UNSPECIFIED"), None);
        assert_eq!(class_from_name("NOPE"), None);
    }
}
