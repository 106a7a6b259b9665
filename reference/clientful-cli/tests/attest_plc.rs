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

use std::path::Path;

use cli_common::{Service, User, alice_and_bob, as_refs, node, with_loopback};

/// Runs scripts/services/plc/did.mjs; returns its stdout, trimmed.
fn did_tool(args: &[&str]) -> String {
    node("scripts/services/plc/did.mjs", args)
        .trim()
        .to_string()
}

/// bob's statement for `salt` and key id `key`, signed by the DID's `clientful` key.
fn signed_statement(
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
    did_tool(&["sign", state, file.to_str().unwrap()])
}

#[test]
fn did_plc_attestation_through_a_real_directory() {
    let plc = Service::plc();
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = alice_and_bob(tmp.path());
    let bob_key = bob.user_key();

    let state_file = tmp.path().join("plc-state.json");
    let state = state_file.to_str().unwrap();
    let did = did_tool(&["create", &plc.url, state]);
    assert!(did.starts_with("did:plc:") && did.len() == 32, "{did}");

    let field = bob.attest_nonce();
    let salt = field("salt");
    let sig = signed_statement(&bob, tmp.path(), state, &did, &salt, "clientful");
    let attest = |salt: &str, key: &str, sig: &str, loopback: bool| {
        with_loopback(
            &[
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
            ],
            loopback,
        )
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
    did_tool(&["drop-key", &plc.url, state]);
    // The record bob made stays verified: it shows the log as it was at its
    // created_at_ms (ATT-19).
    let listed = alice.run(&["space", "attestations"]);
    assert!(verified(&listed), "{listed}");
    // A new attestation is refused: the latest operation no longer lists the key.
    let salt2 = bob.attest_nonce()("salt");
    let sig2 = signed_statement(&bob, tmp.path(), state, &did, &salt2, "clientful");
    let e = bob.fails(&as_refs(&attest(&salt2, "clientful", &sig2, true)));
    assert!(e.contains("InvalidOperation"), "{e}");

    // A tombstoned DID.
    did_tool(&["tombstone", &plc.url, state]);
    let e = bob.fails(&as_refs(&attest(&salt2, "clientful", &sig2, true)));
    assert!(e.contains("InvalidOperation"), "{e}");
}
