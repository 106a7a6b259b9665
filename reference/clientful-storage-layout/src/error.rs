//! The crate's typed errors and their spec error classes (spec §4, §9.13).

use clientful_core::ErrorClass;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A stored object does not verify, cannot be decoded, or is listed but missing
    /// (`STORAGE_CORRUPT`).
    #[error("storage corrupt: {what}: {reason}")]
    Corrupt {
        /// The object concerned (its path or role).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The layout version is not supported (`STORAGE_VERSION`).
    #[error("unsupported storage layout version {found}")]
    Version {
        /// The version found.
        found: u64,
    },
    /// Storage served an older or forked head than one already seen (`ROLLBACK`).
    #[error("rollback detected: {what}: {reason}")]
    Rollback {
        /// The head manifest concerned.
        what: String,
        /// Rolled back, forked or withheld, with the versions.
        reason: String,
    },
    /// The storage backend failed (network, permissions): not a protocol verdict.
    #[error("backend error on {path}: {reason}")]
    Backend {
        /// The path of the failed operation.
        path: String,
        /// The backend's message.
        reason: String,
    },
    /// The device-local store failed.
    #[error("local store error: {0}")]
    Local(String),
    /// The device-local store file is damaged: it failed redb's integrity check,
    /// redb panicked reading it, or its content is inconsistent.
    #[error("device store {path} is damaged: {reason}")]
    LocalCorrupt {
        /// The store file.
        path: std::path::PathBuf,
        /// What was found.
        reason: String,
    },
    /// The device-local store file is open in another process (one process at a
    /// time holds a device store).
    #[error("device store {path} is in use by another process")]
    LocalBusy {
        /// The store file.
        path: std::path::PathBuf,
    },
    /// The device-local store file of a space this device already holds is missing
    /// or empty (was deleted or truncated); it is not silently started afresh.
    #[error("device store {path} is {state}")]
    LocalMissing {
        /// The store file.
        path: std::path::PathBuf,
        /// "missing" or "empty".
        state: &'static str,
    },
    /// A core operation failed on local input (sealing, key derivation).
    #[error("core error: {0}")]
    Core(#[from] clientful_core::Error),
    /// Local I/O (file streams, export folder).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// The spec error class of a protocol verdict; `None` for operational failures
    /// (backend, local store, I/O).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            StorageError::Corrupt { .. } => Some(ErrorClass::StorageCorrupt),
            StorageError::Version { .. } => Some(ErrorClass::StorageVersion),
            StorageError::Rollback { .. } => Some(ErrorClass::Rollback),
            StorageError::Core(e) => Some(e.class()),
            StorageError::Backend { .. }
            | StorageError::Local(_)
            | StorageError::LocalCorrupt { .. }
            | StorageError::LocalMissing { .. }
            | StorageError::LocalBusy { .. }
            | StorageError::Io(_) => None,
        }
    }

    /// A `STORAGE_CORRUPT` verdict about `what`.
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Names the storage object a corruption verdict concerns (so a report of
    /// what a sync skipped says which object it was).
    pub fn at_path(self, path: &str) -> Self {
        match self {
            StorageError::Corrupt { what, reason } => StorageError::Corrupt {
                what: format!("{what} (object {path})"),
                reason,
            },
            other => other,
        }
    }

    /// A `ROLLBACK` verdict about `what`.
    pub fn rollback(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::Rollback {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
