//! The browser carrier (BRK-1): the page's own `WebSocket` (`web_sys::WebSocket`) with
//! binary messages. `ws://` and `wss://` are both the browser's business: TLS and its
//! trust are the browser's (its roots, HSTS, mixed-content rules), so there is no
//! [`crate::tls`] here and no QUIC. The connection hands the driver in `crate::client`
//! the same two things the native carriers do, frames in and frames out, so the
//! session, keepalive, outbox and resume logic is the same code as natively.
//!
//! Incoming messages are queued by the socket's `message` callback; `close` or `error`
//! ends the queue, which the driver sees as a lost connection (and then reconnects).
//! A message larger than [`CLIENT_MAX_FRAME`] closes the socket.
//!
//! The global `offline` event (window or worker) also ends the connection: when the
//! browser says the network is gone, a socket opened over it is dead or about to be,
//! and Chromium keeps an established WebSocket open through its own offline state
//! (`context.setOffline`, DevTools' offline mode), where the keepalive would only
//! notice after three silent intervals. Reconnecting then fails until the browser is
//! back online, and the driver's backoff spaces the attempts.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, Event, EventTarget, MessageEvent, WebSocket};

use crate::session::CLIENT_MAX_FRAME;

/// Where a broker listens: in the browser, a `ws://` or `wss://` URL
/// (`…/v1/ws`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Endpoint {
    /// `ws://host:port/v1/ws` or `wss://host:port/v1/ws`; the browser does TLS.
    WebSocket(String),
}

/// The sending half of an open connection.
pub struct Sender {
    ws: WebSocket,
    open: Rc<RefCell<bool>>,
}

/// The connection is closed.
#[derive(Debug, thiserror::Error)]
#[error("connection closed")]
pub struct Closed;

impl Sender {
    /// Sends one frame as a binary message.
    pub async fn send(&self, frame: Vec<u8>) -> Result<(), Closed> {
        if !*self.open.borrow() {
            return Err(Closed);
        }
        self.ws.send_with_u8_array(&frame).map_err(|_| Closed)
    }
}

type Callbacks = (
    Closure<dyn FnMut(MessageEvent)>,
    Closure<dyn FnMut(CloseEvent)>,
    Closure<dyn FnMut(Event)>,
    Closure<dyn FnMut(Event)>,
    Closure<dyn FnMut(Event)>,
);

/// An open connection: frames in, frames out.
pub struct Connection {
    /// Frames to the broker.
    pub tx: Sender,
    /// Frames from the broker; `None` once the socket closed.
    pub rx: mpsc::UnboundedReceiver<Bytes>,
    _callbacks: Callbacks,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let ws = &self.tx.ws;
        ws.set_onmessage(None);
        ws.set_onclose(None);
        ws.set_onerror(None);
        ws.set_onopen(None);
        let _ = js_sys::global()
            .unchecked_into::<EventTarget>()
            .remove_event_listener_with_callback(
                "offline",
                self._callbacks.4.as_ref().unchecked_ref(),
            );
        let _ = ws.close();
    }
}

impl Connection {
    /// Sends an ephemeral frame (on a WebSocket, like any frame).
    pub async fn send_ephemeral(&self, frame: Vec<u8>) -> Result<(), Closed> {
        self.tx.send(frame).await
    }
}

/// Connects to `endpoint`: resolves once the socket is open, fails if it closes or
/// errs first (unreachable broker, refused handshake, the browser offline).
pub async fn connect(endpoint: &Endpoint) -> Result<Connection> {
    let Endpoint::WebSocket(url) = endpoint;
    let ws = WebSocket::new(url).map_err(|e| anyhow!("broker URL {url}: {e:?}"))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let (in_tx, rx) = mpsc::unbounded_channel::<Bytes>();
    // The one sender of incoming frames; dropped on close so the driver sees the end.
    let inbox = Rc::new(RefCell::new(Some(in_tx)));
    let open = Rc::new(RefCell::new(false));
    let (opened_tx, opened_rx) = oneshot::channel::<bool>();
    let opened = Rc::new(RefCell::new(Some(opened_tx)));

    let on_message = {
        let inbox = inbox.clone();
        let ws = ws.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let Ok(buf) = e.data().dyn_into::<js_sys::ArrayBuffer>() else {
                // Text messages are not part of the protocol.
                return;
            };
            let bytes = js_sys::Uint8Array::new(&buf).to_vec();
            let mut slot = inbox.borrow_mut();
            if bytes.len() > CLIENT_MAX_FRAME {
                *slot = None;
                let _ = ws.close();
                return;
            }
            if let Some(tx) = slot.as_ref()
                && tx.send(Bytes::from(bytes)).is_err()
            {
                *slot = None;
            }
        })
    };
    let end = {
        let inbox = inbox.clone();
        let open = open.clone();
        let opened = opened.clone();
        move || {
            *open.borrow_mut() = false;
            inbox.borrow_mut().take();
            if let Some(tx) = opened.borrow_mut().take() {
                let _ = tx.send(false);
            }
        }
    };
    let on_close = {
        let end = end.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| end())
    };
    let on_error = {
        let end = end.clone();
        Closure::<dyn FnMut(Event)>::new(move |_: Event| end())
    };
    let on_offline = {
        let ws = ws.clone();
        Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let _ = ws.close();
            end();
        })
    };
    let on_open = {
        let open = open.clone();
        Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            *open.borrow_mut() = true;
            if let Some(tx) = opened.borrow_mut().take() {
                let _ = tx.send(true);
            }
        })
    };
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    js_sys::global()
        .unchecked_into::<EventTarget>()
        .add_event_listener_with_callback("offline", on_offline.as_ref().unchecked_ref())
        .map_err(|e| anyhow!("listening for the offline event: {e:?}"))?;
    let connection = Connection {
        tx: Sender { ws, open },
        rx,
        _callbacks: (on_message, on_close, on_error, on_open, on_offline),
    };
    match opened_rx.await {
        Ok(true) => Ok(connection),
        _ => Err(anyhow!(
            "connecting to {url}: the socket closed before it opened"
        )),
    }
}
