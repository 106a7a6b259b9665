//! Honest local edits: random inserts and deletes in the shared text, at character
//! boundaries converted to UTF-16 offsets (both CRDTs index text in UTF-16 code
//! units, as JavaScript does), with non-ASCII content to exercise the conversion.

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use clientful_doc::Replica;
use rand_chacha::ChaCha20Rng;
use yrs::{GetString, Text, Transact};

use crate::rng::index;

/// What honest editors type: ASCII, Latin-1, a BMP CJK character and astral
/// characters that take two UTF-16 code units.
pub const ALPHABET: &[&str] = &["a", "b", "z", " ", "é", "ß", "中", "🌍", "👍🏽", "é🌍"];

/// The name of the shared text (a Yjs root; an Automerge map key).
pub const TEXT: &str = "text";

fn utf16_offset(chars: &[char], upto: usize) -> usize {
    chars.iter().take(upto).map(|c| c.len_utf16()).sum()
}

/// One random edit, as `(utf16_pos, utf16_delete, insert)`, on text `s`.
fn plan(s: &str, rng: &mut ChaCha20Rng) -> (usize, usize, String) {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n > 0 && index(rng, 10) < 4 {
        let start = index(rng, n);
        let len = 1 + index(rng, (n - start).min(4));
        let pos = utf16_offset(&chars, start);
        let del = utf16_offset(&chars, start + len) - pos;
        (pos, del, String::new())
    } else {
        let at = index(rng, n + 1);
        let mut ins = String::new();
        for _ in 0..1 + index(rng, 3) {
            ins.push_str(
                ALPHABET
                    .get(index(rng, ALPHABET.len()))
                    .copied()
                    .unwrap_or("a"),
            );
        }
        (utf16_offset(&chars, at), 0, ins)
    }
}

/// The current shared text of `replica` (empty if it does not exist yet).
pub fn text(replica: &mut Replica) -> String {
    if let Some(y) = replica.yjs() {
        let t = y.text(TEXT);
        let txn = y.doc().transact();
        return t.get_string(&txn);
    }
    if let Some(am) = replica.automerge_mut() {
        let doc = am.doc_mut();
        if let Ok(Some((automerge::Value::Object(ObjType::Text), obj))) =
            doc.get(automerge::ROOT, TEXT)
        {
            return doc.text(&obj).unwrap_or_default();
        }
    }
    String::new()
}

/// Creates the shared text with `initial` content. For Automerge only one device
/// should do this (two concurrent `put_object` calls conflict); for Yjs the root
/// exists already and this is an insert at 0.
pub fn create_text(replica: &mut Replica, initial: &str) -> bool {
    if let Some(y) = replica.yjs() {
        let t = y.text(TEXT);
        let mut txn = y.doc().transact_mut();
        t.insert(&mut txn, 0, initial);
        return true;
    }
    if let Some(am) = replica.automerge_mut() {
        let doc = am.doc_mut();
        if let Ok(obj) = doc.put_object(automerge::ROOT, TEXT, ObjType::Text) {
            return doc.splice_text(&obj, 0, 0, initial).is_ok();
        }
    }
    false
}

/// Makes one random edit (insert or delete) to the shared text. Returns a short
/// description, or `None` if nothing could be edited (no text object yet).
pub fn random_edit(replica: &mut Replica, rng: &mut ChaCha20Rng) -> Option<String> {
    if let Some(y) = replica.yjs() {
        let t = y.text(TEXT);
        let mut txn = y.doc().transact_mut();
        let s = t.get_string(&txn);
        let (pos, del, ins) = plan(&s, rng);
        let p = u32::try_from(pos).ok()?;
        if del > 0 {
            t.remove_range(&mut txn, p, u32::try_from(del).ok()?);
            return Some(format!("del {pos}+{del}"));
        }
        t.insert(&mut txn, p, &ins);
        return Some(format!("ins {pos} {ins:?}"));
    }
    if let Some(am) = replica.automerge_mut() {
        let doc = am.doc_mut();
        let Ok(Some((automerge::Value::Object(ObjType::Text), obj))) =
            doc.get(automerge::ROOT, TEXT)
        else {
            return None;
        };
        let s = doc.text(&obj).ok()?;
        let (pos, del, ins) = plan(&s, rng);
        doc.splice_text(&obj, pos, isize::try_from(del).ok()?, &ins)
            .ok()?;
        return Some(if del > 0 {
            format!("del {pos}+{del}")
        } else {
            format!("ins {pos} {ins:?}")
        });
    }
    None
}
