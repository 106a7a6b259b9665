//! The two CRDT adapters (spec §8.2–§8.4): Yjs through `yrs` here, and Automerge
//! in [`automerge_doc`] behind the `automerge` feature (on by default; a Yjs-only
//! build leaves the Automerge library out, and a replica of an Automerge document
//! is then [`NotBuilt`]).
//!
//! An adapter applies *remote* payloads only after checking them against the
//! author's binding (DOC-3) and the author's chain state (DOC-4): a Yjs update may
//! insert only under the author's client id, in one range that starts exactly where
//! the author's previous envelope ended; Automerge changes must carry the author's
//! actor id with consecutive sequence numbers. It also collects the device's own
//! local edits until they are committed into an envelope, and materializes the
//! document as canonical JSON for `StateDigest`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, Map, MapRef, OffsetKind, Options, Out, ReadTxn, TextRef,
    Transact, Update,
};

use crate::binding;
use crate::canonical_json::Json;
use crate::content;
use crate::error::DocError;

/// What an author's chain has written into the CRDT so far (after a given envelope).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActorProgress {
    /// The actor incarnation in use (DOC-3).
    pub incarnation: u32,
    /// Yjs: the next clock of the incarnation's client id. Automerge: its last seq.
    pub next: u64,
    /// Yjs: the client id the chain inserted under last (0: none yet); a chain
    /// changes it only with a new incarnation (DOC-21). Automerge: 0.
    pub client: u64,
}

/// A payload decoded by [`CrdtDoc::validate_prepared`], to apply without decoding
/// it again. Kept on the stack of one receive call (a yrs `Update` is not `Send`).
#[non_exhaustive]
pub enum Prepared {
    /// A decoded Yjs update.
    Yjs(Update),
    /// Decoded Automerge changes.
    #[cfg(feature = "automerge")]
    Automerge(Vec<automerge::Change>),
    /// Nothing kept: apply decodes the body.
    Raw,
}

/// The interface the replica uses; implemented by [`YjsDoc`] and [`AutomergeDoc`].
pub trait CrdtDoc {
    /// `"yjs"` or `"automerge"`.
    fn name(&self) -> &'static str;
    /// Validates a remote payload of `author` against its binding and `progress`
    /// (the author's state after the envelope's `prev`), without touching the
    /// document, and returns the author's progress after it. The verdict depends only
    /// on the payload and `progress`, so every replica reaches the same one (DOC-4).
    fn validate(
        &self,
        author: &[u8; 32],
        content_type: u32,
        body: &[u8],
        progress: ActorProgress,
    ) -> Result<ActorProgress, DocError>;
    /// Applies a payload that [`CrdtDoc::validate`] accepted. An error here is
    /// reported but does not change the verdict.
    fn apply(&mut self, content_type: u32, body: &[u8]) -> Result<(), DocError>;
    /// [`CrdtDoc::validate`], also returning the decoded payload so that
    /// [`CrdtDoc::apply_prepared`] does not decode it again (the receive path).
    fn validate_prepared(
        &self,
        author: &[u8; 32],
        content_type: u32,
        body: &[u8],
        progress: ActorProgress,
    ) -> Result<(ActorProgress, Prepared), DocError> {
        Ok((
            self.validate(author, content_type, body, progress)?,
            Prepared::Raw,
        ))
    }
    /// Applies what [`CrdtDoc::validate_prepared`] accepted.
    fn apply_prepared(
        &mut self,
        prepared: Prepared,
        content_type: u32,
        body: &[u8],
    ) -> Result<(), DocError> {
        let _ = prepared;
        self.apply(content_type, body)
    }
    /// Takes the local edits made since the last call, as `(content_type, body)`,
    /// or `None` if there are none.
    fn take_local(&mut self) -> Option<(u32, Vec<u8>)>;
    /// The device's own progress after its local edits (for its own envelopes).
    fn local_progress(&mut self) -> ActorProgress;
    /// The materialized document as canonical JSON.
    fn materialize(&mut self) -> Json;
}

fn malformed(crdt: &'static str, reason: impl Into<String>) -> DocError {
    DocError::MalformedPayload {
        crdt,
        reason: reason.into(),
    }
}

fn invalid(reason: impl Into<String>) -> DocError {
    DocError::InvalidOperation(reason.into())
}

/// Runs a CRDT library call on untrusted input with panics contained: both
/// libraries have had panics on malformed input. An error or a panic is MALFORMED.
fn contained<T, E: std::fmt::Display>(
    crdt: &'static str,
    what: &'static str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, DocError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(malformed(crdt, e.to_string())),
        Err(_) => Err(malformed(crdt, format!("{what} panicked"))),
    }
}

// ---------------------------------------------------------------- Yjs

/// The kind of a declared Yjs root type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum YjsRootKind {
    /// `Y.Text`
    Text,
    /// `Y.Map`
    Map,
    /// `Y.Array`
    Array,
    /// `Y.XmlFragment`
    XmlFragment,
}

/// The declared root types of a Yjs document (spec DOC-10): they are instantiated
/// on every replica and make up the materialized document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YjsSchema {
    /// `(name, kind)` of each root.
    pub roots: Vec<(String, YjsRootKind)>,
}

impl Default for YjsSchema {
    /// One text named `text` and one map named `data`.
    fn default() -> Self {
        YjsSchema {
            roots: vec![
                ("text".into(), YjsRootKind::Text),
                ("data".into(), YjsRootKind::Map),
            ],
        }
    }
}

const REMOTE_ORIGIN: &str = "clientful/remote";

pub use crate::binding::DeviceIndices;

/// A Yjs document (yrs with UTF-16 offsets, as in JavaScript).
pub struct YjsDoc {
    doc: Doc,
    /// Device index of every known signer (DOC-19): their Yjs client ids.
    indices: Arc<DeviceIndices>,
    incarnation: u32,
    client_id: u64,
    schema: YjsSchema,
    local: Arc<Mutex<LocalBatch>>,
}

/// What local transactions changed since the last commit: the own clock before
/// the first of them, and their deletions. The batch is encoded once, at commit,
/// as one squashed diff (no per-transaction encoding or merging).
#[derive(Default)]
struct LocalBatch {
    start: Option<u32>,
    deleted: yrs::IdSet,
}

impl std::fmt::Debug for YjsDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YjsDoc")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl YjsDoc {
    /// A new, empty document of a context without signers: nothing remote
    /// validates, and the local client id is [`binding::UNINDEXED_CLIENT_ID`]
    /// (for loading snapshots and for tests).
    pub fn new(device: &[u8; 32], schema: YjsSchema, incarnation: u32) -> Self {
        Self::with_indices(device, Arc::default(), schema, incarnation)
    }

    /// A new, empty document whose local client id is the one `indices` assigns
    /// to `device` at `incarnation` (DOC-3, DOC-19), checking remote payloads
    /// against the indices of their authors.
    pub fn with_indices(
        device: &[u8; 32],
        indices: Arc<DeviceIndices>,
        schema: YjsSchema,
        incarnation: u32,
    ) -> Self {
        let client_id = indices
            .primary(device)
            .map_or(binding::UNINDEXED_CLIENT_ID, |d| {
                binding::yjs_client_id(d, incarnation)
            });
        let mut options = Options::with_client_id(yrs::block::ClientID::new(client_id));
        options.offset_kind = OffsetKind::Utf16;
        let doc = Doc::with_options(options);
        for (name, kind) in &schema.roots {
            match kind {
                YjsRootKind::Text => {
                    doc.get_or_insert_text(name.as_str());
                }
                YjsRootKind::Map => {
                    doc.get_or_insert_map(name.as_str());
                }
                YjsRootKind::Array => {
                    doc.get_or_insert_array(name.as_str());
                }
                YjsRootKind::XmlFragment => {
                    doc.get_or_insert_xml_fragment(name.as_str());
                }
            }
        }
        let local: Arc<Mutex<LocalBatch>> = Arc::default();
        let sink = Arc::clone(&local);
        let own = yrs::block::ClientID::new(client_id);
        // Keyed subscription: lives as long as the document.
        let _ = doc.observe_transaction_cleanup("clientful/local", move |txn, event| {
            let remote = txn
                .origin()
                .is_some_and(|o| o.as_ref() == REMOTE_ORIGIN.as_bytes());
            let before = event.before_state.get(&own);
            let inserted = event.after_state.get(&own) != before;
            if remote || (!inserted && event.delete_set.is_empty()) {
                return;
            }
            if let Ok(mut b) = sink.lock() {
                b.start.get_or_insert(before);
                b.deleted.merge_with(event.delete_set.clone());
            }
        });
        YjsDoc {
            doc,
            indices,
            incarnation,
            client_id,
            schema,
            local,
        }
    }

    /// The yrs document, for editing with the yrs API (`doc.transact_mut()`).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// The whole state as a v1 update from the empty state vector: content type
    /// 18, `YJS_SNAPSHOT` (checkpoints, spec STO-24).
    pub fn encode_state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default())
    }

    /// Loads a full state from a checkpoint into this (empty) document as a remote
    /// transaction, with no binding or chain checks: only for a provisional view
    /// that nothing is built on (spec STO-26).
    pub(crate) fn load_state(&self, state: &[u8]) -> Result<(), DocError> {
        let update = contained("yjs", "state decoding", || Update::decode_v1(state))?;
        let mut txn = self.doc.transact_mut_with(REMOTE_ORIGIN);
        contained("yjs", "state loading", || txn.apply_update(update))
    }

    /// A declared text root.
    pub fn text(&self, name: &str) -> TextRef {
        self.doc.get_or_insert_text(name)
    }

    /// A declared map root.
    pub fn map(&self, name: &str) -> MapRef {
        self.doc.get_or_insert_map(name)
    }

    /// A declared array root.
    pub fn array(&self, name: &str) -> ArrayRef {
        self.doc.get_or_insert_array(name)
    }

    /// Replaces the device indices remote payloads are checked against (the
    /// membership grew; this device's own index is unchanged).
    pub fn set_indices(&mut self, indices: Arc<DeviceIndices>) {
        self.indices = indices;
    }

    /// This device's Yjs client id.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The batch as one update: the own blocks inserted since `start`, squashed as
    /// yrs's own `encode_diff` squashes them (adjacent inserts coalesced), with
    /// only the batch's deletions. `encode_diff` would append the whole
    /// document's delete set; it is cut off (it is what an update with no blocks
    /// encodes) and replaced by the batch's. The result is checked to insert
    /// exactly `start..now` of this client and delete exactly `deleted`. (`encode_diff`
    /// leaves out pending structs: after a rebuild, own operations stranded on
    /// excluded content stay pending and must not be sent again, DOC-18.)
    fn encode_batch(&self, start: u32, deleted: &yrs::IdSet) -> Option<Vec<u8>> {
        use yrs::updates::encoder::Encode;
        let own = yrs::block::ClientID::new(self.client_id);
        let txn = self.doc.transact();
        let now = txn.state_vector();
        let mut out = if now.get(&own) > start {
            let mut since = now.clone();
            since.set_min(own, start);
            let full = txn.encode_diff_v1(&since);
            let empty = txn.encode_diff_v1(&now);
            let (zero, doc_ds) = empty.split_first()?;
            if *zero != 0 || !full.ends_with(doc_ds) {
                return None;
            }
            full.get(..full.len() - doc_ds.len())?.to_vec()
        } else {
            vec![0]
        };
        out.extend_from_slice(&deleted.encode_v1());
        let check = Update::decode_v1(&out).ok()?;
        let ins = check.insertions(true);
        let mut clients = ins.iter();
        let ok_ins = match clients.next() {
            None => now.get(&own) == start,
            Some((c, ranges)) => {
                let mut rs = ranges.iter();
                *c == own
                    && clients.next().is_none()
                    && rs
                        .next()
                        .is_some_and(|r| r.start == start && r.end == now.get(&own))
                    && rs.next().is_none()
            }
        };
        (ok_ins && check.delete_set() == deleted).then_some(out)
    }

    fn decode_checked(content_type: u32, body: &[u8]) -> Result<Update, DocError> {
        if content_type != content::YJS_UPDATE_V1 && content_type != content::YJS_UPDATE_V2 {
            return Err(invalid(format!(
                "content type {content_type} is not a Yjs update"
            )));
        }
        Self::decode(content_type, body)
    }

    fn check_update(
        &self,
        author: &[u8; 32],
        update: &Update,
        progress: ActorProgress,
    ) -> Result<ActorProgress, DocError> {
        // DOC-3, DOC-4: only one client, bound to the author at the chain's
        // incarnation or a later one; one range, continuing the chain (or starting
        // at 0 in a new incarnation).
        let insertions = update.insertions(true);
        let mut result = progress;
        let mut seen_client = false;
        for (client, ranges) in insertions.iter() {
            if seen_client {
                return Err(invalid("update inserts under more than one Yjs client"));
            }
            seen_client = true;
            let x = client.get();
            let (d, k) = binding::split_client_id(x).ok_or_else(|| {
                invalid(format!(
                    "update inserts as Yjs client {x}, which is no client id"
                ))
            })?;
            let last = progress
                .incarnation
                .saturating_add(binding::MAX_INCARNATION_STEP)
                .min(binding::MAX_INCARNATION);
            if !(progress.incarnation..=last).contains(&k) {
                return Err(invalid(format!(
                    "update inserts as Yjs client {x}, at an incarnation the chain cannot take"
                )));
            }
            if !self.indices.holds(author, d) {
                // DOC-22: in a space, the index may belong to the author through
                // an adding operation this replica has not received yet.
                return Err(if self.indices.growing {
                    DocError::UnassignedIndex { client: x }
                } else {
                    invalid(format!(
                        "update inserts as Yjs client {x}, which is not assigned to its author"
                    ))
                });
            }
            let start = if k == progress.incarnation {
                if progress.client != 0 && progress.client != x {
                    return Err(invalid(
                        "the chain changes its Yjs client id without a new incarnation",
                    ));
                }
                progress.next
            } else {
                0
            };
            let mut iter = ranges.iter();
            let first = iter
                .next()
                .ok_or_else(|| invalid("empty insertion range"))?;
            if iter.next().is_some() {
                return Err(invalid(
                    "insertions of the author are not one contiguous range",
                ));
            }
            if u64::from(first.start) != start {
                return Err(invalid(format!(
                    "insertions start at clock {} but the author's chain is at {start}",
                    first.start
                )));
            }
            result = ActorProgress {
                incarnation: k,
                next: u64::from(first.end),
                client: x,
            };
        }
        Ok(result)
    }

    fn decode(content_type: u32, body: &[u8]) -> Result<Update, DocError> {
        // yrs reserves a hash map sized by the leading client count before reading
        // any client: a few garbage bytes would make it allocate megabytes. Each
        // client takes at least one byte, so a count above the length is malformed.
        if content_type == content::YJS_UPDATE_V1 && leading_varint(body) > body.len() as u64 {
            return Err(malformed("yjs", "client count exceeds the update length"));
        }
        contained("yjs", "decoder", || match content_type {
            content::YJS_UPDATE_V1 => Update::decode_v1(body),
            _ => Update::decode_v2(body),
        })
    }
}

/// The unsigned LEB128 number at the start of `b` (saturating; 0 if empty).
fn leading_varint(b: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for (i, byte) in b.iter().take(10).enumerate() {
        n |= u64::from(byte & 0x7f)
            .checked_shl(7 * i as u32)
            .unwrap_or(0);
        if byte & 0x80 == 0 {
            return n;
        }
    }
    u64::MAX
}

fn any_to_json(a: &Any) -> Json {
    match a {
        Any::Null | Any::Undefined => Json::Null,
        Any::Bool(b) => Json::Bool(*b),
        Any::Number(yrs::any::Number::Int(i)) => Json::Int(*i),
        Any::Number(yrs::any::Number::Float(f)) => Json::Number(*f),
        Any::String(s) => Json::String(s.to_string()),
        Any::Buffer(b) => bytes_json(b),
        Any::Array(items) => Json::Array(items.iter().map(any_to_json).collect()),
        Any::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), any_to_json(v))).collect()),
    }
}

/// Nesting below which shared types materialize as `null` (DOC-10).
pub const MAX_MATERIALIZE_DEPTH: usize = 64;

fn out_to_json<T: ReadTxn>(out: &Out, txn: &T, depth: usize) -> Json {
    if depth > MAX_MATERIALIZE_DEPTH {
        return Json::Null;
    }
    match out {
        Out::Any(a) => any_to_json(a),
        Out::YText(t) => Json::String(t.get_string(txn)),
        Out::YArray(a) => Json::Array(
            a.iter(txn)
                .map(|v| out_to_json(&v, txn, depth + 1))
                .collect(),
        ),
        Out::YMap(m) => Json::Object(
            m.iter(txn)
                .map(|(k, v)| (k.to_string(), out_to_json(&v, txn, depth + 1)))
                .collect(),
        ),
        Out::YXmlElement(x) => Json::String(x.get_string(txn)),
        Out::YXmlFragment(x) => Json::String(x.get_string(txn)),
        Out::YXmlText(x) => Json::String(x.get_string(txn)),
        _ => Json::Null,
    }
}

impl CrdtDoc for YjsDoc {
    fn name(&self) -> &'static str {
        "yjs"
    }

    fn validate(
        &self,
        author: &[u8; 32],
        content_type: u32,
        body: &[u8],
        progress: ActorProgress,
    ) -> Result<ActorProgress, DocError> {
        let update = Self::decode_checked(content_type, body)?;
        self.check_update(author, &update, progress)
    }

    fn validate_prepared(
        &self,
        author: &[u8; 32],
        content_type: u32,
        body: &[u8],
        progress: ActorProgress,
    ) -> Result<(ActorProgress, Prepared), DocError> {
        let update = Self::decode_checked(content_type, body)?;
        let p = self.check_update(author, &update, progress)?;
        Ok((p, Prepared::Yjs(update)))
    }

    fn apply_prepared(
        &mut self,
        prepared: Prepared,
        content_type: u32,
        body: &[u8],
    ) -> Result<(), DocError> {
        match prepared {
            Prepared::Yjs(update) => {
                let mut txn = self.doc.transact_mut_with(REMOTE_ORIGIN);
                contained("yjs", "apply", || txn.apply_update(update))
            }
            #[cfg(feature = "automerge")]
            Prepared::Automerge(_) => self.apply(content_type, body),
            Prepared::Raw => self.apply(content_type, body),
        }
    }

    fn apply(&mut self, content_type: u32, body: &[u8]) -> Result<(), DocError> {
        let update = Self::decode(content_type, body)?;
        let mut txn = self.doc.transact_mut_with(REMOTE_ORIGIN);
        contained("yjs", "apply", || txn.apply_update(update))
    }

    fn take_local(&mut self) -> Option<(u32, Vec<u8>)> {
        let batch = self
            .local
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        let start = batch.start?;
        let body = match self.encode_batch(start, &batch.deleted) {
            Some(b) => b,
            // Not expected; still a valid update: the own blocks since `start`
            // with the document's whole delete set.
            None => {
                let txn = self.doc.transact();
                let mut since = txn.state_vector();
                since.set_min(yrs::block::ClientID::new(self.client_id), start);
                txn.encode_diff_v1(&since)
            }
        };
        Some((content::YJS_UPDATE_V1, body))
    }

    fn local_progress(&mut self) -> ActorProgress {
        let sv = self.doc.transact().state_vector();
        ActorProgress {
            incarnation: self.incarnation,
            next: u64::from(sv.get(&yrs::block::ClientID::new(self.client_id))),
            client: self.client_id,
        }
    }

    fn materialize(&mut self) -> Json {
        self.materialize_shared()
    }
}

impl YjsDoc {
    /// [`CrdtDoc::materialize`] through a shared reference: it only reads.
    pub(crate) fn materialize_shared(&self) -> Json {
        let txn = self.doc.transact();
        let mut members = Vec::new();
        for (name, _) in &self.schema.roots {
            let value = txn
                .root_refs()
                .find(|(n, _)| *n == name.as_str())
                .map(|(_, out)| out_to_json(&out, &txn, 0))
                .unwrap_or(Json::Null);
            members.push((name.clone(), value));
        }
        Json::Object(members)
    }
}

fn bytes_json(b: &[u8]) -> Json {
    Json::Array(b.iter().map(|x| Json::Int(i64::from(*x))).collect())
}

// ---------------------------------------------------------------- Automerge

#[cfg(feature = "automerge")]
mod automerge_doc;
#[cfg(feature = "automerge")]
pub(crate) use automerge_doc::automerge_json;
#[cfg(feature = "automerge")]
pub use automerge_doc::{AutomergeDoc, split_change_chunks};

/// The stand-in for a CRDT this build leaves out (Automerge without the
/// `automerge` feature): it holds nothing, accepts no payload
/// ([`DocError::CrdtNotBuilt`]) and takes no local edits. `Replica::try_new`
/// refuses such a replica up front.
#[derive(Debug, Clone, Copy)]
pub struct NotBuilt {
    /// `"automerge"`.
    pub crdt: &'static str,
}

impl CrdtDoc for NotBuilt {
    fn name(&self) -> &'static str {
        self.crdt
    }

    fn validate(
        &self,
        _author: &[u8; 32],
        _content_type: u32,
        _body: &[u8],
        _progress: ActorProgress,
    ) -> Result<ActorProgress, DocError> {
        Err(DocError::CrdtNotBuilt { crdt: self.crdt })
    }

    fn apply(&mut self, _content_type: u32, _body: &[u8]) -> Result<(), DocError> {
        Err(DocError::CrdtNotBuilt { crdt: self.crdt })
    }

    fn take_local(&mut self) -> Option<(u32, Vec<u8>)> {
        None
    }

    fn local_progress(&mut self) -> ActorProgress {
        ActorProgress::default()
    }

    fn materialize(&mut self) -> Json {
        Json::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text, Transact};

    fn yjs(device: u8) -> YjsDoc {
        YjsDoc::with_indices(
            &[device; 32],
            Arc::new(binding::device_indices(&[[1; 32], [2; 32], [3; 32]])),
            YjsSchema::default(),
            0,
        )
    }

    /// A batch of per-keystroke transactions is sent as one squashed diff: smaller
    /// than the merge of the transactions' updates, with the same effect, and with
    /// only the batch's own deletions.
    #[test]
    fn batched_yjs_edits_are_squashed() {
        let mut a = yjs(1);
        let text = a.text("text");
        for (i, c) in "hello world, typed one key at a time".chars().enumerate() {
            let mut txn = a.doc().transact_mut();
            text.insert(&mut txn, i as u32, &c.to_string());
        }
        let first = a.take_local().map(|(_, b)| b).unwrap_or_default();
        // What the transactions' own updates would be, for comparison.
        let per_txn: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let sink = Arc::clone(&per_txn);
        let _ = a
            .doc()
            .observe_update_v1("test", move |_, e: &yrs::UpdateEvent| {
                if let Ok(mut v) = sink.lock() {
                    v.push(e.update.clone());
                }
            });
        {
            let mut txn = a.doc().transact_mut();
            text.remove_range(&mut txn, 0, 6);
        }
        for (i, c) in "HELLO ".chars().enumerate() {
            let mut txn = a.doc().transact_mut();
            text.insert(&mut txn, i as u32, &c.to_string());
        }
        let updates = per_txn.lock().map(|v| v.clone()).unwrap_or_default();
        let merged = yrs::merge_updates_v1(&updates).unwrap_or_default();
        let second = a.take_local().map(|(_, b)| b).unwrap_or_default();
        assert!(
            second.len() < merged.len(),
            "squashed {} bytes, merged {}",
            second.len(),
            merged.len()
        );
        // A batch of deletions only.
        {
            let mut txn = a.doc().transact_mut();
            text.remove_range(&mut txn, 5, 6);
        }
        let third = a.take_local().map(|(_, b)| b).unwrap_or_default();
        assert!(a.take_local().is_none(), "nothing left after a commit");
        let mut b = yjs(2);
        for body in [&first, &second, &third] {
            let p = b
                .validate(
                    &[1; 32],
                    content::YJS_UPDATE_V1,
                    body,
                    ActorProgress {
                        incarnation: 0,
                        next: if body == &first {
                            0
                        } else {
                            36 + u64::from(body == &third) * 6
                        },
                        client: if body == &first {
                            0
                        } else {
                            binding::yjs_client_id(0, 0)
                        },
                    },
                )
                .map_err(|e| e.to_string());
            assert!(p.is_ok(), "{p:?}");
            assert!(b.apply(content::YJS_UPDATE_V1, body).is_ok());
        }
        let got = b.text("text").get_string(&b.doc().transact());
        assert_eq!(got, "HELLO, typed one key at a time");
        // The second batch deletes only its own six characters.
        let u = Update::decode_v1(&second).unwrap_or_default();
        let deleted: u32 = u
            .delete_set()
            .iter()
            .flat_map(|(_, r)| r.iter().map(|r| r.end - r.start).collect::<Vec<_>>())
            .sum();
        assert_eq!(deleted, 6);
    }
}
