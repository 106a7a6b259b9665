//! The lose-every-device story, end to end with the real `clientful` binary
//! (issue 18, spec §5.5, §5.6, §5.7, MEM-32): bob keeps a sealed backup and a
//! 2-of-2 recovery set held by alice and carol; he loses his only device;
//! he restores from the backup on a laptop and, separately, from the shares on a
//! phone; alice (an admin) adds both new devices (MEM-11); bob rotates his user
//! key on the laptop; alice and carol follow the new key (they read bob's new
//! edits and bob reads theirs) and refuse the old one: alice cannot add a device
//! the old key certified (REMOVED_MEMBER), and the phone, left under the old
//! key, writes, and its edit is rejected on every other device (REMOVED_MEMBER)
//! while nothing changes for the others.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use cli_common::{User, folder_storage, last_line};

/// Alice (an admin) adds `device`, a restored device of a member, and it joins.
fn add_device(alice: &User, device: &User, storage: &str) {
    let request = last_line(&device.run(&["devices", "request"]));
    let link = last_line(&alice.run(&["devices", "add", &request]));
    device.run(&[
        "devices",
        "join",
        &link,
        "--name",
        "team",
        "--storage",
        storage,
    ]);
    alice.run(&["sync"]);
    let synced = device.run(&["sync"]);
    assert!(synced.contains("access: yes"), "{synced}");
}

fn member_line(members: &str, key: &str) -> Option<String> {
    members
        .lines()
        .find(|l| l.starts_with(&key[..16]))
        .map(str::to_owned)
}

#[test]
fn a_user_who_lost_every_device_restores_and_rotates_the_user_key() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = folder_storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    alice.run(&["space", "create", "team", "--storage", &storage]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    alice.run(&["doc", "edit", &notes, "--append", "hello"]);
    let bob = User::new(tmp.path(), "bob");
    let carol = User::new(tmp.path(), "carol");
    for u in [&bob, &carol] {
        u.join(&alice, &storage);
    }
    let bob_key = bob.user_key();

    // Bob's sealed backup and his recovery set (both alice and carol).
    let pass = tmp.path().join("pass");
    std::fs::write(&pass, "tangerine ladder quietly folds the map\n").unwrap();
    let pass = pass.to_str().unwrap().to_owned();
    let backup = tmp.path().join("bob.cfbackup");
    let b = backup.to_str().unwrap().to_owned();
    bob.run(&[
        "identity",
        "backup",
        "--out",
        &b,
        "--passphrase-file",
        &pass,
    ]);
    let holders = format!("{},{}", &alice.user_key()[..16], &carol.user_key()[..16]);
    bob.run(&[
        "recovery",
        "setup",
        "--holders",
        &holders,
        "--threshold",
        "2",
    ]);
    let kit = alice
        .run(&["recovery", "held"])
        .lines()
        .find(|l| l.starts_with("kit "))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .expect("alice holds a share");
    carol.run(&["sync"]);

    // Bob loses his only device.
    std::fs::remove_dir_all(&bob.home).unwrap();

    // Restore 1: the sealed backup, on a laptop.
    let laptop = User::at(tmp.path(), "bob-laptop");
    let out = laptop.run(&[
        "identity",
        "restore",
        "--from",
        &b,
        "--passphrase-file",
        &pass,
    ]);
    assert!(out.contains("restored user bob"), "{out}");
    assert_eq!(laptop.user_key(), bob_key);

    // Restore 2: the shares (2 of 2), on a phone.
    let phone = User::at(tmp.path(), "bob-phone");
    let request = last_line(&phone.run(&["recovery", "request"]));
    let r_alice = last_line(&alice.run(&["recovery", "release", "--kit", &kit, &request]));
    let r_carol = last_line(&carol.run(&["recovery", "release", "--kit", &kit, &request]));
    let out = phone.run(&["recovery", "restore", &r_alice, &r_carol]);
    assert!(out.contains("restored user bob"), "{out}");
    assert_eq!(phone.user_key(), bob_key);

    // Alice adds both restored devices (MEM-11); both read.
    add_device(&alice, &laptop, &storage);
    add_device(&alice, &phone, &storage);
    assert_eq!(laptop.text(&notes), "hello");
    assert_eq!(phone.text(&notes), "hello");

    // Bob rotates his user key on the laptop (the old key may have leaked with
    // the lost device).
    let new_backup = tmp.path().join("bob-new.cfbackup");
    let nb = new_backup.to_str().unwrap().to_owned();
    let out = laptop.run(&[
        "identity",
        "rotate",
        "--backup-out",
        &nb,
        "--passphrase-file",
        &pass,
    ]);
    assert!(out.contains("rotated user key"), "{out}");
    assert!(out.contains("team: rotated"), "{out}");
    let new_key = laptop.user_key();
    assert_ne!(new_key, bob_key);
    assert!(!laptop.home.join("rotation").exists());
    // The new backup restores the new key.
    let spare = User::at(tmp.path(), "bob-spare");
    spare.run(&[
        "identity",
        "restore",
        "--from",
        &nb,
        "--passphrase-file",
        &pass,
    ]);
    assert_eq!(spare.user_key(), new_key);

    // The others follow the new key: same role, old key gone.
    for u in [&alice, &carol] {
        let synced = u.run(&["sync"]);
        assert!(synced.contains("access: yes"), "{synced}");
        let members = u.run(&["space", "members"]);
        let line = member_line(&members, &new_key).unwrap_or_else(|| panic!("{members}"));
        assert!(line.contains("Writer"), "{line}");
        assert!(member_line(&members, &bob_key).is_none(), "{members}");
    }
    // They read bob's new edits, and bob reads theirs.
    laptop.run(&["sync"]);
    laptop.run(&["doc", "edit", &notes, "--append", " from bob's new key"]);
    laptop.run(&["sync"]);
    alice.run(&["sync"]);
    carol.run(&["sync"]);
    assert_eq!(alice.text(&notes), "hello from bob's new key");
    assert_eq!(carol.text(&notes), "hello from bob's new key");
    carol.run(&["doc", "edit", &notes, "--append", ", and carol"]);
    carol.run(&["sync"]);
    let synced = laptop.run(&["sync"]);
    assert!(synced.contains("access: yes"), "{synced}");
    assert_eq!(laptop.text(&notes), "hello from bob's new key, and carol");
    alice.run(&["sync"]);

    // Refused under the old key: a device the old key certifies cannot be
    // added, even by an admin.
    let stale = User::at(tmp.path(), "stale");
    stale.run(&[
        "identity",
        "restore",
        "--from",
        &b,
        "--passphrase-file",
        &pass,
    ]);
    assert_eq!(stale.user_key(), bob_key);
    let stale_request = last_line(&stale.run(&["devices", "request"]));
    let e = alice.fails(&["devices", "add", &stale_request]);
    assert!(e.contains("RemovedMember"), "{e}");

    // The phone, left under the old key, cannot see the rotation (it is not a
    // recipient of its epoch) and still writes under the old epoch: every other
    // device rejects its edit (REMOVED_MEMBER), and nothing changes for them.
    phone.run(&["sync"]);
    phone.run(&["doc", "edit", &notes, "--append", " [stale phone]"]);
    phone.run(&["sync"]);
    let before_alice = alice.text(&notes);
    for u in [&alice, &carol, &laptop] {
        u.run(&["sync"]);
        let text = u.text(&notes);
        assert!(!text.contains("stale phone"), "{text}");
        assert_eq!(text, before_alice);
    }
    let history = alice.run(&["doc", "history", &notes]);
    assert!(history.contains("rejected (RemovedMember)"), "{history}");
    // The phone also adds the stale device (ADD_DEVICE under the old key): it
    // publishes, but no member adds it (void, REMOVED_MEMBER, as an operation
    // of a removed user concurrent with its removal).
    let stale_id = stale
        .run(&["identity", "show"])
        .lines()
        .find_map(|l| l.strip_prefix("device id: ").map(str::to_owned))
        .expect("device id");
    let before = alice.run(&["inspect"]);
    assert!(!before.contains("\"void\""), "{before}");
    phone.run(&["devices", "add", &stale_request]);
    phone.run(&["sync"]);
    for u in [&alice, &carol] {
        u.run(&["sync"]);
        let devices = u.run(&["devices", "list"]);
        assert!(!devices.contains(&stale_id[..16]), "{devices}");
        let after = u.run(&["inspect"]);
        assert!(after.contains("\"void\": 1"), "{after}");
        assert!(
            !after.contains(&format!("member {}", &bob_key[..8])),
            "{after}"
        );
    }
    // The members are unchanged by it.
    let members = alice.run(&["space", "members"]);
    assert!(member_line(&members, &bob_key).is_none(), "{members}");
    assert!(member_line(&members, &new_key).is_some(), "{members}");
}
