//! The Clientful realtime broker server (spec §10).
//!
//! The protocol itself lives in `clientful-broker-proto`, without IO: frames,
//! rooms, join proofs, rate limits, backlog and timers, fed bytes and time
//! (re-exported here as [`frame`], [`pin`], [`rate`] and [`state`]). [`server`] is
//! the tokio shell around it: WebSocket (axum) and QUIC (quinn) listeners in one
//! process, health and Prometheus endpoints, bounded per-connection send queues,
//! frame capture, graceful shutdown, optional NATS fan-out between broker
//! processes, and the timer that wakes the state machine when it asks to be.
//!
//! # Public API
//!
//! [`server`] (the server and its configuration) and [`cli`] (the command-line
//! arguments the `clientful-broker` binary and `clientful broker` share); the
//! protocol types come from `clientful-broker-proto`. Public enums are
//! `#[non_exhaustive]`.
#![forbid(unsafe_code)]

pub use clientful_broker_proto::{frame, pin, rate, state};

pub mod cli;
pub mod server;
