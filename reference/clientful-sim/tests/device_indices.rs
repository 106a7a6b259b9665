//! Issue 22, finding 4 follow-up: a device's Yjs client ids must never move
//! and never be shared, on any schedule (spec DOC-19, DOC-21, DOC-22, MEM-30).
//!
//! Two admins on two partitions each add a device, and a member adds a device
//! of its own with crafted predecessors (only the operation that added it, so
//! the addition has a low depth and sorts early); that addition is delivered
//! late. Every device edits one Yjs document throughout, before and after the
//! partitions heal. Under the earlier rule (DOC-19 admission order, a function
//! of the whole membership) the late additions renumbered the devices listed
//! after them: two devices wrote under one client id, and envelopes written
//! under an index that later moved were rejected by replicas that learnt the
//! membership first. Now every replica integrates every honest envelope, no two
//! authors ever insert under one client id, and all replicas (and fresh ones
//! fed the envelopes shuffled) converge.
//!
//! `claimed_indices_never_change_and_are_injective` is the property over random
//! membership DAGs (concurrent admins, members adding devices, crafted
//! predecessors, partitions, random delivery): a claim seen once never moves or
//! goes away, and no index is ever claimed for two devices.
//!
//! spec: DOC-3, DOC-19, DOC-21, DOC-22, MEM-30, MEM-31.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use clientful_core::envelope::{self, EnvelopeId};
use clientful_core::keys::SigningKey;
use clientful_core::membership::{Role, Scope};
use clientful_core::testkit::forge;
use clientful_doc::authority::Membership;
use clientful_doc::crdt::YjsSchema;
use clientful_doc::testkit::insert_text;
use clientful_doc::{CrdtKind, Replica, ReplicaConfig, Verdict};
use clientful_sim::membership::{Item, MemberNet};
use clientful_sim::sync::sync_all;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;

mod common;

use common::group;

const SEEDS: u64 = 16;
const DOC: [u8; 32] = [0x5a; 32];

fn membership(net: &MemberNet, n: usize) -> Membership {
    let sp = net.nodes[n].space();
    Membership {
        view: sp.write_view(),
        keys: sp.keys().all(),
        current: sp.current_epoch().unwrap(),
        folders: vec![],
    }
}

/// The document replica of device node `dev`, fed the membership of node
/// `view` (a device that has not been welcomed yet sees its partition's view).
fn doc_replica(net: &MemberNet, dev: usize, view: usize, seed: u64) -> Replica {
    let m = membership(net, view);
    let sp = net.nodes[dev].space();
    let mut r = Replica::new(ReplicaConfig {
        space_id: *sp.space_id(),
        doc_id: DOC,
        device: SigningKey::from_seed(&sp.identity().device.signing.seed()),
        epoch: m.current.clone(),
        old_epochs: vec![],
        signers: vec![],
        crdt: CrdtKind::Yjs,
        yjs_schema: YjsSchema::default(),
        rng_seed: [(dev as u8) ^ (seed as u8); 32],
    });
    r.set_membership(m);
    r
}

fn edit(r: &mut Replica, rng: &mut ChaCha20Rng, who: &str) {
    let at = rng.next_u32() % 3;
    let len = clientful_sim::edit::text(r).encode_utf16().count() as u32;
    insert_text(r, at.min(len), who).unwrap();
    r.commit().unwrap();
    r.drain_outbox();
}

/// The member `m` adds a device of its own user with `preds` = only the
/// operation that added `m` (its chain continues from its last operation, if
/// any): an honest-looking, valid `ADD_DEVICE` whose depth is as low as it can
/// be, so it sorts before every later addition. The forgery is the one the
/// vectors use (`clientful_core::testkit::forge::crafted_add_device`).
fn crafted_add_device(net: &mut MemberNet, m: usize, cert: &[u8]) -> Vec<u8> {
    forge::crafted_add_device(&mut net.crypto, net.nodes[m].space(), cert).unwrap()
}

/// Every (client id -> authors) pair over the Yjs insertions of the integrated
/// envelopes of `rs`.
fn client_authors(rs: &[Replica]) -> BTreeMap<u64, BTreeSet<[u8; 32]>> {
    let mut out: BTreeMap<u64, BTreeSet<[u8; 32]>> = BTreeMap::new();
    for r in rs {
        for n in r.dag().nodes.values() {
            let Ok(u) = yrs::Update::decode_v1(&n.body) else {
                continue;
            };
            for (client, _) in u.insertions(true).iter() {
                out.entry(client.get()).or_default().insert(n.author);
            }
        }
    }
    out
}

fn digests(r: &mut Replica) -> ([u8; 32], [u8; 32]) {
    (r.history_digest(), r.state_digest())
}

/// A fresh replica of device `dev` (with its own view) fed `envelopes` in an
/// order shuffled with `rng` (Fisher-Yates).
fn fresh_replica_fed_shuffled(
    net: &MemberNet,
    dev: usize,
    seed: u64,
    envelopes: &[Vec<u8>],
    rng: &mut ChaCha20Rng,
) -> Replica {
    let mut fresh = doc_replica(net, dev, dev, seed);
    let mut shuffled = envelopes.to_vec();
    for i in (1..shuffled.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        shuffled.swap(i, j);
    }
    for e in &shuffled {
        fresh.receive(e);
    }
    fresh
}

#[test]
fn late_concurrent_device_additions_never_share_or_move_a_client_id() {
    for seed in 0..SEEDS {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x22c);
        let (mut net, idx) = group(seed, &[("B", Role::Admin), ("M", Role::Writer)]);
        let (a, b, m) = (idx[0], idx[1], idx[2]);
        // New devices: X (a new user A adds), Y (a new user B adds), Z (M's own).
        let (x, x_cert) = net.new_user("X");
        let (y, y_cert) = net.new_user("Y");
        let (z, z_cert) = net.new_device("Z", m);
        let (ux, uy) = (net.user_key(x), net.user_key(y));
        // Partition 1 = {A, M, X, Z}, partition 2 = {B, Y}. A adds X, B adds Y,
        // concurrently; each addition reaches its own partition only.
        net.nodes[a]
            .space_mut()
            .add_member(
                &mut net.crypto,
                &ux,
                Role::Writer,
                &Scope::whole(),
                &[x_cert],
            )
            .unwrap();
        net.nodes[b]
            .space_mut()
            .add_member(
                &mut net.crypto,
                &uy,
                Role::Writer,
                &Scope::whole(),
                &[y_cert],
            )
            .unwrap();
        let from_a = net.nodes[a].space_mut().drain_outbox();
        let from_b = net.nodes[b].space_mut().drain_outbox();
        let env = |o: &clientful_core::membership::space::Outgoing| match o {
            clientful_core::membership::space::Outgoing::Envelope(e) => Some(e.clone()),
            _ => None,
        };
        let add_x: Vec<Vec<u8>> = from_a.iter().filter_map(env).collect();
        let add_y: Vec<Vec<u8>> = from_b.iter().filter_map(env).collect();
        for e in &add_x {
            net.deliver(m, &Item::Envelope(e.clone()));
        }
        // M's crafted addition of Z: M holds it; it reaches A late.
        let add_z = crafted_add_device(&mut net, m, &z_cert);
        net.deliver(m, &Item::Envelope(add_z.clone()));
        // Document replicas: X edits with A's view, Z with M's, Y with B's.
        let order = [a, x, m, z, b, y];
        let views = [a, a, m, m, b, b];
        let mut rs: Vec<Replica> = order
            .iter()
            .zip(views)
            .map(|(&d, v)| doc_replica(&net, d, v, seed))
            .collect();
        let names = ["A", "X", "M", "Z", "B", "Y"];
        // Round 1, three partitions ({A, X}, {M, Z}, {B, Y}): everyone edits,
        // each side syncs alone.
        for _ in 0..2 {
            for (i, r) in rs.iter_mut().enumerate() {
                edit(r, &mut rng, names[i]);
            }
            for p in rs.chunks_mut(2) {
                sync_all(p, 8).unwrap();
            }
        }
        // The late addition reaches A (Z's low depth sorts it before X); A and
        // X take the new view, edit, and sync with M and Z.
        net.deliver(a, &Item::Envelope(add_z.clone()));
        rs[0].set_membership(membership(&net, a));
        rs[1].set_membership(membership(&net, a));
        for i in [0, 1] {
            edit(&mut rs[i], &mut rng, names[i]);
        }
        let synced_p1 = sync_all(&mut rs[..4], 8);
        // Heal: every operation reaches everyone; the membership settles.
        for e in add_x.iter().chain(add_y.iter()).chain([&add_z]) {
            net.broadcast(a, Item::Envelope(e.clone()));
        }
        let everyone = [a, b, m, x, y, z];
        net.settle(&everyone);
        for (i, r) in rs.iter_mut().enumerate() {
            let view = if net.nodes[order[i]].space().current_epoch().is_some() {
                order[i]
            } else {
                a
            };
            r.set_membership(membership(&net, view));
        }
        // Round 2, healed, in a random order of replicas.
        let mut synced = Ok(0);
        for _ in 0..2 {
            for i in 0..rs.len() {
                if rng.next_u32() % 3 != 0 {
                    edit(&mut rs[i], &mut rng, names[i]);
                }
            }
            synced = synced.and(sync_all(&mut rs, 8));
        }
        // No two authors ever inserted under one client id, on any replica.
        for (client, authors) in client_authors(&rs) {
            assert_eq!(
                authors.len(),
                1,
                "seed {seed}: {} authors share Yjs client id {client}",
                authors.len()
            );
        }
        assert!(
            synced_p1.is_ok() && synced.is_ok(),
            "seed {seed}: replicas keep refusing each other's envelopes: {synced_p1:?} {synced:?}"
        );
        // Every replica integrated every honest envelope, and applied it.
        let all: BTreeSet<EnvelopeId> = rs
            .iter()
            .flat_map(|r| r.persisted_envelopes())
            .map(|e| envelope::decode(&e).unwrap().id)
            .collect();
        for (i, r) in rs.iter().enumerate() {
            for id in &all {
                assert_eq!(
                    r.verdict(id),
                    Verdict::Applied,
                    "seed {seed} replica {}: an honest envelope is not applied",
                    names[i]
                );
            }
        }
        let d0 = digests(&mut rs[0]);
        for (i, r) in rs.iter_mut().enumerate() {
            assert_eq!(digests(r), d0, "seed {seed}: replica {} diverged", names[i]);
        }
        let text = clientful_sim::edit::text(&mut rs[0]);
        for n in names {
            assert!(text.contains(n), "seed {seed}: {n}'s text is lost: {text}");
        }
        // Fresh replicas fed everything in shuffled orders agree.
        let envelopes: Vec<Vec<u8>> = rs.iter().flat_map(|r| r.persisted_envelopes()).collect();
        for round in 0..3 {
            let mut fresh = fresh_replica_fed_shuffled(&net, a, seed + round, &envelopes, &mut rng);
            for id in &all {
                assert_eq!(fresh.verdict(id), Verdict::Applied, "seed {seed} fresh");
            }
            assert_eq!(
                (fresh.history_digest(), fresh.state_digest()),
                d0,
                "seed {seed}: a fresh replica diverged"
            );
        }
    }
}

/// DOC-23 and MEM-31: a device that adds devices and equivocates (two
/// `ADD_DEVICE` operations with one seq and one predecessor, each adding a
/// device of its user) gives both devices the same index. That index is
/// contested on every replica, every envelope inserted under it is withdrawn
/// everywhere, the other devices' indices and work are untouched, and all
/// replicas (fresh ones fed the envelopes shuffled included) converge.
#[test]
fn an_equivocating_adder_contests_only_the_index_it_gave_twice() {
    for seed in 0..8u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xd23);
        let (mut net, idx) = group(seed, &[("M", Role::Writer)]);
        let (a, m) = (idx[0], idx[1]);
        let (z1, z1_cert) = net.new_device("Z1", m);
        let (z2, z2_cert) = net.new_device("Z2", m);
        // Both built on the same state of M: same seq, same predecessors.
        let add1 = crafted_add_device(&mut net, m, &z1_cert);
        let add2 = crafted_add_device(&mut net, m, &z2_cert);
        for e in [&add1, &add2] {
            net.broadcast(m, Item::Envelope(e.clone()));
        }
        let everyone = [a, m, z1, z2];
        net.settle(&everyone);
        let view = net.nodes[a].space().write_view();
        let key = |n: usize| {
            net.nodes[n]
                .space()
                .identity()
                .device
                .signing
                .public_bytes()
        };
        let (k1, k2) = (key(z1), key(z2));
        let claimed = |k: &[u8; 32]| view.claims.get(k).cloned().unwrap_or_default();
        let (c1, c2) = (claimed(&k1), claimed(&k2));
        assert!(
            !c1.is_empty() && c1 == c2,
            "seed {seed}: Z1 {c1:?}, Z2 {c2:?}"
        );
        let expected: BTreeSet<u64> = c1.iter().copied().collect();
        assert_eq!(view.contested, expected, "seed {seed}: contested indices");
        for n in everyone {
            let v = net.nodes[n].space().write_view();
            assert_eq!(
                v.contested, expected,
                "seed {seed}: node {n} sees other contested indices"
            );
            for k in [key(a), key(m)] {
                let own = v.claims.get(&k).cloned().unwrap_or_default();
                assert!(
                    !own.is_empty() && own.iter().all(|i| !expected.contains(i)),
                    "seed {seed}: an honest device's index is contested"
                );
            }
        }
        // Everyone edits one Yjs document and syncs.
        let order = [a, m, z1, z2];
        let names = ["A", "M", "Z1", "Z2"];
        let mut rs: Vec<Replica> = order
            .iter()
            .map(|&d| doc_replica(&net, d, a, seed))
            .collect();
        for _ in 0..2 {
            for (i, r) in rs.iter_mut().enumerate() {
                let at = rng.next_u32() % 3;
                let len = clientful_sim::edit::text(r).encode_utf16().count() as u32;
                if insert_text(r, at.min(len), names[i]).is_ok() {
                    let _ = r.commit();
                }
                r.drain_outbox();
            }
            // Replicas refuse the contested envelopes: the sync reports it.
            let _ = sync_all(&mut rs, 8);
        }
        let honest: BTreeSet<[u8; 32]> = [key(a), key(m)].into_iter().collect();
        let all: Vec<(EnvelopeId, [u8; 32])> = rs
            .iter()
            .flat_map(|r| {
                r.dag()
                    .nodes
                    .values()
                    .map(|n| (n.id, n.author))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            all.iter().any(|(_, au)| !honest.contains(au)),
            "seed {seed}: Z1 and Z2 wrote nothing, the test shows nothing"
        );
        for (i, r) in rs.iter().enumerate() {
            for (id, author) in &all {
                let v = r.verdict(id);
                if honest.contains(author) {
                    assert_eq!(
                        v,
                        Verdict::Applied,
                        "seed {seed} replica {}: honest work lost",
                        names[i]
                    );
                } else {
                    assert_ne!(
                        v,
                        Verdict::Applied,
                        "seed {seed} replica {}: work under a contested index applied",
                        names[i]
                    );
                }
            }
        }
        let d0 = digests(&mut rs[0]);
        for (i, r) in rs.iter_mut().enumerate() {
            assert_eq!(digests(r), d0, "seed {seed}: replica {} diverged", names[i]);
        }
        let text = clientful_sim::edit::text(&mut rs[0]);
        assert!(
            text.contains('A') && text.contains('M'),
            "seed {seed}: honest text lost: {text}"
        );
        assert!(
            !text.contains('Z'),
            "seed {seed}: contested text shown: {text}"
        );
        let envelopes: Vec<Vec<u8>> = rs.iter().flat_map(|r| r.persisted_envelopes()).collect();
        for round in 0..2 {
            let mut fresh = fresh_replica_fed_shuffled(&net, a, seed + round, &envelopes, &mut rng);
            assert_eq!(
                digests(&mut fresh),
                d0,
                "seed {seed}: a fresh replica diverged"
            );
        }
    }
}

/// One step of a random membership history.
#[derive(Debug, Clone)]
enum Step {
    /// Admin `by` (0: A, 1: B) adds a new user with `devices` devices.
    AddMember { by: usize, devices: usize },
    /// Group member `by` (0..3) adds a new device of its own user.
    AddDevice { by: usize },
    /// Group member `by` adds a new device of its own user with crafted
    /// predecessors (only its previous operation, or the one that added it).
    CraftedAddDevice { by: usize },
    /// Group member `who` goes offline or comes back.
    Toggle { who: usize },
    /// Deliver what can be delivered, in a random order.
    Deliver,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0usize..2, 1usize..3).prop_map(|(by, devices)| Step::AddMember { by, devices }),
        (0usize..3).prop_map(|by| Step::AddDevice { by }),
        (0usize..3).prop_map(|by| Step::CraftedAddDevice { by }),
        (0usize..3).prop_map(|who| Step::Toggle { who }),
        Just(Step::Deliver),
    ]
}

/// Records every claim `view` makes: an index keeps its device forever, and
/// a device keeps every index it ever held.
fn observe(
    who: &str,
    claims: &BTreeMap<[u8; 32], Vec<u64>>,
    owner: &mut BTreeMap<u64, [u8; 32]>,
    before: &mut BTreeMap<[u8; 32], Vec<u64>>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    for (d, idx) in claims {
        for i in idx {
            let o = owner.entry(*i).or_insert(*d);
            prop_assert!(o == d, "{who}: index {i} claimed for two devices");
            prop_assert!(
                clientful_doc::binding::yjs_client_id(*i, 65_535) < 1 << 53,
                "{who}: index {i} does not fit"
            );
        }
    }
    for (d, old) in before.iter() {
        let now = claims.get(d).cloned().unwrap_or_default();
        for i in old {
            prop_assert!(now.contains(i), "{who}: index {i} was taken from a device");
        }
    }
    *before = claims.clone();
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 24,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// MEM-30 over random membership DAGs (concurrent additions by two admins,
    /// devices added by members, crafted predecessors, partitions, random
    /// delivery): once a replica sees a claim it never changes or goes away,
    /// no index is ever claimed for two devices on any replica at any time,
    /// and replicas that hold the same operations hold the same claims.
    #[test]
    fn claimed_indices_never_change_and_are_injective(
        seed in 0u64..1_000_000,
        steps in proptest::collection::vec(step(), 4..14),
    ) {
        let (mut net, idx) = group(seed, &[("B", Role::Admin), ("M", Role::Writer)]);
        let mut owner: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
        let mut before: Vec<BTreeMap<[u8; 32], Vec<u64>>> = vec![BTreeMap::new(); idx.len()];
        for s in &steps {
            match s {
                Step::AddMember { by, devices } => {
                    let by = idx[*by];
                    let (n, cert) = net.new_user("N");
                    let mut certs = vec![cert];
                    for _ in 1..*devices {
                        let (_, c) = net.new_device("N+", n);
                        certs.push(c);
                    }
                    certs.sort_by_key(|c| {
                        clientful_core::identity::verify_certificate(c, None)
                            .map(|v| v.device_id)
                            .unwrap_or_default()
                    });
                    let user = net.user_key(n);
                    let _ = net.nodes[by].space_mut().add_member(
                        &mut net.crypto, &user, Role::Writer, &Scope::whole(), &certs,
                    );
                    net.flush(by);
                }
                Step::AddDevice { by } => {
                    let by = idx[*by];
                    let (_, cert) = net.new_device("D", by);
                    let _ = net.nodes[by].space_mut().add_device(&mut net.crypto, &cert);
                    net.flush(by);
                }
                Step::CraftedAddDevice { by } => {
                    let by = idx[*by];
                    let (_, cert) = net.new_device("C", by);
                    let e = crafted_add_device(&mut net, by, &cert);
                    net.deliver(by, &Item::Envelope(e.clone()));
                    net.broadcast(by, Item::Envelope(e));
                }
                Step::Toggle { who } => {
                    let w = idx[*who];
                    net.offline[w] = !net.offline[w];
                }
                Step::Deliver => net.run_random(),
            }
            for (k, &n) in idx.iter().enumerate() {
                let view = net.nodes[n].space().write_view();
                proptest::prop_assert!(view.contested.is_empty(), "seed {seed}: contested without equivocation");
                observe(&format!("seed {seed} node {n}"), &view.claims, &mut owner, &mut before[k])?;
            }
        }
        for w in &idx {
            net.offline[*w] = false;
        }
        net.full_sync();
        let first = net.nodes[idx[0]].space().write_view().claims;
        for (k, &n) in idx.iter().enumerate() {
            let claims = net.nodes[n].space().write_view().claims;
            observe(&format!("seed {seed} node {n}, healed"), &claims, &mut owner, &mut before[k])?;
            proptest::prop_assert_eq!(&claims, &first, "seed {}: node {} holds other claims", seed, n);
        }
    }
}
