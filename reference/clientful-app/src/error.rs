//! The errors of the application layer.

use clientful_doc::DocError;

/// Why an application-level operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The document layer refused (sealing, limits).
    #[error("document: {0}")]
    Doc(#[from] DocError),
    /// A CRDT library call failed.
    #[error("crdt: {0}")]
    Crdt(String),
    /// The policy forbids deleting while offline.
    #[error("deleting is not allowed while offline (policy: no deletes while offline)")]
    Offline,
    /// The document's data needs a newer app to be written (spec APP-9).
    #[error("this document needs app schema version {need} or later to be changed; update the app")]
    UpdateRequired {
        /// The lowest schema version allowed to write.
        need: u32,
    },
    /// A peer speaks a newer protocol version than this app (spec APP-12).
    #[error("a peer uses a newer protocol version than this app supports; update the app")]
    ProtocolTooNew,
    /// A stored record does not parse (written by a buggy or malicious member).
    #[error("malformed record {key}: {reason}")]
    Malformed {
        /// The data key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The envelope just committed is not where the protocol says it must be.
    #[error("internal: {0}")]
    Internal(String),
}
