//! Membership and keys (spec chapter 11) across replicas of the simulator: each
//! concurrent case of §11.4 and security cases 22–29 of the security anchors,
//! over many seeded random delivery schedules (reordering, duplicates), with the
//! documented outcome asserted identically on every replica.
//! spec: MEM-15, MEM-17, MEM-18, MEM-20, MEM-21, MEM-22, KEY-1, KEY-4, KEY-6, KEY-7, KEY-8, KEY-11, KEY-12.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::ErrorClass;
use clientful_core::envelope::{self, SealRequest, StaticContext};
use clientful_core::keys::{EpochKey, SigningKey};
use clientful_core::membership::epoch;
use clientful_core::membership::ops::{self, BodyBuilder};
use clientful_core::membership::space::{Alarm, membership_doc_id, revoke_device_everywhere};
use clientful_core::membership::{Received, Role, Scope, SpaceReplica, Verdict};
use clientful_proto::v1 as pb;
use clientful_sim::membership::{Item, MemberNet};

mod common;

use common::group;

const SEEDS: u64 = 24;

fn seal_doc(net: &mut MemberNet, n: usize, key: &EpochKey, doc: [u8; 32], body: &[u8]) -> Vec<u8> {
    let space_id = *net.nodes[0].space().space_id();
    let signing = SigningKey::from_seed(&net.nodes[n].space().identity().device.signing.seed());
    envelope::seal(
        &signing,
        key,
        &SealRequest {
            space_id,
            doc_id: doc,
            seq: 1,
            prev: None,
            preds: vec![],
            content_type: 1,
            body,
        },
        &mut net.crypto,
    )
    .expect("seal")
    .bytes
}

#[test]
fn add_member_settles_welcomes_and_converges() {
    for seed in 0..SEEDS {
        let (net, idx) = group(
            seed,
            &[("B", Role::Writer), ("C", Role::Admin), ("D", Role::Reader)],
        );
        let s = net.assert_converged(&idx);
        assert_eq!(s.members.len(), 4);
        assert!(s.members.values().all(|m| m.settled));
        for &n in &idx {
            assert!(net.nodes[n].space().current_epoch().is_some());
        }
    }
}

/// §11.4 case 1 and security case 23: a write concurrent with the writer's
/// removal stands; a write under an epoch created after the removal, or that
/// saw such an epoch, is REMOVED_MEMBER; a membership operation whose causal
/// past holds the removal is REMOVED_MEMBER. Same on every replica.
#[test]
fn write_concurrent_with_removal() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Writer), ("C", Role::Writer)]);
        let (a, b, c) = (idx[0], idx[1], idx[2]);
        let doc = [9u8; 32];
        let other_doc = [10u8; 32];
        let old = net.nodes[b].space().current_epoch().unwrap();
        // A had integrated B's first two writes of `doc`; it removes B with
        // that cut while B writes its third (MEM-18).
        let b_user = net.user_key(b);
        let cut = clientful_core::membership::Cut {
            device_id: net.device_id(b),
            doc_id: doc,
            seq: 2,
        };
        net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &b_user, &[cut])
            .unwrap();
        net.flush_all();
        net.run_random();
        net.settle(&[a, c]);
        net.assert_converged(&[a, c]);
        let new = net.nodes[a].space().current_epoch().unwrap();
        assert_ne!(new.id(), old.id());
        let b_key = net.nodes[b]
            .space()
            .identity()
            .device
            .signing
            .public_bytes();
        let c_key = net.nodes[c]
            .space()
            .identity()
            .device
            .signing
            .public_bytes();
        for &n in &[a, c] {
            let sp = net.nodes[n].space();
            // Up to the cut: stands, whatever epoch.
            assert!(
                sp.write_verdict(&b_key, &doc, &[], old.id(), &[], 2)
                    .is_ok()
            );
            // Beyond the cut, under the old epoch (the concurrent write and
            // every later one): rejected.
            for seq in [3, 4, 100] {
                assert_eq!(
                    sp.write_verdict(&b_key, &doc, &[], old.id(), &[], seq)
                        .unwrap_err()
                        .class(),
                    ErrorClass::RemovedMember
                );
            }
            // A document the remover never saw B write: nothing stands.
            assert_eq!(
                sp.write_verdict(&b_key, &other_doc, &[], old.id(), &[], 1)
                    .unwrap_err()
                    .class(),
                ErrorClass::RemovedMember
            );
            // Under the new epoch (a leaked key): rejected.
            assert_eq!(
                sp.write_verdict(&b_key, &doc, &[], new.id(), &[], 3)
                    .unwrap_err()
                    .class(),
                ErrorClass::RemovedMember
            );
            // C, a current writer, writes under either epoch.
            assert!(
                sp.write_verdict(&c_key, &doc, &[], new.id(), &[], 7)
                    .is_ok()
            );
            assert!(
                sp.write_verdict(&c_key, &doc, &[], old.id(), &[], 7)
                    .is_ok()
            );
        }
        // B learns the removal (leaked key) and writes an ACK after it.
        let to = epoch::Recipient {
            device_id: net.device_id(b),
            x25519: net.nodes[b].space().identity().device.x25519.public(),
        };
        let all = net.nodes[a].space().keys().all();
        let leak = common::signed_welcome(&mut net, a, [0; 32], &to, &all);
        net.nodes[b].space_mut().receive_welcome(&leak).unwrap();
        net.full_sync();
        let post = net.nodes[b]
            .space_mut()
            .seal_unchecked(&mut net.crypto, ops::CT_ACK, &[], &new)
            .unwrap();
        net.broadcast(b, Item::Envelope(post.clone()));
        net.run_random();
        let id = envelope::decode(&post).unwrap().id;
        for &n in &[a, c] {
            assert_eq!(
                net.nodes[n].space().verdict(&id),
                Verdict::Rejected(ErrorClass::RemovedMember)
            );
        }
        net.assert_converged(&[a, c]);
    }
}

/// §11.4 case 2 and security case 25 (first half): two admins remove each other
/// concurrently. The more senior admin's removal stands (MEM-17 (b)).
#[test]
fn two_admins_remove_each_other() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(
            seed,
            &[("B", Role::Admin), ("C", Role::Admin), ("D", Role::Writer)],
        );
        let (a, b, c, d) = (idx[0], idx[1], idx[2], idx[3]);
        let (bu, cu) = (net.user_key(b), net.user_key(c));
        let r1 = net.nodes[b]
            .space_mut()
            .remove_member(&mut net.crypto, &cu, &[])
            .unwrap();
        let r2 = net.nodes[c]
            .space_mut()
            .remove_member(&mut net.crypto, &bu, &[])
            .unwrap();
        net.flush_all();
        net.run_random();
        net.settle(&[a, b, d]);
        let s = net.assert_converged(&[a, b, d]);
        // B was made admin before C: B is senior, B's removal of C stands.
        assert!(s.members.contains_key(&bu));
        assert!(!s.members.contains_key(&cu));
        assert!(s.removed.contains_key(&cu));
        assert_eq!(net.nodes[a].space().verdict(&r1), Verdict::Accepted);
        assert_eq!(
            net.nodes[a].space().verdict(&r2),
            Verdict::Void(ErrorClass::RemovedMember)
        );
        // The creator against a later admin: the creator is senior.
        let au = net.user_key(a);
        let x = net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &bu, &[])
            .unwrap();
        let y = net.nodes[b]
            .space_mut()
            .remove_member(&mut net.crypto, &au, &[])
            .unwrap();
        net.flush_all();
        net.run_random();
        net.settle(&[a, d]);
        let s = net.assert_converged(&[a, d]);
        assert!(s.members.contains_key(&au) && !s.members.contains_key(&bu));
        assert_eq!(net.nodes[d].space().verdict(&x), Verdict::Accepted);
        assert_eq!(
            net.nodes[d].space().verdict(&y),
            Verdict::Void(ErrorClass::RemovedMember)
        );
    }
}

/// §11.4 case 3 and security case 25 (second half): an admin adds someone while
/// being removed. Strong removal voids the addition; the added user never
/// receives a key (no welcome, no box).
#[test]
fn admin_adds_while_being_removed() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Admin), ("D", Role::Writer)]);
        let (a, b, d) = (idx[0], idx[1], idx[2]);
        let (c, cert) = net.new_user("C");
        let (bu, cu) = (net.user_key(b), net.user_key(c));
        net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &bu, &[])
            .unwrap();
        let add = net.nodes[b]
            .space_mut()
            .add_member(&mut net.crypto, &cu, Role::Writer, &Scope::whole(), &[cert])
            .unwrap();
        // B, not knowing it is removed, would welcome C as soon as C is settled:
        // it is not (A never acknowledged the addition), so B sends nothing.
        assert_eq!(
            net.nodes[b].space_mut().welcomes(&mut net.crypto).unwrap(),
            0
        );
        net.flush_all();
        net.run_random();
        net.settle(&[a, d]);
        assert_eq!(
            net.nodes[b].space_mut().welcomes(&mut net.crypto).unwrap(),
            0
        );
        assert!(!net.nodes[b].space().state().members[&cu].settled);
        let s = net.assert_converged(&[a, d]);
        assert!(!s.members.contains_key(&cu));
        assert!(!s.members.contains_key(&bu));
        assert_eq!(
            net.nodes[a].space().verdict(&add),
            Verdict::Void(ErrorClass::RemovedMember)
        );
        // C holds no key: B could not settle C (A never acknowledged), so B sent
        // no welcome, and no rotation sealed to C.
        assert!(
            net.nodes[c].space().keys().is_empty(),
            "C received history keys"
        );
    }
}

/// §11.4 case 4 and security case 28: a single-use invite redeemed on two
/// partitions. One redemption (the lowest id) stands everywhere.
#[test]
fn single_use_invite_redeemed_twice() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Writer)]);
        let code = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), true, 0)
            .unwrap();
        net.settle(&idx);
        let mut redeemers = Vec::new();
        for name in ["U1", "U2"] {
            let user = SigningKey::generate(&mut net.crypto);
            let dev = clientful_core::identity::DeviceKeys::generate(&mut net.crypto);
            let me = clientful_core::membership::space::Identity::new(&user, dev).unwrap();
            let sp = SpaceReplica::redeem(&mut net.crypto, &code, me, Role::Writer).unwrap();
            redeemers.push(net.push_node(name, user, sp));
        }
        net.run_random();
        let mut actors = idx.clone();
        actors.extend(&redeemers);
        net.settle(&actors);
        // Two rivals for one single-use invite: nobody is admitted
        // automatically; both wait for a person to choose (MEM-25).
        let pending = net.nodes[0].space().pending_admissions();
        assert_eq!(pending.len(), 2, "seed {seed}");
        assert!(pending.iter().all(|p| p.rivals == 1 && p.admissible));
        let s = net.assert_converged(&idx);
        assert!(!s.members.contains_key(&net.user_key(redeemers[0])));
        assert!(!s.members.contains_key(&net.user_key(redeemers[1])));
        // The admin confirms the one with the higher id: ids decide nothing.
        let pick = pending.iter().map(|p| p.redemption).max().unwrap();
        net.nodes[0]
            .space_mut()
            .admit(&mut net.crypto, &pick)
            .unwrap();
        net.settle(&actors);
        let s = net.assert_converged(&idx);
        let winner = *redeemers
            .iter()
            .find(|n| s.members.contains_key(&net.user_key(**n)))
            .unwrap();
        let loser = *redeemers.iter().find(|n| **n != winner).unwrap();
        assert!(!s.members.contains_key(&net.user_key(loser)));
        let void: Vec<_> = s
            .void
            .values()
            .filter(|c| **c == ErrorClass::InvalidOperation)
            .collect();
        assert_eq!(void.len(), 1);
        let mut all = idx.clone();
        all.push(winner);
        net.assert_converged(&all);
        assert!(net.nodes[loser].space().keys().is_empty());
    }
}

/// §11.4 case 5 and security case 26: two admins rotate concurrently while a
/// third adds M. The frontier forks, the designated healer merges it, and every
/// remaining member and M end with the same usable current epoch.
#[test]
fn concurrent_rotations_and_add() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(
            seed,
            &[("B", Role::Admin), ("C", Role::Admin), ("W", Role::Writer)],
        );
        let (a, b, c, w) = (idx[0], idx[1], idx[2], idx[3]);
        let (m, cert) = net.new_user("M");
        let mu = net.user_key(m);
        net.nodes[a].space_mut().rotate(&mut net.crypto).unwrap();
        net.nodes[b].space_mut().rotate(&mut net.crypto).unwrap();
        net.nodes[c]
            .space_mut()
            .add_member(&mut net.crypto, &mu, Role::Writer, &Scope::whole(), &[cert])
            .unwrap();
        net.flush_all();
        net.run_random();
        net.settle(&[a, b, c, w, m]);
        let s = net.assert_converged(&[a, b, c, w, m]);
        assert!(s.members.contains_key(&mu));
        assert_eq!(s.frontier.len(), 1);
        let cur = s.current_epoch().unwrap();
        assert!(s.is_clean(&cur));
    }
}

/// Security case 22: a non-member, a reader and a writer scoped to another
/// folder are rejected identically, for membership operations and writes.
#[test]
fn unauthorized_writers_are_rejected() {
    for seed in 0..SEEDS {
        let (mut net, mut idx) = group(seed, &[("R", Role::Reader)]);
        let (a, r) = (idx[0], idx[1]);
        let folder = [7u8; 32];
        let (f, fcert) = net.new_user("F");
        let fu = net.user_key(f);
        net.nodes[a]
            .space_mut()
            .add_member(
                &mut net.crypto,
                &fu,
                Role::Writer,
                &Scope(vec![folder]),
                &[fcert],
            )
            .unwrap();
        idx.push(f);
        net.settle(&idx);
        // The reader tries to add a member.
        let (x, xcert) = net.new_user("X");
        let xu = net.user_key(x);
        let key = net.nodes[r].space().current_epoch().unwrap();
        let body = BodyBuilder(pb::MembershipOp {
            user_key: xu.to_vec(),
            role: 3,
            certificates: vec![xcert],
            ..Default::default()
        })
        .encode();
        let forged = net.nodes[r]
            .space_mut()
            .seal_unchecked(&mut net.crypto, ops::CT_ADD_MEMBER, &body, &key)
            .unwrap();
        // A stranger with a leaked log and key tries an ACK.
        let to = epoch::Recipient {
            device_id: net.device_id(x),
            x25519: net.nodes[x].space().identity().device.x25519.public(),
        };
        let all = net.nodes[a].space().keys().all();
        let leak = common::signed_welcome(&mut net, a, [0; 32], &to, &all);
        net.nodes[x].space_mut().receive_welcome(&leak).unwrap();
        net.full_sync();
        let stranger = net.nodes[x]
            .space_mut()
            .seal_unchecked(&mut net.crypto, ops::CT_ACK, &[], &key)
            .unwrap();
        net.broadcast(r, Item::Envelope(forged.clone()));
        net.send(r, Item::Envelope(forged.clone()));
        net.broadcast(x, Item::Envelope(stranger.clone()));
        net.run_random();
        for &n in &idx {
            let sp = net.nodes[n].space();
            assert_eq!(
                sp.verdict(&envelope::decode(&forged).unwrap().id),
                Verdict::Rejected(ErrorClass::NotAMember)
            );
            assert_eq!(
                sp.verdict(&envelope::decode(&stranger).unwrap().id),
                Verdict::Rejected(ErrorClass::NotAMember)
            );
            let rk = net.nodes[r]
                .space()
                .identity()
                .device
                .signing
                .public_bytes();
            let fk = net.nodes[f]
                .space()
                .identity()
                .device
                .signing
                .public_bytes();
            let xk = net.nodes[x]
                .space()
                .identity()
                .device
                .signing
                .public_bytes();
            let doc = [3u8; 32];
            for (who, folders, want) in [
                (rk, vec![], Some(ErrorClass::NotAMember)),
                (xk, vec![], Some(ErrorClass::NotAMember)),
                (fk, vec![[8u8; 32]], Some(ErrorClass::NotAMember)),
                (fk, vec![folder], None),
            ] {
                let got = sp
                    .write_verdict(&who, &doc, &folders, key.id(), &[], 1)
                    .err()
                    .map(|e| e.class());
                assert_eq!(got, want);
            }
        }
        net.assert_converged(&idx);
    }
}

/// Security case 24 and the removed-member test: a removed member and a
/// revoked device receive every envelope, key message and welcome written after
/// the removal and cannot decrypt any of them, whatever keys they hold.
#[test]
fn removed_member_and_revoked_device_cannot_decrypt() {
    for seed in 0..8 {
        let (mut net, idx) = group(seed, &[("B", Role::Writer), ("C", Role::Writer)]);
        let (a, b, c) = (idx[0], idx[1], idx[2]);
        let (c2, c2cert) = net.new_device("C2", c);
        net.nodes[c]
            .space_mut()
            .add_device(&mut net.crypto, &c2cert)
            .unwrap();
        net.settle(&[a, b, c, c2]);
        net.assert_converged(&[a, b, c, c2]);
        // Everything from here on is recorded.
        let bu = net.user_key(b);
        net.nodes[a]
            .space_mut()
            .remove_member(&mut net.crypto, &bu, &[])
            .unwrap();
        let c2id = net.device_id(c2);
        net.nodes[c]
            .space_mut()
            .revoke_device(&mut net.crypto, &c2id, &[])
            .unwrap();
        let mut recorded: Vec<clientful_core::membership::Outgoing> = Vec::new();
        for n in [a, c] {
            recorded.extend(net.nodes[n].space_mut().drain_outbox());
        }
        for o in &recorded {
            match o {
                clientful_core::membership::Outgoing::Envelope(e) => {
                    net.broadcast(a, Item::Envelope(e.clone()))
                }
                clientful_core::membership::Outgoing::KeyMessage(k) => {
                    net.broadcast(a, Item::KeyMessage(k.clone()))
                }
                clientful_core::membership::Outgoing::Welcome { .. } => {}
            }
        }
        net.run_random();
        net.settle(&[a, c]);
        net.assert_converged(&[a, c]);
        let cur = net.nodes[a].space().current_epoch().unwrap();
        let doc = [4u8; 32];
        let doc_env = seal_doc(&mut net, a, &cur, doc, b"secret after removal");
        let membership_ops = net.nodes[a].space().envelopes();
        let key_messages = net.nodes[a].space().key_messages();
        let space_id = *net.nodes[a].space().space_id();
        for victim in [b, c2] {
            let vs = net.nodes[victim].space();
            let vid = vs.identity().device_id();
            let my_keys = vs.keys().all();
            assert!(!vs.keys().contains(cur.id()));
            // Key messages: none addressed to it, and no box opens with its key.
            for km in &key_messages {
                let m = epoch::decode_key_message(km).unwrap();
                let after_removal = !my_keys.iter().any(|k| k.id() == &m.epoch_id);
                if after_removal {
                    assert!(!m.recipients().contains(&vid));
                    for bx in &m.boxes {
                        let mut forged = bx.clone();
                        forged.device_id = vid;
                        assert!(
                            clientful_core::membership::seal::open(
                                &forged,
                                &vid,
                                &vs.identity().device.x25519,
                                &[]
                            )
                            .is_err()
                        );
                    }
                }
            }
            // Envelopes (membership operations and documents) under any epoch it
            // does not hold: unknown epoch, and with each of its keys substituted
            // for the epoch id, a key-commitment failure.
            let mut post = 0;
            for e in membership_ops.iter().chain(std::iter::once(&doc_env)) {
                let d = envelope::decode(e).unwrap();
                if my_keys.iter().any(|k| k.id() == &d.header.epoch_id) {
                    continue;
                }
                post += 1;
                for k in &my_keys {
                    let ctx = StaticContext {
                        space_id,
                        doc_id: None,
                        signers: vec![d.header.author],
                        epochs: vec![EpochKey::new(d.header.epoch_id, *k.secret())],
                        accepted: vec![],
                    };
                    assert_eq!(
                        envelope::open(e, &ctx).unwrap_err().class(),
                        ErrorClass::DecryptFailed
                    );
                }
                let ctx = StaticContext {
                    space_id,
                    doc_id: None,
                    signers: vec![d.header.author],
                    epochs: my_keys.clone(),
                    accepted: vec![],
                };
                assert_eq!(
                    envelope::open(e, &ctx).unwrap_err().class(),
                    ErrorClass::UnknownEpoch
                );
            }
            assert!(post >= 2, "nothing was written after the removal");
            // Its replica holds them unopened.
            assert!(net.nodes[victim].space().held_count() > 0 || victim == c2);
        }
        let _ = membership_doc_id(&space_id);
    }
}

/// The onboarding test: a new device of an existing user is added from
/// another of that user's devices and reads the whole history (every epoch,
/// every operation, documents of old epochs); a lost device is then revoked from
/// the remaining one.
#[test]
fn device_onboarding_and_revocation() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Writer), ("C", Role::Admin)]);
        let (a, b, c) = (idx[0], idx[1], idx[2]);
        let e0 = net.nodes[b].space().current_epoch().unwrap();
        let old_doc = seal_doc(&mut net, b, &e0, [5u8; 32], b"old");
        // History: a removal rotates.
        let (x, xcert) = net.new_user("X");
        let xu = net.user_key(x);
        net.nodes[a]
            .space_mut()
            .add_member(
                &mut net.crypto,
                &xu,
                Role::Reader,
                &Scope::whole(),
                &[xcert],
            )
            .unwrap();
        net.settle(&[a, b, c, x]);
        net.nodes[c]
            .space_mut()
            .remove_member(&mut net.crypto, &xu, &[])
            .unwrap();
        net.settle(&[a, b, c]);
        // B's new device B2, onboarded from B.
        let (b2, b2cert) = net.new_device("B2", b);
        net.nodes[b]
            .space_mut()
            .add_device(&mut net.crypto, &b2cert)
            .unwrap();
        net.nodes[b].space_mut().welcomes(&mut net.crypto).unwrap();
        net.flush(b);
        net.run_random();
        net.settle(&[a, b, c, b2]);
        net.assert_converged(&[a, b, c, b2]);
        let sp = net.nodes[b2].space();
        assert_eq!(sp.envelopes().len(), net.nodes[a].space().envelopes().len());
        for k in net.nodes[a].space().epoch_chain() {
            assert!(
                sp.keys().contains(k.id()),
                "B2 misses an epoch of the history"
            );
        }
        let ctx = StaticContext {
            space_id: *sp.space_id(),
            doc_id: None,
            signers: vec![
                net.nodes[b]
                    .space()
                    .identity()
                    .device
                    .signing
                    .public_bytes(),
            ],
            epochs: sp.keys().all(),
            accepted: vec![],
        };
        assert_eq!(envelope::open(&old_doc, &ctx).unwrap().body, b"old");
        // B loses B: revoked from B2.
        let bid = net.device_id(b);
        net.nodes[b2]
            .space_mut()
            .revoke_device(&mut net.crypto, &bid, &[])
            .unwrap();
        net.settle(&[a, c, b2]);
        let s = net.assert_converged(&[a, c, b2]);
        assert!(s.devices[&bid].revoked_by.is_some());
        let cur = s.current_epoch().unwrap();
        assert!(!net.nodes[b].space().keys().contains(&cur));
        assert!(net.nodes[b2].space().keys().contains(&cur));
        // Storage and broker follow the epoch (KEY-13): the change is reported,
        // and the chain of held keys ends with the current one.
        for n in [a, c, b2] {
            let events = net.nodes[n].space_mut().take_epoch_events();
            assert_eq!(events.last(), Some(&cur));
            let chain = net.nodes[n].space().epoch_chain();
            assert_eq!(chain.last().map(|k| *k.id()), Some(cur));
            assert!(chain.len() >= 3);
        }
        // The revoked device's view differs from the members': no current key,
        // so no authenticator to match theirs (KEY-10).
        assert!(net.nodes[b].space().authenticator() != net.nodes[a].space().authenticator());
    }
}

/// Security case 27: an admin sends a different key to half the members. The
/// victims detect the mismatch against the committed epoch id and report it;
/// nobody holds a second secret under the epoch id.
#[test]
fn inconsistent_key_delivery_is_detected() {
    for seed in 0..8 {
        let (mut net, idx) = group(
            seed,
            &[
                ("B", Role::Writer),
                ("C", Role::Writer),
                ("D", Role::Writer),
            ],
        );
        net.nodes[0].space_mut().rotate(&mut net.crypto).unwrap();
        let out = net.nodes[0].space_mut().drain_outbox();
        let space_id = *net.nodes[0].space().space_id();
        let mut honest_km = None;
        let mut env = None;
        for o in out {
            match o {
                clientful_core::membership::Outgoing::KeyMessage(k) => honest_km = Some(k),
                clientful_core::membership::Outgoing::Envelope(e) => env = Some(e),
                _ => {}
            }
        }
        let km = epoch::decode_key_message(&honest_km.unwrap()).unwrap();
        let wrong = epoch::new_epoch(&mut net.crypto, &space_id).unwrap();
        let victims = [idx[2], idx[3]];
        let mut boxes = Vec::new();
        for bx in &km.boxes {
            let n = net.node_of(&bx.device_id).unwrap();
            if victims.contains(&n) {
                // Same epoch id in the message, another secret in the box.
                let forged = epoch::key_message(
                    &mut net.crypto,
                    &space_id,
                    &EpochKey::new(km.epoch_id, *wrong.secret()),
                    &[epoch::Recipient {
                        device_id: bx.device_id,
                        x25519: net.nodes[n].space().identity().device.x25519.public(),
                    }],
                )
                .unwrap()
                .0;
                let fb = &epoch::decode_key_message(&forged).unwrap().boxes[0];
                boxes.push(clientful_core::wire::encode(&pb::SealedKey {
                    device_id: fb.device_id.to_vec(),
                    ephemeral: fb.ephemeral.as_bytes().to_vec(),
                    ciphertext: fb.ciphertext.clone(),
                }));
            } else {
                boxes.push(clientful_core::wire::encode(&pb::SealedKey {
                    device_id: bx.device_id.to_vec(),
                    ephemeral: bx.ephemeral.as_bytes().to_vec(),
                    ciphertext: bx.ciphertext.clone(),
                }));
            }
        }
        let forged_km = clientful_core::wire::encode(&pb::KeyMessage {
            space_id: space_id.to_vec(),
            epoch_id: km.epoch_id.to_vec(),
            boxes,
        });
        net.broadcast(0, Item::KeyMessage(forged_km));
        net.broadcast(0, Item::Envelope(env.unwrap()));
        net.run_random();
        for &n in &idx[1..] {
            let sp = net.nodes[n].space();
            if victims.contains(&n) {
                assert!(sp.alarms().iter().any(|al| matches!(al, Alarm::KeyMismatch { epoch_id, .. } if epoch_id == &km.epoch_id)));
                assert!(!sp.keys().contains(&km.epoch_id));
                assert!(sp.held_count() > 0);
            } else {
                assert!(sp.alarms().is_empty());
                assert!(sp.keys().contains(&km.epoch_id));
            }
        }
    }
}

/// Security case 28: a revoked invite, an expired one (an admin logs the
/// revocation when the advisory expiry passes), escalation, a forged proof and a
/// short code.
#[test]
fn invite_abuse_is_rejected() {
    for seed in 0..SEEDS {
        let (mut net, idx) = group(seed, &[("B", Role::Admin)]);
        // Revoked, then redeemed (the redemption cannot see the revocation).
        let code = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Writer, &Scope::whole(), false, 1_000)
            .unwrap();
        net.settle(&idx);
        let expired = net.nodes[1].space().expired_invites(2_000);
        assert_eq!(expired.len(), 1);
        net.nodes[1]
            .space_mut()
            .revoke_invite(&mut net.crypto, &expired[0])
            .unwrap();
        let user = SigningKey::generate(&mut net.crypto);
        let dev = clientful_core::identity::DeviceKeys::generate(&mut net.crypto);
        let me = clientful_core::membership::space::Identity::new(&user, dev).unwrap();
        let late = SpaceReplica::redeem(&mut net.crypto, &code, me, Role::Writer).unwrap();
        let u = net.push_node("late", user, late);
        net.run_random();
        // Escalation: a reader invite redeemed as admin.
        let reader_code = net.nodes[0]
            .space_mut()
            .create_invite(&mut net.crypto, Role::Reader, &Scope::whole(), true, 0)
            .unwrap();
        net.settle(&idx);
        let user2 = SigningKey::generate(&mut net.crypto);
        let dev2 = clientful_core::identity::DeviceKeys::generate(&mut net.crypto);
        let me2 = clientful_core::membership::space::Identity::new(&user2, dev2).unwrap();
        let esc = SpaceReplica::redeem(&mut net.crypto, &reader_code, me2, Role::Admin).unwrap();
        let e = net.push_node("escalator", user2, esc);
        net.run_random();
        net.settle(&idx);
        let s = net.assert_converged(&idx);
        assert!(!s.members.contains_key(&net.user_key(u)));
        assert!(!s.members.contains_key(&net.user_key(e)));
        let red = net.nodes[e].space().envelopes();
        let _ = red;
        let verdicts = net.verdicts(0);
        let classes: Vec<Verdict> = verdicts
            .values()
            .copied()
            .filter(|v| *v != Verdict::Accepted)
            .collect();
        assert!(
            classes.contains(&Verdict::Void(ErrorClass::InvalidOperation)),
            "{classes:?}"
        );
        assert!(
            classes.contains(&Verdict::Rejected(ErrorClass::InvalidOperation)),
            "{classes:?}"
        );
        // A short code is refused before anything is derived.
        let short = clientful_core::wire::encode(&pb::InviteCode {
            space_id: vec![1; 32],
            secret: vec![2; 6],
            create_op: vec![3; 32],
            genesis: vec![4; 32],
        });
        assert_eq!(
            clientful_core::membership::invite::decode(&short)
                .unwrap_err()
                .class(),
            ErrorClass::Malformed
        );
    }
}

/// Security case 29: a device certificate not signed by the user's key, a
/// device added by a revoked device, and global revocation: revoking a device
/// rotates every space it belonged to, and its later operations are rejected.
#[test]
fn device_forgery_and_global_revocation() {
    for seed in 0..8 {
        let (mut net, idx) = group(seed, &[("B", Role::Writer)]);
        let (a, b) = (idx[0], idx[1]);
        // B adds a device certified by another user's key.
        let mallory = SigningKey::generate(&mut net.crypto);
        let (_, mcert) = net.certify(&mallory);
        let key = net.nodes[b].space().current_epoch().unwrap();
        let body = BodyBuilder(pb::MembershipOp {
            certificates: vec![mcert],
            ..Default::default()
        })
        .encode();
        let forged = net.nodes[b]
            .space_mut()
            .seal_unchecked(&mut net.crypto, ops::CT_ADD_DEVICE, &body, &key)
            .unwrap();
        let fid = envelope::decode(&forged).unwrap().id;
        assert!(matches!(
            net.nodes[a].space_mut().receive(&forged),
            Received::Rejected {
                class: ErrorClass::InvalidOperation,
                ..
            }
        ));
        net.broadcast(a, Item::Envelope(forged.clone()));
        net.run_random();
        // A second space with the same device B2 of user B.
        let (b2, b2cert) = net.new_device("B2", b);
        net.nodes[b]
            .space_mut()
            .add_device(&mut net.crypto, &b2cert)
            .unwrap();
        net.nodes[b].space_mut().welcomes(&mut net.crypto).unwrap();
        net.send(b2, Item::Envelope(forged.clone()));
        net.settle(&[a, b, b2]);
        net.assert_converged(&[a, b, b2]);
        let mut other = MemberNet::new(seed + 1000, "P");
        let b_id = clientful_core::membership::space::Identity::new(
            &SigningKey::from_seed(&net.nodes[b].user.seed()),
            clientful_core::identity::DeviceKeys {
                signing: SigningKey::from_seed(
                    &net.nodes[b2].space().identity().device.signing.seed(),
                ),
                x25519: clientful_core::keys::X25519Secret::from_bytes(
                    &net.nodes[b2].space().identity().device.x25519.to_bytes(),
                ),
            },
        )
        .unwrap();
        let bu = net.user_key(b);
        let joined = SpaceReplica::new(*other.nodes[0].space().space_id(), b_id).unwrap();
        let ob2 = other.push_node(
            "B2",
            SigningKey::from_seed(&net.nodes[b].user.seed()),
            joined,
        );
        let cert2 = other.nodes[ob2].space().identity().certificate.clone();
        other.nodes[0]
            .space_mut()
            .add_member(
                &mut other.crypto,
                &bu,
                Role::Writer,
                &Scope::whole(),
                &[cert2],
            )
            .unwrap();
        other.settle(&[0, ob2]);
        other.assert_converged(&[0, ob2]);
        // B2 is lost: revoked everywhere (B in space 1, P as admin in space 2).
        let b2id = net.device_id(b2);
        let before1 = net.nodes[a].space().state().frontier.clone();
        let before2 = other.nodes[0].space().state().frontier.clone();
        {
            let r1 = net.nodes[b].space_mut();
            let results =
                revoke_device_everywhere(&mut net.crypto, &mut [r1], &b2id, |_| Vec::new());
            assert!(results.iter().all(|r| r.is_ok()));
        }
        {
            let r2 = other.nodes[0].space_mut();
            let results =
                revoke_device_everywhere(&mut other.crypto, &mut [r2], &b2id, |_| Vec::new());
            assert!(results.iter().all(|r| r.is_ok()));
        }
        net.settle(&[a, b]);
        other.settle(&[0]);
        for (s, before) in [
            (net.assert_converged(&[a, b]), before1),
            (other.assert_converged(&[0]), before2),
        ] {
            assert_ne!(s.frontier, before, "no rotation");
            let cur = s.current_epoch().unwrap();
            assert!(!s.epochs[&cur].recipients.contains(&b2id));
        }
        // The revoked device keeps writing in space 2: rejected.
        let stale = other.nodes[ob2].space().keys().all();
        let late = other.nodes[ob2]
            .space_mut()
            .seal_unchecked(&mut other.crypto, ops::CT_ACK, &[], &stale[0])
            .unwrap();
        other.nodes[0].space_mut().receive(&late);
        let lid = envelope::decode(&late).unwrap().id;
        assert!(matches!(
            other.nodes[0].space().verdict(&lid),
            Verdict::Void(ErrorClass::RemovedMember) | Verdict::Rejected(ErrorClass::RemovedMember)
        ));
        // And adds a device in space 1 after its revocation (it learned the new
        // key from a colluder): REMOVED_MEMBER.
        let to = epoch::Recipient {
            device_id: b2id,
            x25519: net.nodes[b2].space().identity().device.x25519.public(),
        };
        let all = net.nodes[a].space().keys().all();
        let leak = common::signed_welcome(&mut net, a, [0; 32], &to, &all);
        net.nodes[b2].space_mut().receive_welcome(&leak).unwrap();
        net.full_sync();
        let (_, ncert) = net.certify(&SigningKey::from_seed(&net.nodes[b].user.seed()));
        let body = BodyBuilder(pb::MembershipOp {
            certificates: vec![ncert],
            ..Default::default()
        })
        .encode();
        let cur = net.nodes[b2].space().current_epoch().unwrap();
        let by_revoked = net.nodes[b2]
            .space_mut()
            .seal_unchecked(&mut net.crypto, ops::CT_ADD_DEVICE, &body, &cur)
            .unwrap();
        net.broadcast(b2, Item::Envelope(by_revoked.clone()));
        net.run_random();
        let rid = envelope::decode(&by_revoked).unwrap().id;
        for n in [a, b] {
            assert_eq!(
                net.nodes[n].space().verdict(&rid),
                Verdict::Rejected(ErrorClass::RemovedMember)
            );
            assert_ne!(net.nodes[n].space().verdict(&fid), Verdict::Accepted);
        }
    }
}

mod documents {
    //! Per-envelope write permission in document replicas (MEM-18, §11.7).
    //! spec: MEM-18, DOC-7.
    use super::*;
    use clientful_core::membership::space::Identity as _Identity;
    use clientful_doc::authority::Membership;
    use clientful_doc::crdt::YjsSchema;
    use clientful_doc::testkit::insert_text;
    use clientful_doc::{CrdtKind, Replica, ReplicaConfig};
    use clientful_sim::rng::shuffle;

    fn membership(net: &MemberNet, n: usize) -> Membership {
        let sp = net.nodes[n].space();
        Membership {
            view: sp.write_view(),
            keys: sp.keys().all(),
            current: sp.current_epoch().unwrap(),
            folders: vec![],
        }
    }

    fn replica(net: &MemberNet, n: usize, doc: [u8; 32]) -> Replica {
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

    /// A write concurrent with the writer's removal stands, a write under the
    /// epoch after it is excluded, a reader's write is NOT_A_MEMBER; the
    /// documents of every remaining replica are identical, whether the removal
    /// arrives before or after the writes.
    #[test]
    fn document_writes_follow_membership() {
        let _ = std::marker::PhantomData::<_Identity>;
        for seed in 0..12 {
            let (mut net, idx) = group(
                seed,
                &[
                    ("B", Role::Writer),
                    ("C", Role::Writer),
                    ("R", Role::Reader),
                ],
            );
            let (a, b, c, r) = (idx[0], idx[1], idx[2], idx[3]);
            let doc = [0x42u8; 32];
            let mut reps: Vec<Replica> = idx.iter().map(|&n| replica(&net, n, doc)).collect();
            let mut envs = vec![
                edit(&mut reps[0], "a"),
                edit(&mut reps[2], "c"),
                edit(&mut reps[1], "b-before"),
            ];
            // A integrates B's write, then removes B with that cut (MEM-18);
            // concurrently B writes again and the reader writes.
            for e in &envs {
                reps[0].receive(e);
            }
            let bu = net.user_key(b);
            let b_key = net.nodes[b]
                .space()
                .identity()
                .device
                .signing
                .public_bytes();
            let cut = clientful_core::membership::Cut {
                device_id: net.device_id(b),
                doc_id: doc,
                seq: reps[0].chain_heights()[&b_key],
            };
            net.nodes[a]
                .space_mut()
                .remove_member(&mut net.crypto, &bu, &[cut])
                .unwrap();
            let concurrent = edit(&mut reps[1], "b-concurrent");
            let by_reader = edit(&mut reps[3], "reader");
            envs.push(concurrent.clone());
            envs.push(by_reader.clone());
            let removal_first = seed % 2 == 0;
            if removal_first {
                net.flush_all();
                net.run_random();
                net.settle(&[a, c, r]);
                for (i, &n) in idx.iter().enumerate() {
                    if n != b {
                        reps[i].set_membership(membership(&net, n));
                    }
                }
            }
            let mut order = envs.clone();
            shuffle(&mut net.rng, &mut order);
            for e in &order {
                for (i, rep) in reps.iter_mut().enumerate() {
                    if idx[i] != b {
                        rep.receive(e);
                    }
                }
            }
            if !removal_first {
                net.flush_all();
                net.run_random();
                net.settle(&[a, c, r]);
            }
            // B gets the new key from a colluder and writes under it.
            let to = epoch::Recipient {
                device_id: net.device_id(b),
                x25519: net.nodes[b].space().identity().device.x25519.public(),
            };
            let all = net.nodes[a].space().keys().all();
            let leak = common::signed_welcome(&mut net, a, [0; 32], &to, &all);
            net.nodes[b].space_mut().receive_welcome(&leak).unwrap();
            net.full_sync();
            reps[1].set_membership(membership(&net, b));
            let after = edit(&mut reps[1], "b-after");
            for (i, rep) in reps.iter_mut().enumerate() {
                if idx[i] != b {
                    rep.set_membership(membership(&net, idx[i]));
                    rep.receive(&after);
                }
            }
            let id = |e: &Vec<u8>| envelope::decode(e).unwrap().id;
            let first = reps[0].materialize();
            for (i, rep) in reps.iter_mut().enumerate() {
                if idx[i] == b {
                    continue;
                }
                assert_eq!(rep.materialize(), first, "replica {i} differs");
                assert_eq!(
                    rep.verdict(&id(&concurrent)),
                    clientful_doc::Verdict::Rejected(ErrorClass::RemovedMember)
                );
                assert_eq!(
                    rep.verdict(&id(&after)),
                    clientful_doc::Verdict::Rejected(ErrorClass::RemovedMember)
                );
                assert_eq!(
                    rep.verdict(&id(&by_reader)),
                    clientful_doc::Verdict::Rejected(ErrorClass::NotAMember)
                );
            }
            let text = format!("{first:?}");
            assert!(text.contains("b-before"), "{text}");
            assert!(
                !text.contains("b-after")
                    && !text.contains("reader")
                    && !text.contains("b-concurrent"),
                "{text}"
            );
            let _ = c;
        }
    }

    /// A write accepted before a concurrent removal is known (under an epoch
    /// another admin created concurrently with the removal, which still reached
    /// the writer) is excluded once the removal arrives: the document is rebuilt
    /// without it, identically on the replica that saw it early and on one that
    /// saw the removal first (MEM-18, DOC-7).
    #[test]
    fn verdict_changes_when_the_removal_arrives() {
        for seed in 0..12 {
            let (mut net, idx) = group(
                seed,
                &[("C", Role::Admin), ("B", Role::Writer), ("D", Role::Writer)],
            );
            let (a, c, b, d) = (idx[0], idx[1], idx[2], idx[3]);
            let doc = [0x24u8; 32];
            let bu = net.user_key(b);
            net.nodes[a]
                .space_mut()
                .remove_member(&mut net.crypto, &bu, &[])
                .unwrap();
            let held_back = net.nodes[a].space_mut().drain_outbox();
            net.nodes[c].space_mut().rotate(&mut net.crypto).unwrap();
            net.flush(c);
            net.run_random();
            // B holds C's epoch and writes under it.
            let mut rb = replica(&net, b, doc);
            let early = edit(&mut rb, "b-under-concurrent-epoch");
            let mut rd = replica(&net, d, doc);
            rd.receive(&early);
            assert_eq!(
                rd.verdict(&envelope::decode(&early).unwrap().id),
                clientful_doc::Verdict::Applied
            );
            let mut rc = replica(&net, c, doc);
            let by_c = edit(&mut rc, "c");
            rd.receive(&by_c);
            // Now the removal reaches everyone.
            for o in held_back {
                match o {
                    clientful_core::membership::Outgoing::Envelope(e) => {
                        net.broadcast(a, Item::Envelope(e))
                    }
                    clientful_core::membership::Outgoing::KeyMessage(k) => {
                        net.broadcast(a, Item::KeyMessage(k))
                    }
                    clientful_core::membership::Outgoing::Welcome { .. } => {}
                }
            }
            net.run_random();
            net.settle(&[a, c, d]);
            net.assert_converged(&[a, c, d]);
            rd.set_membership(membership(&net, d));
            let mut ra = replica(&net, a, doc);
            ra.receive(&by_c);
            ra.receive(&early);
            let id = envelope::decode(&early).unwrap().id;
            for r in [&rd, &ra] {
                assert_eq!(
                    r.verdict(&id),
                    clientful_doc::Verdict::Rejected(ErrorClass::RemovedMember)
                );
            }
            let (md, ma) = (rd.materialize(), ra.materialize());
            assert_eq!(md, ma);
            assert!(!format!("{md:?}").contains("b-under"), "{md:?}");
        }
    }
}
