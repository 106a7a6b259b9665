//! The sync loop: the session core's [`SyncExchange`] decides what to repair,
//! deliver, pull and flush, and when another round is needed (spec §9: STO-8,
//! STO-9, STO-23, STO-26..STO-28, KEY-15); this shell does each step against
//! the storage backend and the device-local store, and turns what the sync
//! found into a [`SyncReport`] and [`Change`]s. Compaction (§9.8) too.

use std::collections::BTreeMap;

use clientful_core::envelope;
use clientful_core::keys::EpochKey;
use clientful_core::membership::PendingAdmission;
use clientful_doc::checkpoint::{self, Provisional};
use clientful_doc::crdt::YjsSchema;
use clientful_session::{Delivery, EpochView, SyncExchange, SyncStep};
use clientful_storage::layout::EpochStorage;
use clientful_storage::space::{CheckpointCheck, ChosenCheckpoint, SpaceConfig, lobby_writers};
use clientful_storage::{LocalStore, Space};

use super::documents::restored;
use super::{Alarm, Change, MembershipAlarm, SpaceSession, StaleWriter, lend, now_ms};
use crate::error::ClientError;

/// What one [`SpaceSession::sync`] did.
#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    /// Envelopes new to this device.
    pub received: usize,
    /// Segments read.
    pub segments: usize,
    /// Segments written (current epoch, replaced epochs and lobbies).
    pub uploaded: usize,
    /// Storage verdicts (rollback, fork, withholding, corruption): reported,
    /// never fatal; nothing local is removed.
    pub warnings: Vec<String>,
    /// Epoch keys held after the sync.
    pub epochs_held: usize,
    /// Whether this device can read and write the space (holds its current key).
    pub has_access: bool,
    /// Newer epochs this device was not given a key for (KEY-4): it was
    /// removed or revoked, and reads nothing written under them.
    pub locked_out: usize,
    /// Users this device admitted (MEM-25).
    pub admitted: Vec<[u8; 32]>,
    /// Redemptions waiting for an admin: rivals for one single-use invite, or
    /// any while admissions need confirmation ([`SpaceSession::admit`]).
    pub awaiting_admission: Vec<PendingAdmission>,
    /// Redemptions refused (a used single-use invite, a closed invite, a lost
    /// concurrent admission): the user and the redemption.
    pub refused: Vec<([u8; 32], [u8; 32])>,
    /// Invites this device revoked because their expiry passed (MEM-22).
    pub expired_invites: usize,
    /// Head manifests of other devices that storage withheld, rolled back or
    /// forked, as this device's high-water marks show it (STO-9). Each also
    /// comes as a [`Change::Withholding`]. Not an error of the sync, but
    /// something the user must be told: members may be kept from a removal or
    /// an edit, and only the owner of those files can put them back.
    pub withholding: Vec<Alarm>,
    /// This device's own files that storage had withheld or rolled back, found
    /// and put back at the start of the sync (STO-28); each also comes as a
    /// [`Change::Withholding`] naming this device.
    pub repaired: Vec<Alarm>,
    /// Files of this device (head manifests, segments, snapshots, checkpoints)
    /// uploaded again for `repaired`.
    pub reuploaded: usize,
    /// Members still writing under an epoch that a rotation this device already
    /// held had replaced: they have not seen the rotation (offline, or storage
    /// withholds it from them). Each also comes as a [`Change::StaleEpoch`].
    pub stale_writers: Vec<StaleWriter>,
    /// Membership evidence recorded on this device so far (see
    /// [`SpaceSession::membership_alarms`]); those new in this sync also come
    /// as [`Change::Evidence`].
    pub membership_alarms: Vec<MembershipAlarm>,
}

/// What [`SpaceSession::compact`] did.
#[derive(Debug, Clone, Default)]
pub struct CompactReport {
    /// The snapshot written (None when the device holds no key of the space).
    pub snapshot: Option<[u8; 32]>,
    /// Checkpoints written, one per document (spec §9.7a).
    pub checkpoints: usize,
}

impl SpaceSession {
    /// The storage configuration of a directory the session core named.
    fn config(&mut self, view: EpochView) -> SpaceConfig {
        SpaceConfig {
            space_id: self.space_id,
            device: self.device(),
            epoch: view.epoch,
            old_epochs: view.old_epochs,
            signers: view.signers,
            rng_seed: Some(self.seed()),
        }
    }

    /// Runs `f` on the space opened at the current epoch (all held epochs
    /// readable); `None` if the device holds no key of the space yet.
    pub(super) async fn with_main<T>(
        &mut self,
        f: impl AsyncFnOnce(
            &mut Space<clientful_storage::OpendalStore>,
        ) -> Result<T, clientful_storage::StorageError>,
    ) -> Result<Option<T>, ClientError> {
        let Some(view) = self.core.current_view() else {
            return Ok(None);
        };
        self.on(view, f).await.map(Some)
    }

    /// Runs `f` on the space opened at `view`.
    async fn on<T>(
        &mut self,
        view: EpochView,
        f: impl AsyncFnOnce(
            &mut Space<clientful_storage::OpendalStore>,
        ) -> Result<T, clientful_storage::StorageError>,
    ) -> Result<T, ClientError> {
        let cfg = self.config(view);
        lend(&mut self.local, self.store.clone(), cfg, f).await
    }

    /// Runs `f` on the space opened over the device-local store at `epochs`
    /// (the first is written to) with this device as the only signer: the
    /// directories this device writes outside the current epoch's.
    async fn with_own<T>(
        &mut self,
        epochs: Vec<EpochKey>,
        f: impl AsyncFnOnce(
            &mut Space<clientful_storage::OpendalStore>,
        ) -> Result<T, clientful_storage::StorageError>,
    ) -> Result<Option<T>, ClientError> {
        let mut epochs = epochs.into_iter();
        let Some(epoch) = epochs.next() else {
            return Ok(None);
        };
        let view = EpochView {
            epoch,
            old_epochs: epochs.collect(),
            signers: vec![self.device_key],
        };
        self.on(view, f).await.map(Some)
    }

    /// Publishes carriers (already stored locally) into the directory of
    /// `epoch`: a replaced epoch or a lobby (KEY-15). The head manifest and
    /// segments are committed in the device-local store like the current
    /// epoch's, so a rollback there is detected and repaired (STO-8, STO-28).
    async fn write_to(&mut self, d: &Delivery) -> Result<usize, ClientError> {
        let envelopes = d.envelopes.clone();
        let written = self
            .with_own(vec![d.epoch.clone()], async move |space| {
                space.init().await?;
                space.publish(envelopes).await
            })
            .await?;
        Ok(usize::from(written.flatten().is_some()))
    }

    /// Writes each delivery; those written leave the core's pending list. A
    /// failure is returned once every delivery was tried.
    async fn deliver(
        &mut self,
        deliveries: Vec<Delivery>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        let mut first_err = None;
        for d in deliveries {
            match self.write_to(&d).await {
                Ok(n) => {
                    report.uploaded += n;
                    self.core.delivered(d.epoch.id(), &d.envelopes);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.apply()?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Puts back what storage withheld or rolled back of this device's own
    /// files (STO-28) and reports it.
    async fn repair_own(
        &mut self,
        epochs: Vec<EpochKey>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        let Some(r) = self.with_own(epochs, async |s| s.repair().await).await? else {
            return Ok(());
        };
        report.reuploaded += r.heads + r.objects;
        report
            .warnings
            .extend(r.errors.iter().map(|e| e.to_string()));
        for a in r.found {
            self.notify_alarm(&a);
            report.repaired.push(a);
        }
        Ok(())
    }

    /// Records a withholding alarm once per sync and tells subscribers. This
    /// device's own head was repaired before the pull, so it only shows here
    /// when it could not be (a fork under its key).
    fn alarm(&self, report: &mut SyncReport, a: Alarm) {
        if report.withholding.contains(&a) || report.repaired.contains(&a) {
            return;
        }
        report.withholding.push(a);
        self.notify_alarm(&a);
    }

    fn notify_alarm(&self, a: &Alarm) {
        self.notify(Change::Withholding {
            device: a.device,
            epoch: a.epoch_id,
            kind: a.kind,
        });
    }

    /// Pulls the directory of the current epoch; returns the envelopes new here.
    async fn pull(
        &mut self,
        view: EpochView,
        report: &mut SyncReport,
    ) -> Result<usize, ClientError> {
        let r = self.on(view, async |s| s.pull().await).await?;
        report.received += r.new_envelopes;
        report.segments += r.segments;
        report
            .warnings
            .extend(r.errors.iter().map(|e| e.to_string()));
        for a in r.alarms {
            self.alarm(report, a);
        }
        Ok(r.new_envelopes)
    }

    /// Pulls one lobby (STO-23), signed by whoever wrote there, into the
    /// device-local store; returns the envelopes new here.
    async fn pull_lobby(
        &mut self,
        k: EpochKey,
        report: &mut SyncReport,
    ) -> Result<usize, ClientError> {
        let es = EpochStorage::derive(&self.space_id, &k)?;
        let (mut writers, errors) = lobby_writers(&self.store, &es).await?;
        report.warnings.extend(errors.iter().map(|e| e.to_string()));
        writers.retain(|w| *w != self.device_key);
        if writers.is_empty() {
            return Ok(0);
        }
        writers.push(self.device_key);
        let cfg = SpaceConfig {
            space_id: self.space_id,
            device: self.device(),
            epoch: k,
            old_epochs: Vec::new(),
            signers: writers,
            rng_seed: Some(self.seed()),
        };
        let mut space = Space::new(self.store.clone(), LocalStore::in_memory()?, cfg)?;
        let r = space.pull().await?;
        report.segments += r.segments;
        report
            .warnings
            .extend(r.errors.iter().map(|e| e.to_string()));
        let envs = space.local().all_envelopes()?;
        let n = self.local.put_envelopes(&envs, false, &[])?.len();
        report.received += n;
        Ok(n)
    }

    /// Synchronises with storage: uploads what this device wrote, downloads
    /// what others wrote, learns new keys (and reads the epochs they open), and
    /// answers what membership asks of this device (acknowledgements, welcomes,
    /// healing rotations).
    ///
    /// Dropping the returned future mid-way leaves the session usable: what
    /// was stored stays stored, and the next sync picks up from there.
    pub async fn sync(&mut self) -> Result<SyncReport, ClientError> {
        let mut report = SyncReport::default();
        let alarms_before = self.membership_alarms().len();
        let (counts_before, ids_before) = self.index()?;
        let mut exchange = SyncExchange::start(&self.core, counts_before.len());
        let mut shown: BTreeMap<[u8; 32], Shown> = BTreeMap::new();
        while let Some(step) = exchange.poll_step(&self.core) {
            match step {
                SyncStep::RepairOwn(epochs) => self.repair_own(epochs, &mut report).await?,
                SyncStep::Deliver(deliveries) => self.deliver(deliveries, &mut report).await?,
                SyncStep::ShowPreviews(view) => {
                    self.show_previews(view, &mut shown, &mut report).await?
                }
                SyncStep::Pull(view) => {
                    let n = self.pull(view, &mut report).await?;
                    exchange.received(n);
                }
                SyncStep::PullLobby(k) => {
                    let n = self.pull_lobby(k, &mut report).await?;
                    exchange.received(n);
                }
                SyncStep::Learn => {
                    self.feed_local()?;
                    self.core.follow_up(now_ms())?;
                    self.apply()?;
                    exchange.learned(self.by_doc()?.len());
                }
                SyncStep::CheckPreviews => self.check_previews(&shown, &mut report).await?,
                SyncStep::Flush(view) => {
                    // What goes to storage also goes to a live room, including
                    // edits made by an earlier process (`doc edit`, then `watch`).
                    for (_, b) in self.local.outbox()? {
                        if !self.live.contains(&b) {
                            self.live.push(b);
                        }
                    }
                    let r = self
                        .on(view, async |s| {
                            s.init().await?;
                            s.flush().await
                        })
                        .await?;
                    report.uploaded += usize::from(r.is_some());
                }
                // Steps a later session core may add: nothing to do here.
                _ => {}
            }
        }
        self.docs.clear();
        let mut fresh = Vec::new();
        let mut counts: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        for e in self.local.all_envelopes()? {
            let Ok(d) = envelope::decode(&e) else {
                continue;
            };
            if let Some(doc) = self.core.document_of(&e) {
                *counts.entry(doc).or_default() += 1;
            }
            if !self.core.is_delivery(&e) && !ids_before.contains(&d.id) {
                fresh.push(e);
            }
        }
        for (id, n) in counts {
            if counts_before.get(&id).copied().unwrap_or(0) < n {
                self.notify(Change::Document(id));
            }
        }
        let out = exchange.finish(&mut self.core, &fresh);
        for w in &out.stale_writers {
            self.notify(Change::StaleEpoch {
                device: w.device,
                epoch: w.epoch,
                envelopes: w.envelopes,
            });
        }
        if out.membership_changed {
            self.notify(Change::Membership);
        }
        report.stale_writers = out.stale_writers;
        let alarms = self.membership_alarms().to_vec();
        for a in alarms.iter().skip(alarms_before) {
            self.notify(Change::Evidence(a.clone()));
        }
        report.membership_alarms = alarms;
        report.epochs_held = out.epochs_held;
        report.locked_out = out.locked_out;
        report.has_access = out.has_access;
        report.admitted = out.admitted;
        report.expired_invites = out.expired_invites;
        report.awaiting_admission = out.awaiting_admission;
        report.refused = out.refused;
        Ok(report)
    }

    /// Shows, from checkpoints, the documents this device holds no envelope of
    /// yet (STO-26): each as a `Change::Preview`, at most once per sync. The
    /// storage layer fetches only each document's best-ranked checkpoint, and the
    /// next one only when that one fails or its state does not load.
    async fn show_previews(
        &mut self,
        view: EpochView,
        shown: &mut BTreeMap<[u8; 32], Shown>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        let already: Vec<[u8; 32]> = shown.keys().copied().collect();
        let (chosen, errors) = self
            .on(view, async |s| {
                s.checkpoints(
                    |doc| !already.contains(doc),
                    |cp| {
                        // Checkpoint::decode admits only the two snapshot content types.
                        let crdt = checkpoint::crdt_of(cp.checkpoint.content_type)
                            .ok_or_else(|| "not a CRDT state content type".to_string())?;
                        Provisional::load(crdt, &cp.doc_id, &YjsSchema::default(), &cp.state())
                            .map_err(|e| e.to_string())
                    },
                )
                .await
            })
            .await?;
        report.warnings.extend(errors.iter().map(|e| e.to_string()));
        for (doc, (cp, view)) in chosen {
            self.notify(Change::Preview {
                doc,
                json: view.materialize().to_canonical_string(),
            });
            shown.insert(
                doc,
                Shown {
                    checkpoint: cp,
                    state_digest: view.state_digest(),
                },
            );
        }
        Ok(())
    }

    /// Checks every checkpoint shown during this sync against its snapshot's
    /// envelopes (STO-27); a false one is reported in the warnings.
    async fn check_previews(
        &mut self,
        shown: &BTreeMap<[u8; 32], Shown>,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        for (doc, sh) in shown {
            let cp = &sh.checkpoint;
            let Some(crdt) = checkpoint::crdt_of(cp.checkpoint.content_type) else {
                continue;
            };
            let cfg = self.replica_config(*doc, crdt)?;
            let m = self.membership_view()?;
            let check = self
                .with_main(async |s| {
                    s.check_checkpoint(cp, &sh.state_digest, move |envs| {
                        restored(cfg, m, envs).state_digest()
                    })
                    .await
                })
                .await?;
            match check {
                Some(CheckpointCheck::Matches) | None => {}
                Some(CheckpointCheck::Mismatch(e)) => report.warnings.push(e.to_string()),
                Some(CheckpointCheck::Undone(e)) => {
                    report.warnings.push(format!("checkpoint not checked: {e}"))
                }
                Some(other) => report
                    .warnings
                    .push(format!("checkpoint not checked: {other:?}")),
            }
        }
        Ok(())
    }

    /// Compacts this device's objects in the current epoch (spec §9.8): one
    /// snapshot of every envelope it holds replaces its segments, and a
    /// checkpoint of each document lets a new device show it at once (§9.7a).
    /// Run `sync` first so the snapshot covers what others wrote.
    pub async fn compact(&mut self) -> Result<CompactReport, ClientError> {
        let mut configs = BTreeMap::new();
        for (id, envs) in self.by_doc()? {
            if let Some(crdt) = self.crdt_of(&id, &envs) {
                let cfg = self.replica_config(id, crdt)?;
                configs.insert(id, (cfg, self.membership_view()?));
            }
        }
        let done = self
            .with_main(async move |s| {
                s.init().await?;
                s.compact_with(|doc, envs| {
                    let (cfg, m) = configs.remove(doc)?;
                    Some(checkpoint::state_of(&mut restored(cfg, m, envs)))
                })
                .await
            })
            .await?;
        Ok(match done {
            Some((snapshot, cps)) => CompactReport {
                snapshot: Some(snapshot),
                checkpoints: cps.len(),
            },
            None => CompactReport::default(),
        })
    }
}

/// A checkpoint shown during a sync, and the `StateDigest` of the state it
/// showed, which STO-27 compares with the rebuilt replica's.
struct Shown {
    checkpoint: ChosenCheckpoint,
    state_digest: [u8; 32],
}
