//! Broker fan-out, QUIC against WebSocket, and broker memory.
//!
//! **Fan-out.** One room, 16 clients, every message carrying 100 bytes of
//! application content, each server a child process pinned to core 0
//! ([`crate::servers`]); the load generator is this process, pinned to core 1, on a
//! single-threaded tokio runtime (one Rust client per connection: tokio-tungstenite
//! or quinn). Each client carries the content the way its server expects:
//!
//! - *Clientful broker*: the clients join a real room (room credentials derived from
//!   a space epoch, join proof over the broker's challenge) and publish the content
//!   sealed as a room message (`RoomCredentials::seal_message`, 140 bytes) in
//!   PUBLISH frames with a request id (the broker ACKs each); receivers decode the
//!   DELIVER frame with the client session and open the sealed message.
//! - *y-websocket*: each client holds a yrs document (its own client id) and inserts
//!   the content as 100 characters at the end of a shared text; the update (Yjs v1)
//!   goes out as y-websocket's sync protocol update message (messageSync 0,
//!   messageYjsUpdate 2). The server applies every update to its Y.Doc and sends the
//!   resulting update to every connection of the document, the sender included
//!   (only deliveries to the other 15 count).
//! - *bare*: the 100 bytes as one binary message.
//!
//! The last 24 bytes of the content are ASCII hex (sender, send time), so receivers
//! can count deliveries from others and measure latency from send to receive.
//!
//! *Saturation*: the senders publish round robin as fast as a window allows (at most
//! [`Sizes::window`] deliveries outstanding, counted by the receivers), and
//! delivered messages per second (summed over receivers) are counted over a
//! measured interval after a warm-up. *Latency*: the senders publish at a fixed rate
//! (paced every millisecond) of half y-websocket's saturation rate, and every
//! delivery's send-to-receive time is recorded. Each round runs every server once,
//! the order reversed every other round; figures are medians over rounds.
//!
//! **Memory.** A fresh broker child: RSS before and after opening idle connections
//! that each join one room, then after one connection joins many rooms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clientful_broker::frame::kind;
use clientful_core::keys::EpochKey;
use clientful_core::room::RoomCredentials;
use clientful_net::session::{ClientSession, Output, Resume};
use clientful_proto::v1::BrokerFrame;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use yrs::{Text, Transact};

use crate::servers::{Kind, Server};
use crate::stats::median;

/// Sizes of the fan-out and memory runs.
pub struct Sizes {
    /// Rounds (each runs every server once).
    pub rounds: usize,
    /// Clients in the room.
    pub clients: usize,
    /// Application bytes per message.
    pub content: usize,
    /// Warm-up before each measured interval.
    pub warmup: Duration,
    /// Measured interval.
    pub measure: Duration,
    /// Deliveries outstanding at saturation.
    pub window: u64,
    /// Idle connections for the memory figure.
    pub mem_conns: usize,
    /// Idle rooms for the memory figure.
    pub mem_rooms: usize,
}

/// A target of the fan-out runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// y-websocket's server, raw Yjs updates.
    YWebsocket,
    /// The Clientful broker over WebSocket.
    BrokerWs,
    /// The bare broadcast server.
    Bare,
    /// The Clientful broker over QUIC.
    BrokerQuic,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::YWebsocket => "y-websocket",
            Target::BrokerWs => "Clientful WS",
            Target::Bare => "bare WS",
            Target::BrokerQuic => "Clientful QUIC",
        }
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum Tx {
    Ws(SplitSink<WsStream, Message>),
    Quic(quinn::SendStream),
}

enum Rx {
    Ws(SplitStream<WsStream>),
    Quic(quinn::RecvStream),
}

impl Tx {
    async fn send(&mut self, frame: Vec<u8>) -> Result<()> {
        match self {
            Tx::Ws(s) => s.send(Message::Binary(Bytes::from(frame))).await?,
            Tx::Quic(s) => {
                let mut b = Vec::with_capacity(frame.len() + 4);
                b.extend_from_slice(&u32::try_from(frame.len())?.to_be_bytes());
                b.extend_from_slice(&frame);
                s.write_all(&b).await?;
            }
        }
        Ok(())
    }
}

impl Rx {
    async fn next(&mut self) -> Result<Option<Bytes>> {
        match self {
            Rx::Ws(s) => loop {
                match s.next().await {
                    Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                    Some(Ok(Message::Close(_))) | None => return Ok(None),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                }
            },
            Rx::Quic(s) => {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).await.is_err() {
                    return Ok(None);
                }
                let len = u32::from_be_bytes(len) as usize;
                if len > clientful_net::session::CLIENT_MAX_FRAME {
                    bail!("oversized frame");
                }
                let mut buf = vec![0u8; len];
                s.read_exact(&mut buf).await?;
                Ok(Some(Bytes::from(buf)))
            }
        }
    }
}

/// Makes the frames a client sends.
enum Maker {
    Clientful {
        framer: ClientSession,
        room: Arc<RoomCredentials>,
        rng: Box<ChaCha20Rng>,
        request: u32,
    },
    Yjs {
        doc: yrs::Doc,
        text: yrs::TextRef,
        len: u32,
    },
    Bare,
}

impl Maker {
    fn frame(&mut self, content: &[u8]) -> Result<Vec<u8>> {
        match self {
            Maker::Clientful {
                framer,
                room,
                rng,
                request,
            } => {
                *request = request.wrapping_add(1).max(1);
                let sealed = room
                    .seal_message(rng.as_mut(), content)
                    .map_err(|e| anyhow!("seal: {e}"))?;
                Ok(framer.publish(*request, &sealed))
            }
            Maker::Yjs { doc, text, len } => {
                let s = std::str::from_utf8(content)?;
                let mut txn = doc.transact_mut();
                text.insert(&mut txn, *len, s);
                *len += u32::try_from(s.len())?;
                let update = txn.encode_update_v1();
                // y-protocols: varUint messageSync (0), varUint messageYjsUpdate (2),
                // varUint8Array update.
                let mut m = Vec::with_capacity(update.len() + 8);
                m.extend_from_slice(&[0, 2]);
                write_var_uint(&mut m, update.len() as u64);
                m.extend_from_slice(&update);
                Ok(m)
            }
            Maker::Bare => Ok(content.to_vec()),
        }
    }
}

fn write_var_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads received frames.
enum Reader {
    Clientful {
        session: ClientSession,
        room: Arc<RoomCredentials>,
    },
    Yjs,
    Bare,
}

const MARK: usize = 24;

/// The content of one message: filler, then (sender, time) in hex.
fn content(len: usize, sender: u32, t_ns: u64) -> Vec<u8> {
    let mut c = vec![b'x'; len.saturating_sub(MARK)];
    c.extend_from_slice(format!("{sender:08x}{t_ns:016x}").as_bytes());
    c
}

fn parse_mark(m: &[u8]) -> Option<(u32, u64)> {
    let s = std::str::from_utf8(m).ok()?;
    let sender = u32::from_str_radix(s.get(..8)?, 16).ok()?;
    let t = u64::from_str_radix(s.get(8..MARK)?, 16).ok()?;
    Some((sender, t))
}

impl Reader {
    /// The (sender, send time) of every message in a received frame. `light`: only
    /// count (saturation runs, where the load generator must stay cheaper than the
    /// server): a Clientful DELIVER is recognised by its first field (kind 9, never
    /// sent to its publisher) and not decoded or opened; the bare server never echoes.
    fn read(&mut self, frame: &[u8], light: bool, out: &mut Vec<(u32, u64)>) -> Result<()> {
        match self {
            Reader::Clientful { .. } if light => {
                if frame.get(..2) == Some(&[0x08, kind::DELIVER as u8]) {
                    out.push((u32::MAX, 0));
                }
            }
            Reader::Bare if light => out.push((u32::MAX, 0)),
            Reader::Clientful { session, room } => {
                let mut outs = Vec::new();
                session.handle(frame, &mut outs)?;
                for o in outs {
                    if let Output::Deliver { payload, .. } = o {
                        let plain = room
                            .open_message(&payload)
                            .map_err(|e| anyhow!("open: {e}"))?;
                        let mark = plain
                            .get(plain.len().saturating_sub(MARK)..)
                            .and_then(parse_mark)
                            .ok_or_else(|| anyhow!("no mark"))?;
                        out.push(mark);
                    }
                }
            }
            Reader::Yjs => {
                // Only updates (0, 2); the server's sync step 1 and awareness are not
                // messages of the load. The text ends the update's structs; the
                // update ends with an empty delete set (one byte).
                if frame.len() > MARK + 3 && frame.get(..2) == Some(&[0, 2]) {
                    let end = frame.len() - 1;
                    let mark = frame
                        .get(end - MARK..end)
                        .and_then(parse_mark)
                        .ok_or_else(|| anyhow!("no mark in a Yjs update"))?;
                    out.push(mark);
                }
            }
            Reader::Bare => {
                let mark = frame
                    .get(frame.len().saturating_sub(MARK)..)
                    .and_then(parse_mark)
                    .ok_or_else(|| anyhow!("no mark"))?;
                out.push(mark);
            }
        }
        Ok(())
    }
}

/// One connected client.
struct Client {
    tx: Tx,
    rx: Rx,
    maker: Maker,
    reader: Reader,
}

fn room_credentials(seed: u8) -> Result<RoomCredentials> {
    RoomCredentials::derive(
        &[seed; 32],
        &EpochKey::new([seed ^ 0x5a; 32], [seed ^ 0xa5; 32]),
    )
    .map_err(|e| anyhow!("room: {e}"))
}

async fn connect_ws(url: &str) -> Result<(Tx, Rx)> {
    // TCP_NODELAY, as the Clientful client sets it.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let (sink, stream) = ws.split();
    Ok((Tx::Ws(sink), Rx::Ws(stream)))
}

/// One quinn client endpoint shared by the QUIC clients of a run.
fn quic_endpoint(pin: [u8; 32]) -> Result<quinn::Endpoint> {
    let mut e = quinn::Endpoint::client(([127, 0, 0, 1], 0).into())?;
    e.set_default_client_config(clientful_net::transport::quic_client_config(pin)?);
    Ok(e)
}

/// HELLO, WELCOME, JOIN with the proof, JOINED.
async fn join(tx: &mut Tx, rx: &mut Rx, session: &mut ClientSession) -> Result<()> {
    tx.send(session.start()).await?;
    while !session.is_joined() {
        let f = rx
            .next()
            .await?
            .ok_or_else(|| anyhow!("closed while joining"))?;
        let mut out = Vec::new();
        session.handle(&f, &mut out)?;
        for o in out {
            match o {
                Output::Send(b) => tx.send(b).await?,
                Output::Error { code, .. } => bail!("broker error {code} while joining"),
                _ => {}
            }
        }
    }
    Ok(())
}

async fn connect(
    target: Target,
    server: &Server,
    quic: Option<&quinn::Endpoint>,
    room: &Arc<RoomCredentials>,
    doc_name: &str,
    index: u32,
    run: u32,
) -> Result<Client> {
    match target {
        Target::BrokerWs | Target::BrokerQuic => {
            let (mut tx, mut rx) = if target == Target::BrokerWs {
                connect_ws(&server.url(doc_name)).await?
            } else {
                let (addr, _) = server.quic.ok_or_else(|| anyhow!("no QUIC address"))?;
                let e = quic.ok_or_else(|| anyhow!("no QUIC endpoint"))?;
                let conn = e.connect(addr, "localhost")?.await?;
                let (s, r) = conn.open_bi().await?;
                (Tx::Quic(s), Rx::Quic(r))
            };
            let mut session = ClientSession::new(room.clone(), Resume::default());
            join(&mut tx, &mut rx, &mut session).await?;
            Ok(Client {
                tx,
                rx,
                maker: Maker::Clientful {
                    framer: ClientSession::new(room.clone(), Resume::default()),
                    room: room.clone(),
                    rng: Box::new(ChaCha20Rng::seed_from_u64(u64::from(index))),
                    request: 0,
                },
                reader: Reader::Clientful {
                    session,
                    room: room.clone(),
                },
            })
        }
        Target::YWebsocket => {
            let (tx, rx) = connect_ws(&server.url(doc_name)).await?;
            let doc = yrs::Doc::with_client_id(u64::from(run) * 1000 + u64::from(index) + 1);
            let text = doc.get_or_insert_text("t");
            Ok(Client {
                tx,
                rx,
                maker: Maker::Yjs { doc, text, len: 0 },
                reader: Reader::Yjs,
            })
        }
        Target::Bare => {
            let (tx, rx) = connect_ws(&server.url(doc_name)).await?;
            Ok(Client {
                tx,
                rx,
                maker: Maker::Bare,
                reader: Reader::Bare,
            })
        }
    }
}

/// How the senders publish.
#[derive(Clone, Copy)]
enum Load {
    /// As fast as the window allows.
    Saturate,
    /// This many publishes per second in total.
    Rate(f64),
}

#[derive(Default)]
struct Shared {
    delivered: AtomicU64,
    outstanding: AtomicU64,
    bad: AtomicU64,
    recording: AtomicBool,
    stop: AtomicBool,
    latencies: std::sync::Mutex<Vec<u64>>,
    wake: Notify,
}

/// What one run measured.
struct RunResult {
    rate: f64,
    latencies: Vec<u64>,
    server_cpu: f64,
    client_cpu: f64,
    frame_bytes: usize,
}

struct Servers {
    broker: Server,
    bare: Server,
    ywebsocket: Option<Server>,
}

impl Servers {
    fn of(&self, t: Target) -> Option<&Server> {
        match t {
            Target::BrokerWs | Target::BrokerQuic => Some(&self.broker),
            Target::Bare => Some(&self.bare),
            Target::YWebsocket => self.ywebsocket.as_ref(),
        }
    }
}

async fn run_once(
    target: Target,
    server: &Server,
    sizes: &Sizes,
    load: Load,
    run: u32,
    epoch: Instant,
) -> Result<RunResult> {
    let room = Arc::new(room_credentials(1)?);
    let doc_name = format!("bench-{run}");
    let quic = match (target, server.quic) {
        (Target::BrokerQuic, Some((_, pin))) => Some(quic_endpoint(pin)?),
        _ => None,
    };
    let mut clients = Vec::new();
    for i in 0..sizes.clients {
        clients.push(
            connect(
                target,
                server,
                quic.as_ref(),
                &room,
                &doc_name,
                u32::try_from(i)?,
                run,
            )
            .await?,
        );
    }
    // Let the servers' greetings (y-websocket's sync step 1) arrive first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shared = Arc::new(Shared::default());
    let others = (sizes.clients as u64).saturating_sub(1);
    let light = matches!(load, Load::Saturate);
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let me = u32::try_from(i)?;
        let Client {
            tx,
            mut rx,
            maker,
            mut reader,
        } = c;
        senders.push((tx, maker));
        let sh = shared.clone();
        let low = sizes.window / 2;
        tasks.push(tokio::task::spawn_local(async move {
            let mut marks = Vec::new();
            while let Ok(Some(f)) = rx.next().await {
                marks.clear();
                if reader.read(&f, light, &mut marks).is_err() {
                    sh.bad.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let now = epoch.elapsed().as_nanos() as u64;
                for &(sender, t) in &marks {
                    if sender == me {
                        continue;
                    }
                    sh.delivered.fetch_add(1, Ordering::Relaxed);
                    let left = sh
                        .outstanding
                        .fetch_sub(1, Ordering::Relaxed)
                        .saturating_sub(1);
                    if left <= low {
                        sh.wake.notify_one();
                    }
                    if sh.recording.load(Ordering::Relaxed)
                        && let Ok(mut l) = sh.latencies.lock()
                    {
                        l.push(now.saturating_sub(t));
                    }
                }
            }
        }));
    }
    let sh = shared.clone();
    let content_len = sizes.content;
    let window = sizes.window;
    let sender = tokio::task::spawn_local(async move {
        let n = senders.len();
        let mut next = 0usize;
        let mut sent = 0u64;
        let start = Instant::now();
        let mut bytes = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !sh.stop.load(Ordering::Relaxed) {
            let due = match load {
                Load::Saturate => {
                    if sh.outstanding.load(Ordering::Relaxed) + others > window {
                        tokio::select! {
                            _ = sh.wake.notified() => {}
                            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                        }
                        continue;
                    }
                    sent + 1
                }
                Load::Rate(r) => {
                    tick.tick().await;
                    (start.elapsed().as_secs_f64() * r) as u64
                }
            };
            while sent < due {
                let Some((tx, maker)) = senders.get_mut(next) else {
                    break;
                };
                let t = epoch.elapsed().as_nanos() as u64;
                let f = maker.frame(&content(content_len, next as u32, t))?;
                bytes = f.len();
                sh.outstanding.fetch_add(others, Ordering::Relaxed);
                tx.send(f).await?;
                sent += 1;
                next = (next + 1) % n;
            }
        }
        anyhow::Ok(bytes)
    });
    tokio::time::sleep(sizes.warmup).await;
    let self_stat = "/proc/self/stat";
    let (d0, s0, c0, t0) = (
        shared.delivered.load(Ordering::Relaxed),
        server.cpu()?,
        crate::servers::cpu_of(self_stat)?,
        Instant::now(),
    );
    shared.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(sizes.measure).await;
    shared.recording.store(false, Ordering::Relaxed);
    let (d1, s1, c1, dt) = (
        shared.delivered.load(Ordering::Relaxed),
        server.cpu()?,
        crate::servers::cpu_of(self_stat)?,
        t0.elapsed().as_secs_f64(),
    );
    shared.stop.store(true, Ordering::Relaxed);
    shared.wake.notify_one();
    let sent_bytes = match tokio::time::timeout(Duration::from_secs(2), sender).await {
        Ok(Ok(Ok(b))) => b,
        Ok(Ok(Err(e))) => return Err(e.context(format!("{} sender", target.name()))),
        Ok(Err(e)) => return Err(anyhow!("sender task: {e}")),
        Err(_) => 0,
    };
    for t in &tasks {
        t.abort();
    }
    drop(tasks);
    if let Some(q) = &quic {
        q.close(0u32.into(), b"done");
    }
    // Let the server drain and forget the connections before the next run.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let bad = shared.bad.load(Ordering::Relaxed);
    if bad > 0 {
        bail!("{}: {bad} frames could not be read", target.name());
    }
    let latencies = shared
        .latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    Ok(RunResult {
        rate: (d1 - d0) as f64 / dt,
        latencies,
        server_cpu: (s1 - s0) / dt,
        client_cpu: (c1 - c0) / dt,
        frame_bytes: sent_bytes,
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

/// Per target: the medians over rounds.
#[derive(Default, Clone)]
struct Summary {
    rates: Vec<f64>,
    server_cpu: Vec<f64>,
    client_cpu: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    frame_bytes: usize,
}

impl Summary {
    fn json(&self) -> Value {
        json!({
            "delivered_per_s": self.rates,
            "median_delivered_per_s": median(&self.rates),
            "server_cpu_cores": median(&self.server_cpu),
            "client_cpu_cores": median(&self.client_cpu),
            "latency_p50_us": self.p50_us,
            "latency_p99_us": self.p99_us,
            "median_latency_p50_us": median(&self.p50_us),
            "median_latency_p99_us": median(&self.p99_us),
            "frame_bytes": self.frame_bytes,
        })
    }
}

/// A figure of the fan-out section (the caller turns it into a table row).
pub struct Row {
    /// Name.
    pub name: String,
    /// Baseline value.
    pub baseline: f64,
    /// Candidate value.
    pub candidate: f64,
    /// Unit.
    pub unit: &'static str,
    /// Target on the ratio candidate / baseline: (at least?, bound).
    pub target: Option<(bool, f64)>,
    /// Note.
    pub note: String,
}

/// Runs the fan-out rounds; returns the rows and the details for the JSON.
pub fn fanout(sizes: &Sizes, root: &std::path::Path) -> Result<(Vec<Row>, Value)> {
    let pinned = crate::servers::have_taskset() && crate::servers::pin_self("1");
    let out = fanout_inner(sizes, root, pinned);
    if pinned {
        crate::servers::pin_self("0-1");
    }
    out
}

fn fanout_inner(sizes: &Sizes, root: &std::path::Path, pinned: bool) -> Result<(Vec<Row>, Value)> {
    let node = match crate::servers::ensure_node(root) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("fan-out: no y-websocket baseline ({e:#})");
            None
        }
    };
    let servers = Servers {
        broker: Server::spawn(Kind::Broker, None)?,
        bare: Server::spawn(Kind::Bare, None)?,
        ywebsocket: match &node {
            Some(s) => Some(Server::spawn(Kind::YWebsocket, Some(s))?),
            None => None,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let epoch = Instant::now();
    let mut targets = vec![Target::BrokerWs, Target::Bare, Target::BrokerQuic];
    if servers.ywebsocket.is_some() {
        targets.insert(0, Target::YWebsocket);
    }
    let mut sum: Vec<(Target, Summary)> =
        targets.iter().map(|t| (*t, Summary::default())).collect();
    let mut run = 0u32;
    // Saturation.
    for round in 0..sizes.rounds {
        let mut order = targets.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for t in order {
            let server = servers.of(t).ok_or_else(|| anyhow!("no server"))?;
            run += 1;
            let r = local.block_on(&rt, run_once(t, server, sizes, Load::Saturate, run, epoch))?;
            eprintln!(
                "fan-out saturation round {round} {}: {:.0} delivered/s (server {:.0}% of a core, load generator {:.0}%)",
                t.name(),
                r.rate,
                r.server_cpu * 100.0,
                r.client_cpu * 100.0
            );
            if let Some((_, s)) = sum.iter_mut().find(|(x, _)| *x == t) {
                s.rates.push(r.rate);
                s.server_cpu.push(r.server_cpu);
                s.client_cpu.push(r.client_cpu);
                s.frame_bytes = r.frame_bytes;
            }
        }
    }
    let get = |t: Target| sum.iter().find(|(x, _)| *x == t).map(|(_, s)| s.clone());
    let yws = get(Target::YWebsocket);
    let ours = get(Target::BrokerWs).unwrap_or_default();
    // Latency at half of y-websocket's saturation (or of ours without it).
    let half = 0.5
        * yws
            .as_ref()
            .map(|s| median(&s.rates))
            .unwrap_or_else(|| median(&ours.rates));
    let publish_rate = half / (sizes.clients.saturating_sub(1).max(1) as f64);
    for round in 0..sizes.rounds {
        let mut order = targets.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for t in order {
            let server = servers.of(t).ok_or_else(|| anyhow!("no server"))?;
            run += 1;
            let r = local.block_on(
                &rt,
                run_once(t, server, sizes, Load::Rate(publish_rate), run, epoch),
            )?;
            let mut l = r.latencies;
            l.sort_unstable();
            let (p50, p99) = (percentile(&l, 0.50), percentile(&l, 0.99));
            eprintln!(
                "fan-out latency round {round} {}: {:.0} delivered/s offered {:.0}, p50 {p50:.0} µs, p99 {p99:.0} µs ({} samples)",
                t.name(),
                r.rate,
                half,
                l.len()
            );
            if let Some((_, s)) = sum.iter_mut().find(|(x, _)| *x == t) {
                s.p50_us.push(p50);
                s.p99_us.push(p99);
            }
        }
    }
    let get = |t: Target| sum.iter().find(|(x, _)| *x == t).map(|(_, s)| s.clone());
    let yws = get(Target::YWebsocket);
    let ours = get(Target::BrokerWs).unwrap_or_default();
    let bare = get(Target::Bare).unwrap_or_default();
    let quic = get(Target::BrokerQuic).unwrap_or_default();
    let mut rows = Vec::new();
    let load = format!(
        "1 room, {} clients, {} B content, server on 1 core",
        sizes.clients, sizes.content
    );
    if let Some(y) = &yws {
        rows.push(Row {
            name: "fan-out Clientful WS vs y-websocket (delivered msg/s)".into(),
            baseline: median(&y.rates),
            candidate: median(&ours.rates),
            unit: "msg/s",
            target: Some((true, 3.0)),
            note: load.clone(),
        });
    }
    rows.push(Row {
        name: "fan-out Clientful WS vs bare WS broadcast (delivered msg/s)".into(),
        baseline: median(&bare.rates),
        candidate: median(&ours.rates),
        unit: "msg/s",
        target: Some((true, 0.5)),
        note: load.clone(),
    });
    rows.push(Row {
        name: "fan-out Clientful QUIC vs Clientful WS (delivered msg/s)".into(),
        baseline: median(&ours.rates),
        candidate: median(&quic.rates),
        unit: "msg/s",
        target: None,
        note: load.clone(),
    });
    let lat_note = format!("at {half:.0} delivered/s offered (half of y-websocket's saturation)");
    for (p, pick) in [("p50", 0usize), ("p99", 1)] {
        let v = |s: &Summary| median(if pick == 0 { &s.p50_us } else { &s.p99_us });
        if let Some(y) = &yws {
            rows.push(Row {
                name: format!("latency {p} Clientful WS vs y-websocket"),
                baseline: v(y),
                candidate: v(&ours),
                unit: "µs",
                target: None,
                note: lat_note.clone(),
            });
        }
        rows.push(Row {
            name: format!("latency {p} Clientful WS vs bare WS"),
            baseline: v(&bare),
            candidate: v(&ours),
            unit: "µs",
            target: None,
            note: lat_note.clone(),
        });
        rows.push(Row {
            name: format!("latency {p} Clientful QUIC vs Clientful WS"),
            baseline: v(&ours),
            candidate: v(&quic),
            unit: "µs",
            target: None,
            note: lat_note.clone(),
        });
    }
    let details = json!({
        "clients": sizes.clients,
        "content_bytes": sizes.content,
        "rounds": sizes.rounds,
        "warmup_s": sizes.warmup.as_secs_f64(),
        "measure_s": sizes.measure.as_secs_f64(),
        "window_deliveries": sizes.window,
        "pinned": { "servers_core": if servers.broker.pinned { Some(0) } else { None }, "load_generator_core": if pinned { Some(1) } else { None } },
        "latency_offered_delivered_per_s": half,
        "latency_publish_per_s": publish_rate,
        "targets": sum.iter().map(|(t, s)| (t.name().to_string(), s.json())).collect::<serde_json::Map<_, _>>(),
    });
    Ok((rows, details))
}

/// Opens `n` idle connections to `server` (the broker: each joins `room`; y-websocket:
/// to the document `doc(i)`), lets the server settle, and returns them with the RSS
/// growth.
async fn idle(
    server: &Server,
    n: usize,
    room: &Arc<RoomCredentials>,
    doc: impl Fn(usize) -> String,
) -> Result<(Vec<(Tx, Rx)>, u64)> {
    let settle = Duration::from_millis(500);
    tokio::time::sleep(settle).await;
    let before = server.rss()?;
    let mut held = Vec::new();
    for i in 0..n {
        let (mut tx, mut rx) = connect_ws(&server.url(&doc(i))).await?;
        if server.kind == Kind::Broker {
            let mut s = ClientSession::new(room.clone(), Resume::default());
            join(&mut tx, &mut rx, &mut s)
                .await
                .with_context(|| format!("idle connection {i}"))?;
        }
        held.push((tx, rx));
    }
    tokio::time::sleep(settle).await;
    Ok((held, server.rss()?.saturating_sub(before)))
}

/// RSS growth of the broker when one connection joins `m` rooms.
async fn broker_rooms(server: &Server, m: usize) -> Result<u64> {
    let room = Arc::new(room_credentials(2)?);
    let (mut tx, mut rx) = connect_ws(&server.url("")).await?;
    let mut s = ClientSession::new(room, Resume::default());
    tx.send(s.start()).await?;
    let welcome = rx.next().await?.ok_or_else(|| anyhow!("closed"))?;
    let challenge = clientful_broker::frame::decode_raw(&welcome, usize::MAX)
        .map_err(|e| anyhow!("{e}"))?
        .nonce;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss()?;
    let mut pending = 0usize;
    let answered = async |rx: &mut Rx| -> Result<()> {
        let r = rx.next().await?.ok_or_else(|| anyhow!("closed"))?;
        let f = clientful_broker::frame::decode_raw(&r, usize::MAX).map_err(|e| anyhow!("{e}"))?;
        if f.kind != kind::JOINED {
            bail!("room join refused: kind {} code {}", f.kind, f.code);
        }
        Ok(())
    };
    for i in 0..m {
        let c = room_credentials_n(i)?;
        let proof = c.join_proof(&challenge).map_err(|e| anyhow!("{e}"))?;
        let f = clientful_core::wire::encode(&BrokerFrame {
            kind: kind::JOIN,
            request: u32::try_from(i + 1)?,
            room_id: c.room_id().to_vec(),
            room_key: c.room_public_key().to_vec(),
            proof: proof.to_vec(),
            ..Default::default()
        });
        tx.send(f).await?;
        pending += 1;
        // Keep the broker's queue to this connection short.
        while pending > 256 {
            answered(&mut rx).await?;
            pending -= 1;
        }
    }
    while pending > 0 {
        answered(&mut rx).await?;
        pending -= 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(server.rss()?.saturating_sub(before))
}

/// Memory per idle connection and per idle room: fresh server children, RSS
/// (`/proc/<pid>/status` VmRSS) before and after.
pub fn memory(sizes: &Sizes, root: &std::path::Path) -> Result<(Vec<Row>, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let room = Arc::new(room_credentials(2)?);
    let (n, m) = (sizes.mem_conns, sizes.mem_rooms);
    let per = |bytes: u64, k: usize| bytes as f64 / k.max(1) as f64;
    // The broker: n connections in one room, then one connection joining m rooms.
    let broker = Server::spawn(Kind::Broker, None)?;
    let (b_conn, b_room) = rt.block_on(async {
        let (held, grow) = idle(&broker, n, &room, |_| String::new()).await?;
        let rooms = broker_rooms(&broker, m).await?;
        drop(held);
        anyhow::Ok((per(grow, n), per(rooms, m)))
    })?;
    drop(broker);
    // The bare server: n connections.
    let bare = Server::spawn(Kind::Bare, None)?;
    let bare_conn = rt.block_on(async {
        let (held, grow) = idle(&bare, n, &room, |_| String::new()).await?;
        drop(held);
        anyhow::Ok(per(grow, n))
    })?;
    drop(bare);
    // y-websocket: n connections to one document; then n connections to n new
    // documents (a room is a document there), less the connections' own cost.
    let mut y = None;
    if let Ok(script) = crate::servers::ensure_node(root) {
        let server = Server::spawn(Kind::YWebsocket, Some(&script))?;
        y = Some(rt.block_on(async {
            let (held, grow) = idle(&server, n, &room, |_| "one".into()).await?;
            let (held2, grow2) = idle(&server, n, &room, |i| format!("doc-{i}")).await?;
            drop((held, held2));
            anyhow::Ok((per(grow, n), per(grow2.saturating_sub(grow), n)))
        })?);
    }
    eprintln!(
        "memory per idle connection: broker {b_conn:.0} B, bare {bare_conn:.0} B, y-websocket {:?}; per idle room: broker {b_room:.0} B, y-websocket {:?}",
        y.map(|v| v.0.round()),
        y.map(|v| v.1.round())
    );
    let nan = f64::NAN;
    let mut rows = vec![
        Row {
            name: "memory per idle connection, Clientful broker vs y-websocket".into(),
            baseline: y.map_or(nan, |v| v.0),
            candidate: b_conn,
            unit: "B",
            target: Some((false, 1.0)),
            note: format!(
                "RSS growth over {n} WebSocket connections (broker: each joined to one room)"
            ),
        },
        Row {
            name: "memory per idle connection, Clientful broker vs bare WS".into(),
            baseline: bare_conn,
            candidate: b_conn,
            unit: "B",
            target: None,
            note: format!("RSS growth over {n} WebSocket connections"),
        },
        Row {
            name: "memory per idle room, Clientful broker vs y-websocket (empty document)".into(),
            baseline: y.map_or(nan, |v| v.1),
            candidate: b_room,
            unit: "B",
            target: None,
            note: format!(
                "broker: {m} rooms joined by one connection; y-websocket: {n} connections to {n} documents less {n} to one"
            ),
        },
    ];
    if y.is_none() {
        rows.retain(|r| !r.name.contains("y-websocket") || !r.baseline.is_nan());
    }
    let details = json!({
        "connections": n,
        "rooms": m,
        "broker_bytes_per_connection": b_conn,
        "broker_bytes_per_room": b_room,
        "bare_bytes_per_connection": bare_conn,
        "ywebsocket_bytes_per_connection": y.map(|v| v.0),
        "ywebsocket_bytes_per_document": y.map(|v| v.1),
    });
    Ok((rows, details))
}

fn room_credentials_n(i: usize) -> Result<RoomCredentials> {
    let mut space = [0u8; 32];
    for (s, b) in space.iter_mut().zip((i as u64).to_le_bytes()) {
        *s = b;
    }
    RoomCredentials::derive(&space, &EpochKey::new([7; 32], [8; 32]))
        .map_err(|e| anyhow!("room: {e}"))
}
