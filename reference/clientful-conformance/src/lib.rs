//! The Clientful conformance suite (spec §12): the harness protocol, the stdio
//! framing, the adapters (the reference in-process, any implementation as a child
//! process over stdio), and the runner, which is the network between replicas.

#![forbid(unsafe_code)]

pub mod adapter;
pub mod app;
pub mod attacks;
pub mod broker;
pub mod broker_scenarios;
pub mod expected;
pub mod framing;
pub mod fuzz;
pub mod grpc;
pub mod killmatrix;
pub mod reference;
pub mod report;
pub mod runner;
pub mod saboteur;
pub mod scenario;
pub mod space;
pub mod storage;
pub mod storage_scenarios;

/// Generated harness messages (`clientful.conformance.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/clientful.conformance.v1.rs"));
}

/// The harness protocol version this runner speaks.
pub const HARNESS_VERSION: u32 = 1;
