//! Application-level consistency for Clientful documents (spec chapter 13).
//!
//! CRDTs converge, but converged is not always what users meant. This crate holds
//! reusable, sans-IO building blocks for the four classic problems of apps without
//! a backend, each a pure function of a replica's merged state and causal DAG, so
//! that every replica reaches the same verdict:
//!
//! * [`lifecycle`]: deletion into a trash, undone automatically when the deletion
//!   is concurrent with edits it never saw (decided from the DAG), with the
//!   "no deletes while offline" and "hold until seen" policies;
//! * [`invariants`]: "if X then Y" checks run after every merge, with three
//!   compensations (after-merge repair, preemptive recreation, conflict
//!   surfacing) whose writes are deterministic and idempotent, so they converge;
//! * [`migrate`]: schema versions, pure ordered migrations applied lazily and
//!   convergently, and the gate that tells an old app to stop writing;
//! * [`diagnose`]: diagnostic bundles without plaintext, and their comparison.
//!
//! [`data`] is the key-value view of a document's data map these build on.

#![forbid(unsafe_code)]

pub mod data;
pub mod diagnose;
pub mod error;
pub mod invariants;
pub mod lifecycle;
pub mod migrate;

pub use error::AppError;
