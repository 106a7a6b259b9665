//! The session core driven by hand, without IO: an admin and an invitee
//! exchange what their sessions ask to deliver, the invitee is admitted and
//! welcomed through the follow-ups, and the sync exchange asks for its steps
//! in the order of spec §9.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use clientful_core::identity::DeviceKeys;
use clientful_core::keys::SigningKey;
use clientful_core::membership::Role;
use clientful_core::membership::SpaceReplica;
use clientful_core::membership::invite;
use clientful_core::membership::space::Identity;
use clientful_session::stored::{KEY_EPOCHS, KEY_PENDING};
use clientful_session::{
    Persist, Session, SessionConfig, Stored, SyncExchange, SyncStep, lobby_key,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use clientful_core::keys::X25519Secret;

/// The identity of user `u`'s device (rebuilt the same from the same `u`).
fn identity(u: u8) -> (Identity, [u8; 32]) {
    let user = SigningKey::from_seed(&[u; 32]);
    let device = DeviceKeys {
        signing: SigningKey::from_seed(&[u.wrapping_add(100); 32]),
        x25519: X25519Secret::from_bytes(&[u.wrapping_add(200); 32]),
    };
    let key = device.signing.public_bytes();
    (Identity::new(&user, device).expect("identity"), key)
}

fn config(
    replica: SpaceReplica,
    device_key: [u8; 32],
    lobby: Option<[u8; 32]>,
    seed: u8,
) -> SessionConfig {
    SessionConfig {
        replica,
        device_key,
        lobbies: lobby.map(Zeroizing::new).into_iter().collect(),
        links: Vec::new(),
        confirm_admissions: false,
        rng_seed: [seed; 32],
    }
}

/// A device-local store as the session sees it: envelopes and keys.
#[derive(Default)]
struct Local {
    envelopes: Vec<Vec<u8>>,
    outbox: Vec<Vec<u8>>,
    keys: BTreeMap<&'static str, Vec<u8>>,
}

impl Local {
    fn apply(&mut self, s: &mut Session) {
        while let Some(p) = s.poll_persist() {
            match p {
                Persist::Envelope { bytes, outbox } => {
                    if outbox {
                        self.outbox.push(bytes.clone());
                    }
                    self.envelopes.push(bytes);
                }
                Persist::Key { name, value } => {
                    self.keys.insert(name, value);
                }
            }
        }
    }
}

#[test]
fn an_invitee_is_admitted_and_welcomed_through_the_deliveries() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let (alice_id, alice_key) = identity(1);
    let (bob_id, bob_key) = identity(2);

    let replica = SpaceReplica::create(&mut rng, alice_id).expect("create");
    let mut alice = Session::new(config(replica, alice_key, None, 1)).expect("alice");
    let mut alice_local = Local::default();
    alice_local.apply(&mut alice);
    assert!(alice.has_access());
    assert!(alice_local.keys.contains_key(KEY_EPOCHS));
    assert!(
        !alice_local.outbox.is_empty(),
        "the genesis goes to the outbox"
    );

    let code = alice.create_invite(Role::Writer, true, 0).expect("invite");
    alice_local.apply(&mut alice);
    assert_eq!(
        alice.lobbies_to_read().len(),
        1,
        "the invite's lobby is read"
    );

    let parsed = invite::decode(&code).expect("code");
    let bob_replica = SpaceReplica::redeem(&mut rng, &code, bob_id, Role::Writer).expect("redeem");
    let mut bob = Session::new(config(bob_replica, bob_key, Some(*parsed.secret), 2)).expect("bob");
    let mut bob_local = Local::default();
    bob_local.apply(&mut bob);
    assert!(!bob.has_access());
    // The redemption may only travel through the lobby (MEM-21).
    let ups = bob.deliveries().uploads();
    assert_eq!(ups.len(), 1);
    let lobby = lobby_key(bob.space_id(), &parsed.secret).expect("lobby");
    assert_eq!(ups[0].epoch.id(), lobby.id());
    assert!(
        bob_local.outbox.is_empty(),
        "nothing of bob's goes to the epoch"
    );
    bob.delivered(ups[0].epoch.id(), &ups[0].envelopes);
    assert!(bob.deliveries().is_empty());
    bob_local.apply(&mut bob);
    assert_eq!(bob_local.keys[KEY_PENDING], Vec::<u8>::new());

    // Alice reads the lobby and follows up: admits bob and welcomes his device.
    let changed = alice.handle_log(ups[0].envelopes.iter().map(Vec::as_slice));
    assert!(changed);
    alice.follow_up(Some(0)).expect("follow up");
    alice_local.apply(&mut alice);
    let report = alice.take_follow_report();
    assert_eq!(report.admitted.len(), 1);
    let welcome = alice.deliveries().uploads();
    assert!(welcome.iter().any(|d| d.epoch.id() == lobby.id()));

    // Bob reads his lobby: the welcome and the log give him the key.
    let mut from_lobby: Vec<Vec<u8>> = Vec::new();
    for d in &welcome {
        if d.epoch.id() == lobby.id() {
            from_lobby.extend(d.envelopes.iter().cloned());
        }
    }
    // The admission itself is in alice's outbox (current epoch).
    from_lobby.extend(alice_local.outbox.iter().cloned());
    bob.handle_log(from_lobby.iter().map(Vec::as_slice));
    bob.follow_up(Some(0)).expect("bob follows up");
    bob_local.apply(&mut bob);
    assert!(bob.has_access(), "bob was welcomed");
    assert_eq!(bob.members().len(), 2);

    // Reopened from what was persisted, bob's session is the same.
    let stored = Stored {
        epochs: bob_local.keys.get(KEY_EPOCHS).cloned(),
        welcomed: None,
        pending: bob_local.keys.get(KEY_PENDING).cloned(),
    };
    let bob_again_replica = SpaceReplica::new(*bob.space_id(), identity(2).0).expect("replica");
    let all: Vec<Vec<u8>> = bob_local
        .envelopes
        .iter()
        .chain(from_lobby.iter())
        .cloned()
        .collect();
    let again = Session::restore(
        config(bob_again_replica, bob_key, Some(*parsed.secret), 3),
        &stored,
        all.iter().map(Vec::as_slice),
    )
    .expect("restore");
    assert!(again.has_access());
    assert_eq!(again.members(), bob.members());
}

#[test]
fn the_exchange_asks_for_its_steps_in_order_and_stops_when_nothing_is_learned() {
    let mut rng = ChaCha20Rng::from_seed([8; 32]);
    let (alice_id, alice_key) = identity(1);
    let replica = SpaceReplica::create(&mut rng, alice_id).expect("create");
    let mut alice = Session::new(config(replica, alice_key, None, 1)).expect("alice");
    alice.create_invite(Role::Reader, false, 0).expect("invite");

    let mut ex = SyncExchange::start(&alice, 0);
    let mut names = Vec::new();
    while let Some(step) = ex.poll_step(&alice) {
        names.push(match step {
            SyncStep::RepairOwn(e) => {
                // The epoch held and the invite's lobby.
                assert_eq!(e.len(), 2);
                "repair"
            }
            SyncStep::Deliver(_) => "deliver",
            SyncStep::ShowPreviews(_) => "previews",
            SyncStep::Pull(v) => {
                assert!(v.signers.contains(&alice_key));
                "pull"
            }
            SyncStep::PullLobby(_) => "lobby",
            SyncStep::Learn => {
                alice.follow_up(Some(0)).expect("follow up");
                ex.learned(0);
                "learn"
            }
            SyncStep::CheckPreviews => "check",
            SyncStep::Flush(_) => "flush",
            _ => "other",
        });
    }
    assert_eq!(
        names,
        [
            "repair", "previews", "pull", "lobby", "learn", "check", "flush"
        ]
    );
    let out = ex.finish(&mut alice, &[]);
    assert!(out.has_access);
    assert_eq!(out.epochs_held, 1);

    // Something received keeps the rounds going, up to the bound.
    let mut ex = SyncExchange::start(&alice, 1);
    let mut rounds = 0;
    while let Some(step) = ex.poll_step(&alice) {
        if let SyncStep::Pull(_) = step {
            rounds += 1;
            ex.received(1);
        }
        if let SyncStep::ShowPreviews(_) = step {
            panic!("a device holding documents is shown no preview");
        }
    }
    assert_eq!(rounds, clientful_session::MAX_SYNC_ROUNDS);
}

#[test]
fn an_admin_is_woken_at_the_next_invite_expiry() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let (alice_id, alice_key) = identity(1);
    let replica = SpaceReplica::create(&mut rng, alice_id).expect("create");
    let mut alice = Session::new(config(replica, alice_key, None, 1)).expect("alice");
    assert_eq!(alice.poll_timeout(), None);
    alice.create_invite(Role::Reader, false, 0).expect("invite");
    assert_eq!(
        alice.poll_timeout(),
        None,
        "no expiry: nothing to wake up for"
    );
    alice
        .create_invite(Role::Reader, false, 5_000)
        .expect("invite");
    assert_eq!(alice.poll_timeout(), Some(5_000));
    alice.handle_timeout(1_000).expect("early");
    assert_eq!(alice.take_follow_report().expired_invites, 0);
    alice.handle_timeout(6_000).expect("expired");
    assert_eq!(alice.take_follow_report().expired_invites, 1);
    assert_eq!(alice.poll_timeout(), None);
}
