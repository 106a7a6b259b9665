//! The tokio shell around [`crate::state::Broker`] (from `clientful-broker-proto`):
//! one process serving WebSocket
//! (axum, with `/healthz` and `/metrics` on the same HTTP listener) and QUIC
//! (quinn), carrying out the state machine's actions over bounded per-connection
//! queues, with optional NATS fan-out, frame capture and graceful shutdown.

pub mod bus;
pub mod capture;
pub mod guard;
pub mod quic;
pub mod tls;
pub mod ws;
pub mod wss;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::frame::ErrorCode;
use crate::state::{Action, Broker, BusMessage, ConnId, Limits};

/// Everything `clientful broker` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listener: WebSocket at `/v1/ws`, `/healthz`, `/metrics`.
    pub ws_listen: SocketAddr,
    /// QUIC listener (UDP).
    pub quic_listen: SocketAddr,
    /// PEM certificate for QUIC (generated if absent).
    pub cert: Option<PathBuf>,
    /// PEM key for QUIC (generated if absent).
    pub key: Option<PathBuf>,
    /// TLS for the HTTP/WebSocket listener (`wss://`): PEM certificate chain and
    /// key, both read at start. None: plain `ws://`.
    pub ws_tls: Option<WsTls>,
    /// Limits enforced per connection.
    pub limits: Limits,
    /// Frames queued per connection before it counts as a slow reader.
    pub send_queue: usize,
    /// Bytes queued per connection before it counts as a slow reader (BRK-LIM-5);
    /// never below twice the frame limit.
    pub send_queue_bytes: usize,
    /// Connection admission: caps, per-address limits, handshake timeouts
    /// (BRK-LIM-7).
    pub admission: guard::AdmissionLimits,
    /// NATS server URL for fan-out between brokers. With a non-zero backlog, the
    /// backlog is kept in NATS JetStream and shared by the brokers (BRK-22).
    pub nats_url: Option<String>,
    /// JetStream storage of the shared backlog.
    pub nats_storage: bus::BacklogStorage,
    /// Age after which JetStream drops shared backlog entries (zero: never).
    pub nats_backlog_max_age: Duration,
    /// Capture file.
    pub capture: Option<PathBuf>,
    /// Seconds to let connections drain at shutdown.
    pub shutdown_grace: Duration,
}

/// A connection's sending half as the shell sees it.
pub(crate) enum Out {
    Frame(Bytes),
    /// Close after the frames queued before, for this reason.
    Close(CloseReason),
}

/// Why the shell closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// After a fatal error sent to the client (BRK-18).
    Error(ErrorCode),
    /// The broker itself failed (WebSocket 1011).
    Internal,
}

/// The refusal log's period: at most one line per period, and a refusal is logged
/// within about one period.
const LOG_PERIOD_MS: u64 = 1_000;

/// The WebSocket close status for an [`Out::Close`] reason (BRK-18).
pub(crate) fn close_status(why: CloseReason) -> u16 {
    match why {
        CloseReason::Internal => 1011,
        CloseReason::Error(code) => code.websocket_close(),
    }
}

/// Bytes and frames queued on one connection; the writer gives them back as it
/// sends, and the global count with them.
#[derive(Default)]
pub(crate) struct Queued {
    bytes: AtomicUsize,
    frames: AtomicUsize,
}

impl Queued {
    /// The writer sent a frame of `len` bytes.
    pub(crate) fn sent(&self, shared: &Shared, len: usize) {
        let _ = self
            .frames
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1));
        if self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(len))
            .is_ok()
        {
            shared.queued.fetch_sub(len, Ordering::AcqRel);
        }
    }
}

pub(crate) struct Handle {
    tx: mpsc::UnboundedSender<Out>,
    queued: Arc<Queued>,
    kill: Arc<Notify>,
    /// QUIC connections get ephemeral frames as datagrams when they fit.
    datagram: Option<quinn::Connection>,
    carrier: u8,
}

/// Counters only the shell sees.
#[derive(Default)]
pub(crate) struct ShellStats {
    ws_connections: AtomicU64,
    quic_connections: AtomicU64,
    slow_reader_drops: AtomicU64,
    bus_in: AtomicU64,
    bus_out: AtomicU64,
    bus_drops: AtomicU64,
    queue_budget_drops: AtomicU64,
}

/// State shared by every task of the server.
pub(crate) struct Shared {
    broker: Mutex<Broker>,
    handles: Mutex<HashMap<ConnId, Handle>>,
    next_id: AtomicU64,
    start: Instant,
    send_queue: usize,
    send_queue_bytes: usize,
    memory_budget: usize,
    /// Bytes queued on every connection together.
    queued: AtomicUsize,
    capture: Option<capture::Capture>,
    bus: Option<bus::Bus>,
    stats: ShellStats,
    max_frame: usize,
    admission: Arc<guard::Admission>,
    /// When refusals were last logged, and the counters then.
    refusal_log: Mutex<(Instant, HashMap<ErrorCode, u64>, u64)>,
    /// Wakes the timer task when the state machine's next deadline moved
    /// earlier than the one it sleeps towards.
    timer: Notify,
    /// The deadline the timer task sleeps towards (`u64::MAX`: none).
    armed: AtomicU64,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable; a zero challenge would still be
    // unique per connection only by luck, so refuse to run instead.
    if getrandom::fill(&mut b).is_err() {
        tracing::error!("OS random number generator failed");
        std::process::abort();
    }
    b
}

impl Shared {
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a connection; returns its id, queue receiver, queue gauge and
    /// kill switch.
    pub(crate) fn register(
        &self,
        carrier: u8,
        datagram: Option<quinn::Connection>,
    ) -> (
        ConnId,
        mpsc::UnboundedReceiver<Out>,
        Arc<Queued>,
        Arc<Notify>,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        // Unbounded as a channel, bounded by the byte and frame counts checked
        // before every send (BRK-LIM-5); a close always fits.
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(Queued::default());
        let kill = Arc::new(Notify::new());
        if let Ok(mut h) = self.handles.lock() {
            h.insert(
                id,
                Handle {
                    tx,
                    queued: queued.clone(),
                    kill: kill.clone(),
                    datagram,
                    carrier,
                },
            );
        }
        self.step(|b, out| {
            b.open(id, random(), self.now_ms());
            if b.is_shutting_down() {
                b.shutdown(out);
            }
        });
        (id, rx, queued, kill)
    }

    /// A carrier-level control message (WebSocket ping or pong) on `conn`.
    pub(crate) fn on_control(&self, conn: ConnId) {
        self.step(|b, out| {
            b.control(conn, self.now_ms(), out);
        });
    }

    /// A frame arrived on `conn`.
    pub(crate) fn on_frame(&self, conn: ConnId, carrier: u8, bytes: &[u8], datagram: bool) {
        if let Some(c) = &self.capture {
            c.record(b'I', carrier, conn, bytes);
        }
        self.step(|b, out| {
            b.frame(conn, bytes, datagram, self.now_ms(), out);
        });
    }

    /// A QUIC length prefix over the limit.
    pub(crate) fn on_oversized(&self, conn: ConnId) {
        self.step(|b, out| {
            b.oversized(conn, out);
        });
    }

    /// The connection's tasks ended.
    pub(crate) fn on_closed(&self, conn: ConnId) {
        if let Ok(mut h) = self.handles.lock()
            && let Some(handle) = h.remove(&conn)
        {
            let left = handle.queued.bytes.swap(0, Ordering::AcqRel);
            self.queued.fetch_sub(left, Ordering::AcqRel);
            let counter = if handle.carrier == b'W' {
                &self.stats.ws_connections
            } else {
                &self.stats.quic_connections
            };
            counter.fetch_sub(1, Ordering::Relaxed);
        }
        self.step(|b, out| {
            b.close(conn, out);
        });
    }

    pub(crate) fn opened(&self, carrier: u8) {
        let counter = if carrier == b'W' {
            &self.stats.ws_connections
        } else {
            &self.stats.quic_connections
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A payload from the bus (another broker's, or with a shared backlog any
    /// broker's, this one's included).
    pub(crate) fn on_bus_message(&self, m: BusMessage) {
        if m.sender.is_none() {
            self.stats.bus_in.fetch_add(1, Ordering::Relaxed);
        }
        self.step(|b, out| {
            b.bus_message(m, out);
        });
    }

    /// A payload the bus could not take or store.
    pub(crate) fn on_bus_drop(&self) {
        self.stats.bus_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one step of the state machine and carries out its actions while still
    /// holding the broker lock, so every connection's queue receives frames in the
    /// order the state machine produced them (sequence numbers never overtake).
    pub(crate) fn step(&self, f: impl FnOnce(&mut Broker, &mut Vec<Action>)) {
        let Ok(mut b) = self.broker.lock() else {
            // A poisoned broker cannot serve anyone: close every connection with
            // an internal error (WebSocket 1011).
            if let Ok(h) = self.handles.lock() {
                for handle in h.values() {
                    let _ = handle.tx.send(Out::Close(CloseReason::Internal));
                }
            }
            return;
        };
        b.set_queued_bytes(self.queued.load(Ordering::Acquire));
        let mut out = Vec::new();
        f(&mut b, &mut out);
        self.dispatch(&mut b, out);
        self.log_refusals(&b);
        let armed = self.armed.load(Ordering::Acquire);
        let earlier = b.poll_timeout().is_some_and(|t| t < armed);
        let log_due =
            armed > self.now_ms().saturating_add(LOG_PERIOD_MS) && self.refusals_unlogged(&b);
        if earlier || log_due {
            self.timer.notify_one();
        }
    }

    /// The timer task: sleeps until the state machine's next deadline
    /// ([`Broker::poll_timeout`]) and wakes it then ([`Broker::handle_timeout`]);
    /// a step that arms an earlier deadline wakes this task to sleep again. While
    /// refusals wait to be logged it also wakes within a second, for the log.
    async fn run_timers(&self) {
        loop {
            let (next, unlogged) = match self.broker.lock() {
                Ok(b) => (b.poll_timeout(), self.refusals_unlogged(&b)),
                Err(_) => return,
            };
            let now = self.now_ms();
            let mut wake_at = next;
            if unlogged {
                let log_at = now.saturating_add(LOG_PERIOD_MS);
                wake_at = Some(wake_at.map_or(log_at, |t| t.min(log_at)));
            }
            self.armed
                .store(wake_at.unwrap_or(u64::MAX), Ordering::Release);
            match wake_at.map(|at| at.saturating_sub(now)) {
                Some(0) => {}
                Some(ms) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                        _ = self.timer.notified() => continue,
                    }
                }
                None => {
                    self.timer.notified().await;
                    continue;
                }
            }
            let now = self.now_ms();
            self.step(|b, out| b.handle_timeout(now, out));
        }
    }

    /// Whether refusals or evictions happened since the last log line.
    fn refusals_unlogged(&self, b: &Broker) -> bool {
        let Ok(last) = self.refusal_log.lock() else {
            return false;
        };
        let stats = b.stats();
        stats.backlog_evicted != last.2
            || stats
                .rejections
                .iter()
                .any(|(c, n)| last.1.get(c).copied().unwrap_or(0) != *n)
    }

    /// At most once a second: one log line with the protocol refusals (ERROR
    /// codes) and backlog evictions since the last line, so every refusal is
    /// logged without a flood of lines.
    fn log_refusals(&self, b: &Broker) {
        let Ok(mut last) = self.refusal_log.lock() else {
            return;
        };
        if last.0.elapsed() < Duration::from_millis(LOG_PERIOD_MS) {
            return;
        }
        let stats = b.stats();
        let mut parts = Vec::new();
        for c in ErrorCode::ALL {
            let now = stats.rejections.get(&c).copied().unwrap_or(0);
            let before = last.1.get(&c).copied().unwrap_or(0);
            if now > before {
                parts.push(format!("{}={}", c.name(), now - before));
            }
        }
        if stats.backlog_evicted > last.2 {
            parts.push(format!(
                "backlog_evicted={}",
                stats.backlog_evicted - last.2
            ));
        }
        if !parts.is_empty() {
            tracing::warn!(refusals = %parts.join(" "), "refused or shed since the last report");
        }
        *last = (
            Instant::now(),
            stats.rejections.clone(),
            stats.backlog_evicted,
        );
    }

    /// Carries out actions; slow readers found on the way are dropped and their
    /// consequences carried out too. Lock order: broker, then handles.
    fn dispatch(&self, b: &mut Broker, mut actions: Vec<Action>) {
        while !actions.is_empty() {
            let mut slow = Vec::new();
            let mut unfetched = Vec::new();
            {
                let Ok(handles) = self.handles.lock() else {
                    return;
                };
                for a in actions.drain(..) {
                    match a {
                        Action::Send {
                            conn,
                            frame,
                            ephemeral,
                        } => {
                            let Some(h) = handles.get(&conn) else {
                                continue;
                            };
                            if ephemeral
                                && let Some(q) = &h.datagram
                                && q.max_datagram_size().is_some_and(|m| frame.len() <= m)
                            {
                                if let Some(c) = &self.capture {
                                    c.record(b'O', b'D', conn, &frame);
                                }
                                // Datagrams are best effort by definition (BRK-16).
                                let _ = q.send_datagram(frame);
                                continue;
                            }
                            if let Some(c) = &self.capture {
                                c.record(b'O', h.carrier, conn, &frame);
                            }
                            // BRK-LIM-5: bounded in bytes and frames per connection;
                            // and a connection already behind is dropped rather
                            // than let every queue together pass the memory budget.
                            let len = frame.len();
                            let bytes = h.queued.bytes.load(Ordering::Acquire);
                            let frames = h.queued.frames.load(Ordering::Acquire);
                            let over_conn = bytes.saturating_add(len) > self.send_queue_bytes
                                || frames >= self.send_queue;
                            let over_budget = bytes > 0
                                && self.queued.load(Ordering::Acquire).saturating_add(len)
                                    > self.memory_budget;
                            if over_conn || over_budget {
                                if over_budget && !over_conn {
                                    self.stats
                                        .queue_budget_drops
                                        .fetch_add(1, Ordering::Relaxed);
                                }
                                h.kill.notify_one();
                                slow.push(conn);
                                continue;
                            }
                            h.queued.bytes.fetch_add(len, Ordering::AcqRel);
                            h.queued.frames.fetch_add(1, Ordering::AcqRel);
                            self.queued.fetch_add(len, Ordering::AcqRel);
                            if h.tx.send(Out::Frame(frame)).is_err() {
                                h.queued.sent(self, len);
                            }
                        }
                        Action::Close { conn, code: why } => {
                            if let Some(h) = handles.get(&conn) {
                                tracing::info!(conn, reason = why.name(), "closing connection");
                                if h.tx.send(Out::Close(CloseReason::Error(why))).is_err() {
                                    h.kill.notify_one();
                                }
                            }
                        }
                        Action::Subscribe { room, generation } => {
                            if let Some(bus) = &self.bus
                                && !bus.subscribe(room, generation)
                            {
                                tracing::warn!("bus queue full; subscription not made");
                            }
                        }
                        Action::Replay {
                            conn,
                            room,
                            from,
                            to,
                        } => {
                            let queued = self
                                .bus
                                .as_ref()
                                .is_some_and(|bus| bus.replay(conn, room, from, to));
                            if !queued {
                                unfetched.push((conn, room));
                            }
                        }
                        Action::Unsubscribe(room) => {
                            if let Some(bus) = &self.bus {
                                bus.unsubscribe(room);
                            }
                        }
                        Action::BusPublish {
                            room,
                            ephemeral,
                            payload,
                            sender,
                            request,
                        } => {
                            if let Some(bus) = &self.bus {
                                if bus.publish(room, ephemeral, sender, request, payload) {
                                    self.stats.bus_out.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    self.stats.bus_drops.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
            }
            for conn in slow {
                tracing::warn!(conn, "slow reader dropped: send queue full");
                self.stats.slow_reader_drops.fetch_add(1, Ordering::Relaxed);
                b.slow_reader(conn, &mut actions);
            }
            // A backlog fetch that could not be queued ends empty: the held live
            // frames go out, and the member catches up by sync.
            for (conn, room) in unfetched {
                b.replayed(conn, room, Vec::new(), &mut actions);
            }
        }
    }

    /// The Prometheus text exposition of the metrics.
    pub(crate) fn metrics(&self) -> String {
        let mut s = String::new();
        let (stats, conns, rooms, backlog_bytes) = match self.broker.lock() {
            Ok(b) => (
                b.stats().clone(),
                b.connections(),
                b.rooms(),
                b.backlog_bytes(),
            ),
            Err(_) => return s,
        };
        let (open, pending) = self.admission.open();
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(s, "# TYPE clientful_broker_connections gauge");
        let _ = writeln!(
            s,
            "clientful_broker_connections{{transport=\"websocket\"}} {}",
            ld(&self.stats.ws_connections)
        );
        let _ = writeln!(
            s,
            "clientful_broker_connections{{transport=\"quic\"}} {}",
            ld(&self.stats.quic_connections)
        );
        let _ = writeln!(s, "# TYPE clientful_broker_open_connections gauge");
        let _ = writeln!(s, "clientful_broker_open_connections {open}");
        let _ = writeln!(s, "# TYPE clientful_broker_pending_http_connections gauge");
        let _ = writeln!(s, "clientful_broker_pending_http_connections {pending}");
        let _ = writeln!(s, "# TYPE clientful_broker_backlog_bytes gauge");
        let _ = writeln!(s, "clientful_broker_backlog_bytes {backlog_bytes}");
        let _ = writeln!(s, "# TYPE clientful_broker_queued_bytes gauge");
        let _ = writeln!(
            s,
            "clientful_broker_queued_bytes {}",
            self.queued.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE clientful_broker_connections_refused_total counter"
        );
        for (reason, n) in self.admission.refusals() {
            let _ = writeln!(
                s,
                "clientful_broker_connections_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(s, "# TYPE clientful_broker_backlog_evicted_total counter");
        let _ = writeln!(
            s,
            "clientful_broker_backlog_evicted_total {}",
            stats.backlog_evicted
        );
        let _ = writeln!(s, "# TYPE clientful_broker_rooms_expired_total counter");
        let _ = writeln!(
            s,
            "clientful_broker_rooms_expired_total {}",
            stats.rooms_expired
        );
        let _ = writeln!(s, "# TYPE clientful_broker_sessions gauge");
        let _ = writeln!(s, "clientful_broker_sessions {conns}");
        let _ = writeln!(s, "# TYPE clientful_broker_rooms gauge");
        let _ = writeln!(s, "clientful_broker_rooms {rooms}");
        let _ = writeln!(s, "# TYPE clientful_broker_frames_in_total counter");
        let _ = writeln!(s, "clientful_broker_frames_in_total {}", stats.frames_in);
        let _ = writeln!(s, "# TYPE clientful_broker_frames_out_total counter");
        let _ = writeln!(s, "clientful_broker_frames_out_total {}", stats.frames_out);
        let _ = writeln!(s, "# TYPE clientful_broker_published_total counter");
        let _ = writeln!(s, "clientful_broker_published_total {}", stats.published);
        let _ = writeln!(s, "# TYPE clientful_broker_drops_total counter");
        let _ = writeln!(
            s,
            "clientful_broker_drops_total{{reason=\"discarded_frame\"}} {}",
            stats.drops
        );
        let _ = writeln!(
            s,
            "clientful_broker_drops_total{{reason=\"slow_reader\"}} {}",
            ld(&self.stats.slow_reader_drops)
        );
        let _ = writeln!(
            s,
            "clientful_broker_drops_total{{reason=\"bus\"}} {}",
            ld(&self.stats.bus_drops)
        );
        let _ = writeln!(
            s,
            "clientful_broker_drops_total{{reason=\"memory_budget\"}} {}",
            ld(&self.stats.queue_budget_drops)
        );
        let _ = writeln!(s, "# TYPE clientful_broker_rejections_total counter");
        for c in ErrorCode::ALL {
            let _ = writeln!(
                s,
                "clientful_broker_rejections_total{{code=\"{}\"}} {}",
                c.name(),
                stats.rejections.get(&c).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(s, "# TYPE clientful_broker_bus_messages_total counter");
        let _ = writeln!(
            s,
            "clientful_broker_bus_messages_total{{direction=\"in\"}} {}",
            ld(&self.stats.bus_in)
        );
        let _ = writeln!(
            s,
            "clientful_broker_bus_messages_total{{direction=\"out\"}} {}",
            ld(&self.stats.bus_out)
        );
        s
    }
}

/// The certificate and key files the broker terminates `wss://` with.
#[derive(Debug, Clone)]
pub struct WsTls {
    /// PEM certificate chain, end-entity first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Runs the broker until SIGINT or SIGTERM, then shuts down gracefully: every
/// connection gets ERROR SHUTTING_DOWN, queues drain for up to the grace period.
///
/// Prints one line to stdout once both listeners are bound:
/// `clientful-broker listening ws=<addr> quic=<addr> spki-sha256=<hex>`, where
/// `spki-sha256` is the key pin of BRK-20 (64 lowercase hex digits); with TLS on
/// the WebSocket listener, ` wss-spki-sha256=<hex>` follows: the pin of the
/// `--tls-cert` key, which `wss://` clients may pin instead of trusting a CA.
pub async fn run(config: Config) -> Result<()> {
    // The handlers are installed before the listening line is printed: a
    // supervisor (or a test) that sends SIGTERM as soon as it reads that line
    // must get a graceful shutdown, not the default action of the signal.
    let signalled = wait_for_signal();
    run_until(config, signalled, |b| {
        let wss = b
            .wss_pin
            .map(|p| format!(" wss-spki-sha256={}", hex::encode(p)))
            .unwrap_or_default();
        println!(
            "clientful-broker listening ws={} quic={} spki-sha256={}{wss}",
            b.ws,
            b.quic,
            hex::encode(b.pin)
        );
    })
    .await
}

/// Where a running broker listens, reported once it is bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// HTTP and WebSocket address.
    pub ws: SocketAddr,
    /// QUIC address.
    pub quic: SocketAddr,
    /// The pin clients use for QUIC (BRK-20).
    pub pin: [u8; 32],
    /// With TLS on the WebSocket listener: the pin of its certificate's key.
    pub wss_pin: Option<[u8; 32]>,
}

/// Runs a broker until `shutdown` completes (an embedded broker, e.g. the demo's),
/// calling `on_ready` once both listeners are bound; then shuts down gracefully.
pub async fn run_until(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(Bound),
) -> Result<()> {
    let (identity, source) = tls::load_or_generate(config.cert.as_deref(), config.key.as_deref())?;
    match source {
        tls::Source::Loaded => {}
        tls::Source::Reissued => tracing::info!(
            "no certificate file: issued a new self-signed certificate for the existing key (same pin)"
        ),
        tls::Source::Generated => {
            tracing::info!("no key file: generated a new key and self-signed certificate (new pin)")
        }
    }
    let ws_tls = match &config.ws_tls {
        Some(t) => {
            let identity = tls::load_pem(&t.cert, &t.key)?;
            let pin = identity.pin;
            Some((wss::server_config(&identity)?, pin))
        }
        None => None,
    };
    // This process's instance tag on the bus, and the stream id of JOINED: the
    // same random value, unless the backlog is shared (then the stream id comes
    // from the JetStream stream, BRK-22).
    let origin: [u8; 16] = random();
    let capture = match &config.capture {
        Some(p) => Some(capture::Capture::open(p).context("opening capture file")?),
        None => None,
    };
    let shared_backlog = (config.limits.backlog > 0).then_some(bus::SharedBacklog {
        per_room: config.limits.backlog,
        storage: config.nats_storage,
        max_age: config.nats_backlog_max_age,
    });
    let (bus, bus_rx, stream) = match &config.nats_url {
        Some(url) => {
            let (b, rx, shared_id) =
                bus::Bus::connect(url, origin, shared_backlog.as_ref()).await?;
            (Some(b), Some(rx), shared_id)
        }
        None => (None, None, None),
    };
    let shared = Arc::new(Shared {
        broker: Mutex::new({
            let b = Broker::new(config.limits.clone(), stream.unwrap_or(origin));
            match (&config.nats_url, stream) {
                (None, _) => b,
                (Some(_), None) => b.with_bus(),
                (Some(_), Some(_)) => b.with_shared_backlog(),
            }
        }),
        handles: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        start: Instant::now(),
        send_queue: config.send_queue.max(1),
        send_queue_bytes: config
            .send_queue_bytes
            .max(config.limits.max_frame.saturating_mul(2)),
        memory_budget: config.limits.memory_budget,
        queued: AtomicUsize::new(0),
        capture,
        bus,
        stats: ShellStats::default(),
        max_frame: config.limits.max_frame,
        admission: guard::Admission::new(config.admission.clone()),
        refusal_log: Mutex::new((Instant::now(), HashMap::new(), 0)),
        timer: Notify::new(),
        armed: AtomicU64::new(u64::MAX),
    });
    if let Some(rx) = bus_rx {
        tokio::spawn(bus::deliver_loop(shared.clone(), rx));
    }
    let http = tokio::net::TcpListener::bind(config.ws_listen)
        .await
        .with_context(|| format!("binding {}", config.ws_listen))?;
    let ws_addr = http.local_addr()?;
    let endpoint = quic::endpoint(config.quic_listen, &identity)?;
    let quic_addr = endpoint.local_addr()?;
    on_ready(Bound {
        ws: ws_addr,
        quic: quic_addr,
        pin: identity.pin,
        wss_pin: ws_tls.as_ref().map(|(_, pin)| *pin),
    });
    tracing::info!(
        %ws_addr,
        %quic_addr,
        spki_sha256 = %hex::encode(identity.pin),
        wss = ws_tls.is_some(),
        nats = config.nats_url.is_some(),
        shared_backlog = stream.is_some(),
        "broker started"
    );

    let stop = Arc::new(Notify::new());
    let ws_task = tokio::spawn(ws::serve(
        http,
        ws_tls.map(|(c, _)| c),
        shared.clone(),
        stop.clone(),
    ));
    let quic_task = tokio::spawn(quic::serve(endpoint.clone(), shared.clone()));
    let timer_shared = shared.clone();
    let timers = tokio::spawn(async move { timer_shared.run_timers().await });

    shutdown.await;
    tracing::info!("shutting down");
    shared.step(|b, out| b.shutdown(out));
    stop.notify_waiters();
    let deadline = Instant::now() + config.shutdown_grace;
    while Instant::now() < deadline
        && shared
            .handles
            .lock()
            .map(|h| !h.is_empty())
            .unwrap_or(false)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    endpoint.close(0u32.into(), b"shutdown");
    timers.abort();
    quic_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), ws_task).await;
    endpoint.wait_idle().await;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now and returns a future that
/// completes on the first of them.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
