//! Scale (issue 19 item 4) and how cost grows (item 5): one broker under many idle
//! connections, many rooms, one large room, an active B4-sized room against
//! y-websocket's document server, brokers joined through a real NATS server, and a
//! broker killed mid-run. Every figure is a ratio of two points of one run, or a
//! curve of several points of one run ([`Curve`], drawn by [`crate::charts`]).
//!
//! Servers are child processes pinned to core 0 ([`crate::servers`]); the load
//! generator is this process, pinned to core 1, on one single-threaded tokio
//! runtime. Clients are [`crate::lightws`] connections (no per-connection buffer
//! while idle, a 2 KiB one while active). Payloads are opaque to the broker
//! (BRK-10), so the traffic figures publish 140-byte payloads (the size of a sealed
//! 100-byte room message) ending in the sender and send time, with request 0 (no
//! ACK); the failover figure runs the full client session (request ids, ACKs, an
//! outbox, resume cursors). Each phase uses its own range of loopback source
//! addresses (127.P.x.2, at most 20,000 connections per address) so that sockets
//! left in TIME_WAIT by one phase never exhaust the next phase's ports.
//!
//! The file-descriptor limit is raised for this process only (`setrlimit`, inherited
//! by the server children it starts), to what the largest point needs.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clientful_broker::frame::kind;
use clientful_core::keys::EpochKey;
use clientful_core::room::RoomCredentials;
use clientful_net::session::{ClientSession, Output, Resume};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use yrs::{Text, Transact};

use crate::fanout::Row;
use crate::lightws::{self, FrameReader};
use crate::servers::{Kind, Server};
use crate::stats::median;
use crate::trace::Patch;

/// Sizes of the scale and curve runs.
pub struct Sizes {
    /// Idle connections held at each point of the idle curve (one broker).
    pub idle: Vec<usize>,
    /// Idle QUIC connections held at each point of the QUIC idle curve (one
    /// broker; not bounded by the open-files limit: one UDP socket each side
    /// per [`QUIC_PER_ENDPOINT`] connections).
    pub idle_quic: Vec<usize>,
    /// Rooms of [`ROOM_OF`] clients at each point of the rooms curve.
    pub rooms: Vec<usize>,
    /// Clients in one room at each point of the clients-per-room curve.
    pub clients: Vec<usize>,
    /// Edits of automerge-paper at each point of the document-size curve.
    pub doc_edits: Vec<usize>,
    /// Brokers on NATS at each point of the brokers curve.
    pub brokers: Vec<usize>,
    /// Warm-up before each measured interval.
    pub warmup: Duration,
    /// Measured interval (saturation and latency each).
    pub measure: Duration,
    /// Length of the failover run (the broker is killed halfway).
    pub failover: Duration,
}

/// Clients per room on the idle and rooms curves.
pub const ROOM_OF: usize = 4;
/// Clients in the active room and in the brokers runs.
const ACTIVE_CLIENTS: usize = 16;
/// Payload bytes (a sealed 100-byte room message is 140).
const PAYLOAD: usize = 140;
/// Connections opened at once.
const CONNECT_AT_ONCE: usize = 128;
const MARK: usize = 24;

/// One curve: x, and one or more series of y.
pub struct Curve {
    /// File name stem (`docs/img/<stem>.svg`).
    pub stem: &'static str,
    /// Title.
    pub title: String,
    /// X axis.
    pub x_label: &'static str,
    /// Y axis.
    pub y_label: &'static str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Series: name and points.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl Curve {
    fn json(&self) -> Value {
        json!({
            "title": self.title,
            "x": self.x_label,
            "y": self.y_label,
            "series": self.series.iter().map(|(n, p)| json!({"name": n, "points": p})).collect::<Vec<_>>(),
        })
    }
}

fn source(phase: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, phase, u8::try_from(i / 20_000).unwrap_or(255), 2)
}

fn room_n(i: usize) -> Result<Arc<RoomCredentials>> {
    let mut space = [0x33u8; 32];
    for (s, b) in space.iter_mut().zip((i as u64).to_le_bytes()) {
        *s = b;
    }
    Ok(Arc::new(
        RoomCredentials::derive(&space, &EpochKey::new([9; 32], [10; 32]))
            .map_err(|e| anyhow!("room: {e}"))?,
    ))
}

/// Raises this process's open-files limit to `want` (soft and hard; root may raise
/// the hard limit of its own process). Returns the soft limit now in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft >= want {
        return soft;
    }
    if Resource::NOFILE.set(want, want.max(hard)).is_err() {
        let _ = Resource::NOFILE.set(hard.min(want), hard);
    }
    Resource::NOFILE.get().map_or(soft, |(s, _)| s)
}

fn self_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Connects, says HELLO, joins `room`; returns the socket once JOINED.
async fn join_light(
    server: SocketAddr,
    from: Ipv4Addr,
    path: &str,
    room: Arc<RoomCredentials>,
) -> Result<TcpStream> {
    let (s, rest) = lightws::connect(server, from, path).await?;
    anyhow::ensure!(rest.is_empty(), "the broker spoke before HELLO");
    let (r, mut w) = s.into_split();
    let mut fr = FrameReader::new(r, 512);
    let mut sess = ClientSession::new(room, Resume::default());
    lightws::send(&mut w, &sess.start()).await?;
    let mut out = Vec::new();
    while !sess.is_joined() {
        let f = fr
            .next()
            .await?
            .ok_or_else(|| anyhow!("closed while joining"))?;
        out.clear();
        sess.handle(f, &mut out)?;
        for o in out.drain(..) {
            match o {
                Output::Send(b) => lightws::send(&mut w, &b).await?,
                Output::Error { code, .. } => bail!("broker error {code:?} while joining"),
                _ => {}
            }
        }
    }
    Ok(fr.into_inner().reunite(w)?)
}

/// Connects, says HELLO and joins every room of `rooms` over the one connection
/// (JOIN frames with proofs over the WELCOME's challenge, as a client with several
/// documents open does); returns the socket once every JOINED arrived.
async fn join_rooms(
    server: SocketAddr,
    from: Ipv4Addr,
    rooms: Vec<Arc<RoomCredentials>>,
) -> Result<TcpStream> {
    use clientful_proto::v1::BrokerFrame;
    let first = rooms.first().ok_or_else(|| anyhow!("no room"))?;
    if rooms.len() == 1 {
        return join_light(server, from, "/v1/ws", first.clone()).await;
    }
    let (s, rest) = lightws::connect(server, from, "/v1/ws").await?;
    anyhow::ensure!(rest.is_empty(), "the broker spoke before HELLO");
    let (r, mut w) = s.into_split();
    let mut fr = FrameReader::new(r, 512);
    let mut sess = ClientSession::new(first.clone(), Resume::default());
    lightws::send(&mut w, &sess.start()).await?;
    let welcome = fr.next().await?.ok_or_else(|| anyhow!("closed"))?;
    let challenge = clientful_broker::frame::decode_raw(welcome, usize::MAX)
        .map_err(|e| anyhow!("{e}"))?
        .nonce;
    for (i, c) in rooms.iter().enumerate() {
        let proof = c.join_proof(&challenge).map_err(|e| anyhow!("{e}"))?;
        let f = clientful_core::wire::encode(&BrokerFrame {
            kind: kind::JOIN,
            request: u32::try_from(i + 1)?,
            room_id: c.room_id().to_vec(),
            room_key: c.room_public_key().to_vec(),
            proof: proof.to_vec(),
            ..Default::default()
        });
        lightws::send(&mut w, &f).await?;
    }
    for _ in 0..rooms.len() {
        let f = fr
            .next()
            .await?
            .ok_or_else(|| anyhow!("closed while joining"))?;
        let f = clientful_broker::frame::decode_raw(f, usize::MAX).map_err(|e| anyhow!("{e}"))?;
        if f.kind != kind::JOINED {
            bail!("room join refused: kind {} code {}", f.kind, f.code);
        }
    }
    Ok(fr.into_inner().reunite(w)?)
}

/// Opens connections `from..to` (connection `i` joins `room(i)`), at most
/// [`CONNECT_AT_ONCE`] at a time.
async fn open_many(
    server: SocketAddr,
    phase: u8,
    from: usize,
    to: usize,
    room: impl Fn(usize) -> Vec<Arc<RoomCredentials>>,
) -> Result<Vec<TcpStream>> {
    let rooms: Vec<_> = (from..to).map(|i| (i, room(i))).collect();
    // In order (`buffered`), so that socket k is connection from + k.
    let mut s = futures_util::stream::iter(rooms)
        .map(|(i, r)| async move {
            join_rooms(server, source(phase, i), r)
                .await
                .with_context(|| format!("connection {i}"))
        })
        .buffered(CONNECT_AT_ONCE);
    let mut out = Vec::with_capacity(to.saturating_sub(from));
    while let Some(c) = s.next().await {
        out.push(c?);
    }
    Ok(out)
}

// ---------------------------------------------------------------- idle

struct IdlePoint {
    conns: usize,
    broker_bytes: u64,
    client_bytes: u64,
    connect_s: f64,
}

/// One broker; connections (rooms of [`ROOM_OF`]) added up to each point; RSS of
/// the broker and of this process after each. Stops at the first failure and says
/// why.
async fn idle_curve(points: &[usize]) -> Result<(Vec<IdlePoint>, Option<String>)> {
    let broker = Server::spawn(Kind::Broker, None)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b0, c0) = (broker.rss()?, self_rss());
    let rooms: Vec<_> = (0..points.iter().max().copied().unwrap_or(0).div_ceil(ROOM_OF))
        .map(room_n)
        .collect::<Result<_>>()?;
    let mut held: Vec<TcpStream> = Vec::new();
    let mut out = Vec::new();
    let mut stopped = None;
    for &p in points {
        let t = Instant::now();
        let from = held.len();
        match open_many(broker.ws, 1, from, p, |i| {
            rooms.get(i / ROOM_OF).cloned().into_iter().collect()
        })
        .await
        {
            Ok(c) => held.extend(c),
            Err(e) => {
                stopped = Some(format!("{e:#} (after {from} connections)"));
                break;
            }
        }
        let connect_s = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let pt = IdlePoint {
            conns: p,
            broker_bytes: broker.rss()?.saturating_sub(b0),
            client_bytes: self_rss().saturating_sub(c0),
            connect_s,
        };
        eprintln!(
            "scale idle: {p} connections in {} rooms: broker +{} MB ({:.0} B each), load generator +{} MB; {:.1} s to open the last {}",
            p.div_ceil(ROOM_OF),
            pt.broker_bytes >> 20,
            pt.broker_bytes as f64 / p as f64,
            pt.client_bytes >> 20,
            connect_s,
            p - from
        );
        out.push(pt);
    }
    drop(held);
    drop(broker);
    Ok((out, stopped))
}

// ---------------------------------------------------------------- idle QUIC

/// QUIC connections per client endpoint (one UDP socket, bound to its own
/// loopback address 127.50.k.2).
pub const QUIC_PER_ENDPOINT: usize = 10_000;
/// QUIC handshakes and joins in flight at once (a bound on the bursts the UDP
/// sockets' receive buffers must absorb).
const QUIC_AT_ONCE: usize = 128;
/// Attempts per QUIC connection before the curve stops.
const QUIC_ATTEMPTS: usize = 4;
/// Time one attempt (handshake, HELLO, WELCOME, JOIN, JOINED) may take.
const QUIC_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// A curve stops (and says so) when the machine's available memory falls below this.
const MIN_AVAILABLE: u64 = 4 << 30;
/// Keep-alive of the idle QUIC clients: well inside the idle timeout (the
/// broker's 90 s: the clients offer [`QUIC_IDLE_TIMEOUT`], above it, and the
/// lower of the two applies), so connections stay up however long the curve takes.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Idle timeout the clients offer (quinn's default, 30 s, would apply otherwise).
const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// An idle QUIC client: its connection and its one stream, nothing else.
struct QuicIdle {
    conn: quinn::Connection,
    _send: quinn::SendStream,
    _recv: quinn::RecvStream,
}

/// `MemAvailable` of the machine, in bytes.
fn available_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// UDP datagrams the kernel dropped for a full receive buffer, machine-wide
/// (`RcvbufErrors` of `/proc/net/snmp`): handshake bursts the sockets could not absorb.
fn udp_rcvbuf_errors() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut udp = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A client endpoint on its own UDP socket (127.50.`k`.2), with a 4 MiB receive
/// buffer (the kernel caps it at `net.core.rmem_max`) for handshake bursts, and
/// a transport that keeps its connections alive and accepts no stream.
fn quic_client(k: usize, pin: [u8; 32]) -> Result<quinn::Endpoint> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::new(127, 50, u8::try_from(k)?, 2), 0))?;
    let state = quinn::udp::UdpSocketState::new((&sock).into())?;
    if let Err(e) = state.set_recv_buffer_size((&sock).into(), 4 << 20) {
        eprintln!("scale idle QUIC: receive buffer not raised ({e})");
    }
    let runtime = quinn::default_runtime().ok_or_else(|| anyhow!("no async runtime"))?;
    let mut e = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, sock, runtime)?;
    let mut config = clientful_net::transport::quic_client_config(pin)?;
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(QUIC_KEEP_ALIVE));
    t.max_idle_timeout(Some(QUIC_IDLE_TIMEOUT.try_into()?));
    t.max_concurrent_bidi_streams(0u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(t));
    e.set_default_client_config(config);
    Ok(e)
}

async fn quic_send(s: &mut quinn::SendStream, frame: &[u8]) -> Result<()> {
    let mut b = Vec::with_capacity(frame.len() + 4);
    b.extend_from_slice(&u32::try_from(frame.len())?.to_be_bytes());
    b.extend_from_slice(frame);
    s.write_all(&b).await?;
    Ok(())
}

async fn quic_next(r: &mut quinn::RecvStream) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    anyhow::ensure!(
        len <= clientful_net::session::CLIENT_MAX_FRAME,
        "oversized frame"
    );
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Connects over QUIC, opens the stream, says HELLO and joins `room` (JOIN with
/// the proof over the WELCOME's challenge); returns the idle client once JOINED.
async fn join_quic(
    ep: &quinn::Endpoint,
    server: SocketAddr,
    room: Arc<RoomCredentials>,
) -> Result<QuicIdle> {
    let conn = ep.connect(server, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut sess = ClientSession::new(room, Resume::default());
    quic_send(&mut send, &sess.start()).await?;
    let mut out = Vec::new();
    while !sess.is_joined() {
        let f = quic_next(&mut recv).await?;
        out.clear();
        sess.handle(&f, &mut out)?;
        for o in out.drain(..) {
            match o {
                Output::Send(b) => quic_send(&mut send, &b).await?,
                Output::Error { code, .. } => bail!("broker error {code:?} while joining"),
                _ => {}
            }
        }
    }
    Ok(QuicIdle {
        conn,
        _send: send,
        _recv: recv,
    })
}

struct QuicPoint {
    conns: usize,
    broker_bytes: u64,
    client_bytes: u64,
    connect_s: f64,
    broker_fds: usize,
    /// Failed attempts so far (each retried).
    failures: usize,
    /// Held connections found closed at this point (must be 0: idle
    /// connections stay up).
    closed: usize,
    available: u64,
    /// CPU seconds of the broker and of this process while this point's
    /// connections were opened.
    broker_cpu: f64,
    client_cpu: f64,
}

/// What the QUIC idle curve measured.
struct QuicIdleRun {
    points: Vec<QuicPoint>,
    stopped: Option<String>,
    endpoints: usize,
    failures: usize,
    seconds: f64,
    /// UDP datagrams dropped for a full receive buffer during the run.
    rcvbuf_drops: u64,
}

/// One broker; QUIC connections (rooms of [`ROOM_OF`], one client endpoint per
/// [`QUIC_PER_ENDPOINT`]) added up to each point; RSS of the broker and of this
/// process, and the broker's open descriptors, after each. A failed attempt is
/// retried (and counted) up to [`QUIC_ATTEMPTS`] times; the curve stops, saying
/// why, at a connection that still fails or when the machine's available memory
/// falls below [`MIN_AVAILABLE`].
async fn quic_idle_curve(points: &[usize]) -> Result<QuicIdleRun> {
    let started = Instant::now();
    let mut run = QuicIdleRun {
        points: Vec::new(),
        stopped: None,
        endpoints: 0,
        failures: 0,
        seconds: 0.0,
        rcvbuf_drops: 0,
    };
    if points.is_empty() {
        return Ok(run);
    }
    let broker = Server::spawn(Kind::Broker, None)?;
    let (server, pin) = broker
        .quic
        .ok_or_else(|| anyhow!("the broker has no QUIC listener"))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b0, c0) = (broker.rss()?, self_rss());
    let drops0 = udp_rcvbuf_errors();
    let max = points.iter().max().copied().unwrap_or(0);
    let rooms: Vec<_> = (0..max.div_ceil(ROOM_OF))
        .map(room_n)
        .collect::<Result<_>>()?;
    let mut endpoints: Vec<quinn::Endpoint> = Vec::new();
    let mut held: Vec<QuicIdle> = Vec::with_capacity(max);
    for &p in points {
        let t = Instant::now();
        let (bc, cc) = (broker.cpu()?, crate::servers::cpu_of("/proc/self/stat")?);
        let from = held.len();
        while endpoints.len() < p.div_ceil(QUIC_PER_ENDPOINT) {
            endpoints.push(quic_client(endpoints.len(), pin)?);
        }
        let (eps, rooms) = (&endpoints, &rooms);
        let mut s = futures_util::stream::iter(from..p)
            .map(|i| async move {
                let ep = eps
                    .get(i / QUIC_PER_ENDPOINT)
                    .ok_or_else(|| anyhow!("no endpoint"));
                let room = rooms
                    .get(i / ROOM_OF)
                    .cloned()
                    .ok_or_else(|| anyhow!("no room"));
                let (ep, room) = match (ep, room) {
                    (Ok(e), Ok(r)) => (e, r),
                    (Err(e), _) | (_, Err(e)) => return (Err(e), 0),
                };
                let mut failed = 0;
                loop {
                    let r = tokio::time::timeout(
                        QUIC_ATTEMPT_TIMEOUT,
                        join_quic(ep, server, room.clone()),
                    )
                    .await
                    .map_err(|_| anyhow!("attempt timed out"))
                    .and_then(|r| r);
                    match r {
                        Ok(c) => return (Ok(c), failed),
                        Err(e) if failed + 1 >= QUIC_ATTEMPTS => {
                            return (
                                Err(e.context(format!("connection {i}, {QUIC_ATTEMPTS} attempts"))),
                                failed + 1,
                            );
                        }
                        Err(_) => failed += 1,
                    }
                }
            })
            .buffer_unordered(QUIC_AT_ONCE);
        let mut done = 0usize;
        while let Some((c, failed)) = s.next().await {
            run.failures += failed;
            match c {
                Ok(c) => held.push(c),
                Err(e) => {
                    run.stopped = Some(format!("{e:#} (after {} connections)", held.len()));
                    break;
                }
            }
            done += 1;
            if done.is_multiple_of(1_000)
                && let Some(a) = available_memory()
                && a < MIN_AVAILABLE
            {
                run.stopped = Some(format!(
                    "available memory {} MB, below {} MB (after {} connections)",
                    a >> 20,
                    MIN_AVAILABLE >> 20,
                    held.len()
                ));
                break;
            }
        }
        drop(s);
        // A stopped point is recorded at the count actually held.
        let p = held.len();
        let connect_s = t.elapsed().as_secs_f64();
        let (broker_cpu, client_cpu) = (
            broker.cpu()? - bc,
            crate::servers::cpu_of("/proc/self/stat")? - cc,
        );
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let pt = QuicPoint {
            conns: p,
            broker_bytes: broker.rss()?.saturating_sub(b0),
            client_bytes: self_rss().saturating_sub(c0),
            connect_s,
            broker_fds: open_fds(broker.pid()),
            failures: run.failures,
            closed: held
                .iter()
                .filter(|c| c.conn.close_reason().is_some())
                .count(),
            available: available_memory().unwrap_or(0),
            broker_cpu,
            client_cpu,
        };
        eprintln!(
            "scale idle QUIC: {p} connections in {} rooms over {} client sockets: broker +{} MB ({:.0} B each, {} open fds), load generator +{} MB ({:.0} B each); {:.1} s to open the last {} (CPU per connection: broker {:.0} µs, load generator {:.0} µs; {} failed attempts, {} UDP receive-buffer drops so far; {} held connections closed); {} MB available",
            p.div_ceil(ROOM_OF),
            endpoints.len(),
            pt.broker_bytes >> 20,
            pt.broker_bytes as f64 / p as f64,
            pt.broker_fds,
            pt.client_bytes >> 20,
            pt.client_bytes as f64 / p as f64,
            connect_s,
            p - from,
            broker_cpu * 1e6 / (p - from).max(1) as f64,
            client_cpu * 1e6 / (p - from).max(1) as f64,
            run.failures,
            udp_rcvbuf_errors().saturating_sub(drops0),
            pt.closed,
            pt.available >> 20,
        );
        run.points.push(pt);
        if run.stopped.is_some() {
            break;
        }
    }
    if let Some(why) = &run.stopped {
        eprintln!("scale idle QUIC: stopped: {why}");
    }
    run.endpoints = endpoints.len();
    run.rcvbuf_drops = udp_rcvbuf_errors().saturating_sub(drops0);
    for e in &endpoints {
        e.close(0u32.into(), b"done");
    }
    drop(held);
    drop(broker);
    for e in &endpoints {
        let _ = tokio::time::timeout(Duration::from_secs(2), e.wait_idle()).await;
    }
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

// ---------------------------------------------------------------- traffic

#[derive(Default)]
struct Shared {
    delivered: AtomicU64,
    outstanding: AtomicU64,
    recording: AtomicBool,
    stop: AtomicBool,
    latencies: std::sync::Mutex<Vec<u64>>,
    wake: Notify,
    closed: AtomicU64,
}

/// Clients of a traffic run: writers (with the room each is in) and the reader
/// tasks counting DELIVER frames.
struct Crowd {
    writers: Vec<OwnedWriteHalf>,
    /// Memberships: (connection, room); publishers go round robin over them.
    pubs: Vec<(usize, usize)>,
    framers: Vec<ClientSession>,
    members: Vec<u64>,
    shared: Arc<Shared>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    epoch: Instant,
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

impl Crowd {
    fn new(epoch: Instant) -> Crowd {
        Crowd {
            writers: Vec::new(),
            pubs: Vec::new(),
            framers: Vec::new(),
            members: Vec::new(),
            shared: Arc::new(Shared::default()),
            readers: Vec::new(),
            epoch,
        }
    }

    /// Adds joined sockets; `room_of[k]` is the room index of `socks[k]`.
    fn add(&mut self, socks: Vec<TcpStream>, room_of: &[usize], rooms: &[Arc<RoomCredentials>]) {
        let memberships: Vec<Vec<usize>> = room_of.iter().map(|r| vec![*r]).collect();
        self.add_multi(socks, &memberships, rooms);
    }

    /// Adds joined sockets; `rooms_of[k]` are the room indices `socks[k]` joined.
    fn add_multi(
        &mut self,
        socks: Vec<TcpStream>,
        rooms_of: &[Vec<usize>],
        rooms: &[Arc<RoomCredentials>],
    ) {
        while self.framers.len() < rooms.len() {
            let r = rooms.get(self.framers.len()).cloned();
            if let Some(r) = r {
                self.framers.push(ClientSession::new(r, Resume::default()));
                self.members.push(0);
            }
        }
        for (s, joined) in socks.into_iter().zip(rooms_of) {
            let (r, w) = s.into_split();
            for &room in joined {
                if let Some(m) = self.members.get_mut(room) {
                    *m += 1;
                }
                self.pubs.push((self.writers.len(), room));
            }
            self.writers.push(w);
            let sh = self.shared.clone();
            let epoch = self.epoch;
            self.readers.push(tokio::task::spawn_local(async move {
                let mut fr = FrameReader::new(r, 2048);
                let deliver = [0x08u8, kind::DELIVER as u8];
                while let Ok(Some(f)) = fr.next().await {
                    if f.get(..2) != Some(&deliver[..]) {
                        continue;
                    }
                    sh.delivered.fetch_add(1, Ordering::Relaxed);
                    let left = sh
                        .outstanding
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                            Some(v.saturating_sub(1))
                        })
                        .unwrap_or(0);
                    if left <= 256 {
                        sh.wake.notify_one();
                    }
                    if sh.recording.load(Ordering::Relaxed)
                        && let Some(t) = f
                            .get(f.len().saturating_sub(MARK - 8)..)
                            .and_then(|m| std::str::from_utf8(m).ok())
                            .and_then(|m| u64::from_str_radix(m, 16).ok())
                        && let Ok(mut l) = sh.latencies.lock()
                    {
                        let now = epoch.elapsed().as_nanos() as u64;
                        l.push(now.saturating_sub(t));
                    }
                }
                sh.closed.fetch_add(1, Ordering::Relaxed);
            }));
        }
    }

    fn max_fanout(&self) -> u64 {
        self.members
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .saturating_sub(1)
    }
}

fn payload(sender: usize, t_ns: u64) -> Vec<u8> {
    let mut c = vec![b'x'; PAYLOAD - MARK];
    c.extend_from_slice(format!("{:08x}{t_ns:016x}", sender as u32).as_bytes());
    c
}

/// What one traffic measurement gave.
#[derive(Clone, Copy, Default)]
struct Traffic {
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    server_cpu: f64,
    client_cpu: f64,
}

/// Saturation (publishers round robin over every client, at most `window`
/// deliveries outstanding), then latency at half the measured saturation.
async fn traffic(crowd: &mut Crowd, servers: &[&Server], sizes: &Sizes) -> Result<Traffic> {
    let sat = measure(crowd, servers, sizes, None).await?;
    let lat = measure(crowd, servers, sizes, Some(sat.rate * 0.5)).await?;
    Ok(Traffic {
        rate: sat.rate,
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        server_cpu: sat.server_cpu,
        client_cpu: sat.client_cpu,
    })
}

/// The nats-server process while one runs: its CPU counts as the servers' (idle
/// while a run without a bus measures).
static NATS_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn cpu_sum(servers: &[&Server]) -> f64 {
    let nats = match NATS_PID.load(Ordering::Relaxed) {
        0 => 0.0,
        p => crate::servers::cpu_of(&format!("/proc/{p}/stat")).unwrap_or(0.0),
    };
    nats + servers.iter().filter_map(|s| s.cpu().ok()).sum::<f64>()
}

impl Traffic {
    /// Server CPU time per delivery at saturation, in µs (robust to other load on
    /// the machine, which lowers the rate but not the work per delivery).
    fn cpu_us(&self) -> f64 {
        if self.rate > 0.0 {
            self.server_cpu / self.rate * 1e6
        } else {
            f64::NAN
        }
    }
}

async fn measure(
    crowd: &mut Crowd,
    servers: &[&Server],
    sizes: &Sizes,
    rate: Option<f64>,
) -> Result<Traffic> {
    let sh = crowd.shared.clone();
    sh.stop.store(false, Ordering::Relaxed);
    sh.outstanding.store(0, Ordering::Relaxed);
    let window = 960u64.max(4 * crowd.max_fanout());
    let pubs = crowd.pubs.clone();
    let n = pubs.len();
    anyhow::ensure!(n > 0, "no clients");
    let mut writers = std::mem::take(&mut crowd.writers);
    let framers = std::mem::take(&mut crowd.framers);
    let members = crowd.members.clone();
    let epoch = crowd.epoch;
    let sh2 = sh.clone();
    // Deliveries per publish, by room.
    let fan = move |room: usize| members.get(room).copied().unwrap_or(1).saturating_sub(1);
    let sender = tokio::task::spawn_local(async move {
        let mut next = 0usize;
        let mut due_d = 0f64;
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut err = None;
        'run: while !sh2.stop.load(Ordering::Relaxed) {
            match rate {
                None => {
                    if sh2.outstanding.load(Ordering::Relaxed) + window / 4 > window {
                        tokio::select! {
                            _ = sh2.wake.notified() => {}
                            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                        }
                        continue;
                    }
                }
                Some(_) => {
                    tick.tick().await;
                }
            }
            let target = rate.map(|r| start.elapsed().as_secs_f64() * r);
            loop {
                if let Some(t) = target
                    && due_d >= t
                {
                    break;
                }
                // Paced too, never more than the window outstanding: when this
                // process is descheduled (a shared machine), catching up in one
                // burst would overflow the broker's send queue (1,024 frames) to a
                // receiver that was descheduled too, and the broker drops slow
                // readers. What could not be sent is skipped, not sent later.
                if target.is_some() && sh2.outstanding.load(Ordering::Relaxed) > window {
                    due_d = target.unwrap_or(due_d);
                    break;
                }
                let Some((w, room)) = pubs
                    .get(next)
                    .and_then(|&(c, room)| Some((writers.get_mut(c)?, room)))
                else {
                    break 'run;
                };
                let f = fan(room);
                let t = epoch.elapsed().as_nanos() as u64;
                let frame = framers
                    .get(room)
                    .map(|s| s.publish(0, &payload(next, t)))
                    .unwrap_or_default();
                sh2.outstanding.fetch_add(f, Ordering::Relaxed);
                if let Err(e) = lightws::send(w, &frame).await {
                    err = Some(e);
                    break 'run;
                }
                due_d += f as f64;
                next = (next + 1) % n;
                if target.is_none() {
                    break;
                }
            }
        }
        (writers, framers, err)
    });
    tokio::time::sleep(sizes.warmup).await;
    let self_stat = "/proc/self/stat";
    let (d0, s0, c0, t0) = (
        sh.delivered.load(Ordering::Relaxed),
        cpu_sum(servers),
        crate::servers::cpu_of(self_stat)?,
        Instant::now(),
    );
    if let Ok(mut l) = sh.latencies.lock() {
        l.clear();
    }
    sh.recording.store(rate.is_some(), Ordering::Relaxed);
    tokio::time::sleep(sizes.measure).await;
    sh.recording.store(false, Ordering::Relaxed);
    let (d1, s1, c1, dt) = (
        sh.delivered.load(Ordering::Relaxed),
        cpu_sum(servers),
        crate::servers::cpu_of(self_stat)?,
        t0.elapsed().as_secs_f64(),
    );
    sh.stop.store(true, Ordering::Relaxed);
    sh.wake.notify_one();
    let (writers, framers, err) = sender.await.map_err(|e| anyhow!("sender: {e}"))?;
    crowd.writers = writers;
    crowd.framers = framers;
    if let Some(e) = err {
        return Err(e.context("publishing"));
    }
    // Drain what is in flight before the next measurement.
    let until = Instant::now() + Duration::from_secs(3);
    let mut last = sh.delivered.load(Ordering::Relaxed);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sh.delivered.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let closed = sh.closed.load(Ordering::Relaxed);
    if closed > 0 {
        bail!("{closed} clients were disconnected by the broker");
    }
    let mut l = sh
        .latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    l.sort_unstable();
    Ok(Traffic {
        rate: (d1 - d0) as f64 / dt,
        p50_us: percentile(&l, 0.5),
        p99_us: percentile(&l, 0.99),
        server_cpu: (s1 - s0) / dt,
        client_cpu: (c1 - c0) / dt,
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

struct TrafficPoint {
    x: usize,
    t: Traffic,
    broker_bytes: u64,
}

/// Connections a curve opens at most: under the open-files limit of the broker
/// and of this process (20,000 on the project's machine).
fn max_conns(fds: u64) -> usize {
    usize::try_from(fds)
        .unwrap_or(usize::MAX)
        .saturating_sub(1_000)
        .max(100)
}

/// A fresh broker per point: `p` rooms of [`ROOM_OF`] members each, the members
/// spread over at most `cap` connections (a connection joins several rooms when
/// there are more memberships than connections, as a client with several
/// documents open does); traffic over every membership.
async fn rooms_curve(points: &[usize], sizes: &Sizes, cap: usize) -> Result<Vec<TrafficPoint>> {
    let mut out = Vec::new();
    for (k, &p) in points.iter().enumerate() {
        let broker = Server::spawn(Kind::Broker, None)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b0 = broker.rss()?;
        let rooms: Vec<_> = (0..p)
            .map(|i| room_n(1_000_000 + i))
            .collect::<Result<_>>()?;
        let memberships = p * ROOM_OF;
        let per_conn = memberships.div_ceil(cap.max(ROOM_OF));
        let conns = memberships.div_ceil(per_conn);
        // Membership j is connection j % conns in room j / ROOM_OF.
        let rooms_of: Vec<Vec<usize>> = (0..conns)
            .map(|c| {
                (c..memberships)
                    .step_by(conns)
                    .map(|j| j / ROOM_OF)
                    .collect()
            })
            .collect();
        let socks = open_many(broker.ws, 30 + u8::try_from(k)?, 0, conns, |c| {
            rooms_of
                .get(c)
                .map(|v| v.iter().filter_map(|&r| rooms.get(r).cloned()).collect())
                .unwrap_or_default()
        })
        .await?;
        let mut crowd = Crowd::new(Instant::now());
        crowd.add_multi(socks, &rooms_of, &rooms);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bytes = broker.rss()?.saturating_sub(b0);
        let t = traffic(&mut crowd, &[&broker], sizes).await?;
        eprintln!(
            "scale rooms: {p} rooms of {ROOM_OF} over {conns} connections: {:.0} delivered/s (broker {:.0}% of a core, load generator {:.0}%), p50 {:.0} µs p99 {:.0} µs at half; broker +{} MB",
            t.rate,
            t.server_cpu * 100.0,
            t.client_cpu * 100.0,
            t.p50_us,
            t.p99_us,
            bytes >> 20
        );
        out.push(TrafficPoint {
            x: p,
            t,
            broker_bytes: bytes,
        });
        drop(crowd);
        drop(broker);
    }
    Ok(out)
}

/// One broker, one room; clients added up to each point; traffic at each.
async fn clients_curve(points: &[usize], sizes: &Sizes) -> Result<Vec<TrafficPoint>> {
    let broker = Server::spawn(Kind::Broker, None)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b0 = broker.rss()?;
    let rooms = vec![room_n(2_000_000)?];
    let mut crowd = Crowd::new(Instant::now());
    let mut have = 0usize;
    let mut out = Vec::new();
    for &p in points {
        let socks = open_many(broker.ws, 3, have, p, |_| {
            rooms.first().cloned().into_iter().collect()
        })
        .await?;
        let room_of = vec![0usize; socks.len()];
        crowd.add(socks, &room_of, &rooms);
        have = p;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let bytes = broker.rss()?.saturating_sub(b0);
        let t = traffic(&mut crowd, &[&broker], sizes).await?;
        eprintln!(
            "scale one room: {p} clients: {:.0} delivered/s (broker {:.0}% of a core, load generator {:.0}%), p50 {:.0} µs p99 {:.0} µs at half",
            t.rate,
            t.server_cpu * 100.0,
            t.client_cpu * 100.0,
            t.p50_us,
            t.p99_us
        );
        out.push(TrafficPoint {
            x: p,
            t,
            broker_bytes: bytes,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- NATS

/// A NATS server started by `scripts/services/nats.sh` in a folder of this run.
struct Nats {
    root: std::path::PathBuf,
    dir: std::path::PathBuf,
    url: String,
    pid: Option<u32>,
}

impl Nats {
    fn start(root: &Path) -> Result<Nats> {
        let dir = std::env::temp_dir().join(format!("clientful-bench-nats-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(root.join("scripts/services/nats.sh"))
            .arg("start")
            .env("CLIENTFUL_NATS_DIR", &dir)
            .stderr(Stdio::inherit())
            .output()
            .context("scripts/services/nats.sh start")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let url = text
            .lines()
            .find_map(|l| l.strip_prefix("CLIENTFUL_NATS_URL="))
            .ok_or_else(|| anyhow!("nats.sh printed no URL"))?
            .to_string();
        let pid = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let Some(p) = pid
            && crate::servers::have_taskset()
        {
            let _ = Command::new("taskset")
                .args(["-a", "-p", "-c", "0", &p.to_string()])
                .stdout(Stdio::null())
                .status();
        }
        NATS_PID.store(pid.unwrap_or(0), Ordering::Relaxed);
        Ok(Nats {
            root: root.to_path_buf(),
            dir,
            url,
            pid,
        })
    }

    fn cpu(&self) -> f64 {
        self.pid
            .and_then(|p| crate::servers::cpu_of(&format!("/proc/{p}/stat")).ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        NATS_PID.store(0, Ordering::Relaxed);
        let _ = Command::new("bash")
            .arg(self.root.join("scripts/services/nats.sh"))
            .arg("stop")
            .env("CLIENTFUL_NATS_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn brokers_on(nats: Option<&Nats>, n: usize) -> Result<Vec<Server>> {
    (0..n)
        .map(|_| match nats {
            Some(b) => {
                Server::spawn_env(Kind::Broker, None, &[("CLIENTFUL_BENCH_NATS_URL", &b.url)])
            }
            None => Server::spawn(Kind::Broker, None),
        })
        .collect()
}

/// 16 clients of one room spread round robin over `n` brokers (on NATS, or one
/// broker without a bus when `nats` is `None`).
async fn brokers_point(nats: Option<&Nats>, n: usize, sizes: &Sizes, phase: u8) -> Result<Traffic> {
    let servers = brokers_on(nats, n)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let room = room_n(3_000_000 + usize::from(phase))?;
    let rooms = vec![room.clone()];
    let mut crowd = Crowd::new(Instant::now());
    for i in 0..ACTIVE_CLIENTS {
        let s = servers.get(i % n).ok_or_else(|| anyhow!("no broker"))?;
        let sock = join_light(s.ws, source(phase, i), "/v1/ws", room.clone()).await?;
        crowd.add(vec![sock], &[0], &rooms);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refs: Vec<&Server> = servers.iter().collect();
    let (n0, t0) = (nats.map_or(0.0, Nats::cpu), Instant::now());
    let t = traffic(&mut crowd, &refs, sizes).await?;
    let nats_cpu = (nats.map_or(0.0, Nats::cpu) - n0) / t0.elapsed().as_secs_f64();
    // (server_cpu below includes nats-server's share.)
    eprintln!(
        "scale brokers: {n} broker(s) {}: {:.0} delivered/s (brokers {:.0}% of a core, nats-server {:.0}% on average over both runs, load generator {:.0}%), p50 {:.0} µs p99 {:.0} µs at half",
        if nats.is_some() {
            "on NATS"
        } else {
            "without a bus"
        },
        t.rate,
        t.server_cpu * 100.0,
        nats_cpu * 100.0,
        t.client_cpu * 100.0,
        t.p50_us,
        t.p99_us
    );
    Ok(t)
}

// ---------------------------------------------------------------- failover

struct FailoverResult {
    clients: usize,
    published: u64,
    expected: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    moved: usize,
    rejoin_ms: Vec<f64>,
    resumed: usize,
}

/// One client of the failover run: the full session (request ids, ACKs, an outbox
/// of unacknowledged publishes sent again after every JOINED, resume cursors).
struct FoClient {
    me: usize,
    urls: Vec<SocketAddr>,
    at: usize,
    room: Arc<RoomCredentials>,
    every: Duration,
    stop_at: Instant,
    killed: Arc<std::sync::Mutex<Option<Instant>>>,
    /// Clients that joined once; publishing starts when all have (a payload
    /// published before a client first joined is not the broker's to deliver to it:
    /// a new client catches up through the sync exchange, BRK-22).
    joined: Arc<AtomicU64>,
    clients: u64,
}

struct FoOut {
    seen: HashSet<(u32, u64)>,
    dups: u64,
    published: u64,
    moved: bool,
    rejoin_ms: Option<f64>,
    resumed: bool,
}

async fn fo_client(c: FoClient) -> Result<FoOut> {
    let mut resume = Resume::default();
    let mut outbox: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut request = 0u32;
    let mut counter = 0u64;
    let mut seen = HashSet::new();
    let mut dups = 0u64;
    let mut moved = false;
    let mut rejoin_ms = None;
    let mut resumed = false;
    let mut tick = tokio::time::interval(c.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let drain_until = c.stop_at + Duration::from_secs(3);
    let mut at = c.at;
    let mut first_join_seen = false;
    'conn: loop {
        let server = *c.urls.get(at).ok_or_else(|| anyhow!("no broker"))?;
        let sock = match lightws::connect(server, source(6, c.me), "/v1/ws").await {
            Ok((s, _)) => s,
            Err(_) if Instant::now() < drain_until => {
                at = (at + 1) % c.urls.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue 'conn;
            }
            Err(e) => return Err(e),
        };
        let (r, mut w) = sock.into_split();
        let mut fr = FrameReader::new(r, 2048);
        let mut sess = ClientSession::new(c.room.clone(), resume.clone());
        lightws::send(&mut w, &sess.start()).await?;
        let mut out = Vec::new();
        loop {
            let now = Instant::now();
            if now >= drain_until
                || (now >= c.stop_at
                    && outbox.is_empty()
                    && now >= c.stop_at + Duration::from_millis(1500))
            {
                break 'conn;
            }
            tokio::select! {
                f = fr.next() => {
                    let f = match f {
                        Ok(Some(f)) => f,
                        _ => {
                            // The broker is gone: move to the next one.
                            resume = sess.resume().clone();
                            at = (at + 1) % c.urls.len();
                            moved = true;
                            continue 'conn;
                        }
                    };
                    out.clear();
                    sess.handle(f, &mut out)?;
                    for o in out.drain(..) {
                        match o {
                            Output::Send(b) => lightws::send(&mut w, &b).await?,
                            Output::Joined { resumed: r } => {
                                if !first_join_seen {
                                    first_join_seen = true;
                                    c.joined.fetch_add(1, Ordering::Relaxed);
                                }
                                if moved && rejoin_ms.is_none() {
                                    let k = c.killed.lock().ok().and_then(|k| *k);
                                    rejoin_ms = k.map(|k| k.elapsed().as_secs_f64() * 1000.0);
                                    resumed = r;
                                }
                                for (req, p) in &outbox {
                                    lightws::send(&mut w, &sess.publish(*req, p)).await?;
                                }
                            }
                            Output::Deliver { payload, .. } => {
                                let mark = payload
                                    .get(payload.len().saturating_sub(MARK)..)
                                    .and_then(|m| std::str::from_utf8(m).ok())
                                    .and_then(|m| {
                                        Some((
                                            u32::from_str_radix(m.get(..8)?, 16).ok()?,
                                            u64::from_str_radix(m.get(8..)?, 16).ok()?,
                                        ))
                                    })
                                    .ok_or_else(|| anyhow!("no mark"))?;
                                if !seen.insert(mark) {
                                    dups += 1;
                                }
                            }
                            Output::Acked(req) => outbox.retain(|(r, _)| *r != req),
                            Output::Error { code, .. } => bail!("broker error {code:?}"),
                            Output::Ephemeral(_) | Output::Refused { .. } => {}
                        }
                    }
                }
                _ = tick.tick(), if Instant::now() < c.stop_at
                    && c.joined.load(Ordering::Relaxed) >= c.clients => {
                    counter += 1;
                    request = request.wrapping_add(1).max(1);
                    let mut p = vec![b'x'; PAYLOAD - MARK];
                    p.extend_from_slice(format!("{:08x}{counter:016x}", c.me as u32).as_bytes());
                    if sess.is_joined() {
                        lightws::send(&mut w, &sess.publish(request, &p)).await?;
                    }
                    outbox.push((request, p));
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
    Ok(FoOut {
        seen,
        dups,
        published: counter,
        moved,
        rejoin_ms,
        resumed,
    })
}

/// Three brokers on NATS, clients spread over them publishing at a steady rate;
/// the first broker is killed halfway; its clients move to the next one and resume.
async fn failover(nats: &Nats, sizes: &Sizes) -> Result<FailoverResult> {
    let mut servers = brokers_on(Some(nats), 3)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let urls: Vec<SocketAddr> = servers.iter().map(|s| s.ws).collect();
    let room = room_n(4_000_000)?;
    let clients = 12usize;
    let start = Instant::now();
    let stop_at = start + sizes.failover;
    let killed = Arc::new(std::sync::Mutex::new(None));
    let joined = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for me in 0..clients {
        tasks.push(tokio::task::spawn_local(fo_client(FoClient {
            me,
            urls: urls.clone(),
            at: me % 3,
            room: room.clone(),
            every: Duration::from_millis(25),
            stop_at,
            killed: killed.clone(),
            joined: joined.clone(),
            clients: clients as u64,
        })));
    }
    tokio::time::sleep(sizes.failover / 2).await;
    if let Some(s) = servers.first_mut() {
        s.kill();
    }
    if let Ok(mut k) = killed.lock() {
        *k = Some(Instant::now());
    }
    eprintln!(
        "scale failover: broker 0 killed at {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let mut outs = Vec::new();
    for t in tasks {
        outs.push(t.await.map_err(|e| anyhow!("client task: {e}"))??);
    }
    let published: Vec<u64> = outs.iter().map(|o| o.published).collect();
    let total: u64 = published.iter().sum();
    let (mut expected, mut received, mut lost) = (0u64, 0u64, 0u64);
    let mut lost_examples = Vec::new();
    for (me, o) in outs.iter().enumerate() {
        for (s, &n) in published.iter().enumerate() {
            if s == me {
                continue;
            }
            expected += n;
            for c in 1..=n {
                if o.seen.contains(&(s as u32, c)) {
                    received += 1;
                } else {
                    lost += 1;
                    if lost_examples.len() < 32 {
                        let moved = |k: usize| outs.get(k).is_some_and(|o| o.moved);
                        // (receiver, sender, counter, publish time in ms, receiver moved, sender moved)
                        lost_examples.push((me, s, c, c * 25, moved(me), moved(s)));
                    }
                }
            }
        }
    }
    let r = FailoverResult {
        clients,
        published: total,
        expected,
        received,
        lost,
        duplicates: outs.iter().map(|o| o.dups).sum(),
        moved: outs.iter().filter(|o| o.moved).count(),
        rejoin_ms: outs.iter().filter_map(|o| o.rejoin_ms).collect(),
        resumed: outs.iter().filter(|o| o.moved && o.resumed).count(),
    };
    eprintln!(
        "scale failover: {} published, {} of {} expected deliveries received, {} lost, {} duplicates; {} clients moved ({} resumed the shared stream), rejoin {:?} ms",
        r.published, r.received, r.expected, r.lost, r.duplicates, r.moved, r.resumed, r.rejoin_ms
    );
    if !lost_examples.is_empty() {
        eprintln!(
            "scale failover: lost (receiver, sender, counter, about ms after start, receiver moved, sender moved): {lost_examples:?}"
        );
    }
    Ok(r)
}

// ---------------------------------------------------------------- active room

/// The Yjs updates of the first `n` edits of the trace, one per batch of 64 edits
/// (each the update of its own transaction, as a provider sends it).
fn yjs_batches(patches: &[Patch], n: usize) -> Vec<Vec<u8>> {
    let doc = crate::pipeline::ydoc(1);
    let text = doc.get_or_insert_text("text");
    let mut out = Vec::new();
    for chunk in patches
        .get(..n.min(patches.len()))
        .unwrap_or(patches)
        .chunks(64)
    {
        let mut txn = doc.transact_mut();
        for p in chunk {
            if p.1 > 0 {
                text.remove_range(&mut txn, p.0 as u32, p.1 as u32);
            }
            if !p.2.is_empty() {
                text.insert(&mut txn, p.0 as u32, &p.2);
            }
        }
        out.push(txn.encode_update_v1());
    }
    out
}

/// Updates in flight to each receiver in the active room (a room of people typing
/// has a few, not a flood).
const ACTIVE_IN_FLIGHT: u64 = 16;

/// RSS growth of a fresh server after 16 clients joined one room (the broker) or
/// one document (y-websocket) and one of them sent every update, each delivered to
/// the others. The server is first warmed up by another room of 16 clients that
/// sends the first 64 updates and leaves, so that the growth counts what the room
/// holds rather than the first use of the allocator and the runtime.
async fn active_room(
    server_kind: Kind,
    script: Option<&Path>,
    updates: &[Vec<u8>],
    phase: u8,
) -> Result<u64> {
    let server = Server::spawn(server_kind, script)?;
    let warm = drive(&server, phase, 0, updates.get(..64).unwrap_or(updates)).await?;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = server.rss()?;
    let held = drive(&server, phase, 1, updates).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let grow = server.rss()?.saturating_sub(before);
    drop(held);
    Ok(grow)
}

/// Clients of one active room, held until dropped.
struct Held {
    _writers: Vec<OwnedWriteHalf>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Connects 16 clients to room (or document) `which`; client 0 sends `updates`,
/// at most [`ACTIVE_IN_FLIGHT`] ahead of the receivers; returns once all arrived.
async fn drive(server: &Server, phase: u8, which: usize, updates: &[Vec<u8>]) -> Result<Held> {
    let server_kind = server.kind;
    let room = room_n(5_000_000 + 2 * usize::from(phase) + which)?;
    let received = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for i in 0..ACTIVE_CLIENTS {
        let from = source(phase, i + which * ACTIVE_CLIENTS);
        let (sock, rest) = match server_kind {
            Kind::Broker => (
                join_light(server.ws, from, "/v1/ws", room.clone()).await?,
                Vec::new(),
            ),
            _ => lightws::connect(server.ws, from, &format!("/b4-{phase}-{which}")).await?,
        };
        let (r, w) = sock.into_split();
        writers.push(w);
        let rc = received.clone();
        let counts = i > 0;
        readers.push(tokio::task::spawn_local(async move {
            let mut fr = FrameReader::with_prefix(r, 2048, &rest);
            while let Ok(Some(f)) = fr.next().await {
                let is_update = f.get(..2) == Some(&[0x08, kind::DELIVER as u8][..])
                    || f.get(..2) == Some(&[0, 2][..]);
                if counts && is_update {
                    rc.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let framer = ClientSession::new(room.clone(), Resume::default());
    let mut rng =
        <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(7);
    let others = (ACTIVE_CLIENTS - 1) as u64;
    let w = writers.first_mut().ok_or_else(|| anyhow!("no client"))?;
    for (k, u) in updates.iter().enumerate() {
        let frame = match server_kind {
            Kind::Broker => {
                let sealed = room
                    .seal_message(&mut rng, u)
                    .map_err(|e| anyhow!("seal: {e}"))?;
                framer.publish(0, &sealed)
            }
            _ => {
                // y-protocols: messageSync (0), messageYjsUpdate (2), the update.
                let mut m = Vec::with_capacity(u.len() + 8);
                m.extend_from_slice(&[0, 2]);
                let mut v = u.len() as u64;
                while v >= 0x80 {
                    m.push((v as u8 & 0x7f) | 0x80);
                    v >>= 7;
                }
                m.push(v as u8);
                m.extend_from_slice(u);
                m
            }
        };
        lightws::send(w, &frame).await?;
        let sent = (k as u64 + 1) * others;
        while received.load(Ordering::Relaxed) + ACTIVE_IN_FLIGHT * others < sent {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let want = updates.len() as u64 * others;
    let until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < want && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = received.load(Ordering::Relaxed);
    anyhow::ensure!(
        got >= want,
        "{}: {got} of {want} updates delivered",
        server_kind.name()
    );
    Ok(Held {
        _writers: writers,
        readers,
    })
}

// ---------------------------------------------------------------- the section

/// Runs every part; returns the table rows, the details and the curves.
pub fn run(sizes: &Sizes, root: &Path, patches: &[Patch]) -> Result<(Vec<Row>, Value, Vec<Curve>)> {
    let pinned = crate::servers::have_taskset() && crate::servers::pin_self("1");
    let out = run_inner(sizes, root, patches);
    if pinned {
        crate::servers::pin_self("0-1");
    }
    out
}

fn run_inner(
    sizes: &Sizes,
    root: &Path,
    patches: &[Patch],
) -> Result<(Vec<Row>, Value, Vec<Curve>)> {
    let want_fds = (sizes.idle.iter().max().copied().unwrap_or(0) as u64 + 4_096)
        .max(sizes.rooms.iter().max().copied().unwrap_or(0) as u64 * ROOM_OF as u64 + 4_096);
    let fds = raise_fd_limit(want_fds);
    eprintln!("scale: open-files limit {fds} (wanted {want_fds})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let mut rows = Vec::new();
    let mut curves = Vec::new();
    let mut details = serde_json::Map::new();
    details.insert("open_files_limit".into(), json!(fds));

    // CLIENTFUL_BENCH_SCALE_PARTS=idle,quic,rooms,clients,active,nats runs only those
    // parts (for profiling one of them).
    let parts = std::env::var("CLIENTFUL_BENCH_SCALE_PARTS").ok();
    let part = |p: &str| parts.as_ref().is_none_or(|v| v.split(',').any(|x| x == p));
    // Idle connections.
    // Idle points above what the open-files limit lets one broker hold are replaced
    // by the largest count it can hold.
    let cap = usize::try_from(fds)
        .unwrap_or(usize::MAX)
        .saturating_sub(300);
    let mut idle_points: Vec<usize> = sizes.idle.iter().copied().filter(|&p| p <= cap).collect();
    if sizes.idle.iter().any(|&p| p > cap) {
        idle_points.push(cap);
    }
    if !part("idle") {
        idle_points.clear();
    }
    let none: &[usize] = &[];
    let (idle, stopped) = local.block_on(&rt, idle_curve(&idle_points))?;
    if let (Some(first), Some(last)) = (idle.first(), idle.last()) {
        let per = |p: &IdlePoint| p.broker_bytes as f64 / p.conns.max(1) as f64;
        rows.push(Row {
            name: format!(
                "scale: broker memory per idle connection at {} vs at {} connections",
                last.conns, first.conns
            ),
            baseline: per(first),
            candidate: per(last),
            unit: "B",
            target: None,
            note: format!(
                "RSS growth; rooms of {ROOM_OF}; largest count held {} (open-files limit {fds}, which this process may not raise above its hard limit){}",
                last.conns,
                stopped
                    .as_ref()
                    .map(|s| format!(", stopped: {s}"))
                    .unwrap_or_default()
            ),
        });
        // The load generator's own RSS per connection is in the JSON and the chart only:
        // after other sections its allocator reuses freed memory, so it reads 0.
    }
    // Idle QUIC connections: no descriptor each, so past the open-files limit.
    let quic = local.block_on(
        &rt,
        quic_idle_curve(if part("quic") { &sizes.idle_quic } else { none }),
    )?;
    let per_q = |p: &QuicPoint| p.broker_bytes as f64 / p.conns.max(1) as f64;
    if let Some(last) = quic.points.last() {
        let ws = idle.last();
        rows.push(Row {
            name: format!(
                "scale: broker memory per idle connection, {} QUIC vs {} WebSocket",
                last.conns,
                ws.map_or(0, |w| w.conns)
            ),
            baseline: ws.map_or(f64::NAN, |w| w.broker_bytes as f64 / w.conns.max(1) as f64),
            candidate: per_q(last),
            unit: "B",
            target: None,
            note: format!(
                "RSS growth of one broker; rooms of {ROOM_OF}, each client joined (HELLO, WELCOME, JOIN with the proof); broker {} open fds at {} QUIC connections (one UDP socket), the load generator {} client sockets and {:.0} B per connection; {} failed attempts (retried), {} UDP datagrams dropped for a full receive buffer; QUIC part {:.0} s{}. WebSocket is held to {} by the open-files limit {fds}",
                last.broker_fds,
                last.conns,
                quic.endpoints,
                last.client_bytes as f64 / last.conns.max(1) as f64,
                quic.failures,
                quic.rcvbuf_drops,
                quic.seconds,
                quic.stopped
                    .as_ref()
                    .map(|s| format!(", stopped: {s}"))
                    .unwrap_or_default(),
                ws.map_or(0, |w| w.conns),
            ),
        });
    }
    details.insert(
        "idle_quic".into(),
        json!({
            "points": quic.points.iter().map(|p| json!({"connections": p.conns, "broker_bytes": p.broker_bytes, "load_generator_bytes": p.client_bytes, "connect_s": p.connect_s, "broker_open_fds": p.broker_fds, "failed_attempts_so_far": p.failures, "held_connections_closed": p.closed, "available_bytes": p.available, "broker_cpu_s": p.broker_cpu, "load_generator_cpu_s": p.client_cpu})).collect::<Vec<_>>(),
            "stopped": quic.stopped,
            "client_endpoints": quic.endpoints,
            "failed_attempts": quic.failures,
            "udp_receive_buffer_drops": quic.rcvbuf_drops,
            "seconds": quic.seconds,
        }),
    );

    curves.push(Curve {
        stem: "scale-idle-connections",
        title: "Broker memory per idle connection, WebSocket and QUIC".into(),
        x_label: "idle connections (rooms of 4)",
        y_label: "bytes per connection (RSS growth)",
        log_x: true,
        series: vec![
            (
                "Clientful broker, WebSocket".into(),
                idle.iter()
                    .map(|p| {
                        (
                            p.conns as f64,
                            p.broker_bytes as f64 / p.conns.max(1) as f64,
                        )
                    })
                    .collect(),
            ),
            (
                "Clientful broker, QUIC".into(),
                quic.points
                    .iter()
                    .map(|p| (p.conns as f64, per_q(p)))
                    .collect(),
            ),
            (
                "load generator (lightws clients)".into(),
                idle.iter()
                    .map(|p| {
                        (
                            p.conns as f64,
                            p.client_bytes as f64 / p.conns.max(1) as f64,
                        )
                    })
                    .collect(),
            ),
            (
                "load generator (quinn clients)".into(),
                quic.points
                    .iter()
                    .map(|p| {
                        (
                            p.conns as f64,
                            p.client_bytes as f64 / p.conns.max(1) as f64,
                        )
                    })
                    .collect(),
            ),
        ],
    });
    details.insert(
        "idle".into(),
        json!({
            "points": idle.iter().map(|p| json!({"connections": p.conns, "broker_bytes": p.broker_bytes, "load_generator_bytes": p.client_bytes, "connect_s": p.connect_s})).collect::<Vec<_>>(),
            "stopped": stopped,
        }),
    );

    // Rooms.
    let rooms = local.block_on(
        &rt,
        rooms_curve(
            if part("rooms") { &sizes.rooms } else { none },
            sizes,
            max_conns(fds),
        ),
    )?;
    // Clients per room.
    let clients = local.block_on(
        &rt,
        clients_curve(
            if part("clients") {
                &sizes.clients
            } else {
                none
            },
            sizes,
        ),
    )?;
    let at = |v: &[TrafficPoint], x: usize| v.iter().find(|p| p.x == x).map(|p| p.t);
    if let (Some(one), Some(last)) = (rooms.first(), rooms.last()) {
        rows.push(Row {
            name: format!(
                "scale: {} rooms of {ROOM_OF} vs {} room(s), delivered msg/s",
                last.x, one.x
            ),
            baseline: one.t.rate,
            candidate: last.t.rate,
            unit: "msg/s",
            target: None,
            note: "one broker on one core; publishers round robin over every client".into(),
        });
        rows.push(Row {
            name: format!(
                "scale: {} rooms of {ROOM_OF} vs {} room(s), broker CPU per delivery",
                last.x, one.x
            ),
            baseline: one.t.cpu_us(),
            candidate: last.t.cpu_us(),
            unit: "µs",
            target: None,
            note: "CPU time of the broker over the saturation interval / deliveries".into(),
        });
        rows.push(Row {
            name: format!(
                "scale: {} rooms of {ROOM_OF} vs {} room(s), p99 at half saturation",
                last.x, one.x
            ),
            baseline: one.t.p99_us,
            candidate: last.t.p99_us,
            unit: "µs",
            target: None,
            note: format!(
                "broker memory per room (4 clients) at {} rooms: {:.0} B",
                last.x,
                last.broker_bytes as f64 / last.x.max(1) as f64
            ),
        });
    }
    if let (Some(base), Some(last)) = (at(&clients, 16), clients.last()) {
        rows.push(Row {
            name: format!(
                "scale: one room of {} vs 16 clients, delivered msg/s",
                last.x
            ),
            baseline: base.rate,
            candidate: last.t.rate,
            unit: "msg/s",
            target: None,
            note: "one broker on one core".into(),
        });
        rows.push(Row {
            name: format!(
                "scale: one room of {} vs 16 clients, broker CPU per delivery",
                last.x
            ),
            baseline: base.cpu_us(),
            candidate: last.t.cpu_us(),
            unit: "µs",
            target: None,
            note: "CPU time of the broker over the saturation interval / deliveries".into(),
        });
        rows.push(Row {
            name: format!(
                "scale: one room of {} vs 16 clients, p99 at half saturation",
                last.x
            ),
            baseline: base.p99_us,
            candidate: last.t.p99_us,
            unit: "µs",
            target: None,
            note: format!("p50 {:.0} µs vs {:.0} µs", last.t.p50_us, base.p50_us),
        });
    }
    let traffic_curves = |v: &[TrafficPoint],
                          stem_rate: &'static str,
                          stem_lat: &'static str,
                          stem_cost: &'static str,
                          what: &str,
                          x_label: &'static str,
                          out: &mut Vec<Curve>| {
        out.push(Curve {
            stem: stem_rate,
            title: format!("Delivered messages per second, {what}"),
            x_label,
            y_label: "delivered msg/s (broker on one core)",
            log_x: true,
            series: vec![(
                "Clientful broker".into(),
                v.iter().map(|p| (p.x as f64, p.t.rate)).collect(),
            )],
        });
        out.push(Curve {
            stem: stem_cost,
            title: format!("Broker CPU per delivery at saturation, {what}"),
            x_label,
            y_label: "µs of broker CPU per delivered message",
            log_x: true,
            series: vec![(
                "Clientful broker".into(),
                v.iter().map(|p| (p.x as f64, p.t.cpu_us())).collect(),
            )],
        });
        out.push(Curve {
            stem: stem_lat,
            title: format!("Latency at half saturation, {what}"),
            x_label,
            y_label: "µs from send to delivery",
            log_x: true,
            series: vec![
                (
                    "p50".into(),
                    v.iter().map(|p| (p.x as f64, p.t.p50_us)).collect(),
                ),
                (
                    "p99".into(),
                    v.iter().map(|p| (p.x as f64, p.t.p99_us)).collect(),
                ),
            ],
        });
    };
    traffic_curves(
        &rooms,
        "scale-rooms-throughput",
        "scale-rooms-latency",
        "scale-rooms-cpu",
        "rooms of 4 clients",
        "rooms",
        &mut curves,
    );
    traffic_curves(
        &clients,
        "scale-clients-throughput",
        "scale-clients-latency",
        "scale-clients-cpu",
        "one room",
        "clients in the room",
        &mut curves,
    );
    let tp_json = |v: &[TrafficPoint]| {
        v.iter()
            .map(|p| json!({"x": p.x, "delivered_per_s": p.t.rate, "p50_us": p.t.p50_us, "p99_us": p.t.p99_us, "server_cpu": p.t.server_cpu, "server_cpu_us_per_delivery": p.t.cpu_us(), "load_generator_cpu": p.t.client_cpu, "broker_bytes": p.broker_bytes}))
            .collect::<Vec<_>>()
    };
    details.insert("rooms".into(), json!(tp_json(&rooms)));
    details.insert("clients_per_room".into(), json!(tp_json(&clients)));

    // Active room against y-websocket, by document size.
    let script = crate::servers::ensure_node(root).ok();
    let mut doc_points = Vec::new();
    let doc_edits = if part("active") {
        &sizes.doc_edits[..]
    } else {
        none
    };
    let all = yjs_batches(patches, doc_edits.iter().max().copied().unwrap_or(0));
    for (k, &n) in doc_edits.iter().enumerate() {
        let upd = all.get(..n.div_ceil(64)).unwrap_or(&all);
        let phase = 10 + 2 * u8::try_from(k)?;
        let b = local.block_on(&rt, active_room(Kind::Broker, None, upd, phase))?;
        let y = match &script {
            Some(s) => {
                Some(local.block_on(&rt, active_room(Kind::YWebsocket, Some(s), upd, phase + 1))?)
            }
            None => None,
        };
        let bytes: usize = upd.iter().map(Vec::len).sum();
        eprintln!(
            "scale active room: {n} edits ({} updates, {bytes} B): broker +{} KB, y-websocket +{:?} KB",
            upd.len(),
            b >> 10,
            y.map(|y| y >> 10)
        );
        doc_points.push((n, upd.len(), bytes, b, y));
    }
    if let Some(&(n, m, _, b, Some(y))) = doc_points.last() {
        rows.push(Row {
            name: format!(
                "scale: memory of an active room, 16 clients, {n} edits{}, Clientful broker vs y-websocket",
                if n >= patches.len() { " (B4: the whole trace)" } else { "" }
            ),
            baseline: y as f64,
            candidate: b as f64,
            unit: "B",
            target: Some((false, 0.1)),
            note: format!("{n} edits of automerge-paper as {m} updates; RSS growth of a fresh server (anchors G11)"),
        });
    }
    curves.push(Curve {
        stem: "scale-document-size",
        title: "Memory of one active room (16 clients) by document size".into(),
        x_label: "edits of automerge-paper sent through the room",
        y_label: "server RSS growth (bytes)",
        log_x: false,
        series: vec![
            (
                "Clientful broker".into(),
                doc_points
                    .iter()
                    .map(|p| (p.0 as f64, p.3 as f64))
                    .collect(),
            ),
            (
                "y-websocket".into(),
                doc_points
                    .iter()
                    .filter_map(|p| p.4.map(|y| (p.0 as f64, y as f64)))
                    .collect(),
            ),
        ],
    });
    details.insert(
        "active_room".into(),
        json!(doc_points.iter().map(|p| json!({"edits": p.0, "updates": p.1, "update_bytes": p.2, "broker_bytes": p.3, "ywebsocket_bytes": p.4})).collect::<Vec<_>>()),
    );

    // Brokers on NATS, and failover.
    match if part("nats") {
        Nats::start(root)
    } else {
        Err(anyhow!("not asked for"))
    } {
        Ok(nats) => {
            let single = local.block_on(&rt, brokers_point(None, 1, sizes, 20))?;
            let mut pts = Vec::new();
            for (k, &n) in sizes.brokers.iter().enumerate() {
                let t = local.block_on(
                    &rt,
                    brokers_point(Some(&nats), n, sizes, 21 + u8::try_from(k)?),
                )?;
                pts.push((n, t));
            }
            if let Some((n, t)) = pts.last() {
                rows.push(Row {
                    name: format!("scale: {n} brokers on NATS vs one broker without a bus, delivered msg/s"),
                    baseline: single.rate,
                    candidate: t.rate,
                    unit: "msg/s",
                    target: None,
                    note: "1 room, 16 clients spread round robin; every broker and nats-server on core 0; shared JetStream backlog (memory)".into(),
                });
                rows.push(Row {
                    name: format!("scale: {n} brokers on NATS vs one broker without a bus, server CPU per delivery"),
                    baseline: single.cpu_us(),
                    candidate: t.cpu_us(),
                    unit: "µs",
                    target: None,
                    note: "CPU time of every broker and nats-server over the saturation interval / deliveries".into(),
                });
                rows.push(Row {
                    name: format!("scale: {n} brokers on NATS vs one broker without a bus, p99 at half saturation"),
                    baseline: single.p99_us,
                    candidate: t.p99_us,
                    unit: "µs",
                    target: None,
                    note: format!("p50 {:.0} µs vs {:.0} µs", t.p50_us, single.p50_us),
                });
            }
            curves.push(Curve {
                stem: "scale-brokers-cpu",
                title: "Server CPU per delivery, one room of 16 clients over brokers on NATS"
                    .into(),
                x_label: "brokers",
                y_label: "µs of broker + nats-server CPU per delivery",
                log_x: false,
                series: vec![
                    (
                        "brokers on NATS".into(),
                        pts.iter().map(|(n, t)| (*n as f64, t.cpu_us())).collect(),
                    ),
                    ("one broker, no bus".into(), vec![(1.0, single.cpu_us())]),
                ],
            });
            curves.push(Curve {
                stem: "scale-brokers",
                title: "One room of 16 clients spread over brokers on NATS".into(),
                x_label: "brokers",
                y_label: "delivered msg/s (all servers on one core)",
                log_x: false,
                series: vec![
                    (
                        "brokers on NATS".into(),
                        pts.iter().map(|(n, t)| (*n as f64, t.rate)).collect(),
                    ),
                    ("one broker, no bus".into(), vec![(1.0, single.rate)]),
                ],
            });
            details.insert(
                "brokers".into(),
                json!({
                    "single_without_bus": {"delivered_per_s": single.rate, "p50_us": single.p50_us, "p99_us": single.p99_us, "server_cpu": single.server_cpu, "server_cpu_us_per_delivery": single.cpu_us()},
                    "on_nats": pts.iter().map(|(n, t)| json!({"brokers": n, "delivered_per_s": t.rate, "p50_us": t.p50_us, "p99_us": t.p99_us, "server_cpu": t.server_cpu, "server_cpu_us_per_delivery": t.cpu_us(), "load_generator_cpu": t.client_cpu})).collect::<Vec<_>>(),
                }),
            );
            let f = local.block_on(&rt, failover(&nats, sizes))?;
            rows.push(Row {
                name: "scale: broker killed mid-run, deliveries received vs expected".into(),
                baseline: f.expected as f64,
                candidate: f.received as f64,
                unit: "msgs",
                target: Some((true, 1.0)),
                note: format!(
                    "3 brokers on NATS, {} clients, {} publishes; {} lost, {} duplicates; {} clients moved ({} resumed the shared stream), rejoined after {:.0} ms (median)",
                    f.clients,
                    f.published,
                    f.lost,
                    f.duplicates,
                    f.moved,
                    f.resumed,
                    median(&f.rejoin_ms)
                ),
            });
            details.insert(
                "failover".into(),
                json!({"clients": f.clients, "published": f.published, "expected": f.expected, "received": f.received, "lost": f.lost, "duplicates": f.duplicates, "moved": f.moved, "resumed": f.resumed, "rejoin_ms": f.rejoin_ms}),
            );
        }
        Err(e) => eprintln!("scale: no NATS server, brokers and failover skipped ({e:#})"),
    }
    let details = Value::Object(details);
    let details = json!({"parts": details, "curves": curves.iter().map(|c| (c.stem.to_string(), c.json())).collect::<serde_json::Map<_, _>>()});
    Ok((rows, details, curves))
}
