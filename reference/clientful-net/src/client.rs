//! The driver of one room membership (BRK-19): connects, runs a
//! [`ClientConnection`] (the session and its keepalive timing, decided in
//! `clientful-broker-proto`), keeps the [`Outbox`] across disconnects, wakes the
//! connection when it asks to be, and reconnects with [`Backoff`] when the
//! connection is lost.
//!
//! The same code runs natively (on tokio, over the carriers of [`transport`]) and in
//! the browser (on the page's event loop, over its `WebSocket`): what differs is only
//! [`crate::platform`] (spawn, sleep, the millisecond clock) and the carrier. Channels
//! are `tokio::sync`'s, which need no runtime.

use std::sync::Arc;
use std::time::Duration;

use clientful_core::room::RoomCredentials;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::outbox::Outbox;
use crate::platform::{self, Clock};
use crate::session::{ClientConnection, ClientSession, Output, Resume, is_fatal};
use crate::transport::{self, Endpoint};

/// Tuning of a [`RoomClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// First reconnection delay.
    pub backoff_base: Duration,
    /// Largest reconnection delay.
    pub backoff_max: Duration,
    /// PING interval.
    pub keepalive: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// What happens to the membership.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The room is joined (again); `resumed` as in [`Output::Joined`].
    Joined {
        /// Same broker instance as before.
        resumed: bool,
    },
    /// A payload another member published.
    Deliver(Vec<u8>),
    /// An ephemeral payload.
    Ephemeral(Vec<u8>),
    /// The broker reported an error (BRK-18).
    Error(clientful_broker_proto::frame::ErrorCode),
    /// The connection was lost; reconnecting.
    Disconnected,
    /// The broker refused the protocol version; the client stopped.
    Refused,
}

enum Cmd {
    Publish(Vec<u8>),
    Ephemeral(Vec<u8>),
    Close,
}

/// Handle to a running membership.
#[derive(Clone)]
pub struct RoomClient {
    cmd: mpsc::Sender<Cmd>,
}

impl RoomClient {
    /// Starts keeping `room` joined at `endpoint`. Events arrive on the receiver.
    pub fn spawn(
        endpoint: Endpoint,
        room: Arc<RoomCredentials>,
        options: ClientOptions,
    ) -> (RoomClient, mpsc::Receiver<Event>) {
        let (cmd_tx, cmd_rx) = mpsc::channel(4096);
        let (ev_tx, ev_rx) = mpsc::channel(65_536);
        platform::spawn(drive(endpoint, room, options, cmd_rx, ev_tx));
        (RoomClient { cmd: cmd_tx }, ev_rx)
    }

    /// Publishes a payload: queued in the outbox until the broker acknowledges it.
    pub async fn publish(&self, payload: Vec<u8>) {
        let _ = self.cmd.send(Cmd::Publish(payload)).await;
    }

    /// Sends an ephemeral payload now, or drops it when not joined.
    pub async fn ephemeral(&self, payload: Vec<u8>) {
        let _ = self.cmd.send(Cmd::Ephemeral(payload)).await;
    }

    /// Leaves and stops reconnecting.
    pub async fn close(&self) {
        let _ = self.cmd.send(Cmd::Close).await;
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Without OS randomness the jitter is 0; the backoff still grows.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

enum End {
    Lost,
    Closed,
}

async fn drive(
    endpoint: Endpoint,
    room: Arc<RoomCredentials>,
    options: ClientOptions,
    mut cmds: mpsc::Receiver<Cmd>,
    events: mpsc::Sender<Event>,
) {
    let mut outbox = Outbox::new();
    let mut resume = Resume::default();
    let mut backoff = Backoff::new(options.backoff_base, options.backoff_max);
    // The connection state machines count milliseconds from here.
    let clock = Clock::new();
    loop {
        let connected = transport::connect(&endpoint).await;
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = &connected
            && let Some(tls) = e.downcast_ref::<crate::tls::TlsError>()
        {
            // A certificate the client refuses will not fix itself by retrying:
            // say so where an operator looks.
            tracing::warn!(error = %tls, "broker TLS handshake refused; backing off");
        }
        if let Ok(conn) = connected {
            backoff.reset();
            let mut session = ClientConnection::new(
                ClientSession::new(room.clone(), resume.clone()),
                millis(options.keepalive),
                clock.now_ms(),
            );
            let end = run(conn, &mut session, &mut outbox, &clock, &mut cmds, &events).await;
            resume = session.session().resume().clone();
            match end {
                End::Closed => return,
                End::Lost => {
                    if events.send(Event::Disconnected).await.is_err() {
                        return;
                    }
                }
            }
        } else {
            tracing::debug!("connect failed; backing off");
        }
        let delay = backoff.next_delay(random_u64());
        let mut sleep = std::pin::pin!(platform::sleep(delay));
        // While waiting, publishes go to the outbox; ephemeral ones are dropped.
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Publish(p)) => {
                        if outbox.push(p).is_err() {
                            tracing::warn!("outbox full; publish dropped");
                        }
                    }
                    Some(Cmd::Ephemeral(_)) => {}
                    Some(Cmd::Close) | None => return,
                },
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn run(
    mut conn: transport::Connection,
    session: &mut ClientConnection,
    outbox: &mut Outbox,
    clock: &Clock,
    cmds: &mut mpsc::Receiver<Cmd>,
    events: &mpsc::Sender<Event>,
) -> End {
    if conn.tx.send(session.start()).await.is_err() {
        return End::Lost;
    }
    loop {
        let wait = session.poll_timeout().saturating_sub(clock.now_ms());
        tokio::select! {
            frame = conn.rx.recv() => {
                let Some(frame) = frame else { return End::Lost };
                let mut out = Vec::new();
                if let Err(e) = session.handle(&frame, clock.now_ms(), &mut out) {
                    tracing::warn!(error = %e, "bad frame from broker; reconnecting");
                    return End::Lost;
                }
                for o in out {
                    let ev = match o {
                        Output::Send(b) => {
                            if conn.tx.send(b).await.is_err() {
                                return End::Lost;
                            }
                            continue;
                        }
                        Output::Joined { resumed } => {
                            for (request, payload) in outbox.pending() {
                                if conn.tx.send(session.session().publish(request, payload)).await.is_err() {
                                    return End::Lost;
                                }
                            }
                            Event::Joined { resumed }
                        }
                        Output::Deliver { payload, .. } => Event::Deliver(payload),
                        Output::Ephemeral(p) => Event::Ephemeral(p),
                        Output::Acked(r) => {
                            outbox.ack(r);
                            continue;
                        }
                        Output::Error { code, .. } => {
                            if is_fatal(code) {
                                tracing::info!(code = %code, "broker closed the connection");
                            }
                            Event::Error(code)
                        }
                        Output::Refused { .. } => {
                            let _ = events.send(Event::Refused).await;
                            return End::Closed;
                        }
                    };
                    if events.send(ev).await.is_err() {
                        return End::Closed;
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Publish(p)) => {
                    let copy = p.clone();
                    let request = match outbox.push(p) {
                        Ok(r) => r,
                        Err(_) => {
                            // Full outbox: send without retry rather than not at all.
                            tracing::warn!("outbox full; publishing without retry");
                            0
                        }
                    };
                    let s = session.session();
                    if s.is_joined() && conn.tx.send(s.publish(request, &copy)).await.is_err() {
                        return End::Lost;
                    }
                }
                Some(Cmd::Ephemeral(p)) => {
                    let s = session.session();
                    if s.is_joined() && conn.send_ephemeral(s.ephemeral(&p)).await.is_err() {
                        return End::Lost;
                    }
                }
                Some(Cmd::Close) | None => return End::Closed,
            },
            _ = platform::sleep(Duration::from_millis(wait)) => {
                // BRK-17: the state machine PINGs, or declares a broker that
                // answered nothing for three intervals gone.
                let mut out = Vec::new();
                if let Err(e) = session.handle_timeout(clock.now_ms(), &mut out) {
                    tracing::info!(error = %e, "broker silent; reconnecting");
                    return End::Lost;
                }
                for o in out {
                    if let Output::Send(b) = o
                        && conn.tx.send(b).await.is_err()
                    {
                        return End::Lost;
                    }
                }
            }
        }
    }
}
