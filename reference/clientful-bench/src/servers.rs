//! The servers of the fan-out and memory figures, each a child process pinned to
//! core 0 with `taskset -c 0` (the load generator runs on core 1):
//!
//! - `broker`: the Clientful broker (`clientful_broker::server::run_until`), run by
//!   this binary (`clientful-bench --serve broker`) on the same tokio runtime kind
//!   as `clientful broker` (multi-threaded, which sizes itself to the one core it
//!   may use: one worker);
//! - `bare`: a bare broadcast server on the broker's WebSocket library (axum over
//!   tokio-tungstenite) and the same shape of connection handling (a bounded queue
//!   and a writer task per connection), relaying every binary message to every other
//!   connection (`clientful-bench --serve bare`);
//! - `y-websocket`: y-websocket's own server under Node
//!   (`scripts/bench-node/y-websocket-server.cjs`, installed by
//!   `scripts/bench-node.sh`).
//!
//! A child prints `listening ...` once bound and exits when its stdin closes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

/// Frames queued per connection before a slow reader is dropped: the broker
/// command's default, used by both Rust servers.
pub const SEND_QUEUE: usize = 1024;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Clientful broker.
    Broker,
    /// The bare broadcast server.
    Bare,
    /// y-websocket's server (Node).
    YWebsocket,
}

impl Kind {
    /// Name for tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Broker => "Clientful broker",
            Kind::Bare => "bare broadcast",
            Kind::YWebsocket => "y-websocket",
        }
    }
}

/// The entry point of `clientful-bench --serve broker|bare` (the child side).
pub fn serve(kind: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match kind {
            "broker" => serve_broker().await,
            "bare" => serve_bare().await,
            other => bail!("unknown server {other:?}"),
        }
    })
}

/// Completes when stdin closes (the parent ended or dropped us).
fn stdin_closed() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}

fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn serve_broker() -> Result<()> {
    use clientful_broker::server::{Config, run_until};
    use clientful_broker::state::Limits;
    let config = Config {
        ws_listen: ([127, 0, 0, 1], 0).into(),
        quic_listen: ([127, 0, 0, 1], 0).into(),
        cert: None,
        key: None,
        ws_tls: None,
        // The command's defaults, but for the per-connection rate limit (a benchmark
        // floods on purpose), the idle timeout (idle connections are measured) and
        // the rooms per connection (one connection joins many rooms for the memory
        // figure).
        limits: Limits {
            rate_per_sec: 1_000_000_000,
            burst: 1_000_000_000,
            max_rooms: 1_000_000,
            idle_timeout_ms: 3_600_000,
            ..Limits::default()
        },
        send_queue: SEND_QUEUE,
        send_queue_bytes: 8 * 1024 * 1024,
        // Many connections from one address, opened fast, on purpose.
        admission: clientful_broker::server::guard::AdmissionLimits {
            max_connections: 1_000_000,
            per_address: 1_000_000,
            rate_per_address: 1_000_000_000,
            burst_per_address: 1_000_000_000,
            ..Default::default()
        },
        // The scale figures join brokers through a NATS server (shared backlog in
        // JetStream memory: the bench measures the brokers, not a disk).
        nats_url: std::env::var("CLIENTFUL_BENCH_NATS_URL").ok(),
        nats_storage: clientful_broker::server::bus::BacklogStorage::Memory,
        nats_backlog_max_age: Duration::from_secs(86_400),
        capture: None,
        shutdown_grace: Duration::from_millis(200),
    };
    run_until(config, stdin_closed(), |b| {
        say(&format!(
            "listening ws={} quic={} pin={}",
            b.ws,
            b.quic,
            hex_encode(&b.pin)
        ));
    })
    .await
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[derive(Default)]
struct BareState {
    conns: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
    next: AtomicU64,
}

async fn serve_bare() -> Result<()> {
    let state = Arc::new(BareState::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    say(&format!("listening ws={}", listener.local_addr()?));
    let app = Router::new()
        .route("/ws", get(bare_upgrade))
        .with_state(state);
    // TCP_NODELAY, as the ws library under y-websocket sets it.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stdin_closed())
        .await?;
    Ok(())
}

async fn bare_upgrade(
    ws: WebSocketUpgrade,
    State(state): State<Arc<BareState>>,
) -> impl IntoResponse {
    ws.on_upgrade(move |socket| bare_connection(socket, state))
}

async fn bare_connection(socket: WebSocket, state: Arc<BareState>) {
    let id = state.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Bytes>(SEND_QUEUE);
    if let Ok(mut c) = state.conns.lock() {
        c.insert(id, tx);
    }
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if batched_writes() {
                // As the broker does: what is queued goes out in one write.
                let mut item = Some(b);
                let mut n = 0;
                while let Some(b) = item.take() {
                    if sink.feed(Message::Binary(b)).await.is_err() {
                        return;
                    }
                    n += 1;
                    if n < 64 {
                        item = rx.try_recv().ok();
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            } else if sink.send(Message::Binary(b)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Binary(b) => {
                if let Ok(c) = state.conns.lock() {
                    for (other, tx) in c.iter() {
                        if *other != id {
                            // A full queue drops the message (the broker drops the
                            // reader instead); the load never fills it.
                            let _ = tx.try_send(b.clone());
                        }
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    if let Ok(mut c) = state.conns.lock() {
        c.remove(&id);
    }
    writer.abort();
}

/// The bare server batches its writes like the broker unless
/// `CLIENTFUL_BENCH_BARE_UNBATCHED` is set (one write per message, as the broker
/// did before).
fn batched_writes() -> bool {
    std::env::var_os("CLIENTFUL_BENCH_BARE_UNBATCHED").is_none()
}

/// Whether `taskset` can pin processes here.
pub fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pins every thread of this process to `cpus` (e.g. "1"); new threads inherit it.
pub fn pin_self(cpus: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where `scripts/bench-node.sh` installs the Node baseline.
pub fn node_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CLIENTFUL_BENCH_NODE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/clientful/bench-node")
}

/// Installs the Node baseline with `scripts/bench-node.sh` unless it is there.
pub fn ensure_node(root: &Path) -> Result<PathBuf> {
    let dir = node_dir();
    let script = dir.join("y-websocket-server.cjs");
    if script.is_file() && dir.join("node_modules/y-websocket/bin/utils.cjs").is_file() {
        return Ok(script);
    }
    eprintln!("installing the y-websocket baseline (scripts/bench-node.sh)");
    let status = Command::new("bash")
        .arg(root.join("scripts/bench-node.sh"))
        .status()
        .context("running scripts/bench-node.sh")?;
    if !status.success() || !script.is_file() {
        bail!("scripts/bench-node.sh failed");
    }
    Ok(script)
}

/// A running server child process.
pub struct Server {
    child: Child,
    /// Its kind.
    pub kind: Kind,
    /// WebSocket address.
    pub ws: SocketAddr,
    /// QUIC address and certificate pin (the broker only).
    pub quic: Option<(SocketAddr, [u8; 32])>,
    /// Pinned to core 0.
    pub pinned: bool,
}

impl Server {
    /// Starts a server, pinned to core 0 when `taskset` exists.
    pub fn spawn(kind: Kind, node_script: Option<&Path>) -> Result<Server> {
        Server::spawn_env(kind, node_script, &[])
    }

    /// [`Server::spawn`] with environment variables for the child.
    pub fn spawn_env(
        kind: Kind,
        node_script: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let pinned = have_taskset();
        let exe = std::env::current_exe()?;
        let (program, args): (PathBuf, Vec<String>) = match kind {
            Kind::Broker => (exe, vec!["--serve".into(), "broker".into()]),
            Kind::Bare => (exe, vec!["--serve".into(), "bare".into()]),
            Kind::YWebsocket => {
                let script = node_script.ok_or_else(|| anyhow!("no y-websocket script"))?;
                (
                    PathBuf::from("node"),
                    vec![script.to_string_lossy().into_owned()],
                )
            }
        };
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&program).args(&args);
            c
        } else {
            let mut c = Command::new(&program);
            c.args(&args);
            c
        };
        if kind == Kind::YWebsocket
            && let Some(dir) = node_script.and_then(Path::parent)
        {
            cmd.current_dir(dir);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout of the child"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut server = Server {
            child,
            kind,
            ws: ([127, 0, 0, 1], 0).into(),
            quic: None,
            pinned,
        };
        let mut words = line.split_whitespace();
        if words.next() != Some("listening") {
            bail!("{} did not start: {line:?}", kind.name());
        }
        let mut quic = None;
        let mut pin = None;
        for w in words {
            match w.split_once('=') {
                Some(("ws", a)) => server.ws = a.parse()?,
                Some(("quic", a)) => quic = Some(a.parse::<SocketAddr>()?),
                Some(("pin", h)) => pin = hex_decode32(h),
                None => server.ws = ([127, 0, 0, 1], w.parse::<u16>()?).into(),
                _ => {}
            }
        }
        if let (Some(q), Some(p)) = (quic, pin) {
            server.quic = Some((q, p));
        }
        Ok(server)
    }

    /// The WebSocket URL for a room (y-websocket: the document name is the path).
    pub fn url(&self, room: &str) -> String {
        match self.kind {
            Kind::Broker => format!("ws://{}/v1/ws", self.ws),
            Kind::Bare => format!("ws://{}/ws", self.ws),
            Kind::YWebsocket => format!("ws://{}/{room}", self.ws),
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process whose memory and CPU are measured (taskset execs, so it is the child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size, in bytes.
    pub fn rss(&self) -> Result<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb = s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no VmRSS"))?;
        Ok(kb * 1024)
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu(&self) -> Result<f64> {
        cpu_of(&format!("/proc/{}/stat", self.pid()))
    }
}

/// CPU seconds (user + system) of a process from its `/proc/<pid>/stat`.
pub fn cpu_of(stat: &str) -> Result<f64> {
    let s = std::fs::read_to_string(stat)?;
    // Fields after the parenthesised command name: state is field 3; utime and
    // stime are fields 14 and 15 (proc(5)), in clock ticks of 1/100 s on Linux.
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<f64> {
        f.get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("bad stat field {n}"))
    };
    Ok((field(14)? + field(15)?) / 100.0)
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
