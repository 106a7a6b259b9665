//! One space on one storage backend (spec §9.6–§9.8: STO-11, STO-13, STO-14, STO-15, STO-25, STO-26, STO-27, STO-31): the IO shell around the
//! pure layout. A device records its envelopes locally (durable before anything
//! is sent), flushes them as a segment plus a new head manifest, pulls other
//! devices' manifests and segments (checking every head against its high-water
//! mark), cold-starts from the chosen snapshot plus later segments, and compacts.
//! At compaction it can write CRDT-state checkpoints, and a device starting cold
//! can read them for a provisional view and check them later (§9.7a).
//!
//! It keeps, beside its committed head manifest, a copy of every object that
//! manifest lists, and puts back what storage withheld or rolled back (STO-28,
//! [`Space::repair`]); readers' findings are typed ([`PullReport::alarms`]).
//!
//! A pull decodes each envelope once: the coverage check of a snapshot
//! (STO-31), the local store and, through [`Space::pull_received`], the reader
//! that opens them (`Replica::restore_received`) share that one decoding, and
//! the bytes stored are the bytes fetched, never re-encoded.

use std::collections::{BTreeMap, VecDeque};

use clientful_core::envelope::{self, ReceivedEnvelope};
use clientful_core::keys::{EpochKey, SigningKey};
pub use clientful_doc::checkpoint::State as CheckpointState;
use clientful_storage_layout::plan::{self, DecodedSnapshot, HeadRead, HeadRepair, short};
pub use clientful_storage_layout::plan::{Alarm, SEGMENT_TARGET_BYTES};
use futures_util::future::join_all;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::backend::BlobStore;
use crate::error::StorageError;
use crate::hwm::{HighWater, Withholding};
use crate::layout::{EpochStorage, FORMAT_PATH, ObjectId, object_id};
use crate::local::{CursorWrite, LocalStore};
use crate::object::{
    Checkpoint, CheckpointEntry, HeadManifest, Kind, MAX_OBJECT_BYTES, Opened, Snapshot,
    check_format_file, format_file, open_object, seal_object,
};

/// A high-water mark this device holds: (epoch id, signing device, mark) (STO-9).
pub type HeldMark = ([u8; 32], [u8; 32], HighWater);

/// Envelopes by document, each decoded once and kept with its bytes as
/// received, in stored order ([`Space::pull_received`],
/// [`Space::documents_received`]).
pub type ReceivedDocuments = BTreeMap<[u8; 32], Vec<ReceivedEnvelope>>;

/// Everything a [`Space`] is built from (membership supplies epochs and signers).
#[derive(Debug)]
pub struct SpaceConfig {
    /// Space id.
    pub space_id: [u8; 32],
    /// This device's signing key.
    pub device: SigningKey,
    /// The current epoch: new objects are written under it.
    pub epoch: EpochKey,
    /// Older epochs, still read.
    pub old_epochs: Vec<EpochKey>,
    /// Member device keys: the only accepted signers of stored objects.
    pub signers: Vec<[u8; 32]>,
    /// Seed of the nonce generator; `None` draws one from the OS.
    pub rng_seed: Option<[u8; 32]>,
}

/// What one [`Space::pull`] did.
#[derive(Debug, Default)]
pub struct PullReport {
    /// Envelopes stored locally that were new.
    pub new_envelopes: usize,
    /// Segments fetched.
    pub segments: usize,
    /// Snapshots loaded.
    pub snapshots: Vec<ObjectId>,
    /// Protocol verdicts (rollback, fork, withholding, corruption), one per
    /// failing object; everything else was still loaded and nothing local removed.
    pub errors: Vec<StorageError>,
    /// The head-manifest verdicts among `errors`, typed (STO-9): what a caller
    /// reports loudly.
    pub alarms: Vec<Alarm>,
}

/// What [`Space::repair`] found of this device's own files and put back (STO-28).
#[derive(Debug, Default)]
pub struct RepairReport {
    /// What storage had done, one alarm per epoch directory and kind.
    pub found: Vec<Alarm>,
    /// Head manifests uploaded again, byte for byte.
    pub heads: usize,
    /// Objects (segments, snapshots, checkpoints) uploaded again, byte for byte.
    pub objects: usize,
    /// Head manifests of this device found in storage with a higher counter than
    /// the committed one (its local store is older than its writes), adopted (STO-8).
    pub adopted: usize,
    /// What could not be put back (an object with no local copy, a fork under
    /// this device's key); nothing was overwritten for these.
    pub errors: Vec<StorageError>,
}

/// A checkpoint chosen for a provisional view (STO-26), and the epoch directory
/// it was read from (where its snapshot is fetched to check it, STO-27).
#[derive(Debug, Clone)]
pub struct ChosenCheckpoint {
    /// Its object id.
    pub id: ObjectId,
    /// The epoch whose directory holds it.
    pub epoch_id: [u8; 32],
    /// The device whose head manifest lists it, which signed it.
    pub device: [u8; 32],
    /// The document (from the manifest's signed entry).
    pub doc_id: [u8; 32],
    /// The total coverage of its snapshot, as the manifest's entry claims it
    /// (checked by STO-27).
    pub coverage: u64,
    /// The validated checkpoint body.
    pub checkpoint: Checkpoint,
}

impl ChosenCheckpoint {
    /// The state it carries, as the document layer loads it.
    pub fn state(&self) -> CheckpointState {
        CheckpointState {
            content_type: self.checkpoint.content_type,
            state: self.checkpoint.state.clone(),
        }
    }

    /// The head manifest entry it was chosen by.
    pub fn entry(&self) -> CheckpointEntry {
        CheckpointEntry {
            doc_id: self.doc_id,
            coverage: self.coverage,
            id: self.id,
        }
    }
}

/// The outcome of checking a checkpoint against its envelopes (STO-27).
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointCheck {
    /// The envelopes produce the state the checkpoint claims.
    Matches,
    /// They do not (or the snapshot's coverage is not the claimed one): a
    /// `STORAGE_CORRUPT` verdict naming the checkpoint and its signer.
    Mismatch(StorageError),
    /// The snapshot could not be fetched (collected since, or withheld): the
    /// check is undone, which is not a verdict about the checkpoint.
    Undone(StorageError),
}

/// A space on one backend, for one device.
pub struct Space<S: BlobStore> {
    store: S,
    local: LocalStore,
    space_id: [u8; 32],
    device: SigningKey,
    current: EpochStorage,
    epochs: Vec<EpochStorage>,
    signers: Vec<[u8; 32]>,
    rng: ChaCha20Rng,
}

impl<S: BlobStore> std::fmt::Debug for Space<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space")
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

/// The local-store key of this device's copy of its own object `id` in the
/// epoch directory `es` (STO-28).
fn obj_key(es: &EpochStorage, id: &ObjectId) -> String {
    format!("obj/{}/{}", es.dir(), hex::encode(id))
}

fn u64_cursor(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl<S: BlobStore> Space<S> {
    /// Opens a space over `store` with the device-local store `local`.
    pub fn new(store: S, local: LocalStore, cfg: SpaceConfig) -> Result<Self, StorageError> {
        let current = EpochStorage::derive(&cfg.space_id, &cfg.epoch)?;
        let mut epochs = vec![current.clone()];
        for e in &cfg.old_epochs {
            epochs.push(EpochStorage::derive(&cfg.space_id, e)?);
        }
        let seed = match cfg.rng_seed {
            Some(s) => s,
            None => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s).map_err(|e| StorageError::Local(e.to_string()))?;
                s
            }
        };
        Ok(Space {
            store,
            local,
            space_id: cfg.space_id,
            device: cfg.device,
            current,
            epochs,
            signers: cfg.signers,
            rng: ChaCha20Rng::from_seed(seed),
        })
    }

    /// The same space and local store over another backend (a copy of the storage,
    /// or the storage seen again later).
    pub fn with_store<T: BlobStore>(self, store: T) -> Space<T> {
        Space {
            store,
            local: self.local,
            space_id: self.space_id,
            device: self.device,
            current: self.current,
            epochs: self.epochs,
            signers: self.signers,
            rng: self.rng,
        }
    }

    /// Remembers `hw` as the high-water mark of `device` in the epoch `epoch_id`,
    /// as a device that learnt it elsewhere would (STO-9; the conformance
    /// harness hands a reader the marks it remembers). `Ok(false)` if this space
    /// does not know the epoch.
    pub fn remember_high_water(
        &self,
        epoch_id: &[u8; 32],
        device: &[u8; 32],
        hw: &HighWater,
    ) -> Result<bool, StorageError> {
        let Some(es) = self.epochs.iter().find(|e| e.epoch_id() == epoch_id) else {
            return Ok(false);
        };
        self.local.set_cursors(&[(
            Self::key("hwm", es, Some(device)),
            Some(hw.to_bytes().to_vec()),
        )])?;
        Ok(true)
    }

    /// The high-water marks this device holds of the signers (STO-9), as
    /// (epoch id, device, mark), in the order of the known epochs and signers.
    pub fn high_water(&self) -> Result<Vec<HeldMark>, StorageError> {
        let mut out = Vec::new();
        for es in &self.epochs {
            for dev in &self.signers {
                if let Some(hw) = self
                    .local
                    .cursor(&Self::key("hwm", es, Some(dev)))?
                    .and_then(|b| HighWater::from_bytes(&b))
                {
                    out.push((*es.epoch_id(), *dev, hw));
                }
            }
        }
        Ok(out)
    }

    /// The backend and the local store, e.g. to reopen the space with another set
    /// of epochs after a key rotation.
    pub fn into_parts(self) -> (S, LocalStore) {
        (self.store, self.local)
    }

    /// The backend.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The device-local store.
    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    /// The storage keys of the current epoch.
    pub fn current(&self) -> &EpochStorage {
        &self.current
    }

    /// Every epoch's storage keys, current first.
    pub fn epochs(&self) -> &[EpochStorage] {
        &self.epochs
    }

    /// The space id.
    pub fn space_id(&self) -> &[u8; 32] {
        &self.space_id
    }

    pub(crate) fn device(&self) -> &SigningKey {
        &self.device
    }

    pub(crate) fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    pub(crate) fn seal(
        &mut self,
        es: &EpochStorage,
        kind: Kind,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, StorageError> {
        seal_object(es, kind, &self.device, body, &mut self.rng)
    }

    /// Writes the format-version file if absent and checks it (STO-2).
    pub async fn init(&self) -> Result<(), StorageError> {
        match self.store.get(FORMAT_PATH).await? {
            Some(b) => check_format_file(&b),
            None => self.store.put_owned(FORMAT_PATH, format_file()).await,
        }
    }

    /// Checks the format-version file; `Ok(false)` if the storage is empty.
    pub async fn check_format(&self) -> Result<bool, StorageError> {
        match self.store.get(FORMAT_PATH).await? {
            Some(b) => check_format_file(&b).map(|()| true),
            None => Ok(false),
        }
    }

    /// Records this device's own envelopes: durable locally and queued for upload
    /// before the call returns (DOC-15).
    pub fn record(&self, envelopes: &[Vec<u8>]) -> Result<usize, StorageError> {
        Ok(self.local.put_envelopes(envelopes, true, &[])?.len())
    }

    fn key(kind: &str, es: &EpochStorage, device: Option<&[u8; 32]>) -> String {
        match device {
            Some(d) => format!("{kind}/{}/{}", es.dir(), hex::encode(d)),
            None => format!("{kind}/{}", es.dir()),
        }
    }

    fn own_manifest(&self) -> Result<HeadManifest, StorageError> {
        let es = &self.current;
        match self.local.cursor(&Self::key("own", es, None))? {
            Some(b) => HeadManifest::decode(&b, es, &self.device.public_bytes()),
            None => Ok(HeadManifest::empty(self.device.public_bytes())),
        }
    }

    /// Seals `own` as the next head manifest and commits it locally (with the
    /// outbox entries up to `upto` removed, and `objects`: the copies of the
    /// objects it lists or no longer lists, STO-28) before it is uploaded.
    fn commit_manifest(
        &mut self,
        own: &HeadManifest,
        upto: Option<u64>,
        objects: Vec<CursorWrite>,
    ) -> Result<(), StorageError> {
        let me = self.device.public_bytes();
        let es = self.current.clone();
        let body = own.encode(&es);
        let file = seal_object(&es, Kind::Head, &self.device, body.clone(), &mut self.rng)?;
        let hw = HighWater {
            counter: own.counter,
            digest: object_id(&file)?,
            segment_count: own.segment_count,
        };
        let mut writes: Vec<CursorWrite> = vec![
            (Self::key("own", &es, None), Some(body)),
            (Self::key("ownfile", &es, None), Some(file)),
            (Self::key("owndirty", &es, None), Some(vec![1])),
            (
                Self::key("hwm", &es, Some(&me)),
                Some(hw.to_bytes().to_vec()),
            ),
            (
                Self::key("have", &es, Some(&me)),
                Some(own.segment_count.to_be_bytes().to_vec()),
            ),
        ];
        writes.extend(objects);
        self.local.complete_outbox(upto, &writes)
    }

    /// Uploads the committed own head manifest if it is not known to be uploaded.
    async fn put_pending_manifest(&self) -> Result<(), StorageError> {
        let es = &self.current;
        if self
            .local
            .cursor(&Self::key("owndirty", es, None))?
            .is_none()
        {
            return Ok(());
        }
        if let Some(file) = self.local.cursor(&Self::key("ownfile", es, None))? {
            let path = es.head_path(&self.device.public_bytes())?;
            self.store.put_owned(&path, file).await?;
        }
        self.local
            .set_cursors(&[(Self::key("owndirty", es, None), None)])
    }

    /// Uploads the outbox as one segment and publishes a new head manifest
    /// (STO-10, STO-8). Returns the segment id, `None` if the outbox was empty.
    pub async fn flush(&mut self) -> Result<Option<ObjectId>, StorageError> {
        self.adopt_own_head().await?;
        self.put_pending_manifest().await?;
        let outbox = self.local.outbox()?;
        let mut last = None;
        // Split a large outbox so that no segment exceeds what readers accept.
        for batch in plan::segment_batches(outbox, |(_, b)| b.len(), SEGMENT_TARGET_BYTES) {
            let upto = batch.last().map(|(k, _)| *k).unwrap_or(0);
            let envelopes = batch.into_iter().map(|(_, b)| b).collect();
            last = Some(self.publish_segment(envelopes, Some(upto)).await?);
        }
        Ok(last)
    }

    /// Publishes `envelopes`, already stored locally, as segments of this epoch
    /// and a new head manifest, without touching the outbox: what a device
    /// writes into a directory other than its current epoch's (key-delivery
    /// carriers under a replaced epoch, a lobby, KEY-15). The manifest and the
    /// segments are committed to the local store like every other (STO-8,
    /// STO-28). Returns the last segment id, `None` if there was nothing.
    pub async fn publish(
        &mut self,
        envelopes: Vec<Vec<u8>>,
    ) -> Result<Option<ObjectId>, StorageError> {
        self.adopt_own_head().await?;
        self.put_pending_manifest().await?;
        let mut last = None;
        for batch in plan::segment_batches(envelopes, Vec::len, SEGMENT_TARGET_BYTES) {
            last = Some(self.publish_segment(batch, None).await?);
        }
        Ok(last)
    }

    async fn publish_segment(
        &mut self,
        envelopes: Vec<Vec<u8>>,
        upto: Option<u64>,
    ) -> Result<ObjectId, StorageError> {
        let mut own = self.own_manifest()?;
        let seg = plan::next_segment(&own, envelopes);
        let es = self.current.clone();
        let file = seal_object(
            &es,
            Kind::Segment,
            &self.device,
            seg.encode(&es),
            &mut self.rng,
        )?;
        let id = object_id(&file)?;
        let copy = (obj_key(&es, &id), Some(file.clone()));
        self.store.put_immutable(&es.object_path(&id), file).await?;
        plan::list_segment(&mut own, &seg, id);
        self.commit_manifest(&own, upto, vec![copy])?;
        self.put_pending_manifest().await?;
        Ok(id)
    }

    /// A device that lost its local store (or is restored from a backup) must not
    /// restart its counter (STO-8): before its first write it pulls, which loads its
    /// own earlier segments, and continues from its head manifest in storage.
    async fn adopt_own_head(&mut self) -> Result<(), StorageError> {
        let es = self.current.clone();
        if self.local.cursor(&Self::key("own", &es, None))?.is_some() {
            return Ok(());
        }
        // A head at its own path that fails the checks of STO-7 (damaged, or
        // another epoch's manifest moved here, STO-6) is treated as absent: the
        // device starts its manifest of this epoch afresh rather than stopping.
        let (m, file) = match self.own_head_file(&es).await {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(()),
            Err(e) if e.class().is_some() => return Ok(()),
            Err(e) => return Err(e),
        };
        // Verdicts about other devices surface on the caller's next pull; this
        // device's own objects are what matters here.
        let _report = self.pull().await?;
        self.local.set_cursors(&[
            (Self::key("own", &es, None), Some(m.encode(&es))),
            (Self::key("ownfile", &es, None), Some(file)),
        ])
    }

    /// This device's head manifest in `es` as storage holds it, with its file
    /// bytes; `None` if absent.
    async fn own_head_file(
        &self,
        es: &EpochStorage,
    ) -> Result<Option<(HeadManifest, Vec<u8>)>, StorageError> {
        let me = self.device.public_bytes();
        let Some(bytes) = self.store.get(&es.head_path(&me)?).await? else {
            return Ok(None);
        };
        let opened = open_object(es, Kind::Head, &bytes, &[me])?;
        let m = HeadManifest::decode(&opened.body, es, &me)?;
        Ok(Some((m, bytes)))
    }

    /// Puts back what storage withheld or rolled back of this device's own files,
    /// in every epoch directory where it has committed a head manifest (STO-28):
    /// each object its committed manifest lists that is absent is uploaded
    /// again from the local copy, then the committed manifest itself when its
    /// path is absent, holds a lower counter, or holds bytes that are not this
    /// device's manifest. Everything is uploaded byte for byte, never re-sealed,
    /// so a reader's high-water mark (STO-9) accepts it; running it again
    /// uploads nothing. A manifest of this device with a higher counter is
    /// adopted (its local store is older than its writes, STO-8); one with the
    /// same counter and other bytes is a fork under its key: reported, not
    /// overwritten. Costs one read of the head and one existence check per
    /// listed object, per directory.
    pub async fn repair(&mut self) -> Result<RepairReport, StorageError> {
        let mut report = RepairReport::default();
        for es in self.epochs.clone() {
            self.repair_epoch(&es, &mut report).await?;
        }
        Ok(report)
    }

    async fn repair_epoch(
        &mut self,
        es: &EpochStorage,
        report: &mut RepairReport,
    ) -> Result<(), StorageError> {
        let me = self.device.public_bytes();
        let (Some(file), Some(body)) = (
            self.local.cursor(&Self::key("ownfile", es, None))?,
            self.local.cursor(&Self::key("own", es, None))?,
        ) else {
            return Ok(());
        };
        let own = HeadManifest::decode(&body, es, &me)?;
        let alarm = |kind| Alarm {
            epoch_id: *es.epoch_id(),
            device: me,
            kind,
        };
        let ids = plan::listed_objects(&own);
        let store = &self.store;
        let present = join_all(
            ids.iter()
                .map(|id| async move { store.exists(&es.object_path(id)).await }),
        )
        .await;
        let mut missing = false;
        for (id, there) in ids.iter().zip(present) {
            if there? {
                continue;
            }
            missing = true;
            match self.local.cursor(&obj_key(es, id))? {
                Some(bytes) => {
                    self.store.put_immutable(&es.object_path(id), bytes).await?;
                    report.objects += 1;
                }
                None => report.errors.push(plan::no_local_copy(id)),
            }
        }
        if missing {
            report.found.push(alarm(Withholding::ObjectWithheld));
        }
        let path = es.head_path(&me)?;
        let stored = self.store.get(&path).await?;
        let fault = match plan::repair_head(es, &me, &own, &file, stored.as_deref())? {
            HeadRepair::InPlace => return Ok(()),
            HeadRepair::Upload(fault) => fault,
            HeadRepair::Forked(e) => {
                report.found.push(alarm(Withholding::HeadForked));
                report.errors.push(e);
                return Ok(());
            }
            HeadRepair::Adopt(m, hw) => {
                self.local.set_cursors(&[
                    (Self::key("own", es, None), Some(m.encode(es))),
                    (Self::key("ownfile", es, None), stored),
                    (
                        Self::key("hwm", es, Some(&me)),
                        Some(hw.to_bytes().to_vec()),
                    ),
                ])?;
                report.adopted += 1;
                return Ok(());
            }
        };
        self.store.put_owned(&path, file).await?;
        report.heads += 1;
        report.found.push(alarm(fault));
        Ok(())
    }

    /// [`Space::checked_heads`] for readers that move no mark: the manifests
    /// alone, their alarms dropped (the caller's next pull reports them).
    async fn checked_manifests(
        &self,
        es: &EpochStorage,
        errors: &mut Vec<StorageError>,
    ) -> Result<Vec<HeadManifest>, StorageError> {
        Ok(self
            .checked_heads(es, errors, &mut Vec::new())
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    /// Every member device's head manifest in the epoch, read concurrently (the
    /// reads are independent; on remote storage their latencies would add up)
    /// and checked against its high-water mark (STO-9, [`plan::accept_heads`]):
    /// the accepted manifests with their new marks, which the caller persists or
    /// not. Verdicts go to `errors`.
    async fn checked_heads(
        &self,
        es: &EpochStorage,
        errors: &mut Vec<StorageError>,
        alarms: &mut Vec<Alarm>,
    ) -> Result<Vec<(HeadManifest, HighWater)>, StorageError> {
        let reads = join_all(self.signers.iter().map(|d| self.read_head(es, d))).await;
        let mut checked = Vec::with_capacity(reads.len());
        for (dev, read) in self.signers.iter().zip(reads) {
            let previous = self
                .local
                .cursor(&Self::key("hwm", es, Some(dev)))?
                .and_then(|b| HighWater::from_bytes(&b));
            checked.push(HeadRead {
                device: *dev,
                previous,
                read,
            });
        }
        plan::accept_heads(es, checked, errors, alarms)
    }

    async fn read_head(
        &self,
        es: &EpochStorage,
        device: &[u8; 32],
    ) -> Result<Option<(HeadManifest, ObjectId)>, StorageError> {
        let path = es.head_path(device)?;
        let bytes = self.store.get(&path).await?;
        plan::read_head(es, &self.signers, device, &path, bytes.as_deref())
    }

    /// Fetches an object named by a signed manifest and checks its address.
    pub(crate) async fn fetch_object(
        &self,
        es: &EpochStorage,
        kind: Kind,
        id: &ObjectId,
        what: &str,
    ) -> Result<Opened, StorageError> {
        let bytes = self.store.get(&es.object_path(id)).await?;
        plan::open_fetched(es, kind, id, what, bytes.as_deref(), &self.signers)
    }

    /// Fetches a snapshot listed by `owner`, decodes its envelopes once and checks
    /// its covers against the accepted head manifests `heads` (STO-31): the
    /// snapshot with the covers a reader may use, or `STORAGE_CORRUPT` when a
    /// cover is refuted.
    async fn fetch_verified_snapshot(
        &self,
        es: &EpochStorage,
        owner: &[u8; 32],
        id: &ObjectId,
        heads: &[HeadManifest],
    ) -> Result<(DecodedSnapshot, BTreeMap<[u8; 32], u64>), StorageError> {
        let snap = self.fetch_snapshot(es, owner, id).await?;
        plan::verify_snapshot(&plan::snapshot_what(owner, id), snap, heads)
    }

    async fn fetch_snapshot(
        &self,
        es: &EpochStorage,
        owner: &[u8; 32],
        id: &ObjectId,
    ) -> Result<Snapshot, StorageError> {
        let what = plan::snapshot_what(owner, id);
        let o = self.fetch_object(es, Kind::Snapshot, id, &what).await?;
        plan::accept_snapshot(es, owner, id, o)
    }

    /// Stores envelopes from storage, decoded once, with cursor updates, and
    /// reports `verdict` (on the entries that did not decode, never stored). The
    /// new ones go to `sink` when the caller takes them.
    fn ingest(
        &self,
        envelopes: Vec<ReceivedEnvelope>,
        verdict: Option<StorageError>,
        cursors: &[CursorWrite],
        report: &mut PullReport,
        sink: Option<&mut ReceivedDocuments>,
    ) -> Result<(), StorageError> {
        report.errors.extend(verdict);
        let fresh = self.local.put_received(envelopes, false, cursors)?;
        report.new_envelopes += fresh.len();
        if let Some(sink) = sink {
            for e in fresh {
                sink.entry(e.decoded().header.doc_id).or_default().push(e);
            }
        }
        Ok(())
    }

    /// Stores a snapshot's envelopes and moves `have(D)` up to its verified
    /// covers (STO-14 step 2, STO-31), never to what it merely claims.
    #[allow(clippy::too_many_arguments)]
    fn load_snapshot(
        &self,
        es: &EpochStorage,
        id: &ObjectId,
        snap: DecodedSnapshot,
        covers: &BTreeMap<[u8; 32], u64>,
        have: &mut BTreeMap<[u8; 32], u64>,
        report: &mut PullReport,
        sink: Option<&mut ReceivedDocuments>,
    ) -> Result<(), StorageError> {
        let writes: Vec<CursorWrite> = plan::advance_have(covers, have)
            .into_iter()
            .map(|(d, c)| {
                (
                    Self::key("have", es, Some(&d)),
                    Some(c.to_be_bytes().to_vec()),
                )
            })
            .collect();
        let verdict = snap.verdict(&format!("snapshot {}", short(id)));
        self.ingest(snap.envelopes, verdict, &writes, report, sink)?;
        report.snapshots.push(*id);
        Ok(())
    }

    /// Reads every member's head manifest in every known epoch, checks each against
    /// its high-water mark, and loads what is new: the chosen snapshot when
    /// starting cold or when segments were collected, then later segments
    /// (STO-9, STO-13, STO-14). Verdicts are collected in the report; local data is
    /// never removed.
    pub async fn pull(&mut self) -> Result<PullReport, StorageError> {
        let mut report = PullReport::default();
        for es in self.epochs.clone() {
            self.pull_epoch(&es, &mut report, None).await?;
        }
        Ok(report)
    }

    /// [`Space::pull`], handing over the envelopes it stored that were new, by
    /// document in stored order, each decoded once on its way in (the decoding
    /// the coverage check and the local store used), with their bytes as
    /// received: a reader opens them with `Replica::restore_received` without
    /// decoding them again. On a device that starts cold (an empty local store)
    /// they are exactly what [`Space::documents`] returns afterwards, in the same
    /// order; otherwise only the new ones.
    pub async fn pull_received(&mut self) -> Result<(PullReport, ReceivedDocuments), StorageError> {
        let mut report = PullReport::default();
        let mut received = ReceivedDocuments::new();
        for es in self.epochs.clone() {
            self.pull_epoch(&es, &mut report, Some(&mut received))
                .await?;
        }
        Ok((report, received))
    }

    async fn pull_epoch(
        &self,
        es: &EpochStorage,
        report: &mut PullReport,
        mut sink: Option<&mut ReceivedDocuments>,
    ) -> Result<(), StorageError> {
        let mut heads = Vec::new();
        for (m, hw) in self
            .checked_heads(es, &mut report.errors, &mut report.alarms)
            .await?
        {
            self.local.set_cursors(&[(
                Self::key("hwm", es, Some(&m.device)),
                Some(hw.to_bytes().to_vec()),
            )])?;
            heads.push(m);
        }
        let mut have = BTreeMap::new();
        for dev in &self.signers {
            have.insert(
                *dev,
                u64_cursor(self.local.cursor(&Self::key("have", es, Some(dev)))?),
            );
        }
        if plan::needs_snapshot(&heads, &have) {
            // Every listed snapshot is fetched and its covers checked against the
            // devices' own attestations (STO-31); a refuted one is reported and
            // never loaded, and the choice compares verified coverage (STO-13).
            let mut cands: Vec<plan::Candidate> = Vec::new();
            for (owner, sid) in plan::listed_snapshots(&heads) {
                match self.fetch_verified_snapshot(es, &owner, &sid, &heads).await {
                    Ok((s, covers)) => cands.push((sid, s, covers)),
                    Err(e) if e.class().is_some() => report.errors.push(e),
                    Err(e) => return Err(e),
                }
            }
            if let Some(pos) = plan::choose_snapshot(&cands) {
                let (id, snap, covers) = cands.swap_remove(pos);
                self.load_snapshot(
                    es,
                    &id,
                    snap,
                    &covers,
                    &mut have,
                    report,
                    sink.as_deref_mut(),
                )?;
            }
            for m in &heads {
                let Some(base) = plan::base_snapshot_needed(m, &have) else {
                    continue;
                };
                let snap = match cands.iter().position(|(id, _, _)| *id == base) {
                    Some(pos) => {
                        let (_, s, covers) = cands.swap_remove(pos);
                        Ok((s, covers))
                    }
                    None => {
                        self.fetch_verified_snapshot(es, &m.device, &base, &heads)
                            .await
                    }
                };
                match snap {
                    Ok((s, covers)) if plan::base_covers_collected(m, &covers) => self
                        .load_snapshot(
                            es,
                            &base,
                            s,
                            &covers,
                            &mut have,
                            report,
                            sink.as_deref_mut(),
                        )?,
                    Ok(_) => report.errors.push(plan::base_too_short(&base)),
                    Err(e) if e.class().is_some() => report.errors.push(e),
                    Err(e) => return Err(e),
                }
            }
        }
        for m in &heads {
            let h = have.get(&m.device).copied().unwrap_or(0);
            let todo = match plan::segments_to_fetch(m, h) {
                Ok(t) => t,
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            };
            for (index, sid) in todo {
                let what = plan::segment_what(m, index);
                let opened = match self.fetch_object(es, Kind::Segment, &sid, &what).await {
                    Ok(o) => o,
                    Err(e) if e.class().is_some() => {
                        report.errors.push(e);
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let seg = match plan::accept_segment(es, m, index, &what, opened) {
                    Ok(s) => s,
                    Err(e) => {
                        report.errors.push(e);
                        break;
                    }
                };
                let cursor = (
                    Self::key("have", es, Some(&m.device)),
                    Some((index + 1).to_be_bytes().to_vec()),
                );
                let (good, verdict) = plan::decodable(&what, seg.envelopes);
                self.ingest(good, verdict, &[cursor], report, sink.as_deref_mut())?;
                report.segments += 1;
            }
        }
        Ok(())
    }

    /// Compacts: writes a snapshot of every envelope this device holds, covering the
    /// segments it has loaded, checks it reads back, then publishes a head manifest
    /// that collects this device's own segments and older snapshots, and deletes
    /// them (STO-15). Other devices' objects are never touched, so an edit made
    /// concurrently stays in its segment and is loaded after the snapshot.
    pub async fn compact(&mut self) -> Result<ObjectId, StorageError> {
        Ok(self.compact_with(|_, _| None).await?.0)
    }

    /// Compacts as [`Space::compact`] and also writes checkpoints (STO-25): for
    /// each document with envelopes in the new snapshot, `checkpoint` is given the
    /// document id and exactly the snapshot's envelopes of that document, in the
    /// snapshot's order, and returns the state a replica reaches from them (or
    /// `None` for no checkpoint). Returns the snapshot id and the checkpoint ids.
    pub async fn compact_with(
        &mut self,
        mut checkpoint: impl FnMut(&[u8; 32], &[Vec<u8>]) -> Option<CheckpointState>,
    ) -> Result<(ObjectId, Vec<ObjectId>), StorageError> {
        self.flush().await?;
        let es = self.current.clone();
        let me = self.device.public_bytes();
        let covers = plan::snapshot_covers(&self.signers, |d| {
            Ok(u64_cursor(self.local.cursor(&Self::key(
                "have",
                &es,
                Some(d),
            ))?))
        })?;
        let snap = plan::build_snapshot(me, covers, self.local.all_envelopes()?);
        let file = seal_object(
            &es,
            Kind::Snapshot,
            &self.device,
            snap.encode(&es),
            &mut self.rng,
        )?;
        if file.len() > MAX_OBJECT_BYTES {
            // Readers refuse objects above the limit (STO-7): writing it would lose
            // nothing but would collect segments into an unreadable snapshot.
            return Err(StorageError::Local(format!(
                "snapshot of {} bytes exceeds the {MAX_OBJECT_BYTES}-byte object limit; not compacting",
                file.len()
            )));
        }
        let id = object_id(&file)?;
        let mut copies: Vec<CursorWrite> = vec![(obj_key(&es, &id), Some(file.clone()))];
        self.store.put_immutable(&es.object_path(&id), file).await?;
        // Durable and readable before anything is collected.
        self.fetch_snapshot(&es, &me, &id).await?;
        let coverage = snap.coverage();
        let by_doc = plan::by_document(snap.envelopes);
        let mut checkpoints = Vec::new();
        for (doc_id, envs) in &by_doc {
            let Some(st) = checkpoint(doc_id, envs) else {
                continue;
            };
            let cp = Checkpoint {
                content_type: st.content_type,
                snapshot: id,
                state: st.state,
            };
            let file = seal_object(
                &es,
                Kind::Checkpoint,
                &self.device,
                cp.encode(),
                &mut self.rng,
            )?;
            if file.len() > MAX_OBJECT_BYTES {
                continue;
            }
            let cid = object_id(&file)?;
            copies.push((obj_key(&es, &cid), Some(file.clone())));
            self.store
                .put_immutable(&es.object_path(&cid), file)
                .await?;
            checkpoints.push(CheckpointEntry {
                doc_id: *doc_id,
                coverage,
                id: cid,
            });
        }
        let checkpoints = plan::checkpoint_entries(checkpoints);
        let (own, collected) =
            plan::compacted_manifest(&self.own_manifest()?, id, checkpoints.clone());
        // The copies of what the new manifest no longer lists go with it.
        copies.extend(collected.all().map(|o| (obj_key(&es, o), None)));
        self.commit_manifest(&own, None, copies)?;
        self.put_pending_manifest().await?;
        for o in collected.all() {
            self.store.delete(&es.object_path(o)).await?;
        }
        Ok((id, checkpoints.into_iter().map(|c| c.id).collect()))
    }

    /// The checkpoints a device starting cold shows (STO-26), for every document
    /// `wanted` accepts. Per document, the entries for it in the accepted head
    /// manifests of the current epoch are ranked (greatest coverage, then
    /// smallest object id; older epochs only for a document none of whose
    /// current-epoch checkpoints passed), and only the best is fetched and checked
    /// (STO-7, STO-24) and given to `load`, which loads its state as the caller
    /// shows it. One that fails (or whose state `load` refuses: "does not load")
    /// is `STORAGE_CORRUPT`, returned in the verdicts, and skipped: the next is
    /// tried. Checkpoints of other documents and lower-ranked ones are never
    /// fetched. Heads are checked against the high-water marks but no mark is
    /// moved (the pull does that). Verdicts on objects are returned, not fatal.
    #[allow(clippy::type_complexity)]
    pub async fn checkpoints<T>(
        &self,
        wanted: impl Fn(&[u8; 32]) -> bool,
        mut load: impl FnMut(&ChosenCheckpoint) -> Result<T, String>,
    ) -> Result<(BTreeMap<[u8; 32], (ChosenCheckpoint, T)>, Vec<StorageError>), StorageError> {
        let mut chosen: BTreeMap<[u8; 32], (ChosenCheckpoint, T)> = BTreeMap::new();
        let mut errors = Vec::new();
        for es in &self.epochs {
            // Heads are checked against the marks, but no mark moves: the pull does
            // that. The caller's next pull reports the alarms; here they stay errors.
            let heads = self.checked_manifests(es, &mut errors).await?;
            let mut queues: BTreeMap<[u8; 32], VecDeque<plan::ListedCheckpoint>> =
                plan::checkpointed_documents(&heads)
                    .into_iter()
                    .filter(|d| wanted(d) && !chosen.contains_key(d))
                    .map(|d| (d, plan::ranked_checkpoints(&heads, &d).into()))
                    .collect();
            // Rounds: each document's next-best candidate, fetched concurrently
            // across documents; a document leaves once one passes.
            loop {
                let round: Vec<plan::ListedCheckpoint> = queues
                    .values_mut()
                    .filter_map(VecDeque::pop_front)
                    .collect();
                if round.is_empty() {
                    break;
                }
                let fetched = join_all(round.iter().map(|c| async move {
                    let what = plan::checkpoint_what(&c.device, &c.entry.id);
                    let got = self
                        .fetch_object(es, Kind::Checkpoint, &c.entry.id, &what)
                        .await;
                    (what, got)
                }))
                .await;
                for (c, (what, got)) in round.iter().zip(fetched) {
                    let Some(m) = heads.iter().find(|m| m.device == c.device) else {
                        continue;
                    };
                    let cp = match got.and_then(|o| plan::accept_checkpoint(m, &what, o)) {
                        Ok(cp) => cp,
                        Err(e) if e.class().is_some() => {
                            errors.push(e);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let candidate = ChosenCheckpoint {
                        id: c.entry.id,
                        epoch_id: *es.epoch_id(),
                        device: c.device,
                        doc_id: c.entry.doc_id,
                        coverage: c.entry.coverage,
                        checkpoint: cp,
                    };
                    match load(&candidate) {
                        Ok(shown) => {
                            queues.remove(&c.entry.doc_id);
                            chosen.insert(c.entry.doc_id, (candidate, shown));
                        }
                        Err(reason) => errors.push(StorageError::corrupt(
                            what,
                            format!("its state does not load: {reason}"),
                        )),
                    }
                }
            }
        }
        Ok((chosen, errors))
    }

    /// Checks a checkpoint that was shown (STO-27): fetches its snapshot through
    /// the checkpoint device's listing, checks the coverage its manifest entry
    /// claims, and gives `rebuild` exactly the snapshot's envelopes of the
    /// document, in order; the `StateDigest` it returns must be `state_digest`,
    /// the digest of the checkpoint's state as the reader loaded it.
    pub async fn check_checkpoint(
        &self,
        chosen: &ChosenCheckpoint,
        state_digest: &[u8; 32],
        rebuild: impl FnOnce(&[Vec<u8>]) -> [u8; 32],
    ) -> Result<CheckpointCheck, StorageError> {
        let cp = &chosen.checkpoint;
        let what = plan::checkpoint_what(&chosen.device, &chosen.id);
        let Some(es) = self
            .epochs
            .iter()
            .find(|e| e.epoch_id() == &chosen.epoch_id)
        else {
            return Ok(CheckpointCheck::Undone(StorageError::Local(format!(
                "{what}: its epoch is not held"
            ))));
        };
        let snap = match self.fetch_snapshot(es, &chosen.device, &cp.snapshot).await {
            Ok(s) => s,
            Err(e) if e.class().is_some() => return Ok(CheckpointCheck::Undone(e)),
            Err(e) => return Err(e),
        };
        // The snapshot's covers must hold against the devices' attestations
        // (STO-31): a checkpoint built on an overclaiming snapshot is a lie too.
        let mut errors = Vec::new();
        let heads = self.checked_manifests(es, &mut errors).await?;
        Ok(
            match plan::check_checkpoint_claim(
                &what,
                &chosen.entry(),
                state_digest,
                snap,
                &heads,
                rebuild,
            ) {
                Ok(()) => CheckpointCheck::Matches,
                Err(e) => CheckpointCheck::Mismatch(e),
            },
        )
    }

    /// The envelopes held locally, grouped by document, in stored order (from
    /// which `Replica::restore` rebuilds each document).
    pub fn documents(&self) -> Result<BTreeMap<[u8; 32], Vec<Vec<u8>>>, StorageError> {
        let mut out: BTreeMap<[u8; 32], Vec<Vec<u8>>> = BTreeMap::new();
        for e in self.local.all_envelopes()? {
            let d = envelope::decode(&e)?;
            out.entry(d.header.doc_id).or_default().push(e);
        }
        Ok(out)
    }

    /// [`Space::documents`] with each envelope kept decoded (decoded once here,
    /// to group it), from which `Replica::restore_received` rebuilds each
    /// document without decoding again.
    pub fn documents_received(&self) -> Result<ReceivedDocuments, StorageError> {
        let mut out = ReceivedDocuments::new();
        for e in self.local.all_envelopes()? {
            let r = ReceivedEnvelope::decode(e)?;
            out.entry(r.decoded().header.doc_id).or_default().push(r);
        }
        Ok(out)
    }
}

/// The devices that wrote head manifests in a lobby directory (STO-23): the
/// directory of an invite epoch or a device link epoch, whose writers are not
/// members yet. Lists `dir/h/`, opens each head manifest (every STO-7 check but
/// membership) and keeps the signers whose head tag is the file's path. A head
/// that fails is reported, never fatal: storage can withhold, not forge.
pub async fn lobby_writers<S: BlobStore>(
    store: &S,
    es: &EpochStorage,
) -> Result<(Vec<[u8; 32]>, Vec<StorageError>), StorageError> {
    let prefix = format!("{}/h/", es.dir());
    let mut writers = Vec::new();
    let mut errors = Vec::new();
    for path in store.list(&prefix).await? {
        let Some(bytes) = store.get(&path).await? else {
            continue;
        };
        match plan::lobby_writer(es, &path, &bytes) {
            Ok(signer) => {
                if !writers.contains(&signer) {
                    writers.push(signer);
                }
            }
            Err(e) if e.class().is_some() => errors.push(e),
            Err(e) => return Err(e),
        }
    }
    writers.sort_unstable();
    Ok((writers, errors))
}
