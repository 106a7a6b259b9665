//! The carriers (BRK-1): WebSocket binary messages, or a QUIC connection with one
//! bidirectional stream of u32be length-prefixed frames plus datagrams for
//! ephemeral frames. The QUIC client pins the SHA-256 of the broker certificate's
//! SubjectPublicKeyInfo (BRK-20), so a certificate re-issued over the same key
//! still matches. Each connection is split into a reader task and a writer task joined
//! by bounded channels.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::session::CLIENT_MAX_FRAME;

/// ALPN of the broker protocol over QUIC.
pub const ALPN: &[u8] = b"clientful-broker/1";

/// Where a broker listens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoint {
    /// `ws://host:port/v1/ws`.
    WebSocket(String),
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
        Endpoint::WebSocket(url) => connect_ws(url).await,
        Endpoint::Quic { addr, pin } => connect_quic(*addr, *pin).await,
    }
}

const QUEUE: usize = 1024;

async fn connect_ws(url: &str) -> Result<Connection> {
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_message_size = Some(CLIENT_MAX_FRAME);
    config.max_frame_size = Some(CLIENT_MAX_FRAME);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connecting to {url}"))?;
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
    Ok(Connection {
        tx,
        rx,
        quic: None,
        tasks: vec![writer, reader],
        _endpoint: None,
    })
}

#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A certificate that does not parse cannot match; the handshake signature
        // (verify_tls13_signature) then proves the broker holds the pinned key.
        let got = clientful_broker_proto::pin::spki_sha256(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A quinn client config that accepts exactly a broker whose certificate's
/// SubjectPublicKeyInfo hashes to `pin` (BRK-20).
pub fn quic_client_config(pin: [u8; 32]) -> Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
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
