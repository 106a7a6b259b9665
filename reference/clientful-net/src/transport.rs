//! The carriers (BRK-1): WebSocket binary messages (`ws://`, or `wss://` over
//! TLS trusted as [`TlsTrust`] says), or a QUIC connection with one
//! bidirectional stream of u32be length-prefixed frames plus datagrams for
//! ephemeral frames. The QUIC client pins the SHA-256 of the broker certificate's
//! SubjectPublicKeyInfo (BRK-20), so a certificate re-issued over the same key
//! still matches; a `wss://` client may pin the same way ([`TlsTrust::Pin`]).
//! Each connection is split into a reader task and a writer task joined by
//! bounded channels. A TLS failure is a [`tls::TlsError`] inside the returned
//! error (`anyhow::Error::downcast_ref`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quinn::crypto::rustls::QuicClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::session::CLIENT_MAX_FRAME;
use crate::tls::{self, Pinned, TlsTrust};

/// ALPN of the broker protocol over QUIC.
pub const ALPN: &[u8] = b"clientful-broker/1";

/// Where a broker listens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoint {
    /// `ws://host:port/v1/ws`, or `wss://host:port/v1/ws` trusted by the
    /// platform's roots ([`TlsTrust::System`]).
    WebSocket(String),
    /// `wss://host:port/v1/ws` with the trust given.
    SecureWebSocket {
        /// The `wss://` URL.
        url: String,
        /// How the broker's certificate is trusted (roots or a key pin).
        trust: TlsTrust,
    },
    /// QUIC address and the broker's key pin.
    Quic {
        /// UDP address.
        addr: SocketAddr,
        /// SHA-256 of the broker certificate's SubjectPublicKeyInfo DER, as the
        /// broker prints it (`spki-sha256=`).
        pin: [u8; 32],
    },
}

/// An open connection: frames in, frames out.
pub struct Connection {
    /// Frames to the broker (stream / WebSocket).
    pub tx: mpsc::Sender<Vec<u8>>,
    /// Frames from the broker (stream, WebSocket, or datagrams).
    pub rx: mpsc::Receiver<Bytes>,
    /// For QUIC: datagrams for ephemeral frames.
    pub quic: Option<quinn::Connection>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _endpoint: Option<quinn::Endpoint>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(q) = &self.quic {
            q.close(0u32.into(), b"bye");
        }
    }
}

impl Connection {
    /// Sends an ephemeral frame: a datagram over QUIC when it fits, else the stream.
    pub async fn send_ephemeral(&self, frame: Vec<u8>) -> Result<()> {
        if let Some(q) = &self.quic
            && q.max_datagram_size().is_some_and(|m| frame.len() <= m)
        {
            q.send_datagram(Bytes::from(frame))?;
            return Ok(());
        }
        self.tx.send(frame).await.context("connection closed")
    }
}

/// Connects to `endpoint`.
pub async fn connect(endpoint: &Endpoint) -> Result<Connection> {
    match endpoint {
        Endpoint::WebSocket(url) if is_wss(url) => connect_wss(url, &TlsTrust::System).await,
        Endpoint::WebSocket(url) => connect_ws(url).await,
        Endpoint::SecureWebSocket { url, trust } => connect_wss(url, trust).await,
        Endpoint::Quic { addr, pin } => connect_quic(*addr, *pin).await,
    }
}

const QUEUE: usize = 1024;

/// How long a `wss://` broker has to complete the TLS handshake (a silent
/// server must not hold a connect forever).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

fn is_wss(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("wss://"))
}

fn ws_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(CLIENT_MAX_FRAME);
    config.max_frame_size = Some(CLIENT_MAX_FRAME);
    config
}

async fn connect_ws(url: &str) -> Result<Connection> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(carry(ws))
}

/// `wss://`: TCP, then TLS (rustls) trusted as `trust` says, then the WebSocket
/// handshake over it. TLS failures are a [`tls::TlsError`] in the error chain.
async fn connect_wss(url: &str, trust: &TlsTrust) -> Result<Connection> {
    let request = url
        .into_client_request()
        .with_context(|| format!("broker URL {url}"))?;
    let host = request
        .uri()
        .host()
        .with_context(|| format!("broker URL {url} has no host"))?
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(443);
    let config = tls::client_config(trust).with_context(|| format!("connecting to {url}"))?;
    let name = tls::server_name(&host).with_context(|| format!("connecting to {url}"))?;
    let bare = name.to_str().into_owned();
    let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    // Frames are small and latency-bound (as for ws://).
    tcp.set_nodelay(true)?;
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp);
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(done) => done.map_err(|e| tls::classify(e, trust, &host)),
        Err(_) => Err(tls::TlsError::Timeout(TLS_HANDSHAKE_TIMEOUT)),
    }
    .with_context(|| format!("connecting to {url}"))?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(carry(ws))
}

/// Splits a WebSocket into its reader and writer tasks.
fn carry<S>(ws: WebSocketStream<S>) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let (in_tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            if sink.send(Message::Binary(Bytes::from(f))).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if in_tx.send(b.clone()).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    Connection {
        tx,
        rx,
        quic: None,
        tasks: vec![writer, reader],
        _endpoint: None,
    }
}

/// A quinn client config that accepts exactly a broker whose certificate's
/// SubjectPublicKeyInfo hashes to `pin` (BRK-20).
pub fn quic_client_config(pin: [u8; 32]) -> Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned::new(pin, provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls)?,
    )))
}

async fn connect_quic(addr: SocketAddr, pin: [u8; 32]) -> Result<Connection> {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(quic_client_config(pin)?);
    let conn = endpoint
        .connect(addr, "localhost")?
        .await
        .with_context(|| format!("QUIC connect to {addr}"))?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let (tx, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let (in_tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            let len = u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes();
            if send.write_all(&len).await.is_err() || send.write_all(&f).await.is_err() {
                break;
            }
        }
        let _ = send.finish();
    });
    let stream_tx = in_tx.clone();
    let reader_conn = conn.clone();
    let reader = tokio::spawn(async move {
        loop {
            let mut len = [0u8; 4];
            if recv.read_exact(&mut len).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > CLIENT_MAX_FRAME {
                break;
            }
            let mut buf = vec![0u8; len];
            if recv.read_exact(&mut buf).await.is_err() {
                break;
            }
            if stream_tx.send(Bytes::from(buf)).await.is_err() {
                break;
            }
        }
        // The stream ended: end the connection too, so the datagram task stops
        // and the session sees the disconnect.
        reader_conn.close(0u32.into(), b"stream ended");
    });
    let dg_conn = conn.clone();
    let datagrams = tokio::spawn(async move {
        while let Ok(d) = dg_conn.read_datagram().await {
            // Datagrams are best effort: drop when the reader is behind.
            let _ = in_tx.try_send(d);
        }
    });
    Ok(Connection {
        tx,
        rx,
        quic: Some(conn),
        tasks: vec![writer, reader, datagrams],
        _endpoint: Some(endpoint),
    })
}
