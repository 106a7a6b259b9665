//! Sans-IO core of the Clientful protocol (spec v1).
//!
//! This crate owns everything a conforming client must compute byte-for-byte: the
//! cipher suite and its labelled operations ([`suite`]), key types ([`keys`]), the
//! canonical protobuf rule ([`wire`]), device certificates ([`identity`]), user-key
//! continuity statements ([`continuity`]) and signed, encrypted envelopes
//! ([`envelope`]). It performs no I/O, reads no clock and spawns no thread: callers
//! pass bytes in, get bytes and typed errors out, and supply randomness through a
//! [`rand_core::CryptoRng`]. It builds for `wasm32-unknown-unknown`.
//!
//! Every rejection is an [`Error`] whose [`Error::class`] is one of the spec's closed
//! list of error classes ([`ErrorClass`]). No function in this crate panics on any
//! input; the fuzz targets in `fuzz/` check that.
//!
//! # Public API
//!
//! The crate root re-exports what a client or tool needs most: keys
//! ([`SigningKey`], [`PublicKey`], [`EpochKey`], [`DeviceKeys`]), envelopes
//! ([`seal`], [`open`], [`SealRequest`], [`StaticContext`],
//! [`OpenContext`], [`DecodedEnvelope`], [`OpenedEnvelope`], [`SealedEnvelope`],
//! [`EnvelopeId`]), device certificates ([`issue_certificate`],
//! [`verify_certificate`], [`VerifiedDevice`]), the membership replica
//! ([`SpaceReplica`], [`Received`], [`Outgoing`], [`Role`]), rooms
//! ([`RoomCredentials`]), content types ([`ContentType`]) and errors ([`Error`],
//! [`ErrorClass`]). The modules stay public for the rest (the spec's label and
//! limit constants in [`labels`] and [`limits`], the canonical codec in [`wire`],
//! the cipher suite in [`suite`], the padding rule in [`padding`]).
//!
//! Public enums are `#[non_exhaustive]` unless exhaustive matching is their
//! contract (each such enum says why). Test helpers — the fuzz entry points
//! (`fuzzing`), the forgeries of `testkit` and `SpaceReplica::seal_unchecked` —
//! exist only with the `test-utils` feature, which no production crate enables.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod backup;
pub mod content;
pub mod continuity;
pub mod envelope;
pub mod error;
/// Fuzz entry points (for `fuzz/` and the corpus replay tests); behind the
/// `test-utils` feature.
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzzing;
pub mod identity;
pub mod keys;
pub mod labels;
pub mod limits;
pub mod membership;
pub mod padding;
pub mod recovery;
pub mod room;
pub mod suite;
/// Test helpers (forged membership operations); behind the `test-utils`
/// feature.
#[cfg(any(test, feature = "test-utils"))]
pub mod testkit;
pub mod wire;

pub use content::ContentType;
pub use envelope::{
    DecodedEnvelope, EnvelopeId, OpenContext, OpenedEnvelope, SealRequest, SealedEnvelope,
    StaticContext, open, seal,
};
pub use error::{Error, ErrorClass};
pub use identity::{DeviceKeys, VerifiedDevice, issue_certificate, verify_certificate};
pub use keys::{EpochKey, PublicKey, SigningKey};
pub use membership::{Outgoing, Received, Role, SpaceReplica};
pub use room::RoomCredentials;

/// The protocol version this crate implements (spec §1.3).
pub const PROTOCOL_VERSION: u32 = 1;

/// The one cipher suite of protocol version 1 (spec §5.1).
pub const CIPHER_SUITE_V1: u32 = 1;
