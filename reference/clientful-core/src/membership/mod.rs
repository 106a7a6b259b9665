//! Membership and keys (spec chapter 11).
//!
//! A space's membership is a signed, hash-linked log of operations carried in
//! ordinary envelopes (content types 32–47) in the space's membership document.
//! This module holds its sans-IO reference implementation:
//!
//! | module | owns |
//! |---|---|
//! | [`authority`] | document write authority as plain data (MEM-18) |
//! | [`index`] | device indices claimed by adding operations, never moved (MEM-30, MEM-31) |
//! | [`followup`] | the follow-up policy after a change: expiry, admission, acknowledgement, healing, welcomes |
//! | [`delivery`] | carriers of key messages and welcomes through storage and broker (KEY-14..17) |
//! | [`ops`] | content types, roles, scopes, the typed operation bodies and their decoding |
//! | [`state`] | the resolved state: members, devices, epochs, invites, void operations |
//! | [`resolve`] | verdicts from the causal past, and the deterministic resolution of concurrent operations |
//! | [`seal`] | secrets sealed to one device (X25519 + HKDF + AEAD, device id bound) |
//! | [`epoch`] | epoch ids as commitments, key messages, welcomes, chain links, the authenticator |
//! | [`invite`] | invite codes and what derives from them |
//! | [`space`] | a device's replica of a space: buffering, held envelopes, key learning, authoring |
//!
//! Every verdict and every resolved state is a pure function of the set of
//! operations: no clock is read and arrival order does not matter.

pub mod authority;
pub mod delivery;
pub mod epoch;
pub mod followup;
pub mod index;
pub mod invite;
pub mod ops;
pub mod resolve;
pub mod seal;
pub mod space;
pub mod state;

pub use authority::WriteView;
pub use followup::{Admission, FollowUpPolicy, FollowUps};
pub use ops::Cut;
pub use ops::{Role, Scope};
pub use space::{
    AttestationBody, HeldRecovery, MAX_ATTESTATION_BYTES, Outgoing, PendingAdmission, Received,
    SpaceReplica, Verdict,
};
pub use state::State;
