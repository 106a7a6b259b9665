//! Regression tests of the broker's resource budget and manners (issue 20: an
//! outside attack run), against real `clientful-broker` processes over loopback:
//! the backlog attack under an address-space cap, 1,500 half-open connections
//! under a 1,024 open-files limit, a never-reading member bounded in bytes, a
//! flood answered RATE_LIMITED and a policy close before the socket goes,
//! WebSocket close codes and ping limits, BRK-7 for a 31-byte room id, and the
//! room cap. Every abuse is bounded: loopback only, capped counts and durations,
//! and the test stops it itself.
//! spec: BRK-7, BRK-18, BRK-LIM-3, BRK-LIM-5, BRK-LIM-6, BRK-LIM-7.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod broker_common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_common::*;
use clientful_broker::frame::{code, kind};
use clientful_core::keys::EpochKey;
use clientful_core::room::RoomCredentials;
use clientful_net::client::{ClientOptions, Event, RoomClient};
use clientful_proto::v1::BrokerFrame;
use futures_util::{SinkExt, StreamExt};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio_tungstenite::tungstenite::Message;

/// The tests of this file run one at a time: each loads the machine on purpose,
/// and the timing assertions (a second for WELCOME and `/healthz`) are about the
/// broker under its attack, not under the others'.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn room(n: u64) -> Arc<RoomCredentials> {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    Arc::new(RoomCredentials::derive(&[7; 32], &EpochKey::new(id, [9; 32])).expect("room"))
}

fn join_frame(room: &RoomCredentials, challenge: &[u8], request: u32) -> BrokerFrame {
    BrokerFrame {
        kind: kind::JOIN,
        request,
        room_id: room.room_id().to_vec(),
        room_key: room.room_public_key().to_vec(),
        proof: room.join_proof(challenge).expect("proof").to_vec(),
        ..Default::default()
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        keepalive: Duration::from_secs(2),
    }
}

/// Two honest members (WebSocket and QUIC) of one room.
struct Honest {
    a: RoomClient,
    a_ev: tokio::sync::mpsc::Receiver<Event>,
    b: RoomClient,
    b_ev: tokio::sync::mpsc::Receiver<Event>,
    room: Arc<RoomCredentials>,
    n: u64,
}

impl Honest {
    async fn start(broker: &BrokerProc) -> Honest {
        let room = room(u64::MAX);
        let (a, mut a_ev) = RoomClient::spawn(broker.ws(), room.clone(), options());
        let (b, mut b_ev) = RoomClient::spawn(broker.quic(), room.clone(), options());
        for ev in [&mut a_ev, &mut b_ev] {
            loop {
                match tokio::time::timeout(Duration::from_secs(15), ev.recv()).await {
                    Ok(Some(Event::Joined { .. })) => break,
                    Ok(Some(_)) => {}
                    other => panic!("honest member not joined: {other:?}"),
                }
            }
        }
        Honest {
            a,
            a_ev,
            b,
            b_ev,
            room,
            n: 0,
        }
    }

    /// Each publishes one message and receives the other's, within 15 s.
    async fn served(&mut self) {
        self.n += 1;
        let mut rng = ChaCha20Rng::seed_from_u64(self.n);
        let ma = self.room.seal_message(&mut rng, b"from a").expect("seal");
        let mb = self.room.seal_message(&mut rng, b"from b").expect("seal");
        self.a.publish(ma.clone()).await;
        self.b.publish(mb.clone()).await;
        for (ev, want) in [(&mut self.a_ev, mb), (&mut self.b_ev, ma)] {
            loop {
                match tokio::time::timeout(Duration::from_secs(15), ev.recv()).await {
                    Ok(Some(Event::Deliver(p))) if p == want => break,
                    Ok(Some(_)) => {}
                    other => panic!("honest member not served: {other:?}"),
                }
            }
        }
    }
}

/// Finding 1: anyone can make rooms and fill their backlogs. Two attacker
/// connections make 1.5 GiB of backlog (96 rooms each, 8 payloads of 1 MiB per
/// room, then leave) against a broker with its default limits whose address space
/// is capped at 1 GiB: the broker stays up, its backlog stays within the budget,
/// and the honest members keep publishing throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_attack_under_a_memory_cap_leaves_the_broker_up() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cap = 1024u64 * 1024 * 1024;
    let mut broker = spawn_broker_via(
        &["prlimit", &format!("--as={cap}"), "--"],
        dir.path(),
        "memcap",
        0,
        0,
        &[],
    );
    let mut honest = Honest::start(&broker).await;
    honest.served().await;

    let attack = |who: u64| {
        let url = broker.ws_url.clone();
        tokio::spawn(async move {
            let payload = vec![0xa5u8; 1024 * 1024];
            let mut sent = 0u64;
            let mut conn: Option<(RawWs, Vec<u8>)> = None;
            for r in 0..96u64 {
                // A real attacker reconnects when cut off; so does this one.
                if conn.is_none() {
                    let mut ws = RawWs::connect(&url).await;
                    let challenge = ws.hello().await;
                    conn = Some((ws, challenge));
                }
                let Some((ws, challenge)) = conn.as_mut() else {
                    continue;
                };
                let room = room(who * 1000 + r);
                let mut frames = vec![join_frame(&room, challenge, 1)];
                for _ in 0..8 {
                    frames.push(BrokerFrame {
                        kind: kind::PUBLISH,
                        room_id: room.room_id().to_vec(),
                        payload: payload.clone(),
                        ..Default::default()
                    });
                }
                frames.push(BrokerFrame {
                    kind: kind::LEAVE,
                    room_id: room.room_id().to_vec(),
                    ..Default::default()
                });
                let mut ok = true;
                for f in frames {
                    let publish = f.kind == kind::PUBLISH;
                    let bytes = clientful_core::wire::encode(&f);
                    if ws.ws.send(Message::Binary(bytes.into())).await.is_err() {
                        ok = false;
                        break;
                    }
                    if publish {
                        sent += 1;
                    }
                }
                // Read what the broker answered (JOINED, errors) so this
                // connection is not itself a slow reader.
                while ok {
                    match tokio::time::timeout(Duration::from_millis(1), ws.ws.next()).await {
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(_)) | None) => ok = false,
                        Err(_) => break,
                    }
                }
                if !ok {
                    conn = None;
                }
            }
            sent
        })
    };
    let started = Instant::now();
    let attackers = [attack(1), attack(2)];
    let mut rounds = 0;
    while attackers.iter().any(|a| !a.is_finished()) {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "attack did not finish"
        );
        assert!(
            broker.child.try_wait().expect("status").is_none(),
            "broker died under the backlog attack"
        );
        honest.served().await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut published = 0;
    for a in attackers {
        published += a.await.expect("attacker");
    }
    assert!(published >= 1500, "attackers published {published} MiB");
    assert!(rounds >= 1);
    assert!(
        broker.child.try_wait().expect("status").is_none(),
        "broker died"
    );
    honest.served().await;
    let (status, _) = http_get(broker.http, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    let (_, m) = http_get(broker.http, "/metrics").await;
    assert!(metric(&m, "clientful_broker_backlog_bytes") <= 256 * 1024 * 1024);
    assert!(metric(&m, "clientful_broker_backlog_evicted_total") > 0);
    broker.kill();
}

/// Connects to `dst` from the loopback address `src`.
async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> Option<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4().ok()?;
    s.bind(SocketAddr::new(src.into(), 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(3), s.connect(dst))
        .await
        .ok()?
        .ok()
}

/// True if the peer closes `s` (EOF or error) within `wait`.
async fn closed_within(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
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

/// Finding 2: half-open HTTP connections. With the broker's open-files limit at
/// 1,024, 1,500 connections (from 30 loopback addresses, half silent, half stopping
/// in the middle of their headers) are held open; a new client still connects and
/// gets WELCOME, and `/healthz` answers, each within a second. Half-open
/// connections are closed after the HTTP deadline, a one-byte-a-second sender
/// too, and a burst from one address is cut by the per-address limits; every
/// refusal is counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_do_not_lock_out_clients() {
    use tokio::io::AsyncWriteExt;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker_via(
        &["prlimit", "--nofile=1024:1024", "--"],
        dir.path(),
        "halfopen",
        0,
        0,
        &["--http-timeout", "8", "--max-connections-per-address", "60"],
    );
    let mut held = Vec::new();
    let t0 = Instant::now();
    for i in 0..1500u32 {
        let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 30) as u8);
        if let Some(mut s) = connect_from(src, broker.http).await {
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n").await;
            }
            held.push(s);
        }
    }
    assert!(held.len() >= 1400, "only {} connections made", held.len());
    let made = Instant::now();
    let making = made.duration_since(t0);

    let t = Instant::now();
    let mut ws = tokio::time::timeout(Duration::from_secs(1), async {
        let mut ws = RawWs::connect(&broker.ws_url).await;
        ws.hello().await;
        ws
    })
    .await
    .expect("a new client gets WELCOME within a second");
    let (status, _) =
        tokio::time::timeout(Duration::from_secs(1), http_get(broker.http, "/healthz"))
            .await
            .expect("/healthz answers within a second");
    assert!(status.contains("200"), "{status}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // The session is not subject to the HTTP deadline (8 s).
    tokio::time::sleep_until((made + Duration::from_secs(9)).into()).await;
    ws.send(BrokerFrame {
        kind: kind::PING,
        nonce: vec![1],
        ..Default::default()
    })
    .await;
    assert_eq!(ws.recv().await.expect("pong").kind, kind::PONG);
    // The HTTP deadline has passed for every held connection.
    let mut still_open = 0;
    for s in held.iter_mut().rev().take(50) {
        if !closed_within(s, Duration::from_secs(2)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "half-open connections outlived the deadline");
    drop(held);
    // One byte a second (here: every 300 ms) does not keep a connection either.
    let mut slow = connect_from(Ipv4Addr::new(127, 0, 0, 50), broker.http)
        .await
        .expect("connect");
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /v1/ws HTTP/1.1\r\nHost: slow-loris.example\r\n".iter() {
        if slow.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(300)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "slow header sender not cut");
    assert!(started.elapsed() < Duration::from_secs(11));
    // More than the header cap before the upgrade: cut.
    let mut big = connect_from(Ipv4Addr::new(127, 0, 0, 51), broker.http)
        .await
        .expect("connect");
    let mut header = b"GET /v1/ws HTTP/1.1\r\n".to_vec();
    header.extend(std::iter::repeat_n(b'a', 20 * 1024));
    let _ = big.write_all(&header).await;
    assert!(closed_within(&mut big, Duration::from_secs(3)).await);
    // One address holding more than its share (60), and one opening faster than
    // its rate (burst 100): refused.
    let mut burst = Vec::new();
    for _ in 0..100 {
        if let Some(s) = connect_from(Ipv4Addr::new(127, 0, 0, 60), broker.http).await {
            burst.push(s);
        }
    }
    for _ in 0..150 {
        drop(connect_from(Ipv4Addr::new(127, 0, 0, 61), broker.http).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, m) = http_get(broker.http, "/metrics").await;
    let refused = |r: &str| {
        metric(
            &m,
            &format!("clientful_broker_connections_refused_total{{reason=\"{r}\"}}"),
        )
    };
    assert!(
        refused("evicted") >= 1,
        "no eviction (1,500 connections made in {making:?}):\n{m}"
    );
    assert!(refused("http_timeout") >= 1, "{m}");
    assert!(refused("rate") >= 1, "{m}");
    assert!(refused("per_address") >= 1, "{m}");
    assert!(refused("header_too_large") >= 1, "{m}");
    let log = std::fs::read_to_string(dir.path().join("broker-halfopen.log")).expect("log");
    assert!(
        log.contains("cap on TCP (WebSocket/HTTP) connections lowered"),
        "{log}"
    );
    assert!(log.contains("refused or closed by admission"), "{log}");
}

/// Reads until the connection ends; returns the frames and the close code.
async fn drain(ws: &mut RawWs) -> (Vec<BrokerFrame>, Option<u16>) {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => frames
                .push(clientful_broker::frame::decode_raw(&b, usize::MAX).expect("broker frame")),
            Ok(Some(Ok(Message::Close(c)))) => {
                return (frames, c.map(|c| u16::from(c.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => return (frames, None),
        }
    }
}

/// Finding 6 (manners): a flooding client gets RATE_LIMITED and a policy close
/// (1008) even though it never read while flooding; an oversized frame gets 1009;
/// a WebSocket ping flood is rate-limited; a JOIN with a 31-byte room id is
/// BAD_PROOF and the connection stays (BRK-7); a JOIN past the room cap is
/// OVER_CAPACITY and the connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_get_their_error_and_close_code() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(
        dir.path(),
        "manners",
        0,
        0,
        &["--max-frame", "65536", "--max-rooms-total", "2"],
    );
    // A frame flood, written without reading anything back.
    let mut fl = RawWs::connect(&broker.ws_url).await;
    fl.hello().await;
    let pub_frame = clientful_core::wire::encode(&BrokerFrame {
        kind: kind::PUBLISH,
        room_id: vec![1; 32],
        payload: vec![0; 16],
        ..Default::default()
    });
    for _ in 0..3000 {
        if fl
            .ws
            .feed(Message::Binary(pub_frame.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = fl.ws.flush().await;
    let (frames, close) = drain(&mut fl).await;
    let last = frames.last().expect("an error before the close");
    assert_eq!((last.kind, last.code), (kind::ERROR, code::RATE_LIMITED));
    assert_eq!(close, Some(1008), "policy-violation close");

    // An oversized frame: FRAME_TOO_LARGE and close 1009.
    let mut o = RawWs::connect(&broker.ws_url).await;
    o.hello().await;
    o.send_bytes(vec![0x08; 70_000]).await;
    let (frames, close) = drain(&mut o).await;
    assert_eq!(frames.last().map(|f| f.code), Some(code::FRAME_TOO_LARGE));
    assert_eq!(close, Some(1009));

    // WebSocket pings cost tokens: a ping flood is cut off.
    let mut p = RawWs::connect(&broker.ws_url).await;
    p.hello().await;
    for _ in 0..600 {
        if p.ws.feed(Message::Ping(vec![0; 8].into())).await.is_err() {
            break;
        }
    }
    let _ = p.ws.flush().await;
    let (frames, close) = drain(&mut p).await;
    assert!(
        frames.iter().any(|f| f.code == code::RATE_LIMITED),
        "{frames:?}"
    );
    assert_eq!(close, Some(1008));

    // BRK-7: a 31-byte room id in JOIN is BAD_PROOF; the connection stays.
    let mut j = RawWs::connect(&broker.ws_url).await;
    let challenge = j.hello().await;
    let r1 = room(1);
    let mut short = join_frame(&r1, &challenge, 4);
    short.room_id.truncate(31);
    j.send(short).await;
    let e = j.recv().await.expect("error");
    assert_eq!(
        (e.kind, e.code, e.request),
        (kind::ERROR, code::BAD_PROOF, 4)
    );
    j.send(join_frame(&r1, &challenge, 5)).await;
    assert_eq!(j.recv().await.expect("joined").kind, kind::JOINED);
    // The room cap (2): a second room fits, a third is OVER_CAPACITY, not fatal.
    j.send(join_frame(&room(2), &challenge, 6)).await;
    assert_eq!(j.recv().await.expect("joined").kind, kind::JOINED);
    j.send(join_frame(&room(3), &challenge, 7)).await;
    let e = j.recv().await.expect("error");
    assert_eq!((e.code, e.request), (code::OVER_CAPACITY, 7));
    j.send(BrokerFrame {
        kind: kind::PING,
        ..Default::default()
    })
    .await;
    assert_eq!(j.recv().await.expect("pong").kind, kind::PONG);

    let (_, m) = http_get(broker.http, "/metrics").await;
    for c in [
        "rate_limited",
        "frame_too_large",
        "bad_proof",
        "over_capacity",
    ] {
        assert!(
            metric(
                &m,
                &format!("clientful_broker_rejections_total{{code=\"{c}\"}}")
            ) >= 1,
            "no {c} counted"
        );
    }
    // ... and logged (one line a second at most, with the counts).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let log = std::fs::read_to_string(dir.path().join("broker-manners.log")).expect("log");
    assert!(
        log.contains("refused or shed since the last report") && log.contains("over_capacity="),
        "{log}"
    );
}

/// Finding 1 (queues): a member that joined and never reads is dropped once its
/// queue holds --send-queue-bytes, long before the frame bound: 40 payloads of
/// 1 MiB against a 4 MiB queue. The other member gets every payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reading_member_is_bounded_in_bytes() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(
        dir.path(),
        "bytes",
        0,
        0,
        &["--send-queue-bytes", "4194304", "--backlog", "0"],
    );
    let mut honest = Honest::start(&broker).await;
    let mut slow = RawWs::connect(&broker.ws_url).await;
    let challenge = slow.hello().await;
    slow.send(join_frame(&honest.room, &challenge, 1)).await;
    assert_eq!(slow.recv().await.expect("joined").kind, kind::JOINED);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let count = 40;
    for i in 0..count {
        let mut body = vec![i as u8; 1024 * 1024 - 200];
        body[0] = i as u8;
        let sealed = honest.room.seal_message(&mut rng, &body).expect("seal");
        honest.a.publish(sealed).await;
    }
    let mut got = 0;
    while got < count {
        match tokio::time::timeout(Duration::from_secs(30), honest.b_ev.recv()).await {
            Ok(Some(Event::Deliver(_))) => got += 1,
            Ok(Some(_)) => {}
            other => panic!("honest reader got {got} of {count}: {other:?}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = http_get(broker.http, "/metrics").await;
        if metric(&m, "clientful_broker_drops_total{reason=\"slow_reader\"}") >= 1 {
            assert!(metric(&m, "clientful_broker_queued_bytes") < 16 * 1024 * 1024);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never-reading member not dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slow.closed().await);
    honest.served().await;
}
