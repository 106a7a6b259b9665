//! `storage`: small stores laid out byte for byte (spec §9). A reader device with
//! an empty local store loads each listed storage state in turn (the whole set of
//! files, path and bytes) and reports the first storage verdict, or, when every
//! load is clean, the digests and canonical JSON of the document rebuilt from what
//! it loaded. Variants corrupt, truncate, withhold, roll back or version-bump
//! files of a valid store. Cases flagged `ForgedCoverage` carry a member's snapshot
//! whose covers claim more of another device than it holds: the reader believes a
//! cover only as far as that device's own attestation confirms it (STO-31).
//!
//! Group `checkpoint` (§9.7a): the reader first shows the document from the
//! chosen checkpoint (STO-26: only the best-ranked entry of the head manifests is
//! fetched, the next one only if it fails), then loads the store and checks that
//! checkpoint against its snapshot's envelopes (STO-27); the output has both
//! views, and a damaged checkpoint, one signed by another device than the one
//! listing it, a lying state or a refuted coverage claim gives `STORAGE_CORRUPT`.
//!
//! The objects are built and checked by the pure layout crate
//! (`clientful-storage-layout`); writers and the reader are the storage shell's
//! `Space` over the in-memory backend and device store, polled to completion
//! without an async runtime ([`block_on`]).

use std::collections::BTreeMap;

use clientful_core::ErrorClass;
use clientful_core::keys::EpochKey;
use clientful_core::{envelope, labels, suite, wire};
use clientful_doc::checkpoint::{Provisional, state_of};
use clientful_doc::testkit::{World, insert_text};
use clientful_doc::{CrdtKind, Replica};
use clientful_proto::v1 as pb;
use clientful_storage::space::{CheckpointCheck, CheckpointState, Space, SpaceConfig};
use clientful_storage::{BlobStore, LocalStore, OpendalStore};
use clientful_storage_layout::layout::{EpochStorage, FORMAT_PATH, object_id};
use clientful_storage_layout::object::{HeadManifest, Kind, Snapshot, open_object, seal_object};
use clientful_storage_layout::{StorageError, causal};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};

use super::docworld::{replica_config, world_params};
use crate::generate::{FileBuilder, Variation};
use crate::hexutil::{get_arr, get_hex, get_str, hex};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/storage";

type Files = BTreeMap<String, Vec<u8>>;

/// Runs one of the storage shell's futures over the in-memory backend and the
/// in-memory device store to completion, without an async runtime: every
/// operation there completes when first polled (no socket, file or timer), so
/// polling with a no-op waker suffices. A future that stays pending is an error,
/// not a hang.
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1024 {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Ok(v);
        }
    }
    Err("a storage operation over the in-memory backend did not complete".into())
}

fn space_config(params: &Value, device_seed: [u8; 32], rng: u8) -> Result<SpaceConfig, String> {
    let cfg = replica_config(params, device_seed, [0; 32])?;
    Ok(SpaceConfig {
        space_id: cfg.space_id,
        device: cfg.device,
        epoch: cfg.epoch,
        old_epochs: Vec::new(),
        signers: cfg.signers,
        rng_seed: Some([rng; 32]),
    })
}

struct Writer {
    replica: Replica,
    space: Space<OpendalStore>,
}

impl Writer {
    fn new(w: &World, params: &Value, store: &OpendalStore, i: usize) -> Result<Self, String> {
        let seed = w.device_seeds.get(i).copied().ok_or("no such device")?;
        let space = Space::new(
            store.clone(),
            LocalStore::in_memory().map_err(|e| e.to_string())?,
            space_config(params, seed, i as u8 + 1)?,
        )
        .map_err(|e| e.to_string())?;
        Ok(Writer {
            replica: w.replica(i),
            space,
        })
    }

    fn edit(&mut self, text: &str) -> Result<(), String> {
        insert_text(&mut self.replica, 0, text)?;
        self.replica.commit().map_err(|e| e.to_string())?;
        let out: Vec<Vec<u8>> = self
            .replica
            .drain_outbox()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        self.space.record(&out).map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), String> {
        self.space.pull().await.map_err(|e| e.to_string())?;
        for envs in self.space.documents().map_err(|e| e.to_string())?.values() {
            for e in envs {
                self.replica.receive(e);
            }
        }
        Ok(())
    }
}

async fn dump(store: &OpendalStore) -> Result<Files, String> {
    let mut out = Files::new();
    for p in store.list("").await.map_err(|e| e.to_string())? {
        if let Some(b) = store.get(&p).await.map_err(|e| e.to_string())? {
            out.insert(p, b);
        }
    }
    Ok(out)
}

fn files_json(files: &Files) -> Value {
    json!({"files": files.iter().map(|(p, b)| json!({"path": p, "bytes": hex(b)})).collect::<Vec<_>>()})
}

fn loads(states: &[&Files]) -> Value {
    json!({"loads": states.iter().map(|f| files_json(f)).collect::<Vec<_>>()})
}

/// The states a generator case is built from.
struct Stores {
    /// After the writers' first round (segments only).
    early: Files,
    /// The final, valid store (snapshots and segments).
    full: Files,
}

/// Two writers edit; one compacts while the other edits; both publish more.
async fn build(w: &World, params: &Value) -> Result<Stores, String> {
    let store = OpendalStore::memory().map_err(|e| e.to_string())?;
    let mut a = Writer::new(w, params, &store, 0)?;
    let mut b = Writer::new(w, params, &store, 1)?;
    a.space.init().await.map_err(|e| e.to_string())?;
    a.edit("hello ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    b.sync().await?;
    b.edit("world ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    let early = dump(&store).await?;
    a.sync().await?;
    a.edit("snapshot ")?;
    b.edit("concurrent ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    a.space.compact().await.map_err(|e| e.to_string())?;
    a.edit("later ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    let full = dump(&store).await?;
    Ok(Stores { early, full })
}

/// A member (device 2, which writes nothing) signs a snapshot of what it loaded
/// from two writers' first segments and lists it in its head manifest; it claims
/// `claim` segments of writer 1 and, with `omit`, leaves writer 1's envelopes
/// out. Writer 1 then publishes one more segment. Returns the store with the
/// forged snapshot, and the store after writer 1's later segment.
async fn build_forged(
    w: &World,
    params: &Value,
    claim: u64,
    omit: bool,
) -> Result<(Files, Files), String> {
    let store = OpendalStore::memory().map_err(|e| e.to_string())?;
    let mut a = Writer::new(w, params, &store, 0)?;
    let mut b = Writer::new(w, params, &store, 1)?;
    a.space.init().await.map_err(|e| e.to_string())?;
    a.edit("hello ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    b.sync().await?;
    b.edit("world ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    let mut m = Writer::new(w, params, &store, 2)?;
    m.sync().await?;
    let (dev_a, dev_b, key_m) = (
        w.device(0).public_bytes(),
        w.device(1).public_bytes(),
        w.device(2),
    );
    let envs: Vec<Vec<u8>> = m
        .space
        .local()
        .all_envelopes()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| !omit || envelope::decode(e).is_ok_and(|d| d.header.author != dev_b))
        .collect();
    let (envelopes, heads) = causal::order(envs);
    let mut covers = vec![(dev_a, 1), (dev_b, claim)];
    covers.sort_unstable();
    let es = m.space.current().clone();
    let snap = Snapshot {
        device: key_m.public_bytes(),
        covers,
        heads,
        envelopes,
    };
    let mut rng = ChaCha20Rng::from_seed([0x66; 32]);
    let file = seal_object(&es, Kind::Snapshot, &key_m, snap.encode(&es), &mut rng)
        .map_err(|e| e.to_string())?;
    let id = object_id(&file).map_err(|e| e.to_string())?;
    store
        .put_immutable(&es.object_path(&id), file)
        .await
        .map_err(|e| e.to_string())?;
    let mut head = HeadManifest::empty(key_m.public_bytes());
    head.counter = 1;
    head.snapshots = vec![id];
    let file = seal_object(&es, Kind::Head, &key_m, head.encode(&es), &mut rng)
        .map_err(|e| e.to_string())?;
    store
        .put_owned(
            &es.head_path(&key_m.public_bytes())
                .map_err(|e| e.to_string())?,
            file,
        )
        .await
        .map_err(|e| e.to_string())?;
    let forged = dump(&store).await?;
    b.edit("later ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    Ok((forged, dump(&store).await?))
}

/// The storage seal key of an epoch (STO-3), as any member of it derives it.
pub fn seal_key(space_id: &[u8; 32], epoch: &EpochKey) -> Result<[u8; 32], String> {
    let mut root = [0u8; 32];
    suite::derive_with_label(
        epoch.secret(),
        space_id,
        labels::KDF_STORAGE_KEY,
        epoch.id(),
        &mut root,
    )
    .map_err(|e| e.to_string())?;
    let mut seal = [0u8; 32];
    suite::derive_with_label(&root, &[], labels::KDF_STORAGE_SEAL, &[], &mut seal)
        .map_err(|e| e.to_string())?;
    Ok(seal)
}

/// The AAD of a stored object of `kind` in the epoch `epoch_id` (STO-6).
pub fn object_aad(kind: u32, epoch_id: &[u8; 32]) -> Result<Vec<u8>, String> {
    let content = [
        &1u32.to_be_bytes(),
        &kind.to_be_bytes(),
        epoch_id.as_slice(),
    ]
    .concat();
    labels::labeled(labels::AAD_STORAGE_OBJECT, &content).ok_or_else(|| "aad".to_string())
}

/// What a member holding both epochs can do: open a stored object under `from`
/// and seal the same signed plaintext (body, signer and signature untouched)
/// under `to` (issue 22 finding 6: the forgery STO-6/7's epoch binding stops).
pub fn transplant(
    bytes: &[u8],
    space_id: &[u8; 32],
    from: &EpochKey,
    to: &EpochKey,
) -> Result<Vec<u8>, String> {
    let obj: pb::StoredObject =
        wire::decode(bytes, &wire::STORED_OBJECT).map_err(|e| e.to_string())?;
    let nonce: [u8; 24] = obj.nonce.as_slice().try_into().map_err(|_| "nonce")?;
    let signed = suite::aead_open(
        &seal_key(space_id, from)?,
        &nonce,
        &object_aad(obj.kind, from.id())?,
        &obj.ciphertext,
    )
    .map_err(|e| e.to_string())?;
    let ciphertext = suite::aead_seal(
        &seal_key(space_id, to)?,
        &nonce,
        &object_aad(obj.kind, to.id())?,
        &signed,
    )
    .map_err(|e| e.to_string())?;
    Ok(wire::encode(&pb::StoredObject {
        version: 1,
        kind: obj.kind,
        epoch_id: to.id().to_vec(),
        nonce: obj.nonce,
        ciphertext,
    }))
}

/// A head manifest re-signed by its own device after `change`: what a member
/// device (not storage) could write, so the case isolates the STO-9 check that
/// `change` breaks.
fn resigned_head(
    w: &World,
    params: &Value,
    bytes: &[u8],
    change: &dyn Fn(&mut HeadManifest),
) -> Result<Vec<u8>, String> {
    let epoch = replica_config(params, [0; 32], [0; 32])?.epoch;
    let es = EpochStorage::derive(&w.space_id, &epoch).map_err(|e| e.to_string())?;
    let opened =
        clientful_storage_layout::object::open_object(&es, Kind::Head, bytes, &w.signers())
            .map_err(|e| e.to_string())?;
    let mut head =
        HeadManifest::decode(&opened.body, &es, &opened.signer).map_err(|e| e.to_string())?;
    change(&mut head);
    let key = (0..w.signers().len())
        .map(|i| w.device(i))
        .find(|k| k.public_bytes() == opened.signer)
        .ok_or("head signer is not a world device")?;
    let mut rng = ChaCha20Rng::from_seed([0x67; 32]);
    seal_object(&es, Kind::Head, &key, head.encode(&es), &mut rng).map_err(|e| e.to_string())
}

/// Writer 0's head manifest of another epoch (counter 1), moved by a member
/// into writer 0's head path of the world's epoch.
async fn moved_head(w: &World, params: &Value, full: &Files) -> Result<Files, String> {
    let world_epoch = replica_config(params, [0; 32], [0; 32])?.epoch;
    let other = EpochKey::new([0xe2; 32], [0x22; 32]);
    let store = OpendalStore::memory().map_err(|e| e.to_string())?;
    let mut a = Writer::new(w, params, &store, 0)?;
    let mut cfg = space_config(
        params,
        w.device_seeds.first().copied().ok_or("no device")?,
        1,
    )?;
    cfg.epoch = other.clone();
    a.space = Space::new(
        store.clone(),
        LocalStore::in_memory().map_err(|e| e.to_string())?,
        cfg,
    )
    .map_err(|e| e.to_string())?;
    a.space.init().await.map_err(|e| e.to_string())?;
    a.edit("elsewhere ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    let me = w.device(0).public_bytes();
    let other_head = store
        .get(
            &a.space
                .current()
                .head_path(&me)
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no head in the other epoch")?;
    let here = EpochStorage::derive(&w.space_id, &world_epoch).map_err(|e| e.to_string())?;
    let mut files = full.clone();
    files.insert(
        here.head_path(&me).map_err(|e| e.to_string())?,
        transplant(&other_head, &w.space_id, &other, &world_epoch)?,
    );
    Ok(files)
}

/// How the compacting writer of a checkpoint store computes its checkpoint.
#[derive(Clone, Copy)]
enum CheckpointMode {
    /// The true state of the snapshot's envelopes.
    Honest,
    /// A state of other envelopes (a lying member).
    Lying,
}

/// Two writers edit; writer 0 compacts with a checkpoint (STO-25) and edits on.
async fn build_checkpointed(
    w: &World,
    params: &Value,
    mode: CheckpointMode,
) -> Result<Files, String> {
    let store = OpendalStore::memory().map_err(|e| e.to_string())?;
    let mut a = Writer::new(w, params, &store, 0)?;
    let mut b = Writer::new(w, params, &store, 1)?;
    a.space.init().await.map_err(|e| e.to_string())?;
    a.edit("checkpointed ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    b.sync().await?;
    b.edit("together ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    a.sync().await?;
    let forged = {
        let mut r = w.replica(2);
        insert_text(&mut r, 0, "forged content")?;
        r.commit().map_err(|e| e.to_string())?;
        state_of(&mut r)
    };
    a.space
        .compact_with(|_, envs| -> Option<CheckpointState> {
            let mut st = state_of(&mut Replica::restore(w.config(0, 1), envs));
            match mode {
                CheckpointMode::Honest => {}
                CheckpointMode::Lying => st = forged.clone(),
            }
            Some(st)
        })
        .await
        .map_err(|e| e.to_string())?;
    a.edit("later ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    dump(&store).await
}

/// Two writers each compact with a checkpoint of the document (STO-25): writer 0
/// first, then writer 1 after one more segment of its own, so writer 1's
/// checkpoint claims the greater coverage and ranks first (STO-26).
async fn build_two_checkpointed(w: &World, params: &Value) -> Result<Files, String> {
    let store = OpendalStore::memory().map_err(|e| e.to_string())?;
    let mut a = Writer::new(w, params, &store, 0)?;
    let mut b = Writer::new(w, params, &store, 1)?;
    let honest = |envs: &[Vec<u8>]| Some(state_of(&mut Replica::restore(w.config(0, 1), envs)));
    a.space.init().await.map_err(|e| e.to_string())?;
    a.edit("first ")?;
    a.space.flush().await.map_err(|e| e.to_string())?;
    b.sync().await?;
    b.edit("second ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    a.sync().await?;
    a.space
        .compact_with(|_, envs| honest(envs))
        .await
        .map_err(|e| e.to_string())?;
    b.sync().await?;
    b.edit("third ")?;
    b.space.flush().await.map_err(|e| e.to_string())?;
    b.space
        .compact_with(|_, envs| honest(envs))
        .await
        .map_err(|e| e.to_string())?;
    dump(&store).await
}

/// The path of the checkpoint object signed by device `i` of the world.
fn checkpoint_path_of(
    w: &World,
    params: &Value,
    files: &Files,
    i: usize,
) -> Result<String, String> {
    let es = world_storage(w, params)?;
    let signer = w.device(i).public_bytes();
    path_where(files, |p, b| {
        p.contains("/o/")
            && kind_of(b) == Some(5)
            && open_object(&es, Kind::Checkpoint, b, &w.signers()).is_ok_and(|o| o.signer == signer)
    })
}

/// The storage keys of the world's epoch.
fn world_storage(w: &World, params: &Value) -> Result<EpochStorage, String> {
    let epoch = replica_config(params, [0; 32], [0; 32])?.epoch;
    EpochStorage::derive(&w.space_id, &epoch).map_err(|e| e.to_string())
}

/// Writer 0's checkpoint body signed again by writer 1 (a member) and sealed
/// as a new object, which writer 0's head manifest then lists in place of its
/// own: the signer is not the listing device (STO-7, STO-24).
fn checkpoint_signed_by_another(
    w: &World,
    params: &Value,
    honest: &Files,
) -> Result<Files, String> {
    let es = world_storage(w, params)?;
    let cp_path = checkpoint_path_of(w, params, honest, 0)?;
    let old = honest.get(&cp_path).ok_or("no checkpoint")?;
    let opened =
        open_object(&es, Kind::Checkpoint, old, &w.signers()).map_err(|e| e.to_string())?;
    let mut rng = ChaCha20Rng::from_seed([0x68; 32]);
    let file = seal_object(&es, Kind::Checkpoint, &w.device(1), opened.body, &mut rng)
        .map_err(|e| e.to_string())?;
    let new_id = object_id(&file).map_err(|e| e.to_string())?;
    let old_id = object_id(old).map_err(|e| e.to_string())?;
    let mut files = honest.clone();
    files.remove(&cp_path);
    files.insert(es.object_path(&new_id), file);
    let head_path = es
        .head_path(&w.device(0).public_bytes())
        .map_err(|e| e.to_string())?;
    let head = files.get(&head_path).ok_or("no head of writer 0")?;
    let resigned = resigned_head(w, params, head, &|m: &mut HeadManifest| {
        for c in &mut m.checkpoints {
            if c.id == old_id {
                c.id = new_id;
            }
        }
    })?;
    files.insert(head_path, resigned);
    Ok(files)
}

/// Writer 0's head manifest re-signed with its checkpoint entry claiming one
/// more than its snapshot's total coverage (STO-27 refutes the claim).
fn checkpoint_overclaimed(w: &World, params: &Value, honest: &Files) -> Result<Files, String> {
    let es = world_storage(w, params)?;
    let head_path = es
        .head_path(&w.device(0).public_bytes())
        .map_err(|e| e.to_string())?;
    let mut files = honest.clone();
    let head = files.get(&head_path).ok_or("no head of writer 0")?;
    let resigned = resigned_head(w, params, head, &|m: &mut HeadManifest| {
        for c in &mut m.checkpoints {
            c.coverage += 1;
        }
    })?;
    files.insert(head_path, resigned);
    Ok(files)
}

/// Flips the lowest bit of the middle byte.
fn flip_middle(b: &mut [u8]) {
    let mid = b.len() / 2;
    if let Some(x) = b.get_mut(mid) {
        *x ^= 0x01;
    }
}

/// A memory store holding the files of one storage state (`{"files": [{path, bytes}]}`).
async fn store_of(state: &Value) -> Result<OpendalStore, String> {
    let store = OpendalStore::memory().map_err(|e| e.to_string())?;
    for file in state
        .get("files")
        .and_then(Value::as_array)
        .ok_or("missing files")?
    {
        store
            .put_owned(get_str(file, "path")?, get_hex(file, "bytes")?)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(store)
}

fn path_where(files: &Files, what: impl Fn(&str, &[u8]) -> bool) -> Result<String, String> {
    files
        .iter()
        .find(|(p, b)| what(p, b))
        .map(|(p, _)| p.clone())
        .ok_or_else(|| "no such file".to_string())
}

fn kind_of(bytes: &[u8]) -> Option<u32> {
    wire::decode::<pb::StoredObject>(bytes, &wire::STORED_OBJECT)
        .ok()
        .map(|o| o.kind)
}

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (CONF-53).
#[allow(clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let var = Variation::new(seed, SEED);
    let mut f = FileBuilder::new(
        "storage",
        seed,
        "Stores laid out byte for byte (spec §9): a reader with an empty local store loads each \
         storage state in turn; a clean load gives the document's digests, a damaged one the first \
         storage verdict.",
    );
    for (flag, bug, desc) in [
        (
            "ColdStart",
            "BASIC",
            "A new device loads a store from scratch.",
        ),
        (
            "Snapshot",
            "DEFINED",
            "The store holds a snapshot and later segments.",
        ),
        (
            "Corrupted",
            "MODIFIED_CIPHERTEXT",
            "A stored object has a flipped bit.",
        ),
        (
            "Truncated",
            "MODIFIED_CIPHERTEXT",
            "A stored object is cut short.",
        ),
        ("Withheld", "MISSING_STEP", "A listed object is absent."),
        (
            "Substituted",
            "MODIFIED_CIPHERTEXT",
            "An object is replaced by another valid object.",
        ),
        (
            "Rollback",
            "MISSING_STEP",
            "An older head manifest is served after a newer one was seen.",
        ),
        (
            "Version",
            "DEFINED",
            "A layout version this implementation does not support.",
        ),
        (
            "Transplanted",
            "MODIFIED_CIPHERTEXT",
            "A member moved a signed object from one epoch's directory into another's.",
        ),
        (
            "ForgedCoverage",
            "MISSING_STEP",
            "A member's snapshot claims more coverage of another device than it holds.",
        ),
    ] {
        f.note(flag, bug, desc);
    }
    let w = World::new(var.world(0x5707), 3, CrdtKind::Yjs);
    let params = world_params(&w);
    f.group(
        "load",
        "Load each storage state in turn into one reader (observerSeed) and report the result.",
        params.clone(),
    );
    let stores = block_on(build(&w, &params))??;
    let full = &stores.full;

    let valid = |f: &mut FileBuilder,
                 name: &str,
                 desc: &str,
                 refs: &[&str],
                 flags: &[&str],
                 input: Value|
     -> Result<(), String> {
        match run("load", &params, &input)? {
            Outcome::Accepted(out) => {
                f.valid(name, desc, refs, flags, input, out);
                Ok(())
            }
            Outcome::Rejected(c) => Err(format!(
                "{name}: intended valid, reference rejects with {c:?}"
            )),
        }
    };
    valid(
        &mut f,
        "segments-only",
        "Two devices' segments and head manifests; no snapshot.",
        &["STO-2", "STO-8", "STO-10", "STO-14"],
        &["ColdStart"],
        loads(&[&stores.early]),
    )?;
    valid(
        &mut f,
        "snapshot-plus-later-segments",
        "One device compacted while the other edited: the snapshot plus every later segment.",
        &["STO-12", "STO-13", "STO-14", "STO-15"],
        &["ColdStart", "Snapshot"],
        loads(&[full]),
    )?;
    valid(
        &mut f,
        "early-then-full",
        "A reader that loaded the early store loads the full one (collected segments come from the base snapshot).",
        &["STO-9", "STO-14"],
        &["Snapshot"],
        loads(&[&stores.early, full]),
    )?;

    let invalid = |f: &mut FileBuilder,
                   name: &str,
                   desc: &str,
                   refs: &[&str],
                   class: ErrorClass,
                   flags: &[&str],
                   input: Value|
     -> Result<(), String> {
        match run("load", &params, &input)? {
            Outcome::Rejected(c) if c == class => {
                f.invalid(name, desc, refs, class, flags, input);
                Ok(())
            }
            other => Err(format!(
                "{name}: intended {class:?}, reference gives {other:?}"
            )),
        }
    };
    let seg = path_where(full, |p, b| p.contains("/o/") && kind_of(b) == Some(2))?;
    let snap = path_where(full, |p, b| p.contains("/o/") && kind_of(b) == Some(3))?;
    let head = path_where(full, |p, _| p.contains("/h/"))?;
    let edit = |path: &str, change: &dyn Fn(&mut Vec<u8>)| -> Files {
        let mut files = full.clone();
        if let Some(b) = files.get_mut(path) {
            change(b);
        }
        files
    };
    let flip = |b: &mut Vec<u8>| flip_middle(b);
    let cut = |b: &mut Vec<u8>| b.truncate(b.len() / 2);
    invalid(
        &mut f,
        "segment-bit-flip",
        "One bit of a segment's ciphertext is flipped.",
        &["STO-5"],
        ErrorClass::StorageCorrupt,
        &["Corrupted"],
        loads(&[&edit(&seg, &flip)]),
    )?;
    invalid(
        &mut f,
        "segment-truncated",
        "A segment file is cut in half.",
        &["STO-5"],
        ErrorClass::StorageCorrupt,
        &["Truncated"],
        loads(&[&edit(&seg, &cut)]),
    )?;
    let mut withheld = full.clone();
    withheld.remove(&seg);
    invalid(
        &mut f,
        "segment-withheld",
        "A segment listed in a head manifest is absent.",
        &["STO-5", "STO-14"],
        ErrorClass::StorageCorrupt,
        &["Withheld"],
        loads(&[&withheld]),
    )?;
    let snap_bytes = full.get(&snap).cloned().unwrap_or_default();
    invalid(
        &mut f,
        "segment-substituted",
        "A segment's path holds the snapshot's bytes.",
        &["STO-5"],
        ErrorClass::StorageCorrupt,
        &["Substituted"],
        loads(&[&edit(&seg, &|b: &mut Vec<u8>| *b = snap_bytes.clone())]),
    )?;
    invalid(
        &mut f,
        "snapshot-bit-flip",
        "One bit of the snapshot is flipped.",
        &["STO-5", "STO-12"],
        ErrorClass::StorageCorrupt,
        &["Corrupted", "Snapshot"],
        loads(&[&edit(&snap, &flip)]),
    )?;
    invalid(
        &mut f,
        "head-truncated",
        "A head manifest is cut in half.",
        &["STO-7"],
        ErrorClass::StorageCorrupt,
        &["Truncated"],
        loads(&[&edit(&head, &cut)]),
    )?;
    invalid(
        &mut f,
        "head-bit-flip",
        "One bit of a head manifest is flipped (AEAD fails).",
        &["STO-7"],
        ErrorClass::StorageCorrupt,
        &["Corrupted"],
        loads(&[&edit(&head, &flip)]),
    )?;
    let old_head = stores
        .early
        .get(&head)
        .cloned()
        .ok_or("head missing in the early store")?;
    invalid(
        &mut f,
        "head-rolled-back",
        "After the full store, storage serves the head manifest of the early store (counter and \
         segment count both lower; `head-counter-lowered` and `head-segment-count-lowered` \
         isolate each).",
        &["STO-9"],
        ErrorClass::Rollback,
        &["Rollback"],
        loads(&[full, &edit(&head, &|b: &mut Vec<u8>| *b = old_head.clone())]),
    )?;
    let full_head = full.get(&head).cloned().ok_or("head missing")?;
    let lower_counter = resigned_head(&w, &params, &full_head, &|h: &mut HeadManifest| {
        h.counter = h.counter.saturating_sub(1);
    })?;
    invalid(
        &mut f,
        "head-counter-lowered",
        "After the full store, the same device's head manifest with only its counter lowered by \
         one (re-signed by the device; segments, segment count and everything else unchanged): \
         counter below the mark.",
        &["STO-9"],
        ErrorClass::Rollback,
        &["Rollback"],
        loads(&[
            full,
            &edit(&head, &|b: &mut Vec<u8>| *b = lower_counter.clone()),
        ]),
    )?;
    let fewer_segments = resigned_head(&w, &params, &full_head, &|h: &mut HeadManifest| {
        // One segment fewer, self-consistent (STO-8, STO-30), under a higher counter.
        h.counter += 1;
        h.segment_count = h.segment_count.saturating_sub(1);
        let n = h.segment_count;
        h.segments.retain(|(i, _)| *i < n);
        h.tips.retain(|t| t.count <= n);
    })?;
    invalid(
        &mut f,
        "head-segment-count-lowered",
        "After the full store, the same device's head manifest with a higher counter but one \
         segment fewer (re-signed by the device, its segment list and attestation cut to match): \
         segment count below the mark (history rewritten).",
        &["STO-9"],
        ErrorClass::Rollback,
        &["Rollback"],
        loads(&[
            full,
            &edit(&head, &|b: &mut Vec<u8>| *b = fewer_segments.clone()),
        ]),
    )?;
    let mut no_head = full.clone();
    no_head.remove(&head);
    invalid(
        &mut f,
        "head-withheld",
        "After the full store, a head manifest seen before is absent.",
        &["STO-9"],
        ErrorClass::Rollback,
        &["Rollback", "Withheld"],
        loads(&[full, &no_head]),
    )?;
    let v2 = wire::encode(&pb::StorageFormat { version: 2 });
    invalid(
        &mut f,
        "format-version-2",
        "The format file says layout version 2.",
        &["STO-2"],
        ErrorClass::StorageVersion,
        &["Version"],
        loads(&[&edit(FORMAT_PATH, &|b: &mut Vec<u8>| *b = v2.clone())]),
    )?;
    let bump = |b: &mut Vec<u8>| {
        if let Ok(mut o) = wire::decode::<pb::StoredObject>(b, &wire::STORED_OBJECT) {
            o.version = 2;
            *b = wire::encode(&o);
        }
    };
    invalid(
        &mut f,
        "head-object-version-2",
        "A head manifest's StoredObject says layout version 2.",
        &["STO-7"],
        ErrorClass::StorageVersion,
        &["Version"],
        loads(&[&edit(&head, &bump)]),
    )?;
    let moved = block_on(moved_head(&w, &params, full))??;
    invalid(
        &mut f,
        "head-moved-from-another-epoch",
        "After the full store, writer 0's head path holds its own head manifest of another epoch \
         (counter 1), re-sealed under this epoch by a member holding both: the body names the \
         other epoch, so it is refused as corrupt (a rollback verdict without the epoch check).",
        &["STO-6", "STO-7"],
        ErrorClass::StorageCorrupt,
        &["Transplanted"],
        loads(&[full, &moved]),
    )?;
    let (omitting, _) = block_on(build_forged(&w, &params, 1, true))??;
    invalid(
        &mut f,
        "snapshot-omits-covered-envelopes",
        "A member's snapshot claims writer 1's segment but leaves its envelopes out; writer 1's \
         head manifest attests them, so the claim is refuted.",
        &["STO-13", "STO-14", "STO-30", "STO-31"],
        ErrorClass::StorageCorrupt,
        &["ForgedCoverage"],
        loads(&[&omitting]),
    )?;
    let (huge, after) = block_on(build_forged(&w, &params, 1 << 40, false))??;
    let input = loads(&[&huge, &after]);
    match run("load", &params, &input)? {
        Outcome::Accepted(out)
            if out
                .get("materialized")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("later")) =>
        {
            f.valid(
                "snapshot-huge-claim-clamped",
                "A member's snapshot holds what it covers but claims 2^40 segments of writer 1; \
                 the claim counts only up to writer 1's attested segment count, so writer 1's \
                 later segment is still loaded.",
                &["STO-14", "STO-30", "STO-31"],
                &["ForgedCoverage", "Snapshot"],
                input,
                out,
            );
        }
        other => {
            return Err(format!(
                "snapshot-huge-claim-clamped: intended valid with writer 1's later edit, reference gives {other:?}"
            ));
        }
    }
    checkpoint_cases(&mut f, &w, &params)?;
    Ok(f.finish())
}

/// The `checkpoint` group.
fn checkpoint_cases(f: &mut FileBuilder, w: &World, params: &Value) -> Result<(), String> {
    f.group(
        "checkpoint",
        "Show the document from the chosen checkpoint (STO-26), then load the store and check \
         the checkpoint against its snapshot (STO-27): report both views, or the first verdict.",
        params.clone(),
    );
    let honest = block_on(build_checkpointed(w, params, CheckpointMode::Honest))??;
    let lying = block_on(build_checkpointed(w, params, CheckpointMode::Lying))??;
    let two = block_on(build_two_checkpointed(w, params))??;
    let input = |files: &Files| files_json(files);
    let case = |f: &mut FileBuilder,
                name: &str,
                desc: &str,
                refs: &[&str],
                want: Option<ErrorClass>,
                input: Value|
     -> Result<Option<Value>, String> {
        match (run("checkpoint", params, &input)?, want) {
            (Outcome::Accepted(out), None) => {
                f.valid(
                    name,
                    desc,
                    refs,
                    &["ColdStart", "Snapshot"],
                    input,
                    out.clone(),
                );
                Ok(Some(out))
            }
            (Outcome::Rejected(c), Some(class)) if c == class => {
                f.invalid(name, desc, refs, class, &["Corrupted"], input);
                Ok(None)
            }
            (other, _) => Err(format!(
                "{name}: intended {want:?}, reference gives {other:?}"
            )),
        }
    };
    case(
        f,
        "checkpoint-provisional-then-checked",
        "The provisional view is the document as of the snapshot; the store adds a later \
         edit; the checkpoint matches its envelopes.",
        &["STO-6", "STO-8", "STO-24", "STO-25", "STO-26", "STO-27"],
        None,
        input(&honest),
    )?;
    case(
        f,
        "checkpoint-lying-state",
        "A member signed a checkpoint whose state is not what its snapshot's envelopes \
         produce: shown provisionally, then the check fails.",
        &["STO-27"],
        Some(ErrorClass::StorageCorrupt),
        input(&lying),
    )?;
    case(
        f,
        "checkpoint-coverage-overclaimed",
        "Writer 0's head manifest entry claims one more than its checkpoint's snapshot \
         covers: shown provisionally (the claim only ranks), then the check refutes it.",
        &["STO-8", "STO-26", "STO-27"],
        Some(ErrorClass::StorageCorrupt),
        input(&checkpoint_overclaimed(w, params, &honest)?),
    )?;
    case(
        f,
        "checkpoint-signed-by-another-device",
        "Writer 0's head manifest lists a checkpoint that writer 1 (a member) signed: \
         its signer is not the listing device.",
        &["STO-7", "STO-24"],
        Some(ErrorClass::StorageCorrupt),
        input(&checkpoint_signed_by_another(w, params, &honest)?),
    )?;
    let cp_path = path_where(&honest, |p, b| p.contains("/o/") && kind_of(b) == Some(5))?;
    let mut flipped = honest.clone();
    if let Some(b) = flipped.get_mut(&cp_path) {
        flip_middle(b);
    }
    case(
        f,
        "checkpoint-bit-flip",
        "One bit of the checkpoint object is flipped.",
        &["STO-5", "STO-24"],
        Some(ErrorClass::StorageCorrupt),
        input(&flipped),
    )?;
    // Two checkpoints of the document: writer 1's ranks first (greater coverage).
    let best = checkpoint_path_of(w, params, &two, 1)?;
    let lower = checkpoint_path_of(w, params, &two, 0)?;
    let shown = case(
        f,
        "checkpoint-two-best-shown",
        "Two writers' checkpoints of the document: the one claiming the greater coverage \
         (writer 1's) is shown and checked.",
        &["STO-26", "STO-27"],
        None,
        input(&two),
    )?;
    let best_id = best.rsplit('/').next().unwrap_or_default().to_string();
    if !shown.as_ref().is_some_and(|o| {
        o.pointer("/provisional/checkpointId")
            .and_then(Value::as_str)
            == Some(best_id.as_str())
    }) {
        return Err(format!(
            "checkpoint-two-best-shown: writer 1's checkpoint {best_id} is not the one shown"
        ));
    }
    let mut lower_flipped = two.clone();
    if let Some(b) = lower_flipped.get_mut(&lower) {
        flip_middle(b);
    }
    case(
        f,
        "checkpoint-lower-ranked-damaged-not-fetched",
        "Two writers' checkpoints of the document; the lower-ranked one is damaged. The \
         reader fetches only the best-ranked one, so it never sees the damage: no verdict.",
        &["STO-26"],
        None,
        input(&lower_flipped),
    )?;
    let mut best_flipped = two.clone();
    if let Some(b) = best_flipped.get_mut(&best) {
        flip_middle(b);
    }
    case(
        f,
        "checkpoint-best-damaged-falls-back",
        "Two writers' checkpoints of the document; the best-ranked one is damaged: it is \
         reported (the run's first verdict) and skipped, and the reader shows the other.",
        &["STO-5", "STO-26"],
        Some(ErrorClass::StorageCorrupt),
        input(&best_flipped),
    )?;
    Ok(())
}

/// The `checkpoint` operation: provisional view, then load and check.
async fn checkpoint(params: &Value, input: &Value) -> Result<Outcome, String> {
    let store = store_of(input).await?;
    let observer = get_arr(params, "observerSeed")?;
    let mut space = Space::new(
        store,
        LocalStore::in_memory().map_err(|e| e.to_string())?,
        space_config(params, observer, 0)?,
    )
    .map_err(|e| e.to_string())?;
    if let Err(e) = space.check_format().await {
        return Ok(Outcome::Rejected(class_of(&e)?));
    }
    let doc_id: [u8; 32] = get_arr(params, "docId")?;
    let cfg = replica_config(params, observer, [0; 32])?;
    let (chosen, errors) = space
        .checkpoints(
            |d| d == &doc_id,
            |cp| {
                Provisional::load(cfg.crdt, &cp.doc_id, &cfg.yjs_schema, &cp.state())
                    .map_err(|e| e.to_string())
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    if let Some(e) = errors.first() {
        return Ok(Outcome::Rejected(class_of(e)?));
    }
    let (cp, view) = chosen.get(&doc_id).ok_or("no checkpoint of the document")?;
    let state_digest = view.state_digest();
    let provisional = json!({
        "checkpointId": hex(cp.id),
        "stateDigest": hex(state_digest),
        "materialized": view.materialize().to_canonical_string(),
    });
    let report = space.pull().await.map_err(|e| e.to_string())?;
    if let Some(e) = report.errors.first() {
        return Ok(Outcome::Rejected(class_of(e)?));
    }
    let check_cfg = replica_config(params, observer, [0; 32])?;
    let check = space
        .check_checkpoint(cp, &state_digest, move |envs| {
            Replica::restore(check_cfg, envs).state_digest()
        })
        .await
        .map_err(|e| e.to_string())?;
    match check {
        CheckpointCheck::Matches => {}
        CheckpointCheck::Mismatch(e) => return Ok(Outcome::Rejected(class_of(&e)?)),
        CheckpointCheck::Undone(e) => return Err(format!("check undone: {e}")),
        other => {
            return Err(format!(
                "check outcome this generator does not know: {other:?}"
            ));
        }
    }
    let envs = space
        .documents()
        .map_err(|e| e.to_string())?
        .remove(&doc_id)
        .unwrap_or_default();
    let mut r = Replica::restore(cfg, &envs);
    Ok(Outcome::Accepted(json!({
        "provisional": provisional,
        "verified": {
            "stateDigest": hex(r.state_digest()),
            "historyDigest": hex(r.history_digest()),
            "materialized": r.materialize().to_canonical_string(),
        },
    })))
}

fn class_of(e: &StorageError) -> Result<ErrorClass, String> {
    e.class().ok_or_else(|| format!("operational error: {e}"))
}

async fn load(params: &Value, input: &Value) -> Result<Outcome, String> {
    let states = input
        .get("loads")
        .and_then(Value::as_array)
        .ok_or("missing loads")?;
    let mut space = Space::new(
        OpendalStore::memory().map_err(|e| e.to_string())?,
        LocalStore::in_memory().map_err(|e| e.to_string())?,
        space_config(params, get_arr(params, "observerSeed")?, 0)?,
    )
    .map_err(|e| e.to_string())?;
    for state in states {
        space = space.with_store(store_of(state).await?);
        if let Err(e) = space.check_format().await {
            return Ok(Outcome::Rejected(class_of(&e)?));
        }
        let report = space.pull().await.map_err(|e| e.to_string())?;
        if let Some(e) = report.errors.first() {
            return Ok(Outcome::Rejected(class_of(e)?));
        }
    }
    let doc_id: [u8; 32] = get_arr(params, "docId")?;
    let envs = space
        .documents()
        .map_err(|e| e.to_string())?
        .remove(&doc_id)
        .unwrap_or_default();
    let mut r = Replica::restore(
        replica_config(params, get_arr(params, "observerSeed")?, [0; 32])?,
        &envs,
    );
    Ok(Outcome::Accepted(json!({
        "stateDigest": hex(r.state_digest()),
        "historyDigest": hex(r.history_digest()),
        "materialized": r.materialize().to_canonical_string(),
    })))
}

/// Runs one case.
pub fn run(operation: &str, params: &Value, input: &Value) -> Result<Outcome, String> {
    match operation {
        "load" => block_on(load(params, input))?,
        "checkpoint" => block_on(checkpoint(params, input))?,
        other => Err(format!("unknown operation {other}")),
    }
}
