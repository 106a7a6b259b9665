//! The QUIC listener (BRK-1): ALPN `clientful-broker/1`; the client opens one
//! bidirectional stream carrying u32be length-prefixed frames; datagrams carry
//! single EPHEMERAL frames.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use quinn::crypto::rustls::QuicServerConfig;

use super::tls::Identity;
use super::{Out, Shared};

/// The ALPN protocol id of the broker protocol over QUIC.
pub const ALPN: &[u8] = b"clientful-broker/1";

/// A bound server endpoint.
pub fn endpoint(addr: SocketAddr, id: &Identity) -> Result<quinn::Endpoint> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.certs.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_idle_timeout(Some(Duration::from_secs(90).try_into()?));
    server.transport_config(Arc::new(transport));
    // Handshakes in progress at once; beyond, new ones are refused by quinn.
    server.max_incoming(4096);
    // Every QUIC connection shares this one socket: a burst of handshakes (each
    // client Initial is a padded 1,200-byte datagram) overflows the kernel's
    // default receive buffer (about 208 KiB) and costs the dropped clients a
    // retransmission timeout. Ask for RECV_BUFFER (the kernel caps it at
    // `net.core.rmem_max`).
    let socket = std::net::UdpSocket::bind(addr)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    if let Err(e) = state.set_recv_buffer_size((&socket).into(), RECV_BUFFER) {
        tracing::debug!(error = %e, "QUIC socket receive buffer not raised");
    }
    let runtime = quinn::default_runtime().ok_or_else(|| anyhow::anyhow!("no async runtime"))?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        runtime,
    )?)
}

/// Receive buffer asked for the QUIC socket.
const RECV_BUFFER: usize = 4 << 20;

/// Accepts connections until the endpoint closes. The handshake and the stream
/// opening have `quic_handshake_timeout` together; admission (connection cap,
/// per-address limits, BRK-LIM-7) is decided once the handshake has validated
/// the peer's address.
pub(crate) async fn serve(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let limit = shared.admission.limits().quic_handshake_timeout;
            let deadline = tokio::time::Instant::now() + limit;
            let conn = match tokio::time::timeout_at(deadline, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return tracing::debug!(error = %e, "QUIC handshake failed"),
                Err(_) => {
                    return shared
                        .admission
                        .refused(super::guard::Refusal::QuicHandshakeTimeout, None);
                }
            };
            let Ok((ticket, _)) = shared
                .admission
                .admit(conn.remote_address().ip(), false, Duration::from_secs(2))
                .await
            else {
                conn.close(2u32.into(), b"refused");
                return;
            };
            let stream = match tokio::time::timeout_at(deadline, conn.accept_bi()).await {
                Ok(Ok(s)) => s,
                Ok(Err(_)) => return,
                Err(_) => {
                    shared
                        .admission
                        .refused(super::guard::Refusal::QuicHandshakeTimeout, None);
                    conn.close(1u32.into(), b"no stream");
                    return;
                }
            };
            connection(conn, stream, shared).await;
            drop(ticket);
        });
    }
}

async fn connection(
    conn: quinn::Connection,
    (mut send, mut recv): (quinn::SendStream, quinn::RecvStream),
    shared: Arc<Shared>,
) {
    let (id, mut rx, queued, kill) = shared.register(b'Q', Some(conn.clone()));
    shared.opened(b'Q');
    let writer_kill = kill.clone();
    let writer_conn = conn.clone();
    let writer_shared = shared.clone();
    let writer = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            match item {
                Out::Frame(b) => {
                    let len = u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes();
                    let ok = send.write_all(&len).await.is_ok() && send.write_all(&b).await.is_ok();
                    queued.sent(&writer_shared, b.len());
                    if !ok {
                        break;
                    }
                }
                Out::Close(_) => {
                    let _ = send.finish();
                    // Give the peer a moment to read what was queued, then close.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), writer_conn.closed()).await;
                    writer_conn.close(0u32.into(), b"closed");
                    break;
                }
            }
        }
        writer_kill.notify_one();
    });
    let max = shared.max_frame;
    let dg_conn = conn.clone();
    let dg_shared = shared.clone();
    let datagrams = tokio::spawn(async move {
        while let Ok(d) = dg_conn.read_datagram().await {
            dg_shared.on_frame(id, b'D', &d, true);
        }
    });
    let reader = async {
        loop {
            let mut len = [0u8; 4];
            if recv.read_exact(&mut len).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > max {
                shared.on_oversized(id);
                break;
            }
            let mut buf = vec![0u8; len];
            if recv.read_exact(&mut buf).await.is_err() {
                break;
            }
            shared.on_frame(id, b'Q', &buf, false);
        }
    };
    tokio::select! {
        _ = reader => {
            // Let a queued ERROR reach the peer before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), kill.notified()).await;
        }
        _ = kill.notified() => {}
    }
    datagrams.abort();
    writer.abort();
    conn.close(0u32.into(), b"closed");
    shared.on_closed(id);
}
