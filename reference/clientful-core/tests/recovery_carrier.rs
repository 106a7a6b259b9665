//! Recovery sets travel as RECOVERY_SET carriers in the delivery document (REC-4,
//! KEY-14, KEY-16): holders keep their shares, release them only when a device of
//! the kit's user signed the set (REC-6), and any k releases restore the user (REC-7).
//! spec: REC-4, REC-6, REC-7, KEY-16.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::needless_range_loop
)]

use clientful_core::ErrorClass;
use clientful_core::identity::DeviceKeys;
use clientful_core::keys::SigningKey;
use clientful_core::membership::space::Identity;

mod space_common;
use clientful_core::membership::{Received, Role, Scope, SpaceReplica, Verdict, delivery};
use clientful_core::recovery::{self, Holder, RequestSecret};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Delivers what `from` wrote to every other replica.
fn exchange(reps: &mut [SpaceReplica], from: usize) {
    let all: Vec<usize> = (0..reps.len()).collect();
    space_common::exchange(reps, from, &all, &mut Vec::new());
}

struct World {
    rng: ChaCha20Rng,
    users: Vec<SigningKey>,
    reps: Vec<SpaceReplica>,
}

/// Alice (admin) and four writers, every key delivered.
fn world() -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let users: Vec<SigningKey> = (0..5).map(|_| SigningKey::generate(&mut rng)).collect();
    let ids: Vec<Identity> = users
        .iter()
        .map(|u| Identity::new(u, DeviceKeys::generate(&mut rng)).unwrap())
        .collect();
    let certs: Vec<Vec<u8>> = ids.iter().map(|i| i.certificate.clone()).collect();
    let mut ids = ids.into_iter();
    let mut reps = vec![SpaceReplica::create(&mut rng, ids.next().unwrap()).unwrap()];
    let space_id = *reps[0].space_id();
    for id in ids {
        reps.push(SpaceReplica::new(space_id, id).unwrap());
    }
    exchange(&mut reps, 0);
    for i in 1..5 {
        let u = users[i].public_bytes();
        reps[0]
            .add_member(
                &mut rng,
                &u,
                Role::Writer,
                &Scope::whole(),
                &[certs[i].clone()],
            )
            .unwrap();
        exchange(&mut reps, 0);
        for _ in 0..2 {
            for a in 0..5 {
                if reps[a].needs_my_ack() {
                    reps[a].ack(&mut rng).unwrap();
                }
                reps[a].welcomes(&mut rng).unwrap();
                exchange(&mut reps, a);
            }
        }
    }
    for r in &reps {
        assert!(r.current_epoch().is_some(), "every member holds the epoch");
    }
    World { rng, users, reps }
}

fn holder(rep: &SpaceReplica) -> Holder {
    let me = rep.identity();
    Holder {
        device_id: me.device_id(),
        x25519: me.device.x25519.public(),
    }
}

#[test]
fn holders_keep_shares_from_the_carrier_and_any_two_restore_alice() {
    let mut w = world();
    let holders: Vec<Holder> = (1..4).map(|i| holder(&w.reps[i])).collect();
    let seed = w.users[0].seed();
    let set = recovery::create_set(&mut w.rng, &seed, "Alice", &holders, 2).unwrap();
    let carrier = w.reps[0].recovery_set_carrier(&mut w.rng, &set).unwrap();
    assert!(w.reps[0].carriers().contains(&carrier));
    for i in 1..5 {
        assert_eq!(w.reps[i].receive(&carrier), Received::Delivered);
        assert_eq!(w.reps[i].receive(&carrier), Received::Duplicate);
    }
    // Holders 1..3 keep one share each, confirmed as Alice's; member 4 holds none.
    for i in 1..4 {
        let held = w.reps[i].held_recovery_shares();
        assert_eq!(held.len(), 1);
        assert!(held[0].owner_confirmed);
        assert_eq!(held[0].held.user_key, w.users[0].public_bytes());
        assert_eq!(held[0].held.index, i as u32);
    }
    assert!(w.reps[4].held_recovery_shares().is_empty());

    // Alice lost her device: a new one asks; holders 3 and 1 release.
    let request = RequestSecret::generate(&mut w.rng).unwrap();
    let kit_id = w.reps[1].held_recovery_shares()[0].kit_id;
    let r3 = w.reps[3]
        .release_recovery_share(&mut w.rng, &kit_id, request.request())
        .unwrap();
    let r1 = w.reps[1]
        .release_recovery_share(&mut w.rng, &kit_id, request.request())
        .unwrap();
    let restored = recovery::restore(&request, &[&r3, &r1]).unwrap();
    assert_eq!(*restored.user_seed, *seed);
    assert_eq!(restored.name, "Alice");
    // One release is not enough.
    let e = recovery::restore(&request, &[&r3]).unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidOperation);
    // Member 4 holds nothing to release.
    let e = w.reps[4]
        .release_recovery_share(&mut w.rng, &kit_id, request.request())
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::WrongContext);
}

#[test]
fn a_set_for_another_user_is_never_released() {
    let mut w = world();
    // Bob (member 1) writes a set that claims to be Alice's: a kit whose user key is
    // Alice's but whose carrier Bob's device signs. The reference refuses to write
    // it; a hostile client could, so the carrier is sealed by hand here.
    let holders: Vec<Holder> = [2, 3].iter().map(|&i| holder(&w.reps[i])).collect();
    let alice_seed = w.users[0].seed();
    let forged = recovery::create_set(&mut w.rng, &alice_seed, "", &holders, 2).unwrap();
    let e = w.reps[1]
        .recovery_set_carrier(&mut w.rng, &forged)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::WrongContext, "the writer refuses");
    let epoch = w.reps[1].current_epoch().unwrap();
    let space_id = *w.reps[1].space_id();
    let carrier = delivery::seal_carrier(
        &mut w.rng,
        &w.reps[1].identity().device.signing,
        &space_id,
        &epoch,
        delivery::CT_RECOVERY_SET,
        &forged,
    )
    .unwrap();
    assert_eq!(w.reps[2].receive(&carrier), Received::Delivered);
    let held = w.reps[2].held_recovery_shares();
    assert_eq!(held.len(), 1);
    assert!(!held[0].owner_confirmed, "Bob's device is not Alice's");
    let request = RequestSecret::generate(&mut w.rng).unwrap();
    let e = w.reps[2]
        .release_recovery_share(&mut w.rng, &held[0].kit_id, request.request())
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::WrongContext, "never released");
    // Bob's own set, carried by Bob's device, is his and is released.
    let bob_seed = w.users[1].seed();
    let set = recovery::create_set(&mut w.rng, &bob_seed, "Bob", &holders, 2).unwrap();
    let carrier = w.reps[1].recovery_set_carrier(&mut w.rng, &set).unwrap();
    assert_eq!(w.reps[2].receive(&carrier), Received::Delivered);
    let held = w.reps[2].held_recovery_shares();
    let bobs = held
        .iter()
        .find(|h| h.held.user_key == w.users[1].public_bytes())
        .unwrap();
    assert!(bobs.owner_confirmed);
    // A garbage set in a correctly signed carrier is rejected with its class.
    let bad = w.reps[1]
        .recovery_set_carrier(&mut w.rng, b"\x0a\x01")
        .unwrap_err();
    assert_eq!(bad.class(), ErrorClass::Malformed);
}

/// MEM-11 after a recovery (REC-8): an admin adds a device that a member's user key
/// certified, and every member accepts it; a writer cannot, and nobody can add a
/// device of a user who is not a member.
#[test]
fn an_admin_adds_a_device_a_member_certified() {
    let mut w = world();
    let verdict_everywhere = |reps: &mut [SpaceReplica], from: usize, id| {
        exchange(reps, from);
        reps.iter()
            .map(|r| r.verdict(&id))
            .collect::<Vec<Verdict>>()
    };
    // Bob (member 1) restored his user key on a new device.
    let bob_new = Identity::new(&w.users[1], DeviceKeys::generate(&mut w.rng)).unwrap();
    let id = w.reps[0]
        .add_device(&mut w.rng, &bob_new.certificate)
        .unwrap();
    for v in verdict_everywhere(&mut w.reps, 0, id) {
        assert_eq!(v, Verdict::Accepted);
    }
    let state = w.reps[3].state();
    let bobs = state
        .devices
        .values()
        .filter(|d| d.user == w.users[1].public_bytes() && d.revoked_by.is_none())
        .count();
    assert_eq!(bobs, 2, "bob's old and new device");

    // Carol (a writer) cannot add another device of bob's: her replica refuses to
    // write it, with the class every replica would give it (NOT_A_MEMBER: no admin
    // role).
    let bob_third = Identity::new(&w.users[1], DeviceKeys::generate(&mut w.rng)).unwrap();
    let e = w.reps[2]
        .add_device(&mut w.rng, &bob_third.certificate)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotAMember);
    // Nor can Alice add a device of someone who is not a member: INVALID_OPERATION.
    let stranger = SigningKey::generate(&mut w.rng);
    let theirs = Identity::new(&stranger, DeviceKeys::generate(&mut w.rng)).unwrap();
    let e = w.reps[0]
        .add_device(&mut w.rng, &theirs.certificate)
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidOperation);
}
