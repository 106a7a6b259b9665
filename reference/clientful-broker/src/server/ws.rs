//! The HTTP listener: WebSocket at `/v1/ws` (binary messages, one frame each,
//! BRK-1), `/healthz` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;

use super::{Out, Shared};

/// Serves until `stop` is notified.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
) {
    let app = Router::new()
        .route("/v1/ws", get(upgrade))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let stopped = async move { stop.notified().await };
    // TCP_NODELAY: frames are small and latency-bound; with Nagle's algorithm a
    // DELIVER waits for the ACK of the previous one (milliseconds with delayed
    // ACKs; clientful-bench measured a 2.8 ms median fan-out latency without it).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
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

async fn upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    // Larger messages than the frame limit are still read up to twice the limit,
    // so the broker can answer FRAME_TOO_LARGE; beyond that the socket is cut.
    let limit = shared.max_frame.saturating_mul(2);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(socket, shared))
}

/// Frames written to the socket at once, at most.
const WRITE_BATCH: usize = 64;

async fn connection(socket: WebSocket, shared: Arc<Shared>) {
    let (id, mut rx, kill) = shared.register(b'W', None);
    shared.opened(b'W');
    let (mut sink, mut stream) = socket.split();
    let writer_kill = kill.clone();
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
                        if sink.feed(Message::Binary(b)).await.is_err() {
                            break 'conn;
                        }
                    }
                    Out::Close => {
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
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            },
            _ = kill.notified() => break,
        }
    }
    writer.abort();
    shared.on_closed(id);
}
