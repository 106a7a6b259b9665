//! Envelope overhead (issue 19 item 3): what an envelope adds to the CRDT's own bytes,
//! as a curve over the batch size (edits per envelope) for both CRDTs, and where the
//! bytes of one envelope go, field by field, measured on a real envelope.
//!
//! Each point seals the same edits of the `automerge-paper` trace at one batch size:
//! the baseline is the raw library's update or change bytes at that batch size
//! ([`pipeline::raw_yjs`], [`pipeline::raw_automerge`]), the candidate the envelopes'
//! bytes ([`pipeline::clientful`]).

use clientful_core::wire;
use clientful_doc::CrdtKind;
use clientful_doc::testkit::World;
use clientful_proto::v1 as pb;
use serde_json::{Value, json};

use crate::fanout::Row;
use crate::pipeline::{self, Editor};
use crate::scale::Curve;
use crate::trace::Patch;

/// Batch sizes of the curve (edits per envelope).
pub const BATCHES: &[usize] = &[1, 4, 16, 64, 256, 1024];

/// The bytes of one envelope by field: name, bytes on the wire (tag and length
/// prefixes included in each line).
fn breakdown(envelope: &[u8]) -> anyhow::Result<Vec<(&'static str, usize)>> {
    fn varint_len(mut v: usize) -> usize {
        let mut n = 1;
        while v >= 0x80 {
            v >>= 7;
            n += 1;
        }
        n
    }
    // A bytes field on the wire: one tag byte, the length as a varint, the bytes.
    let ids = |b: &[u8]| {
        if b.is_empty() {
            0
        } else {
            1 + varint_len(b.len()) + b.len()
        }
    };
    let signed: pb::SignedEnvelope = wire::decode(envelope, &wire::SIGNED_ENVELOPE)?;
    let payload: pb::EnvelopePayload = wire::decode(&signed.payload, &wire::ENVELOPE_PAYLOAD)?;
    let header: pb::EnvelopeHeader = wire::decode(&payload.header, &wire::ENVELOPE_HEADER)?;
    let preds: usize = header.preds.iter().map(|p| ids(p)).sum();
    let named = ids(&header.space_id)
        + ids(&header.doc_id)
        + ids(&header.author)
        + ids(&header.prev)
        + preds
        + ids(&header.epoch_id)
        + ids(&header.key_commitment)
        + ids(&header.nonce);
    let scalars = payload.header.len().saturating_sub(named);
    let framing = envelope
        .len()
        .saturating_sub(ids(&signed.signature) + payload.header.len() + ids(&payload.ciphertext));
    Ok(vec![
        ("signature", ids(&signed.signature)),
        ("space id", ids(&header.space_id)),
        ("document id", ids(&header.doc_id)),
        ("author", ids(&header.author)),
        ("previous", ids(&header.prev)),
        ("predecessors", preds),
        ("epoch id", ids(&header.epoch_id)),
        ("key commitment", ids(&header.key_commitment)),
        ("nonce", ids(&header.nonce)),
        ("version, suite, seq", scalars),
        (
            "ciphertext (content, padding, tag)",
            ids(&payload.ciphertext),
        ),
        ("framing (payload and header prefixes)", framing),
    ])
}

/// One Automerge envelope of `batch` edits from the start of the trace.
fn one_envelope(crdt: CrdtKind, patches: &[Patch], batch: usize) -> anyhow::Result<Vec<u8>> {
    let w = World::new(1, 2, crdt);
    let mut a = w.replica(0);
    let mut editor = Editor::new(&mut a)?;
    for p in patches.iter().take(batch) {
        editor.apply(&mut a, p)?;
    }
    a.commit()?;
    a.drain_outbox()
        .into_iter()
        .map(|(_, e)| e)
        .next()
        .ok_or_else(|| anyhow::anyhow!("no envelope"))
}

fn name(crdt: CrdtKind) -> &'static str {
    match crdt {
        CrdtKind::Yjs => "Yjs",
        _ => "Automerge",
    }
}

/// The overhead section: one row per (CRDT, batch size), a breakdown of one
/// 64-edit Automerge envelope, and the curve's points as JSON.
pub fn overhead(quick: bool, patches: &[Patch]) -> anyhow::Result<(Vec<Row>, Value, Curve)> {
    // Bytes do not depend on the size past a few thousand edits (the curve's shape is
    // the same at 8,192 and 16,384); the size is bounded because every point also
    // opens and applies every envelope, and Automerge applying one change at a time
    // costs time that grows with the document: at 65,536 edits the one-edit points
    // alone took over half an hour (a full run of 2026-12-07, stopped), against the
    // issue's 15 minutes for the whole binary.
    let n = patches.len().min(if quick { 8_192 } else { 16_384 });
    let patches = patches.get(..n).unwrap_or(patches);
    let mut rows = Vec::new();
    let mut points = Vec::new();
    let mut series = Vec::new();
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let mut line = Vec::new();
        for &batch in BATCHES {
            let raw = match crdt {
                CrdtKind::Yjs => pipeline::raw_yjs(patches, batch)?,
                _ => pipeline::raw_automerge(patches, batch)?,
            };
            let env = pipeline::clientful(crdt, patches, batch)?;
            let per = (env.bytes as f64 - raw.bytes as f64) / env.messages.max(1) as f64;
            line.push((batch as f64, env.bytes as f64 / raw.bytes.max(1) as f64));
            points.push(json!({
                "crdt": name(crdt),
                "batch": batch,
                "raw_bytes": raw.bytes,
                "envelope_bytes": env.bytes,
                "envelopes": env.messages,
                "ratio": env.bytes as f64 / raw.bytes.max(1) as f64,
                "overhead_per_envelope": per,
            }));
            rows.push(Row {
                name: format!("overhead {} bytes, {batch} edits per envelope", name(crdt)),
                baseline: raw.bytes as f64,
                candidate: env.bytes as f64,
                unit: "B",
                // The target applies to the batched figure (64 edits).
                target: (batch == 64).then_some((false, 1.3)),
                note: format!("{per:.0} B more per envelope, {} envelopes", env.messages),
            });
        }
        series.push((name(crdt).to_owned(), line));
    }
    let curve = Curve {
        stem: "envelope-overhead",
        title: format!("Envelope bytes over the CRDT's own bytes ({n} edits)"),
        x_label: "edits per envelope",
        y_label: "envelope bytes / raw bytes",
        log_x: true,
        series,
    };
    let env = one_envelope(CrdtKind::Automerge, patches, 64)?;
    let parts = breakdown(&env)?;
    let total: usize = parts.iter().map(|(_, b)| b).sum();
    anyhow::ensure!(
        total == env.len(),
        "breakdown {total} B of a {} B envelope",
        env.len()
    );
    let details = json!({
        "edits": n,
        "points": points,
        "automerge_64_envelope": {
            "bytes": env.len(),
            "fields": parts.iter().map(|(k, b)| json!({"field": k, "bytes": b})).collect::<Vec<_>>(),
        },
    });
    Ok((rows, details, curve))
}
