//! The Clientful session core: one space on one device as a sans-IO state
//! machine, driven by a platform shell (the native SDK `clientful` today, a
//! browser or mobile shell next).
//!
//! It owns the client-side decisions of a space: the membership follow-ups
//! (through the one policy of `clientful_core`, `SpaceReplica::follow_up`),
//! the outbox of key deliveries (spec KEY-15, MEM-21, KEY-8), the membership
//! administration (§11), and the sync exchange with storage ([`SyncExchange`]:
//! what to repair, deliver, pull and flush, and when another round is needed).
//! It never touches a socket, a file or a clock: the shell feeds it what it
//! read (`handle_*`), hands in the time (`now_ms`), and drains its outputs
//! ([`Session::poll_persist`], [`Session::poll_transmit`],
//! [`Session::poll_timeout`]) after each call, in that order, the way
//! quinn-proto's `Connection` is driven by quinn.
//!
//! Documents (the CRDT replicas of `clientful-doc`) and the storage layout
//! (`clientful-storage`) stay with the shell; the session gives it the epochs
//! and signers to open them with ([`EpochView`]).
//!
//! # Public API
//!
//! Everything a shell uses is re-exported at the root; the modules are private
//! except [`stored`] (the stored-key names). Public enums are `#[non_exhaustive]`
//! except [`Persist`] (a write the shell must perform).
#![forbid(unsafe_code)]

mod admin;
mod attestation;
mod deliveries;
mod error;
mod recovery;
mod session;
pub mod stored;
mod sync;

pub use admin::{DeviceLink, InviteInfo, MemberInfo, StaleWriter};
pub use deliveries::{Deliveries, Delivery, Pending};
pub use error::{SessionError, Step};
pub use session::{FollowReport, Session, SessionConfig, Transport, lobby_key};
pub use stored::{Persist, Stored};
pub use sync::{EpochView, MAX_SYNC_ROUNDS, SyncExchange, SyncOutcome, SyncStep};
