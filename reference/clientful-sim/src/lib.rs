//! Deterministic simulator of Clientful documents (spec §8).
//!
//! [`run`] plays one seeded schedule: five or more replicas of one document (Yjs
//! or Automerge) edit text, commit envelopes and broadcast them over a simulated
//! network ([`net`]) that drops, duplicates, delays and reorders messages, is cut
//! by partitions, loses replicas that go offline or crash (and restart from their
//! persisted envelopes), and carries sync exchanges between pairs. Zero to two
//! member devices are Byzantine ([`byzantine`]): they equivocate, forge
//! predecessors, spoof other devices' CRDT actors, send garbage and flood the
//! missing-parent buffer. After the heal and a reliable sync phase ([`sync`]) the
//! run checks that honest replicas agree on `HistoryDigest`, `StateDigest` and the
//! verdict of every Byzantine envelope, and that the buffer stayed within bounds.
//!
//! Everything derives from the seed through `ChaCha20Rng`; there is no clock, no
//! thread and no hash-map iteration order in the schedule, so a failing seed
//! replays exactly.

#![forbid(unsafe_code)]

pub mod byzantine;
pub mod edit;
pub mod membership;
pub mod net;
pub mod rng;
pub mod sim;
pub mod sync;

pub use sim::{SimConfig, SimReport, SimStats, run};
