//! The CLI end to end as separate processes: two users with separate home
//! folders, a real `clientful broker` process, and the real S3 server the test
//! script starts (SeaweedFS). Create, invite, accept, edit, sync, live edits over
//! the broker (`watch`), removal with a key rotation, and a failed read after
//! it. Every error path hit prints one line, exits non-zero, and leaves the
//! stores as they were.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../clientful-broker/tests/broker_common/mod.rs"]
mod broker_common;
mod cli_common;

use cli_common::{User, last_line};

fn s3_url(tag: &str) -> Option<String> {
    match std::env::var("CLIENTFUL_S3_ENDPOINT") {
        Ok(ep) => {
            let bucket =
                std::env::var("CLIENTFUL_S3_BUCKET").unwrap_or_else(|_| "clientful-test".into());
            let nonce = std::process::id();
            Some(format!("s3://{bucket}/e2e-{tag}-{nonce}?endpoint={ep}"))
        }
        Err(_) => {
            assert!(
                std::env::var("CLIENTFUL_REQUIRE_SERVICES").is_err(),
                "CLIENTFUL_S3_ENDPOINT is not set but CLIENTFUL_REQUIRE_SERVICES is"
            );
            eprintln!("skipped: CLIENTFUL_S3_ENDPOINT not set (scripts/test-all.sh starts S3)");
            None
        }
    }
}

/// What a device holds, to compare before and after a failed command: every
/// file but the redb database byte for byte (as a list of paths and hashes),
/// and the database's logical content through `doctor report` and `doc list`.
fn state_of(u: &User) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![u.home.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "redb") {
                let bytes = std::fs::read(&p).expect("read");
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&bytes, &mut h);
                out.push(format!(
                    "{} {:x}",
                    p.display(),
                    std::hash::Hasher::finish(&h)
                ));
            }
        }
    }
    out.sort();
    out.extend(u.digests());
    out.push(u.run(&["doc", "list"]));
    out
}

#[test]
fn two_users_over_s3_and_a_broker_process() {
    let Some(storage) = s3_url("two-users") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let alice = User {
        home: tmp.path().join("alice"),
    };
    let bob = User {
        home: tmp.path().join("bob"),
    };
    let broker = broker_common::spawn_broker(tmp.path(), "e2e", 0, 0, &[]);

    alice.run(&["identity", "create", "--name", "alice"]);
    bob.run(&["identity", "create", "--name", "bob"]);
    let bob_user = bob
        .run(&["identity", "show"])
        .lines()
        .find_map(|l| l.strip_prefix("user key:").map(|k| k.trim().to_owned()))
        .expect("user key");

    alice.run(&["space", "create", "team", "--storage", &storage]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    let plan = last_line(&alice.run(&["doc", "new", "--crdt", "automerge", "--title", "Plan"]));
    alice.run(&["doc", "edit", &notes, "--append", "hello"]);
    alice.run(&[
        "doc",
        "edit",
        &plan,
        "--set",
        "budget=1200",
        "--set",
        "city=Lyon",
    ]);
    let code = last_line(&alice.run(&["invite", "create"]));
    assert!(code.starts_with("cfinvite1-"), "{code}");

    // Error paths before bob is a member: one line, non-zero, nothing changed.
    bob.fails(&["invite", "accept", "cfinvite1-00", "--storage", &storage]);
    bob.fails(&["invite", "accept", "hello", "--storage", &storage]);
    bob.fails(&["doc", "list"]);
    let out = bob.run(&[
        "invite",
        "accept",
        &code,
        "--name",
        "team",
        "--storage",
        &storage,
    ]);
    assert!(out.contains("access: no"), "{out}");
    bob.fails(&["invite", "accept", &code, "--storage", &storage]);
    bob.fails(&["doc", "new", "--title", "Mine"]);

    alice.run(&["sync"]);
    let out = bob.run(&["sync"]);
    assert!(out.contains("access: yes"), "{out}");
    assert_eq!(
        last_line(&bob.run(&["doc", "print", &notes, "--text"])),
        "hello"
    );
    let plan_json = bob.run(&["doc", "print", &plan]);
    assert!(
        plan_json.contains("\"budget\": 1200") && plan_json.contains("Lyon"),
        "{plan_json}"
    );

    bob.run(&["doc", "edit", &notes, "--append", " world"]);
    bob.run(&["sync"]);
    alice.run(&["sync"]);
    assert_eq!(
        last_line(&alice.run(&["doc", "print", &notes, "--text"])),
        "hello world"
    );
    assert_eq!(alice.digests(), bob.digests());

    // A reader reads but cannot write, and is told so in one line.
    let carol = User {
        home: tmp.path().join("carol"),
    };
    carol.run(&["identity", "create", "--name", "carol"]);
    let reader_code = last_line(&alice.run(&["invite", "create", "--role", "reader"]));
    assert!(
        reader_code.starts_with("cfinvite1-reader-"),
        "{reader_code}"
    );
    carol.run(&[
        "invite",
        "accept",
        &reader_code,
        "--name",
        "team",
        "--storage",
        &storage,
    ]);
    alice.run(&["sync"]);
    assert!(carol.run(&["sync"]).contains("access: yes"));
    assert_eq!(
        last_line(&carol.run(&["doc", "print", &notes, "--text"])),
        "hello world"
    );
    let err = carol.fails(&["doc", "edit", &notes, "--append", "!!"]);
    assert!(err.contains("Reader"), "{err}");

    // Live: bob watches; alice's edit reaches him through the broker (his storage
    // sync runs only once, when the watch starts).
    let watcher = bob
        .cmd(&[
            "watch",
            "--broker",
            &broker.ws_url,
            "--for",
            "12",
            "--interval",
            "3600",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bob watches");
    std::thread::sleep(std::time::Duration::from_secs(3));
    // The watcher holds bob's store: a second process is refused, in one line.
    bob.fails(&["doc", "list"]);
    alice.run(&["doc", "edit", &notes, "--append", "!"]);
    alice.run(&[
        "watch",
        "--broker",
        &broker.ws_url,
        "--for",
        "4",
        "--interval",
        "3600",
    ]);
    let out = watcher.wait_with_output().expect("watch ends");
    let watched = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{watched}");
    assert!(
        watched.contains("received"),
        "bob got envelopes live:\n{watched}"
    );
    assert_eq!(
        last_line(&bob.run(&["doc", "print", &notes, "--text"])),
        "hello world!"
    );

    // Removal: alice removes bob, writes more, stores a file; bob reads none of it.
    let out = alice.run(&["space", "remove", &bob_user[..12]]);
    assert!(out.contains("rotated the keys"), "{out}");
    alice.run(&["doc", "edit", &notes, "--append", " after"]);
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "after the removal").expect("write");
    let file_ref = last_line(&alice.run(&["files", "put", secret.to_str().unwrap()]));
    alice.run(&["sync"]);
    let members = alice.run(&["space", "members"]);
    assert!(!members.contains(&bob_user), "{members}");
    // Compaction on the real S3 server: one snapshot with a checkpoint per
    // document (spec §9.7a); everything below still reads through it.
    let out = alice.run(&["space", "compact"]);
    assert!(out.contains("checkpoint(s)"), "{out}");

    let out = bob.run(&["sync"]);
    assert!(out.contains("not shared with this device"), "{out}");
    assert_eq!(
        last_line(&bob.run(&["doc", "print", &notes, "--text"])),
        "hello world!"
    );
    let bob_before = state_of(&bob);
    let err = bob.fails(&[
        "files",
        "get",
        &file_ref,
        "--out",
        tmp.path().join("stolen.txt").to_str().unwrap(),
    ]);
    assert!(err.contains("does not hold"), "{err}");
    assert!(!tmp.path().join("stolen.txt").exists());
    assert!(
        !tmp.path().join("stolen.clientful-partial").exists(),
        "a failed fetch leaves nothing behind"
    );
    assert!(state_of(&bob) == bob_before, "bob's store unchanged");
    assert_eq!(
        last_line(&alice.run(&["doc", "print", &notes, "--text"])),
        "hello world! after"
    );

    // Alice can still read the file; inspect shows the epochs and opaque dirs.
    let back = tmp.path().join("back.txt");
    alice.run(&["files", "get", &file_ref, "--out", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "after the removal");
    let inspect = bob.run(&["inspect"]);
    assert!(inspect.contains("not shared with this device"), "{inspect}");
    assert!(inspect.contains("no key here: opaque"), "{inspect}");

    // The broker saw no plaintext.
    drop(broker);
    let frames = std::fs::read(tmp.path().join("capture-e2e.bin")).unwrap_or_default();
    assert!(!frames.is_empty(), "the broker carried frames");
    // Needles of at least 5 bytes, so ciphertext does not match by chance.
    for needle in ["hello", "world", "Notes", "alice", bob_user.as_str()] {
        assert!(
            !frames.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` crossed the broker"
        );
    }
}

#[test]
fn errors_are_one_line_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let u = User {
        home: tmp.path().join("u"),
    };
    u.fails(&["identity", "show"]);
    u.run(&["identity", "create", "--name", "u"]);
    u.fails(&["identity", "create", "--name", "again"]);
    u.fails(&["space", "create", "s"]);
    u.fails(&["space", "create", "s", "--storage", "ftp://nowhere"]);
    let storage = format!("file://{}", tmp.path().join("store").display());
    u.run(&["space", "create", "s", "--storage", &storage]);
    let doc = last_line(&u.run(&["doc", "new", "--title", "T"]));
    u.run(&["doc", "edit", &doc, "--append", "abc"]);
    let before = state_of(&u);
    u.fails(&["doc", "edit", &doc, "--insert", "x", "--at", "99"]);
    u.fails(&["doc", "edit", &doc]);
    u.fails(&["doc", "print", "ffff"]);
    u.fails(&["doc", "edit", &doc, "--set", "=1"]);
    u.fails(&["files", "get", "00", "--out", "x"]);
    u.fails(&["space", "remove", &"0".repeat(6)]);
    u.fails(&["devices", "add", "cfdevice1-abcd"]);
    u.fails(&["watch", "--broker", "http://x", "--for", "1"]);
    u.fails(&[
        "--config",
        tmp.path().join("missing.toml").to_str().unwrap(),
        "sync",
    ]);
    assert!(state_of(&u) == before, "failed commands changed nothing");
    assert_eq!(last_line(&u.run(&["doc", "print", &doc, "--text"])), "abc");
    // A config file supplies the storage and the space.
    std::fs::write(
        u.home.join("config.toml"),
        format!("storage = \"{storage}2\"\nspace = \"s\"\n"),
    )
    .expect("config");
    u.run(&["space", "create", "t"]);
    assert!(u.run(&["doc", "list"]).contains(&doc[..12]));
    std::fs::write(u.home.join("config.toml"), "nonsense = 1\n").expect("config");
    u.fails(&["doc", "list"]);
}
