//! Issue 21, finding 3, end to end with real `clientful` processes (one home
//! folder per user) on one local-folder storage: a member who can write the
//! storage folder puts back a copy taken before a removal (the removal's
//! objects deleted, head manifests rolled back). The remover's next sync finds
//! its own files withheld and rolled back, uploads them again from its local
//! store (spec STO-28) and says so in one `ALERT:` line with exit code 3; a
//! member who kept writing under the replaced epoch is reported; that member
//! then learns the new epoch and writes under it, and the removed member reads
//! none of it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

mod cli_common;

use cli_common::{User, last_line};

trait Epochs {
    fn current_epoch(&self) -> String;
}

impl Epochs for User {
    /// The current epoch as `inspect` shows it (its short id).
    fn current_epoch(&self) -> String {
        self.run(&["inspect"])
            .lines()
            .find(|l| l.trim_start().starts_with("epoch ") && l.ends_with("(current)"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .expect("a current epoch")
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy");
        }
    }
}

#[test]
fn withheld_removal_is_repaired_and_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("store");
    let storage = format!("file://{}", folder.display());
    let user = |n: &str| User {
        home: tmp.path().join(n),
    };
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    for (u, n) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        u.run(&["identity", "create", "--name", n]);
    }
    let bob_user = bob.user_key();
    let alice_device = alice
        .run(&["identity", "show"])
        .lines()
        .find_map(|l| l.strip_prefix("device:").map(|k| k.trim().to_owned()))
        .expect("device key");

    alice.run(&["space", "create", "team", "--storage", &storage]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    alice.run(&["doc", "edit", &notes, "--append", "hello"]);
    let code_b = last_line(&alice.run(&["invite", "create"]));
    let code_c = last_line(&alice.run(&["invite", "create"]));
    bob.run(&[
        "invite",
        "accept",
        &code_b,
        "--name",
        "team",
        "--storage",
        &storage,
    ]);
    carol.run(&[
        "invite",
        "accept",
        &code_c,
        "--name",
        "team",
        "--storage",
        &storage,
    ]);
    for _ in 0..2 {
        for u in [&alice, &bob, &carol] {
            u.run(&["sync"]);
        }
    }
    let members = alice.run(&["space", "members"]);
    assert!(!members.contains("not settled"), "{members}");
    assert_eq!(carol.text(&notes), "hello");
    assert_eq!(bob.text(&notes), "hello");

    // Bob copies the storage folder; alice removes him and syncs.
    let copy = tmp.path().join("copy-before-removal");
    copy_dir(&folder, &copy);
    let out = alice.run(&["space", "remove", &bob_user[..12]]);
    assert!(out.contains("rotated the keys"), "{out}");
    alice.run(&["sync"]);
    let new_epoch = alice.current_epoch();

    // Bob puts the old copy back: the removal's objects are gone, alice's head
    // manifest in the old epoch is rolled back.
    std::fs::remove_dir_all(&folder).expect("delete storage");
    copy_dir(&copy, &folder);

    // Carol had not synced since: she sees nothing wrong and keeps writing
    // under the old epoch.
    carol.run(&["sync"]);
    assert_ne!(carol.current_epoch(), new_epoch);
    carol.run(&["doc", "edit", &notes, "--append", " carol1"]);
    carol.run(&["sync"]);

    // Alice's sync finds her files withheld and rolled back, uploads them
    // again, says so in one line and exits 3; it also reports carol writing
    // under the replaced epoch.
    let r = alice.exec(&["sync"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let alerts: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("ALERT: "))
        .collect();
    assert_eq!(alerts.len(), 1, "{}", r.stdout);
    assert!(
        alerts[0].contains("this device's files")
            && alerts[0].contains("head manifest withheld")
            && alerts[0].contains("head manifest rolled back")
            && alerts[0].contains("again"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("notice: device") && l.contains("replaced epoch")),
        "{}",
        r.stdout
    );
    assert_eq!(alice.text(&notes), "hello carol1");
    // Idempotent: nothing is missing any more.
    let again = alice.run(&["sync"]);
    assert!(!again.contains("ALERT"), "{again}");

    // Carol now learns the removal and the new epoch, like alice.
    carol.run(&["sync"]);
    assert_eq!(carol.current_epoch(), new_epoch);
    assert_eq!(carol.authenticator(), alice.authenticator());
    let members = carol.run(&["space", "members"]);
    assert!(!members.contains(&bob_user), "{members}");

    // Bob puts the old copy back again. Carol has now seen alice's newer head
    // manifests: her sync says so loudly, names alice's device, exits 3, and
    // keeps the new epoch (it also puts back her own write, also rolled back);
    // alice's next sync repairs hers again.
    std::fs::remove_dir_all(&folder).expect("delete storage");
    copy_dir(&copy, &folder);
    let r = carol.exec(&["sync"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let alerts: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("ALERT: "))
        .collect();
    assert_eq!(alerts.len(), 2, "{}", r.stdout);
    assert!(
        alerts[0].contains("this device's files") && alerts[0].contains("rolled back"),
        "{}",
        r.stdout
    );
    assert!(
        alerts[1].contains("head manifests") && alerts[1].contains(&alice_device[..12]),
        "{}",
        r.stdout
    );
    assert_eq!(carol.current_epoch(), new_epoch);
    assert_eq!(alice.exec(&["sync"]).code, 3);
    let r = carol.exec(&["sync"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    carol.run(&["doc", "edit", &notes, "--append", " carol2"]);
    carol.run(&["sync"]);
    let r = alice.exec(&["sync"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("replaced epoch"), "{}", r.stdout);
    assert_eq!(alice.text(&notes), "hello carol1 carol2");

    // Bob reads what was written under the old epoch, and not carol's newest
    // text, which is sealed under the epoch he was not given.
    let out = bob.exec(&["sync"]).stdout;
    assert!(out.contains("not shared with this device"), "{out}");
    assert_eq!(bob.text(&notes), "hello carol1");
}
