//! Sealed user backups end to end with the real `clientful` binary (spec §5.5):
//! `identity backup` seals the user key under a passphrase, the file holds no
//! secret in the clear, `identity restore` with a wrong passphrase fails with
//! one clear message and writes nothing, the right one makes a new device of
//! the same user (BAK-7), a weak passphrase is warned about, and the unsealed
//! form exists only when asked for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

mod cli_common;

use cli_common::User;

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no `{name}` in {out}"))
}

fn user_seed(home: &Path) -> String {
    let text = std::fs::read_to_string(home.join("identity.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["user_seed"].as_str().unwrap().to_owned()
}

#[test]
fn a_sealed_backup_restores_the_user_with_its_passphrase_only() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = User::new(tmp.path(), "alice");
    let shown = alice.run(&["identity", "show"]);
    let passphrase = tmp.path().join("pass");
    std::fs::write(&passphrase, "tangerine ladder quietly folds the map\n").unwrap();
    let backup = tmp.path().join("alice.backup");
    let b = backup.to_str().unwrap();
    let p = passphrase.to_str().unwrap();

    let out = alice.exec(&["identity", "backup", "--out", b, "--passphrase-file", p]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("weak"), "{}", out.stderr);
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(text.starts_with("cfbackup1-"), "{text}");
    let seed = user_seed(&alice.home);
    assert!(!text.contains(&seed), "the seed is in the clear");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A wrong passphrase: one clear message, no identity written.
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "tangerine ladder quietly folds the mop\n").unwrap();
    let phone = User::at(tmp.path(), "phone");
    let msg = phone.fails(&[
        "identity",
        "restore",
        "--from",
        b,
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(msg.contains("wrong passphrase"), "{msg}");
    assert!(!phone.home.join("identity.json").exists());

    // The right one: the same user, a new device.
    let out = phone.exec(&["identity", "restore", "--from", b, "--passphrase-file", p]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&field(&shown, "user key:")),
        "{}",
        out.stdout
    );
    let restored = phone.run(&["identity", "show"]);
    assert_eq!(field(&restored, "user key:"), field(&shown, "user key:"));
    assert_eq!(field(&restored, "name:"), "alice");
    assert_ne!(field(&restored, "device:"), field(&shown, "device:"));
    assert_eq!(user_seed(&phone.home), seed);

    // A damaged file: the same error class as a wrong passphrase.
    let damaged = tmp.path().join("damaged.backup");
    let code = text.trim();
    let (body, check) = code.rsplit_once('-').unwrap();
    let flip = if body.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flip}-{check}", &body[..body.len() - 1]);
    std::fs::write(&damaged, tampered).unwrap();
    let other = User::at(tmp.path(), "other");
    let msg = other.fails(&[
        "identity",
        "restore",
        "--from",
        damaged.to_str().unwrap(),
        "--passphrase-file",
        p,
    ]);
    assert!(msg.contains("damaged"), "{msg}");
}

#[test]
fn weak_passphrases_are_warned_about_and_unsealed_backups_need_asking() {
    let tmp = tempfile::tempdir().unwrap();
    let bob = User::new(tmp.path(), "bob");
    let weak = tmp.path().join("weak");
    std::fs::write(&weak, "bob2026\n").unwrap();
    let out = bob.exec(&[
        "identity",
        "backup",
        "--out",
        tmp.path().join("bob.backup").to_str().unwrap(),
        "--passphrase-file",
        weak.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("weak"), "{}", out.stderr);

    // Without a passphrase source and without a terminal: refused, nothing written.
    let none = tmp.path().join("none.backup");
    let msg = bob.fails(&["identity", "backup", "--out", none.to_str().unwrap()]);
    assert!(msg.contains("no passphrase"), "{msg}");
    assert!(!none.exists());

    // Unsealed only with --unsealed, and then with a warning.
    let clear = tmp.path().join("clear.json");
    let out = bob.exec(&[
        "identity",
        "backup",
        "--out",
        clear.to_str().unwrap(),
        "--unsealed",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("in the clear"), "{}", out.stderr);
    assert!(
        std::fs::read_to_string(&clear)
            .unwrap()
            .contains(&user_seed(&bob.home))
    );
    let restored = User::at(tmp.path(), "bob2");
    restored.run(&["identity", "restore", "--from", clear.to_str().unwrap()]);
}
