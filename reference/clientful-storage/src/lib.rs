//! The Clientful storage layout on untrusted file storage (spec §9).
//!
//! Pure, sans-IO parts: [`layout`] (keys and paths), [`object`] (sealed, signed
//! objects and their validated bodies), [`hwm`] (rollback, fork and withholding
//! detection; the snapshot choice), [`chunk`] (file chunks) and [`causal`]
//! (ordering envelopes for snapshots), [`coverage`] (devices' attestations of
//! their own segments and the check of a snapshot's claimed coverage). The IO shell: [`backend`] (the
//! [`backend::BlobStore`] trait over OpenDAL), [`local`] (the redb device store),
//! [`space`] (writing segments and head manifests, pulling, cold start,
//! compaction), [`files`] (streamed large files) and [`export`] (plain JSON export
//! and store copy).
#![forbid(unsafe_code)]

pub mod backend;
pub mod causal;
pub mod chunk;
pub mod coverage;
pub mod error;
pub mod export;
pub mod files;
pub mod hwm;
pub mod layout;
pub mod local;
pub mod object;
pub mod space;

pub use backend::{BlobStore, OpendalStore, S3Config};
pub use error::StorageError;
pub use local::LocalStore;
pub use space::Space;
