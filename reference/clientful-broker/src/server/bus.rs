//! Fan-out between broker processes over NATS (BRK-21): one subject per room,
//! `clientful.room.<hex room id>`; a message is `origin (16) || kind (1: 'P'
//! publish, 'E' ephemeral) || payload`. A broker subscribes while it has a local
//! member of the room and ignores its own messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Shared;

enum Cmd {
    Publish(String, Bytes),
    Subscribe([u8; 32]),
    Unsubscribe([u8; 32]),
}

/// What the bus reports to the broker.
pub(crate) enum Remote {
    /// A payload from another broker.
    Payload {
        room: [u8; 32],
        ephemeral: bool,
        payload: Bytes,
    },
    /// The subscription to a room is in place (the server confirmed it).
    Subscribed([u8; 32]),
}

/// The bus handle: commands go to one task, in order.
pub(crate) struct Bus {
    tx: mpsc::Sender<Cmd>,
    origin_tag: [u8; 16],
}

fn subject(room: &[u8; 32]) -> String {
    format!("clientful.room.{}", hex::encode(room))
}

impl Bus {
    /// Connects to NATS at `url`.
    pub(crate) async fn connect(
        url: &str,
        origin: [u8; 16],
    ) -> Result<(Self, mpsc::Receiver<Remote>)> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let (tx, mut rx) = mpsc::channel::<Cmd>(65_536);
        let (remote_tx, remote_rx) = mpsc::channel::<Remote>(65_536);
        let subs: Arc<Mutex<HashMap<[u8; 32], tokio::task::JoinHandle<()>>>> = Arc::default();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    Cmd::Publish(subject, bytes) => {
                        if let Err(e) = client.publish(subject, bytes).await {
                            tracing::warn!(error = %e, "NATS publish failed");
                        }
                    }
                    Cmd::Subscribe(room) => {
                        let Ok(mut sub) = client.subscribe(subject(&room)).await else {
                            tracing::warn!("NATS subscribe failed");
                            // Joins must not hang: members catch up by sync.
                            let _ = remote_tx.send(Remote::Subscribed(room)).await;
                            continue;
                        };
                        // The flush round-trip means the server has the SUB.
                        if let Err(e) = client.flush().await {
                            tracing::warn!(error = %e, "NATS flush failed");
                        }
                        let _ = remote_tx.send(Remote::Subscribed(room)).await;
                        let remote_tx = remote_tx.clone();
                        let task = tokio::spawn(async move {
                            while let Some(msg) = sub.next().await {
                                let p = &msg.payload;
                                if p.len() < 17 || p.get(..16) == Some(&origin[..]) {
                                    continue;
                                }
                                let ephemeral = p.get(16) == Some(&b'E');
                                let payload = msg.payload.slice(17..);
                                if remote_tx
                                    .try_send(Remote::Payload {
                                        room,
                                        ephemeral,
                                        payload,
                                    })
                                    .is_err()
                                {
                                    tracing::warn!("bus delivery queue full; message dropped");
                                }
                            }
                        });
                        if let Ok(mut s) = subs.lock()
                            && let Some(old) = s.insert(room, task)
                        {
                            old.abort();
                        }
                    }
                    Cmd::Unsubscribe(room) => {
                        if let Ok(mut s) = subs.lock()
                            && let Some(task) = s.remove(&room)
                        {
                            task.abort();
                        }
                    }
                }
            }
        });
        Ok((
            Bus {
                tx,
                origin_tag: origin,
            },
            remote_rx,
        ))
    }

    pub(crate) fn subscribe(&self, room: [u8; 32]) {
        let _ = self.tx.try_send(Cmd::Subscribe(room));
    }

    pub(crate) fn unsubscribe(&self, room: [u8; 32]) {
        let _ = self.tx.try_send(Cmd::Unsubscribe(room));
    }

    /// Queues a publish; false if the bus queue is full (the message is dropped).
    pub(crate) fn publish(&self, room: [u8; 32], ephemeral: bool, payload: Bytes) -> bool {
        let mut b = Vec::with_capacity(17 + payload.len());
        b.extend_from_slice(&self.origin_tag);
        b.push(if ephemeral { b'E' } else { b'P' });
        b.extend_from_slice(&payload);
        self.tx
            .try_send(Cmd::Publish(subject(&room), Bytes::from(b)))
            .is_ok()
    }
}

/// Hands payloads from other brokers to the state machine.
pub(crate) async fn deliver_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Remote>) {
    while let Some(r) = rx.recv().await {
        match r {
            Remote::Payload {
                room,
                ephemeral,
                payload,
            } => shared.on_remote(room, ephemeral, payload),
            Remote::Subscribed(room) => shared.step(|b, out| b.subscribed(room, out)),
        }
    }
}
