//! Attestations (spec chapter 14): records that bind a Clientful user key to an
//! account people already have, verifiable offline by any member, kept in the
//! space, never required for anything.
//!
//! Sans-IO like `clientful-core`: callers pass the record bytes, the evidence as
//! fetched (an id_token, a DID document) and the verifier's context (trusted
//! issuers with their JWKS as the shell fetched them, audiences, SIWE domains and
//! chains, WebAuthn origins and relying parties, the verifier's `now`); nothing
//! here opens a socket or reads a clock. Builds for `wasm32-unknown-unknown`.
//!
//! Modules: [`record`] (the `Attestation` / `SignedAttestation` record, kinds, the
//! binding; ATT-1..ATT-7), [`binding`] (the binding for the evidence verifiers),
//! [`jwt`] (compact JWS and JWKS, the algorithm allow-list; ATT-9), [`oidc`]
//! (id_token evidence; ATT-9), [`did`] (`did:web` evidence; ATT-10), [`plc`]
//! (`did:plc` evidence: the signed operation log and a statement signed by a key
//! the DID lists; ATT-15..ATT-19), [`siwe`]
//! (Sign-In with Ethereum: EIP-4361 message, EIP-191 signature with secp256k1;
//! ATT-30..ATT-39), [`webauthn`] (a passkey's assertion over the binding;
//! ATT-40..ATT-49), [`verify`] (one record; ATT-7, ATT-8), [`set`] (a space's set,
//! replay; ATT-11, ATT-13), [`error`] (classes; §14.7).
#![forbid(unsafe_code)]

pub mod binding;
pub mod did;
pub mod error;
/// Fuzz entry points (for `fuzz/` and the corpus replay test); behind the
/// `test-utils` feature.
#[cfg(any(test, feature = "test-utils"))]
pub mod fuzzing;
pub mod jwt;
pub mod oidc;
pub mod plc;
pub mod record;
pub mod set;
pub mod siwe;
pub mod verify;
pub mod webauthn;

pub use binding::USER_KEY_LEN;
pub use error::AttestError;
pub use record::{Draft, Kind, Record, SALT_LEN, binding, sign};
pub use set::{Carried, verify_set};
pub use verify::{Account, Verified, VerifierContext, verify};
