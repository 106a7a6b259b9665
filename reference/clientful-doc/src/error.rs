//! Errors of the document layer. Every one maps to a spec error class.

use clientful_core::{Error as CoreError, ErrorClass};

/// Why the document layer rejected an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The envelope itself failed to open (spec §6.8).
    #[error(transparent)]
    Envelope(#[from] CoreError),
    /// The CRDT payload does not decode.
    #[error("malformed {crdt} payload: {reason}")]
    MalformedPayload {
        /// `yjs` or `automerge`.
        crdt: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Authentic and well-formed, but breaks a rule of spec §8 (actor binding,
    /// clock ranges, chain links, content type).
    #[error("invalid operation: {0}")]
    InvalidOperation(String),
    /// A Yjs update inserts under a device index that no operation the replica
    /// holds assigns to its author (DOC-22): the replica waits for the
    /// membership; this is not a verdict.
    #[error("Yjs client {client} is not assigned to its author (yet)")]
    UnassignedIndex {
        /// The client id.
        client: u64,
    },
    /// The document's CRDT is not compiled into this build (Automerge without
    /// the `automerge` feature).
    #[error("{crdt} is not built into this module (feature `{crdt}`)")]
    CrdtNotBuilt {
        /// `automerge`.
        crdt: &'static str,
    },
    /// A bound of the document layer is exceeded (buffer, message size).
    #[error("limit exceeded: {what}")]
    LimitExceeded {
        /// Which bound.
        what: &'static str,
    },
}

impl DocError {
    /// The spec error class.
    pub fn class(&self) -> ErrorClass {
        match self {
            DocError::Envelope(e) => e.class(),
            DocError::MalformedPayload { .. } => ErrorClass::Malformed,
            DocError::InvalidOperation(_) | DocError::UnassignedIndex { .. } => {
                ErrorClass::InvalidOperation
            }
            DocError::LimitExceeded { .. } => ErrorClass::LimitExceeded,
            // Not a verdict on the input: this build cannot read the document.
            DocError::CrdtNotBuilt { .. } => ErrorClass::UnsupportedVersion,
        }
    }
}
