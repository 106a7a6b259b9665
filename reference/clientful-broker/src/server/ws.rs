//! The HTTP listener: WebSocket at `/v1/ws` (binary messages, one frame each,
//! BRK-1), `/healthz` and `/metrics`, behind admission control ([`super::guard`]),
//! over TLS when the broker has a `--tls-cert` ([`super::wss`]).
//! A connection the broker closes gets a WebSocket close status (1008 policy,
//! 1009 too big, 1001 going away, 1011 internal) after its last ERROR, and its
//! input is drained for a moment so the peer reads them before the socket goes.

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;

use super::guard::{ConnSlot, GuardedListener};
use super::wss::TlsListener;
use super::{CloseReason, Out, Shared, close_status};

/// How long a closed connection's input is still read (and discarded), so that
/// a peer still sending gets the final ERROR and close instead of a TCP reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves until `stop` is notified: plain HTTP, or HTTPS (`wss://`) when `tls`
/// is given ([`super::wss`]).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
) {
    let admission = shared.admission.clone();
    let listener = GuardedListener::new(listener, admission.clone());
    let app = Router::new()
        .route("/v1/ws", get(upgrade))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let stopped = async move { stop.notified().await };
    let result = match tls {
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<ConnSlot>(),
            )
            .with_graceful_shutdown(stopped)
            .await
        }
        Some(config) => {
            axum::serve(
                TlsListener::new(listener, config, admission),
                app.into_make_service_with_connect_info::<ConnSlot>(),
            )
            .with_graceful_shutdown(stopped)
            .await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let down = shared
        .broker
        .lock()
        .map(|b| b.is_shutting_down())
        .unwrap_or(true);
    if down {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n",
        )
    } else {
        (axum::http::StatusCode::OK, "ok\n")
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        shared.metrics(),
    )
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(slot): ConnectInfo<ConnSlot>,
) -> impl IntoResponse {
    // The request is complete: from here the HELLO timeout of the state machine
    // (BRK-17) bounds the connection, not the HTTP deadline.
    if let Some(s) = &slot.0 {
        shared.admission.establish(s);
    }
    // Larger messages than the frame limit are still read up to twice the limit,
    // so the broker can answer FRAME_TOO_LARGE; beyond that the socket is cut.
    let limit = shared.max_frame.saturating_mul(2);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| connection(socket, shared))
}

/// The WebSocket read buffer of each connection. tungstenite's default is
/// 128 KiB, zero-filled on the first read, so every idle connection kept 128 KiB
/// resident (clientful-bench, memory section: 138 KB per idle connection against
/// y-websocket's 12 KB). A frame larger than the buffer is still read whole
/// (tungstenite reserves its length); the buffer only bounds how much one `recv`
/// takes, and 4 KiB still holds about 20 publishes of a busy room (the fan-out
/// rows of the same bench run show the throughput it keeps).
const READ_BUFFER: usize = 4 * 1024;

/// Frames written to the socket at once, at most.
const WRITE_BATCH: usize = 64;

async fn connection(socket: WebSocket, shared: Arc<Shared>) {
    let (id, mut rx, queued, kill) = shared.register(b'W', None);
    shared.opened(b'W');
    let (mut sink, mut stream) = socket.split();
    let writer_kill = kill.clone();
    let writer_shared = shared.clone();
    let writer = tokio::spawn(async move {
        // Frames already queued go out in one write: the socket send, not the
        // broker, is the cost of a delivery (clientful-bench's profile: 87% of the
        // broker's time in `send` with one per frame).
        'conn: while let Some(first) = rx.recv().await {
            let mut item = Some(first);
            let mut batched = 0;
            while let Some(it) = item.take() {
                match it {
                    Out::Frame(b) => {
                        let len = b.len();
                        let fed = sink.feed(Message::Binary(b)).await;
                        queued.sent(&writer_shared, len);
                        if fed.is_err() {
                            break 'conn;
                        }
                    }
                    Out::Close(why) => {
                        let frame = CloseFrame {
                            code: close_status(why),
                            reason: match why {
                                CloseReason::Internal => "".into(),
                                CloseReason::Error(code) => code.name().into(),
                            },
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        let _ = sink.close().await;
                        break 'conn;
                    }
                }
                batched += 1;
                if batched < WRITE_BATCH {
                    item = rx.try_recv().ok();
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        writer_kill.notify_one();
    });
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => shared.on_frame(id, b'W', &b, false),
                // A text message is not a frame (BRK-1): it fails the frame decoder.
                Some(Ok(Message::Text(t))) => shared.on_frame(id, b'W', t.as_bytes(), false),
                // Control messages cost tokens like frames (BRK-LIM-3).
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => shared.on_control(id),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            },
            _ = kill.notified() => {
                // Closed by the broker: let the writer finish its close, and keep
                // reading (discarding) until the peer closes or LINGER passes.
                let _ = tokio::time::timeout(LINGER, async {
                    while let Some(Ok(_)) = stream.next().await {}
                })
                .await;
                break;
            }
        }
    }
    writer.abort();
    shared.on_closed(id);
}
