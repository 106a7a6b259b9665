//! The SDK's one error type: every variant prints as one clear line.

use clientful_core::ErrorClass;

/// What went wrong, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file or folder of the client's home could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The home folder has no identity yet.
    #[error("no identity in {0} (run `clientful identity create --name NAME` first)")]
    NoIdentity(String),
    /// An identity already exists where one was to be created.
    #[error("an identity already exists in {0}; refusing to overwrite it")]
    IdentityExists(String),
    /// Bad user input: a code, a URL, an id, an argument.
    #[error("{0}")]
    Invalid(String),
    /// Nothing matches a name or id prefix.
    #[error("{0}")]
    NotFound(String),
    /// The operation needs a key this device does not hold (not a member yet,
    /// or removed).
    #[error("{0}")]
    NoAccess(String),
    /// The storage refused or failed (network, permissions, verdicts).
    #[error("storage: {0}")]
    Storage(#[from] clientful_storage::StorageError),
    /// A protocol rule refused the operation.
    #[error("{what}: {class:?}: {reason}")]
    Protocol {
        /// What was attempted.
        what: String,
        /// The spec error class.
        class: ErrorClass,
        /// Detail.
        reason: String,
    },
    /// The broker connection failed.
    #[error("broker: {0}")]
    Broker(String),
}

impl ClientError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ClientError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn core(what: &str, e: clientful_core::Error) -> Self {
        ClientError::Protocol {
            what: what.to_owned(),
            class: e.class(),
            reason: e.to_string(),
        }
    }

    pub(crate) fn doc(what: &str, e: clientful_doc::error::DocError) -> Self {
        ClientError::Protocol {
            what: what.to_owned(),
            class: e.class(),
            reason: e.to_string(),
        }
    }
}
