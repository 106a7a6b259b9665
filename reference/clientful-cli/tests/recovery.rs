//! Recovery without a server, end to end with the real `clientful` binary (spec §5.6):
//! bob makes a 2-of-3 recovery set held by alice, carol and dave; he loses his only
//! device; on a new one he asks; one release is not enough (one clear error, nothing
//! written); two restore his user key; alice (an admin) adds the new device
//! (MEM-11), which the others see, and bob reads and writes the space again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use cli_common::{User, folder_storage, last_line};

#[test]
fn any_two_of_three_holders_restore_a_user_who_lost_every_device() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = folder_storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    alice.run(&["space", "create", "team", "--storage", &storage]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    alice.run(&["doc", "edit", &notes, "--append", "hello"]);
    let bob = User::new(tmp.path(), "bob");
    let carol = User::new(tmp.path(), "carol");
    let dave = User::new(tmp.path(), "dave");
    for u in [&bob, &carol, &dave] {
        u.join(&alice, &storage);
    }
    let bob_key = bob.user_key();

    // Bob's set: any 2 of alice, carol and dave.
    let holders = [&alice, &carol, &dave]
        .iter()
        .map(|u| u.user_key()[..16].to_owned())
        .collect::<Vec<_>>()
        .join(",");
    let out = bob.run(&[
        "recovery",
        "setup",
        "--holders",
        &holders,
        "--threshold",
        "2",
    ]);
    assert!(out.contains("any 2 of 3 holders"), "{out}");
    // Threshold 1 or more than the holders: refused in one line.
    let e = bob.fails(&[
        "recovery",
        "setup",
        "--holders",
        &holders,
        "--threshold",
        "1",
    ]);
    assert!(e.contains("MALFORMED") || e.contains("Malformed"), "{e}");
    let mut kit = String::new();
    for h in [&alice, &carol, &dave] {
        let held = h.run(&["recovery", "held"]);
        let line = held
            .lines()
            .find(|l| l.starts_with("kit "))
            .unwrap_or_else(|| panic!("no share held: {held}"));
        assert!(line.contains(&bob_key), "{line}");
        assert!(!line.contains("NOT signed"), "{line}");
        kit = line.split_whitespace().nth(1).unwrap().to_owned();
    }
    // Bob loses his device.
    std::fs::remove_dir_all(&bob.home).unwrap();

    let phone = User::at(tmp.path(), "bob-phone");
    let request = last_line(&phone.run(&["recovery", "request"]));
    assert!(request.starts_with("cfrecover1-"), "{request}");
    // Asking again shows the same request.
    assert_eq!(last_line(&phone.run(&["recovery", "request"])), request);
    let r_carol = last_line(&carol.run(&["recovery", "release", "--kit", &kit, &request]));
    assert!(r_carol.starts_with("cfrelease1-"), "{r_carol}");
    // One release of two: INVALID_OPERATION, and no identity written.
    let e = phone.fails(&["recovery", "restore", &r_carol]);
    assert!(e.contains("InvalidOperation"), "{e}");
    assert!(!phone.home.join("identity.json").exists());
    // A release for another request is refused too.
    let other = User::at(tmp.path(), "stranger");
    let other_request = last_line(&other.run(&["recovery", "request"]));
    let r_wrong = last_line(&dave.run(&["recovery", "release", "--kit", &kit, &other_request]));
    let e = phone.fails(&["recovery", "restore", &r_carol, &r_wrong]);
    assert!(e.contains("WrongContext"), "{e}");
    // Dave holds no share of a kit that is not there.
    dave.fails(&["recovery", "release", "--kit", "ffffffff", &request]);

    let r_dave = last_line(&dave.run(&["recovery", "release", "--kit", &kit, &request]));
    let out = phone.run(&["recovery", "restore", &r_carol, &r_dave]);
    assert!(out.contains("restored user bob"), "{out}");
    assert_eq!(phone.user_key(), bob_key);
    assert!(!phone.home.join("recovery").exists());

    // Alice (admin) adds bob's new device (MEM-11); the others see it.
    let device_request = last_line(&phone.run(&["devices", "request"]));
    let added = alice.run(&["devices", "add", &device_request]);
    let link = last_line(&added);
    phone.run(&[
        "devices",
        "join",
        &link,
        "--name",
        "team",
        "--storage",
        &storage,
    ]);
    alice.run(&["sync"]);
    let synced = phone.run(&["sync"]);
    assert!(synced.contains("access: yes"), "{synced}");
    assert_eq!(phone.text(&notes), "hello");
    carol.run(&["sync"]);
    let devices = carol.run(&["devices", "list"]);
    let bobs = devices
        .lines()
        .filter(|l| l.contains(&bob_key[..12]))
        .count();
    assert_eq!(bobs, 2, "carol sees bob's old and new device: {devices}");
    phone.run(&["doc", "edit", &notes, "--append", " again"]);
    phone.run(&["sync"]);
    alice.run(&["sync"]);
    assert_eq!(alice.text(&notes), "hello again");
}
