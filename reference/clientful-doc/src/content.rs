//! Content types of document envelopes (spec §8.2, registry ENV-22: 16..31), taken
//! from the one registry, [`clientful_core::content`].

use clientful_core::content::{ContentType, Range, range_of};

/// A Yjs update, lib0 v1 encoding (`Y.encodeStateAsUpdate` / update events).
pub const YJS_UPDATE_V1: u32 = ContentType::YjsUpdateV1.value();
/// A Yjs update, lib0 v2 encoding.
pub const YJS_UPDATE_V2: u32 = ContentType::YjsUpdateV2.value();
/// A Yjs full-state snapshot (v1 update from the empty state). Storage only (§9).
pub const YJS_SNAPSHOT: u32 = ContentType::YjsSnapshot.value();
/// One or more Automerge change chunks, concatenated, uncompressed.
pub const AUTOMERGE_CHANGES: u32 = ContentType::AutomergeChanges.value();
/// An Automerge document (`save()` output). Storage only (§9).
pub const AUTOMERGE_SNAPSHOT: u32 = ContentType::AutomergeSnapshot.value();

/// Whether `t` is in the documents range of the registry.
pub fn is_document_type(t: u32) -> bool {
    range_of(t) == Range::Documents
}
