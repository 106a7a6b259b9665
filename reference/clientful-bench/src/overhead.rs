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
    let named = ids(&header.doc_id)
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

/// One named series of a [`Curve`]: the CRDT's name and its `(batch, ratio)` points.
type Series = (String, Vec<(f64, f64)>);

/// One CRDT's points of the curve from its measured `(raw, envelopes)` per batch
/// size: its rows, its JSON points and its series.
fn series_of(
    crdt: CrdtKind,
    measured: impl Fn(usize) -> anyhow::Result<(pipeline::Moved, pipeline::Moved)>,
) -> anyhow::Result<(Vec<Row>, Vec<Value>, Series)> {
    let mut rows = Vec::new();
    let mut points = Vec::new();
    let mut line = Vec::new();
    for &batch in BATCHES {
        let (raw, env) = measured(batch)?;
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
    Ok((rows, points, (name(crdt).to_owned(), line)))
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
    // Every point is a byte count, which does not depend on timing, so the points'
    // runs (raw and envelopes, per CRDT and batch size) are spread over two threads,
    // the costliest first (Automerge at one change per message is most of the time).
    let mut runs: Vec<(CrdtKind, usize, bool)> = Vec::new();
    for crdt in [CrdtKind::Automerge, CrdtKind::Yjs] {
        for &batch in BATCHES {
            runs.push((crdt, batch, false));
            runs.push((crdt, batch, true));
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; runs.len()]);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(crdt, batch, enveloped)) = runs.get(i) else {
                            return Ok(());
                        };
                        let moved = match (crdt, enveloped) {
                            (_, true) => pipeline::clientful(crdt, patches, batch)?,
                            (CrdtKind::Yjs, false) => pipeline::raw_yjs(patches, batch)?,
                            (_, false) => pipeline::raw_automerge(patches, batch)?,
                        };
                        let mut r = results
                            .lock()
                            .map_err(|_| anyhow::anyhow!("overhead results poisoned"))?;
                        if let Some(slot) = r.get_mut(i) {
                            *slot = Some(moved);
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("an overhead thread panicked"))?
        })
    })?;
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("overhead results poisoned"))?;
    let moved =
        |crdt: CrdtKind, batch: usize, enveloped: bool| -> anyhow::Result<pipeline::Moved> {
            runs.iter()
                .position(|r| *r == (crdt, batch, enveloped))
                .and_then(|i| results.get(i).copied().flatten())
                .ok_or_else(|| anyhow::anyhow!("overhead point {batch} not measured"))
        };
    let mut rows = Vec::new();
    let mut points = Vec::new();
    let mut series = Vec::new();
    for crdt in [CrdtKind::Yjs, CrdtKind::Automerge] {
        let (r, p, line) = series_of(crdt, |batch| {
            Ok((moved(crdt, batch, false)?, moved(crdt, batch, true)?))
        })?;
        rows.extend(r);
        points.extend(p);
        series.push(line);
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
