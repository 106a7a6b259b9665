//! The Clientful storage layout on untrusted file storage (spec §9): the IO shell.
//!
//! The layout itself (keys and paths, sealed and signed objects, high-water marks,
//! coverage, causal order, chunks, and every pull, compaction, checkpoint and
//! repair decision) is pure code in `clientful-storage-layout`, re-exported here
//! under its old module names ([`layout`], [`object`], [`hwm`], [`coverage`],
//! [`causal`], [`chunk`], [`plan`], [`error`]). This crate drives it over real
//! backends: [`backend`] (the [`backend::BlobStore`] trait over OpenDAL),
//! [`local`] (the redb device store), [`space`] (writing segments and head
//! manifests, pulling, cold start, compaction, repair), [`files`] (streamed large
//! files) and [`export`] (plain JSON export and store copy).
//!
//! # Public API
//!
//! The root re-exports [`Space`], [`LocalStore`], [`BlobStore`],
//! [`OpendalStore`], [`S3Config`] and [`StorageError`]; the modules stay public.
//! Public enums are `#[non_exhaustive]`. No test helper is on this crate's
//! surface (its test helper binaries build their fixed keys themselves), and its
//! normal build enables no crate's `test-utils` feature.
#![forbid(unsafe_code)]

pub mod backend;
pub mod export;
pub mod files;
pub mod local;
pub mod space;

pub use clientful_storage_layout::{causal, chunk, coverage, error, hwm, layout, object, plan};

pub use backend::{BlobStore, OpendalStore, S3Config};
pub use error::StorageError;
pub use local::LocalStore;
pub use space::Space;
