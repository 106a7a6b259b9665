//! Schema versions, lazy convergent migrations, and version skew (spec §13.4,
//! APP-9 to APP-12).
//!
//! A document records the schema versions that have written it as marker keys,
//! `_schema/<n>`, and the lowest app schema allowed to write it as
//! `_minWriter/<n>`. Markers are only ever added, so the version (the largest
//! marker) only grows, whatever order concurrent writes merge in; a single
//! `_schema` value would be last-writer-wins and could go backwards.
//!
//! A [`Migration`] is a pure function from the data map to single-key writes that
//! move data in the old shape into the new one. [`Schema::open`] runs every
//! migration up to the app's version on every open and after every merge
//! ("lazily": nothing is migrated until a newer app touches the document). Because
//! a migration is shape-driven and its writes are keyed, two devices migrating
//! concurrently write the same keys with the same values, and data written later
//! in the old shape by an older app is migrated again by the next newer replica:
//! nothing is duplicated and nothing is lost (APP-10).
//!
//! An older app keeps working with newer data it does not understand: it edits
//! only its own keys, and the CRDT keeps every other key (APP-11). When a
//! migration is breaking for writers, it raises `_minWriter`, and older apps get
//! [`Gate::ReadOnly`] and [`AppError::UpdateRequired`] instead of writing data the
//! newer schema would misread (APP-12).

use clientful_core::ErrorClass;
use clientful_doc::{Disposition, Replica};

use crate::AppError;
use crate::data::{self, Data, MapOp};

/// Prefix of schema version markers.
pub const SCHEMA_PREFIX: &str = "_schema/";
/// Prefix of minimum-writer markers.
pub const MIN_WRITER_PREFIX: &str = "_minWriter/";

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The schema version this step produces.
    pub to: u32,
    /// Whether apps below `to` must stop writing once it has run.
    pub breaking_for_writers: bool,
    /// The writes that move old-shape data in `data` to the new shape; empty when
    /// there is nothing to move. Must be pure and keyed (APP-10).
    pub apply: fn(&Data) -> Vec<MapOp>,
}

/// Whether this app may write the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Read and write.
    ReadWrite,
    /// Read only: the document needs app schema `need` or later to be written.
    ReadOnly {
        /// The lowest schema version allowed to write.
        need: u32,
    },
}

/// An app's schema: its version and the ordered migrations up to it.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The schema version this app writes.
    pub version: u32,
    /// Migrations, by ascending `to`.
    pub migrations: Vec<Migration>,
}

fn max_marker(data: &Data, prefix: &str) -> u32 {
    data.keys()
        .filter_map(|k| k.strip_prefix(prefix)?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
}

/// The document's schema version: the largest `_schema/<n>` marker (0: none).
pub fn version(data: &Data) -> u32 {
    max_marker(data, SCHEMA_PREFIX)
}

/// The lowest app schema allowed to write the document (0: any).
pub fn min_writer(data: &Data) -> u32 {
    max_marker(data, MIN_WRITER_PREFIX)
}

impl Schema {
    /// Whether this app may write a document whose data is `data`.
    pub fn gate(&self, data: &Data) -> Gate {
        let need = min_writer(data);
        if need > self.version {
            Gate::ReadOnly { need }
        } else {
            Gate::ReadWrite
        }
    }

    /// Opens (or re-opens after a merge) the document: runs every migration up
    /// to this app's version that has something to move, adds the markers, and
    /// commits the writes as one envelope. A document this app may not write is
    /// left untouched.
    pub fn open(&self, r: &mut Replica) -> Result<Gate, AppError> {
        let data = data::read(r);
        let gate = self.gate(&data);
        if gate != Gate::ReadWrite {
            return Ok(gate);
        }
        let mut ops = Vec::new();
        for m in self.migrations.iter().filter(|m| m.to <= self.version) {
            ops.extend((m.apply)(&data));
            if m.breaking_for_writers {
                ops.push(MapOp::Set(
                    format!("{MIN_WRITER_PREFIX}{}", m.to),
                    "1".into(),
                ));
            }
        }
        ops.push(MapOp::Set(
            format!("{SCHEMA_PREFIX}{}", self.version),
            "1".into(),
        ));
        data::apply_and_commit(r, &ops)?;
        Ok(Gate::ReadWrite)
    }

    /// Writes `ops` if this app may (APP-12), and commits them.
    pub fn write(&self, r: &mut Replica, ops: &[MapOp]) -> Result<usize, AppError> {
        match self.gate(&data::read(r)) {
            Gate::ReadOnly { need } => Err(AppError::UpdateRequired { need }),
            Gate::ReadWrite => data::apply_and_commit(r, ops),
        }
    }
}

/// The signal an app shows when the protocol itself is newer than the app
/// (APP-12): an envelope refused as `UNSUPPORTED_VERSION` means "update the app",
/// not "corrupt data".
pub fn protocol_skew(d: &Disposition) -> Option<AppError> {
    match d {
        Disposition::Rejected {
            class: ErrorClass::UnsupportedVersion,
            ..
        } => Some(AppError::ProtocolTooNew),
        _ => None,
    }
}
