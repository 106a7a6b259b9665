//! Editing a document's text, the one text every CRDT of §8 carries: the Yjs
//! root text `text`, or the Automerge root key `text` (created on first use).
//! Offsets and lengths are UTF-16 code units, as in Yjs. The edit lands in the
//! replica's CRDT; `Replica::commit` then seals it into an envelope (DOC-2).

use crate::replica::Replica;

/// Why a text edit was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TextEditError {
    /// The range ends past the text.
    #[error("edit position out of range ({index} + {delete} > {len})")]
    OutOfRange {
        /// Where the edit starts.
        index: u32,
        /// How many code units it deletes.
        delete: u32,
        /// The text's length.
        len: u32,
    },
    /// The replica holds neither a Yjs nor an Automerge document.
    #[error("the replica holds no document")]
    NoDocument,
    /// Automerge refused the edit.
    #[cfg(feature = "automerge")]
    #[error("automerge: {0}")]
    Automerge(Box<automerge::AutomergeError>),
}

#[cfg(feature = "automerge")]
impl From<automerge::AutomergeError> for TextEditError {
    fn from(e: automerge::AutomergeError) -> Self {
        TextEditError::Automerge(Box::new(e))
    }
}

/// Deletes `delete` code units at `index` of the document's text, then
/// inserts `insert` there.
pub fn splice_text(
    r: &mut Replica,
    index: u32,
    delete: u32,
    insert: &str,
) -> Result<(), TextEditError> {
    use yrs::{Text, Transact};
    if let Some(y) = r.yjs() {
        // Root refs first: yrs takes the document lock for them.
        let text = y.text("text");
        let len = text.len(&y.doc().transact());
        if index.saturating_add(delete) > len {
            return Err(TextEditError::OutOfRange { index, delete, len });
        }
        let mut txn = y.doc().transact_mut();
        if delete > 0 {
            text.remove_range(&mut txn, index, delete);
        }
        if !insert.is_empty() {
            text.insert(&mut txn, index, insert);
        }
        return Ok(());
    }
    splice_automerge(r, index, delete, insert)
}

#[cfg(not(feature = "automerge"))]
fn splice_automerge(
    _r: &mut Replica,
    _index: u32,
    _delete: u32,
    _insert: &str,
) -> Result<(), TextEditError> {
    Err(TextEditError::NoDocument)
}

#[cfg(feature = "automerge")]
fn splice_automerge(
    r: &mut Replica,
    index: u32,
    delete: u32,
    insert: &str,
) -> Result<(), TextEditError> {
    use automerge::transaction::Transactable;
    let doc = r
        .automerge_mut()
        .ok_or(TextEditError::NoDocument)?
        .doc_mut();
    let id = match automerge::ReadDoc::get(doc, automerge::ROOT, "text")? {
        Some((_, id)) => id,
        None => doc.put_object(automerge::ROOT, "text", automerge::ObjType::Text)?,
    };
    let out_of_range = || TextEditError::OutOfRange {
        index,
        delete,
        len: u32::try_from(automerge::ReadDoc::length(doc, &id)).unwrap_or(u32::MAX),
    };
    let del = isize::try_from(delete).map_err(|_| out_of_range())?;
    let at = usize::try_from(index).map_err(|_| out_of_range())?;
    doc.splice_text(&id, at, del, insert)?;
    Ok(())
}

/// Inserts `text` at `index` of the document's text.
pub fn insert_text(r: &mut Replica, index: u32, text: &str) -> Result<(), TextEditError> {
    splice_text(r, index, 0, text)
}

/// Deletes `length` code units at `index` of the document's text.
pub fn delete_text(r: &mut Replica, index: u32, length: u32) -> Result<(), TextEditError> {
    splice_text(r, index, length, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::CrdtKind;
    use crate::testkit::World;

    fn text_of(r: &mut Replica) -> String {
        r.materialize().to_canonical_string()
    }

    #[test]
    fn splices_both_crdts_and_refuses_a_range_past_the_end() {
        for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
            let mut r = World::new(1, 1, crdt).replica(0);
            insert_text(&mut r, 0, "hello world").expect("insert");
            delete_text(&mut r, 5, 6).expect("delete");
            splice_text(&mut r, 0, 1, "J").expect("splice");
            assert!(
                text_of(&mut r).contains("Jello"),
                "{crdt:?}: {}",
                text_of(&mut r)
            );
            assert!(!text_of(&mut r).contains("world"), "{crdt:?}");
        }
        let mut r = World::new(2, 1, CrdtKind::Yjs).replica(0);
        insert_text(&mut r, 0, "abc").expect("insert");
        assert!(matches!(
            delete_text(&mut r, 2, 5),
            Err(TextEditError::OutOfRange {
                index: 2,
                delete: 5,
                len: 3
            })
        ));
        let mut r = World::new(3, 1, CrdtKind::Automerge).replica(0);
        assert!(matches!(
            insert_text(&mut r, 4, "x"),
            Err(TextEditError::Automerge(_))
        ));
    }
}
