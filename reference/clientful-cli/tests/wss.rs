//! The CLI over `wss://`: a real `clientful broker` process terminating TLS
//! itself with a self-signed certificate made by the test, two users (two
//! devices, separate homes, separate processes) on a folder storage, and live
//! edits carried through `wss://127.0.0.1:PORT/v1/ws?pin=<hex>`: the broker's
//! key pin, as for QUIC (BRK-20). A wrong pin, and the platform's roots against
//! the self-signed certificate, fail in one line before anything is joined.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../clientful-broker/tests/broker_common/mod.rs"]
mod broker_common;
mod cli_common;

use std::time::Duration;

use cli_common::{User, folder_storage, last_line};

#[test]
fn cli_watch_syncs_through_a_wss_broker() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (cert, key, der) =
        broker_common::write_self_signed(tmp.path(), "cli", &["localhost", "127.0.0.1"]);
    let broker = broker_common::spawn_broker(
        tmp.path(),
        "cli-wss",
        0,
        0,
        &broker_common::tls_flags(&cert, &key),
    );
    let pin = clientful_broker::pin::spki_sha256(&der).expect("pin");
    assert_eq!(broker.wss_pin, Some(pin));
    let base = format!("wss://127.0.0.1:{}/v1/ws", broker.http.port());
    let url = format!("{base}?pin={}", hex::encode(pin));

    let storage = folder_storage(tmp.path());
    let alice = User::new(tmp.path(), "alice");
    let bob = User::new(tmp.path(), "bob");
    alice.run(&["space", "create", "team", "--storage", &storage]);
    let notes = last_line(&alice.run(&["doc", "new", "--crdt", "yjs", "--title", "Notes"]));
    alice.run(&["doc", "edit", &notes, "--append", "hello"]);
    let code = last_line(&alice.run(&["invite", "create"]));
    bob.run(&[
        "invite",
        "accept",
        &code,
        "--name",
        "team",
        "--storage",
        &storage,
    ]);
    alice.run(&["sync"]);
    bob.run(&["sync"]);
    assert_eq!(bob.text(&notes), "hello");

    // Refused before joining, in one line, with the typed reason.
    let mut wrong = pin;
    wrong[31] ^= 0x80;
    let err = bob.fails(&[
        "watch",
        "--broker",
        &format!("{base}?pin={}", hex::encode(wrong)),
        "--for",
        "1",
    ]);
    assert!(err.contains("does not match the pin"), "{err}");
    let err = bob.fails(&["watch", "--broker", &base, "--for", "1"]);
    assert!(err.contains("not issued by a trusted authority"), "{err}");
    let err = bob.fails(&[
        "watch",
        "--broker",
        &format!("{base}?pin=abc"),
        "--for",
        "1",
    ]);
    assert!(err.contains("64 hex digits"), "{err}");

    // Live: bob watches over wss; alice's edit reaches him through the broker
    // (his storage sync runs only when the watch starts).
    let watcher = bob
        .cmd(&[
            "watch",
            "--broker",
            &url,
            "--for",
            "12",
            "--interval",
            "3600",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bob watches");
    std::thread::sleep(Duration::from_secs(3));
    alice.run(&["doc", "edit", &notes, "--append", " over tls"]);
    alice.run(&[
        "watch",
        "--broker",
        &url,
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
        "bob got envelopes live over wss:\n{watched}"
    );
    assert_eq!(bob.text(&notes), "hello over tls");
    assert_eq!(alice.digests(), bob.digests());

    // The broker carried sealed frames only.
    drop(broker);
    let frames = std::fs::read(tmp.path().join("capture-cli-wss.bin")).unwrap_or_default();
    assert!(!frames.is_empty(), "the broker carried frames");
    for needle in ["hello", "over tls", "Notes", "alice"] {
        assert!(
            !frames.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` crossed the broker"
        );
    }
}
