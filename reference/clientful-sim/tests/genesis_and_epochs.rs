//! Issue 22, findings 1 and 3 (rule flaws in membership and keys), replayed on
//! many seeded random delivery schedules (reordering, duplicates), with the
//! outcome asserted identically on every replica.
//!
//! | test | finding | rule |
//! |---|---|---|
//! | `rival_genesis_is_evidence` | a creator device key signs a second genesis with a lower id and takes the space | MEM-6, MEM-17 (a), MEM-26, MEM-27 |
//! | `private_epoch_splits_nobody` | a writer's private epoch, handed to some members, splits the document | KEY-18, KEY-19, MEM-18 |
//! spec: MEM-6, MEM-17, MEM-26, MEM-27, KEY-8, KEY-16, KEY-18, KEY-19.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::ErrorClass;
use clientful_core::envelope;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::membership::epoch::{self, Recipient};
use clientful_core::membership::ops::OpBody;
use clientful_core::membership::space::{Alarm, Identity};
use clientful_core::membership::{Role, Scope, SpaceReplica, Verdict};
use clientful_core::testkit::forge;
use clientful_doc::authority::Membership;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::testkit::insert_text;
use clientful_doc::{CrdtKind, Replica, ReplicaConfig};
use clientful_sim::membership::{Item, MemberNet};

mod common;

use common::group;

const SEEDS: u64 = 24;

fn recipient(net: &MemberNet, n: usize) -> Recipient {
    let me = net.nodes[n].space().identity();
    Recipient {
        device_id: me.device_id(),
        x25519: me.verified.device_x25519,
    }
}

/// The space's accepted `CREATE_SPACE` on node `n`: its id and nonce.
fn genesis_of(net: &MemberNet, n: usize) -> ([u8; 32], [u8; 32]) {
    let sp = net.nodes[n].space();
    let id = sp.state().genesis.expect("genesis");
    let OpBody::CreateSpace { nonce, .. } = &sp.op(&id).unwrap().body else {
        panic!("genesis is not CREATE_SPACE");
    };
    (id, *nonce)
}

/// The attacker: a device key certified by the creator's user key (a stolen,
/// revoked or never-added device of the creator), signing a second
/// `CREATE_SPACE` with the creator's user key and the genesis nonce (so the
/// same space id), re-sealed until its envelope id is below the real one
/// (`clientful_core::testkit::forge::rival_genesis`). Returns the rival
/// envelope, the rival's first epoch, the real genesis id and the rival device.
fn rival_genesis(net: &mut MemberNet) -> (Vec<u8>, EpochKey, [u8; 32], (SigningKey, Vec<u8>)) {
    let (real, nonce) = genesis_of(net, 0);
    let space_id = *net.nodes[0].space().space_id();
    let creator = SigningKey::from_seed(&net.nodes[0].user.seed());
    let r = forge::rival_genesis(&mut net.crypto, &creator, space_id, nonce, Some(&real)).unwrap();
    let signer = (r.device.signing, r.device.certificate);
    (r.envelope, r.epoch, real, signer)
}

/// Finding 1: a device key certified by the creator's user key signs a second
/// genesis (same user key and nonce, so the same space id) whose id is lower
/// than the real one, and hands every member its epoch secret in a welcome.
/// Today's rule (the lowest `CREATE_SPACE` stands) voids the real genesis and
/// everything after it. Now every replica, pinned to the genesis it was given
/// (its own, the one in its invite code), rejects the rival, reports it as
/// evidence, and keeps its members and admins; so does a device that joins by
/// invite afterwards and sees the rival first.
#[test]
fn rival_genesis_is_evidence() {
    for seed in 0..SEEDS {
        let (mut net, mut idx) = group(seed, &[("B", Role::Admin), ("C", Role::Writer)]);
        let before = net.nodes[0].space().state().members.clone();
        let (rival, e, real, attacker) = rival_genesis(&mut net);
        // The attacker signs its welcomes with its own device key, naming the
        // real genesis as the operation that added it (it did not: KEY-21).
        let signer = epoch::WelcomeSigner {
            signing: &attacker.0,
            certificate: &attacker.1,
            added_by: real,
        };
        let rival_id = envelope::decode(&rival).unwrap().id;
        let space_id = *net.nodes[0].space().space_id();
        for &n in &idx {
            let to = recipient(&net, n);
            let w = epoch::welcome(
                &mut net.crypto,
                &space_id,
                &signer,
                &to,
                std::slice::from_ref(&e),
            )
            .unwrap();
            net.send(n, Item::Welcome(w));
            net.send(n, Item::Envelope(rival.clone()));
        }
        net.run_random();
        // A newcomer joins by invite and receives the rival first.
        let code = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), true, 0)
            .unwrap();
        net.settle(&idx);
        let user = SigningKey::generate(&mut net.crypto);
        let me = Identity::new(&user, DeviceKeys::generate(&mut net.crypto)).unwrap();
        let mut sp = SpaceReplica::redeem(&mut net.crypto, &code, me, Role::Writer).unwrap();
        let w = epoch::welcome(
            &mut net.crypto,
            &space_id,
            &signer,
            &Recipient {
                device_id: sp.identity().device_id(),
                x25519: sp.identity().verified.device_x25519,
            },
            std::slice::from_ref(&e),
        )
        .unwrap();
        let _ = sp.receive_welcome(&w);
        sp.receive(&rival);
        let d = net.push_node("D", user, sp);
        idx.push(d);
        net.settle(&idx);
        // The attacker's welcomes are signed by a device no operation added:
        // a replica that checks one before opening the rival drops its secret
        // (KEY-21, KEY-22) and holds the rival unopened; one that opened the
        // rival first rejects it. Either way the states agree.
        let s = net.nodes[idx[0]].space().state().clone();
        for &n in &idx {
            let sp = net.nodes[n].space();
            assert_eq!(
                sp.state().digest().unwrap(),
                s.digest().unwrap(),
                "seed {seed} node {n}: same membership"
            );
            assert!(
                sp.held_count() <= 1,
                "seed {seed} node {n}: only the rival held"
            );
        }
        let attacker_device = clientful_core::identity::verify_certificate(&attacker.1, None)
            .unwrap()
            .device_id;
        assert_eq!(
            s.genesis,
            Some(real),
            "seed {seed}: the real genesis stands"
        );
        for (u, m) in &before {
            assert_eq!(
                s.members.get(u).map(|x| x.role),
                Some(m.role),
                "seed {seed}"
            );
        }
        assert!(
            s.members.contains_key(&net.user_key(d)),
            "seed {seed}: D admitted"
        );
        for &n in &idx {
            let sp = net.nodes[n].space();
            assert_eq!(sp.verdict(&real), Verdict::Accepted, "seed {seed} node {n}");
            let opened = sp.verdict(&rival_id) != Verdict::Unknown;
            if opened || n == d {
                assert_eq!(
                    sp.verdict(&rival_id),
                    Verdict::Rejected(ErrorClass::InvalidOperation),
                    "seed {seed} node {n}: the rival is rejected"
                );
                assert_eq!(
                    sp.rival_genesis(),
                    vec![rival_id],
                    "seed {seed} node {n}: the rival is reported as evidence"
                );
                assert!(
                    sp.alarms()
                        .iter()
                        .any(|a| matches!(a, Alarm::RivalGenesis { op, .. } if *op == rival_id))
                );
            }
            assert!(
                sp.alarms().iter().any(|a| matches!(
                    a,
                    Alarm::ForeignWelcome { device_id, class: ErrorClass::NotAMember, .. }
                        if *device_id == attacker_device
                )),
                "seed {seed} node {n}: the attacker's welcome is reported"
            );
            assert!(
                !sp.keys().contains(e.id()),
                "seed {seed} node {n}: the rival epoch is not usable"
            );
        }
    }
}

fn membership(net: &MemberNet, n: usize) -> Membership {
    let sp = net.nodes[n].space();
    Membership {
        view: sp.write_view(),
        keys: sp.keys().all(),
        current: sp.current_epoch().unwrap(),
        folders: vec![],
    }
}

fn doc_replica(net: &MemberNet, n: usize, doc: [u8; 32], epoch: EpochKey) -> Replica {
    let sp = net.nodes[n].space();
    let mut r = Replica::new(ReplicaConfig {
        space_id: *sp.space_id(),
        doc_id: doc,
        device: SigningKey::from_seed(&sp.identity().device.signing.seed()),
        epoch,
        old_epochs: vec![],
        signers: vec![],
        crdt: CrdtKind::Yjs,
        yjs_schema: YjsSchema::default(),
        rng_seed: [n as u8 + 1; 32],
    });
    r.set_membership(membership(net, n));
    r
}

fn edit(r: &mut Replica, text: &str) -> Vec<u8> {
    insert_text(r, 0, text).unwrap();
    r.commit().unwrap().unwrap();
    r.drain_outbox().pop().unwrap().1
}

/// Finding 3: writer B makes a private epoch that no rotation created, hands
/// its secret to C only (a welcome on even seeds, a key message no operation
/// commits to on odd ones) and writes under it. Today C reads it and writes on
/// top, and A, who cannot open it, buffers C's honest edit forever: a silent,
/// permanent split. Now no replica uses an epoch no accepted rotation created:
/// B's envelope is UNKNOWN_EPOCH on every replica, C's edit is built on what
/// everyone holds, and every replica materialises the same document.
#[test]
fn private_epoch_splits_nobody() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Writer), ("C", Role::Writer)]);
        let (a, b, c) = (idx[0], idx[1], idx[2]);
        let space_id = *net.nodes[b].space().space_id();
        let private = epoch::new_epoch(&mut net.crypto, &space_id).unwrap();
        let (to_b, to_c) = (recipient(&net, b), recipient(&net, c));
        if seed % 2 == 0 {
            let w =
                common::signed_welcome(&mut net, b, [0; 32], &to_c, std::slice::from_ref(&private));
            net.send(c, Item::Welcome(w));
        } else {
            let (km, _) =
                epoch::key_message(&mut net.crypto, &space_id, &private, &[to_c, to_b]).unwrap();
            net.broadcast(b, Item::KeyMessage(km));
        }
        net.run_random();
        net.settle(&idx);
        let doc = [0x61u8; 32];
        let mut rb = Replica::new(ReplicaConfig {
            space_id,
            doc_id: doc,
            device: SigningKey::from_seed(&net.nodes[b].space().identity().device.signing.seed()),
            epoch: private.clone(),
            old_epochs: vec![],
            signers: vec![],
            crdt: CrdtKind::Yjs,
            yjs_schema: YjsSchema::default(),
            rng_seed: [7; 32],
        });
        let secret = edit(&mut rb, "private ");
        let current = net.nodes[a].space().current_epoch().unwrap();
        let mut ra = doc_replica(&net, a, doc, current.clone());
        let mut rc = doc_replica(&net, c, doc, current);
        rc.receive(&secret);
        let honest = edit(&mut rc, "honest ");
        if seed % 3 == 0 {
            ra.receive(&honest);
            ra.receive(&secret);
        } else {
            ra.receive(&secret);
            ra.receive(&honest);
        }
        let id = |e: &Vec<u8>| envelope::decode(e).unwrap().id;
        for (name, r) in [("alice", &ra), ("carol", &rc)] {
            assert_eq!(
                r.verdict(&id(&honest)),
                clientful_doc::Verdict::Applied,
                "seed {seed} {name}: the honest edit is integrated"
            );
            assert_ne!(
                r.verdict(&id(&secret)),
                clientful_doc::Verdict::Applied,
                "seed {seed} {name}: the private epoch's envelope is not used"
            );
        }
        assert_eq!(
            ra.verdict(&id(&secret)),
            rc.verdict(&id(&secret)),
            "seed {seed}"
        );
        assert_eq!(ra.materialize(), rc.materialize(), "seed {seed}");
        assert_eq!(ra.state_digest(), rc.state_digest(), "seed {seed}");
        for &n in &idx {
            assert!(
                !net.nodes[n].space().keys().contains(private.id()),
                "seed {seed} node {n}: the private epoch is not usable"
            );
        }
    }
}

/// Finding 3 follow-up (KEY-20..KEY-22): a welcome must come from an active
/// member device. An outsider (a user never added, on even seeds) or a removed
/// member holding the epoch its removal created (a stolen secret, on odd seeds)
/// welcomes a newcomer N before N's addition. Every honest welcome still
/// arrives; N reports the foreign welcome as evidence once its log shows who
/// stood, and converges with everyone.
#[test]
fn welcome_from_non_member_is_evidence() {
    for seed in 0..SEEDS {
        let (mut net, mut idx) = group(seed, &[("B", Role::Writer), ("C", Role::Writer)]);
        let (a, c) = (idx[0], idx[2]);
        let forger = if seed % 2 == 0 {
            let (o, _) = net.new_user("O");
            o
        } else {
            let user_c = net.user_key(c);
            net.nodes[a]
                .space_mut()
                .remove_member(&mut net.crypto, &user_c, &[])
                .unwrap();
            idx.retain(|&n| n != c);
            net.settle(&idx);
            c
        };
        let stolen = net.nodes[a].space().current_epoch().unwrap();
        let (n, cert) = net.new_user("N");
        let to_n = recipient(&net, n);
        let genesis = net.nodes[a].space().state().genesis.unwrap();
        let w = common::signed_welcome(
            &mut net,
            forger,
            genesis,
            &to_n,
            std::slice::from_ref(&stolen),
        );
        let forger_device = net.nodes[forger].space().identity().device_id();
        net.send(n, Item::Welcome(w));
        let user_n = net.user_key(n);
        net.nodes[a]
            .space_mut()
            .add_member(
                &mut net.crypto,
                &user_n,
                Role::Writer,
                &Scope::whole(),
                &[cert],
            )
            .unwrap();
        idx.push(n);
        net.settle(&idx);
        let s = net.assert_converged(&idx);
        assert!(s.members.contains_key(&user_n), "seed {seed}: N added");
        assert_eq!(
            net.nodes[n].space().current_epoch().map(|e| *e.id()),
            net.nodes[a].space().current_epoch().map(|e| *e.id()),
            "seed {seed}: N holds the current epoch (honest welcome)"
        );
        let want = if seed % 2 == 0 {
            ErrorClass::NotAMember
        } else {
            ErrorClass::RemovedMember
        };
        assert!(
            net.nodes[n].space().alarms().iter().any(|al| matches!(
                al,
                Alarm::ForeignWelcome { device_id, class, .. }
                    if *device_id == forger_device && *class == want
            )),
            "seed {seed}: the welcome from a non-member is reported: {:?}",
            net.nodes[n].space().alarms()
        );
        // No honest welcome is reported.
        assert_eq!(
            net.nodes[n]
                .space()
                .alarms()
                .iter()
                .filter(|al| matches!(al, Alarm::ForeignWelcome { .. }))
                .count(),
            1,
            "seed {seed}"
        );
        for &m in &idx {
            assert!(
                !net.nodes[m]
                    .space()
                    .alarms()
                    .iter()
                    .any(|al| matches!(al, Alarm::ForeignWelcome { .. }))
                    || m == n,
                "seed {seed} node {m}: honest welcomes raise no alarm"
            );
        }
    }
}
