//! Content types of document envelopes (spec §8.2, registry ENV-22: 16..31).

/// A Yjs update, lib0 v1 encoding (`Y.encodeStateAsUpdate` / update events).
pub const YJS_UPDATE_V1: u32 = 16;
/// A Yjs update, lib0 v2 encoding.
pub const YJS_UPDATE_V2: u32 = 17;
/// A Yjs full-state snapshot (v1 update from the empty state). Storage only (§9).
pub const YJS_SNAPSHOT: u32 = 18;
/// One or more Automerge change chunks, concatenated, uncompressed.
pub const AUTOMERGE_CHANGES: u32 = 24;
/// An Automerge document (`save()` output). Storage only (§9).
pub const AUTOMERGE_SNAPSHOT: u32 = 25;

/// Whether `t` is in the documents range of the registry.
pub fn is_document_type(t: u32) -> bool {
    (16..=31).contains(&t)
}
