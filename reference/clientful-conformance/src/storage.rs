//! The storage layout in the harness (spec §9, §12.12, CONF-57..CONF-60): the
//! reference's answers to `storage_write` and `storage_load`, and the storage
//! saboteurs at the boundary where their bug would show (CONF-69).
//!
//! The runner holds the files; a request carries the storage's content as a
//! listing of (path, bytes). The reference answers with the storage shell's
//! [`Space`] over an in-memory backend holding exactly that listing and an
//! in-memory device store, polled to completion without an async runtime
//! ([`block_on`]): a device keeps nothing between requests except what the
//! request gives it (a reader's high-water marks).

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::{ErrorClass, envelope, wire};
use clientful_doc::Replica;
use clientful_doc::checkpoint::{Provisional, crdt_of, state_of};
use clientful_doc::crdt::YjsSchema;
use clientful_proto::v1 as wpb;
use clientful_storage::hwm::{HighWater, Withholding};
use clientful_storage::layout::{EpochStorage, ObjectId, parse_object_name};
use clientful_storage::object::{HeadManifest, Kind, Segment, Snapshot, open_object};
use clientful_storage::space::{Space, SpaceConfig};
use clientful_storage::{BlobStore, LocalStore, OpendalStore, StorageError};

use crate::pb;
use crate::saboteur::Saboteur;

/// A storage's content: path -> bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Runs one of the storage shell's futures over the in-memory backend and the
/// in-memory device store to completion: every operation there completes when
/// first polled, so a no-op waker suffices. A future that stays pending is an
/// error, not a hang.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..4096 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Ok(v);
        }
    }
    Err("a storage operation over the in-memory backend did not complete".into())
}

/// The storage a listing describes: a path listed twice holds its last bytes.
pub fn files_of(listing: Option<&pb::StorageListing>) -> Files {
    let mut files = Files::new();
    for f in listing.map(|l| l.files.as_slice()).unwrap_or_default() {
        files.insert(f.path.clone(), f.bytes.clone());
    }
    files
}

/// The listing of `files`, sorted by path.
pub fn listing(files: &Files) -> pb::StorageListing {
    pb::StorageListing {
        files: files
            .iter()
            .map(|(p, b)| pb::StoredFile {
                path: p.clone(),
                bytes: b.clone(),
            })
            .collect(),
    }
}

fn seed32(b: &[u8], what: &str) -> Result<[u8; 32], String> {
    b.try_into().map_err(|_| format!("{what} must be 32 bytes"))
}

fn space_config(
    world_json: &str,
    device_seed: [u8; 32],
    rng: [u8; 32],
) -> Result<SpaceConfig, String> {
    let cfg = crate::reference::config_from_world(world_json, device_seed, [0; 32])?;
    Ok(SpaceConfig {
        space_id: cfg.space_id,
        device: cfg.device,
        epoch: cfg.epoch,
        old_epochs: Vec::new(),
        signers: cfg.signers,
        rng_seed: Some(rng),
    })
}

async fn store_of(files: &Files) -> Result<OpendalStore, StorageError> {
    let store = OpendalStore::memory()?;
    for (p, b) in files {
        store.put_owned(p, b.clone()).await?;
    }
    Ok(store)
}

async fn dump(store: &OpendalStore) -> Result<Files, StorageError> {
    let mut out = Files::new();
    for p in store.list("").await? {
        if let Some(b) = store.get(&p).await? {
            out.insert(p, b);
        }
    }
    Ok(out)
}

fn s(e: StorageError) -> String {
    e.to_string()
}

/// `storage_write` (CONF-58): as the device, over the given storage, load it,
/// record and publish the envelopes, compact if asked; the files written and
/// deleted.
pub fn write(req: &pb::StorageWrite, sab: Option<Saboteur>) -> Result<pb::StorageWritten, String> {
    let before = files_of(req.storage.as_ref());
    let device_seed = seed32(&req.device_seed, "device_seed")?;
    let cfg = space_config(
        &req.world_json,
        device_seed,
        seed32(&req.rng_seed, "rng_seed")?,
    )?;
    // Checks that the world gives a replica configuration (used by compaction).
    crate::reference::config_from_world(&req.world_json, device_seed, [0; 32])?;
    let mut given = before.clone();
    if sab == Some(Saboteur::RestartsHeadCounter) {
        // The bug: a device without a local record starts its head manifest
        // afresh instead of continuing from its manifest in storage (STO-8).
        let es = EpochStorage::derive(&cfg.space_id, &cfg.epoch).map_err(s)?;
        given.remove(&es.head_path(&cfg.device.public_bytes()).map_err(s)?);
    }
    let after = block_on(async {
        let store = store_of(&given).await?;
        let mut space = Space::new(store.clone(), LocalStore::in_memory()?, cfg)?;
        space.init().await?;
        // Verdicts about other devices' objects do not stop a writer (STO-22).
        let _ = space.pull().await?;
        space.record(&req.envelopes)?;
        space.flush().await?;
        if req.compact {
            space
                .compact_with(|_, envs| {
                    let c =
                        crate::reference::config_from_world(&req.world_json, device_seed, [0; 32])
                            .ok()?;
                    Some(state_of(&mut Replica::restore(c, envs)))
                })
                .await?;
        }
        dump(&store).await
    })?
    .map_err(s)?;
    Ok(pb::StorageWritten {
        written: after
            .iter()
            .filter(|(p, b)| before.get(*p) != Some(*b))
            .map(|(p, b)| pb::StoredFile {
                path: p.clone(),
                bytes: b.clone(),
            })
            .collect(),
        deleted: before
            .keys()
            .filter(|p| !after.contains_key(*p))
            .cloned()
            .collect(),
    })
}

fn alarm_kind(w: Withholding) -> Option<pb::StorageAlarmKind> {
    use pb::StorageAlarmKind as K;
    match w {
        Withholding::HeadWithheld => Some(K::HeadWithheld),
        Withholding::HeadRolledBack => Some(K::HeadRolledBack),
        Withholding::HeadForked => Some(K::HeadForked),
        Withholding::HistoryRewritten => Some(K::HistoryRewritten),
        // Found by an owner about its own objects (STO-28), never by a reader.
        Withholding::ObjectWithheld => None,
        // A kind added after this harness version has no place in its protocol.
        _ => None,
    }
}

/// What a load gives before it is encoded.
#[derive(Debug, Default)]
struct Loaded {
    documents: BTreeMap<[u8; 32], BTreeSet<[u8; 32]>>,
    verdicts: BTreeSet<i32>,
    alarms: BTreeSet<([u8; 32], [u8; 32], i32)>,
    high_water: BTreeMap<([u8; 32], [u8; 32]), HighWater>,
    checkpoints: BTreeMap<[u8; 32], ObjectId>,
}

/// `storage_load` (CONF-59): as the reader, remembering the given marks, load
/// each storage state in turn; what it holds, every verdict and alarm, its marks
/// and the checkpoints it would show.
pub fn load(req: &pb::StorageLoad, sab: Option<Saboteur>) -> Result<pb::StorageLoaded, String> {
    let cfg = space_config(
        &req.world_json,
        seed32(&req.device_seed, "device_seed")?,
        [0; 32],
    )?;
    let es = EpochStorage::derive(&cfg.space_id, &cfg.epoch).map_err(s)?;
    let signers = cfg.signers.clone();
    let states: Vec<Files> = req.loads.iter().map(|l| files_of(Some(l))).collect();
    let mut out = Loaded::default();
    let mut marks_before_last = BTreeMap::new();
    block_on(async {
        let mut space = Space::new(OpendalStore::memory()?, LocalStore::in_memory()?, cfg)?;
        for m in &req.high_water {
            let (Ok(epoch), Ok(device), Ok(digest)) = (
                <[u8; 32]>::try_from(m.epoch_id.as_slice()),
                <[u8; 32]>::try_from(m.device.as_slice()),
                <[u8; 32]>::try_from(m.digest.as_slice()),
            ) else {
                return Err(StorageError::Local(
                    "a high-water mark field is not 32 bytes".into(),
                ));
            };
            let hw = HighWater {
                counter: m.counter,
                digest,
                segment_count: m.segment_count,
            };
            space.remember_high_water(&epoch, &device, &hw)?;
        }
        for files in &states {
            marks_before_last = space
                .high_water()?
                .into_iter()
                .map(|(e, d, hw)| ((e, d), hw))
                .collect();
            space = space.with_store(store_of(files).await?);
            if let Err(e) = space.check_format().await {
                out.verdicts.insert(e.class().ok_or(e)? as i32);
                continue;
            }
            let report = space.pull().await?;
            for e in &report.errors {
                match e.class() {
                    Some(c) => out.verdicts.insert(c as i32),
                    None => return Err(StorageError::Local(e.to_string())),
                };
            }
            for a in &report.alarms {
                if let Some(k) = alarm_kind(a.kind) {
                    out.alarms.insert((a.epoch_id, a.device, k as i32));
                }
            }
        }
        for (doc, envs) in space.documents()? {
            let ids = envs
                .iter()
                .filter_map(|e| envelope::decode(e).ok().map(|d| d.id))
                .collect();
            out.documents.insert(doc, ids);
        }
        if let Ok(true) = space.check_format().await {
            // STO-26: per document only the best-ranked checkpoint is fetched, the
            // next only if it fails or its state does not load.
            let (chosen, errors) = space
                .checkpoints(
                    |_| true,
                    |cp| {
                        let crdt = crdt_of(cp.checkpoint.content_type)
                            .ok_or_else(|| "not a CRDT state content type".to_string())?;
                        Provisional::load(crdt, &cp.doc_id, &YjsSchema::default(), &cp.state())
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    },
                )
                .await?;
            for e in &errors {
                match e.class() {
                    Some(c) => out.verdicts.insert(c as i32),
                    None => return Err(StorageError::Local(e.to_string())),
                };
            }
            for (doc, (cp, ())) in chosen {
                out.checkpoints.insert(doc, cp.id);
            }
        }
        for (e, d, hw) in space.high_water()? {
            out.high_water.insert((e, d), hw);
        }
        Ok(())
    })?
    .map_err(s)?;
    let refused = out.verdicts.contains(&(ErrorClass::StorageVersion as i32));
    if let (Some(sab), Some(last), false) = (sab, states.last(), refused) {
        sabotage_load(sab, &mut out, &es, &signers, last, &marks_before_last);
    }
    Ok(encode(out))
}

fn encode(out: Loaded) -> pb::StorageLoaded {
    pb::StorageLoaded {
        documents: out
            .documents
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(doc, ids)| pb::LoadedDocument {
                doc_id: doc.to_vec(),
                envelope_ids: ids.into_iter().map(|i| i.to_vec()).collect(),
            })
            .collect(),
        verdicts: out.verdicts.into_iter().collect(),
        alarms: out
            .alarms
            .into_iter()
            .map(|(e, d, k)| pb::StorageAlarm {
                kind: k,
                epoch_id: e.to_vec(),
                device: d.to_vec(),
            })
            .collect(),
        high_water: out
            .high_water
            .into_iter()
            .map(|((e, d), hw)| pb::HighWaterMark {
                epoch_id: e.to_vec(),
                device: d.to_vec(),
                counter: hw.counter,
                digest: hw.digest.to_vec(),
                segment_count: hw.segment_count,
            })
            .collect(),
        checkpoints: out
            .checkpoints
            .into_iter()
            .map(|(doc, id)| pb::ShownCheckpoint {
                doc_id: doc.to_vec(),
                checkpoint_id: id.to_vec(),
            })
            .collect(),
    }
}

/// The envelope ids of a segment file, if it opens as a segment of a signer.
fn segment_envelopes(
    es: &EpochStorage,
    signers: &[[u8; 32]],
    bytes: &[u8],
) -> Option<Vec<Vec<u8>>> {
    let opened = open_object(es, Kind::Segment, bytes, signers).ok()?;
    Segment::decode(&opened.body, es, &opened.signer)
        .ok()
        .map(|seg| seg.envelopes)
}

/// The signers' head manifests in `files`, as a reader accepts them.
fn heads(es: &EpochStorage, signers: &[[u8; 32]], files: &Files) -> Vec<HeadManifest> {
    signers
        .iter()
        .filter_map(|d| {
            let bytes = files.get(&es.head_path(d).ok()?)?;
            let opened = open_object(es, Kind::Head, bytes, &[*d]).ok()?;
            HeadManifest::decode(&opened.body, es, d).ok()
        })
        .collect()
}

fn add_envelopes(out: &mut Loaded, envs: &[Vec<u8>]) {
    for e in envs {
        if let Ok(d) = envelope::decode(e) {
            out.documents
                .entry(d.header.doc_id)
                .or_default()
                .insert(d.id);
        }
    }
}

/// The storage saboteurs (CONF-69), applied to what the reference loaded from
/// the last storage state `files`: each changes the answer exactly as an
/// implementation with its bug would load that state.
fn sabotage_load(
    sab: Saboteur,
    out: &mut Loaded,
    es: &EpochStorage,
    signers: &[[u8; 32]],
    files: &Files,
    marks: &BTreeMap<([u8; 32], [u8; 32]), HighWater>,
) {
    match sab {
        Saboteur::NoRollbackCheck => {
            // Accepts whatever head manifest storage serves (STO-9 skipped).
            out.alarms.clear();
            out.verdicts.remove(&(ErrorClass::Rollback as i32));
        }
        Saboteur::TrustsListing => {
            // Loads every object storage lists under the objects prefix by its
            // name, instead of what the signed manifests list by id (STO-5,
            // STO-10, STO-19).
            let prefix = es.objects_prefix();
            for (path, bytes) in files {
                let named = path
                    .strip_prefix(&prefix)
                    .and_then(parse_object_name)
                    .is_some();
                if named && let Some(envs) = segment_envelopes(es, signers, bytes) {
                    add_envelopes(out, &envs);
                }
            }
        }
        Saboteur::UnclampedCoverage => {
            // Believes every snapshot's `covers` as claimed (STO-31 skipped):
            // have(D) jumps to the greatest claim, so D's segments below it are
            // never fetched; only the snapshot's envelopes stand in for them.
            let hs = heads(es, signers, files);
            let mut claims: BTreeMap<[u8; 32], u64> = BTreeMap::new();
            let mut in_snapshots: BTreeSet<[u8; 32]> = BTreeSet::new();
            for m in &hs {
                for sid in &m.snapshots {
                    let Some(bytes) = files.get(&es.object_path(sid)) else {
                        continue;
                    };
                    let Ok(opened) = open_object(es, Kind::Snapshot, bytes, signers) else {
                        continue;
                    };
                    let Ok(snap) = Snapshot::decode(&opened.body, es, &opened.signer) else {
                        continue;
                    };
                    for (d, c) in &snap.covers {
                        let e = claims.entry(*d).or_default();
                        *e = (*e).max(*c);
                    }
                    for e in &snap.envelopes {
                        if let Ok(d) = envelope::decode(e) {
                            in_snapshots.insert(d.id);
                        }
                    }
                    add_envelopes(out, &snap.envelopes);
                }
            }
            let mut overclaimed = false;
            for m in &hs {
                let claim = claims.get(&m.device).copied().unwrap_or(0);
                overclaimed |= claim > m.segment_count;
                for (index, sid) in &m.segments {
                    if *index >= claim {
                        continue;
                    }
                    let Some(envs) = files
                        .get(&es.object_path(sid))
                        .and_then(|b| segment_envelopes(es, signers, b))
                    else {
                        continue;
                    };
                    for e in &envs {
                        if let Ok(d) = envelope::decode(e)
                            && !in_snapshots.contains(&d.id)
                            && let Some(ids) = out.documents.get_mut(&d.header.doc_id)
                        {
                            ids.remove(&d.id);
                        }
                    }
                }
            }
            // A claim beyond its device's attestation is never refuted.
            if overclaimed {
                out.verdicts.remove(&(ErrorClass::StorageCorrupt as i32));
            }
        }
        Saboteur::ObjectEpochUnchecked => {
            // Accepts a body signed for another epoch than the one it is sealed
            // under (STO-6/STO-7's epoch check skipped): a member's re-sealed old
            // head manifest of a device reads as that device's head, so its lower
            // counter is a rollback.
            for d in signers {
                let Some(bytes) = es.head_path(d).ok().and_then(|p| files.get(&p)) else {
                    continue;
                };
                let Ok(opened) = open_object(es, Kind::Head, bytes, &[*d]) else {
                    continue;
                };
                let Ok(m) = wire::decode::<wpb::HeadManifest>(&opened.body, &wire::HEAD_MANIFEST)
                else {
                    continue;
                };
                if m.epoch_id.as_slice() == es.epoch_id().as_slice() {
                    continue;
                }
                out.verdicts.remove(&(ErrorClass::StorageCorrupt as i32));
                let kind = match marks.get(&(*es.epoch_id(), *d)) {
                    Some(hw) if m.counter < hw.counter => pb::StorageAlarmKind::HeadRolledBack,
                    Some(hw) if m.counter == hw.counter => pb::StorageAlarmKind::HeadForked,
                    _ => continue,
                };
                out.verdicts.insert(ErrorClass::Rollback as i32);
                out.alarms.insert((*es.epoch_id(), *d, kind as i32));
            }
        }
        _ => {}
    }
}
