//! A document replica kept in sync over a broker room (spec §10.5, §8.7).
//!
//! [`DocPeer`] is sans-IO: every room message is a `RoomMessage` sealed under the
//! room message key, so the broker sees only ciphertext. New local envelopes are
//! published as ENVELOPE; on every (re)join the peer publishes its sync HELLO as
//! SYNC_JOIN, and each member answers with the sync exchange of §8.7 (one
//! [`SyncSession`] per peer session tag), so a peer that was offline, or a broker
//! that lost everything, is caught up. [`DocClient`] runs a peer over a
//! [`RoomClient`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use clientful_core::room::RoomCredentials;
use clientful_core::wire;
use clientful_doc::replica::Replica;
use clientful_doc::sync::SyncSession;
use clientful_proto::v1::RoomMessage;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::client::{ClientOptions, Event, RoomClient};
use crate::transport::Endpoint;

/// RoomMessage kinds (BRK-13).
pub mod kind {
    /// One SignedEnvelope.
    pub const ENVELOPE: u32 = 1;
    /// A SyncMessage.
    pub const SYNC: u32 = 2;
    /// The HELLO a member sends when it (re)joins.
    pub const SYNC_JOIN: u32 = 3;
    /// Application data.
    pub const APP: u32 = 4;
}

/// Most peer sync sessions kept at once.
pub const MAX_PEER_SESSIONS: usize = 1024;

/// Why a room message was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocSyncError {
    /// Sealing, opening or decoding failed.
    #[error("room message: {0}")]
    Core(#[from] clientful_core::Error),
    /// The document layer rejected it.
    #[error("document: {0}")]
    Doc(#[from] clientful_doc::error::DocError),
}

/// A replica and its sync state with the room.
pub struct DocPeer {
    replica: Replica,
    room: Arc<RoomCredentials>,
    session: [u8; 16],
    peers: HashMap<Vec<u8>, SyncSession>,
    rng: ChaCha20Rng,
    received: u64,
}

impl DocPeer {
    /// A peer for `replica` in `room`; `seed` seeds the sealing nonces and the
    /// session tag.
    pub fn new(replica: Replica, room: Arc<RoomCredentials>, seed: [u8; 32]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut session = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rng, &mut session);
        DocPeer {
            replica,
            room,
            session,
            peers: HashMap::new(),
            rng,
            received: 0,
        }
    }

    /// The replica.
    pub fn replica(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// Envelopes received over the room so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn seal(&mut self, kind: u32, body: Vec<u8>) -> Result<Vec<u8>, DocSyncError> {
        let msg = wire::encode(&RoomMessage {
            kind,
            session: self.session.to_vec(),
            body,
        });
        Ok(self.room.seal_message(&mut self.rng, &msg)?)
    }

    /// Sealed application data.
    pub fn seal_app(&mut self, body: Vec<u8>) -> Result<Vec<u8>, DocSyncError> {
        self.seal(kind::APP, body)
    }

    /// The room was (re)joined: forget peer sessions, publish our HELLO.
    pub fn on_joined(&mut self) -> Result<Vec<Vec<u8>>, DocSyncError> {
        self.peers.clear();
        let hello = SyncSession::new().hello(&self.replica);
        Ok(vec![self.seal(kind::SYNC_JOIN, hello)?])
    }

    /// Commits pending local edits; returns the sealed ENVELOPE messages.
    pub fn commit(&mut self) -> Result<Vec<Vec<u8>>, DocSyncError> {
        self.replica.commit()?;
        let envs = self.replica.drain_outbox();
        envs.into_iter()
            .map(|(_, bytes)| self.seal(kind::ENVELOPE, bytes))
            .collect()
    }

    /// A delivered payload; returns the sealed replies to publish.
    pub fn on_deliver(&mut self, sealed: &[u8]) -> Result<Vec<Vec<u8>>, DocSyncError> {
        let plain = self.room.open_message(sealed)?;
        let msg: RoomMessage = wire::decode(&plain, &wire::ROOM_MESSAGE)?;
        match msg.kind {
            kind::ENVELOPE => {
                self.received += 1;
                self.replica.receive(&msg.body);
                Ok(Vec::new())
            }
            kind::SYNC | kind::SYNC_JOIN => {
                if msg.session.len() != 16 {
                    return Ok(Vec::new());
                }
                if msg.kind == kind::SYNC_JOIN {
                    self.peers.remove(&msg.session);
                }
                if !self.peers.contains_key(&msg.session) && self.peers.len() >= MAX_PEER_SESSIONS {
                    self.peers.clear();
                }
                let mut sync = self.peers.remove(&msg.session).unwrap_or_default();
                let result = sync.handle(&mut self.replica, &msg.body);
                self.peers.insert(msg.session, sync);
                let (replies, dispositions) = result?;
                self.received += dispositions.len() as u64;
                replies
                    .into_iter()
                    .map(|r| self.seal(kind::SYNC, r))
                    .collect()
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// A [`DocPeer`] running over a [`RoomClient`].
#[derive(Clone)]
pub struct DocClient {
    peer: Arc<Mutex<DocPeer>>,
    client: RoomClient,
    joins: Arc<std::sync::atomic::AtomicU64>,
    changed: Arc<tokio::sync::Notify>,
    ephemeral: Arc<Mutex<VecDeque<Vec<u8>>>>,
}

/// Sealed ephemeral messages kept until [`DocClient::take_ephemeral`]: the oldest are
/// dropped beyond this (presence is renewed, BRK-14; a stale one is worthless).
pub const MAX_QUEUED_EPHEMERAL: usize = 256;

impl DocClient {
    /// Starts the peer at `endpoint`.
    pub fn spawn(endpoint: Endpoint, peer: DocPeer, options: ClientOptions) -> Self {
        let room = peer.room.clone();
        let (client, mut events) = RoomClient::spawn(endpoint, room, options);
        let peer = Arc::new(Mutex::new(peer));
        let joins = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task_peer = peer.clone();
        let task_client = client.clone();
        let task_joins = joins.clone();
        let changed = Arc::new(tokio::sync::Notify::new());
        let task_changed = changed.clone();
        let ephemeral = Arc::new(Mutex::new(VecDeque::new()));
        let task_ephemeral = ephemeral.clone();
        crate::platform::spawn(async move {
            while let Some(ev) = events.recv().await {
                let replies = {
                    let Ok(mut p) = task_peer.lock() else { return };
                    match ev {
                        Event::Joined { .. } => {
                            task_joins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            p.on_joined()
                        }
                        Event::Deliver(payload) => p.on_deliver(&payload),
                        Event::Ephemeral(sealed) => {
                            if let Ok(mut q) = task_ephemeral.lock() {
                                if q.len() >= MAX_QUEUED_EPHEMERAL {
                                    q.pop_front();
                                }
                                q.push_back(sealed);
                            }
                            Ok(Vec::new())
                        }
                        _ => Ok(Vec::new()),
                    }
                };
                // Whatever the event did to the replica, a waiter looks again.
                task_changed.notify_one();
                match replies {
                    Ok(replies) => {
                        for r in replies {
                            task_client.publish(r).await;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "room message not used"),
                }
            }
        });
        DocClient {
            peer,
            client,
            joins,
            changed,
            ephemeral,
        }
    }

    /// The sealed ephemeral messages the room delivered since the last call, oldest
    /// first, unopened (the caller opens them with the members' keys, BRK-15).
    pub fn take_ephemeral(&self) -> Vec<Vec<u8>> {
        self.ephemeral
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Sends a sealed ephemeral message (never stored by the broker; dropped while
    /// the room is not joined).
    pub async fn send_ephemeral(&self, sealed: Vec<u8>) {
        self.client.ephemeral(sealed).await;
    }

    /// Resolves once the room has delivered something to the replica, an ephemeral
    /// message arrived or the room was joined, since the last call returned: a binding to another copy of the
    /// document (a JS `Y.Doc`) then brings that copy up to date. A change that
    /// happens while nobody waits is kept for the next call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Times the room was joined (1 after the first join, +1 per reconnect).
    pub fn joins(&self) -> u64 {
        self.joins.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `f` on the peer (no await inside).
    pub fn with<R>(&self, f: impl FnOnce(&mut DocPeer) -> R) -> Option<R> {
        self.peer.lock().ok().map(|mut p| f(&mut p))
    }

    /// Edits the replica with `f`, commits and publishes the new envelopes. They
    /// wait in the outbox while the broker is unreachable.
    pub async fn edit<E>(&self, f: impl FnOnce(&mut Replica) -> Result<(), E>) -> anyhow::Result<()>
    where
        E: std::fmt::Display,
    {
        let msgs = {
            let mut p = self
                .peer
                .lock()
                .map_err(|_| anyhow::anyhow!("peer lock poisoned"))?;
            f(p.replica()).map_err(|e| anyhow::anyhow!("edit failed: {e}"))?;
            p.commit()?
        };
        for m in msgs {
            self.client.publish(m).await;
        }
        Ok(())
    }

    /// Stops the client.
    pub async fn close(&self) {
        self.client.close().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use clientful_doc::replica::CrdtKind;
    use clientful_doc::testkit::{World, insert_text};

    /// A room that delivers every payload to every other peer (the broker's fan-out),
    /// until quiet.
    fn deliver_all(peers: &mut [DocPeer], mut queue: Vec<(usize, Vec<u8>)>) {
        let mut rounds = 0;
        while let Some((from, payload)) = queue.pop() {
            rounds += 1;
            assert!(rounds < 10_000, "sync does not terminate");
            for (i, p) in peers.iter_mut().enumerate() {
                if i != from {
                    for reply in p.on_deliver(&payload).expect("valid room message") {
                        queue.push((i, reply));
                    }
                }
            }
        }
    }

    #[test]
    fn peers_converge_after_offline_edits_through_sync_join() {
        let world = World::new(11, 2, CrdtKind::Automerge);
        let room =
            Arc::new(RoomCredentials::derive(&world.space_id, &world.epoch_key()).expect("room"));
        let mut peers = vec![
            DocPeer::new(world.replica(0), room.clone(), [1; 32]),
            DocPeer::new(world.replica(1), room.clone(), [2; 32]),
        ];
        // Online: an edit travels as ENVELOPE.
        insert_text(peers[0].replica(), 0, "online ").expect("edit");
        let msgs = peers[0].commit().expect("commit");
        deliver_all(&mut peers, msgs.into_iter().map(|m| (0, m)).collect());
        assert_eq!(peers[1].received(), 1);
        // Offline: both edit, nothing is delivered.
        for (i, t) in [(0usize, "zero "), (1, "one "), (1, "one-b ")] {
            insert_text(peers[i].replica(), 0, t).expect("edit");
            let _lost = peers[i].commit().expect("commit");
        }
        // Both rejoin: SYNC_JOIN from each, answered by the sync exchange.
        let mut queue = Vec::new();
        for (i, peer) in peers.iter_mut().enumerate() {
            for m in peer.on_joined().expect("hello") {
                queue.push((i, m));
            }
        }
        deliver_all(&mut peers, queue);
        let d0 = peers[0].replica().state_digest();
        let d1 = peers[1].replica().state_digest();
        assert_eq!(d0, d1);
        let text = peers[0].replica().materialize().to_canonical_string();
        for t in ["online", "zero", "one", "one-b"] {
            assert!(text.contains(t), "{t} missing in {text}");
        }
    }

    #[test]
    fn foreign_and_garbage_payloads_are_errors_not_panics() {
        let world = World::new(12, 1, CrdtKind::Yjs);
        let room =
            Arc::new(RoomCredentials::derive(&world.space_id, &world.epoch_key()).expect("room"));
        let other = Arc::new(RoomCredentials::derive(&[9; 32], &world.epoch_key()).expect("room"));
        let mut p = DocPeer::new(world.replica(0), room, [3; 32]);
        let mut q = DocPeer::new(world.replica(0), other, [4; 32]);
        let foreign = q.seal_app(b"x".to_vec()).expect("seal");
        assert!(p.on_deliver(&foreign).is_err());
        assert!(p.on_deliver(b"garbage").is_err());
        assert!(p.on_deliver(&[]).is_err());
    }
}
