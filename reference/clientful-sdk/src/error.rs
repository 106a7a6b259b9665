//! The SDK's errors: typed, each printing as one clear line. They say what
//! went wrong, never which command to run: a shell (the CLI, an app) adds its
//! own hint by matching on the variant.

use std::path::PathBuf;

use clientful_core::ErrorClass;
use clientful_core::membership::Role;

pub use crate::codes::{CodeError, CodeKind, CodeProblem};
pub use crate::document::EditError;
pub use crate::storage_url::StorageUrlError;
pub use clientful_session::{SessionError, Step};

fn short(id: &[u8; 32]) -> String {
    hex::encode(id.get(..6).unwrap_or_default())
}

/// A file the SDK keeps in the client's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// `identity.json`.
    Identity,
    /// A space's `space.json`.
    SpaceSettings,
    /// A user backup (the text of `Profile::backup`).
    Backup,
    /// A recovery request in progress (`recovery-request.json`, REC-5).
    RecoveryRequest,
    /// A user-key rotation in progress (`rotation.json`, MEM-32).
    Rotation,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Identity => "an identity file",
            FileKind::SpaceSettings => "a space settings file",
            FileKind::Backup => "a user backup",
            FileKind::RecoveryRequest => "a recovery request file",
            FileKind::Rotation => "a user-key rotation file",
        })
    }
}

/// What the SDK was doing when a protocol rule refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Certifying this device (ID-3).
    DeviceCertificate,
    /// Creating a space (MEM-1).
    CreateSpace,
    /// Redeeming an invite (MEM-21).
    RedeemInvite,
    /// Joining a space with a device link (MEM-24).
    JoinSpace,
    /// Opening a space stored on this device.
    OpenSpace,
    /// Committing a document edit into an envelope (§8).
    SealEdit,
    /// Deriving the keys of a live room (BRK-5).
    Room,
    /// Sealing a live room message (BRK-12).
    RoomMessage,
    /// Sealing a user backup (BAK-2).
    SealBackup,
    /// Opening a sealed user backup (BAK-6): `DECRYPT_FAILED` is a wrong
    /// passphrase or a damaged file.
    OpenBackup,
    /// Making a recovery set (REC-2..REC-4).
    CreateRecovery,
    /// Making a recovery request (REC-5).
    RecoveryRequest,
    /// Restoring from recovery share releases (REC-7): `INVALID_OPERATION` is
    /// fewer shares than the threshold.
    RestoreFromShares,
    /// Rotating the user key (ROT-2, MEM-32).
    RotateUserKey,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::DeviceCertificate => "device certificate",
            Action::CreateSpace => "creating the space",
            Action::RedeemInvite => "redeeming the invite",
            Action::JoinSpace => "joining the space",
            Action::OpenSpace => "opening the space",
            Action::SealEdit => "sealing the edit",
            Action::Room => "room",
            Action::RoomMessage => "room message",
            Action::SealBackup => "sealing the backup",
            Action::OpenBackup => "opening the backup",
            Action::CreateRecovery => "making the recovery set",
            Action::RecoveryRequest => "making the recovery request",
            Action::RestoreFromShares => "restoring from recovery shares",
            Action::RotateUserKey => "rotating the user key",
        })
    }
}

/// What the device lacks to do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// No key of the current epoch (not welcomed yet, or removed).
    #[error("this device holds no current key of the space (not welcomed yet, or removed)")]
    NoCurrentKey,
    /// The member's role cannot write documents (MEM-18).
    #[error("your role in this space is {0:?}: it cannot write documents")]
    ReadOnly(Role),
    /// This device's user is not a member (not admitted yet, or removed).
    #[error("this device is not a member of the space (not admitted yet, or removed)")]
    NotAMember,
    /// Every envelope of a document is sealed under keys this device lacks.
    #[error("document {} is sealed under keys this device does not hold", short(.0))]
    DocumentSealed([u8; 32]),
    /// A file is sealed under an epoch this device lacks.
    #[error(
        "file {} is sealed under an epoch this device does not hold (removed from the space, or not synced yet)",
        short(.0)
    )]
    FileSealed([u8; 32]),
    /// A member with no active device, asked to hold a recovery share (REC-4).
    #[error("member {} has no active device to hold a recovery share", short(.0))]
    NoDevice([u8; 32]),
}

/// A name or id prefix that picks nothing, or more than one thing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// An empty prefix.
    #[error("empty {what} id")]
    Empty {
        /// What was looked up (`member`, `device`, `document`...).
        what: &'static str,
    },
    /// Nothing matches.
    #[error("no {what} matches `{prefix}`")]
    NoMatch {
        /// What was looked up.
        what: &'static str,
        /// The prefix given.
        prefix: String,
    },
    /// Several match.
    #[error("`{prefix}` matches {count} {what}s; give more characters")]
    Ambiguous {
        /// What was looked up.
        what: &'static str,
        /// The prefix given.
        prefix: String,
        /// How many match.
        count: usize,
    },
    /// No document with this id is held here.
    #[error("no document {}", hex::encode(.0))]
    NoDocument([u8; 32]),
}

/// A file reference that is not one (§9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileRefError {
    /// Not hexadecimal.
    #[error("file reference is not hex")]
    NotHex,
    /// Not 64 bytes.
    #[error("file reference is not 64 bytes")]
    Length,
}

/// A failure of the live connection to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The room client task ended.
    #[error("the room client stopped")]
    Stopped,
    /// The broker does not speak this protocol version (BRK-2).
    #[error("the broker refused this protocol version")]
    Refused,
}

/// What went wrong, in words a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A file or folder of the client's home could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A file of the client's home (or a backup) does not parse.
    #[error("{}: not {kind}: {error}", path.display())]
    BadFile {
        /// The path (empty for a backup given as text).
        path: PathBuf,
        /// What it should be.
        kind: FileKind,
        /// The parse error.
        error: serde_json::Error,
    },
    /// A file of the client's home has a version this client does not read.
    #[error("{}: {kind} of version {version} is not supported by this client", path.display())]
    UnsupportedVersion {
        /// The path (empty for a backup given as text).
        path: PathBuf,
        /// What it is.
        kind: FileKind,
        /// Its version.
        version: u32,
    },
    /// A secret of a file (a seed, a lobby or link secret) is not 32 bytes of hex.
    #[error("{kind}: a secret is not 32 bytes of hex")]
    BadSecret {
        /// The file holding it.
        kind: FileKind,
    },
    /// A backup whose user key does not match its seed.
    #[error("backup is damaged: its user key does not match its seed")]
    BackupMismatch,
    /// No recovery request was started in this home folder (REC-5).
    #[error("no recovery request in {}; start one first", .0.display())]
    NoRecoveryRequest(PathBuf),
    /// The home folder has no identity yet.
    #[error("no identity in {}", .0.display())]
    NoIdentity(PathBuf),
    /// An identity already exists where one was to be created.
    #[error("an identity already exists in {}; refusing to overwrite it", .0.display())]
    IdentityExists(PathBuf),
    /// The operating system gave no randomness.
    #[error("no OS randomness: {0}")]
    Randomness(getrandom::Error),
    /// Fetching attestation material (an issuer's discovery document or JWKS, a
    /// DID document) failed.
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// An invite code, device link code or device request that is not one.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// A storage URL that is not one, or lacks what its backend needs.
    #[error(transparent)]
    StorageUrl(#[from] StorageUrlError),
    /// A file reference that is not one.
    #[error(transparent)]
    FileRef(#[from] FileRefError),
    /// Nothing, or more than one thing, matches a name or id prefix.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The operation needs a key or role this device does not have.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The space is already on this device.
    #[error("this device already has space {} (`{name}`)", short(space_id))]
    SpaceExists {
        /// The space.
        space_id: [u8; 32],
        /// Its local name.
        name: String,
    },
    /// A space was created or joined and kept on this device, but its first
    /// sync failed (a later sync retries).
    #[error("{0} (the space is kept on this device)")]
    FirstSync(Box<ClientError>),
    /// The storage refused or failed (network, permissions, verdicts).
    #[error("storage: {0}")]
    Storage(#[from] clientful_storage::StorageError),
    /// The session core refused a membership step.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A protocol rule refused the operation.
    #[error("{what}: {class:?}: {error}")]
    Protocol {
        /// What was attempted.
        what: Action,
        /// The spec error class.
        class: ErrorClass,
        /// The core's error.
        error: clientful_core::Error,
    },
    /// A document rule refused the operation.
    #[error("{what}: {class:?}: {error}")]
    Document {
        /// What was attempted.
        what: Action,
        /// The spec error class.
        class: ErrorClass,
        /// The document layer's error.
        error: clientful_doc::error::DocError,
    },
    /// An edit of a document failed.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The broker connection failed.
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    /// An attestation was refused (spec §14): its class says why.
    #[cfg(feature = "attest")]
    #[error("attestation: {class:?}: {error}")]
    Attestation {
        /// The spec error class.
        class: ErrorClass,
        /// The attestation crate's error.
        error: clientful_attest::AttestError,
    },
}

#[cfg(feature = "attest")]
impl From<clientful_attest::AttestError> for ClientError {
    fn from(error: clientful_attest::AttestError) -> Self {
        ClientError::Attestation {
            class: error.class(),
            error,
        }
    }
}

impl ClientError {
    pub(crate) fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        ClientError::Io {
            path: path.to_owned(),
            error,
        }
    }

    pub(crate) fn core(what: Action) -> impl FnOnce(clientful_core::Error) -> Self {
        move |e| ClientError::Protocol {
            what,
            class: e.class(),
            error: e,
        }
    }

    pub(crate) fn doc(what: Action) -> impl FnOnce(clientful_doc::error::DocError) -> Self {
        move |e| ClientError::Document {
            what,
            class: e.class(),
            error: e,
        }
    }

    /// A short, stable name of what went wrong, for shells that pass errors on
    /// as text (the browser's `[KIND] message`): the spec's error class for a
    /// protocol or document refusal, else the SDK's kind (`NOT_INITIALIZED`,
    /// `ALREADY_EXISTS`, `ACCESS`, `NOT_FOUND`, `STORAGE`, ...).
    pub fn kind(&self) -> &'static str {
        use clientful_core::error::class_name;
        match self {
            ClientError::Io { .. } => "IO",
            ClientError::BadFile { .. }
            | ClientError::BadSecret { .. }
            | ClientError::BackupMismatch => "BAD_FILE",
            ClientError::UnsupportedVersion { .. } => "UNSUPPORTED",
            ClientError::NoIdentity(_) => "NOT_INITIALIZED",
            ClientError::IdentityExists(_) | ClientError::SpaceExists { .. } => "ALREADY_EXISTS",
            ClientError::Randomness(_) => "RANDOMNESS",
            ClientError::Fetch { .. } => "FETCH",
            ClientError::Code(_) => "INVALID_CODE",
            ClientError::StorageUrl(_) | ClientError::FileRef(_) | ClientError::Edit(_) => {
                "INVALID_ARGUMENT"
            }
            ClientError::Lookup(_) => "NOT_FOUND",
            ClientError::FirstSync(e) => e.kind(),
            ClientError::Storage(_) => "STORAGE",
            ClientError::Protocol { class, .. } | ClientError::Document { class, .. } => {
                class_name(*class)
            }
            #[cfg(feature = "attest")]
            ClientError::Attestation { class, .. } => class_name(*class),
            ClientError::Broker(_) => "BROKER",
            e if e.is_no_access() => "ACCESS",
            _ => "SESSION",
        }
    }

    /// Whether the device lacks a key or role the operation needs (a sync
    /// may bring the key).
    pub fn is_no_access(&self) -> bool {
        matches!(
            self,
            ClientError::Access(_) | ClientError::Session(SessionError::NoCurrentKey { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_what_went_wrong() {
        assert_eq!(
            ClientError::NoIdentity(PathBuf::new()).kind(),
            "NOT_INITIALIZED"
        );
        assert_eq!(
            ClientError::IdentityExists(PathBuf::new()).kind(),
            "ALREADY_EXISTS"
        );
        assert_eq!(
            ClientError::Access(AccessError::NoCurrentKey).kind(),
            "ACCESS"
        );
        assert_eq!(ClientError::Broker(BrokerError::Stopped).kind(), "BROKER");
        // A first sync that failed says why.
        let first = ClientError::FirstSync(Box::new(ClientError::Broker(BrokerError::Refused)));
        assert_eq!(first.kind(), "BROKER");
    }
}
