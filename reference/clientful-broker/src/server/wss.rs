//! TLS termination for the WebSocket listener (`wss://`, BRK-1 over TLS): a
//! listener that wraps every admitted connection ([`super::guard`]) in a rustls
//! server session, handshaking lazily in the connection's own task (never in
//! the accept loop, so a silent client holds up nobody else).
//!
//! Bounded as plain connections are, and more: the TLS handshake runs beneath
//! the admission stream, so its bytes count against the pre-upgrade byte cap,
//! the HTTP deadline runs from the first byte, and a connection still in its
//! handshake is pending, hence evictable at the connection cap (BRK-LIM-7); on
//! top, the handshake has its own deadline (`--tls-handshake-timeout`).
//! Handshake timeouts and failures are counted as admission refusals.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

use super::guard::{Admission, ConnSlot, GuardedListener, GuardedStream, Refusal, Slot};
use super::tls::Identity;

/// A rustls server config for WebSocket over TLS with `identity` (HTTP/1.1,
/// the ring provider as for QUIC).
pub fn server_config(identity: &Identity) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The HTTP listener with admission control and TLS (an
/// [`axum::serve::Listener`]).
pub struct TlsListener {
    inner: GuardedListener,
    acceptor: TlsAcceptor,
    admission: Arc<Admission>,
}

impl TlsListener {
    /// Terminates TLS with `config` on the connections `inner` admits.
    pub fn new(
        inner: GuardedListener,
        config: rustls::ServerConfig,
        admission: Arc<Admission>,
    ) -> Self {
        TlsListener {
            inner,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            admission,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let slot = stream.slot();
        let timeout = self.admission.limits().tls_handshake_timeout;
        let conn = TlsConn {
            state: State::Handshaking(Box::new(self.acceptor.accept(stream).into_fallible())),
            slot,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            admission: self.admission.clone(),
        };
        (conn, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        axum::serve::Listener::local_addr(&self.inner)
    }
}

enum State {
    Handshaking(Box<tokio_rustls::FallibleAccept<GuardedStream>>),
    Ready(Box<tokio_rustls::server::TlsStream<GuardedStream>>),
    Failed,
}

/// An admitted connection speaking TLS; its handshake completes on first use.
pub struct TlsConn {
    state: State,
    slot: Option<Arc<Slot>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    admission: Arc<Admission>,
}

fn failed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_owned())
}

impl TlsConn {
    /// The pending slot, for the upgrade handler.
    pub(crate) fn slot(&self) -> Option<Arc<Slot>> {
        self.slot.clone()
    }

    /// Drives the handshake; ready once the session is up (or failed).
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let State::Handshaking(accept) = &mut self.state else {
            return Poll::Ready(match self.state {
                State::Failed => Err(failed("TLS handshake failed")),
                _ => Ok(()),
            });
        };
        match Pin::new(accept.as_mut()).poll(cx) {
            Poll::Ready(Ok(session)) => {
                self.state = State::Ready(Box::new(session));
                Poll::Ready(Ok(()))
            }
            // Counted before the state changes: that drops the socket, and the
            // count must be visible before the peer sees the close.
            // The failed handshake hands the socket back (`into_fallible`), so it
            // is closed only after the count.
            Poll::Ready(Err((e, _socket))) => {
                // The admission stream's own closes (deadline, byte cap,
                // eviction) are TimedOut and counted there already.
                if e.kind() != io::ErrorKind::TimedOut {
                    self.admission.refused(Refusal::TlsHandshakeFailed, None);
                }
                self.state = State::Failed;
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                if self.deadline.as_mut().poll(cx).is_ready() {
                    self.admission.refused(Refusal::TlsHandshakeTimeout, None);
                    self.state = State::Failed;
                    return Poll::Ready(Err(failed("TLS handshake timed out")));
                }
                Poll::Pending
            }
        }
    }

    fn session(&mut self) -> io::Result<Pin<&mut tokio_rustls::server::TlsStream<GuardedStream>>> {
        match &mut self.state {
            State::Ready(s) => Ok(Pin::new(s.as_mut())),
            _ => Err(failed("TLS handshake failed")),
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => match this.session() {
                Ok(s) => s.poll_read(cx, buf),
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.poll_handshake(cx) {
            Poll::Ready(Ok(())) => match this.session() {
                Ok(s) => s.poll_write(cx, buf),
                Err(e) => Poll::Ready(Err(e)),
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.state {
            State::Ready(s) => Pin::new(s.as_mut()).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.state {
            State::Ready(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ConnSlot
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        ConnSlot(stream.io().slot())
    }
}
