//! The storage test suite, run unchanged against every backend: a local folder,
//! memory, a real S3-compatible server (SeaweedFS) and a real WebDAV server
//! (WsgiDAV), both started on loopback by `scripts/test-all.sh`
//! (`scripts/services/`). With `CLIENTFUL_REQUIRE_SERVICES=1` a missing server is
//! a failure, never a skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use clientful_core::ErrorClass;
use clientful_core::keys::EpochKey;
use clientful_doc::checkpoint::{Provisional, state_of};
use clientful_doc::replica::Replica;
use clientful_doc::testkit::insert_text;
use clientful_storage::backend::MaybeSend;
use clientful_storage::export::{copy_store, export_json};
use clientful_storage::files::FileRef;
use clientful_storage::space::{CheckpointCheck, CheckpointState};
use clientful_storage::{BlobStore, LocalStore, OpendalStore, Space, StorageError};
use common::{backend, device, world};

fn has(errors: &[StorageError], class: ErrorClass, words: &[&str]) -> bool {
    errors.iter().any(|e| {
        let s = e.to_string();
        e.class() == Some(class) && words.iter().all(|w| s.contains(w))
    })
}

/// Writers edit, one compacts while another edits concurrently, both compact
/// (concurrent snapshots); brand-new devices that reach only storage load the
/// chosen snapshot plus later segments and reach the writers' digests.
async fn cold_start_and_compaction(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("hello ");
    let a_seg0 = a.space.flush().await.unwrap().unwrap();
    b.pull().await;
    b.edit("world ");
    b.space.flush().await.unwrap();
    a.pull().await;
    a.edit("again ");
    a.space.flush().await.unwrap();
    b.pull().await;
    // B edits while A compacts without having seen that edit.
    b.edit("concurrent ");
    b.space.flush().await.unwrap();
    let snap_a = a.space.compact().await.unwrap();
    let es = a.space.current().clone();
    assert!(
        store.get(&es.object_path(&a_seg0)).await.unwrap().is_none(),
        "A's covered segment is collected"
    );
    a.edit("after ");
    a.space.flush().await.unwrap();

    // A cold device loads A's snapshot plus every later segment, B's concurrent edit included.
    let mut c = device(&w, &store, 2).await;
    let report = c.pull().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.snapshots, vec![snap_a]);
    a.pull().await;
    b.pull().await;
    let digest = a.replica.state_digest();
    assert_eq!(b.replica.state_digest(), digest);
    assert_eq!(c.replica.state_digest(), digest);
    assert_eq!(c.restored(&w).state_digest(), digest);
    assert_eq!(c.replica.history_digest(), a.replica.history_digest());
    let text = a.replica.materialize().to_canonical_string();
    assert!(text.contains("concurrent"), "{text}");

    // B compacts too: two concurrent snapshots; B edits after.
    b.space.compact().await.unwrap();
    b.edit("final ");
    b.space.flush().await.unwrap();
    a.pull().await;
    let digest = a.replica.state_digest();
    let mut d = device(&w, &store, 3).await;
    let report = d.pull().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(!report.snapshots.is_empty());
    assert_eq!(d.replica.state_digest(), digest);
    assert_eq!(d.restored(&w).state_digest(), digest);

    // The cold-started replica keeps accepting later envelopes.
    a.edit("later ");
    a.space.flush().await.unwrap();
    a.pull().await;
    let report = d.pull().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(d.replica.state_digest(), a.replica.state_digest());
}

/// Rollback of a head manifest, a withheld segment and a substituted segment are
/// each detected with a clear error, and no local data is lost.
async fn detects_rollback_withholding_substitution(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    let es = a.space.current().clone();
    let head = es.head_path(&w.device(0).public_bytes()).unwrap();
    a.edit("one ");
    a.space.flush().await.unwrap();
    let old_head = store.get(&head).await.unwrap().unwrap();
    a.edit("two ");
    let seg1 = a.space.flush().await.unwrap().unwrap();
    let r = b.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let before = b.envelope_count();
    let digest_before = b.replica.state_digest();

    // Rollback: storage serves A's older head manifest.
    store.put_owned(&head, old_head).await.unwrap();
    let r = b.pull().await;
    assert!(
        has(
            &r.errors,
            ErrorClass::Rollback,
            &["rolled back", "counter 1", "below the 2"]
        ),
        "{:?}",
        r.errors
    );
    assert_eq!(b.envelope_count(), before, "no local data lost");
    assert_eq!(b.restored(&w).state_digest(), digest_before);

    // A publishes again; B accepts the newer head.
    a.edit("three ");
    let seg2 = a.space.flush().await.unwrap().unwrap();
    let r = b.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    // Withheld segment: a cold device finds segment 2 listed but missing.
    let seg2_path = es.object_path(&seg2);
    let seg2_bytes = store.get(&seg2_path).await.unwrap().unwrap();
    store.delete(&seg2_path).await.unwrap();
    let mut c = device(&w, &store, 2).await;
    let r = c.pull().await;
    assert!(
        has(
            &r.errors,
            ErrorClass::StorageCorrupt,
            &["segment 2 of device", "withheld"]
        ),
        "{:?}",
        r.errors
    );
    assert_eq!(c.envelope_count(), 2, "segments 0 and 1 still loaded");

    // Substituted segment: another segment's bytes under segment 2's address.
    let seg1_bytes = store.get(&es.object_path(&seg1)).await.unwrap().unwrap();
    store.put_immutable(&seg2_path, seg1_bytes).await.unwrap();
    let r = c.pull().await;
    assert!(
        has(
            &r.errors,
            ErrorClass::StorageCorrupt,
            &["segment 2 of device", "substituted"]
        ),
        "{:?}",
        r.errors
    );
    assert_eq!(c.envelope_count(), 2);

    // Storage repaired: everything loads and converges.
    store.put_immutable(&seg2_path, seg2_bytes).await.unwrap();
    let r = c.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(c.replica.state_digest(), a.replica.state_digest());

    // Withheld head manifest: B has seen it, storage now hides it.
    store.delete(&head).await.unwrap();
    let r = b.pull().await;
    assert!(
        has(&r.errors, ErrorClass::Rollback, &["withheld"]),
        "{:?}",
        r.errors
    );
    assert_eq!(b.replica.state_digest(), a.replica.state_digest());
}

/// Files stream in chunks with progress; a changed chunk, a missing chunk and a
/// substituted file are detected and named.
async fn files(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let b = device(&w, &store, 1).await;
    let data: Vec<u8> = (0..(5 * 1024 * 1024 / 2 + 7))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut progress = Vec::new();
    let file = a
        .space
        .put_file(&data[..], "image/jpeg", |d| progress.push(d))
        .await
        .unwrap();
    assert_eq!(progress, vec![1 << 20, 2 << 20, data.len() as u64]);
    let file = FileRef::from_bytes(&file.to_bytes()).unwrap();
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let m = b
        .space
        .get_file(&file, &mut out, |d, t| seen.push((d, t)))
        .await
        .unwrap();
    assert_eq!(out, data);
    assert_eq!(m.media_type, "image/jpeg");
    assert_eq!(seen.last(), Some(&(data.len() as u64, data.len() as u64)));
    assert_eq!(m.chunks.len(), 3);

    let es = a.space.current().clone();
    let chunk = |i: usize| es.object_path(&m.chunks[i]);
    let c0 = store.get(&chunk(0)).await.unwrap().unwrap();
    let c1 = store.get(&chunk(1)).await.unwrap().unwrap();
    // Changed chunk.
    store.put_immutable(&chunk(1), c0.clone()).await.unwrap();
    let err = b
        .space
        .get_file(&file, &mut Vec::new(), |_, _| {})
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::StorageCorrupt));
    assert!(
        err.to_string().contains("chunk 1 of 3") && err.to_string().contains("changed"),
        "{err}"
    );
    store.put_immutable(&chunk(1), c1).await.unwrap();
    // Missing chunk.
    store.delete(&chunk(2)).await.unwrap();
    let err = b
        .space
        .get_file(&file, &mut Vec::new(), |_, _| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("chunk 2 of 3") && err.to_string().contains("missing"),
        "{err}"
    );
    // Substituted file: another file's manifest under this file's address.
    let other = a
        .space
        .put_file(&b"another file"[..], "application/pdf", |_| {})
        .await
        .unwrap();
    let other_manifest = store
        .get(&es.object_path(&other.manifest))
        .await
        .unwrap()
        .unwrap();
    store
        .put_immutable(&es.object_path(&file.manifest), other_manifest)
        .await
        .unwrap();
    let err = b
        .space
        .get_file(&file, &mut Vec::new(), |_, _| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("manifest") && err.to_string().contains("substituted"),
        "{err}"
    );
    // The other file still reads.
    let mut out = Vec::new();
    b.space.get_file(&other, &mut out, |_, _| {}).await.unwrap();
    assert_eq!(out, b"another file");
}

/// The encrypted store copies to another backend and back, and loads there; the
/// documents export as plain JSON.
async fn export_and_copy(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    a.edit("exported ");
    a.space.flush().await.unwrap();
    a.space.compact().await.unwrap();
    a.edit("text ");
    a.space.flush().await.unwrap();
    let digest = a.replica.state_digest();

    let mem = OpendalStore::memory().unwrap();
    let n = copy_store(&store, &mem).await.unwrap();
    assert!(n >= 4, "format file, head, snapshot, segment: {n}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("copy")).unwrap();
    let folder = OpendalStore::fs(&tmp.path().join("copy")).unwrap();
    assert_eq!(copy_store(&mem, &folder).await.unwrap(), n);
    for copy in [&mem, &folder] {
        let mut c = device(&w, copy, 2).await;
        let r = c.pull().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(c.replica.state_digest(), digest);
    }
    let mut restored = vec![a.restored(&w)];
    let files = export_json(&w.space_id, &mut restored, tmp.path()).unwrap();
    assert_eq!(files.len(), 1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let text = json.to_string();
    assert!(text.contains("text exported"), "{text}");
}

/// Storage keys follow the epoch: after a rotation the device writes into the new
/// epoch's directory; a reader holding every epoch finds everything, a reader
/// holding only the old one finds only the old data.
async fn epochs(store: OpendalStore) {
    let w = world();
    let e1 = w.epoch_key();
    let e2 = EpochKey::new([0xe2; 32], [0x22; 32]);
    let mut a = device(&w, &store, 0).await;
    a.edit("first ");
    a.space.flush().await.unwrap();
    let old_dir = a.space.current().dir().to_owned();

    // Rotation: same device and local store, epoch 2 current, epoch 1 still read.
    let (backend_a, local_a) = a.space.into_parts();
    let mut cfg = common::space_config(&w, 0);
    cfg.epoch = e2.clone();
    cfg.old_epochs = vec![e1.clone()];
    let mut space_a = Space::new(backend_a, local_a, cfg).unwrap();
    assert_ne!(space_a.current().dir(), old_dir);
    let mut rcfg = w.config(0, 1);
    rcfg.epoch = e2.clone();
    rcfg.old_epochs = vec![e1.clone()];
    let envs = space_a.documents().unwrap().remove(&w.doc_id).unwrap();
    let mut replica_a = Replica::restore(rcfg, &envs);
    insert_text(&mut replica_a, 0, "second ").unwrap();
    replica_a.commit().unwrap();
    let out: Vec<Vec<u8>> = replica_a
        .drain_outbox()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    space_a.record(&out).unwrap();
    space_a.flush().await.unwrap();
    let paths = store.list("").await.unwrap();
    assert!(paths.iter().any(|p| p.starts_with(space_a.current().dir())));
    assert!(paths.iter().any(|p| p.starts_with(&old_dir)));

    // A reader with both epochs.
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::space_config(&w, 2);
    cfg.epoch = e2.clone();
    cfg.old_epochs = vec![e1.clone()];
    let mut both = Space::new(
        store.clone(),
        LocalStore::open(&tmp.path().join("b.redb")).unwrap(),
        cfg,
    )
    .unwrap();
    let r = both.pull().await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let mut rcfg = w.config(2, 0);
    rcfg.epoch = e2.clone();
    rcfg.old_epochs = vec![e1.clone()];
    let envs = both.documents().unwrap().remove(&w.doc_id).unwrap();
    assert_eq!(
        Replica::restore(rcfg, &envs).state_digest(),
        replica_a.state_digest()
    );

    // A reader holding only epoch 1 sees only the epoch-1 data.
    let mut old = Space::new(
        store.clone(),
        LocalStore::open(&tmp.path().join("o.redb")).unwrap(),
        common::space_config(&w, 3),
    )
    .unwrap();
    let r = old.pull().await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(old.local().all_envelopes().unwrap().len(), 1);
}

/// A device that lost its local store continues its counter and keeps its
/// earlier segments instead of rolling its own head back.
async fn lost_local_store(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("one ");
    a.space.flush().await.unwrap();
    a.edit("two ");
    a.space.flush().await.unwrap();
    let r = b.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    drop(a);
    // Same device key, empty local store: it loads its history back before editing.
    let mut a = device(&w, &store, 0).await;
    a.pull().await;
    a.edit("three ");
    a.space.flush().await.unwrap();
    let r = b.pull().await;
    assert!(r.errors.is_empty(), "no rollback: {:?}", r.errors);
    assert_eq!(
        a.envelope_count(),
        3,
        "its earlier envelopes were loaded back"
    );
    assert_eq!(b.envelope_count(), 3);
    assert!(b.replica.equivocators().is_empty());
    let mut c = device(&w, &store, 2).await;
    let r = c.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(c.replica.state_digest(), b.replica.state_digest());
}

/// Checkpoints (STO-24 to STO-27): a writer compacts with checkpoints; a new
/// device shows the document from the checkpoint before loading any envelope,
/// then pulls and checks it. A member's lying checkpoint (true signature, false
/// state) is shown only provisionally and found by the check; a substituted one
/// is refused; a checkpoint whose snapshot was collected since is left unchecked.
async fn checkpoints(store: OpendalStore) {
    let w = world();
    let writer_state = |i: usize| {
        let w = w.clone();
        move |_: &[u8; 32], envs: &[Vec<u8>]| -> Option<CheckpointState> {
            Some(state_of(&mut Replica::restore(w.config(i, 1), envs)))
        }
    };
    let text_of = |p: &Provisional| p.materialize().to_canonical_string();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("checkpointed ");
    a.space.flush().await.unwrap();
    b.pull().await;
    b.edit("together ");
    b.space.flush().await.unwrap();
    a.pull().await;
    let at_compaction = a.replica.state_digest();
    let (snap, cps) = a.space.compact_with(writer_state(0)).await.unwrap();
    assert_eq!(cps.len(), 1, "one document, one checkpoint");
    a.edit("later ");
    a.space.flush().await.unwrap();

    // A new device: the provisional view needs no envelope.
    let mut c = device(&w, &store, 2).await;
    let (chosen, errors) = c.checkpoints().await;
    assert!(errors.is_empty(), "{errors:?}");
    let (cp, view) = chosen.get(&w.doc_id).expect("a checkpoint of the document");
    assert_eq!((cp.id, cp.checkpoint.snapshot), (cps[0], snap));
    assert_eq!(cp.device, w.device(0).public_bytes());
    assert_eq!(c.envelope_count(), 0, "nothing loaded yet");
    assert_eq!(view.state_digest(), at_compaction);
    assert!(text_of(view).contains("checkpointed"));
    assert!(
        !text_of(view).contains("later"),
        "provisional: as of the snapshot"
    );
    // Then the envelopes, and the check.
    let report = c.pull().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    a.pull().await;
    assert_eq!(c.replica.state_digest(), a.replica.state_digest());
    let check = c
        .space
        .check_checkpoint(cp, &view.state_digest(), |envs| {
            Replica::restore(w.config(2, 1), envs).state_digest()
        })
        .await
        .unwrap();
    assert!(matches!(check, CheckpointCheck::Matches), "{check:?}");

    // B, a member, compacts with a lying state: its own signature, the state of
    // other envelopes. Its coverage is the greatest, so a new device chooses it.
    b.pull().await;
    let forged = {
        let mut r = Replica::new(w.config(3, 9));
        clientful_doc::testkit::insert_text(&mut r, 0, "forged content").unwrap();
        r.commit().unwrap();
        state_of(&mut r)
    };
    let (_, lying) = b
        .space
        .compact_with(move |_, _| Some(forged.clone()))
        .await
        .unwrap();
    let mut d = device(&w, &store, 3).await;
    let (chosen, errors) = d.checkpoints().await;
    assert!(errors.is_empty(), "{errors:?}");
    let (cp, view) = chosen.get(&w.doc_id).unwrap();
    assert_eq!(cp.id, lying[0]);
    assert!(text_of(view).contains("forged"), "shown, as unverified");
    let report = d.pull().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        d.replica.state_digest(),
        a.replica.state_digest(),
        "the envelopes win"
    );
    let check = d
        .space
        .check_checkpoint(cp, &view.state_digest(), |envs| {
            Replica::restore(w.config(3, 1), envs).state_digest()
        })
        .await
        .unwrap();
    match check {
        CheckpointCheck::Mismatch(e) => {
            assert_eq!(e.class(), Some(ErrorClass::StorageCorrupt), "{e}");
            assert!(e.to_string().contains("checkpoint mismatch"), "{e}");
        }
        other => panic!("the lie went unnoticed: {other:?}"),
    }

    // Storage substitutes B's checkpoint: refused, and A's is chosen instead.
    let es = b.space.current().clone();
    store
        .put_owned(&es.object_path(&lying[0]), b"not a checkpoint".to_vec())
        .await
        .unwrap();
    // The best-ranked one fails, so the reader falls back to the next.
    let e = device(&w, &store, 3).await;
    let (chosen, errors) = e.checkpoints().await;
    assert!(
        has(&errors, ErrorClass::StorageCorrupt, &["substituted"]),
        "{errors:?}"
    );
    assert_eq!(chosen.get(&w.doc_id).unwrap().0.id, cps[0]);

    // A compacts again: its old snapshot and checkpoint are collected, and a
    // check of the old checkpoint is undone, not a verdict.
    let old = chosen.get(&w.doc_id).unwrap().0.clone();
    a.space.compact_with(writer_state(0)).await.unwrap();
    assert!(store.get(&es.object_path(&old.id)).await.unwrap().is_none());
    let check = e
        .space
        .check_checkpoint(&old, &[0; 32], |_| [0; 32])
        .await
        .unwrap();
    assert!(matches!(check, CheckpointCheck::Undone(_)), "{check:?}");
}

/// A backend that records the path of every read, to see what a reader fetches.
#[derive(Clone)]
struct Counting {
    inner: OpendalStore,
    reads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Counting {
    /// The object reads (not head manifests) since the last call.
    fn object_reads(&self) -> Vec<String> {
        let mut r = self.reads.lock().unwrap();
        std::mem::take(&mut *r)
            .into_iter()
            .filter(|p| p.contains("/o/"))
            .collect()
    }
}

impl BlobStore for Counting {
    fn put_immutable(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + MaybeSend {
        self.inner.put_immutable(path, bytes)
    }
    fn put_owned(
        &self,
        path: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), StorageError>> + MaybeSend {
        self.inner.put_owned(path, bytes)
    }
    fn get(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + MaybeSend {
        self.reads.lock().unwrap().push(path.to_owned());
        self.inner.get(path)
    }
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + MaybeSend {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), StorageError>> + MaybeSend {
        self.inner.delete(path)
    }
}

/// The reader's choice is lazy (STO-26): of two writers' checkpoints of the
/// document it fetches only the best-ranked one (greater coverage), none for a
/// document it does not want, and the next one only when the best one fails
/// (damaged, or its state does not load), which is reported.
async fn checkpoint_choice_is_lazy(store: OpendalStore) {
    let w = world();
    let writer_state = |i: usize| {
        let w = w.clone();
        move |_: &[u8; 32], envs: &[Vec<u8>]| -> Option<CheckpointState> {
            Some(state_of(&mut Replica::restore(w.config(i, 1), envs)))
        }
    };
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("first ");
    a.space.flush().await.unwrap();
    b.pull().await;
    b.edit("second ");
    b.space.flush().await.unwrap();
    a.pull().await;
    let (_, cps_a) = a.space.compact_with(writer_state(0)).await.unwrap();
    b.pull().await;
    b.edit("third ");
    b.space.flush().await.unwrap();
    let (_, cps_b) = b.space.compact_with(writer_state(1)).await.unwrap();
    let (cp_a, cp_b) = (cps_a[0], cps_b[0]);

    let counting = Counting {
        inner: store.clone(),
        reads: Default::default(),
    };
    let reader = Space::new(
        counting.clone(),
        LocalStore::in_memory().unwrap(),
        common::space_config(&w, 3),
    )
    .unwrap();
    let es = reader.current().clone();
    let path = |id: &[u8; 32]| es.object_path(id);

    // Only B's (coverage 3 over A's 2) is fetched.
    counting.object_reads();
    let (chosen, errors) = reader
        .checkpoints(|_| true, common::load_yjs)
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let (cp, _) = chosen.get(&w.doc_id).unwrap();
    assert_eq!(cp.id, cp_b);
    assert!(
        cp.coverage > 2,
        "B's claims the greater coverage: {}",
        cp.coverage
    );
    assert_eq!(
        counting.object_reads(),
        vec![path(&cp_b)],
        "lower-ranked not fetched"
    );

    // A document the reader does not want: nothing fetched, nothing chosen.
    let (chosen, errors) = reader
        .checkpoints(|d| d != &w.doc_id, common::load_yjs)
        .await
        .unwrap();
    assert!(chosen.is_empty() && errors.is_empty(), "{errors:?}");
    assert!(counting.object_reads().is_empty());

    // B's state does not load (here: the caller refuses it): reported, and A's is
    // fetched next.
    let (chosen, errors) = reader
        .checkpoints(
            |_| true,
            |c| {
                if c.id == cp_b {
                    Err("refused".to_string())
                } else {
                    common::load_yjs(c)
                }
            },
        )
        .await
        .unwrap();
    assert!(
        has(
            &errors,
            ErrorClass::StorageCorrupt,
            &["does not load", "refused"]
        ),
        "{errors:?}"
    );
    assert_eq!(chosen.get(&w.doc_id).unwrap().0.id, cp_a);
    assert_eq!(counting.object_reads(), vec![path(&cp_b), path(&cp_a)]);

    // A's damaged: the best is still B's, and A's is never read, so no verdict.
    let mut bytes = store.get(&path(&cp_a)).await.unwrap().unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    store.put_owned(&path(&cp_a), bytes).await.unwrap();
    let (chosen, errors) = reader
        .checkpoints(|_| true, common::load_yjs)
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(chosen.get(&w.doc_id).unwrap().0.id, cp_b);
    assert_eq!(counting.object_reads(), vec![path(&cp_b)]);

    // Both damaged: both reported, in rank order, and nothing shown.
    let mut bytes = store.get(&path(&cp_b)).await.unwrap().unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    store.put_owned(&path(&cp_b), bytes).await.unwrap();
    let (chosen, errors) = reader
        .checkpoints(|_| true, common::load_yjs)
        .await
        .unwrap();
    assert!(chosen.is_empty());
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.class() == Some(ErrorClass::StorageCorrupt))
    );
    assert!(
        errors[0].to_string().contains(&hex::encode(&cp_b[..4])),
        "{errors:?}"
    );
    assert_eq!(counting.object_reads(), vec![path(&cp_b), path(&cp_a)]);
}

/// A layout version this implementation does not know is refused.
async fn format_version(store: OpendalStore) {
    let w = world();
    let a = device(&w, &store, 0).await;
    assert!(a.space.check_format().await.unwrap());
    let v2 = [0x08, 0x02];
    store
        .put_owned(clientful_storage::layout::FORMAT_PATH, v2.to_vec())
        .await
        .unwrap();
    let err = a.space.check_format().await.unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::StorageVersion), "{err}");
}

macro_rules! suite {
    ($($kind:ident),*) => {$(
        mod $kind {
            use super::*;

            fn store(tmp: &tempfile::TempDir) -> Option<OpendalStore> {
                backend(stringify!($kind), tmp.path())
            }

            #[test]
            fn cold_start_and_compaction() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::cold_start_and_compaction(s));
            }

            #[test]
            fn detects_rollback_withholding_substitution() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::detects_rollback_withholding_substitution(s));
            }

            #[test]
            fn files() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::files(s));
            }

            #[test]
            fn export_and_copy() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::export_and_copy(s));
            }

            #[test]
            fn epochs() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::epochs(s));
            }

            #[test]
            fn lost_local_store() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::lost_local_store(s));
            }

            #[test]
            fn checkpoints() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::checkpoints(s));
            }

            #[test]
            fn checkpoint_choice_is_lazy() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::checkpoint_choice_is_lazy(s));
            }

            #[test]
            fn format_version() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::format_version(s));
            }
        }
    )*};
}

suite!(fs, memory, s3, webdav);
