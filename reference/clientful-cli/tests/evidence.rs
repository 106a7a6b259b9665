//! Membership evidence shown by the CLI (issue 22, findings 1 and 3): what the
//! membership replica records for the user reaches `doctor report` and `sync`.
//! The CLI cannot craft a rival genesis, so the test plays the thief: it opens
//! alice's space through the SDK (as an ordinary envelope arriving from a peer
//! would reach it) and plants a second `CREATE_SPACE` signed by a device key
//! alice's user key certified (the forgery of
//! `clientful_core::testkit::forge`), with a welcome handing out its epoch.
//!
//! | test | finding |
//! |---|---|
//! | `rival_genesis_is_shown` | a rival genesis was recorded by the core but shown by no client |
//!
//! spec: MEM-26, MEM-27, KEY-20, KEY-21, KEY-22.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use cli_common::{User, folder_storage as storage};
use clientful_core::keys::SigningKey;
use clientful_core::membership::delivery;
use clientful_core::membership::epoch::{self, Recipient, WelcomeSigner};
use clientful_core::membership::ops::OpBody;
use clientful_core::testkit::forge::{self, RivalGenesis};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Plants, in alice's device-local store, a rival `CREATE_SPACE` (same user
/// key and nonce, so the same space id, signed by a fresh device alice's user
/// key certified) and a carrier with a welcome handing alice its epoch, signed
/// by the rival device and naming the rival as what added it. Returns the
/// rival's envelope id.
fn plant_rival(home: &std::path::Path) -> [u8; 32] {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = clientful::Client::open(home).unwrap();
        let backup: serde_json::Value = serde_json::from_str(&client.profile().backup_unsealed()).unwrap();
        let seed: [u8; 32] = hex::decode(backup["user_seed"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let creator = SigningKey::from_seed(&seed);
        let mut sp = client.open_space("team").await.unwrap();
        let m = sp.membership();
        let space_id = *m.space_id();
        let genesis = m.state().genesis.unwrap();
        let Some(OpBody::CreateSpace { nonce, .. }) = m.op(&genesis).map(|o| &o.body) else {
            panic!("no genesis");
        };
        let nonce = *nonce;
        let current = m.current_epoch().unwrap();
        let to_alice = Recipient {
            device_id: m.identity().device_id(),
            x25519: m.identity().verified.device_x25519,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let RivalGenesis {
            envelope: rival,
            id: rival_id,
            epoch: e,
            device: thief,
        } = forge::rival_genesis(&mut rng, &creator, space_id, nonce, None).unwrap();
        let signer = WelcomeSigner {
            signing: &thief.signing,
            certificate: &thief.certificate,
            added_by: rival_id,
        };
        let w = epoch::welcome(
            &mut rng,
            &space_id,
            &signer,
            &to_alice,
            std::slice::from_ref(&e),
        )
        .unwrap();
        let carrier = delivery::seal_carrier(
            &mut rng,
            &thief.signing,
            &space_id,
            &current,
            delivery::CT_WELCOME,
            &w,
        )
        .unwrap();
        sp.receive(&[carrier, rival]).unwrap();
        assert!(
            sp.membership_alarms().iter().any(
                |a| matches!(a, clientful::MembershipAlarm::RivalGenesis { op, .. } if *op == rival_id)
            ),
            "the SDK reports the rival: {:?}",
            sp.membership_alarms()
        );
        rival_id
    })
}

/// Alice creates a space; a thief holding a device key her user key certified
/// plants a rival genesis in what her device holds. `doctor report` names the
/// rival in full hex and says what it means; `sync` shows the same line; the
/// space keeps working.
#[test]
fn rival_genesis_is_shown() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    alice.run(&["space", "create", "team", "--storage", &store]);
    let quiet = alice.run(&["doctor", "report"]);
    assert!(quiet.contains("membership evidence: none"), "{quiet}");
    let rival = plant_rival(&alice.home);
    let line = format!("EVIDENCE: rival genesis {}", hex::encode(rival));
    let report = alice.run(&["doctor", "report"]);
    assert!(
        report.contains(&line),
        "doctor report shows the rival:\n{report}"
    );
    assert!(
        report.contains("rejected; this device keeps the genesis it pinned"),
        "{report}"
    );
    let synced = alice.run(&["sync"]);
    assert!(synced.contains(&line), "sync shows the rival:\n{synced}");
    assert!(synced.contains("access: yes"), "{synced}");
}
