//! Clientful in the browser: the protocol crates compiled to `wasm32-unknown-unknown` and
//! exported with `wasm-bindgen` to the TypeScript package `@clientful/web`
//! (`packages/web`). Built by `scripts/web/build.sh`; see `docs/architecture.md`.
//!
//! The `room` module exports the live room: `clientful-net`'s driver over the browser's
//! `WebSocket`, as `Room`.
//!
//! On other targets the crate builds as an empty library, so that the workspace's
//! native commands (`cargo test --workspace`, clippy) include it.
//!
//! Panics: on wasm32 `catch_unwind` does not catch anything, so a panic traps the whole
//! instance. The JavaScript side treats a `WebAssembly.RuntimeError` as the end of that
//! instance and starts a new one from what is persisted.
#![forbid(unsafe_code)]

#[cfg(target_arch = "wasm32")]
mod exports;
// The live room over the browser's WebSocket (clientful-net on wasm32).
#[cfg(target_arch = "wasm32")]
mod room;

// Attestations: the WebAuthn challenge, evidence and verifier, the passkey PRF input.
#[cfg(target_arch = "wasm32")]
pub mod attest;

// Document replicas (clientful-doc) for JavaScript.
#[cfg(target_arch = "wasm32")]
pub mod doc;

// Storage in the browser (helper ws): the OPFS device store, S3/WebDAV over fetch.
#[cfg(all(target_arch = "wasm32", feature = "storage"))]
pub mod storage;

// The SDK in a Worker (feature `session`): Device and Space, the home in OPFS.
#[cfg(all(target_arch = "wasm32", feature = "session"))]
pub mod session;

/// The version of this build, as the crate's `Cargo.toml` says.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
