//! The Clientful broker protocol without IO (spec §10), for the broker server and
//! for clients on every platform.
//!
//! - [`frame`]: frame kinds ([`frame::Kind`]), error codes, and the bounded codec
//!   that decodes bytes once, at the boundary, into a typed [`frame::Frame`];
//! - [`state`]: the broker's room state machine (connections, join proofs, rooms,
//!   backlog, fan-out, resource budget), fed frames, events and time, answering
//!   with [`state::Action`]s and saying when it next needs to be woken
//!   ([`state::Broker::poll_timeout`]);
//! - [`rate`]: the token bucket of the rate limits;
//! - [`client`]: the client's session (HELLO, JOIN with proof, resume, publish,
//!   deliver) and its connection timing ([`client::ClientConnection`]: when to
//!   PING, when the broker counts as lost);
//! - [`pin`]: the QUIC key pin, SHA-256 of a certificate's SubjectPublicKeyInfo.
//!
//! Nothing here opens a socket or a file, reads a clock or needs an async
//! runtime: time is handed in as milliseconds on any monotonic clock the caller
//! chooses. `clientful-broker` (tokio, axum, quinn, NATS) and `clientful-net`
//! (the native client transports) are shells that drive these state machines.
//!
//! # Public API
//!
//! The root re-exports the typed frame ([`Frame`], [`Kind`], [`ErrorCode`],
//! [`FrameError`]), the broker state machine ([`Broker`], [`Action`], [`Limits`])
//! and the client state machines ([`ClientSession`], [`ClientConnection`],
//! [`Output`]). [`ErrorCode`] is the typed BRK-18 reason code: `code()`,
//! `TryFrom<u32>` (refusing undefined codes with [`UnknownErrorCode`]) and the
//! total `from_code` that keeps a peer's undefined code as `ErrorCode::Unknown`.
//! Public enums are `#[non_exhaustive]`, except the outputs a driver must act on
//! ([`Action`], [`Output`]). The `frame::kind` and `frame::code` wire-number
//! constants remain for tools and tests reading `BrokerFrame`s field by field.
#![forbid(unsafe_code)]

pub mod client;
mod deadlines;
pub mod frame;
pub mod pin;
pub mod rate;
pub mod state;

pub use client::{ClientConnection, ClientSession, Output};
pub use frame::{BROKER_PROTOCOL_VERSION, ErrorCode, Frame, FrameError, Kind, UnknownErrorCode};
pub use state::{Action, Broker, Limits};
