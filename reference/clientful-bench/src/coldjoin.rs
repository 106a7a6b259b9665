//! Cold join: a new device loads a document from storage, against the raw
//! library loading its own snapshot from a file on the same storage.
//!
//! The document is the first `n` edits of automerge-paper, written by one device
//! in batches of 64 and compacted (spec §9.8). *Candidate*: a device with an
//! empty local store pulls (reads head manifests, the chosen snapshot, later
//! segments; STO-13), opens every envelope and rebuilds its replica. *Baseline*:
//! the raw library's snapshot (yrs `encode_state_as_update_v1`; Automerge
//! `save()`) read back from a file in the same backend and loaded. Storage
//! snapshots carry the covered envelopes, not a CRDT state (storage README), so
//! the verified candidate replays history: this is the figure that shows it.
//! The compaction also writes a checkpoint (spec §9.7a); the *provisional*
//! candidate reads head manifests and the checkpoint and loads its state,
//! which is what a device shows while the verified rebuild runs.

use automerge::{AutoCommit, ReadDoc};
use clientful_core::envelope::ReceivedEnvelope;
use clientful_doc::checkpoint::{Provisional, state_of};
use clientful_doc::replica::{Opener, PreOpened};
use clientful_doc::testkit::World;
use clientful_doc::{CrdtKind, Replica};
use clientful_storage::object::{HeadManifest, Kind, open_object};
use clientful_storage::space::SpaceConfig;
use clientful_storage::{BlobStore, LocalStore, OpendalStore, Space};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, StateVector, Transact, Update};

use crate::trace::Patch;

const BATCH: usize = 64;

/// A prepared document: its storage, and the raw snapshot's path in it.
pub struct Prepared {
    store: OpendalStore,
    world: World,
    raw_path: String,
    /// Bytes of the raw library's snapshot.
    pub raw_bytes: usize,
    /// Bytes of the storage snapshot object.
    pub stored_bytes: usize,
    /// Bytes of the checkpoint object.
    pub checkpoint_bytes: usize,
    /// Bytes the checkpoint's entry adds to its writer's head manifest body
    /// (`doc_id || u64be(coverage) || object id` with its field framing, STO-8):
    /// the document and coverage live there, not in the checkpoint.
    pub checkpoint_entry_bytes: usize,
    text: String,
}

fn cfg(w: &World, i: usize) -> SpaceConfig {
    let mut seed = [0u8; 32];
    seed[0] = i as u8;
    SpaceConfig {
        space_id: w.space_id,
        device: w.device(i),
        epoch: w.epoch_key(),
        old_epochs: Vec::new(),
        signers: w.signers(),
        rng_seed: Some(seed),
    }
}

/// Writes the document (envelopes, compaction) and the raw snapshot into `store`.
pub async fn prepare(
    crdt: CrdtKind,
    patches: &[Patch],
    store: OpendalStore,
) -> anyhow::Result<Prepared> {
    let world = World::new(3, 2, crdt);
    let mut a = world.replica(0);
    let mut envelopes = Vec::new();
    let mut editor = crate::pipeline::Editor::new(&mut a)?;
    for (i, p) in patches.iter().enumerate() {
        editor.apply(&mut a, p)?;
        if (i + 1) % BATCH == 0 || i + 1 == patches.len() {
            a.commit()?;
            envelopes.extend(a.drain_outbox().into_iter().map(|(_, e)| e));
        }
    }
    let (raw, text) = if let Some(y) = a.yjs() {
        // The root ref first: yrs takes the document's write lock for it.
        let t = y.text("text");
        let txn = y.doc().transact();
        (
            txn.encode_state_as_update_v1(&StateVector::default()),
            t.get_string(&txn),
        )
    } else {
        let am = a
            .automerge_mut()
            .ok_or_else(|| anyhow::anyhow!("no document"))?
            .doc_mut();
        let text = match am.get(automerge::ROOT, "text")? {
            Some((_, id)) => am.text(&id)?,
            None => String::new(),
        };
        (am.save(), text)
    };
    let raw_path = "raw-snapshot.bin".to_owned();
    store.put_owned(&raw_path, raw.clone()).await?;
    let mut writer = Space::new(store.clone(), LocalStore::in_memory()?, cfg(&world, 0))?;
    writer.init().await?;
    writer.record(&envelopes)?;
    writer.flush().await?;
    let (snap, checkpoints) = writer
        .compact_with(|_, envs| Some(state_of(&mut Replica::restore(world.config(0, 1), envs))))
        .await?;
    let size = |id| {
        let path = writer.current().object_path(id);
        let store = store.clone();
        async move {
            store
                .get(&path)
                .await
                .map(|b| b.map(|b| b.len()).unwrap_or(0))
        }
    };
    let stored_bytes = size(&snap).await?;
    let checkpoint_bytes = match checkpoints.first() {
        Some(id) => size(id).await?,
        None => anyhow::bail!("no checkpoint written"),
    };
    let checkpoint_entry_bytes = {
        let es = writer.current().clone();
        let me = world.device(0).public_bytes();
        let head = store
            .get(&es.head_path(&me)?)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no head manifest"))?;
        let opened = open_object(&es, Kind::Head, &head, &world.signers())?;
        let m = HeadManifest::decode(&opened.body, &es, &opened.signer)?;
        let mut without = m.clone();
        without.checkpoints.clear();
        m.encode(&es).len() - without.encode(&es).len()
    };
    Ok(Prepared {
        store,
        world,
        raw_path,
        raw_bytes: raw.len(),
        stored_bytes,
        checkpoint_bytes,
        checkpoint_entry_bytes,
        text,
    })
}

/// Baseline: read the raw snapshot and load it with the library.
pub async fn raw_load(p: &Prepared) -> anyhow::Result<()> {
    let bytes = p
        .store
        .get(&p.raw_path)
        .await?
        .ok_or_else(|| anyhow::anyhow!("raw snapshot missing"))?;
    let text = match p.world.crdt {
        CrdtKind::Yjs => {
            let doc = yrs::Doc::with_options({
                let mut o = yrs::Options::with_client_id(yrs::block::ClientID::new(9));
                o.offset_kind = yrs::OffsetKind::Utf16;
                o
            });
            let t = doc.get_or_insert_text("text");
            let mut txn = doc.transact_mut();
            txn.apply_update(Update::decode_v1(&bytes)?)?;
            t.get_string(&txn)
        }
        CrdtKind::Automerge => {
            let doc = AutoCommit::load(&bytes)?;
            match doc.get(automerge::ROOT, "text")? {
                Some((_, id)) => doc.text(&id)?,
                None => String::new(),
            }
        }
    };
    anyhow::ensure!(text == p.text, "raw load diverged");
    Ok(())
}

/// Provisional candidate: a device with an empty local store reads the head
/// manifests and the chosen checkpoint, and loads its state (STO-26).
pub async fn provisional_join(p: &Prepared) -> anyhow::Result<()> {
    let reader = Space::new(p.store.clone(), LocalStore::in_memory()?, cfg(&p.world, 1))?;
    let rc = p.world.config(1, 0);
    let doc_id = p.world.doc_id;
    let (mut chosen, errors) = reader
        .checkpoints(
            |d| d == &doc_id,
            |cp| {
                Provisional::load(rc.crdt, &cp.doc_id, &rc.yjs_schema, &cp.state())
                    .map_err(|e| e.to_string())
            },
        )
        .await?;
    anyhow::ensure!(errors.is_empty(), "checkpoints: {errors:?}");
    let (_, view) = chosen
        .remove(&doc_id)
        .ok_or_else(|| anyhow::anyhow!("no checkpoint"))?;
    let text = match (view.yjs(), view.automerge()) {
        (Some(doc), _) => {
            // The root ref first: yrs takes the document's write lock for it.
            let t = doc.get_or_insert_text("text");
            let txn = doc.transact();
            t.get_string(&txn)
        }
        (None, Some(am)) => match am.get(automerge::ROOT, "text")? {
            Some((_, id)) => am.text(&id)?,
            None => String::new(),
        },
        (None, None) => anyhow::bail!("empty view"),
    };
    anyhow::ensure!(text == p.text, "provisional view diverged");
    Ok(())
}

/// How the verified candidate gets and opens the envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// `Space::pull_received` (each envelope decoded once, on the pull) and
    /// `Replica::restore_received`: one envelope after the other on this thread.
    Strict,
    /// `Space::pull_received` and `Replica::restore_opened_received`: the same
    /// strict opening (SIG-3) of every envelope spread over the machine's cores,
    /// then received in order (and Automerge changes applied in one call).
    Parallel,
    /// The path before issue 19: `Space::pull`, `Space::documents` (the
    /// envelopes read back from the local store and decoded again) and
    /// `Replica::restore` (decoded once more), one envelope after the other.
    /// The pull itself decodes each envelope once now, for every caller.
    OldPath,
}

/// Opens `items` with `open` on every core: contiguous chunks, one scoped
/// thread each, results in input order. A thread that fails leaves its chunk
/// out, and the replica opens those envelopes itself.
fn on_every_core<T: Sync>(items: &[T], open: impl Fn(&T) -> PreOpened + Sync) -> Vec<PreOpened> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 * threads {
        return items.iter().map(open).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let open = &open;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(open).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Opens envelopes decoded on the pull under `opener` on every core, without
/// decoding them again (`Replica::restore_opened_received`).
pub fn open_parallel_received(opener: &Opener, envs: &[ReceivedEnvelope]) -> Vec<PreOpened> {
    on_every_core(envs, |e| opener.open_received(e))
}

/// Candidate: a device with an empty local store pulls and rebuilds its replica.
pub async fn cold_join(p: &Prepared, opening: Opening) -> anyhow::Result<()> {
    let mut reader = Space::new(p.store.clone(), LocalStore::in_memory()?, cfg(&p.world, 1))?;
    let mut r = if opening == Opening::OldPath {
        let report = reader.pull().await?;
        anyhow::ensure!(report.errors.is_empty(), "pull: {:?}", report.errors);
        let docs = reader.documents()?;
        let envs = docs
            .get(&p.world.doc_id)
            .ok_or_else(|| anyhow::anyhow!("document not found"))?;
        Replica::restore(p.world.config(1, 0), envs)
    } else {
        let (report, mut docs) = reader.pull_received().await?;
        anyhow::ensure!(report.errors.is_empty(), "pull: {:?}", report.errors);
        let envs = docs
            .remove(&p.world.doc_id)
            .ok_or_else(|| anyhow::anyhow!("document not found"))?;
        if opening == Opening::Strict {
            Replica::restore_received(p.world.config(1, 0), None, envs)
        } else {
            Replica::restore_opened_received(
                p.world.config(1, 0),
                None,
                &envs,
                open_parallel_received,
            )
        }
    };
    let text = match r.yjs() {
        Some(y) => y.text("text").get_string(&y.doc().transact()),
        None => {
            let am = r
                .automerge_mut()
                .ok_or_else(|| anyhow::anyhow!("no document"))?
                .doc_mut();
            match am.get(automerge::ROOT, "text")? {
                Some((_, id)) => am.text(&id)?,
                None => String::new(),
            }
        }
    };
    anyhow::ensure!(text == p.text, "cold join diverged");
    Ok(())
}
