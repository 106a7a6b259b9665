//! Storage attacks by a malicious member (issue 22, findings 2 and 6), run against
//! the local-folder and memory backends.
//!
//! * **Forged snapshot coverage (STO-13, STO-14, STO-30, STO-31).** A member device
//!   signs a snapshot that claims to cover another device's segments but omits
//!   their envelopes. A new device must not believe the claim: it checks each
//!   cover against the covered device's own attestation in its head manifest,
//!   reports the snapshot, and still loads the real segments.
//! * **Head manifest moved across epochs (STO-6, STO-7).** A member holding two
//!   epochs re-seals a device's head manifest of the old epoch under the new
//!   epoch at that device's head path. The body names its epoch, so readers
//!   refuse it, and the device's real manifests of the new epoch are not taken
//!   for a rollback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use clientful_core::keys::EpochKey;
use clientful_core::{ErrorClass, labels, suite, wire};
use clientful_doc::Replica;
use clientful_doc::checkpoint::state_of;
use clientful_doc::testkit::insert_text;
use clientful_proto::v1 as pb;
use clientful_storage::layout::{EpochStorage, object_id};
use clientful_storage::object::{
    Checkpoint, CheckpointEntry, HeadManifest, Kind, Snapshot, seal_object,
};
use clientful_storage::space::CheckpointCheck;
use clientful_storage::{BlobStore, LocalStore, OpendalStore, Space, StorageError, causal};
use common::{backend, device, world};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn errors_of(errors: &[StorageError], class: ErrorClass) -> Vec<String> {
    errors
        .iter()
        .filter(|e| e.class() == Some(class))
        .map(ToString::to_string)
        .collect()
}

/// Device 2 (any member, a reader would do) signs a snapshot that covers A's
/// segment and claims `claim_b` segments of B while holding none of B's
/// envelopes, and lists it in its own head manifest; with `checkpoint`, also a
/// checkpoint of the document built from exactly that snapshot's envelopes.
async fn forge_snapshot(store: &OpendalStore, es: &EpochStorage, claim_b: u64, checkpoint: bool) {
    let w = world();
    let (a, b, m) = (
        w.device(0).public_bytes(),
        w.device(1).public_bytes(),
        w.device(2),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut attacker = Space::new(
        store.clone(),
        LocalStore::open(&tmp.path().join("m.redb")).unwrap(),
        common::space_config(&w, 2),
    )
    .unwrap();
    attacker.pull().await.unwrap();
    let envs: Vec<Vec<u8>> = attacker
        .local()
        .all_envelopes()
        .unwrap()
        .into_iter()
        .filter(|e| clientful_core::envelope::decode(e).is_ok_and(|d| d.header.author == a))
        .collect();
    let (envelopes, heads) = causal::order(envs);
    let mut covers = vec![(a, 1), (b, claim_b)];
    covers.sort_unstable();
    let snap = Snapshot {
        device: m.public_bytes(),
        covers,
        heads,
        envelopes,
    };
    let mut rng = ChaCha20Rng::from_seed([0x66; 32]);
    let file = seal_object(es, Kind::Snapshot, &m, snap.encode(es), &mut rng).unwrap();
    let id = object_id(&file).unwrap();
    store
        .put_immutable(&es.object_path(&id), file)
        .await
        .unwrap();
    let mut head = HeadManifest::empty(m.public_bytes());
    head.counter = 1;
    head.snapshots = vec![id];
    if checkpoint {
        let st = state_of(&mut Replica::restore(w.config(2, 1), &snap.envelopes));
        let cp = Checkpoint {
            content_type: st.content_type,
            snapshot: id,
            state: st.state,
        };
        let file = seal_object(es, Kind::Checkpoint, &m, cp.encode(), &mut rng).unwrap();
        let cid = object_id(&file).unwrap();
        store
            .put_immutable(&es.object_path(&cid), file)
            .await
            .unwrap();
        head.checkpoints = vec![CheckpointEntry {
            doc_id: w.doc_id,
            coverage: snap.coverage(),
            id: cid,
        }];
    }
    let file = seal_object(es, Kind::Head, &m, head.encode(es), &mut rng).unwrap();
    store
        .put_owned(&es.head_path(&m.public_bytes()).unwrap(), file)
        .await
        .unwrap();
}

/// Finding 2: the new device ends with B's edits (the ones the forged snapshot
/// omitted and the later one its huge claim would hide), and the forged snapshot
/// is reported as `STORAGE_CORRUPT`.
async fn forged_snapshot_coverage(store: OpendalStore, claim_b: u64) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("hello ");
    a.space.flush().await.unwrap();
    b.pull().await;
    b.edit("removal ");
    b.space.flush().await.unwrap();
    let es = a.space.current().clone();
    forge_snapshot(&store, &es, claim_b, false).await;
    b.edit("later ");
    b.space.flush().await.unwrap();
    b.pull().await;

    let mut c = device(&w, &store, 3).await;
    let report = c.pull().await;
    let text = c.replica.materialize().to_canonical_string();
    assert!(
        text.contains("removal") && text.contains("later"),
        "the new device misses B's segments: {text}; report {:?}",
        report.errors
    );
    assert_eq!(c.replica.state_digest(), b.replica.state_digest());
    let corrupt = errors_of(&report.errors, ErrorClass::StorageCorrupt);
    assert!(
        corrupt.iter().any(|e| e.contains("overclaimed")),
        "the forged snapshot is reported: {:?}",
        report.errors
    );
}

/// Finding 2, the checkpoint built on a forged snapshot: it is shown only
/// provisionally (its claimed coverage makes it the choice), and the check
/// (STO-27) no longer passes it, because its snapshot's covers are refuted.
async fn forged_checkpoint_fails_its_check(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("hello ");
    a.space.flush().await.unwrap();
    b.pull().await;
    b.edit("removal ");
    b.space.flush().await.unwrap();
    let es = a.space.current().clone();
    forge_snapshot(&store, &es, 1, true).await;

    let mut c = device(&w, &store, 3).await;
    let (chosen, _) = c.checkpoints().await;
    let (cp, view) = chosen
        .get(&w.doc_id)
        .expect("the forged checkpoint is the only one");
    assert_eq!(cp.device, w.device(2).public_bytes());
    c.pull().await;
    let check = c
        .space
        .check_checkpoint(cp, &view.state_digest(), |envs| {
            Replica::restore(w.config(3, 1), envs).state_digest()
        })
        .await
        .unwrap();
    match check {
        CheckpointCheck::Mismatch(e) => {
            assert_eq!(e.class(), Some(ErrorClass::StorageCorrupt));
            assert!(e.to_string().contains("overclaimed"), "{e}");
        }
        other => panic!("the checkpoint of a forged snapshot passes its check: {other:?}"),
    }
    assert!(
        c.replica
            .materialize()
            .to_canonical_string()
            .contains("removal"),
        "the verified document has B's edit"
    );
}

/// The other side of finding 2: an honest snapshot's covers hold against the
/// devices' attestations, so a new device loads it and fetches only the segments
/// it does not cover (here B's segment written after the compaction).
async fn honest_snapshot_spares_covered_segments(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    a.edit("hello ");
    a.space.flush().await.unwrap();
    b.pull().await;
    b.edit("world ");
    b.space.flush().await.unwrap();
    a.pull().await;
    let snap = a.space.compact().await.unwrap();
    b.edit("after ");
    b.space.flush().await.unwrap();
    b.pull().await;
    let mut c = device(&w, &store, 3).await;
    let report = c.pull().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.snapshots, vec![snap]);
    assert_eq!(
        report.segments, 1,
        "B's first segment is covered by A's snapshot"
    );
    assert_eq!(c.replica.state_digest(), b.replica.state_digest());
}

/// The storage seal key of an epoch, derived as STO-3 says: what a member
/// holding the epoch secret computes.
fn seal_key(space_id: &[u8; 32], epoch: &EpochKey) -> [u8; 32] {
    let mut root = [0u8; 32];
    suite::derive_with_label(
        epoch.secret(),
        space_id,
        labels::KDF_STORAGE_KEY,
        epoch.id(),
        &mut root,
    )
    .unwrap();
    let mut seal = [0u8; 32];
    suite::derive_with_label(&root, &[], labels::KDF_STORAGE_SEAL, &[], &mut seal).unwrap();
    seal
}

fn object_aad(kind: u32, epoch_id: &[u8; 32]) -> Vec<u8> {
    let content = [
        &1u32.to_be_bytes(),
        &kind.to_be_bytes(),
        epoch_id.as_slice(),
    ]
    .concat();
    labels::labeled(labels::AAD_STORAGE_OBJECT, &content).unwrap()
}

/// Opens a stored object under `from` and seals the same signed plaintext
/// (body, signer, signature untouched) under `to`.
fn transplant(bytes: &[u8], space_id: &[u8; 32], from: &EpochKey, to: &EpochKey) -> Vec<u8> {
    let obj: pb::StoredObject = wire::decode(bytes, &wire::STORED_OBJECT).unwrap();
    let nonce: [u8; 24] = obj.nonce.as_slice().try_into().unwrap();
    let signed = suite::aead_open(
        &seal_key(space_id, from),
        &nonce,
        &object_aad(obj.kind, from.id()),
        &obj.ciphertext,
    )
    .unwrap();
    let ciphertext = suite::aead_seal(
        &seal_key(space_id, to),
        &nonce,
        &object_aad(obj.kind, to.id()),
        &signed,
    )
    .unwrap();
    wire::encode(&pb::StoredObject {
        version: 1,
        kind: obj.kind,
        epoch_id: to.id().to_vec(),
        nonce: obj.nonce,
        ciphertext,
    })
}

/// Finding 6: A's epoch-1 head manifest (counter 2), re-sealed by a member under
/// epoch 2 at A's epoch-2 head path, is refused; A's real epoch-2 manifest
/// (counter 1) is then accepted, not reported as a rollback, and its edit loads.
async fn head_moved_across_epochs(store: OpendalStore) {
    let w = world();
    let e1 = w.epoch_key();
    let e2 = EpochKey::new([0xe2; 32], [0x22; 32]);
    let mut a = device(&w, &store, 0).await;
    a.edit("one ");
    a.space.flush().await.unwrap();
    a.edit("two ");
    a.space.flush().await.unwrap();
    let me = w.device(0).public_bytes();
    let es1 = a.space.current().clone();
    let es2 = EpochStorage::derive(&w.space_id, &e2).unwrap();
    let old_head = store
        .get(&es1.head_path(&me).unwrap())
        .await
        .unwrap()
        .unwrap();

    // The member moves A's epoch-1 head into A's epoch-2 head path.
    let moved = transplant(&old_head, &w.space_id, &e1, &e2);
    store
        .put_owned(&es2.head_path(&me).unwrap(), moved)
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::space_config(&w, 3);
    cfg.epoch = e2.clone();
    cfg.old_epochs = vec![e1.clone()];
    let mut reader = Space::new(
        store.clone(),
        LocalStore::open(&tmp.path().join("r.redb")).unwrap(),
        cfg,
    )
    .unwrap();
    let first = reader.pull().await.unwrap();
    let corrupt = errors_of(&first.errors, ErrorClass::StorageCorrupt);
    assert!(
        corrupt.iter().any(|e| e.contains("epoch mismatch")),
        "the moved head manifest is refused: {:?}",
        first.errors
    );

    // A rotates to epoch 2 and writes there: its real epoch-2 head has counter 1.
    let (backend_a, local_a) = a.space.into_parts();
    let mut cfg = common::space_config(&w, 0);
    cfg.epoch = e2.clone();
    cfg.old_epochs = vec![e1.clone()];
    let mut space_a = Space::new(backend_a, local_a, cfg).unwrap();
    let mut rcfg = w.config(0, 1);
    rcfg.epoch = e2.clone();
    rcfg.old_epochs = vec![e1.clone()];
    let envs = space_a.documents().unwrap().remove(&w.doc_id).unwrap();
    let mut replica_a = Replica::restore(rcfg, &envs);
    insert_text(&mut replica_a, 0, "three ").unwrap();
    replica_a.commit().unwrap();
    let out: Vec<Vec<u8>> = replica_a
        .drain_outbox()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    space_a.record(&out).unwrap();
    space_a.flush().await.unwrap();

    let second = reader.pull().await.unwrap();
    assert!(
        errors_of(&second.errors, ErrorClass::Rollback).is_empty(),
        "A's real epoch-2 manifest is taken for a rollback: {:?}",
        second.errors
    );
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let mut rcfg = w.config(3, 0);
    rcfg.epoch = e2;
    rcfg.old_epochs = vec![e1];
    let envs = reader.documents().unwrap().remove(&w.doc_id).unwrap();
    assert_eq!(
        Replica::restore(rcfg, &envs).state_digest(),
        replica_a.state_digest(),
        "the reader holds A's epoch-2 edit"
    );
}

macro_rules! suite {
    ($($kind:ident),*) => {$(
        mod $kind {
            fn store(tmp: &tempfile::TempDir) -> super::OpendalStore {
                super::backend(stringify!($kind), tmp.path()).expect("local backend")
            }

            #[test]
            fn forged_snapshot_omitting_a_device() {
                let tmp = tempfile::tempdir().unwrap();
                super::common::block_on(super::forged_snapshot_coverage(store(&tmp), 1));
            }

            #[test]
            fn forged_snapshot_with_a_huge_claim() {
                let tmp = tempfile::tempdir().unwrap();
                super::common::block_on(super::forged_snapshot_coverage(store(&tmp), 1 << 40));
            }

            #[test]
            fn forged_checkpoint_fails_its_check() {
                let tmp = tempfile::tempdir().unwrap();
                super::common::block_on(super::forged_checkpoint_fails_its_check(store(&tmp)));
            }

            #[test]
            fn honest_snapshot_spares_covered_segments() {
                let tmp = tempfile::tempdir().unwrap();
                super::common::block_on(super::honest_snapshot_spares_covered_segments(store(&tmp)));
            }

            #[test]
            fn head_manifest_moved_across_epochs() {
                let tmp = tempfile::tempdir().unwrap();
                super::common::block_on(super::head_moved_across_epochs(store(&tmp)));
            }
        }
    )*};
}

suite!(fs, memory);
