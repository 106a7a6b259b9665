//! Attestations (spec §14): evidence that binds a Clientful user key to an account
//! the person already has, verifiable offline by any member.
//!
//! This crate holds the evidence verifiers. Each is pure (no clock, no network): the
//! verifier passes the record's `created_at_ms` and its own policy (expected
//! domains, chains, origins, relying parties).
//!
//! - [`siwe`]: Sign-In with Ethereum (EIP-4361 message, EIP-191 personal-sign
//!   signature with secp256k1), kind 3 (ATT-30..ATT-39).
//! - [`webauthn`]: a WebAuthn assertion by a passkey over the binding, kind 4
//!   (ATT-40..ATT-49).
//!
//! Both commit to the user key through [`binding`]: the SIWE nonce is its lowercase
//! hex, the WebAuthn challenge its bytes.
#![forbid(unsafe_code)]

pub mod binding;
pub mod siwe;
pub mod webauthn;

#[cfg(any(test, feature = "test-utils"))]
pub mod fuzzing;

pub use binding::{SALT_LEN, USER_KEY_LEN, binding};
