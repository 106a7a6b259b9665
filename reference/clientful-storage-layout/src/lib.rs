//! The Clientful storage layout on untrusted file storage (spec §9), as pure code:
//! no IO, no clocks, no async runtime. The IO shell that drives it over real
//! backends (OpenDAL) and the device-local store (redb) is `clientful-storage`.
//!
//! * [`layout`]: keys and paths (STO-2..STO-4);
//! * [`object`]: sealed, signed objects and their validated bodies (STO-5..STO-8,
//!   STO-10, STO-12, STO-16, STO-24, STO-30);
//! * [`hwm`]: high-water marks, rollback, fork and withholding detection, the
//!   snapshot choice (STO-9, STO-13, STO-28);
//! * [`coverage`]: devices' attestations of their own segments and the check of a
//!   snapshot's claimed coverage (STO-30, STO-31);
//! * [`causal`]: causal ordering of envelopes for snapshots (STO-12);
//! * [`chunk`]: file chunks (STO-17);
//! * [`plan`]: the pull, compaction, checkpoint and repair decisions of a device, as
//!   functions over listed names and fetched bytes (STO-8, STO-11, STO-13..STO-15,
//!   STO-26..STO-28, STO-31);
//! * [`error`]: the storage error type, shared with the shell.
//!
//! # Public API
//!
//! The modules above are the API (the shell `clientful-storage` re-exports them
//! under the same names); the root re-exports the types most callers name:
//! [`StorageError`], [`EpochStorage`], [`HeadManifest`], [`HighWater`] and
//! [`Withholding`]. Public enums are `#[non_exhaustive]` except
//! [`plan::HeadRepair`] (a repair the shell must carry out).
#![forbid(unsafe_code)]

pub mod causal;
pub mod chunk;
pub mod coverage;
pub mod error;
pub mod hwm;
pub mod layout;
pub mod object;
pub mod plan;

pub use error::StorageError;
pub use hwm::{HighWater, Withholding};
pub use layout::EpochStorage;
pub use object::HeadManifest;
