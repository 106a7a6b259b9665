//! User-key rotation (MEM-32, §5.7): a member's device publishes `ROTATE_USER`;
//! the new key takes the old one's role, the author device continues under its
//! new certificate, the old user's other devices are excluded, and the old key
//! is refused afterwards. Forged statements are rejected with their class, and
//! two rotations of one old key are both void, in every delivery order.
//! spec: MEM-32, ROT-1..ROT-5, MEM-17.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clientful_core::ErrorClass;
use clientful_core::continuity;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{EpochKey, SigningKey, X25519Secret};
use clientful_core::membership::space::{Alarm, Identity};
use clientful_core::membership::{FollowUpPolicy, Role, Scope, SpaceReplica, State, Verdict};
use clientful_core::testkit::forge;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

mod space_common;
use space_common::exchange;

/// Device `i`'s keys, always the same (so a rotation can certify them again).
fn device(i: u8) -> DeviceKeys {
    DeviceKeys {
        signing: SigningKey::from_seed(&[100 + i; 32]),
        x25519: X25519Secret::from_bytes(&[150 + i; 32]),
    }
}

/// Users: 0 alice (admin, creator), 1 bob (writer), 2 carol (writer); bob's
/// keys under his rotations: 3 and 4.
fn user(i: u8) -> SigningKey {
    SigningKey::from_seed(&[1 + i; 32])
}

struct World {
    rng: ChaCha20Rng,
    reps: Vec<SpaceReplica>,
    log: Vec<Vec<u8>>,
}

const ALICE: usize = 0;
const BOB1: usize = 1;
const BOB2: usize = 2;
const CAROL: usize = 3;
const ALL: [usize; 4] = [ALICE, BOB1, BOB2, CAROL];

impl World {
    fn settle(&mut self) {
        for _ in 0..4 {
            for a in ALL {
                let _ = self.reps[a].follow_up(&mut self.rng, &FollowUpPolicy::default());
                exchange(&mut self.reps, a, &ALL, &mut self.log);
            }
        }
    }

    /// Alice's space with bob (two devices) and carol as writers.
    fn new(seed: u64) -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let alice =
            SpaceReplica::create(&mut rng, Identity::new(&user(0), device(0)).unwrap()).unwrap();
        let space_id = *alice.space_id();
        let mut reps = vec![alice];
        for (u, d) in [(1, 1), (1, 2), (2, 3)] {
            reps.push(
                SpaceReplica::new(space_id, Identity::new(&user(u), device(d)).unwrap()).unwrap(),
            );
        }
        let mut w = World {
            rng,
            reps,
            log: Vec::new(),
        };
        exchange(&mut w.reps, ALICE, &ALL, &mut w.log);
        for (u, rep) in [(1u8, BOB1), (2, CAROL)] {
            let cert = w.reps[rep].identity().certificate.clone();
            w.reps[ALICE]
                .add_member(
                    &mut w.rng,
                    &user(u).public_bytes(),
                    Role::Writer,
                    &Scope::whole(),
                    &[cert],
                )
                .unwrap();
            w.settle();
        }
        let cert2 = w.reps[BOB2].identity().certificate.clone();
        w.reps[BOB1].add_device(&mut w.rng, &cert2).unwrap();
        w.settle();
        for r in &w.reps {
            assert!(r.current_epoch().is_some(), "setup: every device reads");
        }
        w
    }

    /// Bob's device `rep` rotates bob's key (`old`) to `new`.
    fn rotate(&mut self, rep: usize, old: u8, new: u8) -> [u8; 32] {
        let statement = continuity::sign_continuity(&user(old), &user(new)).unwrap();
        let next = Identity::new(&user(new), device(rep as u8)).unwrap();
        self.reps[rep]
            .rotate_user(&mut self.rng, &statement, next, &[])
            .unwrap()
    }
}

#[test]
fn rotation_moves_the_user_and_refuses_the_old_key() {
    let mut w = World::new(1);
    let (bob, bob2) = (user(1).public_bytes(), user(3).public_bytes());
    let old_dev2 = w.reps[BOB2].identity().device_id();
    let rot = w.rotate(BOB1, 1, 3);
    w.settle();
    for r in [ALICE, BOB1, CAROL] {
        let s = w.reps[r].state();
        assert_eq!(w.reps[r].verdict(&rot), Verdict::Accepted, "replica {r}");
        assert_eq!(s.members.get(&bob2).map(|m| m.role), Some(Role::Writer));
        assert!(!s.members.contains_key(&bob));
        assert_eq!(s.removed.get(&bob), Some(&rot));
        assert_eq!(s.retired.get(&bob), Some(&rot));
        // bob's first device continues under its new certificate; the other is out.
        let bob1_key = device(1).signing.public_bytes();
        let id = s.device_ids[&bob1_key];
        assert_eq!(s.active_device(&id).unwrap().0.user, bob2);
        assert!(s.active_device(&old_dev2).is_none());
        assert!(s.current_epoch().is_some());
        assert!(w.reps[r].current_epoch().is_some(), "replica {r} reads");
    }
    assert_eq!(w.reps[BOB1].identity().user, bob2);
    // The excluded device holds no key of the new epoch.
    let cur = w.reps[ALICE].current_epoch().unwrap();
    assert!(w.reps[BOB2].keys().get(cur.id()).is_none());

    // The old key certifies a device: alice (an admin) cannot add it.
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let stale = Identity::new(&user(1), DeviceKeys::generate(&mut rng)).unwrap();
    let err = w.reps[ALICE]
        .add_device(&mut w.rng, &stale.certificate)
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RemovedMember);
    // Nor re-add the old key as a member.
    let err = w.reps[ALICE]
        .add_member(
            &mut w.rng,
            &bob,
            Role::Writer,
            &Scope::whole(),
            std::slice::from_ref(&stale.certificate),
        )
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RemovedMember);

    // bob's excluded device (which cannot open the rotation, so never sees it)
    // publishes an ADD_DEVICE of the stale device: concurrent with the
    // rotation, it is void (REMOVED_MEMBER) on every member; nothing changes.
    w.settle();
    let before = w.reps[ALICE].state().clone();
    let env = forge::crafted_add_device(&mut w.rng, &w.reps[BOB2], &stale.certificate).unwrap();
    let id = clientful_core::envelope::decode(&env).unwrap().id;
    for r in [ALICE, CAROL] {
        w.reps[r].receive(&env);
        assert_eq!(
            w.reps[r].verdict(&id),
            Verdict::Void(ErrorClass::RemovedMember),
            "replica {r}"
        );
    }
    assert_eq!(w.reps[ALICE].state().members, before.members);

    // The new key links bob's second device back (ADD_DEVICE certified by the
    // new key), and it reads again.
    let back = Identity::new(&user(3), device(BOB2 as u8)).unwrap();
    w.reps[BOB1]
        .add_device(&mut w.rng, &back.certificate)
        .unwrap();
    let space_id = *w.reps[ALICE].space_id();
    w.reps[BOB2] = SpaceReplica::new(space_id, back).unwrap();
    let log = w.log.clone();
    for e in &log {
        w.reps[BOB2].receive(e);
    }
    w.settle();
    assert!(w.reps[BOB2].current_epoch().is_some());
    assert_eq!(
        w.reps[CAROL].state().members[&bob2].role,
        Role::Writer,
        "still one member"
    );
    assert_eq!(w.reps[CAROL].state().user_devices(&bob2).len(), 2);

    // A rotation chains: bob's new key is rotated again.
    let rot2 = w.rotate(BOB1, 3, 4);
    w.settle();
    let s = w.reps[ALICE].state();
    assert_eq!(w.reps[ALICE].verdict(&rot2), Verdict::Accepted);
    assert!(s.members.contains_key(&user(4).public_bytes()));
    assert!(s.retired.contains_key(&bob2) && s.retired.contains_key(&bob));
}

fn verdict_of(r: &mut SpaceReplica, unchecked: &forge::UncheckedRotation) -> Verdict {
    let _ = r.receive_key_message(&unchecked.key_message);
    r.import_keys(std::slice::from_ref(&unchecked.epoch));
    r.receive(&unchecked.envelope);
    let id = clientful_core::envelope::decode(&unchecked.envelope)
        .unwrap()
        .id;
    r.verdict(&id)
}

#[test]
fn forged_continuity_is_rejected_with_its_class() {
    let mut w = World::new(2);
    let next = Identity::new(&user(3), device(BOB1 as u8)).unwrap();
    let thief = user(9);
    let cases: Vec<(Vec<u8>, Vec<u8>, ErrorClass)> = vec![
        // Forged: the old signature by another key.
        (
            continuity::sign_statement(
                &thief,
                &user(3),
                continuity::statement(&user(1).public_bytes(), &user(3).public_bytes()),
            )
            .unwrap(),
            next.certificate.clone(),
            ErrorClass::BadSignature,
        ),
        // The new key's acceptance missing (signed by another key).
        (
            continuity::sign_statement(
                &user(1),
                &thief,
                continuity::statement(&user(1).public_bytes(), &user(3).public_bytes()),
            )
            .unwrap(),
            next.certificate.clone(),
            ErrorClass::BadSignature,
        ),
        // A valid statement of another user (carol's key): WRONG_CONTEXT.
        (
            continuity::sign_continuity(&user(2), &user(3)).unwrap(),
            next.certificate.clone(),
            ErrorClass::WrongContext,
        ),
        // The certificate is under another key than the statement's new key.
        (
            continuity::sign_continuity(&user(1), &user(4)).unwrap(),
            next.certificate.clone(),
            ErrorClass::WrongContext,
        ),
        // New key = old key.
        (
            continuity::sign_statement(
                &user(1),
                &user(1),
                continuity::statement(&user(1).public_bytes(), &user(1).public_bytes()),
            )
            .unwrap(),
            next.certificate.clone(),
            ErrorClass::InvalidKey,
        ),
        // Malformed bytes.
        (
            vec![0x0a, 0x02, 0x08],
            next.certificate.clone(),
            ErrorClass::Malformed,
        ),
        // Over ROT-LIM-1.
        (
            vec![0u8; 600],
            next.certificate.clone(),
            ErrorClass::LimitExceeded,
        ),
    ];
    for (i, (statement, cert, class)) in cases.into_iter().enumerate() {
        let u = forge::rotate_user_unchecked(&mut w.rng, &w.reps[BOB1], &statement, &cert).unwrap();
        for r in [ALICE, CAROL] {
            let v = verdict_of(&mut w.reps[r], &u);
            assert_eq!(v, Verdict::Rejected(class), "case {i}, replica {r}");
            assert!(
                w.reps[r]
                    .state()
                    .members
                    .contains_key(&user(1).public_bytes())
            );
        }
    }
    // The genuine statement with the same builder is accepted (the cases differ
    // only by what they name).
    let good = continuity::sign_continuity(&user(1), &user(3)).unwrap();
    let u =
        forge::rotate_user_unchecked(&mut w.rng, &w.reps[BOB1], &good, &next.certificate).unwrap();
    assert_eq!(verdict_of(&mut w.reps[ALICE], &u), Verdict::Accepted);
}

struct Rivals {
    space_id: [u8; 32],
    envelopes: Vec<Vec<u8>>,
    keys: Vec<EpochKey>,
    rivals: [[u8; 32]; 2],
}

/// bob's two devices rotate bob's key concurrently to two different new keys
/// (one of them a thief holding a copy of the old key).
fn rivals() -> &'static Rivals {
    static R: std::sync::OnceLock<Rivals> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let mut w = World::new(3);
        let a = w.rotate(BOB1, 1, 3);
        let b = w.rotate(BOB2, 1, 4);
        for r in [BOB1, BOB2] {
            exchange(&mut w.reps, r, &[ALICE, CAROL], &mut w.log);
        }
        let mut keys: Vec<EpochKey> = Vec::new();
        for r in &w.reps {
            for k in r.keys().all() {
                if !keys.iter().any(|x| x.id() == k.id()) {
                    keys.push(k);
                }
            }
        }
        Rivals {
            space_id: *w.reps[ALICE].space_id(),
            envelopes: w.log,
            keys,
            rivals: [a, b],
        }
    })
}

type Observed = (State, Vec<([u8; 32], Verdict)>, Vec<Alarm>);

fn observe(order: &[usize]) -> Observed {
    let r = rivals();
    let me = Identity::new(&user(20), device(20)).unwrap();
    let mut obs = SpaceReplica::new(r.space_id, me).unwrap();
    obs.import_keys(&r.keys);
    for &i in order {
        obs.receive(&r.envelopes[i]);
    }
    (obs.state().clone(), obs.decided(), obs.alarms().to_vec())
}

#[test]
fn concurrent_rotations_of_one_key_are_both_void_with_an_alarm() {
    let r = rivals();
    let n = r.envelopes.len();
    let (s, verdicts, alarms) = observe(&(0..n).collect::<Vec<_>>());
    let bob = user(1).public_bytes();
    for id in r.rivals {
        let v = verdicts.iter().find(|(x, _)| *x == id).map(|(_, v)| *v);
        assert_eq!(v, Some(Verdict::Void(ErrorClass::InvalidOperation)));
    }
    // bob stays bob, with both devices; neither new key is a member.
    assert_eq!(s.members[&bob].role, Role::Writer);
    assert_eq!(s.user_devices(&bob).len(), 2);
    assert!(!s.members.contains_key(&user(3).public_bytes()));
    assert!(!s.members.contains_key(&user(4).public_bytes()));
    assert!(s.retired.is_empty());
    let mut want = r.rivals.to_vec();
    want.sort();
    let mut got = s.rival_rotations[&bob].clone();
    got.sort();
    assert_eq!(got, want);
    assert!(
        alarms
            .iter()
            .any(|a| matches!(a, Alarm::RivalRotation { user, .. } if *user == bob))
    );
    // The members' epoch is the one before the rotations: still readable.
    assert!(s.current_epoch().is_some());

    // Both orders of the two rivals, after the same prefix.
    let mut swapped: Vec<usize> = (0..n).collect();
    swapped.swap(n - 1, n - 2);
    let (s2, v2, _) = observe(&swapped);
    assert_eq!(s2, s);
    assert_eq!(v2, verdicts);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn concurrent_rotations_resolve_the_same_in_any_order(
        order in Just((0..rivals().envelopes.len()).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let n = rivals().envelopes.len();
        let reference = observe(&(0..n).collect::<Vec<_>>());
        let got = observe(&order);
        prop_assert_eq!(got.0, reference.0);
        prop_assert_eq!(got.1, reference.1);
    }
}

#[test]
fn a_replica_reopened_under_the_old_identity_follows_its_rotation() {
    // A shell that crashed after publishing the rotation but before storing the
    // new user key opens the space with the old identity: the replica acts as
    // the device's new certificate once its log holds the rotation.
    let mut w = World::new(4);
    let rot = w.rotate(BOB1, 1, 3);
    w.settle();
    let space_id = *w.reps[ALICE].space_id();
    let mut again = SpaceReplica::new(
        space_id,
        Identity::new(&user(1), device(BOB1 as u8)).unwrap(),
    )
    .unwrap();
    again.import_keys(&w.reps[BOB1].keys().all());
    for e in &w.log {
        again.receive(e);
    }
    assert_eq!(again.verdict(&rot), Verdict::Accepted);
    assert_eq!(again.identity().user, user(3).public_bytes());
    assert_eq!(
        again.identity().device_id(),
        w.reps[BOB1].identity().device_id()
    );
    assert!(again.current_epoch().is_some());
}

#[test]
fn a_demotion_concurrent_with_the_rotation_holds_for_the_new_key() {
    let mut w = World::new(5);
    let bob = user(1).public_bytes();
    // alice demotes bob while bob rotates, neither seeing the other.
    w.reps[ALICE]
        .change_role(&mut w.rng, &bob, Role::Reader, &Scope::whole())
        .unwrap();
    let rot = w.rotate(BOB1, 1, 3);
    exchange(&mut w.reps, ALICE, &ALL, &mut w.log);
    exchange(&mut w.reps, BOB1, &ALL, &mut w.log);
    w.settle();
    for r in [ALICE, BOB1, CAROL] {
        let s = w.reps[r].state();
        assert_eq!(w.reps[r].verdict(&rot), Verdict::Accepted, "replica {r}");
        assert_eq!(
            s.members[&user(3).public_bytes()].role,
            Role::Reader,
            "replica {r}: the demotion holds"
        );
        assert!(!s.members.contains_key(&bob));
    }
}
