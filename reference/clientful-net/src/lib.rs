//! Native client side of the Clientful broker protocol (spec §10).
//!
//! The protocol decisions (frames, the join exchange, resume, keepalive timing)
//! are `clientful-broker-proto`'s client state machine, re-exported as
//! [`session`]; this crate carries its frames and wakes it on time.
//!
//! - [`session`]: the client session and connection state machines (re-exported);
//! - [`outbox`]: the publishes not yet acknowledged, which survive disconnects and
//!   are sent again after a re-join;
//! - [`backoff`]: reconnection delays with exponential backoff and jitter;
//! - [`transport`]: WebSocket (tokio-tungstenite; `wss://` over rustls) and QUIC
//!   (quinn, pinned certificate) carriers;
//! - [`tls`]: how a `wss://` broker is trusted (platform or bundled roots, custom
//!   roots, or the QUIC key pin) and the typed TLS failures;
//! - [`client`]: the tokio driver that keeps one room joined across reconnects;
//! - [`docsync`]: a document replica synchronised over a room with the sync
//!   exchange of spec §8.7, sealed end to end.
//!
//! # Public API
//!
//! The root re-exports [`RoomClient`], [`ClientOptions`], [`Event`],
//! [`Endpoint`], [`TlsTrust`], [`TlsError`] and [`DocClient`]; the modules stay public. Public enums are
//! `#[non_exhaustive]`. No test helper is on this crate's surface, and its normal
//! build enables no crate's `test-utils` feature (scripts/check-layering.sh).
#![forbid(unsafe_code)]

pub mod backoff;
pub mod client;
pub mod docsync;
pub mod outbox;
pub mod session;
pub mod tls;
pub mod transport;

pub use client::{ClientOptions, Event, RoomClient};
pub use docsync::DocClient;
pub use tls::{TlsError, TlsTrust};
pub use transport::Endpoint;
