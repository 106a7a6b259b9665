//! The broker's command line (`clientful broker` and the `clientful-broker`
//! binary): its flags, with their defaults, and how they become a
//! [`server::Config`] (spec §10.8 limits, BRK-LIM-*).

use std::path::PathBuf;

use anyhow::Result;

use crate::server;

/// The broker's flags (`clientful broker` and `clientful-broker`).
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// HTTP listener: WebSocket at /v1/ws, /healthz and /metrics.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub ws_listen: std::net::SocketAddr,
    /// QUIC (UDP) listener.
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub quic_listen: std::net::SocketAddr,
    /// PEM certificate for QUIC; if absent, a self-signed one over the key is
    /// issued and written here (same key, same pin).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for QUIC; if absent, a new key (and certificate) is
    /// generated and written here (a new pin).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// PEM certificate chain for TLS on the HTTP listener: clients then connect
    /// to wss://HOST:PORT/v1/ws. Without it, plain ws:// (put a TLS reverse
    /// proxy in front for production, or use this).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a wss:// connection has for its TLS handshake.
    #[arg(long, default_value_t = 10)]
    pub tls_handshake_timeout: u64,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024 + 1024)]
    pub max_frame: usize,
    /// Rooms one connection may join.
    #[arg(long, default_value_t = 64)]
    pub max_rooms: usize,
    /// Sustained frames per second per connection.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Frames a connection may send at once (token bucket size).
    #[arg(long, default_value_t = 400)]
    pub burst: u32,
    /// Discarded frames (less accepted ones) before a flooding connection is closed.
    #[arg(long, default_value_t = 400)]
    pub max_strikes: u32,
    /// Payloads kept per room for clients that resume (0: no backlog); in memory,
    /// or with --nats-url in NATS JetStream, shared by the brokers.
    #[arg(long, default_value_t = 256)]
    pub backlog: usize,
    /// Frames queued per connection before it is dropped as a slow reader.
    #[arg(long, default_value_t = 1024)]
    pub send_queue: usize,
    /// Bytes queued per connection before it is dropped as a slow reader (at
    /// least twice --max-frame).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub send_queue_bytes: usize,
    /// Bytes of backlog kept per room (the oldest entries go first).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub room_backlog_bytes: usize,
    /// Bytes of backlog kept over all rooms (the oldest entries of any room go first).
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub backlog_budget: usize,
    /// Seconds a room nobody is in keeps its backlog before it is forgotten.
    #[arg(long, default_value_t = 600)]
    pub empty_room_ttl: u64,
    /// Rooms held at once; a JOIN that would make another is refused (OVER_CAPACITY).
    #[arg(long, default_value_t = 100_000)]
    pub max_rooms_total: usize,
    /// Bytes held in backlogs and send queues together; a PUBLISH beyond is refused
    /// (OVER_CAPACITY) and connections already behind are dropped as slow readers.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    pub memory_budget: usize,
    /// PINGs (broker PING frames and WebSocket pings) per second per connection.
    #[arg(long, default_value_t = 5)]
    pub ping_rate: u32,
    /// PINGs a connection may send at once.
    #[arg(long, default_value_t = 20)]
    pub ping_burst: u32,
    /// Open connections (WebSocket and QUIC); lowered to fit the open-files limit.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections from one address (IPv4 address or IPv6 /64).
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_address: usize,
    /// New connections per second from one address.
    #[arg(long, default_value_t = 50)]
    pub connection_rate: u32,
    /// New connections from one address at once.
    #[arg(long, default_value_t = 100)]
    pub connection_burst: u32,
    /// Seconds an HTTP connection has to complete its request (WebSocket upgrade,
    /// /healthz, /metrics).
    #[arg(long, default_value_t = 10)]
    pub http_timeout: u64,
    /// Bytes an HTTP connection may send before its WebSocket upgrade.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Seconds a QUIC connection has for its handshake and opening its stream.
    #[arg(long, default_value_t = 10)]
    pub quic_handshake_timeout: u64,
    /// Seconds without any frame before a connection is closed.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// NATS server URL: share rooms with other brokers on it (and, with a
    /// backlog, keep the backlog in its JetStream).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// JetStream storage of the shared backlog (with --nats-url).
    #[arg(long, value_enum, default_value = "file")]
    pub nats_storage: NatsStorage,
    /// Seconds after which JetStream drops a shared backlog entry (0: never).
    #[arg(long, default_value_t = 86_400)]
    pub nats_backlog_max_age: u64,
    /// Append every frame seen to this file (for tests and audits).
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Seconds to let connections drain at shutdown.
    #[arg(long, default_value_t = 5)]
    pub shutdown_grace: u64,
}

/// JetStream storage of the shared backlog.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[non_exhaustive]
pub enum NatsStorage {
    /// On disk.
    File,
    /// In memory.
    Memory,
}

/// Log format on stderr.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the broker with `a` until SIGTERM or SIGINT: installs the log
/// subscriber, builds the [`server::Config`] and a multi-threaded runtime.
pub fn run(a: BrokerArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match a.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let config = server::Config {
        ws_listen: a.ws_listen,
        quic_listen: a.quic_listen,
        cert: a.cert,
        key: a.key,
        ws_tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(server::WsTls { cert, key }),
            _ => None,
        },
        limits: crate::state::Limits {
            max_frame: a.max_frame,
            max_rooms: a.max_rooms,
            rate_per_sec: a.rate,
            burst: a.burst,
            max_strikes: a.max_strikes,
            backlog: a.backlog,
            idle_timeout_ms: a.idle_timeout.saturating_mul(1000),
            room_backlog_bytes: a.room_backlog_bytes,
            backlog_budget: a.backlog_budget,
            empty_room_ttl_ms: a.empty_room_ttl.saturating_mul(1000),
            max_rooms_total: a.max_rooms_total,
            memory_budget: a.memory_budget,
            ping_rate_per_sec: a.ping_rate,
            ping_burst: a.ping_burst,
            ..Default::default()
        },
        send_queue: a.send_queue,
        send_queue_bytes: a.send_queue_bytes,
        admission: server::guard::AdmissionLimits {
            max_connections: a.max_connections,
            per_address: a.max_connections_per_address,
            rate_per_address: a.connection_rate,
            burst_per_address: a.connection_burst,
            http_timeout: std::time::Duration::from_secs(a.http_timeout.max(1)),
            max_header_bytes: a.max_header_bytes,
            quic_handshake_timeout: std::time::Duration::from_secs(a.quic_handshake_timeout.max(1)),
            tls_handshake_timeout: std::time::Duration::from_secs(a.tls_handshake_timeout.max(1)),
        },
        nats_url: a.nats_url,
        nats_storage: match a.nats_storage {
            NatsStorage::File => server::bus::BacklogStorage::File,
            NatsStorage::Memory => server::bus::BacklogStorage::Memory,
        },
        nats_backlog_max_age: std::time::Duration::from_secs(a.nats_backlog_max_age),
        capture: a.capture,
        shutdown_grace: std::time::Duration::from_secs(a.shutdown_grace),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(server::run(config))
}
