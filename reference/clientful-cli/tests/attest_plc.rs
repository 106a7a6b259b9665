//! did:plc attestations with the real `clientful` binary and a real PLC directory
//! (npm `@did-plc/server` with its in-memory database, scripts/services/plc.sh) on
//! loopback (spec §14.6, ATT-15..ATT-19). A DID is made and changed through the
//! directory with `@did-plc/lib` and real secp256k1 keys (scripts/services/plc/did.mjs):
//! its `clientful` key signs the statement naming bob's binding, bob attests with the
//! CLI, alice verifies offline. Then the DID drops the key (a new operation): the record
//! bob made stays verified (it shows the log as fetched at its `created_at_ms`, ATT-19),
//! and a new attestation is refused `INVALID_OPERATION`; a tombstoned DID is refused the
//! same way; a statement signed for another salt or by a key the DID does not list is
//! `BAD_SIGNATURE`; a bad DID form is `MALFORMED`. Without the service, the test starts
//! one itself; if that fails, the test fails (never skips).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_common::{User, folder_storage};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory test-all.sh started, or one started here and stopped on drop.
struct Directory {
    url: String,
    own_dir: Option<tempfile::TempDir>,
}

impl Directory {
    fn get() -> Directory {
        if let Ok(url) = std::env::var("CLIENTFUL_PLC_URL") {
            return Directory { url, own_dir: None };
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(repo().join("scripts/services/plc.sh"))
            .arg("start")
            .env("CLIENTFUL_PLC_DIR", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the PLC directory did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .strip_prefix("CLIENTFUL_PLC_URL=")
            .expect("url line")
            .to_string();
        Directory {
            url,
            own_dir: Some(dir),
        }
    }

    /// Runs scripts/services/plc/did.mjs; returns its stdout, trimmed.
    fn tool(&self, args: &[&str]) -> String {
        let out = Command::new("node")
            .arg(repo().join("scripts/services/plc/did.mjs"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "did.mjs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        if let Some(dir) = &self.own_dir {
            let _ = Command::new("bash")
                .arg(repo().join("scripts/services/plc.sh"))
                .arg("stop")
                .env("CLIENTFUL_PLC_DIR", dir.path())
                .status();
        }
    }
}

/// bob's statement for `salt` and key id `key`, signed by the DID's `clientful` key.
fn signed_statement(
    plc: &Directory,
    bob: &User,
    tmp: &Path,
    state: &str,
    did: &str,
    salt: &str,
    key: &str,
) -> String {
    let statement = bob.run(&[
        "identity",
        "attest",
        "did",
        "--did",
        did,
        "--salt",
        salt,
        "--plc-key",
        key,
        "--show-statement",
    ]);
    assert!(
        statement.starts_with("Clientful attestation v1\n"),
        "{statement}"
    );
    let file = tmp.join(format!("statement-{salt}-{key}.txt"));
    std::fs::write(&file, statement).unwrap();
    plc.tool(&["sign", state, file.to_str().unwrap()])
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn did_plc_attestation_through_a_real_directory() {
    let plc = Directory::get();
    let tmp = tempfile::tempdir().unwrap();
    let storage = folder_storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    alice.run(&["space", "create", "team", "--storage", &storage]);
    let bob = User::new(tmp.path(), "bob");
    bob.join(&alice, &storage);
    let bob_key = bob.user_key();

    let state_file = tmp.path().join("plc-state.json");
    let state = state_file.to_str().unwrap();
    let did = plc.tool(&["create", &plc.url, state]);
    assert!(did.starts_with("did:plc:") && did.len() == 32, "{did}");

    let field = bob.attest_nonce();
    let salt = field("salt");
    let sig = signed_statement(&plc, &bob, tmp.path(), state, &did, &salt, "clientful");
    let attest = |salt: &str, key: &str, sig: &str, loopback: bool| {
        let mut args = vec![
            "identity",
            "attest",
            "did",
            "--did",
            &did,
            "--salt",
            salt,
            "--plc-key",
            key,
            "--plc-sig",
            sig,
            "--plc-directory",
            &plc.url,
        ];
        if loopback {
            args.push("--allow-http-loopback");
        }
        args.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };

    // Plain http to the loopback directory needs the flag.
    let e = bob.fails(&as_refs(&attest(&salt, "clientful", &sig, false)));
    assert!(e.contains("https"), "{e}");
    // Signed for another salt: the statement names another binding.
    let e = bob.fails(&as_refs(&attest(
        "00000000000000000000000000000000",
        "clientful",
        &sig,
        true,
    )));
    assert!(e.contains("BadSignature"), "{e}");
    // The atproto key (listed, but it did not sign).
    let e = bob.fails(&as_refs(&attest(&salt, "atproto", &sig, true)));
    assert!(e.contains("BadSignature"), "{e}");
    // A key id the DID does not list.
    let e = bob.fails(&as_refs(&attest(&salt, "nope", &sig, true)));
    assert!(e.contains("InvalidOperation"), "{e}");
    // A bad DID form.
    let e = bob.fails(&[
        "identity",
        "attest",
        "did",
        "--did",
        "did:plc:UPPER",
        "--salt",
        &salt,
        "--plc-sig",
        &sig,
        "--plc-directory",
        &plc.url,
        "--allow-http-loopback",
    ]);
    assert!(e.contains("Malformed"), "{e}");

    let out = bob.run(&as_refs(&attest(&salt, "clientful", &sig, true)));
    assert!(out.contains("attested"), "{out}");

    // alice verifies offline: the record carries the log and the statement.
    let short = &bob_key[..12];
    let listed = alice.run(&["space", "attestations"]);
    let verified = |listed: &str| {
        listed
            .lines()
            .any(|l| l.contains(short) && l.contains(&format!("DID  {did}  verified")))
    };
    assert!(verified(&listed), "{listed}");

    // The DID drops the key (a new operation through the directory).
    plc.tool(&["drop-key", &plc.url, state]);
    // The record bob made stays verified: it shows the log as it was at its
    // created_at_ms (ATT-19).
    let listed = alice.run(&["space", "attestations"]);
    assert!(verified(&listed), "{listed}");
    // A new attestation is refused: the latest operation no longer lists the key.
    let salt2 = bob.attest_nonce()("salt");
    let sig2 = signed_statement(&plc, &bob, tmp.path(), state, &did, &salt2, "clientful");
    let e = bob.fails(&as_refs(&attest(&salt2, "clientful", &sig2, true)));
    assert!(e.contains("InvalidOperation"), "{e}");

    // A tombstoned DID.
    plc.tool(&["tombstone", &plc.url, state]);
    let e = bob.fails(&as_refs(&attest(&salt2, "clientful", &sig2, true)));
    assert!(e.contains("InvalidOperation"), "{e}");
}
