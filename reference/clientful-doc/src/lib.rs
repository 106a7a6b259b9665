//! Collaborative documents over the Clientful envelope DAG (spec §8).
//!
//! A [`replica::Replica`] holds one document of one space on one device: the CRDT
//! (Yjs through `yrs`, or Automerge) edited with the libraries' own APIs, the DAG of
//! accepted envelopes, a bounded buffer for envelopes whose predecessors are
//! missing, the per-author chains with equivocation detection, and an outbox of
//! sealed envelopes. [`sync::SyncSession`] runs the sync exchange with one peer.
//!
//! Everything here is sans-IO: the caller feeds bytes in and takes bytes out;
//! randomness comes from a seed given at construction, and no clock is read.
//!
//! # Public API
//!
//! The root re-exports the replica ([`Replica`], [`ReplicaConfig`], [`CrdtKind`],
//! [`Disposition`], [`Verdict`]), the sync exchange ([`SyncSession`]), the CRDT
//! documents ([`YjsDoc`], [`AutomergeDoc`], [`YjsSchema`]), text editing
//! ([`insert_text`], [`delete_text`], [`TextEditError`]) and [`DocError`]. Public
//! enums are `#[non_exhaustive]` except [`CrdtKind`] (spec v1's two CRDTs) and the
//! canonical JSON value. Automerge is behind the `automerge` feature (on by
//! default): without it the Automerge library is not linked, [`CrdtKind::is_built`]
//! says so and [`Replica::try_new`] refuses an Automerge document with
//! [`DocError::CrdtNotBuilt`] (a Yjs-only browser bundle). `testkit` (fixed-seed worlds and edit helpers) and
//! `fuzzing` exist only with the `test-utils` feature, which no production crate
//! enables.

#![forbid(unsafe_code)]

pub mod authority;
pub mod binding;
pub mod canonical_json;
pub mod checkpoint;
pub mod content;
pub mod crdt;
pub mod dag;
pub mod digest;
pub mod error;
/// Fuzz entry points (for `fuzz/` and the corpus replay tests); behind the
/// `test-utils` feature.
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzzing;
pub mod replica;
pub mod sync;
/// Fixed-seed worlds and edit helpers for tests, the simulator, vectors and
/// benchmarks; behind the `test-utils` feature.
#[cfg(any(test, feature = "test-utils"))]
pub mod testkit;
pub mod text;

#[cfg(feature = "automerge")]
pub use crdt::AutomergeDoc;
pub use crdt::{YjsDoc, YjsSchema};
pub use error::DocError;
pub use replica::{CrdtKind, Disposition, Replica, ReplicaConfig, Verdict};
pub use sync::SyncSession;
pub use text::{TextEditError, delete_text, insert_text};
