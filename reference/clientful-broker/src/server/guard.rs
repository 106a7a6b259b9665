//! Connection admission (BRK-LIM-7): what the broker's listeners let in before the
//! state machine sees a connection. It owns the cap on open connections (and, within
//! it, the cap on TCP connections, which each hold a file descriptor, lowered to fit
//! the open-files limit; QUIC connections share the endpoint's one UDP socket and
//! count against the configured cap only), the
//! per-address connection count and connection rate (an IPv4 address, or an IPv6
//! /64), and, for HTTP, a deadline and a byte cap on everything a connection sends
//! before its WebSocket upgrade (so silent or one-byte-a-second connections cannot
//! hold sockets). At the cap, the oldest connection that has not finished its HTTP
//! request is closed to make room, so half-open connections can never lock out new
//! clients or `/healthz`. A `wss://` connection is pending from its first byte:
//! its TLS handshake (with its own deadline, [`super::wss`]) counts against the
//! same deadline, byte cap and eviction as the HTTP request it carries. Every refusal is counted (exported in `/metrics`) and
//! logged, at most once a second per reason with the count since the last line.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::rate::TokenBucket;

/// The admission limits (each a `clientful broker` flag, see docs/operations.md).
#[derive(Debug, Clone)]
pub struct AdmissionLimits {
    /// Open connections (WebSocket/HTTP and QUIC together). TCP connections
    /// (WebSocket/HTTP, each one file descriptor) are further capped at start by
    /// what the process's open-files limit allows ([`Admission::tcp_cap`]); QUIC
    /// connections hold no descriptor of their own and count against this cap only.
    pub max_connections: usize,
    /// Open connections from one address (IPv4 address or IPv6 /64).
    pub per_address: usize,
    /// New connections per second from one address, sustained.
    pub rate_per_address: u32,
    /// New connections from one address at once.
    pub burst_per_address: u32,
    /// Time an HTTP connection has to complete its request (headers of a
    /// WebSocket upgrade, or a `/healthz`/`/metrics` exchange).
    pub http_timeout: Duration,
    /// Bytes an HTTP connection may send before its WebSocket upgrade.
    pub max_header_bytes: usize,
    /// Time a QUIC connection has for its handshake and opening its stream.
    pub quic_handshake_timeout: Duration,
    /// Time a `wss://` connection has for its TLS handshake (then the HTTP
    /// deadline, which started with the connection, still bounds the upgrade).
    pub tls_handshake_timeout: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_connections: 10_000,
            per_address: 256,
            rate_per_address: 50,
            burst_per_address: 100,
            http_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            quic_handshake_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection was refused or closed by admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The connection cap was reached and no pending connection could make room.
    AtCapacity,
    /// The address already holds its share of connections.
    PerAddress,
    /// The address opens connections faster than its rate.
    Rate,
    /// A pending HTTP connection closed to make room for a new one.
    Evicted,
    /// An HTTP connection did not complete its request in time.
    HttpTimeout,
    /// An HTTP connection sent more than the header cap before upgrading.
    HeaderTooLarge,
    /// A QUIC connection did not complete its handshake in time.
    QuicHandshakeTimeout,
    /// `accept` failed (e.g. out of file descriptors).
    AcceptError,
    /// A `wss://` connection did not complete its TLS handshake in time.
    TlsHandshakeTimeout,
    /// A `wss://` connection's TLS handshake failed (not TLS, no common
    /// parameters, the client refused the certificate).
    TlsHandshakeFailed,
}

impl Refusal {
    /// Every reason, for metrics.
    pub const ALL: [Refusal; 10] = [
        Refusal::AtCapacity,
        Refusal::PerAddress,
        Refusal::Rate,
        Refusal::Evicted,
        Refusal::HttpTimeout,
        Refusal::HeaderTooLarge,
        Refusal::QuicHandshakeTimeout,
        Refusal::AcceptError,
        Refusal::TlsHandshakeTimeout,
        Refusal::TlsHandshakeFailed,
    ];

    /// Metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::AtCapacity => "at_capacity",
            Refusal::PerAddress => "per_address",
            Refusal::Rate => "rate",
            Refusal::Evicted => "evicted",
            Refusal::HttpTimeout => "http_timeout",
            Refusal::HeaderTooLarge => "header_too_large",
            Refusal::QuicHandshakeTimeout => "quic_handshake_timeout",
            Refusal::AcceptError => "accept_error",
            Refusal::TlsHandshakeTimeout => "tls_handshake_timeout",
            Refusal::TlsHandshakeFailed => "tls_handshake_failed",
        }
    }

    fn index(self) -> usize {
        match self {
            Refusal::AtCapacity => 0,
            Refusal::PerAddress => 1,
            Refusal::Rate => 2,
            Refusal::Evicted => 3,
            Refusal::HttpTimeout => 4,
            Refusal::HeaderTooLarge => 5,
            Refusal::QuicHandshakeTimeout => 6,
            Refusal::AcceptError => 7,
            Refusal::TlsHandshakeTimeout => 8,
            Refusal::TlsHandshakeFailed => 9,
        }
    }
}

/// One HTTP connection that has not upgraded yet.
pub(crate) struct Slot {
    id: u64,
    established: AtomicBool,
    evicted: AtomicBool,
    waker: AtomicWaker,
}

struct Address {
    open: usize,
    bucket: TokenBucket,
    last_ms: u64,
}

#[derive(Default)]
struct Inner {
    open: usize,
    /// Of `open`, the TCP connections (each one file descriptor).
    open_tcp: usize,
    addresses: HashMap<IpAddr, Address>,
    /// HTTP connections before their upgrade, oldest first.
    pending: BTreeMap<u64, Arc<Slot>>,
    /// Evicted connections whose task has not ended yet (their place is on its
    /// way back).
    evicting: usize,
    next: u64,
    last_sweep_ms: u64,
}

/// The admission state shared by the listeners.
pub struct Admission {
    limits: AdmissionLimits,
    /// Cap on open TCP connections: `max_connections`, or less to fit the
    /// open-files limit.
    tcp_cap: usize,
    start: Instant,
    inner: Mutex<Inner>,
    counts: [AtomicU64; Refusal::ALL.len()],
    logged: Mutex<HashMap<Refusal, (Instant, u64)>>,
    /// Signalled whenever a connection gives its place back.
    released: tokio::sync::Notify,
}

/// An admitted connection; dropping it gives its place back.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    key: IpAddr,
    /// A TCP connection (counted against [`Admission::tcp_cap`] too).
    tcp: bool,
    pending: Option<(u64, Arc<Slot>)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.admission.inner.lock() {
            inner.open = inner.open.saturating_sub(1);
            if self.tcp {
                inner.open_tcp = inner.open_tcp.saturating_sub(1);
            }
            if let Some(a) = inner.addresses.get_mut(&self.key) {
                a.open = a.open.saturating_sub(1);
            }
            if let Some((id, slot)) = &self.pending {
                inner.pending.remove(id);
                if slot.evicted.load(Ordering::Acquire) {
                    inner.evicting = inner.evicting.saturating_sub(1);
                }
            }
        }
        self.admission.released.notify_waiters();
    }
}

/// IPv6 addresses count per /64 (one host usually owns a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// The soft limit on open files of this process (Linux `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// File descriptors kept for everything but client connections (listeners,
/// capture, NATS, logs, `accept` itself).
const FD_RESERVE: usize = 64;

impl Admission {
    /// Admission with `limits`; the cap on TCP connections is lowered to what
    /// the file-descriptor limit allows (and the change logged).
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Self::with_open_files_limit(limits, open_files_limit())
    }

    /// Admission with `limits` under an open-files limit of `fds` (none: no
    /// limit known). TCP connections each hold a descriptor, so at most `fds`
    /// less [`FD_RESERVE`] of them are admitted; QUIC connections share the UDP
    /// socket of the endpoint and are bounded by `max_connections` alone.
    fn with_open_files_limit(limits: AdmissionLimits, fds: Option<usize>) -> Arc<Admission> {
        let mut tcp_cap = limits.max_connections;
        if let Some(fds) = fds {
            let fit = fds.saturating_sub(FD_RESERVE).max(1);
            if fit < tcp_cap {
                tracing::warn!(
                    configured = limits.max_connections,
                    open_files_limit = fds,
                    max_tcp_connections = fit,
                    "cap on TCP (WebSocket/HTTP) connections lowered to fit the open-files limit; QUIC connections count against the configured cap only"
                );
                tcp_cap = fit;
            }
        }
        Arc::new(Admission {
            limits,
            tcp_cap,
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
            counts: Default::default(),
            logged: Mutex::new(HashMap::new()),
            released: tokio::sync::Notify::new(),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &AdmissionLimits {
        &self.limits
    }

    /// The cap on open TCP (WebSocket/HTTP) connections: the configured
    /// `max_connections`, or the open-files limit less [`FD_RESERVE`] if lower.
    pub fn tcp_cap(&self) -> usize {
        self.tcp_cap
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a refusal and logs it (at most one line a second per reason).
    pub(crate) fn refused(&self, why: Refusal, peer: Option<IpAddr>) {
        if let Some(c) = self.counts.get(why.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut logged) = self.logged.lock() else {
            return;
        };
        let now = Instant::now();
        let entry = logged
            .entry(why)
            .or_insert((now - Duration::from_secs(2), 0));
        entry.1 += 1;
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            tracing::warn!(
                reason = why.name(),
                peer = peer.map(|p| p.to_string()).unwrap_or_default(),
                count = entry.1,
                "connection refused or closed by admission control"
            );
            *entry = (now, 0);
        }
    }

    /// Refusals so far, by reason.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| {
                (
                    r.name(),
                    self.counts
                        .get(r.index())
                        .map(|c| c.load(Ordering::Relaxed))
                        .unwrap_or(0),
                )
            })
            .collect()
    }

    /// Open connections and HTTP connections still before their upgrade.
    pub fn open(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map(|i| (i.open, i.pending.len()))
            .unwrap_or((0, 0))
    }

    /// The connection of `slot` became a WebSocket session: no deadline, no byte
    /// cap, never evicted.
    pub(crate) fn establish(&self, slot: &Slot) {
        slot.established.store(true, Ordering::Release);
        if let Ok(mut inner) = self.inner.lock() {
            inner.pending.remove(&slot.id);
        }
    }

    /// Closes the oldest pending HTTP connection; false if there is none.
    fn evict_oldest(inner: &mut Inner) -> bool {
        let Some((_, slot)) = inner.pending.pop_first() else {
            return false;
        };
        slot.evicted.store(true, Ordering::Release);
        slot.waker.wake();
        inner.evicting += 1;
        true
    }

    /// Lets a connection from `ip` in, or says why not (counted and logged).
    /// `http`: it is an HTTP connection (over TCP: one file descriptor, so
    /// [`Admission::tcp_cap`] applies too), pending until [`Slot::establish`];
    /// otherwise a QUIC connection, bounded by `max_connections` alone.
    ///
    /// At the cap while evicted connections are still giving their places back,
    /// it waits for them (up to `patience`) instead of refusing: a flood of half-open connections makes the accept loop evict
    /// faster than the evicted tasks end, and the newcomer the evictions are for
    /// must not be the one refused. Meanwhile new connections wait in the
    /// kernel's accept queue.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        http: bool,
        patience: Duration,
    ) -> Result<(Ticket, Option<Arc<Slot>>), Refusal> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let result = self.try_admit(ip, http);
            if matches!(result, Err(Refusal::AtCapacity))
                && self.evicting() > 0
                && tokio::time::Instant::now() < deadline
            {
                let _ = tokio::time::timeout_at(deadline, released).await;
                continue;
            }
            self.count(&result, ip);
            return result.map(|(t, s, _)| (t, s));
        }
    }

    fn evicting(&self) -> usize {
        self.inner.lock().map(|i| i.evicting).unwrap_or(0)
    }

    /// Counts what [`Admission::try_admit`] decided.
    fn count(&self, result: &Result<(Ticket, Option<Arc<Slot>>, bool), Refusal>, ip: IpAddr) {
        match result {
            Ok((_, _, true)) => self.refused(Refusal::Evicted, None),
            Ok(_) => {}
            Err(why) => self.refused(*why, Some(ip)),
        }
    }

    /// The admission decision, uncounted; the flag says an older pending
    /// connection was evicted to make room.
    fn try_admit(
        self: &Arc<Self>,
        ip: IpAddr,
        http: bool,
    ) -> Result<(Ticket, Option<Arc<Slot>>, bool), Refusal> {
        let now = self.now_ms();
        let key = address_key(ip);
        {
            let Ok(mut inner) = self.inner.lock() else {
                return Err(Refusal::AtCapacity);
            };
            self.sweep(&mut inner, now);
            let max = self.limits.max_connections;
            let tcp_cap = self.tcp_cap;
            let full = |i: &Inner| i.open >= max || (http && i.open_tcp >= tcp_cap);
            let mut evicted = false;
            if full(&inner) {
                // Evicted connections give their place back when their task ends;
                // allow a few in flight, never more.
                evicted = inner.open < max + FD_RESERVE / 2
                    && (!http || inner.open_tcp < tcp_cap + FD_RESERVE / 2)
                    && Self::evict_oldest(&mut inner);
            }
            if full(&inner) && !evicted {
                Err(Refusal::AtCapacity)
            } else {
                let rate = self.limits.rate_per_address;
                let burst = self.limits.burst_per_address;
                let per_address = self.limits.per_address;
                let a = inner.addresses.entry(key).or_insert_with(|| Address {
                    open: 0,
                    bucket: TokenBucket::new(rate, burst, now),
                    last_ms: now,
                });
                a.last_ms = now;
                // Every attempt spends a token, admitted or not: the rate
                // counts what an address tries, so a flood is refused as
                // `rate` however soon its dropped connections are reaped.
                if !a.bucket.take(now) {
                    Err(Refusal::Rate)
                } else if a.open >= per_address {
                    Err(Refusal::PerAddress)
                } else {
                    a.open += 1;
                    inner.open += 1;
                    if http {
                        inner.open_tcp += 1;
                    }
                    inner.next += 1;
                    let id = inner.next;
                    let slot = http.then(|| {
                        Arc::new(Slot {
                            id,
                            established: AtomicBool::new(false),
                            evicted: AtomicBool::new(false),
                            waker: AtomicWaker::new(),
                        })
                    });
                    let pending = slot.clone().map(|s| {
                        inner.pending.insert(id, s.clone());
                        (id, s)
                    });
                    Ok((
                        Ticket {
                            admission: self.clone(),
                            key,
                            tcp: http,
                            pending,
                        },
                        slot,
                    ))
                }
            }
            .map(|(t, slot)| (t, slot, evicted))
        }
    }

    /// Forgets idle addresses (no connection for a minute), at most every 10 s.
    fn sweep(&self, inner: &mut Inner, now: u64) {
        if now.saturating_sub(inner.last_sweep_ms) < 10_000 {
            return;
        }
        inner.last_sweep_ms = now;
        inner
            .addresses
            .retain(|_, a| a.open > 0 || now.saturating_sub(a.last_ms) < 60_000);
    }

    /// Out of file descriptors: make room by closing the oldest pending
    /// connection.
    fn relieve(&self) {
        let evicted = self
            .inner
            .lock()
            .map(|mut i| Self::evict_oldest(&mut i))
            .unwrap_or(false);
        if evicted {
            self.refused(Refusal::Evicted, None);
        }
    }
}

/// The HTTP listener with admission control (an [`axum::serve::Listener`]).
pub struct GuardedListener {
    tcp: TcpListener,
    admission: Arc<Admission>,
}

impl GuardedListener {
    /// Wraps a bound listener.
    pub fn new(tcp: TcpListener, admission: Arc<Admission>) -> Self {
        GuardedListener { tcp, admission }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            match self.tcp.accept().await {
                Ok((tcp, addr)) => {
                    let Ok((ticket, slot)) = self
                        .admission
                        .admit(addr.ip(), true, Duration::from_secs(2))
                        .await
                    else {
                        // Refused: counted and logged; the socket closes here.
                        continue;
                    };
                    // TCP_NODELAY: frames are small and latency-bound; with Nagle's
                    // algorithm a DELIVER waits for the ACK of the previous one
                    // (clientful-bench measured a 2.8 ms median fan-out latency
                    // without it).
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    let limits = self.admission.limits();
                    let stream = GuardedStream {
                        tcp,
                        slot,
                        deadline: Box::pin(tokio::time::sleep(limits.http_timeout)),
                        read_before_upgrade: 0,
                        max_header_bytes: limits.max_header_bytes,
                        admission: self.admission.clone(),
                        _ticket: ticket,
                    };
                    return (stream, addr);
                }
                Err(e) => {
                    self.admission.refused(Refusal::AcceptError, None);
                    // Out of file descriptors: close the oldest half-open
                    // connection, give its task a moment, try again.
                    if matches!(e.raw_os_error(), Some(23 | 24)) {
                        self.admission.relieve();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// An admitted TCP connection. Until its WebSocket upgrade it has a deadline and
/// a byte cap; evicted, it fails its next read.
pub struct GuardedStream {
    tcp: TcpStream,
    slot: Option<Arc<Slot>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    read_before_upgrade: usize,
    max_header_bytes: usize,
    admission: Arc<Admission>,
    _ticket: Ticket,
}

impl GuardedStream {
    /// The pending slot, for the upgrade handler (see [`ConnSlot`]).
    pub(crate) fn slot(&self) -> Option<Arc<Slot>> {
        self.slot.clone()
    }

    fn pending(&self) -> Option<&Arc<Slot>> {
        self.slot
            .as_ref()
            .filter(|s| !s.established.load(Ordering::Acquire))
    }
}

fn closed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, why.to_owned())
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(slot) = this.pending().cloned() {
            slot.waker.register(cx.waker());
            if slot.evicted.load(Ordering::Acquire) {
                return Poll::Ready(Err(closed("evicted to make room")));
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                this.admission.refused(Refusal::HttpTimeout, None);
                return Poll::Ready(Err(closed("HTTP request timed out")));
            }
            let before = buf.filled().len();
            let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
            this.read_before_upgrade += buf.filled().len() - before;
            if this.read_before_upgrade > this.max_header_bytes {
                this.admission.refused(Refusal::HeaderTooLarge, None);
                return Poll::Ready(Err(closed("HTTP request too large")));
            }
            return r;
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The connection's admission slot, as axum connect info: the upgrade handler
/// marks it established.
#[derive(Clone)]
pub(crate) struct ConnSlot(pub(crate) Option<Arc<Slot>>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for ConnSlot
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        ConnSlot(stream.io().slot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_connections,
            per_address: 1_000,
            burst_per_address: 1_000,
            ..AdmissionLimits::default()
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last))
    }

    /// With every spare place taken by evictions whose tasks have not ended, a
    /// newcomer waits for a place instead of being refused, and gets one as soon
    /// as an evicted connection gives its place back.
    #[tokio::test(start_paused = true)]
    async fn a_newcomer_waits_for_evictions_in_flight() {
        let max = 4;
        let admission = Admission::new(limits(max));
        let patience = Duration::from_secs(2);
        let mut tickets = Vec::new();
        for i in 0..max + FD_RESERVE / 2 {
            let t = admission
                .admit(ip(2), true, patience)
                .await
                .unwrap_or_else(|why| panic!("connection {i} refused: {why:?}"));
            tickets.push(t);
        }
        assert_eq!(admission.evicting(), FD_RESERVE / 2);
        // Every place is taken and no eviction may be added: the newcomer waits.
        let newcomer = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(ip(1), true, patience).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!newcomer.is_finished(), "refused at once");
        // The first evicted connection's task ends.
        drop(tickets.remove(0));
        assert!(newcomer.await.unwrap_or(false), "newcomer refused");
        let at_capacity = admission.counts[Refusal::AtCapacity.index()].load(Ordering::Relaxed);
        assert_eq!(at_capacity, 0);
    }

    /// An address at its share still spends a token per attempt, so a flood
    /// of attempts is refused as `rate` even while its connections stay open.
    #[tokio::test(start_paused = true)]
    async fn attempts_over_the_share_still_spend_the_rate() {
        let admission = Admission::new(AdmissionLimits {
            max_connections: 100,
            per_address: 1,
            rate_per_address: 1,
            burst_per_address: 3,
            ..AdmissionLimits::default()
        });
        let patience = Duration::from_secs(2);
        let held = admission
            .admit(ip(9), true, patience)
            .await
            .expect("first in");
        for _ in 0..2 {
            assert_eq!(
                admission.admit(ip(9), true, patience).await.err(),
                Some(Refusal::PerAddress)
            );
        }
        assert_eq!(
            admission.admit(ip(9), true, patience).await.err(),
            Some(Refusal::Rate)
        );
        drop(held);
    }

    /// Without evictions in flight (every place held by established sessions),
    /// the cap refuses at once and counts it.
    #[tokio::test(start_paused = true)]
    async fn at_the_cap_without_evictions_refuses_at_once() {
        let admission = Admission::new(limits(2));
        let patience = Duration::from_secs(2);
        let mut held = Vec::new();
        for _ in 0..2 {
            let (t, slot) = admission.admit(ip(2), true, patience).await.expect("in");
            admission.establish(slot.as_deref().expect("http slot"));
            held.push(t);
        }
        let started = tokio::time::Instant::now();
        assert_eq!(
            admission.admit(ip(1), true, patience).await.err(),
            Some(Refusal::AtCapacity)
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        let at_capacity = admission.counts[Refusal::AtCapacity.index()].load(Ordering::Relaxed);
        assert_eq!(at_capacity, 1);
    }

    /// The open-files limit caps TCP connections only: QUIC connections (one
    /// UDP socket for all) are admitted beyond it, up to the configured cap,
    /// and count against that cap for TCP newcomers too.
    #[tokio::test(start_paused = true)]
    async fn the_open_files_limit_caps_tcp_connections_only() {
        let patience = Duration::from_secs(2);
        let admission = Admission::with_open_files_limit(limits(10), Some(FD_RESERVE + 3));
        assert_eq!(admission.tcp_cap(), 3);
        assert_eq!(admission.limits().max_connections, 10);
        let mut held = Vec::new();
        for _ in 0..3 {
            let (t, slot) = admission
                .admit(ip(2), true, patience)
                .await
                .expect("tcp in");
            admission.establish(slot.as_deref().expect("http slot"));
            held.push(t);
        }
        // The TCP cap is reached (every connection established: nothing to evict).
        assert_eq!(
            admission.admit(ip(3), true, patience).await.err(),
            Some(Refusal::AtCapacity)
        );
        // QUIC connections still get in, up to the configured cap.
        for i in 0..7 {
            let (t, slot) = admission
                .admit(ip(4), false, patience)
                .await
                .unwrap_or_else(|why| panic!("QUIC connection {i} refused: {why:?}"));
            assert!(slot.is_none());
            held.push(t);
        }
        assert_eq!(admission.open(), (10, 0));
        assert_eq!(
            admission.admit(ip(4), false, patience).await.err(),
            Some(Refusal::AtCapacity)
        );
        // A TCP connection gives its place back: a TCP newcomer may take it.
        drop(held.remove(0));
        let (t, slot) = admission
            .admit(ip(3), true, patience)
            .await
            .expect("tcp in");
        admission.establish(slot.as_deref().expect("http slot"));
        held.push(t);
        // A QUIC connection gives its place back: the TCP cap still holds.
        drop(held.remove(3));
        assert_eq!(
            admission.admit(ip(3), true, patience).await.err(),
            Some(Refusal::AtCapacity)
        );
        let (t, _) = admission
            .admit(ip(4), false, patience)
            .await
            .expect("quic in");
        held.push(t);
        // No open-files limit known: both caps are the configured one.
        let unlimited = Admission::with_open_files_limit(limits(10), None);
        assert_eq!(unlimited.tcp_cap(), 10);
        let roomy = Admission::with_open_files_limit(limits(10), Some(1_000_000));
        assert_eq!(roomy.tcp_cap(), 10);
    }
}
