//! A document replica as an app edits it: text and JSON values through small
//! helpers, or the full yrs / automerge API through [`Document::yjs`] and
//! [`Document::automerge`]. Every edit is committed into one signed envelope by
//! [`crate::SpaceSession::edit`].

#[cfg(feature = "automerge")]
use automerge::transaction::Transactable;
#[cfg(feature = "automerge")]
use automerge::{ObjType, ReadDoc};
use clientful_doc::canonical_json::Json;
#[cfg(feature = "automerge")]
use clientful_doc::crdt::AutomergeDoc;
use clientful_doc::crdt::YjsDoc;
use clientful_doc::replica::{Replica, Verdict};
use clientful_doc::text::{self, TextEditError};
use serde_json::Value;
use yrs::{Any, GetString, Map, Text, Transact};

/// Why an edit of a document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// A text edit was refused (out of range, or by Automerge).
    #[error(transparent)]
    Text(#[from] TextEditError),
    /// Automerge refused to set a value.
    #[cfg(feature = "automerge")]
    #[error("automerge: {0}")]
    Automerge(Box<automerge::AutomergeError>),
    /// The replica holds no document.
    #[error("the replica holds no document")]
    NoDocument,
    /// The document is not of the CRDT the edit uses.
    #[error("not a {0:?} document")]
    WrongCrdt(clientful_doc::replica::CrdtKind),
}

#[cfg(feature = "automerge")]
impl From<automerge::AutomergeError> for EditError {
    fn from(e: automerge::AutomergeError) -> Self {
        EditError::Automerge(Box::new(e))
    }
}

/// One document replica.
pub struct Document {
    replica: Replica,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("id", &hex::encode(self.replica.doc_id()))
            .finish_non_exhaustive()
    }
}

/// One envelope of a document's history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Envelope id.
    pub id: [u8; 32],
    /// Author device key.
    pub author: [u8; 32],
    /// Author's sequence number.
    pub seq: u64,
    /// The verdict (applied, excluded, rejected).
    pub verdict: String,
}

fn to_any(v: &Value) -> Any {
    // Any deserializes from JSON (numbers: integers stay integers).
    serde_json::from_value(v.clone()).unwrap_or(Any::Null)
}

/// A JSON scalar as an Automerge scalar; `None` for arrays and objects.
#[cfg(feature = "automerge")]
fn am_scalar(v: &Value) -> Option<automerge::ScalarValue> {
    use automerge::ScalarValue as S;
    Some(match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => S::Int(i),
            None => S::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => S::Str(s.as_str().into()),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// Where a value goes: a key of a map, or an index of a list (inserted).
#[cfg(feature = "automerge")]
enum Slot<'a> {
    Key(&'a str),
    Index(usize),
}

/// Writes a JSON value into an Automerge object, recursively.
#[cfg(feature = "automerge")]
fn am_write(
    doc: &mut automerge::AutoCommit,
    obj: &automerge::ObjId,
    slot: Slot<'_>,
    v: &Value,
) -> Result<(), automerge::AutomergeError> {
    if let Some(sv) = am_scalar(v) {
        return match slot {
            Slot::Key(k) => doc.put(obj, k, sv),
            Slot::Index(i) => doc.insert(obj, i, sv),
        };
    }
    let ty = if v.is_array() {
        ObjType::List
    } else {
        ObjType::Map
    };
    let inner = match slot {
        Slot::Key(k) => doc.put_object(obj, k, ty)?,
        Slot::Index(i) => doc.insert_object(obj, i, ty)?,
    };
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                am_write(doc, &inner, Slot::Index(i), x)?;
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                am_write(doc, &inner, Slot::Key(k), x)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Document {
    pub(crate) fn new(replica: Replica) -> Self {
        Document { replica }
    }

    /// The underlying replica.
    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// The document id.
    pub fn id(&self) -> [u8; 32] {
        *self.replica.doc_id()
    }

    /// The yrs document (`None` for Automerge): edit it with the yrs API; the
    /// replica encodes the changes when the edit is committed.
    pub fn yjs(&self) -> Option<&YjsDoc> {
        self.replica.yjs()
    }

    /// The Automerge document (`None` for Yjs). Only in builds with the
    /// `automerge` feature (the default).
    #[cfg(feature = "automerge")]
    pub fn automerge(&mut self) -> Option<&mut AutomergeDoc> {
        self.replica.automerge_mut()
    }

    /// Inserts text at a UTF-16 offset of the document's text (Yjs root `text`,
    /// Automerge root key `text`).
    pub fn insert_text(&mut self, index: u32, text: &str) -> Result<(), EditError> {
        Ok(text::insert_text(&mut self.replica, index, text)?)
    }

    /// Appends text at the end of the document's text.
    pub fn append_text(&mut self, text: &str) -> Result<(), EditError> {
        let at = self.text_len();
        self.insert_text(at, text)
    }

    /// Deletes `len` UTF-16 code units at `index`.
    pub fn delete_text(&mut self, index: u32, len: u32) -> Result<(), EditError> {
        Ok(text::delete_text(&mut self.replica, index, len)?)
    }

    fn text_len(&mut self) -> u32 {
        if let Some(y) = self.replica.yjs() {
            let t = y.text("text");
            return t.len(&y.doc().transact());
        }
        self.text().encode_utf16().count() as u32
    }

    /// Sets a JSON value under `key` (Yjs root map `data`, Automerge root).
    pub fn set_json(&mut self, key: &str, value: &Value) -> Result<(), EditError> {
        if let Some(y) = self.replica.yjs() {
            let data = y.map("data");
            data.insert(&mut y.doc().transact_mut(), key, to_any(value));
            return Ok(());
        }
        #[cfg(feature = "automerge")]
        {
            let doc = self
                .replica
                .automerge_mut()
                .ok_or(EditError::NoDocument)?
                .doc_mut();
            Ok(am_write(doc, &automerge::ROOT, Slot::Key(key), value)?)
        }
        #[cfg(not(feature = "automerge"))]
        {
            let _ = (key, value);
            Err(EditError::NoDocument)
        }
    }

    /// The document as JSON (the materialized state, DOC-12).
    pub fn json(&mut self) -> Value {
        serde_json::from_str(&self.replica.materialize().to_canonical_string())
            .unwrap_or(Value::Null)
    }

    /// The document's text.
    pub fn text(&mut self) -> String {
        if let Some(y) = self.replica.yjs() {
            let t = y.text("text");
            return t.get_string(&y.doc().transact());
        }
        #[cfg(feature = "automerge")]
        if let Some(am) = self.replica.automerge_mut() {
            let doc = am.doc_mut();
            if let Ok(Some((_, id))) = doc.get(automerge::ROOT, "text") {
                return doc.text(&id).unwrap_or_default();
            }
        }
        String::new()
    }

    /// The title set at creation.
    pub fn title(&mut self) -> String {
        let j = self.json();
        j.get("data")
            .and_then(|d| d.get("title"))
            .or_else(|| j.get("title"))
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned()
    }

    /// `StateDigest` (DOC-12) in hex: equal on every replica with the same state.
    pub fn state_digest(&mut self) -> String {
        hex::encode(self.replica.state_digest())
    }

    /// `HistoryDigest` (DOC-13) in hex.
    pub fn history_digest(&self) -> String {
        hex::encode(self.replica.history_digest())
    }

    /// Every integrated envelope, oldest first by author and sequence.
    pub fn history(&self) -> Vec<HistoryEntry> {
        let mut out: Vec<HistoryEntry> = self
            .replica
            .dag()
            .nodes
            .values()
            .map(|n| HistoryEntry {
                id: n.id,
                author: n.author,
                seq: n.seq,
                verdict: match self.replica.verdict(&n.id) {
                    Verdict::Applied => "applied".into(),
                    Verdict::Excluded => "excluded (equivocation)".into(),
                    Verdict::Rejected(c) => format!("rejected ({c:?})"),
                    Verdict::Buffered => "buffered".into(),
                    Verdict::Unknown => "unknown".into(),
                    other => format!("{other:?}").to_lowercase(),
                },
            })
            .collect();
        out.sort_by_key(|e| (e.author, e.seq));
        out
    }

    /// The materialized canonical JSON.
    pub fn canonical(&mut self) -> Json {
        self.replica.materialize()
    }
}
