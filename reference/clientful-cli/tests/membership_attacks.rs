//! Membership under attack, end to end (spec §11): each user is a separate
//! `clientful --home DIR` process on one local-folder storage, as an attacker
//! with ordinary access would use it.
//!
//! | test | finding |
//! |---|---|
//! | `used_single_use_code_admits_nobody` | a used single-use code admitted a stranger and evicted its user |
//! | `removed_member_cannot_keep_writing` | a removed member's later edits were accepted forever |
//! | `invites_can_be_listed_and_revoked` | invites could not be revoked; a removed user re-joined with a kept code |
//!
//! spec: MEM-18, MEM-21, MEM-22, MEM-25.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use cli_common::{User, folder_storage as storage, last_line};

trait Accept {
    fn accept(&self, code: &str, storage: &str) -> String;
}

impl Accept for User {
    fn accept(&self, code: &str, storage: &str) -> String {
        self.run(&[
            "invite",
            "accept",
            code,
            "--name",
            "team",
            "--storage",
            storage,
        ])
    }
}

/// alice creates a space, a document and a single-use invite; bob accepts;
/// alice syncs (bob is admitted); bob syncs; alice edits and syncs; then carol
/// accepts the same code and alice syncs. Bob stays a member and keeps
/// editing; carol is refused, is no member, and reads nothing.
#[test]
fn used_single_use_code_admits_nobody() {
    for with_edit in [true, false] {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = storage(tmp.path());
        let alice = User::new(tmp.path(), "alice");
        let bob = User::new(tmp.path(), "bob");
        let carol = User::new(tmp.path(), "carol");
        alice.run(&["space", "create", "team", "--storage", &store]);
        let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
        alice.run(&["doc", "edit", &notes, "--append", "hello"]);
        let code = last_line(&alice.run(&["invite", "create"]));
        bob.accept(&code, &store);
        let out = alice.run(&["sync"]);
        assert!(out.contains("admitted"), "{out}");
        assert!(bob.run(&["sync"]).contains("access: yes"));
        if with_edit {
            alice.run(&["doc", "edit", &notes, "--append", " again"]);
            alice.run(&["sync"]);
        }
        carol.accept(&code, &store);
        let out = alice.run(&["sync"]);
        assert!(out.contains("refused"), "alice is told:\n{out}");
        let members = alice.run(&["space", "members"]);
        assert!(members.contains(&bob.user_key()), "{members}");
        assert!(!members.contains(&carol.user_key()), "{members}");
        // Bob keeps working.
        bob.run(&["sync"]);
        bob.run(&["doc", "edit", &notes, "--append", " bob"]);
        bob.run(&["sync"]);
        alice.run(&["sync"]);
        assert!(
            alice
                .run(&["doc", "print", &notes, "--text"])
                .contains("bob")
        );
        // Carol holds nothing.
        let out = carol.run(&["sync"]);
        assert!(out.contains("access: no"), "{out}");
        carol.fails(&["doc", "print", &notes, "--text"]);
        let members = bob.run(&["space", "members"]);
        assert!(!members.contains(&carol.user_key()), "{members}");
    }
}

/// alice removes bob; bob is told he is locked out, then edits the document
/// and creates a new one, and syncs; alice and carol reject every such write
/// (REMOVED_MEMBER in `doc history`), and again after alice writes more.
#[test]
fn removed_member_cannot_keep_writing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    let bob = User::new(tmp.path(), "bob");
    let carol = User::new(tmp.path(), "carol");
    alice.run(&["space", "create", "team", "--storage", &store]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    alice.run(&["doc", "edit", &notes, "--append", "start"]);
    let code = last_line(&alice.run(&["invite", "create", "--reusable"]));
    bob.accept(&code, &store);
    carol.accept(&code, &store);
    alice.run(&["sync"]);
    bob.run(&["sync"]);
    carol.run(&["sync"]);
    bob.run(&["doc", "edit", &notes, "--append", " bob-before"]);
    bob.run(&["sync"]);
    alice.run(&["sync"]);
    carol.run(&["sync"]);

    let out = alice.run(&["space", "remove", &bob.user_key()[..16]]);
    assert!(out.contains("rotated the keys"), "{out}");
    let out = bob.run(&["sync"]);
    assert!(out.contains("not shared with this device"), "{out}");
    // Bob keeps writing, under the only epoch he holds.
    bob.run(&["doc", "edit", &notes, "--append", " bob-after"]);
    let mine = last_line(&bob.run(&["doc", "new", "--crdt", "yjs", "--title", "Mine"]));
    bob.run(&["doc", "edit", &mine, "--append", "bob-new-doc"]);
    bob.run(&["sync"]);
    for round in 0..2 {
        for u in [&alice, &carol] {
            u.run(&["sync"]);
            let text = u.run(&["doc", "print", &notes, "--text"]);
            assert!(text.contains("bob-before"), "{text}");
            assert!(!text.contains("bob-after"), "round {round}: {text}");
            let history = u.run(&["doc", "history", &notes]);
            assert!(
                history.contains("rejected (RemovedMember)"),
                "round {round}: the post-removal edit is rejected:\n{history}"
            );
            // Bob's new document is never readable as his.
            if let Ok(out) = u.cmd(&["doc", "print", &mine, "--text"]).output() {
                let shown = String::from_utf8_lossy(&out.stdout);
                assert!(!shown.contains("bob-new-doc"), "round {round}: {shown}");
            }
        }
        // Days later: alice writes more; bob writes again.
        alice.run(&["doc", "edit", &notes, "--append", " alice-more"]);
        alice.run(&["sync"]);
        bob.run(&["doc", "edit", &notes, "--append", " bob-again"]);
        bob.run(&["sync"]);
    }
    carol.run(&["sync"]);
    let text = carol.run(&["doc", "print", &notes, "--text"]);
    assert!(!text.contains("bob-again"), "{text}");
    assert!(text.contains("alice-more"), "{text}");
}

/// Invites can be listed and revoked: a removed user who kept a reusable code
/// makes a new identity and accepts it again, and is refused once the invite
/// is revoked; the list shows it revoked; confirmation mode makes redemptions
/// wait for `invite admit`.
#[test]
fn invites_can_be_listed_and_revoked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    let bob = User::new(tmp.path(), "bob");
    alice.run(&["space", "create", "team", "--storage", &store]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    alice.run(&["doc", "edit", &notes, "--append", "secret plans"]);
    let code = last_line(&alice.run(&["invite", "create", "--reusable"]));
    bob.accept(&code, &store);
    alice.run(&["sync"]);
    assert!(bob.run(&["sync"]).contains("access: yes"));
    let list = alice.run(&["invite", "list"]);
    let line = list
        .lines()
        .find(|l| l.contains("reusable"))
        .expect("the invite is listed");
    assert!(
        line.contains("open") && line.contains("admitted: 1"),
        "{line}"
    );
    let key = line.split_whitespace().next().unwrap().to_owned();

    alice.run(&["space", "remove", &bob.user_key()[..16]]);
    let out = alice.run(&["invite", "revoke", &key[..16]]);
    assert!(out.contains("revoked invite"), "{out}");
    assert!(
        alice
            .run(&["invite", "list"])
            .lines()
            .any(|l| l.starts_with(&key) && l.contains("revoked")),
        "the list shows it revoked"
    );
    // Bob comes back as someone else with the kept code.
    let bob2 = User::new(tmp.path(), "bob2");
    bob2.accept(&code, &store);
    // A revoked invite's lobby is not even read: the redemption is never seen,
    // let alone admitted.
    let out = alice.run(&["sync"]);
    assert!(!out.contains("admitted"), "{out}");
    assert!(!alice.run(&["space", "members"]).contains(&bob2.user_key()));
    assert!(bob2.run(&["sync"]).contains("access: no"));
    bob2.fails(&["doc", "print", &notes, "--text"]);

    // Confirmation mode: a redemption waits until alice admits it.
    alice.run(&["invite", "confirm", "on"]);
    let code2 = last_line(&alice.run(&["invite", "create"]));
    let dave = User::new(tmp.path(), "dave");
    dave.accept(&code2, &store);
    let out = alice.run(&["sync"]);
    assert!(out.contains("waiting for admission"), "{out}");
    assert!(!alice.run(&["space", "members"]).contains(&dave.user_key()));
    let pending = alice.run(&["invite", "pending"]);
    let red = pending
        .lines()
        .find(|l| l.contains(&dave.user_key()))
        .and_then(|l| l.split_whitespace().next())
        .expect("dave's redemption is pending")
        .to_owned();
    let out = alice.run(&["invite", "admit", &red[..16]]);
    assert!(out.contains(&dave.user_key()), "{out}");
    assert!(dave.run(&["sync"]).contains("access: yes"));
    assert_eq!(
        last_line(&dave.run(&["doc", "print", &notes, "--text"])),
        "secret plans"
    );
}
