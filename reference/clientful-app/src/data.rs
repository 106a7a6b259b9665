//! The data map of a document as string keys and string values: the Yjs root
//! map `data`, or the Automerge root map (without its `text` key). Application
//! records (posts, comments, lifecycle and schema markers) live here as keyed
//! entries, so every write is a single-key set or delete: idempotent, and
//! convergent under concurrency.

use std::collections::BTreeMap;

use clientful_doc::Replica;
use clientful_doc::canonical_json::Json;

use crate::AppError;

/// The data map, sorted by key. Values that are not strings are skipped.
pub type Data = BTreeMap<String, String>;

/// One write to the data map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MapOp {
    /// Set `key` to `value`.
    Set(String, String),
    /// Delete `key`.
    Delete(String),
}

/// The current data map of `r` (uncommitted local edits included).
pub fn read(r: &mut Replica) -> Data {
    let root = r.materialize();
    let members = match root {
        Json::Object(m) => m,
        _ => return Data::new(),
    };
    let yjs = r.yjs().is_some();
    let mut out = Data::new();
    let mut take = |m: Vec<(String, Json)>| {
        for (k, v) in m {
            if let Json::String(s) = v {
                out.insert(k, s);
            }
        }
    };
    if yjs {
        for (k, v) in members {
            if k == "data"
                && let Json::Object(m) = v
            {
                take(m);
            }
        }
    } else {
        take(members.into_iter().filter(|(k, _)| k != "text").collect());
    }
    out
}

/// Applies `ops` as local (uncommitted) edits, skipping those that would change
/// nothing, and returns how many it applied.
pub fn apply(r: &mut Replica, ops: &[MapOp]) -> Result<usize, AppError> {
    use yrs::{Map, Transact};
    let current = read(r);
    let needed: Vec<&MapOp> = ops
        .iter()
        .filter(|op| match op {
            MapOp::Set(k, v) => current.get(k) != Some(v),
            MapOp::Delete(k) => current.contains_key(k),
        })
        .collect();
    if needed.is_empty() {
        return Ok(0);
    }
    if let Some(y) = r.yjs() {
        let data = y.map("data");
        let mut txn = y.doc().transact_mut();
        for op in &needed {
            match op {
                MapOp::Set(k, v) => {
                    data.insert(&mut txn, k.as_str(), v.as_str());
                }
                MapOp::Delete(k) => {
                    data.remove(&mut txn, k);
                }
            }
        }
        return Ok(needed.len());
    }
    apply_automerge(r, &needed)
}

/// Without the `automerge` feature an Automerge replica holds no document.
#[cfg(not(feature = "automerge"))]
fn apply_automerge(_r: &mut Replica, _needed: &[&MapOp]) -> Result<usize, AppError> {
    Err(AppError::Doc(clientful_doc::DocError::CrdtNotBuilt {
        crdt: clientful_doc::CrdtKind::Automerge.name(),
    }))
}

#[cfg(feature = "automerge")]
fn apply_automerge(r: &mut Replica, needed: &[&MapOp]) -> Result<usize, AppError> {
    use automerge::transaction::Transactable;
    let doc = r
        .automerge_mut()
        .ok_or_else(|| AppError::Crdt("no document".into()))?
        .doc_mut();
    for op in needed {
        match op {
            MapOp::Set(k, v) => doc
                .put(automerge::ROOT, k.as_str(), v.as_str())
                .map_err(|e| AppError::Crdt(e.to_string()))?,
            MapOp::Delete(k) => doc
                .delete(automerge::ROOT, k.as_str())
                .map_err(|e| AppError::Crdt(e.to_string()))?,
        }
    }
    Ok(needed.len())
}

/// Applies `ops` and commits them as one envelope if anything changed.
pub fn apply_and_commit(r: &mut Replica, ops: &[MapOp]) -> Result<usize, AppError> {
    let n = apply(r, ops)?;
    if n > 0 {
        r.commit()?;
    }
    Ok(n)
}
