//! The session core driven directly, as the conformance reference adapter and
//! the simulator drive it ([`Transport::Direct`]): what the replica sends comes
//! out of `poll_direct` as it is, in order; the follow-ups draw from the
//! driver's randomness and do exactly what the policy of `clientful_core` does
//! on a bare replica; the driver's admission choice is honoured.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use clientful_core::identity::DeviceKeys;
use clientful_core::keys::{SigningKey, X25519Secret};
use clientful_core::membership::space::{Identity, Outgoing};
use clientful_core::membership::{Admission, FollowUpPolicy, Role, Scope, SpaceReplica};
use clientful_session::{Persist, Session, SessionConfig, Transport};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn identity(u: u8) -> Identity {
    let user = SigningKey::from_seed(&[u; 32]);
    let device = DeviceKeys {
        signing: SigningKey::from_seed(&[u.wrapping_add(100); 32]),
        x25519: X25519Secret::from_bytes(&[u.wrapping_add(200); 32]),
    };
    Identity::new(&user, device).expect("identity")
}

fn direct(replica: SpaceReplica) -> Session {
    let device_key = replica.identity().device.signing.public_bytes();
    Session::with_transport(
        SessionConfig {
            replica,
            device_key,
            lobbies: Vec::new(),
            links: Vec::new(),
            confirm_admissions: false,
            rng_seed: [0; 32],
        },
        Transport::Direct,
    )
    .expect("session")
}

fn out(s: &mut Session) -> Vec<Outgoing> {
    s.flush().expect("flush");
    assert_eq!(
        s.poll_transmit(),
        None,
        "a direct session transmits nothing"
    );
    std::iter::from_fn(|| s.poll_direct()).collect()
}

/// Alice's space with an open invite and bob's redemption received, twice:
/// as a session and as a bare replica, from the same seeds.
fn admin_with_a_redemption(seed: u8) -> (Session, SpaceReplica, ChaCha20Rng, ChaCha20Rng) {
    let mut rng_s = ChaCha20Rng::from_seed([seed; 32]);
    let mut rng_r = ChaCha20Rng::from_seed([seed; 32]);
    let mut alice = direct(SpaceReplica::create(&mut rng_s, identity(1)).expect("create"));
    let mut bare = SpaceReplica::create(&mut rng_r, identity(1)).expect("create");
    let code = alice
        .replica_mut()
        .create_invite(&mut rng_s, Role::Writer, &Scope::whole(), false, 0)
        .expect("invite");
    bare.create_invite(&mut rng_r, Role::Writer, &Scope::whole(), false, 0)
        .expect("invite");
    // Same seeds, same bytes: the session hands out what the replica sends.
    let got = out(&mut alice);
    assert!(!got.is_empty());
    assert_eq!(got, bare.drain_outbox());
    let mut persisted = 0;
    while let Some(p) = alice.poll_persist() {
        if let Persist::Envelope { outbox, .. } = p {
            assert!(outbox);
            persisted += 1;
        }
    }
    let envelopes = got
        .iter()
        .filter(|o| matches!(o, Outgoing::Envelope(_)))
        .count();
    assert_eq!(persisted, envelopes, "every own envelope is persisted");

    // Bob draws from a stream of his own: alice's two streams stay in step.
    let mut rng_b = ChaCha20Rng::from_seed([seed.wrapping_add(1); 32]);
    let mut bob =
        SpaceReplica::redeem(&mut rng_b, &code, identity(2), Role::Writer).expect("redeem");
    for o in bob.drain_outbox() {
        if let Outgoing::Envelope(e) = o {
            alice.handle_envelope(&e);
            bare.receive(&e);
        }
    }
    assert_eq!(alice.pending_admissions().len(), 1);
    (alice, bare, rng_s, rng_r)
}

#[test]
fn the_follow_ups_are_the_policy_with_the_drivers_randomness() {
    let (mut alice, mut bare, mut rng_s, mut rng_r) = admin_with_a_redemption(3);
    let done = alice.follow_up_with(&mut rng_s, None).expect("follow up");
    let want = bare
        .follow_up(&mut rng_r, &FollowUpPolicy::default())
        .expect("policy");
    assert_eq!(done, want);
    assert_eq!(done.admitted.len(), 1);
    assert!(done.welcomes > 0, "bob's device is welcomed");
    let got = out(&mut alice);
    assert!(got.iter().any(|o| matches!(o, Outgoing::Welcome { .. })));
    assert_eq!(
        got,
        bare.drain_outbox(),
        "same items, same order, same bytes"
    );
    assert_eq!(alice.take_follow_report().admitted.len(), 1);
    // The driver's stream advanced exactly as the bare policy's did.
    assert_eq!(rng_s, rng_r);
}

#[test]
fn the_drivers_admission_choice_is_honoured() {
    let (mut alice, _, mut rng_s, _) = admin_with_a_redemption(4);
    alice.set_admission(Admission::Never);
    assert!(alice.confirm_admissions());
    let done = alice.follow_up_with(&mut rng_s, None).expect("follow up");
    assert!(done.admitted.is_empty());
    assert_eq!(done.waiting.len(), 1);
    let id = done.waiting[0].redemption;
    alice.set_admission(Admission::Confirmed(vec![id]));
    let done = alice.follow_up_with(&mut rng_s, None).expect("follow up");
    assert_eq!(done.admitted, vec![id]);
}
