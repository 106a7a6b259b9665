//! Client side of the Clientful broker protocol (spec §10), native and in the browser.
//!
//! The protocol decisions (frames, the join exchange, resume, keepalive timing)
//! are `clientful-broker-proto`'s client state machine, re-exported as
//! [`session`]; this crate carries its frames and wakes it on time.
//!
//! - [`session`]: the client session and connection state machines (re-exported);
//! - [`outbox`]: the publishes not yet acknowledged, which survive disconnects and
//!   are sent again after a re-join;
//! - [`backoff`]: reconnection delays with exponential backoff and jitter;
//! - [`transport`]: natively WebSocket (tokio-tungstenite; `wss://` over rustls) and
//!   QUIC (quinn, pinned certificate) carriers; on `wasm32` the browser's
//!   `WebSocket` (`transport_web.rs`; `ws://` or `wss://`, TLS done by the browser);
//! - `tls` (native only): how a `wss://` broker is trusted (platform or bundled
//!   roots, custom roots, or the QUIC key pin) and the typed TLS failures;
//! - [`platform`]: spawn, sleep and the millisecond clock: tokio natively, the
//!   browser's event loop, `setTimeout` and `Date.now()` on `wasm32`;
//! - [`client`]: the driver that keeps one room joined across reconnects (one
//!   copy for both platforms);
//! - [`docsync`]: a document replica synchronised over a room with the sync
//!   exchange of spec §8.7, sealed end to end.
//!
//! # Public API
//!
//! The root re-exports [`RoomClient`], [`ClientOptions`], [`Event`],
//! [`Endpoint`], `TlsTrust`, `TlsError` (native) and [`DocClient`]; the modules stay public. Public enums are
//! `#[non_exhaustive]`. No test helper is on this crate's surface, and its normal
//! build enables no crate's `test-utils` feature (scripts/check-layering.sh).
#![forbid(unsafe_code)]

pub mod backoff;
pub mod client;
pub mod docsync;
pub mod outbox;
pub mod platform;
pub mod session;
#[cfg(not(target_arch = "wasm32"))]
pub mod tls;
#[cfg(not(target_arch = "wasm32"))]
pub mod transport;
#[cfg(target_arch = "wasm32")]
#[path = "transport_web.rs"]
pub mod transport;

pub use client::{ClientOptions, Event, RoomClient};
pub use docsync::DocClient;
#[cfg(not(target_arch = "wasm32"))]
pub use tls::{TlsError, TlsTrust};
pub use transport::Endpoint;
