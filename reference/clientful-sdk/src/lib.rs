//! The Clientful client SDK: the small facade an app embeds.
//!
//! A [`Client`] is one device of one user, kept in a home folder: its identity
//! ([`identity`]), and one folder per space it belongs to with the device-local
//! store (spec §9.11). A [`SpaceSession`] opens a space over its storage (a URL,
//! see [`storage_url`]): members, invites and devices (spec §11), documents edited
//! with the yrs or automerge API ([`Document`]), files, and [`SpaceSession::sync`]
//! through storage. [`live`] keeps a space in sync over a broker as well.
//!
//! ```no_run
//! # async fn demo() -> Result<(), clientful::ClientError> {
//! use clientful::{Client, CrdtKind};
//! let alice = Client::init("/tmp/alice".as_ref(), "alice")?;
//! let mut space = alice.create_space("team", "file:///tmp/team-storage").await?;
//! let doc = space.new_document(CrdtKind::Yjs, "Notes")?;
//! space.edit(&doc, |d| d.insert_text(0, "hello"))?;
//! space.sync().await?;
//! println!("{}", space.document(&doc)?.json());
//! # Ok(()) }
//! ```
//!
//! A [`SpaceSession`] is the native shell of the session core
//! (`clientful_session`): the core decides (membership follow-ups, the outbox
//! of key deliveries, the sync exchange), the shell does the IO (redb,
//! OpenDAL, tokio, the clock) and holds the documents.
//!
//! Every method that changes the space writes to the device-local store before
//! it returns; `sync` uploads and downloads. Nothing here trusts the storage or
//! the broker: every byte read is verified again by the core.
//!
//! # Public API
//!
//! The root re-exports the facade ([`Client`], [`SpaceSession`], [`Document`],
//! the error types); the modules stay public for the rest. Public enums are
//! `#[non_exhaustive]`. The SDK's normal build enables no crate's `test-utils`
//! feature (checked by scripts/check-layering.sh).
#![forbid(unsafe_code)]

/// Fetching attestation material (spec §14): the shell's IO.
#[cfg(all(feature = "attest-fetch", not(target_arch = "wasm32")))]
pub mod attest_fetch;
pub mod codes;
pub mod device_dir;
pub mod document;
pub mod error;
pub mod identity;
pub mod live;
pub mod passphrase;
pub mod space;
pub mod storage_url;

pub use clientful_core::membership::PendingAdmission;
pub use clientful_doc::replica::CrdtKind;
pub use device_dir::DeviceDir;
#[cfg(not(target_arch = "wasm32"))]
pub use device_dir::FsDir;
pub use document::Document;
pub use error::{
    AccessError, Action, BrokerError, ClientError, CodeError, EditError, FileKind, FileRefError,
    LookupError, SessionError, StorageUrlError,
};
pub use identity::{
    Client, Profile, RotatedSpace, RotationReport, SpaceRotation, backup_owner, is_sealed_backup,
};
#[cfg(feature = "attest")]
pub use space::AttestationView;
pub use space::{
    Alarm, Change, CompactReport, DocInfo, HeldShareInfo, InviteInfo, MemberInfo, MembershipAlarm,
    SpaceSession, StaleWriter, SyncReport, Withholding,
};
