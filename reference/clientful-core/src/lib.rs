//! Sans-IO core of the Clientful protocol (spec v1).
//!
//! This crate owns everything a conforming client must compute byte-for-byte: the
//! cipher suite and its labelled operations ([`suite`]), key types ([`keys`]), the
//! canonical protobuf rule ([`wire`]), device certificates ([`identity`]) and signed,
//! encrypted envelopes ([`envelope`]). It performs no I/O, reads no clock and spawns
//! no thread: callers pass bytes in, get bytes and typed errors out, and supply
//! randomness through a [`rand_core::CryptoRng`]. It builds for
//! `wasm32-unknown-unknown`.
//!
//! Every rejection is an [`Error`] whose [`Error::class`] is one of the spec's closed
//! list of error classes ([`ErrorClass`]). No function in this crate panics on any
//! input; the fuzz targets in `fuzz/` check that.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod content;
pub mod envelope;
pub mod error;
pub mod fuzzing;
pub mod identity;
pub mod keys;
pub mod labels;
pub mod limits;
pub mod membership;
pub mod padding;
pub mod room;
pub mod suite;
pub mod wire;

pub use content::ContentType;
pub use error::{Error, ErrorClass};

/// The protocol version this crate implements (spec §1.3).
pub const PROTOCOL_VERSION: u32 = 1;

/// The one cipher suite of protocol version 1 (spec §5.1).
pub const CIPHER_SUITE_V1: u32 = 1;
