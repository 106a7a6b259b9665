//! Shared helpers of the broker integration tests: spawn the real broker binary on
//! loopback (this crate's `clientful-broker`; the CLI's end-to-end tests include
//! this file too and run the same server as `clientful broker`), read its announced addresses and pin, talk raw frames, fetch
//! HTTP endpoints, and check capture files for plaintext.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    missing_docs
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clientful_broker::frame;
use clientful_net::transport::Endpoint;
use clientful_proto::v1::BrokerFrame;

/// A running broker process.
pub struct BrokerProc {
    pub child: Child,
    pub ws_url: String,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub pin: [u8; 32],
    /// With `--tls-cert`: the key pin of the `wss://` certificate it announced.
    pub wss_pin: Option<[u8; 32]>,
    pub capture: PathBuf,
}

impl BrokerProc {
    pub fn ws(&self) -> Endpoint {
        Endpoint::WebSocket(self.ws_url.clone())
    }

    pub fn quic(&self) -> Endpoint {
        Endpoint::Quic {
            addr: self.quic,
            pin: self.pin,
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("broker exits")
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker program of the crate under test: `clientful-broker` in the broker
/// crate, `clientful broker` in the CLI crate.
fn broker_program() -> (&'static str, &'static [&'static str]) {
    match (
        option_env!("CARGO_BIN_EXE_clientful-broker"),
        option_env!("CARGO_BIN_EXE_clientful"),
    ) {
        (Some(broker), _) => (broker, &[]),
        (None, Some(cli)) => (cli, &["broker"]),
        (None, None) => panic!("no broker binary in this crate"),
    }
}

/// A loopback port that was free a moment ago (TCP and UDP).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Spawns `clientful-broker` with its HTTP listener on `ws_port` and QUIC on
/// `quic_port` (0: any), a certificate kept in `dir`, capturing to
/// `dir/capture-<tag>.bin`, plus `extra` flags.
pub fn spawn_broker(
    dir: &Path,
    tag: &str,
    ws_port: u16,
    quic_port: u16,
    extra: &[&str],
) -> BrokerProc {
    spawn_broker_via(&[], dir, tag, ws_port, quic_port, extra)
}

/// [`spawn_broker`] through a wrapper command (for example `prlimit --as=N --`),
/// with glibc's malloc arenas capped so an address-space limit measures memory in
/// use rather than reservations.
pub fn spawn_broker_via(
    wrapper: &[&str],
    dir: &Path,
    tag: &str,
    ws_port: u16,
    quic_port: u16,
    extra: &[&str],
) -> BrokerProc {
    let capture = dir.join(format!("capture-{tag}.bin"));
    let log = std::fs::File::create(dir.join(format!("broker-{tag}.log"))).expect("log file");
    let (program, subcommand) = broker_program();
    let mut command = match wrapper.split_first() {
        Some((wrapper, args)) => {
            let mut c = Command::new(wrapper);
            c.args(args).arg(program);
            c
        }
        None => Command::new(program),
    };
    let mut child = command
        .env("MALLOC_ARENA_MAX", "2")
        .args(subcommand)
        .args(["--ws-listen", &format!("127.0.0.1:{ws_port}")])
        .args(["--quic-listen", &format!("127.0.0.1:{quic_port}")])
        .arg("--cert")
        .arg(dir.join(format!("cert-{tag}.pem")))
        .arg("--key")
        .arg(dir.join(format!("key-{tag}.pem")))
        .arg("--capture")
        .arg(&capture)
        .args(["--shutdown-grace", "2"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn clientful-broker");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("broker announces its addresses");
    if line.is_empty() {
        std::thread::sleep(Duration::from_millis(200));
        let log =
            std::fs::read_to_string(dir.join(format!("broker-{tag}.log"))).unwrap_or_default();
        panic!(
            "broker {tag} did not start:\n{log}\n(if another checkout shares CARGO_TARGET_DIR, \
             its build of the broker may have replaced this one)"
        );
    }
    let field = |name: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
            .to_string()
    };
    let http: SocketAddr = field("ws").parse().expect("ws addr");
    let quic: SocketAddr = field("quic").parse().expect("quic addr");
    let pin: [u8; 32] = hex::decode(field("spki-sha256"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let wss_pin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("wss-spki-sha256="))
        .map(|h| hex::decode(h).expect("hex").try_into().expect("32 bytes"));
    BrokerProc {
        child,
        ws_url: format!("ws://{http}/v1/ws"),
        http,
        quic,
        pin,
        wss_pin,
        capture,
    }
}

/// GET `path` over plain HTTP/1.1; returns (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of a metric line (exact name with labels).
pub fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("metric {name} missing in\n{body}"))
}

/// A raw WebSocket connection speaking frames by hand.
pub struct RawWs {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawWs {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        RawWs { ws }
    }

    pub async fn send_bytes(&mut self, b: Vec<u8>) {
        use futures_util::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Binary(b.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, f: BrokerFrame) {
        self.send_bytes(clientful_core::wire::encode(&f)).await;
    }

    /// The next frame, or None when the connection ended (or nothing in 5 s).
    pub async fn recv(&mut self) -> Option<BrokerFrame> {
        self.recv_within(Duration::from_secs(5)).await
    }

    /// The next frame, or None when the connection ended or nothing came in `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<BrokerFrame> {
        use futures_util::StreamExt;
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Binary(b)) => {
                    return Some(
                        frame::decode_raw(&b, usize::MAX).expect("broker sends valid frames"),
                    );
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the connection ends; true if it did within 10 s.
    pub async fn closed(&mut self) -> bool {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// HELLO, expects WELCOME; returns the challenge.
    pub async fn hello(&mut self) -> Vec<u8> {
        self.send(BrokerFrame {
            kind: frame::kind::HELLO,
            version: 1,
            ..Default::default()
        })
        .await;
        let w = self.recv().await.expect("welcome");
        assert_eq!(w.kind, frame::kind::WELCOME);
        w.nonce
    }
}

/// Every frame of a capture file.
pub fn capture_frames(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("capture file");
    clientful_broker::server::capture::parse(&bytes)
        .into_iter()
        .map(|(_, _, _, f)| f)
        .collect()
}

/// Asserts that no frame of the capture contains any needle; returns the number of
/// frames checked.
pub fn assert_capture_clean(path: &Path, needles: &[(&str, Vec<u8>)]) -> usize {
    let frames = capture_frames(path);
    assert!(!frames.is_empty(), "capture {} is empty", path.display());
    for (i, f) in frames.iter().enumerate() {
        for (what, needle) in needles {
            assert!(!needle.is_empty());
            assert!(
                !f.windows(needle.len()).any(|w| w == needle.as_slice()),
                "frame {i} of {} contains the {what}",
                path.display()
            );
        }
    }
    frames.len()
}

/// A self-signed certificate for `names` (DNS names or IP addresses) with a new
/// key, written to `dir/tls-<tag>.pem` and `dir/tls-<tag>.key`; returns the two
/// paths and the certificate's DER.
pub fn write_self_signed(dir: &Path, tag: &str, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
    let pair = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&pair).expect("self-signed");
    let cert_path = dir.join(format!("tls-{tag}.pem"));
    let key_path = dir.join(format!("tls-{tag}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, pair.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.der().to_vec())
}

/// The `--tls-cert`/`--tls-key` flags for [`spawn_broker`].
pub fn tls_flags<'a>(cert: &'a Path, key: &'a Path) -> [&'a str; 4] {
    [
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ]
}

/// Client options that reconnect and ping quickly, for tests.
pub fn fast_options() -> clientful_net::client::ClientOptions {
    clientful_net::client::ClientOptions {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        keepalive: Duration::from_millis(500),
    }
}

/// The room of a test world's space under its current epoch.
pub fn room_of(
    world: &clientful_doc::testkit::World,
) -> std::sync::Arc<clientful_core::room::RoomCredentials> {
    std::sync::Arc::new(
        clientful_core::room::RoomCredentials::derive(&world.space_id, &world.epoch_key())
            .expect("room"),
    )
}
