//! The limits of spec §7. Every decoder checks them before doing work that grows
//! with the input; an input over a limit is rejected as `LIMIT_EXCEEDED`.

/// Largest encoded `SignedEnvelope` accepted (ENV-LIM-1): 4 MiB.
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// Most causal predecessors one envelope may list (ENV-LIM-2).
pub const MAX_PREDECESSORS: usize = 64;

/// Largest per-author sequence number (ENV-LIM-3): 2^53 - 1, so every implementation,
/// including JavaScript ones using IEEE doubles, represents it exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Largest encoded `DeviceCertificate` accepted (ID-LIM-1).
pub const MAX_CERTIFICATE_BYTES: usize = 1024;

/// Nesting depth of the v1 messages (spec §7): messages never contain message-typed
/// fields; nested messages travel as `bytes` and are decoded one level at a time. The
/// deepest chain is SignedEnvelope > EnvelopePayload > EnvelopeHeader.
pub const MAX_NESTING_DEPTH: usize = 3;

/// Length of every id, key and hash in suite 1.
pub const ID_LEN: usize = 32;

/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;

/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
