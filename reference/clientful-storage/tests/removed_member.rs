//! A removed member, and a revoked device, cannot read anything written to storage
//! after the removal (spec KEY-1, THREAT-5, STO-3): the epochs come from a real
//! membership log (`clientful_core::membership`, driven by the simulator's
//! membership network), the storage keys follow them, and the removed member
//! receives every object — segments, snapshot, head manifests — and opens none.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::membership::{Role, Scope};
use clientful_doc::crdt::YjsSchema;
use clientful_doc::testkit::insert_text;
use clientful_doc::{CrdtKind, Replica, ReplicaConfig};
use clientful_sim::membership::MemberNet;
use clientful_storage::layout::EpochStorage;
use clientful_storage::object::{Kind, open_object};
use clientful_storage::space::SpaceConfig;
use clientful_storage::{BlobStore, LocalStore, OpendalStore, Space};

const DOC: [u8; 32] = [0xd0; 32];

/// The chain of `node` as (current, older).
fn keys(net: &MemberNet, node: usize) -> (EpochKey, Vec<EpochKey>) {
    let sp = net.nodes[node].space();
    let current = sp.current_epoch().expect("a current epoch");
    let old = sp
        .epoch_chain()
        .into_iter()
        .filter(|k| k.id() != current.id())
        .collect();
    (current, old)
}

fn device_key(net: &MemberNet, node: usize) -> SigningKey {
    SigningKey::from_seed(&net.nodes[node].space().identity().device.signing.seed())
}

#[test]
fn removed_member_and_revoked_device_open_nothing_written_after() {
    common::block_on(async {
        // Alice (admin), Bob (writer) and Carol (writer); Carol has a second device.
        let mut net = MemberNet::new(41, "alice");
        let (bob, bob_cert) = net.new_user("bob");
        let (carol, carol_cert) = net.new_user("carol");
        let (carol2, carol2_cert) = net.new_device("carol2", carol);
        let bob_user = net.nodes[bob].user.public_bytes();
        let carol_user = net.nodes[carol].user.public_bytes();
        let crypto = &mut net.crypto;
        let alice = net.nodes[0].space_mut();
        alice
            .add_member(
                crypto,
                &bob_user,
                Role::Writer,
                &Scope::whole(),
                &[bob_cert],
            )
            .unwrap();
        alice
            .add_member(
                crypto,
                &carol_user,
                Role::Writer,
                &Scope::whole(),
                &[carol_cert, carol2_cert],
            )
            .unwrap();
        net.settle(&[0, bob, carol, carol2]);
        let (before, _) = keys(&net, 0);
        assert_eq!(
            keys(&net, bob).0.id(),
            before.id(),
            "Bob held the key before"
        );

        // Alice removes Bob, and Carol's lost second device is revoked.
        let carol2_id = net.nodes[carol2].space().identity().device_id();
        let crypto = &mut net.crypto;
        net.nodes[0]
            .space_mut()
            .remove_member(crypto, &bob_user, &[])
            .unwrap();
        net.flush(0);
        net.run_random();
        let crypto = &mut net.crypto;
        net.nodes[carol]
            .space_mut()
            .revoke_device(crypto, &carol2_id, &[])
            .unwrap();
        net.settle(&[0, carol]);
        // Bob and the revoked device still receive everything the others send.
        net.full_sync();
        let (current, older) = keys(&net, 0);
        assert_ne!(current.id(), before.id(), "the removal rotated the keys");
        for outsider in [bob, carol2] {
            assert!(
                net.nodes[outsider]
                    .space()
                    .epoch_chain()
                    .iter()
                    .all(|k| k.id() != current.id()),
                "{} learnt the new epoch",
                net.nodes[outsider].name
            );
        }

        // Alice writes after the removal: a segment, then a snapshot (compaction).
        let space_id = *net.nodes[0].space().space_id();
        let alice_pub = device_key(&net, 0).public_bytes();
        let mut replica = Replica::new(ReplicaConfig {
            space_id,
            doc_id: DOC,
            device: device_key(&net, 0),
            epoch: current.clone(),
            old_epochs: older.clone(),
            signers: vec![alice_pub],
            crdt: CrdtKind::Yjs,
            yjs_schema: YjsSchema::default(),
            rng_seed: [7; 32],
        });
        insert_text(&mut replica, 0, "after the removal").unwrap();
        replica.commit().unwrap();
        let envs: Vec<Vec<u8>> = replica.drain_outbox().into_iter().map(|(_, b)| b).collect();
        let store = OpendalStore::memory().unwrap();
        let mut writer = Space::new(
            store.clone(),
            LocalStore::in_memory().unwrap(),
            SpaceConfig {
                space_id,
                device: device_key(&net, 0),
                epoch: current.clone(),
                old_epochs: older.clone(),
                signers: vec![alice_pub],
                rng_seed: Some([8; 32]),
            },
        )
        .unwrap();
        writer.init().await.unwrap();
        writer.record(&envs).unwrap();
        writer.flush().await.unwrap();
        writer.compact().await.unwrap();

        // A remaining member reads it all (the control).
        let (c_current, c_older) = keys(&net, carol);
        assert_eq!(c_current.id(), current.id());
        let mut reader = Space::new(
            store.clone(),
            LocalStore::in_memory().unwrap(),
            SpaceConfig {
                space_id,
                device: device_key(&net, carol),
                epoch: c_current,
                old_epochs: c_older,
                signers: vec![alice_pub],
                rng_seed: Some([9; 32]),
            },
        )
        .unwrap();
        let r = reader.pull().await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(reader.local().all_envelopes().unwrap().len(), 1);

        // Every object in storage, under every key the outsiders hold, as every kind.
        let paths = store.list("").await.unwrap();
        assert!(
            paths.len() >= 3,
            "format file, segment, head, snapshot: {paths:?}"
        );
        let mut tried = 0;
        for outsider in [bob, carol2] {
            let theirs: Vec<EpochStorage> = net.nodes[outsider]
                .space()
                .epoch_chain()
                .iter()
                .map(|k| EpochStorage::derive(&space_id, k).unwrap())
                .collect();
            assert!(!theirs.is_empty());
            for p in &paths {
                let bytes = store.get(p).await.unwrap().unwrap();
                for es in &theirs {
                    for kind in [Kind::Head, Kind::Segment, Kind::Snapshot, Kind::File] {
                        tried += 1;
                        assert!(
                            open_object(es, kind, &bytes, &[alice_pub]).is_err(),
                            "{} opened {p} as {kind:?}",
                            net.nodes[outsider].name
                        );
                    }
                }
            }
            // And through the storage layer: they find nothing to load.
            let (o_current, o_older) = keys(&net, outsider);
            let mut space = Space::new(
                store.clone(),
                LocalStore::in_memory().unwrap(),
                SpaceConfig {
                    space_id,
                    device: device_key(&net, outsider),
                    epoch: o_current,
                    old_epochs: o_older,
                    signers: vec![alice_pub],
                    rng_seed: Some([10; 32]),
                },
            )
            .unwrap();
            let _ = space.pull().await;
            assert_eq!(space.local().all_envelopes().unwrap().len(), 0);
        }
        assert!(tried > 0);
    });
}
