//! Fan-out between broker processes over NATS (BRK-21) and, with a backlog, the
//! shared backlog in NATS JetStream (BRK-22).
//!
//! Subjects, per room (`<hex>` is the room id in lowercase hex):
//!
//! * `clientful.room.<hex>`: published payloads, `origin (16) || sender (u64be) ||
//!   payload`, where `origin` is the publishing broker's random instance tag and
//!   `sender` its connection handle. With a shared backlog these subjects are
//!   captured by the JetStream stream [`STREAM_NAME`], which numbers them.
//! * `clientful.ephemeral.<hex>`: ephemeral payloads, `origin (16) || payload`;
//!   core NATS only, never stored.
//!
//! A broker subscribes to a room while it has a local member. Without a shared
//! backlog it subscribes to both subjects with core NATS and ignores its own
//! messages; with one, it reads the room subject through an ordered JetStream
//! consumer starting after the stream's last sequence number, its own messages
//! included (they come back numbered).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use crate::state::{BusMessage, ConnId, RoomId};

/// Subject prefix of published payloads.
pub const ROOM_SUBJECT_PREFIX: &str = "clientful.room.";
/// Subject prefix of ephemeral payloads.
pub const EPHEMERAL_SUBJECT_PREFIX: &str = "clientful.ephemeral.";
/// The JetStream stream holding the shared backlog.
pub const STREAM_NAME: &str = "CLIENTFUL_ROOMS";
/// Label of the stream id derivation (BRK-22).
const STREAM_ID_LABEL: &[u8] = b"clientful broker stream v1";

/// Where JetStream keeps the shared backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BacklogStorage {
    /// On the NATS server's disk (survives a NATS restart).
    #[default]
    File,
    /// In the NATS server's memory.
    Memory,
}

/// The shared backlog's settings.
#[derive(Debug, Clone)]
pub struct SharedBacklog {
    /// Payloads kept per room (JetStream `max_msgs_per_subject`).
    pub per_room: usize,
    /// Storage.
    pub storage: BacklogStorage,
    /// Entries older than this are dropped (zero: never).
    pub max_age: Duration,
}

enum Cmd {
    Publish {
        room: RoomId,
        ephemeral: bool,
        sender: ConnId,
        request: u32,
        payload: Bytes,
    },
    Subscribe {
        room: RoomId,
        generation: u64,
    },
    Unsubscribe(RoomId),
    Replay {
        conn: ConnId,
        room: RoomId,
        from: u64,
        to: u64,
    },
}

/// What the bus reports to the broker.
pub(crate) enum Remote {
    /// A payload for a room with local members.
    Message(BusMessage),
    /// The subscription to a room is in place (the server confirmed it).
    Subscribed {
        room: RoomId,
        generation: u64,
        next_seq: Option<u64>,
    },
    /// Shared backlog: a local PUBLISH was stored as `seq`.
    Stored {
        conn: ConnId,
        room: RoomId,
        request: u32,
        seq: u64,
    },
    /// Shared backlog: a local PUBLISH could not be stored.
    StoreFailed,
    /// Shared backlog: the fetched entries of a replay.
    Replayed {
        conn: ConnId,
        room: RoomId,
        entries: Vec<(u64, Bytes)>,
    },
}

/// The bus handle: commands go to one task, in order.
pub(crate) struct Bus {
    tx: mpsc::Sender<Cmd>,
}

/// The subject of a room's published payloads.
pub fn room_subject(room: &RoomId) -> String {
    format!("{ROOM_SUBJECT_PREFIX}{}", hex::encode(room))
}

/// The subject of a room's ephemeral payloads.
pub fn ephemeral_subject(room: &RoomId) -> String {
    format!("{EPHEMERAL_SUBJECT_PREFIX}{}", hex::encode(room))
}

/// The stream id announced in JOINED with a shared backlog (BRK-22): the first 16
/// bytes of SHA-256(label || 0x00 || stream name || 0x00 || creation time in
/// nanoseconds since the Unix epoch, ASCII decimal).
pub fn shared_stream_id(name: &str, created_unix_nanos: i128) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(STREAM_ID_LABEL);
    h.update([0]);
    h.update(name.as_bytes());
    h.update([0]);
    h.update(created_unix_nanos.to_string().as_bytes());
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
    id
}

fn encode_room_message(origin: &[u8; 16], sender: ConnId, payload: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(24 + payload.len());
    b.extend_from_slice(origin);
    b.extend_from_slice(&sender.to_be_bytes());
    b.extend_from_slice(payload);
    Bytes::from(b)
}

/// Splits `origin || sender || payload`; `None` if too short.
fn decode_room_message(body: &Bytes) -> Option<([u8; 16], ConnId, Bytes)> {
    let origin: [u8; 16] = body.get(..16)?.try_into().ok()?;
    let sender = u64::from_be_bytes(body.get(16..24)?.try_into().ok()?);
    Some((origin, sender, body.slice(24..)))
}

fn stream_config(settings: &SharedBacklog) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: STREAM_NAME.to_string(),
        subjects: vec![format!("{ROOM_SUBJECT_PREFIX}*")],
        max_messages_per_subject: i64::try_from(settings.per_room).unwrap_or(i64::MAX),
        discard: jetstream::stream::DiscardPolicy::Old,
        storage: match settings.storage {
            BacklogStorage::File => jetstream::stream::StorageType::File,
            BacklogStorage::Memory => jetstream::stream::StorageType::Memory,
        },
        max_age: settings.max_age,
        allow_direct: true,
        ..Default::default()
    }
}

struct Js {
    context: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl Bus {
    /// Connects to NATS at `url`; with `shared`, also gets or creates the JetStream
    /// stream and returns its stream id (BRK-22).
    pub(crate) async fn connect(
        url: &str,
        origin: [u8; 16],
        shared: Option<&SharedBacklog>,
    ) -> Result<(Self, mpsc::Receiver<Remote>, Option<[u8; 16]>)> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let mut stream_id = None;
        let js = match shared {
            None => None,
            Some(settings) => {
                let context = jetstream::new(client.clone());
                let wanted = stream_config(settings);
                let mut stream = context
                    .get_or_create_stream(wanted.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("JetStream stream {STREAM_NAME}: {e}"))?;
                let info = stream
                    .info()
                    .await
                    .map_err(|e| anyhow::anyhow!("JetStream stream {STREAM_NAME} info: {e}"))?;
                let have = &info.config;
                if have.max_messages_per_subject != wanted.max_messages_per_subject
                    || have.storage != wanted.storage
                    || have.max_age != wanted.max_age
                    || have.subjects != wanted.subjects
                    || !have.allow_direct
                {
                    tracing::warn!(
                        stream = STREAM_NAME,
                        per_room = have.max_messages_per_subject,
                        storage = ?have.storage,
                        max_age = ?have.max_age,
                        "the JetStream stream exists with other settings than this broker's; using it as it is"
                    );
                }
                let id = shared_stream_id(&info.config.name, info.created.unix_timestamp_nanos());
                tracing::info!(
                    stream = STREAM_NAME,
                    stream_id = %hex::encode(id),
                    last_seq = info.state.last_sequence,
                    "shared backlog in JetStream"
                );
                stream_id = Some(id);
                Some(Arc::new(Js { context, stream }))
            }
        };
        let (tx, rx) = mpsc::channel::<Cmd>(65_536);
        let (remote_tx, remote_rx) = mpsc::channel::<Remote>(65_536);
        tokio::spawn(command_loop(client, js, origin, rx, remote_tx));
        Ok((Bus { tx }, remote_rx, stream_id))
    }

    pub(crate) fn subscribe(&self, room: RoomId, generation: u64) -> bool {
        self.tx
            .try_send(Cmd::Subscribe { room, generation })
            .is_ok()
    }

    pub(crate) fn unsubscribe(&self, room: RoomId) {
        let _ = self.tx.try_send(Cmd::Unsubscribe(room));
    }

    /// Queues a publish; false if the bus queue is full (the message is dropped).
    pub(crate) fn publish(
        &self,
        room: RoomId,
        ephemeral: bool,
        sender: ConnId,
        request: u32,
        payload: Bytes,
    ) -> bool {
        self.tx
            .try_send(Cmd::Publish {
                room,
                ephemeral,
                sender,
                request,
                payload,
            })
            .is_ok()
    }

    /// Queues a backlog fetch; false if the bus queue is full.
    pub(crate) fn replay(&self, conn: ConnId, room: RoomId, from: u64, to: u64) -> bool {
        self.tx
            .try_send(Cmd::Replay {
                conn,
                room,
                from,
                to,
            })
            .is_ok()
    }
}

type Tasks = Arc<Mutex<HashMap<RoomId, Vec<JoinHandle<()>>>>>;

async fn command_loop(
    client: async_nats::Client,
    js: Option<Arc<Js>>,
    origin: [u8; 16],
    mut rx: mpsc::Receiver<Cmd>,
    remote_tx: mpsc::Sender<Remote>,
) {
    let subs: Tasks = Arc::default();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Publish {
                room,
                ephemeral: true,
                payload,
                ..
            } => {
                let mut b = Vec::with_capacity(16 + payload.len());
                b.extend_from_slice(&origin);
                b.extend_from_slice(&payload);
                if let Err(e) = client.publish(ephemeral_subject(&room), b.into()).await {
                    tracing::warn!(error = %e, "NATS publish failed");
                }
            }
            Cmd::Publish {
                room,
                ephemeral: false,
                sender,
                request,
                payload,
            } => {
                let body = encode_room_message(&origin, sender, &payload);
                match &js {
                    None => {
                        if let Err(e) = client.publish(room_subject(&room), body).await {
                            tracing::warn!(error = %e, "NATS publish failed");
                        }
                    }
                    Some(js) => {
                        // Sent in order here; the acknowledgement is awaited apart.
                        match js.context.publish(room_subject(&room), body).await {
                            Ok(ack) => {
                                let remote_tx = remote_tx.clone();
                                tokio::spawn(async move {
                                    let r = match ack.await {
                                        Ok(a) => Remote::Stored {
                                            conn: sender,
                                            room,
                                            request,
                                            seq: a.sequence,
                                        },
                                        Err(e) => {
                                            tracing::warn!(error = %e, "JetStream did not store a payload");
                                            Remote::StoreFailed
                                        }
                                    };
                                    let _ = remote_tx.send(r).await;
                                });
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "JetStream publish failed");
                                let _ = remote_tx.send(Remote::StoreFailed).await;
                            }
                        }
                    }
                }
            }
            Cmd::Subscribe { room, generation } => {
                let (go, go_rx) = tokio::sync::watch::channel(false);
                let (tasks, next_seq) = subscribe(
                    &client,
                    js.as_deref(),
                    origin,
                    room,
                    generation,
                    &remote_tx,
                    go_rx,
                )
                .await;
                // Joins must not hang: even after a failure the room is reported
                // (members then catch up by sync).
                let _ = remote_tx
                    .send(Remote::Subscribed {
                        room,
                        generation,
                        next_seq,
                    })
                    .await;
                // Only now may the subscription's messages follow, so that the
                // broker sees them after it knows the subscription.
                let _ = go.send(true);
                if let Ok(mut s) = subs.lock()
                    && let Some(old) = s.insert(room, tasks)
                {
                    old.iter().for_each(JoinHandle::abort);
                }
            }
            Cmd::Unsubscribe(room) => {
                if let Ok(mut s) = subs.lock()
                    && let Some(tasks) = s.remove(&room)
                {
                    tasks.iter().for_each(JoinHandle::abort);
                }
            }
            Cmd::Replay {
                conn,
                room,
                from,
                to,
            } => {
                let remote_tx = remote_tx.clone();
                let js = js.clone();
                tokio::spawn(async move {
                    let entries = match js {
                        Some(js) => replay(&js.stream, room, from, to).await,
                        None => Vec::new(),
                    };
                    let _ = remote_tx
                        .send(Remote::Replayed {
                            conn,
                            room,
                            entries,
                        })
                        .await;
                });
            }
        }
    }
}

/// Waits until the subscription is reported; false if it never will be.
async fn opened(mut go: tokio::sync::watch::Receiver<bool>) -> bool {
    go.wait_for(|v| *v).await.is_ok()
}

/// Subscribes to a room; returns the reading tasks, which forward nothing before
/// `go` turns true, and, with a shared backlog, the first stream sequence number
/// they deliver.
async fn subscribe(
    client: &async_nats::Client,
    js: Option<&Js>,
    origin: [u8; 16],
    room: RoomId,
    generation: u64,
    remote_tx: &mpsc::Sender<Remote>,
    go: tokio::sync::watch::Receiver<bool>,
) -> (Vec<JoinHandle<()>>, Option<u64>) {
    let mut tasks = Vec::new();
    match client.subscribe(ephemeral_subject(&room)).await {
        Ok(mut sub) => {
            let remote_tx = remote_tx.clone();
            let go = go.clone();
            tasks.push(tokio::spawn(async move {
                if !opened(go).await {
                    return;
                }
                while let Some(msg) = sub.next().await {
                    let p = &msg.payload;
                    if p.len() < 16 || p.get(..16) == Some(&origin[..]) {
                        continue;
                    }
                    let m = BusMessage {
                        room,
                        generation,
                        seq: None,
                        sender: None,
                        ephemeral: true,
                        payload: msg.payload.slice(16..),
                    };
                    if remote_tx.try_send(Remote::Message(m)).is_err() {
                        tracing::warn!("bus delivery queue full; message dropped");
                    }
                }
            }));
        }
        Err(e) => tracing::warn!(error = %e, "NATS subscribe failed"),
    }
    let mut next_seq = None;
    match js {
        None => match client.subscribe(room_subject(&room)).await {
            Ok(mut sub) => {
                let remote_tx = remote_tx.clone();
                let go = go.clone();
                tasks.push(tokio::spawn(async move {
                    if !opened(go).await {
                        return;
                    }
                    while let Some(msg) = sub.next().await {
                        let Some((from, _, payload)) = decode_room_message(&msg.payload) else {
                            continue;
                        };
                        if from == origin {
                            continue;
                        }
                        let m = BusMessage {
                            room,
                            generation,
                            seq: None,
                            sender: None,
                            ephemeral: false,
                            payload,
                        };
                        if remote_tx.try_send(Remote::Message(m)).is_err() {
                            tracing::warn!("bus delivery queue full; message dropped");
                        }
                    }
                }));
            }
            Err(e) => tracing::warn!(error = %e, "NATS subscribe failed"),
        },
        Some(js) => match consume(js, room).await {
            Ok((start, mut messages)) => {
                next_seq = Some(start);
                let remote_tx = remote_tx.clone();
                let go = go.clone();
                tasks.push(tokio::spawn(async move {
                    if !opened(go).await {
                        return;
                    }
                    while let Some(item) = messages.next().await {
                        let msg = match item {
                            Ok(m) => m,
                            Err(e) => {
                                // The ordered consumer recreates itself; go on.
                                tracing::warn!(error = %e, "JetStream consumer error");
                                continue;
                            }
                        };
                        let Ok(seq) = msg.info().map(|i| i.stream_sequence) else {
                            continue;
                        };
                        let Some((from, sender, payload)) = decode_room_message(&msg.payload)
                        else {
                            continue;
                        };
                        let m = BusMessage {
                            room,
                            generation,
                            seq: Some(seq),
                            sender: (from == origin).then_some(sender),
                            ephemeral: false,
                            payload,
                        };
                        if remote_tx.try_send(Remote::Message(m)).is_err() {
                            tracing::warn!("bus delivery queue full; message dropped");
                        }
                    }
                }));
            }
            Err(e) => tracing::warn!(error = %e, "JetStream consumer failed"),
        },
    }
    // The flush round-trip means the server has the core subscriptions.
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "NATS flush failed");
    }
    (tasks, next_seq)
}

/// An ordered consumer of `room`'s subject starting after the stream's current
/// last sequence number, which it returns plus one.
async fn consume(js: &Js, room: RoomId) -> Result<(u64, jetstream::consumer::pull::Ordered)> {
    let info = js
        .stream
        .get_info()
        .await
        .map_err(|e| anyhow::anyhow!("stream info: {e}"))?;
    let start = info.state.last_sequence.saturating_add(1);
    let consumer = js
        .stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: room_subject(&room),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("create consumer: {e}"))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("consume: {e}"))?;
    Ok((start, messages))
}

/// The stored payloads of `room` with sequence numbers in `from..to`, oldest
/// first, by direct gets (one per entry; the backlog is bounded per room). Stops
/// at the first error or missing entry with what it has.
async fn replay(
    stream: &jetstream::stream::Stream,
    room: RoomId,
    from: u64,
    to: u64,
) -> Vec<(u64, Bytes)> {
    let subject = room_subject(&room);
    let mut entries = Vec::new();
    let mut seq = from.max(1);
    while seq < to {
        let msg = match stream
            .direct_get_next_for_subject(subject.clone(), Some(seq))
            .await
        {
            Ok(m) => m,
            Err(e) => {
                if !matches!(e.kind(), jetstream::stream::DirectGetErrorKind::NotFound) {
                    tracing::warn!(error = %e, "JetStream backlog fetch failed");
                }
                break;
            }
        };
        if msg.sequence < seq || msg.sequence >= to {
            break;
        }
        if let Some((_, _, payload)) = decode_room_message(&msg.payload) {
            entries.push((msg.sequence, payload));
        }
        seq = msg.sequence.saturating_add(1);
    }
    entries
}

/// Hands what the bus reports to the state machine.
pub(crate) async fn deliver_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Remote>) {
    while let Some(r) = rx.recv().await {
        match r {
            Remote::Message(m) => shared.on_bus_message(m),
            Remote::Subscribed {
                room,
                generation,
                next_seq,
            } => shared.step(|b, out| b.subscribed(room, generation, next_seq, out)),
            Remote::Stored {
                conn,
                room,
                request,
                seq,
            } => shared.step(|b, out| b.stored(conn, room, request, seq, out)),
            Remote::StoreFailed => shared.on_bus_drop(),
            Remote::Replayed {
                conn,
                room,
                entries,
            } => shared.step(|b, out| b.replayed(conn, room, entries, out)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn room_messages_round_trip_and_short_ones_are_refused() {
        let b = encode_room_message(&[7; 16], 42, b"sealed");
        let (origin, sender, payload) = decode_room_message(&b).unwrap();
        assert_eq!(
            (origin, sender, payload.as_ref()),
            ([7; 16], 42, &b"sealed"[..])
        );
        assert!(decode_room_message(&Bytes::from_static(&[0; 23])).is_none());
        assert_eq!(
            room_subject(&[0xab; 32]),
            format!("clientful.room.{}", "ab".repeat(32))
        );
    }

    #[test]
    fn stream_id_depends_on_name_and_creation() {
        let a = shared_stream_id(STREAM_NAME, 1_700_000_000_123_456_789);
        assert_eq!(a, shared_stream_id(STREAM_NAME, 1_700_000_000_123_456_789));
        assert_ne!(a, shared_stream_id(STREAM_NAME, 1_700_000_000_123_456_790));
        assert_ne!(a, shared_stream_id("OTHER", 1_700_000_000_123_456_789));
    }
}
