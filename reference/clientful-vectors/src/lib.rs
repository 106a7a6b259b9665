//! Clientful test vectors: the shared file schema, the deterministic generator and
//! the verifier.
//!
//! Ten families (spec §12, `test-vectors/README.md`): `primitives`, `identity`,
//! `wire-codec`, `envelope-open`, `crdt-merge`, `passive-replica`, `membership`, `storage`, `room`, `backup`, `recovery`, `attestation`. Every file has the same envelope
//! ([`schema::VectorFile`]); every case has a stable id, a `result`
//! (`valid`/`invalid`/`acceptable`), the spec requirements it checks, flags, and an
//! error class when invalid.
//!
//! The generator ([`generate::generate_all`]) derives every random value from a seed
//! fixed per family, and each case states its *intended* verdict: generation fails
//! if the reference implementation disagrees, so a vector is never just "whatever
//! the code did". A test regenerates the files and compares them byte for byte.
//!
//! The verifier ([`verify::verify_dir`]) checks the checksum file, the schema rules
//! and then every case against the reference implementation.

pub mod families;
pub mod fresh;
pub mod generate;
pub mod hexutil;
pub mod schema;
pub mod verify;

/// Names of the families, in file order.
pub const FAMILIES: &[&str] = &[
    "primitives",
    "identity",
    "wire-codec",
    "envelope-open",
    "crdt-merge",
    "passive-replica",
    "membership",
    "storage",
    "room",
    "backup",
    "recovery",
    "attestation",
];

/// Name of the checksum file in the vectors directory.
pub const CHECKSUM_FILE: &str = "SHA256SUMS";

/// Name of the append-only id registry in the vectors directory.
pub const IDS_LOCK_FILE: &str = "ids.lock";

/// The spec version the vectors are generated for.
pub const SPEC_VERSION: &str = "1.0.0-draft.1";
