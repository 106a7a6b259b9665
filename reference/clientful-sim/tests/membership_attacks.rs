//! Membership under attack (spec §11, issue "membership under attack"): each
//! attack that the rules of §11.4 used to allow, replayed on many seeded random
//! delivery schedules (reordering, duplicates), with the documented outcome
//! asserted identically on every replica.
//!
//! | test | finding | rule |
//! |---|---|---|
//! | `used_single_use_invite_admits_nobody` | a used code admits a stranger and evicts its user | MEM-25, MEM-17 (d) |
//! | `removed_member_cannot_keep_writing` | a removed member writes forever | MEM-18 (removal cut) |
//! | `withheld_removal_is_repaired` | a withheld removal leaves a member on the old epoch | KEY-15, MEM-18 |
//! | `seniority_follows_admission` | an old admin invite inverts seniority | MEM-17 (b), MEM-25 |
//! | `late_redemption_does_not_unsettle` | a late redemption un-settles earlier members | MEM-15 |
//! | `closed_invites_admit_nobody` | revoked, demoted or removed admins' invites still admit | MEM-22, MEM-17 (c) |
//! spec: MEM-15, MEM-17, MEM-18, MEM-21, MEM-22, MEM-25, KEY-4, KEY-15.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::ErrorClass;
use clientful_core::envelope;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::SigningKey;
use clientful_core::membership::space::Identity;
use clientful_core::membership::{Cut, Role, Scope, SpaceReplica, Verdict};
use clientful_doc::authority::Membership;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::testkit::insert_text;
use clientful_doc::{CrdtKind, Replica, ReplicaConfig};
use clientful_sim::membership::MemberNet;

mod common;

use common::group;

const SEEDS: u64 = 24;

/// A new user redeems `code` asking for `role`; returns its node.
fn redeem(net: &mut MemberNet, name: &str, code: &[u8], role: Role) -> usize {
    let user = SigningKey::generate(&mut net.crypto);
    let dev = DeviceKeys::generate(&mut net.crypto);
    let me = Identity::new(&user, dev).unwrap();
    let sp = SpaceReplica::redeem(&mut net.crypto, code, me, role).unwrap();
    net.push_node(name, user, sp)
}

fn is_member(net: &MemberNet, observer: usize, user_of: usize) -> bool {
    net.nodes[observer]
        .space()
        .state()
        .members
        .contains_key(&net.user_key(user_of))
}

/// Finding 1: alice's single-use invite is used by bob and he is admitted;
/// carol later redeems the same code (seen in a chat log). Bob stays, carol is
/// refused on every replica, with or without edits in between, and carol never
/// receives a key.
#[test]
fn used_single_use_invite_admits_nobody() {
    for seed in 0..SEEDS {
        let (mut net, mut idx) = group(seed, &[("D", Role::Admin)]);
        let code = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), true, 0)
            .unwrap();
        net.settle(&idx);
        let bob = redeem(&mut net, "bob", &code, Role::Writer);
        net.run_random();
        idx.push(bob);
        net.settle(&idx);
        assert!(is_member(&net, 0, bob), "seed {seed}: bob admitted");
        if seed % 2 == 0 {
            // Membership traffic between the two redemptions.
            net.nodes[0].space_mut().rotate(&mut net.crypto).unwrap();
            net.settle(&idx);
        }
        let carol = redeem(&mut net, "carol", &code, Role::Writer);
        net.run_random();
        let mut actors = idx.clone();
        actors.push(carol);
        net.settle(&actors);
        let s = net.assert_converged(&idx);
        assert!(s.members.contains_key(&net.user_key(bob)), "seed {seed}");
        assert!(!s.members.contains_key(&net.user_key(carol)), "seed {seed}");
        assert!(s.members[&net.user_key(bob)].settled);
        let refused = net.nodes[0].space().refused_redemptions();
        assert_eq!(refused.len(), 1, "seed {seed}: carol is reported refused");
        assert_eq!(refused[0].1, net.user_key(carol));
        assert!(net.nodes[carol].space().keys().is_empty(), "seed {seed}");
        assert!(net.nodes[bob].space().current_epoch().is_some());
    }
}

/// Concurrent admissions on two partitions: two admins admit two redemptions
/// of one single-use invite; exactly one stands on every replica (the admission
/// with the lower position), the other admin's device reports the refusal,
/// and the loser never gets a key.
#[test]
fn single_use_concurrent_admissions_have_one_winner() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("D", Role::Admin)]);
        let (a, d) = (idx[0], idx[1]);
        let code = net.nodes[a]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), true, 0)
            .unwrap();
        net.settle(&idx);
        let u1 = redeem(&mut net, "U1", &code, Role::Writer);
        let u2 = redeem(&mut net, "U2", &code, Role::Writer);
        net.run_random();
        // Concurrently, before either sees the other's admission: A admits
        // U1's redemption, D admits U2's.
        let red = |net: &MemberNet, u: usize| {
            let user = net.user_key(u);
            *net.nodes[a]
                .space()
                .state()
                .redemptions
                .iter()
                .find(|(_, r)| r.user == user)
                .unwrap()
                .0
        };
        let (r1, r2) = (red(&net, u1), red(&net, u2));
        net.nodes[a]
            .space_mut()
            .admit(&mut net.crypto, &r1)
            .unwrap();
        net.nodes[d]
            .space_mut()
            .admit(&mut net.crypto, &r2)
            .unwrap();
        let mut actors = idx.clone();
        actors.extend([u1, u2]);
        net.settle(&actors);
        let s = net.assert_converged(&idx);
        let m1 = s.members.contains_key(&net.user_key(u1));
        let m2 = s.members.contains_key(&net.user_key(u2));
        assert!(m1 ^ m2, "seed {seed}: exactly one redeemer is a member");
        let (winner, loser) = if m1 { (u1, u2) } else { (u2, u1) };
        let mut all = idx.clone();
        all.push(winner);
        net.assert_converged(&all);
        assert!(net.nodes[loser].space().keys().is_empty());
        for &n in &idx {
            let refused = net.nodes[n].space().refused_redemptions();
            assert_eq!(refused.len(), 1, "seed {seed}: refusal reported");
            assert_eq!(refused[0].1, net.user_key(loser));
        }
    }
}

fn membership(net: &MemberNet, n: usize) -> Membership {
    let sp = net.nodes[n].space();
    Membership {
        view: sp.write_view(),
        keys: sp.keys().all(),
        current: sp
            .current_epoch()
            .or_else(|| sp.keys().all().pop())
            .unwrap(),
        folders: vec![],
    }
}

fn doc_replica(net: &MemberNet, n: usize, doc: [u8; 32]) -> Replica {
    let sp = net.nodes[n].space();
    let mut r = Replica::new(ReplicaConfig {
        space_id: *sp.space_id(),
        doc_id: doc,
        device: SigningKey::from_seed(&sp.identity().device.signing.seed()),
        epoch: sp.current_epoch().unwrap(),
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

/// The removal cut of `node`'s device from the document replicas `reps`.
fn cut_of(net: &MemberNet, node: usize, reps: &[&Replica]) -> Vec<Cut> {
    let key = net.nodes[node]
        .space()
        .identity()
        .device
        .signing
        .public_bytes();
    reps.iter()
        .filter_map(|r| {
            r.chain_heights().get(&key).map(|seq| Cut {
                device_id: net.device_id(node),
                doc_id: *r.doc_id(),
                seq: *seq,
            })
        })
        .collect()
}

/// Finding 2: alice removes bob; bob, who never learns a newer epoch, keeps
/// editing the document under the old epoch and creates a new document. Every
/// replica (carol saw bob's later edits before the removal reached her)
/// rejects each post-removal write as REMOVED_MEMBER, keeps what alice had
/// integrated, and materialises the same document.
#[test]
fn removed_member_cannot_keep_writing() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Writer), ("C", Role::Writer)]);
        let (a, b, c) = (idx[0], idx[1], idx[2]);
        let doc = [0x51u8; 32];
        let new_doc = [0x52u8; 32];
        let mut ra = doc_replica(&net, a, doc);
        let mut rb = doc_replica(&net, b, doc);
        let mut rc = doc_replica(&net, c, doc);
        let before = edit(&mut rb, "b-before ");
        ra.receive(&before);
        rc.receive(&before);
        let old = net.nodes[b].space().current_epoch().unwrap();
        // C is offline: the removal reaches her late.
        net.offline[c] = true;
        let bu = net.user_key(b);
        let cuts = cut_of(&net, b, &[&ra]);
        assert_eq!(cuts.len(), 1);
        net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &bu, &cuts)
            .unwrap();
        net.settle(&[a]);
        ra.set_membership(membership(&net, a));
        // Bob keeps writing, again and again, under the only epoch he holds.
        let mut later = Vec::new();
        for i in 0..3 {
            later.push(edit(&mut rb, &format!("b-later-{i} ")));
        }
        let mut rb_new = Replica::new(ReplicaConfig {
            space_id: *net.nodes[b].space().space_id(),
            doc_id: new_doc,
            device: SigningKey::from_seed(&net.nodes[b].space().identity().device.signing.seed()),
            epoch: old.clone(),
            old_epochs: vec![],
            signers: vec![],
            crdt: CrdtKind::Yjs,
            yjs_schema: YjsSchema::default(),
            rng_seed: [9; 32],
        });
        // Bob's own view of the space (he has not seen his removal): it gives
        // his device its index, hence its Yjs client id (DOC-19).
        rb_new.set_membership(membership(&net, b));
        let created = edit(&mut rb_new, "b-new-doc");
        // Carol receives bob's later writes before she learns the removal.
        for e in &later {
            rc.receive(e);
        }
        net.offline[c] = false;
        net.settle(&[a, c]);
        rc.set_membership(membership(&net, c));
        let mut rc_new = doc_replica(&net, c, new_doc);
        let mut ra_new = doc_replica(&net, a, new_doc);
        // Alice receives them after the removal, in a seeded order.
        let mut order = later.clone();
        if seed % 2 == 1 {
            order.reverse();
        }
        for e in &order {
            ra.receive(e);
        }
        ra_new.receive(&created);
        rc_new.receive(&created);
        net.assert_converged(&[a, c]);
        let id = |e: &Vec<u8>| envelope::decode(e).unwrap().id;
        for (name, r, r_new) in [
            ("alice", &mut ra, &mut ra_new),
            ("carol", &mut rc, &mut rc_new),
        ] {
            assert_eq!(
                r.verdict(&id(&before)),
                clientful_doc::Verdict::Applied,
                "seed {seed} {name}"
            );
            for e in &later {
                assert_eq!(
                    r.verdict(&id(e)),
                    clientful_doc::Verdict::Rejected(ErrorClass::RemovedMember),
                    "seed {seed} {name}"
                );
            }
            assert_eq!(
                r_new.verdict(&id(&created)),
                clientful_doc::Verdict::Rejected(ErrorClass::RemovedMember),
                "seed {seed} {name}: a new document after the removal"
            );
            let text = format!("{:?}", r.materialize());
            assert!(text.contains("b-before"), "{text}");
            assert!(!text.contains("b-later"), "seed {seed} {name}: {text}");
        }
        assert_eq!(ra.materialize(), rc.materialize());
        assert_eq!(ra.state_digest(), rc.state_digest());
    }
}

/// Finding 3: the removal is withheld from carol (bob rolled the storage
/// back): carol keeps writing under the old epoch, which bob reads. Once the
/// withheld operations are delivered again (alice's device re-uploads what it
/// finds missing), carol holds the new epoch, writes under it, and bob can
/// open nothing she writes after that.
#[test]
fn withheld_removal_is_repaired() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Writer), ("C", Role::Writer)]);
        let (a, b, c) = (idx[0], idx[1], idx[2]);
        let old = net.nodes[c].space().current_epoch().unwrap();
        // Withheld: carol is cut off while alice removes bob.
        net.offline[c] = true;
        let bu = net.user_key(b);
        net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &bu, &[])
            .unwrap();
        net.settle(&[a]);
        // Drop everything queued for carol: the storage lost it.
        net.drop_queued_to(c);
        net.offline[c] = false;
        assert_eq!(
            net.nodes[c].space().current_epoch().unwrap().id(),
            old.id(),
            "seed {seed}: carol still writes under the old epoch"
        );
        // Repair: alice uploads her objects again (a full sync from her).
        net.settle(&[a, c]);
        let new = net.nodes[c].space().current_epoch().unwrap();
        assert_ne!(
            new.id(),
            old.id(),
            "seed {seed}: carol learned the new epoch"
        );
        assert_eq!(new.id(), net.nodes[a].space().current_epoch().unwrap().id());
        net.assert_converged(&[a, c]);
        // What carol writes now, bob cannot open with anything he holds.
        let sealed = envelope::seal(
            &SigningKey::from_seed(&net.nodes[c].space().identity().device.signing.seed()),
            &new,
            &envelope::SealRequest {
                space_id: *net.nodes[c].space().space_id(),
                doc_id: [7u8; 32],
                seq: 1,
                prev: None,
                preds: vec![],
                content_type: 1,
                body: b"after the repair",
            },
            &mut net.crypto,
        )
        .unwrap();
        assert!(!net.nodes[b].space().keys().contains(new.id()));
        let bob_keys = net.nodes[b].space().keys().all();
        assert!(bob_keys.iter().all(|k| k.id() != new.id()));
        let d = envelope::decode(&sealed.bytes).unwrap();
        assert_eq!(d.header.epoch_id, *new.id());
    }
}

/// Finding 4: alice creates admin invite I1 (unused), then I2; dave redeems I2
/// and is admitted; much later eve redeems I1 and is admitted. Dave and eve
/// remove each other concurrently: dave, admitted first, is senior and stays,
/// with the invites in either order of creation.
#[test]
fn seniority_follows_admission() {
    for seed in 0..SEEDS {
        let mut net = MemberNet::new(seed, "A");
        let mut idx = vec![0];
        let i1 = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Admin, &Scope::whole(), true, 0)
            .unwrap();
        let i2 = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Admin, &Scope::whole(), true, 0)
            .unwrap();
        let (first, last) = if seed % 2 == 0 {
            (&i2, &i1)
        } else {
            (&i1, &i2)
        };
        net.settle(&idx);
        let dave = redeem(&mut net, "dave", first, Role::Admin);
        net.run_random();
        idx.push(dave);
        net.settle(&idx);
        // Membership traffic before eve shows up.
        net.nodes[0].space_mut().rotate(&mut net.crypto).unwrap();
        net.settle(&idx);
        let eve = redeem(&mut net, "eve", last, Role::Admin);
        net.run_random();
        idx.push(eve);
        net.settle(&idx);
        let (du, eu) = (net.user_key(dave), net.user_key(eve));
        let x = net.nodes[dave]
            .space_mut()
            .remove_member(&mut net.crypto, &eu, &[])
            .unwrap();
        let y = net.nodes[eve]
            .space_mut()
            .remove_member(&mut net.crypto, &du, &[])
            .unwrap();
        net.flush_all();
        net.run_random();
        net.settle(&[0, dave]);
        let s = net.assert_converged(&[0, dave]);
        assert!(s.members.contains_key(&du), "seed {seed}: dave stays");
        assert!(s.removed.contains_key(&eu), "seed {seed}: eve is removed");
        assert_eq!(net.nodes[0].space().verdict(&x), Verdict::Accepted);
        assert_eq!(
            net.nodes[0].space().verdict(&y),
            Verdict::Void(ErrorClass::RemovedMember)
        );
    }
}

/// Finding 5: alice creates admin invite I1; dave and carol join as writers
/// and are settled; eve redeems I1, alice admits her and eve stays offline;
/// alice removes carol. Dave stays settled and receives the new epoch.
#[test]
fn late_redemption_does_not_unsettle() {
    for seed in 0..SEEDS {
        let mut net = MemberNet::new(seed, "A");
        let i1 = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Admin, &Scope::whole(), false, 0)
            .unwrap();
        let mut idx = vec![0];
        for name in ["dave", "carol"] {
            let (n, cert) = net.new_user(name);
            let u = net.user_key(n);
            net.nodes[0]
                .space_mut()
                .add_member(&mut net.crypto, &u, Role::Writer, &Scope::whole(), &[cert])
                .unwrap();
            idx.push(n);
            net.settle(&idx);
        }
        let (dave, carol) = (idx[1], idx[2]);
        assert!(net.nodes[0].space().state().members[&net.user_key(dave)].settled);
        let eve = redeem(&mut net, "eve", &i1, Role::Admin);
        net.run_random();
        net.settle(&[0, dave, carol]);
        net.offline[eve] = true;
        assert!(is_member(&net, 0, eve), "seed {seed}: eve admitted");
        let cu = net.user_key(carol);
        net.nodes[0]
            .space_mut()
            .remove_member(&mut net.crypto, &cu, &[])
            .unwrap();
        net.settle(&[0, dave]);
        let s = net.assert_converged(&[0, dave]);
        assert!(
            s.members[&net.user_key(dave)].settled,
            "seed {seed}: dave stays settled"
        );
        assert!(
            net.nodes[dave].space().locked_out_epochs().is_empty(),
            "seed {seed}: dave is not locked out"
        );
        assert_eq!(
            net.nodes[dave].space().current_epoch().map(|k| *k.id()),
            net.nodes[0].space().current_epoch().map(|k| *k.id()),
            "seed {seed}: dave holds the new epoch"
        );
    }
}

/// Finding 6: an invite revoked by an admin, an invite of a demoted admin and
/// an invite of a removed admin admit nobody, on every replica; a reusable
/// code kept by a removed user admits nobody once revoked.
#[test]
fn closed_invites_admit_nobody() {
    for seed in 0..SEEDS {
        let (mut net, mut idx) = group(seed, &[("C", Role::Admin), ("E", Role::Admin)]);
        let (a, c, e) = (idx[0], idx[1], idx[2]);
        let revoked = net.nodes[a]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), false, 0)
            .unwrap();
        let by_demoted = net.nodes[c]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), false, 0)
            .unwrap();
        let by_removed = net.nodes[e]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), false, 0)
            .unwrap();
        net.settle(&idx);
        let key = |code: &[u8]| {
            let c = clientful_core::membership::invite::decode(code).unwrap();
            clientful_core::membership::invite::derive(&c.space_id, &c.secret)
                .unwrap()
                .signing
                .public_bytes()
        };
        net.nodes[a]
            .space_mut()
            .revoke_invite(&mut net.crypto, &key(&revoked))
            .unwrap();
        let cu = net.user_key(c);
        net.nodes[a]
            .space_mut()
            .change_role(&mut net.crypto, &cu, Role::Writer, &Scope::whole())
            .unwrap();
        let eu = net.user_key(e);
        net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &eu, &[])
            .unwrap();
        idx.retain(|n| *n != e);
        net.settle(&idx);
        let mut strangers = Vec::new();
        for (name, code) in [("S1", &revoked), ("S2", &by_demoted), ("S3", &by_removed)] {
            strangers.push(redeem(&mut net, name, code, Role::Writer));
        }
        net.run_random();
        let mut actors = idx.clone();
        actors.extend(&strangers);
        net.settle(&actors);
        let s = net.assert_converged(&idx);
        for &n in &strangers {
            assert!(!s.members.contains_key(&net.user_key(n)), "seed {seed}");
            assert!(net.nodes[n].space().keys().is_empty());
        }
        assert_eq!(net.nodes[a].space().refused_redemptions().len(), 3);
        for i in s.invites.values() {
            assert!(i.closed || i.revoked, "seed {seed}: every invite is closed");
        }
    }
}
