//! The sans-IO broker (spec §10): connections, the room table, join challenges,
//! per-connection token buckets, bounded backlogs and fan-out. It is fed frames,
//! connection events and time, and answers with [`Action`]s for the shell to carry
//! out. It never looks inside a payload: it reads only the frame fields of §10.3.
//!
//! Fan-out is O(1) per receiver: a DELIVER frame is encoded once and shared
//! ([`Bytes`] is reference-counted) by every receiver's queue.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use clientful_core::room::{CHALLENGE_LEN, verify_join};
use clientful_proto::v1::BrokerFrame;

use crate::frame::{self, BROKER_PROTOCOL_VERSION, FrameError, code, kind};
use crate::rate::TokenBucket;

/// A connection handle chosen by the shell.
pub type ConnId = u64;
/// A 32-byte room id.
pub type RoomId = [u8; 32];

/// The limits a broker enforces (BRK-LIM-*), announced in WELCOME.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame accepted, in bytes.
    pub max_frame: usize,
    /// Rooms one connection may join.
    pub max_rooms: usize,
    /// Sustained frames per second per connection.
    pub rate_per_sec: u32,
    /// Token bucket size (frames that may arrive at once).
    pub burst: u32,
    /// Discarded frames, less accepted ones, before the connection is closed.
    pub max_strikes: u32,
    /// DELIVER frames kept per room for resume (0: no backlog).
    pub backlog: usize,
    /// Close a connection that sent nothing for this long.
    pub idle_timeout_ms: u64,
    /// Close a connection that has not sent HELLO after this long.
    pub hello_timeout_ms: u64,
    /// Largest ephemeral payload.
    pub max_ephemeral: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 1024 * 1024 + 1024,
            max_rooms: 64,
            rate_per_sec: 200,
            burst: 400,
            max_strikes: 400,
            backlog: 256,
            idle_timeout_ms: 60_000,
            hello_timeout_ms: 10_000,
            max_ephemeral: 2048,
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Queue `frame` on connection `conn`. `ephemeral` frames may travel as QUIC
    /// datagrams and may be dropped.
    Send {
        /// Receiver.
        conn: ConnId,
        /// Encoded BrokerFrame.
        frame: Bytes,
        /// An EPHEMERAL frame.
        ephemeral: bool,
    },
    /// Close `conn` once the frames queued before this action are sent.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why (an error code), for logs.
        code: u32,
    },
    /// First local member of a room: subscribe to it on the bus.
    Subscribe(RoomId),
    /// Last local member left: unsubscribe.
    Unsubscribe(RoomId),
    /// Forward a payload published here to the other brokers.
    BusPublish {
        /// Room.
        room: RoomId,
        /// `true` for ephemeral payloads.
        ephemeral: bool,
        /// The opaque payload.
        payload: Bytes,
    },
}

/// Counters exported as metrics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Frames discarded (rate limit, not joined).
    pub drops: u64,
    /// ERROR/REFUSE frames sent, by code.
    pub rejections: HashMap<u32, u64>,
    /// Payloads published (local and remote).
    pub published: u64,
}

struct Conn {
    challenge: [u8; CHALLENGE_LEN],
    ready: bool,
    opened_ms: u64,
    last_seen_ms: u64,
    rooms: HashSet<RoomId>,
    bucket: TokenBucket,
    strikes: u32,
}

#[derive(Default)]
struct Room {
    members: HashSet<ConnId>,
    next_seq: u64,
    backlog: VecDeque<(u64, Bytes)>,
    /// With a bus: the subscription is confirmed; JOINED waits for it (BRK-21).
    subscribed: bool,
    /// JOINED and backlog frames held until the subscription is confirmed.
    waiting: Vec<(ConnId, Vec<Bytes>)>,
}

/// The broker state machine.
pub struct Broker {
    limits: Limits,
    stream: [u8; 16],
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, Room>,
    stats: Stats,
    shutting_down: bool,
    bus: bool,
}

impl Broker {
    /// A broker with `limits`; `stream` is this process's random 16-byte instance id,
    /// announced in JOINED so clients see when sequence numbers restarted.
    pub fn new(limits: Limits, stream: [u8; 16]) -> Self {
        Broker {
            limits,
            stream,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            stats: Stats::default(),
            shutting_down: false,
            bus: false,
        }
    }

    /// A broker that shares rooms over a bus: JOINED is sent only once the shell
    /// reports the room's subscription with [`Broker::subscribed`], so a member
    /// never misses what other brokers publish after its JOINED (BRK-21).
    pub fn with_bus(mut self) -> Self {
        self.bus = true;
        self
    }

    /// The bus subscription of `room` is in place: release the held JOINED frames.
    pub fn subscribed(&mut self, room: RoomId, out: &mut Vec<Action>) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.subscribed = true;
        let waiting = std::mem::take(&mut r.waiting);
        let members = r.members.clone();
        for (conn, frames) in waiting {
            if members.contains(&conn) {
                for f in frames {
                    self.send(out, conn, f, false);
                }
            }
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Rooms with at least one local member.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// A new connection with its random join challenge (BRK-6).
    pub fn open(&mut self, conn: ConnId, challenge: [u8; CHALLENGE_LEN], now_ms: u64) {
        let bucket = TokenBucket::new(self.limits.rate_per_sec, self.limits.burst, now_ms);
        self.conns.insert(
            conn,
            Conn {
                challenge,
                ready: false,
                opened_ms: now_ms,
                last_seen_ms: now_ms,
                rooms: HashSet::new(),
                bucket,
                strikes: 0,
            },
        );
    }

    fn send(&mut self, out: &mut Vec<Action>, conn: ConnId, frame: Bytes, ephemeral: bool) {
        self.stats.frames_out += 1;
        out.push(Action::Send {
            conn,
            frame,
            ephemeral,
        });
    }

    fn reject(
        &mut self,
        out: &mut Vec<Action>,
        conn: ConnId,
        code: u32,
        request: u32,
        room: &[u8],
    ) {
        *self.stats.rejections.entry(code).or_default() += 1;
        self.send(out, conn, frame::error(code, request, room), false);
        if code::is_fatal(code) {
            self.fail(out, conn, code);
        }
    }

    /// Removes a connection at once and asks the shell to close it.
    fn fail(&mut self, out: &mut Vec<Action>, conn: ConnId, code: u32) {
        self.remove(conn, out);
        out.push(Action::Close { conn, code });
    }

    /// A frame longer than the limit, seen by a shell that does not read it
    /// (QUIC length prefix): FRAME_TOO_LARGE and close.
    pub fn oversized(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        if self.conns.contains_key(&conn) {
            self.stats.frames_in += 1;
            self.reject(out, conn, code::FRAME_TOO_LARGE, 0, &[]);
        }
    }

    /// One frame from `conn` at `now_ms`. `datagram` is true for a QUIC datagram,
    /// which may carry only EPHEMERAL (others are discarded, BRK-3).
    pub fn frame(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        datagram: bool,
        now_ms: u64,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.stats.frames_in += 1;
        c.last_seen_ms = now_ms;
        // BRK-LIM-3: the rate limit comes first, before any parsing.
        if !c.bucket.take(now_ms) {
            c.strikes = c.strikes.saturating_add(1);
            let strikes = c.strikes;
            self.stats.drops += 1;
            if strikes > self.limits.max_strikes {
                *self.stats.rejections.entry(code::RATE_LIMITED).or_default() += 1;
                self.send(out, conn, frame::error(code::RATE_LIMITED, 0, &[]), false);
                self.fail(out, conn, code::RATE_LIMITED);
            } else if strikes == 1 {
                self.reject(out, conn, code::RATE_LIMITED, 0, &[]);
            }
            return;
        }
        // An accepted frame takes one strike back: a sender that stays near the rate
        // is only throttled; one far above it accumulates strikes and is closed.
        c.strikes = c.strikes.saturating_sub(1);
        let f = match frame::decode(bytes, self.limits.max_frame) {
            Ok(f) => f,
            Err(FrameError::TooLarge(_)) => {
                return self.reject(out, conn, code::FRAME_TOO_LARGE, 0, &[]);
            }
            Err(_) => return self.reject(out, conn, code::MALFORMED, 0, &[]),
        };
        if datagram && f.kind != kind::EPHEMERAL {
            self.stats.drops += 1;
            return;
        }
        let ready = c.ready;
        if !ready && f.kind != kind::HELLO {
            return self.reject(out, conn, code::NOT_READY, 0, &[]);
        }
        match f.kind {
            kind::HELLO => self.hello(conn, &f, out),
            kind::JOIN => self.join(conn, &f, out),
            kind::LEAVE => self.leave(conn, &f, out),
            kind::PUBLISH => self.publish(conn, f, out),
            kind::EPHEMERAL => self.ephemeral(conn, f, out),
            kind::PING => {
                let pong = frame::encode(&BrokerFrame {
                    kind: kind::PONG,
                    nonce: f.nonce,
                    ..Default::default()
                });
                self.send(out, conn, pong, false);
            }
            kind::PONG => {}
            _ => self.reject(out, conn, code::MALFORMED, f.request, &[]),
        }
    }

    fn hello(&mut self, conn: ConnId, f: &BrokerFrame, out: &mut Vec<Action>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.ready {
            return self.reject(out, conn, code::MALFORMED, 0, &[]);
        }
        if f.version != BROKER_PROTOCOL_VERSION {
            *self
                .stats
                .rejections
                .entry(code::UNSUPPORTED_VERSION)
                .or_default() += 1;
            let refuse = frame::encode(&BrokerFrame {
                kind: kind::REFUSE,
                version: BROKER_PROTOCOL_VERSION,
                code: code::UNSUPPORTED_VERSION,
                ..Default::default()
            });
            self.send(out, conn, refuse, false);
            return self.fail(out, conn, code::UNSUPPORTED_VERSION);
        }
        c.ready = true;
        let welcome = frame::encode(&BrokerFrame {
            kind: kind::WELCOME,
            version: BROKER_PROTOCOL_VERSION,
            nonce: c.challenge.to_vec(),
            max_frame: u32::try_from(self.limits.max_frame).unwrap_or(u32::MAX),
            max_rooms: u32::try_from(self.limits.max_rooms).unwrap_or(u32::MAX),
            rate: self.limits.rate_per_sec,
            ..Default::default()
        });
        self.send(out, conn, welcome, false);
    }

    fn room_id(f: &BrokerFrame) -> Option<RoomId> {
        f.room_id.as_slice().try_into().ok()
    }

    fn join(&mut self, conn: ConnId, f: &BrokerFrame, out: &mut Vec<Action>) {
        let Some(room) = Self::room_id(f) else {
            return self.reject(out, conn, code::MALFORMED, f.request, &[]);
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if verify_join(&f.room_id, &f.room_key, &c.challenge, &f.proof).is_err() {
            return self.reject(out, conn, code::BAD_PROOF, f.request, &room);
        }
        if !c.rooms.contains(&room) && c.rooms.len() >= self.limits.max_rooms {
            return self.reject(out, conn, code::TOO_MANY_ROOMS, f.request, &room);
        }
        c.rooms.insert(room);
        let r = self.rooms.entry(room).or_insert_with(|| Room {
            next_seq: 1,
            ..Default::default()
        });
        if r.members.is_empty() && !r.subscribed && r.waiting.is_empty() {
            out.push(Action::Subscribe(room));
        }
        if !self.bus {
            r.subscribed = true;
        }
        r.members.insert(conn);
        let next = r.next_seq;
        let backlog: Vec<Bytes> = if f.cursor > 0 {
            r.backlog
                .iter()
                .filter(|(seq, _)| *seq >= f.cursor)
                .map(|(_, b)| b.clone())
                .collect()
        } else {
            Vec::new()
        };
        let joined = frame::encode(&BrokerFrame {
            kind: kind::JOINED,
            request: f.request,
            room_id: room.to_vec(),
            cursor: next,
            stream: self.stream.to_vec(),
            ..Default::default()
        });
        if r.subscribed {
            self.send(out, conn, joined, false);
            for b in backlog {
                self.send(out, conn, b, false);
            }
        } else {
            let mut frames = vec![joined];
            frames.extend(backlog);
            r.waiting.push((conn, frames));
        }
    }

    fn leave(&mut self, conn: ConnId, f: &BrokerFrame, out: &mut Vec<Action>) {
        let Some(room) = Self::room_id(f) else {
            return self.reject(out, conn, code::MALFORMED, f.request, &[]);
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.remove(&room);
        }
        self.leave_room(conn, room, out);
    }

    fn leave_room(&mut self, conn: ConnId, room: RoomId, out: &mut Vec<Action>) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&conn);
            r.waiting.retain(|(c, _)| *c != conn);
            if r.members.is_empty() {
                out.push(Action::Unsubscribe(room));
                r.subscribed = false;
                // The backlog outlives its members only while it is non-empty;
                // an empty room is forgotten.
                if r.backlog.is_empty() {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    fn joined(&self, conn: ConnId, room: &RoomId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.rooms.contains(room))
    }

    fn publish(&mut self, conn: ConnId, f: BrokerFrame, out: &mut Vec<Action>) {
        let Some(room) = Self::room_id(&f) else {
            return self.reject(out, conn, code::MALFORMED, f.request, &[]);
        };
        if !self.joined(conn, &room) {
            self.stats.drops += 1;
            return self.reject(out, conn, code::NOT_JOINED, f.request, &room);
        }
        let payload = Bytes::from(f.payload);
        let seq = self.fan_out(room, Some(conn), payload.clone(), out);
        out.push(Action::BusPublish {
            room,
            ephemeral: false,
            payload,
        });
        if f.request != 0 {
            let ack = frame::encode(&BrokerFrame {
                kind: kind::ACK,
                request: f.request,
                room_id: room.to_vec(),
                cursor: seq,
                ..Default::default()
            });
            self.send(out, conn, ack, false);
        }
    }

    /// Numbers a payload, keeps it in the backlog and queues it to every local
    /// member but `from`. Returns its sequence number.
    fn fan_out(
        &mut self,
        room: RoomId,
        from: Option<ConnId>,
        payload: Bytes,
        out: &mut Vec<Action>,
    ) -> u64 {
        let backlog_max = self.limits.backlog;
        let Some(r) = self.rooms.get_mut(&room) else {
            return 0;
        };
        self.stats.published += 1;
        let seq = r.next_seq;
        r.next_seq += 1;
        let deliver = frame::encode(&BrokerFrame {
            kind: kind::DELIVER,
            room_id: room.to_vec(),
            cursor: seq,
            payload: payload.to_vec(),
            ..Default::default()
        });
        if backlog_max > 0 {
            r.backlog.push_back((seq, deliver.clone()));
            while r.backlog.len() > backlog_max {
                r.backlog.pop_front();
            }
        }
        let receivers: Vec<ConnId> = r
            .members
            .iter()
            .copied()
            .filter(|m| Some(*m) != from)
            .collect();
        for m in receivers {
            self.send(out, m, deliver.clone(), false);
        }
        seq
    }

    fn ephemeral(&mut self, conn: ConnId, f: BrokerFrame, out: &mut Vec<Action>) {
        let Some(room) = Self::room_id(&f) else {
            return self.reject(out, conn, code::MALFORMED, f.request, &[]);
        };
        if f.payload.len() > self.limits.max_ephemeral {
            return self.reject(out, conn, code::FRAME_TOO_LARGE, f.request, &room);
        }
        if !self.joined(conn, &room) {
            self.stats.drops += 1;
            return self.reject(out, conn, code::NOT_JOINED, f.request, &room);
        }
        let payload = Bytes::from(f.payload);
        self.relay_ephemeral(room, Some(conn), &payload, out);
        out.push(Action::BusPublish {
            room,
            ephemeral: true,
            payload,
        });
    }

    fn relay_ephemeral(
        &mut self,
        room: RoomId,
        from: Option<ConnId>,
        payload: &Bytes,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let frame = frame::encode(&BrokerFrame {
            kind: kind::EPHEMERAL,
            room_id: room.to_vec(),
            payload: payload.to_vec(),
            ..Default::default()
        });
        let receivers: Vec<ConnId> = r
            .members
            .iter()
            .copied()
            .filter(|m| Some(*m) != from)
            .collect();
        for m in receivers {
            self.send(out, m, frame.clone(), true);
        }
    }

    /// A payload another broker published to `room` (through the bus).
    pub fn remote(&mut self, room: RoomId, ephemeral: bool, payload: Bytes, out: &mut Vec<Action>) {
        if ephemeral {
            if payload.len() <= self.limits.max_ephemeral {
                self.relay_ephemeral(room, None, &payload, out);
            }
        } else if payload.len() <= self.limits.max_frame {
            self.fan_out(room, None, payload, out);
        }
    }

    /// The connection ended (closed by the peer or by the shell).
    pub fn close(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        self.remove(conn, out);
    }

    fn remove(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        if let Some(c) = self.conns.remove(&conn) {
            for room in c.rooms {
                self.leave_room(conn, room, out);
            }
        }
    }

    /// The shell dropped a connection whose send queue overflowed (BRK-LIM-5).
    pub fn slow_reader(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        if self.conns.contains_key(&conn) {
            *self.stats.rejections.entry(code::SLOW_READER).or_default() += 1;
            self.stats.drops += 1;
            self.fail(out, conn, code::SLOW_READER);
        }
    }

    /// Time passes: closes connections without HELLO in time or idle too long.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                (!c.ready && now_ms.saturating_sub(c.opened_ms) > self.limits.hello_timeout_ms)
                    || now_ms.saturating_sub(c.last_seen_ms) > self.limits.idle_timeout_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in expired {
            self.reject(out, conn, code::TIMEOUT, 0, &[]);
        }
    }

    /// Graceful shutdown: every connection gets SHUTTING_DOWN and is closed; new
    /// connections are refused the same way.
    pub fn shutdown(&mut self, out: &mut Vec<Action>) {
        self.shutting_down = true;
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.reject(out, conn, code::SHUTTING_DOWN, 0, &[]);
        }
    }

    /// Whether [`Broker::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use clientful_core::keys::EpochKey;
    use clientful_core::room::RoomCredentials;

    fn frames_to(out: &[Action], to: ConnId) -> Vec<BrokerFrame> {
        out.iter()
            .filter_map(|a| match a {
                Action::Send { conn, frame, .. } if *conn == to => {
                    Some(frame::decode(frame, usize::MAX).expect("broker frames decode"))
                }
                _ => None,
            })
            .collect()
    }

    fn enc(f: BrokerFrame) -> Vec<u8> {
        clientful_core::wire::encode(&f)
    }

    fn hello() -> Vec<u8> {
        enc(BrokerFrame {
            kind: kind::HELLO,
            version: 1,
            ..Default::default()
        })
    }

    fn join(creds: &RoomCredentials, challenge: &[u8]) -> Vec<u8> {
        enc(BrokerFrame {
            kind: kind::JOIN,
            request: 1,
            room_id: creds.room_id().to_vec(),
            room_key: creds.room_public_key().to_vec(),
            proof: creds.join_proof(challenge).expect("proof").to_vec(),
            ..Default::default()
        })
    }

    fn creds() -> RoomCredentials {
        RoomCredentials::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).expect("creds")
    }

    #[test]
    fn join_publish_deliver_and_bad_proof() {
        let mut b = Broker::new(Limits::default(), [0; 16]);
        let c = creds();
        let mut out = Vec::new();
        for (id, ch) in [(1, [1u8; 32]), (2, [2u8; 32])] {
            b.open(id, ch, 0);
            b.frame(id, &hello(), false, 0, &mut out);
        }
        // A proof made for connection 1's challenge fails on connection 2.
        b.frame(2, &join(&c, &[1; 32]), false, 0, &mut out);
        let f = frames_to(&out, 2);
        assert_eq!(
            f.last().map(|f| (f.kind, f.code)),
            Some((kind::ERROR, code::BAD_PROOF))
        );
        out.clear();
        b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
        b.frame(2, &join(&c, &[2; 32]), false, 0, &mut out);
        assert_eq!(frames_to(&out, 2)[0].kind, kind::JOINED);
        out.clear();
        let publish = enc(BrokerFrame {
            kind: kind::PUBLISH,
            request: 9,
            room_id: c.room_id().to_vec(),
            payload: b"opaque".to_vec(),
            ..Default::default()
        });
        b.frame(1, &publish, false, 0, &mut out);
        let to2 = frames_to(&out, 2);
        assert_eq!(to2.len(), 1);
        assert_eq!((to2[0].kind, to2[0].cursor), (kind::DELIVER, 1));
        assert_eq!(to2[0].payload, b"opaque");
        let to1 = frames_to(&out, 1);
        assert_eq!((to1[0].kind, to1[0].request), (kind::ACK, 9));
        // Resume: a new connection asking from seq 1 gets the backlog.
        out.clear();
        b.open(3, [3; 32], 0);
        b.frame(3, &hello(), false, 0, &mut out);
        let mut j = clientful_core::wire::decode::<BrokerFrame>(
            &join(&c, &[3; 32]),
            &clientful_core::wire::BROKER_FRAME,
        )
        .expect("decode");
        j.cursor = 1;
        b.frame(3, &enc(j), false, 0, &mut out);
        let to3 = frames_to(&out, 3);
        assert_eq!(
            to3.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [kind::WELCOME, kind::JOINED, kind::DELIVER]
        );
    }

    #[test]
    fn version_refused_garbage_and_rate_limit() {
        let mut b = Broker::new(
            Limits {
                rate_per_sec: 1,
                burst: 3,
                max_strikes: 2,
                ..Limits::default()
            },
            [0; 16],
        );
        let mut out = Vec::new();
        b.open(1, [0; 32], 0);
        b.frame(
            1,
            &enc(BrokerFrame {
                kind: kind::HELLO,
                version: 2,
                ..Default::default()
            }),
            false,
            0,
            &mut out,
        );
        let f = frames_to(&out, 1);
        assert_eq!((f[0].kind, f[0].version), (kind::REFUSE, 1));
        assert!(out.contains(&Action::Close {
            conn: 1,
            code: code::UNSUPPORTED_VERSION
        }));
        out.clear();
        b.open(2, [0; 32], 0);
        b.frame(2, b"\xff\xff garbage", false, 0, &mut out);
        assert_eq!(frames_to(&out, 2)[0].code, code::MALFORMED);
        assert_eq!(b.connections(), 0);
        out.clear();
        b.open(3, [0; 32], 0);
        b.frame(3, &hello(), false, 0, &mut out);
        let ping = enc(BrokerFrame {
            kind: kind::PING,
            ..Default::default()
        });
        for _ in 0..5 {
            b.frame(3, &ping, false, 0, &mut out);
        }
        let codes: Vec<u32> = frames_to(&out, 3).iter().map(|f| f.code).collect();
        assert!(codes.contains(&code::RATE_LIMITED));
        assert!(out.contains(&Action::Close {
            conn: 3,
            code: code::RATE_LIMITED
        }));
    }

    proptest::proptest! {
        /// Any sequence of frames (valid handshakes, joins and publishes mixed with
        /// garbage) from several connections: no panic, frames only go to open
        /// connections, and a payload is delivered only to connections that joined.
        #[test]
        fn arbitrary_traffic_is_handled_totally(
            ops in proptest::collection::vec(
                (0u64..4, 0u8..6, proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
                0..60,
            )
        ) {
            let c = creds();
            let mut b = Broker::new(Limits { burst: 20, max_strikes: 5, ..Limits::default() }, [0; 16]);
            let mut open = std::collections::HashSet::new();
            let mut joined = std::collections::HashSet::new();
            for (step, (conn, what, junk)) in ops.into_iter().enumerate() {
                let mut out = Vec::new();
                if open.insert(conn) {
                    b.open(conn, [conn as u8; 32], 0);
                }
                let bytes = match what {
                    0 => hello(),
                    1 => join(&c, &[conn as u8; 32]),
                    2 => enc(BrokerFrame {
                        kind: kind::PUBLISH,
                        room_id: c.room_id().to_vec(),
                        payload: junk.clone(),
                        ..Default::default()
                    }),
                    3 => enc(BrokerFrame { kind: kind::PING, ..Default::default() }),
                    _ => junk.clone(),
                };
                b.frame(conn, &bytes, false, step as u64, &mut out);
                for a in &out {
                    match a {
                        Action::Close { conn, .. } => {
                            open.remove(conn);
                            joined.remove(conn);
                        }
                        Action::Send { conn: to, frame, .. } => {
                            proptest::prop_assert!(open.contains(to));
                            let f = frame::decode(frame, usize::MAX).expect("decodes");
                            if f.kind == kind::JOINED {
                                joined.insert(*to);
                            }
                            if f.kind == kind::DELIVER {
                                proptest::prop_assert!(joined.contains(to));
                                proptest::prop_assert!(*to != conn);
                            }
                        }
                        _ => {}
                    }
                }
                proptest::prop_assert_eq!(b.connections(), open.len());
            }
        }
    }

    #[test]
    fn with_a_bus_joined_waits_for_the_subscription() {
        let mut b = Broker::new(Limits::default(), [0; 16]).with_bus();
        let c = creds();
        let mut out = Vec::new();
        b.open(1, [1; 32], 0);
        b.frame(1, &hello(), false, 0, &mut out);
        out.clear();
        b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
        assert!(out.contains(&Action::Subscribe(*c.room_id())));
        assert!(frames_to(&out, 1).is_empty(), "JOINED held");
        out.clear();
        b.subscribed(*c.room_id(), &mut out);
        assert_eq!(frames_to(&out, 1)[0].kind, kind::JOINED);
        // A second member joins at once: the room is subscribed.
        out.clear();
        b.open(2, [2; 32], 0);
        b.frame(2, &hello(), false, 0, &mut out);
        b.frame(2, &join(&c, &[2; 32]), false, 0, &mut out);
        assert_eq!(frames_to(&out, 2)[1].kind, kind::JOINED);
        assert!(!out.contains(&Action::Subscribe(*c.room_id())));
    }

    #[test]
    fn idle_and_hello_timeouts() {
        let mut b = Broker::new(Limits::default(), [0; 16]);
        let mut out = Vec::new();
        b.open(1, [0; 32], 0);
        b.tick(5_000, &mut out);
        assert!(out.is_empty());
        b.tick(10_001, &mut out);
        assert_eq!(frames_to(&out, 1)[0].code, code::TIMEOUT);
        assert_eq!(b.connections(), 0);
    }
}
