//! The decisions of a device on the storage layout (spec §9.6–§9.8, §9.7a:
//! STO-8, STO-9, STO-11, STO-13, STO-14, STO-15, STO-23, STO-26, STO-27, STO-28,
//! STO-31),
//! pure: functions over the names a backend listed, the bytes it returned and what
//! the device remembers (high-water marks, `have` counts, its own committed head
//! manifest). They say what to fetch next, what a fetched object is worth, what is
//! rollback, fork or withholding, what a compaction uploads and collects, and what
//! a repair puts back. The shell (`clientful-storage`) does the IO and persists
//! what they return; it holds no protocol rule of its own.

use std::collections::BTreeMap;

use clientful_core::envelope::{self, ReceivedEnvelope};

use crate::causal;
use crate::coverage;
use crate::error::StorageError;
use crate::hwm::{HighWater, Withholding, classify_head, select_snapshot};
use crate::layout::{EpochStorage, ObjectId, object_id};
use crate::object::{
    Checkpoint, CheckpointEntry, HeadManifest, Kind, Opened, Segment, Snapshot, open_lobby_object,
    open_object,
};

/// Envelope bytes per segment a writer aims for: well under the 64 MiB object limit
/// (STO-7) once framing, signature and AEAD are added.
pub const SEGMENT_TARGET_BYTES: usize = 32 * 1024 * 1024;

/// The first four bytes of an id, in hex, for messages.
pub fn short(b: &[u8]) -> String {
    hex::encode(b.get(..4).unwrap_or(b))
}

/// A head manifest that storage withheld, rolled back or forked (STO-9), or
/// objects of this device it withheld (STO-28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Alarm {
    /// The epoch whose directory it concerns.
    pub epoch_id: [u8; 32],
    /// The device whose head manifest or objects it concerns.
    pub device: [u8; 32],
    /// What storage did.
    pub kind: Withholding,
}

// ---------------------------------------------------------------------------
// Writing segments (STO-8, STO-10, STO-11)
// ---------------------------------------------------------------------------

/// Splits `items` into the batches written as one segment each: a batch takes
/// items while their total size stays within `target` (an item larger than
/// `target` is a batch of its own), so that no segment exceeds what readers
/// accept.
pub fn segment_batches<T>(items: Vec<T>, size: impl Fn(&T) -> usize, target: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        let mut batch = Vec::new();
        let mut total = 0usize;
        while let Some(item) =
            rest.next_if(|i| batch.is_empty() || total.saturating_add(size(i)) <= target)
        {
            total = total.saturating_add(size(&item));
            batch.push(item);
        }
        out.push(batch);
    }
    out
}

/// The segment a device writes next, after its head manifest `own`.
pub fn next_segment(own: &HeadManifest, envelopes: Vec<Vec<u8>>) -> Segment {
    Segment {
        device: own.device,
        index: own.segment_count,
        envelopes,
    }
}

/// The head manifest that lists the segment `seg`, uploaded as object `id`:
/// one more segment, the attestation widened (STO-30), the counter moved on.
pub fn list_segment(own: &mut HeadManifest, seg: &Segment, id: ObjectId) {
    own.segments.push((own.segment_count, id));
    own.segment_count += 1;
    coverage::attest_segment(own, &seg.envelopes);
    own.counter += 1;
}

// ---------------------------------------------------------------------------
// Reading head manifests (STO-7, STO-9)
// ---------------------------------------------------------------------------

/// Opens the bytes found at `device`'s head path (`None`: absent): STO-7's checks,
/// the signer must be `device`. Returns the manifest and the object id of its file.
pub fn read_head(
    es: &EpochStorage,
    signers: &[[u8; 32]],
    device: &[u8; 32],
    path: &str,
    bytes: Option<&[u8]>,
) -> Result<Option<(HeadManifest, ObjectId)>, StorageError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let opened = open_object(es, Kind::Head, bytes, signers).map_err(|e| e.at_path(path))?;
    if &opened.signer != device {
        return Err(StorageError::corrupt(
            format!("head manifest of device {}", short(device)),
            "signed by another device",
        ));
    }
    let m = HeadManifest::decode(&opened.body, es, &opened.signer)?;
    Ok(Some((m, object_id(bytes)?)))
}

/// One member's head manifest as read, against its high-water mark.
#[derive(Debug)]
pub struct HeadRead {
    /// The device.
    pub device: [u8; 32],
    /// The high-water mark kept for it in this epoch.
    pub previous: Option<HighWater>,
    /// What [`read_head`] gave.
    pub read: Result<Option<(HeadManifest, ObjectId)>, StorageError>,
}

/// Checks every member's head manifest against its high-water mark (STO-9): the
/// accepted manifests with their new marks (the caller persists them or not).
/// Verdicts go to `errors`, and the head-manifest ones typed to `alarms`; an
/// operational failure (no error class) is returned.
pub fn accept_heads(
    es: &EpochStorage,
    reads: Vec<HeadRead>,
    errors: &mut Vec<StorageError>,
    alarms: &mut Vec<Alarm>,
) -> Result<Vec<(HeadManifest, HighWater)>, StorageError> {
    let mut accepted = Vec::new();
    for HeadRead {
        device,
        previous,
        read,
    } in reads
    {
        let what = format!("head manifest of device {}", short(&device));
        let cur = match read {
            Ok(c) => c,
            Err(e) if e.class().is_some() => {
                errors.push(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        match classify_head(previous.as_ref(), cur.as_ref().map(|(m, d)| (m, *d))) {
            Ok(Some(hw)) => {
                if let Some((m, _)) = cur {
                    accepted.push((m, hw));
                }
            }
            Ok(None) => {}
            Err((kind, reason)) => {
                alarms.push(Alarm {
                    epoch_id: *es.epoch_id(),
                    device,
                    kind,
                });
                errors.push(StorageError::rollback(what, reason));
            }
        }
    }
    Ok(accepted)
}

// ---------------------------------------------------------------------------
// Fetched objects (STO-5, STO-7)
// ---------------------------------------------------------------------------

/// Checks the bytes fetched for object `id` that a signed manifest lists
/// (`None`: absent): present, content matching its address, then STO-7.
pub fn open_fetched(
    es: &EpochStorage,
    kind: Kind,
    id: &ObjectId,
    what: &str,
    bytes: Option<&[u8]>,
    signers: &[[u8; 32]],
) -> Result<Opened, StorageError> {
    let path = es.object_path(id);
    let bytes = bytes.ok_or_else(|| {
        StorageError::corrupt(what, "withheld: listed in a signed manifest but missing")
            .at_path(&path)
    })?;
    if &object_id(bytes)? != id {
        return Err(
            StorageError::corrupt(what, "substituted: content does not match its address")
                .at_path(&path),
        );
    }
    open_object(es, kind, bytes, signers).map_err(|e| e.at_path(&path))
}

/// The message name of snapshot `id` listed by `owner`.
pub fn snapshot_what(owner: &[u8; 32], id: &ObjectId) -> String {
    format!("snapshot {} of device {}", short(id), short(owner))
}

/// A fetched snapshot listed by `owner`: it must be signed by `owner` (STO-12).
pub fn accept_snapshot(
    es: &EpochStorage,
    owner: &[u8; 32],
    id: &ObjectId,
    opened: Opened,
) -> Result<Snapshot, StorageError> {
    if &opened.signer != owner {
        return Err(StorageError::corrupt(
            snapshot_what(owner, id),
            "not signed by the device listing it",
        ));
    }
    Snapshot::decode(&opened.body, es, &opened.signer)
}

/// Why a fetched segment is not loaded, or the segment.
pub fn accept_segment(
    es: &EpochStorage,
    owner: &HeadManifest,
    index: u64,
    what: &str,
    opened: Opened,
) -> Result<Segment, StorageError> {
    if opened.signer != owner.device {
        return Err(StorageError::corrupt(what, "not signed by its device"));
    }
    match Segment::decode(&opened.body, es, &opened.signer)? {
        s if s.index == index => Ok(s),
        _ => Err(StorageError::corrupt(
            what,
            "index does not match the manifest",
        )),
    }
}

/// Splits envelopes read from storage into those that decode, each decoded
/// once and kept with its bytes (what is stored and handed to the reader), and
/// a verdict on the others (never stored).
pub fn decodable(
    what: &str,
    envelopes: Vec<Vec<u8>>,
) -> (Vec<ReceivedEnvelope>, Option<StorageError>) {
    let (good, bad) = decode_all(envelopes);
    (good, undecodable(what, bad))
}

/// Envelopes decoded once, in order, and how many entries did not decode.
fn decode_all(envelopes: Vec<Vec<u8>>) -> (Vec<ReceivedEnvelope>, usize) {
    let mut good = Vec::with_capacity(envelopes.len());
    let mut bad = 0usize;
    for e in envelopes {
        match ReceivedEnvelope::decode(e) {
            Ok(r) => good.push(r),
            Err(_) => bad += 1,
        }
    }
    (good, bad)
}

/// The verdict on `bad` entries of `what` that are not envelopes, if any.
fn undecodable(what: &str, bad: usize) -> Option<StorageError> {
    (bad > 0).then(|| StorageError::corrupt(what, format!("{bad} entries are not envelopes")))
}

/// A fetched snapshot whose envelopes are decoded once (STO-14, STO-31): the
/// coverage check indexes this decoding, the load stores these bytes, and the
/// reader opens these envelopes without decoding them again.
#[derive(Debug)]
pub struct DecodedSnapshot {
    /// Compacting device.
    pub device: [u8; 32],
    /// Per-device segment coverage as claimed, ascending by device.
    pub covers: Vec<([u8; 32], u64)>,
    /// Covered DAG heads `(doc_id, envelope id)`, ascending.
    pub heads: Vec<([u8; 32], [u8; 32])>,
    /// The covered envelopes that decode, in the snapshot's order.
    pub envelopes: Vec<ReceivedEnvelope>,
    /// How many of its entries did not decode (never stored).
    pub undecodable: usize,
}

impl DecodedSnapshot {
    /// Decodes every envelope of `snap` once.
    pub fn new(snap: Snapshot) -> Self {
        let (envelopes, undecodable) = decode_all(snap.envelopes);
        DecodedSnapshot {
            device: snap.device,
            covers: snap.covers,
            heads: snap.heads,
            envelopes,
            undecodable,
        }
    }

    /// The verdict on its entries that are not envelopes, named `what`, if any
    /// (as [`decodable`] gives it).
    pub fn verdict(&self, what: &str) -> Option<StorageError> {
        undecodable(what, self.undecodable)
    }
}

/// Decodes the envelopes of a fetched snapshot once and checks its covers
/// against the accepted head manifests `heads` (STO-31, the same verdicts as
/// [`coverage::verified_covers`]): the snapshot with the covers a reader may use.
pub fn verify_snapshot(
    what: &str,
    snap: Snapshot,
    heads: &[HeadManifest],
) -> Result<(DecodedSnapshot, BTreeMap<[u8; 32], u64>), StorageError> {
    let snap = DecodedSnapshot::new(snap);
    let index = coverage::EnvelopeIndex::from_decoded(snap.envelopes.iter().map(|e| e.decoded()));
    let covers = coverage::verified_indexed_covers(what, &snap.covers, &index, heads)?;
    Ok((snap, covers))
}

// ---------------------------------------------------------------------------
// Pulling (STO-13, STO-14, STO-31)
// ---------------------------------------------------------------------------

/// Whether a pull loads a snapshot first (STO-14): the device starts cold and a
/// snapshot is listed, or some device collected segments this device has not
/// loaded (`have` below its `gc_floor`).
pub fn needs_snapshot(heads: &[HeadManifest], have: &BTreeMap<[u8; 32], u64>) -> bool {
    let cold = have.values().all(|h| *h == 0);
    let behind = heads
        .iter()
        .any(|m| have.get(&m.device).copied().unwrap_or(0) < m.gc_floor);
    behind || (cold && heads.iter().any(|m| !m.snapshots.is_empty()))
}

/// Every snapshot listed by the accepted manifests, with its owner, in listing
/// order: the candidates a cold or lagging pull fetches (STO-13).
pub fn listed_snapshots(heads: &[HeadManifest]) -> Vec<([u8; 32], ObjectId)> {
    heads
        .iter()
        .flat_map(|m| m.snapshots.iter().map(|s| (m.device, *s)))
        .collect()
}

/// A fetched snapshot, decoded once, with the covers a reader may use (STO-31).
pub type Candidate = (ObjectId, DecodedSnapshot, BTreeMap<[u8; 32], u64>);

/// The snapshot a cold or lagging pull loads among the verified candidates
/// (STO-13): the position in `cands` of the greatest verified coverage, then the
/// smallest id.
pub fn choose_snapshot(cands: &[Candidate]) -> Option<usize> {
    let totals: Vec<(ObjectId, u64)> = cands
        .iter()
        .map(|(id, _, covers)| (*id, coverage::total(covers)))
        .collect();
    let chosen = select_snapshot(&totals)?;
    cands.iter().position(|(id, _, _)| *id == chosen)
}

/// The base snapshot to load for device `m` (STO-14 step 2): its segments below
/// `gc_floor` are collected and not yet loaded.
pub fn base_snapshot_needed(m: &HeadManifest, have: &BTreeMap<[u8; 32], u64>) -> Option<ObjectId> {
    if have.get(&m.device).copied().unwrap_or(0) >= m.gc_floor {
        return None;
    }
    m.base_snapshot
}

/// Whether a base snapshot's verified covers reach what its device collected.
pub fn base_covers_collected(m: &HeadManifest, covers: &BTreeMap<[u8; 32], u64>) -> bool {
    covers.get(&m.device).copied().unwrap_or(0) >= m.gc_floor
}

/// The verdict on a base snapshot that does not cover what its device collected.
pub fn base_too_short(base: &ObjectId) -> StorageError {
    StorageError::corrupt(
        format!("snapshot {}", short(base)),
        "does not cover the segments its device collected",
    )
}

/// Moves `have(D)` up to a loaded snapshot's verified covers, never to what it
/// merely claims (STO-14 step 2, STO-31). Returns the devices whose count moved,
/// with the new count (for the shell to persist with the envelopes).
pub fn advance_have(
    covers: &BTreeMap<[u8; 32], u64>,
    have: &mut BTreeMap<[u8; 32], u64>,
) -> Vec<([u8; 32], u64)> {
    let mut moved = Vec::new();
    for (d, c) in covers {
        if let Some(h) = have.get_mut(d)
            && *c > *h
        {
            *h = *c;
            moved.push((*d, *c));
        }
    }
    moved
}

/// The segments of device `m` to fetch, in order, after loading `have` of them
/// (STO-14 step 3); a verdict when segments below its `gc_floor` were collected
/// and no loadable snapshot covers them.
pub fn segments_to_fetch(
    m: &HeadManifest,
    have: u64,
) -> Result<Vec<(u64, ObjectId)>, StorageError> {
    if have < m.gc_floor {
        return Err(StorageError::corrupt(
            format!(
                "segments {have}..{} of device {}",
                m.gc_floor,
                short(&m.device)
            ),
            "withheld: collected, and no loadable snapshot covers them",
        ));
    }
    Ok(m.segments
        .iter()
        .filter(|(i, _)| *i >= have)
        .copied()
        .collect())
}

/// The message name of segment `index` of `m`'s device.
pub fn segment_what(m: &HeadManifest, index: u64) -> String {
    format!("segment {index} of device {}", short(&m.device))
}

// ---------------------------------------------------------------------------
// Compaction (STO-15, STO-25)
// ---------------------------------------------------------------------------

/// The covers of a snapshot this device writes: per member device (ascending,
/// once each), how many of its segments the device has loaded, when not zero.
pub fn snapshot_covers(
    signers: &[[u8; 32]],
    mut have: impl FnMut(&[u8; 32]) -> Result<u64, StorageError>,
) -> Result<Vec<([u8; 32], u64)>, StorageError> {
    let mut signers = signers.to_vec();
    signers.sort_unstable();
    signers.dedup();
    let mut covers = Vec::new();
    for d in &signers {
        let c = have(d)?;
        if c > 0 {
            covers.push((*d, c));
        }
    }
    Ok(covers)
}

/// The snapshot of every envelope the device holds, in causal order (STO-12).
pub fn build_snapshot(
    device: [u8; 32],
    covers: Vec<([u8; 32], u64)>,
    envelopes: Vec<Vec<u8>>,
) -> Snapshot {
    let (envelopes, heads) = causal::order(envelopes);
    Snapshot {
        device,
        covers,
        heads,
        envelopes,
    }
}

/// Envelopes grouped by document, each group in the given order; bytes that do
/// not decode as an envelope are left out.
pub fn by_document(envelopes: Vec<Vec<u8>>) -> BTreeMap<[u8; 32], Vec<Vec<u8>>> {
    let mut out: BTreeMap<[u8; 32], Vec<Vec<u8>>> = BTreeMap::new();
    for e in envelopes {
        if let Ok(d) = envelope::decode(&e) {
            out.entry(d.header.doc_id).or_default().push(e);
        }
    }
    out
}

/// The checkpoint entries a compaction's manifest lists (STO-8, STO-25): one
/// per document (the first given wins), ascending by document.
pub fn checkpoint_entries(mut entries: Vec<CheckpointEntry>) -> Vec<CheckpointEntry> {
    entries.sort_by_key(|e| e.doc_id);
    entries.dedup_by_key(|e| e.doc_id);
    entries
}

/// What a compaction's head manifest no longer lists: deleted after it is
/// published (STO-15).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Collected segments.
    pub segments: Vec<ObjectId>,
    /// Older snapshots of this device.
    pub snapshots: Vec<ObjectId>,
    /// Checkpoints not written again.
    pub checkpoints: Vec<ObjectId>,
}

impl Collected {
    /// Every collected object, segments first.
    pub fn all(&self) -> impl Iterator<Item = &ObjectId> {
        self.segments
            .iter()
            .chain(&self.snapshots)
            .chain(&self.checkpoints)
    }
}

/// The head manifest after a compaction that wrote snapshot `snapshot` and the
/// checkpoints `checkpoints` (see [`checkpoint_entries`]): every own segment is
/// collected (`gc_floor = segment_count`), the snapshot is the base and only
/// live snapshot, the attestation is collapsed (STO-30), the counter moves on.
/// Returns it and what it collects.
pub fn compacted_manifest(
    own: &HeadManifest,
    snapshot: ObjectId,
    checkpoints: Vec<CheckpointEntry>,
) -> (HeadManifest, Collected) {
    let mut next = own.clone();
    let old_segments = std::mem::take(&mut next.segments);
    let old_snapshots = std::mem::replace(&mut next.snapshots, vec![snapshot]);
    let old_checkpoints = std::mem::replace(&mut next.checkpoints, checkpoint_entries(checkpoints));
    next.gc_floor = next.segment_count;
    coverage::collapse_tips(&mut next);
    next.base_snapshot = Some(snapshot);
    next.counter += 1;
    let collected = Collected {
        segments: old_segments.into_iter().map(|(_, id)| id).collect(),
        snapshots: old_snapshots
            .into_iter()
            .filter(|s| *s != snapshot)
            .collect(),
        checkpoints: old_checkpoints
            .into_iter()
            .map(|c| c.id)
            .filter(|c| !next.checkpoints.iter().any(|n| n.id == *c))
            .collect(),
    };
    (next, collected)
}

// ---------------------------------------------------------------------------
// Checkpoints (STO-24, STO-26, STO-27)
// ---------------------------------------------------------------------------

/// The message name of checkpoint `id` of `device`.
pub fn checkpoint_what(device: &[u8; 32], id: &ObjectId) -> String {
    format!("checkpoint {} of device {}", short(id), short(device))
}

/// A checkpoint as a head manifest lists it: the listing device (which must
/// have signed it) and the signed entry (document, coverage claim, object id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedCheckpoint {
    /// The device whose head manifest lists it.
    pub device: [u8; 32],
    /// The manifest's entry.
    pub entry: CheckpointEntry,
}

/// The checkpoints of document `doc_id` listed in the head manifests `heads` of
/// one epoch, best first (STO-26): greatest coverage, then smallest object id.
/// A reader fetches them in this order and stops at the first that passes its
/// checks; the others are never fetched.
pub fn ranked_checkpoints(heads: &[HeadManifest], doc_id: &[u8; 32]) -> Vec<ListedCheckpoint> {
    let mut out: Vec<ListedCheckpoint> = heads
        .iter()
        .flat_map(|m| {
            m.checkpoints
                .iter()
                .filter(|e| &e.doc_id == doc_id)
                .map(|e| ListedCheckpoint {
                    device: m.device,
                    entry: *e,
                })
        })
        .collect();
    out.sort_by_key(|c| (std::cmp::Reverse(c.entry.coverage), c.entry.id, c.device));
    out
}

/// Every document with a checkpoint listed in `heads`, ascending.
pub fn checkpointed_documents(heads: &[HeadManifest]) -> Vec<[u8; 32]> {
    let mut docs: Vec<[u8; 32]> = heads
        .iter()
        .flat_map(|m| m.checkpoints.iter().map(|e| e.doc_id))
        .collect();
    docs.sort_unstable();
    docs.dedup();
    docs
}

/// A fetched checkpoint listed in `m`: signed by `m`'s device (the body names
/// no device: the listing manifest's is the only one it may have), a valid body,
/// and its snapshot listed in the same manifest (STO-24).
pub fn accept_checkpoint(
    m: &HeadManifest,
    what: &str,
    opened: Opened,
) -> Result<Checkpoint, StorageError> {
    if opened.signer != m.device {
        return Err(StorageError::corrupt(
            what,
            "not signed by the device whose head manifest lists it",
        ));
    }
    let cp = Checkpoint::decode(&opened.body).map_err(|e| match e {
        StorageError::Corrupt { reason, .. } => StorageError::corrupt(what, reason),
        other => other,
    })?;
    if !m.snapshots.contains(&cp.snapshot) {
        return Err(StorageError::corrupt(
            what,
            "its snapshot is not listed in the same head manifest",
        ));
    }
    Ok(cp)
}

/// Checks a shown checkpoint's claims against its fetched snapshot (STO-27):
/// the snapshot's covers hold against the devices' attestations `heads`
/// (STO-31), its coverage is the one the manifest entry `listed` claims, and
/// `rebuild`, given exactly the snapshot's envelopes of the document in order,
/// gives `state_digest`, the `StateDigest` of the checkpoint's state (computed
/// by the reader from the state it loaded). `Err` is the `STORAGE_CORRUPT`
/// verdict naming the checkpoint.
pub fn check_checkpoint_claim(
    what: &str,
    listed: &CheckpointEntry,
    state_digest: &[u8; 32],
    snap: Snapshot,
    heads: &[HeadManifest],
    rebuild: impl FnOnce(&[Vec<u8>]) -> [u8; 32],
) -> Result<(), StorageError> {
    if let Err(e) = coverage::verified_covers(what, &snap, heads) {
        return Err(StorageError::corrupt(
            what,
            format!("checkpoint mismatch: its snapshot is refuted ({e})"),
        ));
    }
    let coverage = snap.coverage();
    if coverage != listed.coverage {
        return Err(StorageError::corrupt(
            what,
            format!(
                "checkpoint mismatch: its manifest entry claims coverage {}, its snapshot covers {coverage}",
                listed.coverage
            ),
        ));
    }
    let envs = by_document(snap.envelopes)
        .remove(&listed.doc_id)
        .unwrap_or_default();
    if &rebuild(&envs) == state_digest {
        Ok(())
    } else {
        Err(StorageError::corrupt(
            what,
            "checkpoint mismatch: its snapshot's envelopes produce another state",
        ))
    }
}

// ---------------------------------------------------------------------------
// Repair (STO-8, STO-28)
// ---------------------------------------------------------------------------

/// Every object the device's committed head manifest lists (segments, base and
/// live snapshots, checkpoints), ascending, once each.
pub fn listed_objects(own: &HeadManifest) -> Vec<ObjectId> {
    let mut ids: Vec<ObjectId> = own.segments.iter().map(|(_, id)| *id).collect();
    ids.extend(own.base_snapshot);
    ids.extend(own.snapshots.iter().copied());
    ids.extend(own.checkpoints.iter().map(|c| c.id));
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What to do about the device's own head path, holding `stored` (`None`:
/// absent), given its committed manifest `own` and file `file` (STO-28).
/// Exhaustive on purpose: the storage shell must carry out every repair; a new one must fail to compile there.
#[derive(Debug)]
pub enum HeadRepair {
    /// Storage holds the committed file: nothing to do.
    InPlace,
    /// Upload the committed file again, byte for byte; storage had done this.
    Upload(Withholding),
    /// Storage holds another manifest with the same counter under this device's
    /// key: a fork, reported, nothing overwritten.
    Forked(StorageError),
    /// Storage holds a manifest of this device with a higher counter: its local
    /// store is older than its writes (STO-8); adopt it with its mark.
    Adopt(HeadManifest, HighWater),
}

/// Decides [`HeadRepair`] for the device `me`.
pub fn repair_head(
    es: &EpochStorage,
    me: &[u8; 32],
    own: &HeadManifest,
    file: &[u8],
    stored: Option<&[u8]>,
) -> Result<HeadRepair, StorageError> {
    let Some(b) = stored else {
        return Ok(HeadRepair::Upload(Withholding::HeadWithheld));
    };
    if b == file {
        return Ok(HeadRepair::InPlace);
    }
    let opened =
        open_object(es, Kind::Head, b, &[*me]).and_then(|o| HeadManifest::decode(&o.body, es, me));
    Ok(match opened {
        Ok(m) if m.counter < own.counter => HeadRepair::Upload(Withholding::HeadRolledBack),
        Ok(m) if m.counter == own.counter => HeadRepair::Forked(StorageError::rollback(
            "head manifest of this device",
            format!(
                "forked: storage holds another manifest with counter {}, signed by this device's key",
                m.counter
            ),
        )),
        Ok(m) => {
            let hw = HighWater {
                counter: m.counter,
                digest: object_id(b)?,
                segment_count: m.segment_count,
            };
            HeadRepair::Adopt(m, hw)
        }
        // Whatever is there is not this device's manifest.
        Err(e) if e.class().is_some() => HeadRepair::Upload(Withholding::HeadWithheld),
        Err(e) => return Err(e),
    })
}

/// The verdict on an own object that storage withheld and the device holds no
/// copy of (STO-28).
pub fn no_local_copy(id: &ObjectId) -> StorageError {
    StorageError::corrupt(
        format!("object {} of this device", short(id)),
        "withheld, and no local copy to upload again: compacting replaces it",
    )
}

// ---------------------------------------------------------------------------
// Lobbies (STO-23)
// ---------------------------------------------------------------------------

/// The writer of the head manifest found at `path` of a lobby directory: every
/// STO-7 check but membership, and the path must be the signer's head path.
pub fn lobby_writer(es: &EpochStorage, path: &str, bytes: &[u8]) -> Result<[u8; 32], StorageError> {
    let o = open_lobby_object(es, Kind::Head, bytes)?;
    if es.head_path(&o.signer)? == path {
        Ok(o.signer)
    } else {
        Err(StorageError::corrupt(
            format!("lobby head {path}"),
            "stored under another device's path",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(device: u8, gc_floor: u64, segs: u64, snapshots: Vec<ObjectId>) -> HeadManifest {
        let mut h = HeadManifest::empty([device; 32]);
        h.counter = 1;
        h.gc_floor = gc_floor;
        h.segment_count = segs;
        h.segments = (gc_floor..segs).map(|i| (i, [i as u8; 32])).collect();
        h.snapshots = snapshots;
        h.base_snapshot = (gc_floor > 0).then_some([0xbb; 32]);
        h
    }

    #[test]
    fn batches_stay_within_the_target() {
        let b = segment_batches(vec![3usize, 3, 3, 9, 1], |x| *x, 6);
        assert_eq!(b, vec![vec![3, 3], vec![3], vec![9], vec![1]]);
        assert!(segment_batches(Vec::<usize>::new(), |x| *x, 6).is_empty());
    }

    #[test]
    fn pull_decisions() {
        let heads = vec![m(1, 0, 2, vec![]), m(2, 0, 1, vec![[9; 32]])];
        let mut have = BTreeMap::from([([1; 32], 0), ([2; 32], 0)]);
        // Cold with a listed snapshot: load it first.
        assert!(needs_snapshot(&heads, &have));
        have.insert([1; 32], 1);
        assert!(!needs_snapshot(&heads, &have));
        // A device collected segments not loaded here.
        let lagging = vec![m(1, 2, 3, vec![[8; 32]])];
        assert!(needs_snapshot(&lagging, &have));
        assert_eq!(base_snapshot_needed(&lagging[0], &have), Some([0xbb; 32]));
        assert!(segments_to_fetch(&lagging[0], 1).is_err());
        assert_eq!(
            segments_to_fetch(&lagging[0], 2).expect("fetch"),
            vec![(2, [2; 32])]
        );
        // have only moves up, and only for known devices.
        let covers = BTreeMap::from([([1; 32], 3), ([2; 32], 0), ([3; 32], 5)]);
        assert_eq!(advance_have(&covers, &mut have), vec![([1; 32], 3)]);
        assert_eq!(have.get(&[1; 32]), Some(&3));
        assert!(base_covers_collected(&lagging[0], &covers));
    }

    #[test]
    fn compaction_collects_own_objects() {
        let mut own = m(1, 0, 2, vec![[7; 32]]);
        own.checkpoints = vec![entry(1, 3, 5), entry(2, 3, 6)];
        let (next, collected) = compacted_manifest(
            &own,
            [9; 32],
            vec![entry(4, 2, 8), entry(2, 4, 6), entry(4, 9, 9)],
        );
        // One entry per document, ascending by document (the first given wins).
        assert_eq!(next.checkpoints, vec![entry(2, 4, 6), entry(4, 2, 8)]);
        assert_eq!(next.gc_floor, 2);
        assert!(next.segments.is_empty());
        assert_eq!(next.snapshots, vec![[9; 32]]);
        assert_eq!(next.base_snapshot, Some([9; 32]));
        assert_eq!(next.counter, own.counter + 1);
        assert_eq!(collected.segments, vec![[0; 32], [1; 32]]);
        assert_eq!(collected.snapshots, vec![[7; 32]]);
        assert_eq!(collected.checkpoints, vec![[5; 32]]);
        assert_eq!(listed_objects(&own).len(), 5);
    }

    fn entry(doc: u8, coverage: u64, id: u8) -> CheckpointEntry {
        CheckpointEntry {
            doc_id: [doc; 32],
            coverage,
            id: [id; 32],
        }
    }

    #[test]
    fn checkpoint_ranking() {
        let mut a = m(1, 0, 0, vec![]);
        a.checkpoints = vec![entry(1, 3, 2), entry(2, 5, 1)];
        let mut b = m(2, 0, 0, vec![]);
        b.checkpoints = vec![entry(1, 4, 9)];
        let mut c = m(3, 0, 0, vec![]);
        c.checkpoints = vec![entry(1, 3, 1)];
        let heads = vec![a, b, c];
        // Greatest coverage first, then the smallest id; other documents left out.
        let ranked: Vec<(u8, u64, u8)> = ranked_checkpoints(&heads, &[1; 32])
            .iter()
            .map(|l| (l.device[0], l.entry.coverage, l.entry.id[0]))
            .collect();
        assert_eq!(ranked, vec![(2, 4, 9), (3, 3, 1), (1, 3, 2)]);
        assert!(ranked_checkpoints(&heads, &[7; 32]).is_empty());
        assert_eq!(checkpointed_documents(&heads), vec![[1; 32], [2; 32]]);
    }

    #[test]
    fn checkpoint_acceptance_and_claim() {
        use crate::object::{CONTENT_YJS_SNAPSHOT, seal_object};
        use clientful_core::keys::{EpochKey, SigningKey};
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;

        let es = EpochStorage::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).expect("derive");
        let (sk, other) = (
            SigningKey::from_seed(&[9; 32]),
            SigningKey::from_seed(&[8; 32]),
        );
        let (me, them) = (sk.public_bytes(), other.public_bytes());
        let mut rng = ChaCha20Rng::from_seed([0; 32]);
        let cp = Checkpoint {
            content_type: CONTENT_YJS_SNAPSHOT,
            snapshot: [4; 32],
            state: vec![1],
        };
        let mut listing = HeadManifest::empty(me);
        listing.counter = 1;
        listing.snapshots = vec![[4; 32]];
        let signers = [me, them];
        let open = |key: &SigningKey, body: Vec<u8>, rng: &mut ChaCha20Rng| {
            let file = seal_object(&es, Kind::Checkpoint, key, body, rng).expect("seal");
            open_object(&es, Kind::Checkpoint, &file, &signers).expect("open")
        };
        assert_eq!(
            accept_checkpoint(&listing, "cp", open(&sk, cp.encode(), &mut rng)).expect("ok"),
            cp
        );
        // Signed by another member than the device whose manifest lists it.
        let err = accept_checkpoint(&listing, "cp", open(&other, cp.encode(), &mut rng))
            .expect_err("signer is not the listing device");
        assert!(
            err.to_string().contains("not signed by the device"),
            "{err}"
        );
        // Its snapshot is not listed next to it.
        let elsewhere = Checkpoint {
            snapshot: [5; 32],
            ..cp.clone()
        };
        assert!(
            accept_checkpoint(&listing, "cp", open(&sk, elsewhere.encode(), &mut rng)).is_err()
        );

        // STO-27: the coverage claim comes from the manifest entry, the digest
        // from the state.
        let snap = Snapshot {
            device: me,
            covers: vec![(me, 2)],
            heads: Vec::new(),
            envelopes: Vec::new(),
        };
        let mut own = m(0, 0, 2, vec![]);
        own.device = me;
        let heads = vec![own];
        let listed = CheckpointEntry {
            doc_id: [1; 32],
            coverage: 2,
            id: [6; 32],
        };
        let digest = [3; 32];
        check_checkpoint_claim("cp", &listed, &digest, snap.clone(), &heads, |_| digest)
            .expect("matches");
        let err = check_checkpoint_claim("cp", &listed, &[4; 32], snap.clone(), &heads, |_| digest)
            .expect_err("another state");
        assert!(err.to_string().contains("another state"), "{err}");
        let overclaim = CheckpointEntry {
            coverage: 3,
            ..listed
        };
        let err = check_checkpoint_claim("cp", &overclaim, &digest, snap, &heads, |_| digest)
            .expect_err("coverage");
        assert!(err.to_string().contains("claims coverage 3"), "{err}");
    }

    #[test]
    fn heads_and_fetched_objects_over_bytes() {
        use crate::object::seal_object;
        use clientful_core::keys::{EpochKey, SigningKey};
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;

        let es = EpochStorage::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).expect("derive");
        let sk = SigningKey::from_seed(&[9; 32]);
        let me = sk.public_bytes();
        let mut rng = ChaCha20Rng::from_seed([0; 32]);
        let seg = next_segment(&HeadManifest::empty(me), vec![]);
        let seg_file =
            seal_object(&es, Kind::Segment, &sk, seg.encode(&es), &mut rng).expect("seal");
        let seg_id = object_id(&seg_file).expect("id");
        let mut own = HeadManifest::empty(me);
        list_segment(&mut own, &seg, seg_id);
        assert_eq!((own.counter, own.segment_count), (1, 1));
        let head_file = seal_object(&es, Kind::Head, &sk, own.encode(&es), &mut rng).expect("seal");
        let path = es.head_path(&me).expect("path");

        // A head read and accepted; the same device later absent: withheld, typed.
        let read = read_head(&es, &[me], &me, &path, Some(&head_file)).expect("read");
        let (mut errors, mut alarms) = (Vec::new(), Vec::new());
        let accepted = accept_heads(
            &es,
            vec![HeadRead {
                device: me,
                previous: None,
                read: Ok(read),
            }],
            &mut errors,
            &mut alarms,
        )
        .expect("accept");
        let (m, hw) = accepted.first().cloned().expect("accepted");
        assert_eq!(m, own);
        assert!(errors.is_empty() && alarms.is_empty());
        let none = accept_heads(
            &es,
            vec![HeadRead {
                device: me,
                previous: Some(hw),
                read: Ok(None),
            }],
            &mut errors,
            &mut alarms,
        )
        .expect("accept");
        assert!(none.is_empty());
        assert_eq!(
            alarms.first().map(|a| a.kind),
            Some(Withholding::HeadWithheld)
        );
        assert_eq!(errors.len(), 1);

        // Fetched objects: present and addressed, withheld, substituted.
        let todo = segments_to_fetch(&m, 0).expect("todo");
        assert_eq!(todo, vec![(0, seg_id)]);
        let what = segment_what(&m, 0);
        let opened =
            open_fetched(&es, Kind::Segment, &seg_id, &what, Some(&seg_file), &[me]).expect("open");
        assert_eq!(
            accept_segment(&es, &m, 0, &what, opened.clone()).expect("segment"),
            seg
        );
        assert!(accept_segment(&es, &m, 1, &what, opened).is_err());
        for bytes in [None, Some(head_file.as_slice())] {
            let err = open_fetched(&es, Kind::Segment, &seg_id, &what, bytes, &[me])
                .expect_err("withheld or substituted");
            assert_eq!(
                err.class(),
                Some(clientful_core::ErrorClass::StorageCorrupt)
            );
        }
        // The device's own head path: in place, withheld, adopted.
        assert!(matches!(
            repair_head(&es, &me, &own, &head_file, Some(&head_file)).expect("repair"),
            HeadRepair::InPlace
        ));
        assert!(matches!(
            repair_head(&es, &me, &own, &head_file, None).expect("repair"),
            HeadRepair::Upload(Withholding::HeadWithheld)
        ));
        let older = HeadManifest::empty(me);
        assert!(matches!(
            repair_head(&es, &me, &older, &[], Some(&head_file)).expect("repair"),
            HeadRepair::Adopt(_, _)
        ));
        assert_eq!(lobby_writer(&es, &path, &head_file).expect("lobby"), me);
        assert!(lobby_writer(&es, "elsewhere", &head_file).is_err());
    }
}
