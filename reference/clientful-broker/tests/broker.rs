//! Integration tests of the broker (spec §10) with real `clientful-broker`
//! processes over real loopback sockets, WebSocket and QUIC, and (for fan-out) a
//! real NATS server started by `scripts/services/nats.sh`. Every broker captures
//! every frame it sees, and each test checks its capture holds no plaintext, no
//! document name, no user id and no space, document or device identifier.
//! spec: BRK-1, BRK-2, BRK-6, BRK-7, BRK-9, BRK-10, BRK-17, BRK-18, BRK-19, BRK-20, BRK-21, BRK-22.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod broker_common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use broker_common::*;
use clientful_broker::frame::{code, kind};
use clientful_core::room::RoomCredentials;
use clientful_doc::replica::CrdtKind;
use clientful_doc::testkit::{World, insert_text, set_value};
use clientful_net::client::{ClientOptions, Event, RoomClient};
use clientful_net::docsync::{DocClient, DocPeer};
use clientful_net::session::{ClientSession, Output, Resume};
use clientful_net::transport::Endpoint;
use clientful_proto::v1::BrokerFrame;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const DOC_NAME: &str = "Quarterly roadmap (confidential)";
const USER_ID: &str = "user:alice@example.org";
const SECRET_TEXT: &str = "the launch date is March 3rd";

/// Identifiers and plaintext that must never appear in a frame.
fn needles(world: &World) -> Vec<(&'static str, Vec<u8>)> {
    let mut n = vec![
        ("document text", SECRET_TEXT.as_bytes().to_vec()),
        ("document name", DOC_NAME.as_bytes().to_vec()),
        ("user id", USER_ID.as_bytes().to_vec()),
        ("space id", world.space_id.to_vec()),
        ("document id", world.doc_id.to_vec()),
        ("epoch id", world.epoch.0.to_vec()),
        ("epoch secret", world.epoch.1.to_vec()),
    ];
    for k in world.signers() {
        n.push(("device key", k.to_vec()));
    }
    n
}

async fn wait_joined(events: &mut tokio::sync::mpsc::Receiver<Event>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), events.recv()).await {
            Ok(Some(Event::Joined { .. })) => return,
            Ok(Some(_)) => {}
            other => panic!("no JOINED: {other:?}"),
        }
    }
}

/// `n` clients on the given endpoints publish `per` sealed messages each; every
/// client must receive every other client's messages exactly once.
async fn exactly_once(endpoints: Vec<Endpoint>, world: &World, per: usize) {
    let room = room_of(world);
    let n = endpoints.len();
    let mut clients = Vec::new();
    for e in endpoints {
        let (c, mut ev) = RoomClient::spawn(e, room.clone(), fast_options());
        wait_joined(&mut ev).await;
        clients.push((c, ev));
    }
    // No wait here: a broker sends JOINED only once its bus subscription is in
    // place (BRK-21), so every JOINED member sees every later publish.
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for (i, (c, _)) in clients.iter().enumerate() {
        for k in 0..per {
            let text = format!("{i}/{k} {SECRET_TEXT} from {USER_ID} in {DOC_NAME}");
            c.publish(room.seal_message(&mut rng, text.as_bytes()).expect("seal"))
                .await;
        }
    }
    let mut tasks = Vec::new();
    for (i, (c, mut ev)) in clients.into_iter().enumerate() {
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let want = (n - 1) * per;
            let mut got: HashMap<(usize, usize), u32> = HashMap::new();
            let mut total = 0usize;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while total < want {
                match tokio::time::timeout_at(deadline, ev.recv()).await {
                    Ok(Some(Event::Deliver(p))) => {
                        let plain =
                            String::from_utf8(room.open_message(&p).expect("opens")).expect("utf8");
                        let (ids, _) = plain.split_once(' ').expect("id prefix");
                        let (a, b) = ids.split_once('/').expect("i/k");
                        *got.entry((a.parse().expect("i"), b.parse().expect("k")))
                            .or_default() += 1;
                        total += 1;
                    }
                    Ok(Some(Event::Joined { .. })) => {
                        panic!("client {i} reconnected during the test")
                    }
                    Ok(Some(_)) => {}
                    _ => panic!("client {i} got {total} of {want} messages"),
                }
            }
            // Nothing more arrives: no duplicates.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while let Ok(e) = ev.try_recv() {
                assert!(
                    !matches!(e, Event::Deliver(_)),
                    "client {i} got an extra message"
                );
            }
            let expected: HashSet<(usize, usize)> = (0..n)
                .filter(|s| *s != i)
                .flat_map(|s| (0..per).map(move |k| (s, k)))
                .collect();
            assert_eq!(
                got.keys().copied().collect::<HashSet<_>>(),
                expected,
                "client {i}"
            );
            assert!(got.values().all(|c| *c == 1), "client {i}: duplicates");
            c.close().await;
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
}

/// 50 clients in one room, WebSocket and QUIC mixed, one broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_mixed_transports_exactly_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(dir.path(), "fifty", 0, 0, &[]);
    let world = World::new(1, 2, CrdtKind::Yjs);
    let endpoints = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                broker.ws()
            } else {
                broker.quic()
            }
        })
        .collect();
    exactly_once(endpoints, &world, 3).await;
    let (_, m) = http_get(broker.http, "/metrics").await;
    assert_eq!(metric(&m, "clientful_broker_published_total"), 150);
    let frames = assert_capture_clean(&broker.capture, &needles(&world));
    // 150 publishes in, 150 * 49 deliveries out, at least.
    assert!(frames >= 150 + 150 * 49, "capture has only {frames} frames");
}

/// The NATS server's URL, or `None` (the test is skipped) when no server was
/// started, which is an error when the test command requires the services.
fn nats_url() -> Option<String> {
    let url = std::env::var("CLIENTFUL_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var("CLIENTFUL_REQUIRE_SERVICES").is_err(),
            "CLIENTFUL_NATS_URL is not set but CLIENTFUL_REQUIRE_SERVICES is: \
             start NATS with scripts/services/nats.sh"
        );
        eprintln!("skipped: CLIENTFUL_NATS_URL not set (scripts/test-all.sh starts NATS)");
    }
    url
}

/// Two brokers joined through a real NATS server; 50 clients split across them.
/// With the default backlog, the brokers share it in JetStream and deliver in
/// the stream's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_through_nats_exactly_once() {
    let Some(url) = nats_url() else {
        return;
    };
    two_brokers_exactly_once(&url, &[], 50, 2, World::new(2, 2, CrdtKind::Yjs)).await;
}

/// The same over core NATS only (`--backlog 0`: no shared backlog, each broker
/// numbers payloads itself), with fewer clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_through_core_nats_without_backlog_exactly_once() {
    let Some(url) = nats_url() else {
        return;
    };
    let world = World::new(12, 2, CrdtKind::Yjs);
    two_brokers_exactly_once(&url, &["--backlog", "0"], 12, 3, world).await;
}

async fn two_brokers_exactly_once(url: &str, extra: &[&str], n: usize, per: usize, world: World) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut flags = vec!["--nats-url", url];
    flags.extend_from_slice(extra);
    let a = spawn_broker(dir.path(), "nats-a", 0, 0, &flags);
    let b = spawn_broker(dir.path(), "nats-b", 0, 0, &flags);
    let endpoints = (0..n)
        .map(|i| match i % 4 {
            0 => a.ws(),
            1 => a.quic(),
            2 => b.ws(),
            _ => b.quic(),
        })
        .collect();
    exactly_once(endpoints, &world, per).await;
    // Each broker must have received the other broker's publishes over NATS.
    let on_a = (0..n).filter(|i| i % 4 < 2).count();
    let on_b = n - on_a;
    for (broker, name, remote_publishes) in [(&a, "a", on_b * per), (&b, "b", on_a * per)] {
        let (_, m) = http_get(broker.http, "/metrics").await;
        assert_eq!(
            metric(&m, "clientful_broker_bus_messages_total{direction=\"in\"}"),
            remote_publishes as u64,
            "broker {name}: publishes received over NATS"
        );
        assert_capture_clean(&broker.capture, &needles(&world));
    }
}

/// One client session over a real transport, driven by hand so the test sees
/// sequence numbers and the resume point.
struct Sess {
    conn: clientful_net::transport::Connection,
    session: ClientSession,
}

impl Sess {
    /// Connects, joins with `resume`; returns the session and JOINED's `resumed`.
    async fn join(endpoint: &Endpoint, room: Arc<RoomCredentials>, resume: Resume) -> (Self, bool) {
        let conn = clientful_net::transport::connect(endpoint)
            .await
            .expect("connect");
        let mut s = Sess {
            conn,
            session: ClientSession::new(room, resume),
        };
        let hello = s.session.start();
        s.conn.tx.send(hello).await.expect("send");
        loop {
            for o in s
                .next_outputs(Duration::from_secs(15))
                .await
                .expect("JOINED")
            {
                if let Output::Joined { resumed } = o {
                    return (s, resumed);
                }
            }
        }
    }

    /// Handles the next frame: sends what the session sends, returns the rest
    /// (and the raw frame's ACK cursor, if an ACK), or None after `wait`.
    async fn next_outputs(&mut self, wait: Duration) -> Option<Vec<Output>> {
        Some(self.next_frame(wait).await?.1)
    }

    async fn next_frame(&mut self, wait: Duration) -> Option<(BrokerFrame, Vec<Output>)> {
        let bytes = tokio::time::timeout(wait, self.conn.rx.recv())
            .await
            .ok()??;
        let raw = clientful_broker::frame::decode_raw(&bytes, usize::MAX).expect("frame");
        let mut out = Vec::new();
        self.session.handle(&bytes, &mut out).expect("valid frame");
        let mut rest = Vec::new();
        for o in out {
            match o {
                Output::Send(b) => self.conn.tx.send(b).await.expect("send"),
                Output::Error { code, .. } => panic!("broker error {code}"),
                other => rest.push(other),
            }
        }
        Some((raw, rest))
    }

    /// Publishes and waits for the ACK; returns the sequence number assigned.
    async fn publish(&mut self, request: u32, payload: &[u8]) -> u64 {
        let f = self.session.publish(request, payload);
        self.conn.tx.send(f).await.expect("send");
        loop {
            let (raw, _) = self.next_frame(Duration::from_secs(10)).await.expect("ACK");
            if raw.kind == kind::ACK && raw.request == request {
                return raw.cursor;
            }
        }
    }

    /// The next DELIVER (sequence number, payload), or None within `wait`.
    async fn next_deliver(&mut self, wait: Duration) -> Option<(u64, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            for o in self.next_outputs(left).await? {
                if let Output::Deliver { seq, payload } = o {
                    return Some((seq, payload));
                }
            }
        }
    }
}

/// The backlog shared in NATS JetStream: client A publishes through broker 1
/// while client B is offline; B reconnects to broker 2 (with no member of the
/// room yet) with its last cursor and receives exactly the missed payloads, once,
/// in order, under the sequence numbers broker 1 acknowledged (the stream's);
/// live traffic then flows across the brokers. spec: BRK-8, BRK-19, BRK-21, BRK-22.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_backlog_resumes_on_another_broker() {
    let Some(url) = nats_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let one = spawn_broker(dir.path(), "js-1", 0, 0, &["--nats-url", &url]);
    let two = spawn_broker(dir.path(), "js-2", 0, 0, &["--nats-url", &url]);
    let world = World::new(11, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut seal = |s: &str| {
        room.seal_message(
            &mut rng,
            format!("{s} {SECRET_TEXT} {DOC_NAME} {USER_ID}").as_bytes(),
        )
        .expect("seal")
    };
    let (mut a, _) = Sess::join(&one.ws(), room.clone(), Resume::default()).await;
    let (mut b, _) = Sess::join(&one.quic(), room.clone(), Resume::default()).await;
    let first = seal("before");
    let s0 = a.publish(1, &first).await;
    assert_eq!(
        b.next_deliver(Duration::from_secs(10)).await,
        Some((s0, first)),
        "B gets the first payload under the acknowledged number"
    );
    let resume = b.session.resume().clone();
    assert_eq!(resume.next_seq, s0 + 1);
    drop(b);

    // B is offline; A publishes three payloads through broker 1.
    let mut missed = Vec::new();
    for i in 0..3u32 {
        let m = seal(&format!("missed {i}"));
        let seq = a.publish(2 + i, &m).await;
        missed.push((seq, m));
    }
    assert!(
        missed.windows(2).all(|w| w[0].0 < w[1].0) && missed[0].0 > s0,
        "stream numbers grow"
    );

    // B comes back on broker 2 with its cursor.
    let (mut b, resumed) = Sess::join(&two.quic(), room.clone(), resume).await;
    assert!(resumed, "both brokers announce the shared stream's id");
    let mut got = Vec::new();
    while got.len() < missed.len() {
        match b.next_deliver(Duration::from_secs(10)).await {
            Some(d) => got.push(d),
            None => panic!("B caught up {} of {}", got.len(), missed.len()),
        }
    }
    assert_eq!(got, missed, "exactly the missed payloads, in order");
    assert_eq!(
        b.next_deliver(Duration::from_millis(500)).await,
        None,
        "nothing twice"
    );

    // Live traffic across the brokers, numbered by the stream.
    let live = seal("live");
    let sl = a.publish(9, &live).await;
    assert_eq!(
        b.next_deliver(Duration::from_secs(10)).await,
        Some((sl, live))
    );
    assert_eq!(b.next_deliver(Duration::from_millis(500)).await, None);
    drop((a, b));
    for broker in [&one, &two] {
        assert_capture_clean(&broker.capture, &needles(&world));
    }
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

fn text_of(c: &DocClient) -> String {
    c.with(|p| p.replica().materialize().to_canonical_string())
        .expect("peer")
}

fn digest_of(c: &DocClient) -> [u8; 32] {
    c.with(|p| p.replica().state_digest()).expect("peer")
}

/// Two editors; the broker is SIGKILLed mid-session and restarted on the same
/// ports; both reconnect, catch up through the sync exchange and converge with
/// every edit present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_clients_converge() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ws_port, quic_port) = (free_port(), free_port());
    let mut broker = spawn_broker(dir.path(), "restart", ws_port, quic_port, &[]);
    let world = World::new(3, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let c0 = DocClient::spawn(
        broker.ws(),
        DocPeer::new(world.replica(0), room.clone(), [10; 32]),
        fast_options(),
    );
    let c1 = DocClient::spawn(
        broker.quic(),
        DocPeer::new(world.replica(1), room.clone(), [11; 32]),
        fast_options(),
    );
    wait_until("both joined", || c0.joins() >= 1 && c1.joins() >= 1).await;
    c0.edit(|r| set_value(r, "title", DOC_NAME))
        .await
        .expect("edit");
    c0.edit(|r| insert_text(r, 0, "zero-1 "))
        .await
        .expect("edit");
    c1.edit(|r| set_value(r, "owner", USER_ID))
        .await
        .expect("edit");
    c1.edit(|r| insert_text(r, 0, "one-1 "))
        .await
        .expect("edit");
    wait_until("first convergence", || {
        let t = text_of(&c0);
        t.contains("zero-1") && t.contains("one-1") && digest_of(&c0) == digest_of(&c1)
    })
    .await;

    broker.kill();
    // Both keep editing while the broker is gone.
    c0.edit(|r| insert_text(r, 0, &format!("zero-2 {SECRET_TEXT} ")))
        .await
        .expect("edit");
    c1.edit(|r| insert_text(r, 0, "one-2 "))
        .await
        .expect("edit");
    tokio::time::sleep(Duration::from_millis(300)).await;
    c1.edit(|r| insert_text(r, 0, "one-3 "))
        .await
        .expect("edit");

    let broker2 = spawn_broker(dir.path(), "restart", ws_port, quic_port, &[]);
    assert_eq!(broker2.pin, broker.pin, "certificate kept across restarts");
    wait_until("both rejoined", || c0.joins() >= 2 && c1.joins() >= 2).await;
    wait_until("convergence after restart", || {
        digest_of(&c0) == digest_of(&c1)
            && ["zero-1", "zero-2", "one-1", "one-2", "one-3", SECRET_TEXT]
                .iter()
                .all(|s| text_of(&c0).contains(s) && text_of(&c1).contains(s))
    })
    .await;
    assert_eq!(text_of(&c0), text_of(&c1));
    assert!(text_of(&c1).contains(DOC_NAME) && text_of(&c0).contains(USER_ID));
    c0.close().await;
    c1.close().await;
    assert_capture_clean(&broker2.capture, &needles(&world));
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

/// Two healthy members (WebSocket and QUIC) that must keep working.
struct Healthy {
    a: RoomClient,
    a_ev: tokio::sync::mpsc::Receiver<Event>,
    b: RoomClient,
    b_ev: tokio::sync::mpsc::Receiver<Event>,
    room: Arc<RoomCredentials>,
    n: u32,
}

impl Healthy {
    async fn start(broker: &BrokerProc, room: Arc<RoomCredentials>) -> Self {
        let (a, mut a_ev) = RoomClient::spawn(broker.ws(), room.clone(), fast_options());
        let (b, mut b_ev) = RoomClient::spawn(broker.quic(), room.clone(), fast_options());
        wait_joined(&mut a_ev).await;
        wait_joined(&mut b_ev).await;
        Healthy {
            a,
            a_ev,
            b,
            b_ev,
            room,
            n: 0,
        }
    }

    /// Each sends one message; each receives the other's.
    async fn still_served(&mut self) {
        self.n += 1;
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(self.n));
        let ma = self
            .room
            .seal_message(&mut rng, format!("a{}", self.n).as_bytes())
            .expect("seal");
        let mb = self
            .room
            .seal_message(&mut rng, format!("b{}", self.n).as_bytes())
            .expect("seal");
        self.a.publish(ma.clone()).await;
        self.b.publish(mb.clone()).await;
        for (ev, want) in [(&mut self.a_ev, mb), (&mut self.b_ev, ma)] {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), ev.recv()).await {
                    Ok(Some(Event::Deliver(p))) if p == want => break,
                    Ok(Some(Event::Deliver(_) | Event::Ephemeral(_))) => {}
                    other => panic!("healthy client not served: {other:?}"),
                }
            }
        }
    }
}

/// Garbage, oversized frames (WebSocket and QUIC), floods, bad proofs and an
/// unsupported version: each gets its documented error, and the broker keeps
/// serving the other clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_each_case_gets_its_error_and_others_carry_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(
        dir.path(),
        "abuse",
        0,
        0,
        &[
            "--max-frame",
            "65536",
            "--rate",
            "50",
            "--burst",
            "50",
            "--max-strikes",
            "100",
        ],
    );
    let world = World::new(4, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let mut healthy = Healthy::start(&broker, room.clone()).await;
    healthy.still_served().await;

    // Garbage bytes: MALFORMED, then the connection is closed.
    let mut g = RawWs::connect(&broker.ws_url).await;
    g.send_bytes(b"\xff\xfe\x00 definitely not a frame".to_vec())
        .await;
    let e = g.recv().await.expect("error frame");
    assert_eq!((e.kind, e.code), (kind::ERROR, code::MALFORMED));
    assert!(g.closed().await);
    // A text message is not a frame either.
    let mut t = RawWs::connect(&broker.ws_url).await;
    t.hello().await;
    {
        use futures_util::SinkExt;
        t.ws.send(tokio_tungstenite::tungstenite::Message::Text(
            "hello?".into(),
        ))
        .await
        .expect("send");
    }
    assert_eq!(t.recv().await.expect("error").code, code::MALFORMED);
    healthy.still_served().await;

    // Garbage over a QUIC stream.
    let (qconn, mut qs, mut qr) = raw_quic(&broker).await;
    qs.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let f = read_quic_frame(&mut qr).await.expect("error frame");
    assert_eq!((f.kind, f.code), (kind::ERROR, code::MALFORMED));
    drop(qconn);

    // Oversized frame on WebSocket: FRAME_TOO_LARGE and close.
    let mut o = RawWs::connect(&broker.ws_url).await;
    o.hello().await;
    o.send_bytes(vec![0x08; 70_000]).await;
    assert_eq!(o.recv().await.expect("error").code, code::FRAME_TOO_LARGE);
    assert!(o.closed().await);
    // Oversized length prefix on QUIC: answered without reading the body.
    let (qconn, mut qs, mut qr) = raw_quic(&broker).await;
    qs.write_all(&[0x7f, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let f = read_quic_frame(&mut qr).await.expect("error frame");
    assert_eq!(f.code, code::FRAME_TOO_LARGE);
    drop(qconn);
    healthy.still_served().await;

    // Join with a bad proof: BAD_PROOF for that request; the connection stays and
    // a correct join then succeeds.
    let mut j = RawWs::connect(&broker.ws_url).await;
    let challenge = j.hello().await;
    j.send(join_frame(&room, &[0u8; 32], 7)).await;
    let e = j.recv().await.expect("error");
    assert_eq!(
        (e.kind, e.code, e.request),
        (kind::ERROR, code::BAD_PROOF, 7)
    );
    let other_room = room_of(&World::new(5, 1, CrdtKind::Yjs));
    let mut mismatched = join_frame(&other_room, &challenge, 8);
    mismatched.room_id = room.room_id().to_vec();
    j.send(mismatched).await;
    assert_eq!(j.recv().await.expect("error").code, code::BAD_PROOF);
    j.send(join_frame(&room, &challenge, 9)).await;
    let ok = j.recv().await.expect("joined");
    assert_eq!((ok.kind, ok.request), (kind::JOINED, 9));
    // Publishing to a room not joined is refused.
    j.send(BrokerFrame {
        kind: kind::PUBLISH,
        request: 10,
        room_id: other_room.room_id().to_vec(),
        payload: b"x".to_vec(),
        ..Default::default()
    })
    .await;
    assert_eq!(j.recv().await.expect("error").code, code::NOT_JOINED);
    healthy.still_served().await;

    // Unsupported version: REFUSE naming the version the broker speaks.
    let mut v = RawWs::connect(&broker.ws_url).await;
    v.send(BrokerFrame {
        kind: kind::HELLO,
        version: 2,
        ..Default::default()
    })
    .await;
    let r = v.recv().await.expect("refuse");
    assert_eq!(
        (r.kind, r.version, r.code),
        (kind::REFUSE, 1, code::UNSUPPORTED_VERSION)
    );
    assert!(v.closed().await);
    // A frame before HELLO: NOT_READY.
    let mut nr = RawWs::connect(&broker.ws_url).await;
    nr.send(join_frame(&room, &[0; 32], 1)).await;
    assert_eq!(nr.recv().await.expect("error").code, code::NOT_READY);

    // Flood over the rate limit: RATE_LIMITED, then disconnected.
    let mut fl = RawWs::connect(&broker.ws_url).await;
    fl.hello().await;
    let ping = clientful_core::wire::encode(&BrokerFrame {
        kind: kind::PING,
        ..Default::default()
    });
    // 60 frames against a bucket of 50: the first frame over the rate is answered.
    // (Read before flooding further: once the broker closes, unread data can be lost
    // to a TCP reset.)
    async fn flood(ws: &mut RawWs, frame: &[u8], n: usize) {
        use futures_util::SinkExt;
        for _ in 0..n {
            let msg = tokio_tungstenite::tungstenite::Message::Binary(frame.to_vec().into());
            if ws.ws.send(msg).await.is_err() {
                break;
            }
        }
    }
    flood(&mut fl, &ping, 60).await;
    let mut saw_rate_limited = false;
    while let Some(f) = fl.recv().await {
        if f.kind == kind::ERROR && f.code == code::RATE_LIMITED {
            saw_rate_limited = true;
            break;
        }
    }
    assert!(saw_rate_limited, "flood answered RATE_LIMITED");
    // Keeping on past max_strikes: disconnected.
    flood(&mut fl, &ping, 1000).await;
    assert!(fl.closed().await, "flooder disconnected");
    healthy.still_served().await;

    let (status, _) = http_get(broker.http, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    let (_, m) = http_get(broker.http, "/metrics").await;
    for c in [
        "malformed",
        "frame_too_large",
        "bad_proof",
        "rate_limited",
        "unsupported_version",
        "not_ready",
        "not_joined",
    ] {
        assert!(
            metric(
                &m,
                &format!("clientful_broker_rejections_total{{code=\"{c}\"}}")
            ) >= 1,
            "no {c} rejection counted"
        );
    }
    assert_capture_clean(&broker.capture, &needles(&world));
}

/// A member that stops reading is dropped once its bounded send queue is full;
/// the publisher and the other readers carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_slow_reader_is_dropped_and_others_carry_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(
        dir.path(),
        "slow",
        0,
        0,
        &[
            // Deep enough that the healthy reader, on a loaded 2-core machine, is
            // never mistaken for a slow one; 1,500 frames of 16 KiB overflow it
            // and the socket buffers of a reader that never reads.
            "--send-queue",
            "256",
            "--rate",
            "100000",
            "--burst",
            "100000",
            "--backlog",
            "0",
        ],
    );
    let world = World::new(6, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let mut healthy = Healthy::start(&broker, room.clone()).await;
    // The slow reader joins, then never reads again.
    let mut slow = RawWs::connect(&broker.ws_url).await;
    let challenge = slow.hello().await;
    slow.send(join_frame(&room, &challenge, 1)).await;
    assert_eq!(slow.recv().await.expect("joined").kind, kind::JOINED);

    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let count = 1500usize;
    for i in 0..count {
        let mut body = format!("{i:06}").into_bytes();
        body.resize(16 * 1024, b'.');
        healthy
            .a
            .publish(room.seal_message(&mut rng, &body).expect("seal"))
            .await;
    }
    // The other reader gets all of them.
    let mut got = 0usize;
    while got < count {
        match tokio::time::timeout(Duration::from_secs(30), healthy.b_ev.recv()).await {
            Ok(Some(Event::Deliver(_))) => got += 1,
            Ok(Some(_)) => {}
            other => panic!("healthy reader got {got} of {count}: {other:?}"),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = http_get(broker.http, "/metrics").await;
        if metric(&m, "clientful_broker_drops_total{reason=\"slow_reader\"}") >= 1 {
            assert!(
                metric(
                    &m,
                    "clientful_broker_rejections_total{code=\"slow_reader\"}"
                ) >= 1
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow reader never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its connection is gone: reading now drains what the socket held, then ends.
    assert!(slow.closed().await, "slow reader's connection closed");
    healthy.still_served().await;
    assert_capture_clean(&broker.capture, &needles(&world));
}

/// Ephemeral messages: relayed between members (QUIC datagram to WebSocket and back),
/// never numbered or stored; members reject a replayed or stale one with REPLAY.
/// spec: BRK-14, BRK-15, BRK-16.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_relayed_never_stored_and_replays_rejected() {
    use clientful_core::ErrorClass;
    use clientful_core::room::EphemeralReceiver;
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(dir.path(), "eph", 0, 0, &[]);
    let world = World::new(8, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let (a, mut a_ev) = RoomClient::spawn(broker.quic(), room.clone(), fast_options());
    let (b, mut b_ev) = RoomClient::spawn(broker.ws(), room.clone(), fast_options());
    wait_joined(&mut a_ev).await;
    wait_joined(&mut b_ev).await;
    let now_ms = || {
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms")
    };
    let members = world.signers();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let dev0 = world.device(0);
    let body = format!("cursor at 42: {SECRET_TEXT}");
    let m1 = room
        .seal_ephemeral(&mut rng, &dev0, 1, now_ms(), body.as_bytes())
        .expect("seal");
    async fn next_ephemeral(ev: &mut tokio::sync::mpsc::Receiver<Event>) -> Vec<u8> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ev.recv()).await {
                Ok(Some(Event::Ephemeral(p))) => return p,
                Ok(Some(_)) => {}
                other => panic!("no ephemeral message: {other:?}"),
            }
        }
    }
    let mut rx = EphemeralReceiver::new();
    a.ephemeral(m1.clone()).await;
    let got = next_ephemeral(&mut b_ev).await;
    assert_eq!(got, m1, "relayed byte for byte");
    let opened = rx
        .open(&room, &members, &got, now_ms())
        .expect("fresh and authentic");
    assert_eq!(opened.body, body.as_bytes());
    assert_eq!(opened.sender, dev0.public_bytes());
    // The same message again (a replaying broker or network): REPLAY.
    a.ephemeral(m1.clone()).await;
    let again = next_ephemeral(&mut b_ev).await;
    assert_eq!(
        rx.open(&room, &members, &again, now_ms())
            .err()
            .map(|e| e.class()),
        Some(ErrorClass::Replay)
    );
    // A stale one: REPLAY.
    let stale = room
        .seal_ephemeral(&mut rng, &dev0, 2, now_ms() - 120_000, b"old")
        .expect("seal");
    b.ephemeral(stale).await;
    let got = next_ephemeral(&mut a_ev).await;
    assert_eq!(
        EphemeralReceiver::new()
            .open(&room, &members, &got, now_ms())
            .err()
            .map(|e| e.class()),
        Some(ErrorClass::Replay)
    );
    // Never stored: a member joining with a resume cursor from 1 gets no backlog.
    let mut late = RawWs::connect(&broker.ws_url).await;
    let challenge = late.hello().await;
    let mut join = join_frame(&room, &challenge, 1);
    join.cursor = 1;
    late.send(join).await;
    let joined = late.recv().await.expect("joined");
    assert_eq!(
        (joined.kind, joined.cursor),
        (kind::JOINED, 1),
        "nothing was numbered"
    );
    assert!(late.recv_within(Duration::from_millis(500)).await.is_none());
    let (_, m) = http_get(broker.http, "/metrics").await;
    assert_eq!(metric(&m, "clientful_broker_published_total"), 0);
    a.close().await;
    b.close().await;
    assert_capture_clean(&broker.capture, &needles(&world));
}

/// A member dropped by the broker (idle TIMEOUT) reconnects to the same broker
/// instance, resumes from its cursor, and gets what was published meanwhile from
/// the backlog, exactly once. spec: BRK-8, BRK-17, BRK-19, BRK-22.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_resumes_from_the_backlog() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = spawn_broker(dir.path(), "resume", 0, 0, &["--idle-timeout", "1"]);
    let world = World::new(9, 2, CrdtKind::Yjs);
    let room = room_of(&world);
    let (a, mut a_ev) = RoomClient::spawn(broker.ws(), room.clone(), fast_options());
    // B pings too rarely for the broker's 1 s idle timeout, and waits a second before
    // reconnecting.
    let slow_pinger = ClientOptions {
        backoff_base: Duration::from_millis(1500),
        backoff_max: Duration::from_millis(2000),
        keepalive: Duration::from_secs(30),
    };
    let (b, mut b_ev) = RoomClient::spawn(broker.quic(), room.clone(), slow_pinger);
    wait_joined(&mut a_ev).await;
    wait_joined(&mut b_ev).await;
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let seal = |rng: &mut ChaCha20Rng, s: &str| room.seal_message(rng, s.as_bytes()).expect("seal");
    let first = seal(&mut rng, "before");
    a.publish(first.clone()).await;
    let mut got = Vec::new();
    let mut saw_timeout = false;
    // B receives the first message, then is dropped for idleness.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), b_ev.recv()).await {
            Ok(Some(Event::Deliver(p))) => got.push(p),
            Ok(Some(Event::Error(c))) => saw_timeout |= c.code() == code::TIMEOUT,
            Ok(Some(Event::Disconnected)) => break,
            other => panic!("expected a disconnect: {other:?}"),
        }
    }
    assert!(saw_timeout, "the broker said TIMEOUT");
    let missed: Vec<Vec<u8>> = (0..3)
        .map(|i| seal(&mut rng, &format!("missed {i}")))
        .collect();
    for m in &missed {
        a.publish(m.clone()).await;
    }
    let resumed = loop {
        match tokio::time::timeout(Duration::from_secs(10), b_ev.recv()).await {
            Ok(Some(Event::Joined { resumed })) => break resumed,
            Ok(Some(Event::Deliver(p))) => got.push(p),
            Ok(Some(_)) => {}
            other => panic!("B did not rejoin: {other:?}"),
        }
    };
    assert!(resumed, "same broker instance: resumed from the backlog");
    while got.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(10), b_ev.recv()).await {
            Ok(Some(Event::Deliver(p))) => got.push(p),
            Ok(Some(_)) => {}
            other => panic!("B got {} of 4: {other:?}", got.len()),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(e) = b_ev.try_recv() {
        if let Event::Deliver(p) = e {
            got.push(p);
        }
    }
    let mut want = vec![first];
    want.extend(missed);
    assert_eq!(got, want, "every message once, in order");
    a.close().await;
    b.close().await;
    assert_capture_clean(&broker.capture, &needles(&world));
}

/// SIGTERM: connected clients get SHUTTING_DOWN, the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_tells_clients_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut broker = spawn_broker(dir.path(), "term", 0, 0, &[]);
    let mut c = RawWs::connect(&broker.ws_url).await;
    c.hello().await;
    let (status, _) = http_get(broker.http, "/healthz").await;
    assert!(status.contains("200"));
    let exit = tokio::task::spawn_blocking(move || {
        let s = broker.terminate();
        (s, broker)
    });
    let f = c.recv().await.expect("shutdown notice");
    assert_eq!((f.kind, f.code), (kind::ERROR, code::SHUTTING_DOWN));
    let (status, _broker) = exit.await.expect("join");
    assert!(status.success(), "exit status {status}");
}

/// Whether a QUIC handshake with `pin` to the broker at `addr` succeeds.
async fn quic_handshake(addr: std::net::SocketAddr, pin: [u8; 32]) -> bool {
    let mut ep = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("endpoint");
    ep.set_default_client_config(
        clientful_net::transport::quic_client_config(pin).expect("config"),
    );
    let ok = match ep.connect(addr, "localhost") {
        Ok(connecting) => tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .is_ok_and(|r| r.is_ok()),
        Err(_) => false,
    };
    ep.close(0u32.into(), b"done");
    ok
}

/// The QUIC pin is the SHA-256 of the certificate's SubjectPublicKeyInfo: the
/// printed pin is that hash, a client pinning it connects, a certificate re-issued
/// over the same key (certificate file removed, key kept) keeps the pin and the
/// old pin still connects, and a new key changes the pin and the old pin fails.
/// spec: BRK-20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_pin_is_the_key_hash_and_survives_reissue() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = dir.path().join("cert-pin.pem");
    let key = dir.path().join("key-pin.pem");
    let mut first = spawn_broker(dir.path(), "pin", 0, 0, &[]);
    let pin = first.pin;
    let der = |path: &std::path::Path| -> Vec<u8> {
        let pem = std::fs::read_to_string(path).expect("cert pem");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&b64)
    };
    let first_der = der(&cert);
    assert_eq!(
        clientful_broker::pin::spki_sha256(&first_der).expect("spki"),
        pin,
        "the printed pin is the SPKI hash of the certificate on disk"
    );
    assert_ne!(
        clientful_core::suite::sha256(&first_der),
        pin,
        "not the whole-certificate hash"
    );
    assert!(quic_handshake(first.quic, pin).await, "pinned key accepted");
    let mut wrong = pin;
    wrong[0] ^= 1;
    assert!(
        !quic_handshake(first.quic, wrong).await,
        "another pin refused"
    );
    first.terminate();

    // Re-issue: keep the key, drop the certificate.
    std::fs::remove_file(&cert).expect("remove cert");
    let mut reissued = spawn_broker(dir.path(), "pin", 0, 0, &[]);
    let second_der = der(&cert);
    assert_ne!(second_der, first_der, "a new certificate");
    assert_eq!(reissued.pin, pin, "same key, same pin");
    assert!(
        quic_handshake(reissued.quic, pin).await,
        "old pin still accepted"
    );
    reissued.terminate();

    // A new key: the old pin no longer matches.
    std::fs::remove_file(&cert).expect("remove cert");
    std::fs::remove_file(&key).expect("remove key");
    let rekeyed = spawn_broker(dir.path(), "pin", 0, 0, &[]);
    assert_ne!(rekeyed.pin, pin, "new key, new pin");
    assert!(!quic_handshake(rekeyed.quic, pin).await, "old pin refused");
    assert!(
        quic_handshake(rekeyed.quic, rekeyed.pin).await,
        "new pin accepted"
    );
}

/// Standard base64 (PEM bodies), without padding checks.
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

async fn raw_quic(
    broker: &BrokerProc,
) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let mut ep = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("endpoint");
    ep.set_default_client_config(
        clientful_net::transport::quic_client_config(broker.pin).expect("config"),
    );
    let conn = ep
        .connect(broker.quic, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let (s, r) = conn.open_bi().await.expect("stream");
    (conn, s, r)
}

async fn read_quic_frame(r: &mut quinn::RecvStream) -> Option<BrokerFrame> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    tokio::time::timeout(Duration::from_secs(5), r.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    clientful_broker::frame::decode_raw(&buf, usize::MAX).ok()
}
