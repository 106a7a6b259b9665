//! A space kept in sync live over a broker (spec §10), on top of storage sync.
//!
//! The device joins the room of the space's current epoch (BRK-5) and publishes
//! every envelope it writes (documents, membership operations, key-delivery
//! carriers) as a sealed room message (BRK-12); what others publish is stored
//! and applied at once. Storage stays the source of truth: [`run`] also syncs
//! with storage every `interval`, which catches up whatever the broker did not
//! deliver (a backlog overflow, a broker restart, an epoch change).
//!
//! Catch-up between live peers: a device that (re)joins publishes a
//! `SYNC_JOIN`; every peer answers by publishing again the envelopes it
//! published recently (at most [`RECENT`]), so an edit published before the
//! joiner arrived is not missed while it is not yet in storage.
//!
//! Platform: timers, tasks and the clock come from `clientful_net::platform`
//! (tokio natively, the browser's event loop on wasm32); channels and `select!`
//! are tokio's runtime-free parts, so this module is the same on both. A shell
//! that cannot lend the session to [`run`] for its whole life (the browser's,
//! which serves other calls meanwhile) waits with [`Live::next_events`] without
//! it and applies them with [`Live::handle`].

use std::sync::Arc;
use std::time::Duration;

use clientful_core::room::{EphemeralCounter, EphemeralReceiver, RoomCredentials};
use clientful_core::wire;
use clientful_net::client::{ClientOptions, Event, RoomClient};
use clientful_net::docsync::kind;
use clientful_net::platform;
use clientful_net::transport::Endpoint;
use clientful_proto::v1::RoomMessage;
use rand_chacha::ChaCha20Rng;
use tokio::sync::mpsc;

use crate::error::{AccessError, Action, BrokerError, ClientError};
use crate::identity::os_rng;
use crate::space::{SpaceSession, SyncReport};

/// Envelopes a peer keeps to publish again when another device joins.
pub const RECENT: usize = 256;

/// What a live session reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum LiveEvent {
    /// Joined the room of the current epoch.
    Joined {
        /// Room id (hex, short).
        room: String,
    },
    /// Envelopes from other devices were applied.
    Received(usize),
    /// A storage sync ran.
    Synced(Box<SyncReport>),
    /// The broker connection dropped; reconnecting.
    Disconnected,
    /// A storage sync failed (the session goes on).
    Warning(String),
    /// An ephemeral message (presence, cursors: BRK-14) from a member's device,
    /// opened, its signature and freshness checked (BRK-15); never stored.
    Ephemeral {
        /// The sending device's key.
        sender: [u8; 32],
        /// What it sent.
        body: Vec<u8>,
    },
}

/// A running room membership for one space.
pub struct Live {
    room: Arc<RoomCredentials>,
    epoch: [u8; 32],
    client: RoomClient,
    events: mpsc::Receiver<Event>,
    rng: ChaCha20Rng,
    session: [u8; 16],
    recent: std::collections::VecDeque<Vec<u8>>,
    counter: EphemeralCounter,
    receiver: EphemeralReceiver,
}

impl Live {
    /// Joins the room of `space`'s current epoch at `endpoint`.
    pub fn join(space: &SpaceSession, endpoint: Endpoint) -> Result<Live, ClientError> {
        let epoch = space
            .membership()
            .current_epoch()
            .ok_or(AccessError::NoCurrentKey)?;
        let room = Arc::new(
            RoomCredentials::derive(space.space_id(), &epoch)
                .map_err(ClientError::core(Action::Room))?,
        );
        let (client, events) = RoomClient::spawn(endpoint, room.clone(), ClientOptions::default());
        let mut rng = os_rng()?;
        let mut session = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rng, &mut session);
        Ok(Live {
            room,
            epoch: *epoch.id(),
            client,
            events,
            rng,
            session,
            recent: std::collections::VecDeque::new(),
            counter: EphemeralCounter::new(),
            receiver: EphemeralReceiver::new(),
        })
    }

    /// The epoch whose room this is.
    pub fn epoch(&self) -> &[u8; 32] {
        &self.epoch
    }

    /// The room id.
    pub fn room_id(&self) -> String {
        hex::encode(&self.room.room_id()[..8])
    }

    async fn send(&mut self, kind: u32, body: Vec<u8>) -> Result<(), ClientError> {
        let msg = wire::encode(&RoomMessage {
            kind,
            session: self.session.to_vec(),
            body,
        });
        let sealed = self
            .room
            .seal_message(&mut self.rng, &msg)
            .map_err(ClientError::core(Action::RoomMessage))?;
        self.client.publish(sealed).await;
        Ok(())
    }

    /// Sends `data` as an ephemeral message (BRK-14): signed by this device,
    /// sealed for the room, relayed to the members online now, never stored;
    /// dropped while the room is not joined.
    pub async fn ephemeral(
        &mut self,
        space: &SpaceSession,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let now = platform::unix_ms();
        let sealed = self
            .room
            .seal_ephemeral(
                &mut self.rng,
                &space.device(),
                self.counter.next(now),
                now,
                data,
            )
            .map_err(ClientError::core(Action::RoomMessage))?;
        self.client.ephemeral(sealed).await;
        Ok(())
    }

    /// Publishes what `space` wrote since the last call.
    pub async fn publish(&mut self, space: &mut SpaceSession) -> Result<usize, ClientError> {
        let out = space.take_live();
        let n = out.len();
        for e in out {
            if self.recent.len() >= RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(e.clone());
            self.send(kind::ENVELOPE, e).await?;
        }
        Ok(n)
    }

    /// Waits up to `wait` for broker events and applies them; returns what happened.
    pub async fn poll(
        &mut self,
        space: &mut SpaceSession,
        wait: Duration,
    ) -> Result<Vec<LiveEvent>, ClientError> {
        let batch = self.next_events(wait).await?;
        self.handle(space, batch).await
    }

    /// Waits up to `wait` for broker events, without the session; returns
    /// them all (none if `wait` passed). Give them to [`Self::handle`].
    pub async fn next_events(&mut self, wait: Duration) -> Result<Vec<Event>, ClientError> {
        let first = tokio::select! {
            e = self.events.recv() => match e {
                Some(e) => e,
                None => return Err(BrokerError::Stopped.into()),
            },
            () = platform::sleep(wait) => return Ok(Vec::new()),
        };
        let mut batch = vec![first];
        while let Ok(e) = self.events.try_recv() {
            batch.push(e);
        }
        Ok(batch)
    }

    /// Applies broker events ([`Self::next_events`]) to `space`: envelopes
    /// stored and applied, a joiner answered; returns what happened.
    pub async fn handle(
        &mut self,
        space: &mut SpaceSession,
        batch: Vec<Event>,
    ) -> Result<Vec<LiveEvent>, ClientError> {
        let mut out = Vec::new();
        let mut envelopes = Vec::new();
        let mut answer = false;
        for ev in batch {
            match ev {
                Event::Joined { .. } => {
                    self.send(kind::SYNC_JOIN, Vec::new()).await?;
                    out.push(LiveEvent::Joined {
                        room: self.room_id(),
                    });
                }
                Event::Deliver(sealed) => {
                    let Ok(plain) = self.room.open_message(&sealed) else {
                        continue;
                    };
                    let Ok(msg) = wire::decode::<RoomMessage>(&plain, &wire::ROOM_MESSAGE) else {
                        continue;
                    };
                    if msg.kind == kind::ENVELOPE {
                        envelopes.push(msg.body);
                    } else if msg.kind == kind::SYNC_JOIN && msg.session != self.session {
                        answer = true;
                    }
                }
                Event::Disconnected => out.push(LiveEvent::Disconnected),
                Event::Refused => return Err(BrokerError::Refused.into()),
                Event::Error(code) => {
                    out.push(LiveEvent::Warning(format!("broker error {}", code.code())))
                }
                Event::Ephemeral(sealed) => {
                    let members = space.session_core().signers();
                    // One that does not open, is not a member's or is stale is dropped.
                    if let Ok(e) =
                        self.receiver
                            .open(&self.room, &members, &sealed, platform::unix_ms())
                    {
                        out.push(LiveEvent::Ephemeral {
                            sender: e.sender,
                            body: e.body,
                        });
                    }
                }
                // An event a newer transport adds: nothing for this loop to do.
                _ => {}
            }
        }
        if answer {
            let again: Vec<Vec<u8>> = self.recent.iter().cloned().collect();
            for e in again {
                self.send(kind::ENVELOPE, e).await?;
            }
        }
        if !envelopes.is_empty() {
            let n = space.receive(&envelopes)?;
            if n > 0 {
                out.push(LiveEvent::Received(n));
            }
        }
        Ok(out)
    }

    /// Leaves the room.
    pub async fn close(self) {
        self.client.close().await;
    }
}

/// Keeps `space` in sync over the broker at `endpoint` and with storage every
/// `interval`, until `until` completes; `on_event` sees what happens. Follows
/// the current epoch: after a rotation the device moves to the new room.
pub async fn run(
    space: &mut SpaceSession,
    endpoint: Endpoint,
    interval: Duration,
    until: impl std::future::Future<Output = ()>,
    mut on_event: impl FnMut(&LiveEvent),
) -> Result<(), ClientError> {
    let mut until = std::pin::pin!(until);
    let mut live = Live::join(space, endpoint.clone())?;
    let clock = platform::Clock::new();
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let mut next_sync = 0;
    loop {
        if clock.now_ms() >= next_sync {
            let ev = match space.sync().await {
                Ok(r) => LiveEvent::Synced(Box::new(r)),
                Err(e) => LiveEvent::Warning(e.to_string()),
            };
            on_event(&ev);
            next_sync = clock.now_ms().saturating_add(interval_ms);
        }
        // Timers of the session core (an invite's expiry, MEM-22).
        if space
            .poll_timeout()
            .is_some_and(|t| platform::unix_ms() >= t)
        {
            space.handle_timeout()?;
        }
        live.publish(space).await?;
        if space.membership().current_epoch().map(|k| *k.id()) != Some(*live.epoch()) {
            live.close().await;
            live = Live::join(space, endpoint.clone())?;
        }
        tokio::select! {
            () = &mut until => break,
            r = live.poll(space, Duration::from_millis(200)) => {
                for ev in r? {
                    on_event(&ev);
                }
            }
        }
    }
    live.publish(space).await?;
    live.close().await;
    Ok(())
}
