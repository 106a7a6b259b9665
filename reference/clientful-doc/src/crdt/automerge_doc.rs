//! The Automerge adapter (spec §8.4), behind the `automerge` feature (default):
//! change chunks split and checked against the author's actor binding and chain
//! (DOC-3, DOC-4, DOC-5), local changes collected until commit, and the document
//! materialized as canonical JSON (§8.6). A Yjs-only build leaves it, and the
//! Automerge library, out.

use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValueRef, TextEncoding, ValueRef};

use super::{
    ActorProgress, CrdtDoc, MAX_MATERIALIZE_DEPTH, Prepared, bytes_json, contained, invalid,
    malformed,
};
use crate::binding;
use crate::canonical_json::Json;
use crate::content;
use crate::error::DocError;

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_TYPE_CHANGE: u8 = 1;

/// Splits concatenated Automerge chunks; only uncompressed change chunks are
/// allowed in envelopes (DOC-5), which also rules out decompression bombs.
pub fn split_change_chunks(body: &[u8]) -> Result<Vec<&[u8]>, DocError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let header = rest
            .get(..9)
            .ok_or_else(|| malformed("automerge", "truncated chunk header"))?;
        if header.get(..4) != Some(&CHUNK_MAGIC[..]) {
            return Err(malformed("automerge", "bad chunk magic"));
        }
        if header.get(8) != Some(&CHUNK_TYPE_CHANGE) {
            return Err(invalid(
                "only uncompressed change chunks may appear in an envelope",
            ));
        }
        // uLEB128 length after the 9-byte header.
        let mut len: u64 = 0;
        let mut pos = 9usize;
        let mut shift = 0u32;
        loop {
            let byte = *rest
                .get(pos)
                .ok_or_else(|| malformed("automerge", "truncated chunk length"))?;
            if shift > 56 {
                return Err(malformed("automerge", "chunk length too long"));
            }
            len |= u64::from(byte & 0x7f) << shift;
            pos += 1;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|e| *e <= rest.len())
            .ok_or_else(|| malformed("automerge", "chunk length exceeds body"))?;
        let (chunk, tail) = rest.split_at(end);
        out.push(chunk);
        rest = tail;
    }
    if out.is_empty() {
        return Err(malformed("automerge", "no change in body"));
    }
    Ok(out)
}

/// Content type first: a body of another type is not decoded.
fn check_automerge_type(content_type: u32) -> Result<(), DocError> {
    if content_type != content::AUTOMERGE_CHANGES {
        return Err(invalid(format!(
            "content type {content_type} is not Automerge changes"
        )));
    }
    Ok(())
}

fn decode_changes(body: &[u8]) -> Result<Vec<automerge::Change>, DocError> {
    split_change_chunks(body)?
        .into_iter()
        .map(|chunk| {
            contained("automerge", "decoder", || {
                automerge::Change::from_bytes(chunk.to_vec())
            })
        })
        .collect()
}

/// An Automerge document (UTF-16 text indexing, as in JavaScript).
pub struct AutomergeDoc {
    doc: AutoCommit,
    doc_id: [u8; 32],
    incarnation: u32,
    actor: [u8; 16],
    flushed_heads: Vec<automerge::ChangeHash>,
    /// Highest seq of the own actor already committed or applied from an envelope
    /// (after a restore or a rebuild the own changes arrive through `apply`, and
    /// must not be taken again as local edits).
    flushed_seq: u64,
    /// Remote changes collected, not yet applied ([`AutomergeDoc::defer`]).
    deferred: Option<Vec<automerge::Change>>,
}

impl std::fmt::Debug for AutomergeDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutomergeDoc")
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl AutomergeDoc {
    /// A new, empty document whose actor is bound to `device` in `doc_id` at
    /// `incarnation`.
    pub fn new(device: &[u8; 32], doc_id: &[u8; 32], incarnation: u32) -> Self {
        let actor = binding::automerge_actor_at(device, doc_id, incarnation);
        let doc = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit)
            .with_actor(automerge::ActorId::from(actor.to_vec()));
        AutomergeDoc {
            doc,
            doc_id: *doc_id,
            incarnation,
            actor,
            flushed_heads: Vec::new(),
            flushed_seq: 0,
            deferred: None,
        }
    }

    /// From now on, remote changes are collected instead of applied, until
    /// [`AutomergeDoc::apply_deferred`] applies them all in one call (a restore:
    /// one `apply_changes` for a whole history instead of one per envelope).
    /// Nothing may read the document in between.
    pub(crate) fn defer(&mut self) {
        self.deferred.get_or_insert_with(Vec::new);
    }

    /// Applies the changes collected since [`AutomergeDoc::defer`] in one call.
    /// Automerge orders changes by their dependencies, so the document is the
    /// one the same changes applied one by one give; on an error the document
    /// may hold part of them and the caller rebuilds it change by change.
    pub(crate) fn apply_deferred(&mut self) -> Result<(), DocError> {
        match self.deferred.take() {
            Some(changes) if !changes.is_empty() => {
                contained("automerge", "apply", || self.doc.apply_changes(changes))
            }
            _ => Ok(()),
        }
    }

    fn apply_decoded(&mut self, changes: Vec<automerge::Change>) -> Result<(), DocError> {
        let own = automerge::ActorId::from(self.actor.to_vec());
        for c in changes.iter().filter(|c| *c.actor_id() == own) {
            self.flushed_seq = self.flushed_seq.max(c.seq());
        }
        if let Some(d) = &mut self.deferred {
            d.extend(changes);
            return Ok(());
        }
        contained("automerge", "apply", || self.doc.apply_changes(changes))
    }

    /// The changes of one envelope (of content type `AUTOMERGE_CHANGES`) against
    /// the author's binding and chain.
    fn check_changes(
        &self,
        author: &[u8; 32],
        changes: &[automerge::Change],
        progress: ActorProgress,
    ) -> Result<ActorProgress, DocError> {
        // DOC-3, DOC-4: one actor, bound to the author at the chain's incarnation
        // or a later one; consecutive seqs continuing the chain (or from 1 in a new
        // incarnation).
        let mut result = progress;
        let mut actor: Option<Vec<u8>> = None;
        for change in changes {
            let this = change.actor_id().to_bytes().to_vec();
            if actor.as_ref().is_some_and(|a| *a != this) {
                return Err(invalid("changes of more than one actor in one envelope"));
            }
            if actor.is_none() {
                let k = binding::find_incarnation(progress.incarnation, |k| {
                    binding::automerge_actor_at(author, &self.doc_id, k).as_slice()
                        == this.as_slice()
                })
                .ok_or_else(|| invalid("change by an actor not bound to its author"))?;
                result = ActorProgress {
                    incarnation: k,
                    next: if k == progress.incarnation {
                        progress.next
                    } else {
                        0
                    },
                    client: 0,
                };
                actor = Some(this);
            }
            if change.seq() != result.next + 1 {
                return Err(invalid(format!(
                    "change seq {} does not follow the author's chain at {}",
                    change.seq(),
                    result.next
                )));
            }
            result.next = change.seq();
        }
        Ok(result)
    }

    /// The Automerge document, for editing with the automerge API.
    pub fn doc_mut(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    /// This device's actor id.
    pub fn actor(&self) -> [u8; 16] {
        self.actor
    }

    /// The whole document, `save()`: content type 25, `AUTOMERGE_SNAPSHOT`
    /// (checkpoints, spec STO-24).
    pub fn encode_state(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// A document loaded from a checkpoint's state, with no binding or chain
    /// checks: only for a provisional view that nothing is built on (STO-26).
    pub(crate) fn load_state(state: &[u8]) -> Result<AutoCommit, DocError> {
        contained("automerge", "state loading", || {
            AutoCommit::load_with_options(
                state,
                automerge::LoadOptions::new().text_encoding(TextEncoding::Utf16CodeUnit),
            )
        })
    }
}

/// The materialized JSON of a loaded Automerge document (as [`CrdtDoc::materialize`]).
pub(crate) fn automerge_json(doc: &AutoCommit) -> Json {
    am_obj_to_json(doc, &automerge::ROOT, 0)
}

fn scalar_to_json(v: &ScalarValueRef<'_>) -> Json {
    match v {
        ScalarValueRef::Bytes(b) => bytes_json(b),
        ScalarValueRef::Str(s) => Json::String(s.to_string()),
        ScalarValueRef::Int(i) => Json::Int(*i),
        ScalarValueRef::Uint(u) => i64::try_from(*u).map_or(Json::Number(*u as f64), Json::Int),
        ScalarValueRef::F64(f) => Json::Number(*f),
        ScalarValueRef::Counter(c) => Json::Int(*c),
        ScalarValueRef::Timestamp(t) => Json::Int(*t),
        ScalarValueRef::Boolean(b) => Json::Bool(*b),
        ScalarValueRef::Null => Json::Null,
        ScalarValueRef::Unknown { bytes, .. } => bytes_json(bytes),
    }
}

fn am_value_to_json(
    doc: &AutoCommit,
    value: &ValueRef<'_>,
    id: &automerge::ObjId,
    depth: usize,
) -> Json {
    match value {
        ValueRef::Scalar(s) => scalar_to_json(s),
        ValueRef::Object(_) => am_obj_to_json(doc, id, depth + 1),
    }
}

fn am_obj_to_json(doc: &AutoCommit, obj: &automerge::ObjId, depth: usize) -> Json {
    if depth > MAX_MATERIALIZE_DEPTH {
        return Json::Null;
    }
    match doc.object_type(obj) {
        Ok(ObjType::Text) => Json::String(doc.text(obj).unwrap_or_default()),
        Ok(ObjType::List) => Json::Array(
            doc.list_range(obj, ..)
                .map(|item| am_value_to_json(doc, &item.value, &item.id(), depth))
                .collect(),
        ),
        Ok(ObjType::Map) | Ok(ObjType::Table) => Json::Object(
            doc.map_range(obj, ..)
                .map(|item| {
                    (
                        item.key.to_string(),
                        am_value_to_json(doc, &item.value, &item.id(), depth),
                    )
                })
                .collect(),
        ),
        Err(_) => Json::Null,
    }
}

impl CrdtDoc for AutomergeDoc {
    fn name(&self) -> &'static str {
        "automerge"
    }

    fn validate(
        &self,
        author: &[u8; 32],
        content_type: u32,
        body: &[u8],
        progress: ActorProgress,
    ) -> Result<ActorProgress, DocError> {
        check_automerge_type(content_type)?;
        self.check_changes(author, &decode_changes(body)?, progress)
    }

    fn validate_prepared(
        &self,
        author: &[u8; 32],
        content_type: u32,
        body: &[u8],
        progress: ActorProgress,
    ) -> Result<(ActorProgress, Prepared), DocError> {
        check_automerge_type(content_type)?;
        let changes = decode_changes(body)?;
        let p = self.check_changes(author, &changes, progress)?;
        Ok((p, Prepared::Automerge(changes)))
    }

    fn apply_prepared(
        &mut self,
        prepared: Prepared,
        content_type: u32,
        body: &[u8],
    ) -> Result<(), DocError> {
        match prepared {
            Prepared::Automerge(changes) => self.apply_decoded(changes),
            Prepared::Yjs(_) | Prepared::Raw => self.apply(content_type, body),
        }
    }

    fn apply(&mut self, _content_type: u32, body: &[u8]) -> Result<(), DocError> {
        self.apply_decoded(decode_changes(body)?)
    }

    fn take_local(&mut self) -> Option<(u32, Vec<u8>)> {
        let own = automerge::ActorId::from(self.actor.to_vec());
        let changes = self.doc.get_changes(&self.flushed_heads);
        let mut body = Vec::new();
        let flushed = self.flushed_seq;
        for c in changes
            .iter()
            .filter(|c| *c.actor_id() == own && c.seq() > flushed)
        {
            body.extend_from_slice(c.raw_bytes());
            self.flushed_seq = self.flushed_seq.max(c.seq());
        }
        self.flushed_heads = self.doc.get_heads();
        (!body.is_empty()).then_some((content::AUTOMERGE_CHANGES, body))
    }

    fn local_progress(&mut self) -> ActorProgress {
        let own = automerge::ActorId::from(self.actor.to_vec());
        let local = self
            .doc
            .get_last_local_change()
            .filter(|c| *c.actor_id() == own)
            .map_or(0, |c| c.seq());
        // Own changes that reached the document through `apply` (a restore, a
        // rebuild, changes made in a JS document and checked in) are invisible to
        // `get_last_local_change` until the document makes a change itself (automerge
        // interns its actor only then), so count the ones the document holds: all
        // applied ones when nothing is queued, else from the change graph. Counting
        // zero here moved the replica to a new incarnation after a restore.
        let applied = if self.deferred.is_none() && self.doc.get_missing_deps(&[]).is_empty() {
            self.flushed_seq
        } else {
            self.doc
                .get_changes_meta(&[])
                .iter()
                .filter(|m| *m.actor == own)
                .map(|m| m.seq)
                .max()
                .unwrap_or(0)
        };
        ActorProgress {
            incarnation: self.incarnation,
            next: local.max(applied),
            client: 0,
        }
    }

    fn materialize(&mut self) -> Json {
        am_obj_to_json(&self.doc, &automerge::ROOT, 0)
    }
}
