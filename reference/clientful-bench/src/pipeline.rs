//! The envelope pipeline against the raw CRDT libraries on the `automerge-paper`
//! trace: a sender makes every edit with the library's own API; at each batch
//! boundary the raw baseline encodes the library's own update and the receiver
//! decodes and applies it, while Clientful seals the same edits into an envelope
//! (sign, encrypt, pad) and the receiving replica opens (verify, decrypt, check
//! actor binding and causality) and applies it. Both receivers must end with the
//! sender's text.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ReadDoc, TextEncoding};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Disposition};
use yrs::updates::decoder::Decode;
use yrs::{GetString, OffsetKind, Options, ReadTxn, Text, Transact, Update};

use crate::trace::Patch;

/// What one run moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Messages (updates or envelopes).
    pub messages: usize,
    /// Bytes of all messages.
    pub bytes: usize,
}

fn boundary(i: usize, batch: usize, n: usize) -> bool {
    (i + 1).is_multiple_of(batch) || i + 1 == n
}

pub(crate) fn ydoc(client_id: u64) -> yrs::Doc {
    let mut options = Options::with_client_id(yrs::block::ClientID::new(client_id));
    options.offset_kind = OffsetKind::Utf16;
    yrs::Doc::with_options(options)
}

/// Raw Yjs: one update per batch (`encode_diff_v1` since the last one), decoded
/// and applied by the receiver.
pub fn raw_yjs(patches: &[Patch], batch: usize) -> anyhow::Result<Moved> {
    let (a, b) = (ydoc(1), ydoc(2));
    let ta = a.get_or_insert_text("text");
    let tb = b.get_or_insert_text("text");
    let mut sv = a.transact().state_vector();
    let mut moved = Moved::default();
    for (i, p) in patches.iter().enumerate() {
        {
            let mut txn = a.transact_mut();
            if p.1 > 0 {
                ta.remove_range(&mut txn, p.0 as u32, p.1 as u32);
            }
            if !p.2.is_empty() {
                ta.insert(&mut txn, p.0 as u32, &p.2);
            }
        }
        if boundary(i, batch, patches.len()) {
            let update = a.transact().encode_diff_v1(&sv);
            sv = a.transact().state_vector();
            moved.messages += 1;
            moved.bytes += update.len();
            b.transact_mut()
                .apply_update(Update::decode_v1(&update)?)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    anyhow::ensure!(
        ta.get_string(&a.transact()) == tb.get_string(&b.transact()),
        "raw Yjs receiver diverged"
    );
    Ok(moved)
}

/// Raw Automerge: the edits of each batch committed as one change, sent as the
/// library's change chunk, parsed and applied by the receiver.
pub fn raw_automerge(patches: &[Patch], batch: usize) -> anyhow::Result<Moved> {
    let mut a = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit)
        .with_actor(ActorId::from(vec![1u8; 16]));
    let mut b = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit)
        .with_actor(ActorId::from(vec![2u8; 16]));
    let text = a.put_object(automerge::ROOT, "text", ObjType::Text)?;
    a.commit();
    let mut heads = Vec::new();
    let mut moved = Moved::default();
    for (i, p) in patches.iter().enumerate() {
        a.splice_text(&text, p.0, p.1 as isize, &p.2)?;
        if boundary(i, batch, patches.len()) {
            // One change per batch, as the replica makes (AutoCommit's own batching).
            a.commit();
            let chunks: Vec<Vec<u8>> = a
                .get_changes(&heads)
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            heads = a.get_heads();
            let mut changes = Vec::with_capacity(chunks.len());
            for c in chunks {
                moved.bytes += c.len();
                changes.push(automerge::Change::from_bytes(c)?);
            }
            moved.messages += 1;
            b.apply_changes(changes)?;
        }
    }
    let tb = match b.get(automerge::ROOT, "text")? {
        Some((_, id)) => b.text(&id)?,
        None => String::new(),
    };
    anyhow::ensure!(a.text(&text)? == tb, "raw Automerge receiver diverged");
    Ok(moved)
}

/// Makes trace edits on a replica's text with the library's own API.
pub struct Editor {
    yjs: Option<yrs::TextRef>,
    automerge: Option<automerge::ObjId>,
}

impl Editor {
    /// The text of `r` (created for Automerge).
    pub fn new(r: &mut clientful_doc::Replica) -> anyhow::Result<Editor> {
        let yjs = r.yjs().map(|y| y.text("text"));
        let automerge = match r.automerge_mut() {
            Some(am) => Some(
                am.doc_mut()
                    .put_object(automerge::ROOT, "text", ObjType::Text)?,
            ),
            None => None,
        };
        Ok(Editor { yjs, automerge })
    }

    /// Applies one patch as one transaction.
    pub fn apply(&mut self, r: &mut clientful_doc::Replica, p: &Patch) -> anyhow::Result<()> {
        if let (Some(t), Some(y)) = (&self.yjs, r.yjs()) {
            let mut txn = y.doc().transact_mut();
            if p.1 > 0 {
                t.remove_range(&mut txn, p.0 as u32, p.1 as u32);
            }
            if !p.2.is_empty() {
                t.insert(&mut txn, p.0 as u32, &p.2);
            }
        } else if let (Some(id), Some(am)) = (&self.automerge, r.automerge_mut()) {
            am.doc_mut().splice_text(id, p.0, p.1 as isize, &p.2)?;
        }
        Ok(())
    }
}

/// Clientful: the same edits through a replica; each batch is sealed into an
/// envelope and received (opened, checked, applied) by a second replica.
pub fn clientful(crdt: CrdtKind, patches: &[Patch], batch: usize) -> anyhow::Result<Moved> {
    let w = World::new(1, 2, crdt);
    let (mut a, mut b) = (w.replica(0), w.replica(1));
    let mut editor = Editor::new(&mut a)?;
    let mut moved = Moved::default();
    for (i, p) in patches.iter().enumerate() {
        editor.apply(&mut a, p)?;
        if boundary(i, batch, patches.len()) {
            a.commit()?;
            for (_, env) in a.drain_outbox() {
                moved.messages += 1;
                moved.bytes += env.len();
                match b.receive(&env) {
                    Disposition::Applied { .. } => {}
                    other => anyhow::bail!("envelope not applied: {other:?}"),
                }
            }
        }
    }
    anyhow::ensure!(
        a.state_digest() == b.state_digest(),
        "Clientful receiver diverged"
    );
    Ok(moved)
}
