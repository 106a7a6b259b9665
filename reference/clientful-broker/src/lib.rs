//! The Clientful realtime broker (spec §10).
//!
//! [`state`] is the sans-IO broker: frames, rooms, join proofs, rate limits and
//! backlog, fed bytes and time. [`server`] is the tokio shell around it: WebSocket
//! (axum) and QUIC (quinn) listeners in one process, health and Prometheus
//! endpoints, bounded per-connection send queues, frame capture, graceful shutdown
//! and optional NATS fan-out between broker processes.
#![forbid(unsafe_code)]

pub mod frame;
pub mod pin;
pub mod rate;
pub mod server;
pub mod state;
