//! The resolved membership is a pure function of the set of operations
//! (MEM-17): any delivery order of one log, with duplicates, gives an observer
//! holding every epoch key the same state and the same verdicts.
//! spec: MEM-17, MEM-23, KEY-11.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::OnceLock;

use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{EpochKey, SigningKey, X25519Secret};
use clientful_core::membership::space::Identity;

mod space_common;
use clientful_core::membership::{Role, Scope, SpaceReplica, State, Verdict};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use space_common::exchange;

struct Log {
    space_id: [u8; 32],
    envelopes: Vec<Vec<u8>>,
    keys: Vec<EpochKey>,
}

/// A, B, C admins, W writer; then concurrently: B and C remove each other, A
/// adds D and rotates, W acknowledges.
fn scenario() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
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
        let mut log = Vec::new();
        let all = [0, 1, 2, 3, 4];
        exchange(&mut reps, 0, &all, &mut log);
        for (i, role) in [(1, Role::Admin), (2, Role::Admin), (3, Role::Writer)] {
            let u = users[i].public_bytes();
            reps[0]
                .add_member(&mut rng, &u, role, &Scope::whole(), &[certs[i].clone()])
                .unwrap();
            exchange(&mut reps, 0, &all, &mut log);
            for _ in 0..2 {
                for a in 0..4 {
                    if reps[a].needs_my_ack() {
                        reps[a].ack(&mut rng).unwrap();
                    }
                    reps[a].welcomes(&mut rng).unwrap();
                    exchange(&mut reps, a, &all, &mut log);
                }
            }
        }
        let (b, c, d) = (
            users[1].public_bytes(),
            users[2].public_bytes(),
            users[4].public_bytes(),
        );
        reps[1].remove_member(&mut rng, &c, &[]).unwrap();
        reps[2].remove_member(&mut rng, &b, &[]).unwrap();
        reps[0]
            .add_member(
                &mut rng,
                &d,
                Role::Reader,
                &Scope::whole(),
                &[certs[4].clone()],
            )
            .unwrap();
        reps[0].rotate(&mut rng).unwrap();
        reps[3].ack(&mut rng).unwrap();
        for a in 0..4 {
            exchange(&mut reps, a, &[], &mut log);
        }
        let mut keys: Vec<EpochKey> = Vec::new();
        for r in &reps {
            for k in r.keys().all() {
                if !keys.iter().any(|x| x.id() == k.id()) {
                    keys.push(k);
                }
            }
        }
        Log {
            space_id,
            envelopes: log,
            keys,
        }
    })
}

fn observe(order: &[usize], dup: &[usize]) -> (State, Vec<([u8; 32], Verdict)>) {
    let log = scenario();
    let me = Identity::new(
        &SigningKey::from_seed(&[1; 32]),
        DeviceKeys {
            signing: SigningKey::from_seed(&[2; 32]),
            x25519: X25519Secret::from_bytes(&[3; 32]),
        },
    )
    .unwrap();
    let mut obs = SpaceReplica::new(log.space_id, me).unwrap();
    obs.import_keys(&log.keys);
    for (n, &i) in order.iter().enumerate() {
        obs.receive(&log.envelopes[i]);
        if dup.contains(&n) {
            obs.receive(&log.envelopes[i]);
        }
    }
    (obs.state().clone(), obs.decided())
}

#[test]
fn the_scenario_resolves_as_documented() {
    let n = scenario().envelopes.len();
    let (s, verdicts) = observe(&(0..n).collect::<Vec<_>>(), &[]);
    assert_eq!(verdicts.len(), n);
    // B (admin before C) stands; C is removed; A, B, W and D are members.
    assert_eq!(s.members.len(), 4);
    assert_eq!(s.removed.len(), 1);
    assert!(
        verdicts
            .iter()
            .any(|(_, v)| *v == Verdict::Void(clientful_core::ErrorClass::RemovedMember))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_delivery_order_gives_the_same_state(
        order in Just((0..scenario().envelopes.len()).collect::<Vec<usize>>()).prop_shuffle(),
        dup in proptest::collection::vec(0usize..40, 0..6),
    ) {
        let n = scenario().envelopes.len();
        let reference = observe(&(0..n).collect::<Vec<_>>(), &[]);
        let got = observe(&order, &dup);
        prop_assert_eq!(got.0, reference.0);
        prop_assert_eq!(got.1, reference.1);
    }
}
