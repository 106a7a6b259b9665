//! `wss://`: the real `clientful-broker` process terminating TLS itself
//! (`--tls-cert`/`--tls-key`, a self-signed certificate made by the test), and
//! the native client (clientful-net) reaching it over loopback: two devices
//! sync a document through it, one trusting the certificate by its key pin
//! (as QUIC does, BRK-20), one by a custom root. Refusals are typed
//! (`TlsError`): a wrong pin, an unknown issuer, a name the certificate does
//! not hold. A plain `ws://` client on the TLS port fails at once, and
//! half-open TLS handshakes are bounded: closed at the handshake deadline,
//! evicted at the connection cap (BRK-LIM-7), counted in `/metrics`.
//! spec: BRK-1, BRK-20, BRK-LIM-7.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod broker_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_common::*;
use clientful_doc::replica::CrdtKind;
use clientful_doc::testkit::{World, insert_text, set_value};
use clientful_net::docsync::{DocClient, DocPeer};
use clientful_net::tls::{TlsError, TlsTrust};
use clientful_net::transport::{self, Endpoint};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET_TEXT: &str = "the launch date is March 3rd";
const DOC_TITLE: &str = "Quarterly roadmap (confidential)";

fn text_of(c: &DocClient) -> String {
    c.with(|p| p.replica().materialize().to_canonical_string())
        .expect("peer")
}

fn digest_of(c: &DocClient) -> [u8; 32] {
    c.with(|p| p.replica().state_digest()).expect("peer")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wss(addr: SocketAddr, host: &str, trust: TlsTrust) -> Endpoint {
    Endpoint::SecureWebSocket {
        url: format!("wss://{host}:{}/v1/ws", addr.port()),
        trust,
    }
}

/// Connects once; the TLS error inside the failure, if any.
async fn tls_failure(endpoint: &Endpoint) -> TlsError {
    let err = match tokio::time::timeout(Duration::from_secs(10), transport::connect(endpoint))
        .await
        .expect("the connection attempt ends")
    {
        Ok(_) => panic!("connected to {endpoint:?}"),
        Err(e) => e,
    };
    match err.downcast::<TlsError>() {
        Ok(tls) => tls,
        Err(other) => panic!("not a TLS error: {other:#}"),
    }
}

/// GET `path` over HTTPS, trusting the broker by its pin.
async fn https_get(addr: SocketAddr, pin: [u8; 32], path: &str) -> String {
    let config = clientful_net::tls::client_config(&TlsTrust::Pin(pin)).expect("config");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            clientful_net::tls::server_name("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("TLS");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).to_string()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// True if the peer closes `s` (EOF or error) within `wait`.
async fn closed_within(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The Must-show test of issue 16 item 4: two devices edit one document through
/// a broker that terminates TLS itself; one trusts it by the key pin the broker
/// announced, the other by the self-signed certificate as its only root. They
/// converge; the broker printed the pin of its `wss://` key; nothing readable
/// crossed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_client_syncs_through_a_wss_broker() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key, der) = write_self_signed(dir.path(), "wss", &["localhost", "127.0.0.1"]);
    let broker = spawn_broker(dir.path(), "wss", 0, 0, &tls_flags(&cert, &key));
    let pin = clientful_broker::pin::spki_sha256(&der).expect("pin");
    assert_eq!(
        broker.wss_pin,
        Some(pin),
        "the broker announces its wss pin"
    );

    let world = World::new(3, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let pinned = DocClient::spawn(
        wss(broker.http, "127.0.0.1", TlsTrust::Pin(pin)),
        DocPeer::new(world.replica(0), room.clone(), [10; 32]),
        fast_options(),
    );
    let rooted = DocClient::spawn(
        wss(
            broker.http,
            "127.0.0.1",
            TlsTrust::Roots(vec![CertificateDer::from(der.clone())]),
        ),
        DocPeer::new(world.replica(1), room.clone(), [11; 32]),
        fast_options(),
    );
    wait_until("both joined over wss", || {
        pinned.joins() >= 1 && rooted.joins() >= 1
    })
    .await;
    pinned
        .edit(|r| set_value(r, "title", DOC_TITLE))
        .await
        .expect("edit");
    pinned
        .edit(|r| insert_text(r, 0, &format!("{SECRET_TEXT} ")))
        .await
        .expect("edit");
    rooted
        .edit(|r| insert_text(r, 0, "from-the-second-device "))
        .await
        .expect("edit");
    wait_until("convergence over wss", || {
        let (a, b) = (text_of(&pinned), text_of(&rooted));
        digest_of(&pinned) == digest_of(&rooted)
            && a.contains(SECRET_TEXT)
            && a.contains("from-the-second-device")
            && b.contains(DOC_TITLE)
    })
    .await;
    assert_eq!(text_of(&pinned), text_of(&rooted));

    // The session ran over TLS: the plain port answers only TLS, and the
    // broker's own /healthz is reached over HTTPS.
    let health = https_get(broker.http, pin, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    pinned.close().await;
    rooted.close().await;
    drop(broker);
    let frames = std::fs::read(dir.path().join("capture-wss.bin")).unwrap_or_default();
    assert!(!frames.is_empty(), "the broker carried frames");
    for needle in [SECRET_TEXT, DOC_TITLE, "from-the-second-device"] {
        assert!(
            !frames.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{needle}` crossed the broker"
        );
    }
}

/// Every refusal is a typed `TlsError`: a wrong pin, a self-signed certificate
/// against the platform's roots (unknown issuer), a trusted certificate that
/// does not name the host. A plain `ws://` client on the TLS port fails within
/// seconds, and the broker counts the failed handshake and serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_refusals_are_typed_and_plain_ws_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    // Only `localhost` in the certificate: 127.0.0.1 is not a name it holds.
    let (cert, key, der) = write_self_signed(dir.path(), "refuse", &["localhost"]);
    let broker = spawn_broker(dir.path(), "refuse", 0, 0, &tls_flags(&cert, &key));
    let pin = broker.wss_pin.expect("wss pin");

    let mut wrong = pin;
    wrong[0] ^= 1;
    match tls_failure(&wss(broker.http, "127.0.0.1", TlsTrust::Pin(wrong))).await {
        TlsError::PinMismatch { expected } => assert_eq!(expected, hex::encode(wrong)),
        other => panic!("wrong pin: {other:?}"),
    }
    // The QUIC pin is another key's (the broker's QUIC identity): refused too.
    assert!(matches!(
        tls_failure(&wss(broker.http, "127.0.0.1", TlsTrust::Pin(broker.pin))).await,
        TlsError::PinMismatch { .. }
    ));
    assert!(matches!(
        tls_failure(&wss(broker.http, "127.0.0.1", TlsTrust::System)).await,
        TlsError::UnknownIssuer
    ));
    assert!(matches!(
        tls_failure(&wss(broker.http, "127.0.0.1", TlsTrust::Bundled)).await,
        TlsError::UnknownIssuer
    ));
    // `Endpoint::WebSocket` with a wss:// URL uses the platform's roots.
    let plain_wss = Endpoint::WebSocket(format!("wss://127.0.0.1:{}/v1/ws", broker.http.port()));
    assert!(matches!(
        tls_failure(&plain_wss).await,
        TlsError::UnknownIssuer
    ));
    let root = TlsTrust::Roots(vec![CertificateDer::from(der)]);
    match tls_failure(&wss(broker.http, "127.0.0.1", root.clone())).await {
        TlsError::HostnameMismatch { host } => assert_eq!(host, "127.0.0.1"),
        other => panic!("wrong name: {other:?}"),
    }
    // With the name it holds, the same root is accepted.
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        transport::connect(&wss(broker.http, "localhost", root)),
    )
    .await
    .expect("in time")
    .expect("the certificate's own name is accepted");
    drop(conn);

    // A plain ws:// client on the TLS port: an error within seconds, no hang.
    let started = Instant::now();
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        transport::connect(&Endpoint::WebSocket(broker.ws_url.clone())),
    )
    .await
    .expect("a plain client is answered, not left hanging");
    assert!(plain.is_err(), "plain ws:// to a TLS port must fail");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The broker serves on, and counted the refused handshakes (the clients'
    // alerts and the plain request).
    let m = https_get(broker.http, pin, "/metrics").await;
    assert!(
        metric(
            &m,
            "clientful_broker_connections_refused_total{reason=\"tls_handshake_failed\"}"
        ) >= 6,
        "{m}"
    );
}

/// Half-open TLS: silent connections and one that stops in the middle of its
/// ClientHello are closed at the TLS handshake deadline (1 s here, the HTTP
/// deadline being 60 s), counted; and at the connection cap, connections still
/// in their handshake are evicted so a real client gets in at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_tls_handshakes_do_not_hold_slots() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key, der) = write_self_signed(dir.path(), "halfopen", &["127.0.0.1"]);
    let pin = clientful_broker::pin::spki_sha256(&der).expect("pin");
    let mut flags = tls_flags(&cert, &key).to_vec();
    flags.extend(["--tls-handshake-timeout", "1", "--http-timeout", "60"]);
    let broker = spawn_broker(dir.path(), "halfopen-deadline", 0, 0, &flags);

    let mut silent = tokio::net::TcpStream::connect(broker.http)
        .await
        .expect("connect");
    let mut partial = tokio::net::TcpStream::connect(broker.http)
        .await
        .expect("connect");
    // A TLS record header announcing a ClientHello, then nothing.
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let t = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(closed_within(&mut partial, Duration::from_secs(5)).await);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "closed by the 1 s TLS deadline, not the 60 s HTTP one"
    );
    let m = https_get(broker.http, pin, "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "clientful_broker_connections_refused_total{reason=\"tls_handshake_timeout\"}"
        ),
        2,
        "{m}"
    );
    drop(broker);

    // At the cap (4 connections), 4 silent TLS connections with long deadlines
    // do not lock a client out: the oldest pending one is evicted.
    let mut flags = tls_flags(&cert, &key).to_vec();
    flags.extend([
        "--tls-handshake-timeout",
        "60",
        "--http-timeout",
        "60",
        "--max-connections",
        "4",
    ]);
    let broker = spawn_broker(dir.path(), "halfopen-cap", 0, 0, &flags);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            tokio::net::TcpStream::connect(broker.http)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let conn = tokio::time::timeout(
        Duration::from_secs(3),
        transport::connect(&wss(broker.http, "127.0.0.1", TlsTrust::Pin(pin))),
    )
    .await
    .expect("a client gets in at the cap within seconds")
    .expect("connects");
    drop(conn);
    assert!(
        closed_within(&mut held[0], Duration::from_secs(3)).await,
        "the oldest half-open TLS connection was evicted"
    );
    let m = https_get(broker.http, pin, "/metrics").await;
    assert!(
        metric(
            &m,
            "clientful_broker_connections_refused_total{reason=\"evicted\"}"
        ) >= 1,
        "{m}"
    );
}
