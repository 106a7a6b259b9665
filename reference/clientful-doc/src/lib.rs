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
pub mod fuzzing;
pub mod replica;
pub mod sync;
pub mod testkit;
pub mod text;

pub use error::DocError;
pub use replica::{CrdtKind, Disposition, Replica, ReplicaConfig, Verdict};
