//! Repair of withholding (spec STO-28), run against every backend: a device
//! whose own files storage withheld or rolled back puts each kind back from its
//! local store, byte for byte — head manifests (withheld and rolled back),
//! segments, a snapshot, a checkpoint, and the segments it published into
//! another directory (a carrier's lobby or replaced epoch, KEY-15) — and a
//! second repair uploads nothing. Readers report what they saw typed
//! (`PullReport::alarms`) and accept the repaired files without a verdict. A
//! fork under the device's own key is reported and not overwritten; a newer
//! manifest of its own (an older local store) is adopted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;

use clientful_core::keys::EpochKey;
use clientful_doc::checkpoint::state_of;
use clientful_doc::replica::Replica;
use clientful_storage::hwm::Withholding;
use clientful_storage::layout::EpochStorage;
use clientful_storage::object::{HeadManifest, Kind, open_object, seal_object};
use clientful_storage::space::{CheckpointState, Space};
use clientful_storage::{BlobStore, OpendalStore};
use common::{backend, device, world};
use rand_core::SeedableRng;

/// Every file in storage, by path.
async fn files(store: &OpendalStore) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in store.list("").await.unwrap() {
        out.insert(p.clone(), store.get(&p).await.unwrap().unwrap());
    }
    out
}

fn kinds(found: &[clientful_storage::space::Alarm]) -> Vec<(String, Withholding)> {
    let mut v: Vec<(String, Withholding)> = found
        .iter()
        .map(|a| (hex::encode(&a.epoch_id[..4]), a.kind))
        .collect();
    v.sort();
    v
}

async fn repairs_each_kind(store: OpendalStore) {
    let w = world();
    let lobby = EpochKey::new([0x1b; 32], [0x1c; 32]);
    let checkpoint = {
        let w = w.clone();
        move |_: &[u8; 32], envs: &[Vec<u8>]| -> Option<CheckpointState> {
            Some(state_of(&mut Replica::restore(w.config(0, 1), envs)))
        }
    };
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    let me = w.device(0).public_bytes();

    // Segments, then a snapshot and a checkpoint, then a live segment.
    a.edit("one ");
    a.space.flush().await.unwrap();
    a.edit("two ");
    a.space.flush().await.unwrap();
    let (snap, cps) = a.space.compact_with(checkpoint).await.unwrap();
    assert_eq!(cps.len(), 1);
    a.edit("three ");
    let seg = a.space.flush().await.unwrap().unwrap();

    // Carriers into another directory, through the same local store: the
    // device's space with the lobby as the written epoch.
    let carriers = a.space.documents().unwrap().remove(&w.doc_id).unwrap();
    let (backend_a, local_a) = a.space.into_parts();
    let mut cfg = common::space_config(&w, 0);
    cfg.epoch = lobby.clone();
    cfg.old_epochs = vec![w.epoch_key()];
    let mut la = Space::new(backend_a, local_a, cfg).unwrap();
    la.publish(carriers[..1].to_vec()).await.unwrap().unwrap();
    let les = EpochStorage::derive(&w.space_id, &lobby).unwrap();
    let lobby_head = les.head_path(&me).unwrap();
    let old_lobby_head = store.get(&lobby_head).await.unwrap().unwrap();
    la.publish(carriers[1..].to_vec()).await.unwrap().unwrap();
    assert_eq!(la.publish(Vec::new()).await.unwrap(), None);
    let (backend_a, local_a) = la.into_parts();
    let mut cfg = common::space_config(&w, 0);
    cfg.old_epochs = vec![lobby.clone()];
    a.space = Space::new(backend_a, local_a, cfg).unwrap();
    let nothing = a.space.repair().await.unwrap();
    assert!(
        nothing.found.is_empty() && nothing.heads + nothing.objects == 0,
        "{nothing:?}"
    );

    let r = b.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let complete = files(&store).await;

    // Storage withholds: the head in the main epoch, the snapshot, the
    // checkpoint and the live segment are deleted; the lobby head rolled back,
    // and the lobby's newer segment deleted.
    let es = a.space.current().clone();
    let head = es.head_path(&me).unwrap();
    store.delete(&head).await.unwrap();
    for id in [snap, cps[0], seg] {
        store.delete(&es.object_path(&id)).await.unwrap();
    }
    store.put_owned(&lobby_head, old_lobby_head).await.unwrap();
    let lobby_objects: Vec<String> = complete
        .keys()
        .filter(|p| p.starts_with(&format!("{}/o/", les.dir())))
        .cloned()
        .collect();
    assert_eq!(lobby_objects.len(), 2);
    let mut lobby_deleted = 0;
    for p in &lobby_objects {
        // Delete the segment the rolled-back head does not list.
        let listed = {
            let bytes = store.get(&lobby_head).await.unwrap().unwrap();
            let o = open_object(&les, Kind::Head, &bytes, &[me]).unwrap();
            HeadManifest::decode(&o.body, &les, &me)
                .unwrap()
                .segments
                .iter()
                .any(|(_, id)| p.ends_with(&hex::encode(id)))
        };
        if !listed {
            store.delete(p).await.unwrap();
            lobby_deleted += 1;
        }
    }
    assert_eq!(lobby_deleted, 1);

    // A reader that saw the head reports it withheld, typed.
    let r = b.pull().await;
    assert!(
        r.alarms
            .iter()
            .any(|x| x.device == me && x.kind == Withholding::HeadWithheld),
        "{:?}",
        r.alarms
    );

    // The owner puts everything back, byte for byte.
    let rep = a.space.repair().await.unwrap();
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let main = hex::encode(&es.epoch_id()[..4]);
    let lob = hex::encode(&les.epoch_id()[..4]);
    let mut want = vec![
        (main.clone(), Withholding::HeadWithheld),
        (main, Withholding::ObjectWithheld),
        (lob.clone(), Withholding::HeadRolledBack),
        (lob, Withholding::ObjectWithheld),
    ];
    want.sort();
    assert_eq!(kinds(&rep.found), want);
    assert!(rep.found.iter().all(|x| x.device == me));
    assert_eq!((rep.heads, rep.objects), (2, 4));
    assert!(
        files(&store).await == complete,
        "every file is back as it was"
    );

    // Idempotent.
    let again = a.space.repair().await.unwrap();
    assert!(
        again.found.is_empty() && again.heads + again.objects == 0 && again.errors.is_empty(),
        "{again:?}"
    );

    // The reader's marks accept the repaired head; a new device loads all of it,
    // from the snapshot and the live segment, and sees the checkpoint.
    let r = b.pull().await;
    assert!(r.errors.is_empty() && r.alarms.is_empty(), "{:?}", r.errors);
    assert_eq!(b.replica.state_digest(), a.restored(&w).state_digest());
    let mut c = device(&w, &store, 2).await;
    let (chosen, errors) = c.checkpoints().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(chosen.get(&w.doc_id).map(|(c, _)| c.id), Some(cps[0]));
    let r = c.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(c.replica.state_digest(), b.replica.state_digest());
}

async fn fork_is_reported_and_newer_own_head_adopted(store: OpendalStore) {
    let w = world();
    let mut a = device(&w, &store, 0).await;
    let mut b = device(&w, &store, 1).await;
    let key = w.device(0);
    let me = key.public_bytes();
    let es = a.space.current().clone();
    let head = es.head_path(&me).unwrap();
    a.edit("one ");
    a.space.flush().await.unwrap();
    let committed = store.get(&head).await.unwrap().unwrap();
    let o = open_object(&es, Kind::Head, &committed, &[me]).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([7; 32]);

    // The same manifest sealed again: same counter, other bytes.
    let forked = seal_object(&es, Kind::Head, &key, o.body.clone(), &mut rng).unwrap();
    assert_ne!(forked, committed);
    store.put_owned(&head, forked.clone()).await.unwrap();
    let rep = a.space.repair().await.unwrap();
    assert_eq!(kinds(&rep.found).len(), 1);
    assert_eq!(rep.found[0].kind, Withholding::HeadForked);
    assert!(
        rep.errors.iter().any(|e| e.to_string().contains("forked")),
        "{:?}",
        rep.errors
    );
    assert_eq!(rep.heads, 0);
    assert_eq!(
        store.get(&head).await.unwrap().unwrap(),
        forked,
        "not overwritten"
    );

    // Garbage at the head path is not this device's manifest: replaced.
    store.put_owned(&head, b"junk".to_vec()).await.unwrap();
    let rep = a.space.repair().await.unwrap();
    assert_eq!(rep.heads, 1);
    assert_eq!(store.get(&head).await.unwrap().unwrap(), committed);
    let r = b.pull().await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    // A manifest of this device with a higher counter (its local store is older
    // than its writes): adopted, and the next write continues above it.
    let mut m = HeadManifest::decode(&o.body, &es, &me).unwrap();
    m.counter += 10;
    let ahead = seal_object(&es, Kind::Head, &key, m.encode(&es), &mut rng).unwrap();
    store.put_owned(&head, ahead).await.unwrap();
    let rep = a.space.repair().await.unwrap();
    assert_eq!((rep.adopted, rep.heads), (1, 0));
    assert!(rep.found.is_empty(), "{:?}", rep.found);
    a.edit("two ");
    a.space.flush().await.unwrap();
    let r = b.pull().await;
    assert!(r.errors.is_empty(), "no rollback or fork: {:?}", r.errors);
    assert_eq!(b.replica.state_digest(), a.replica.state_digest());
}

macro_rules! suite {
    ($($kind:ident),*) => {$(
        mod $kind {
            use super::*;

            fn store(tmp: &tempfile::TempDir) -> Option<OpendalStore> {
                backend(stringify!($kind), tmp.path())
            }

            #[test]
            fn repairs_each_kind() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::repairs_each_kind(s));
            }

            #[test]
            fn fork_is_reported_and_newer_own_head_adopted() {
                let tmp = tempfile::tempdir().unwrap();
                let Some(s) = store(&tmp) else { return };
                common::block_on(super::fork_is_reported_and_newer_own_head_adopted(s));
            }
        }
    )*};
}

suite!(fs, memory, s3, webdav);
