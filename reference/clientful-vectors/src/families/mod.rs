//! The vector families: each has `generate()` (build the file) and `run()`
//! (execute one case against the reference implementation).

// Cases of the `attestation` family for SIWE and WebAuthn evidence; called by that
// family's generator at merge (see the module).
pub mod attestation;
pub mod attestation_evidence;
pub mod attestation_plc;
pub mod backup;
pub mod crdt_merge;
pub mod envelope_open;
pub mod membership;
pub mod passive_replica;
pub mod recovery;
pub mod storage;

pub mod docworld;
pub mod identity;
pub mod primitives;
pub mod room;
pub mod wire_codec;

mod edge;
