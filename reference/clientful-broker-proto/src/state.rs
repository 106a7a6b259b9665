//! The sans-IO broker (spec §10): connections, the room table, join challenges,
//! per-connection token buckets, bounded backlogs and fan-out. It is fed frames,
//! connection events and time, and answers with [`Action`]s for the shell to carry
//! out. It never looks inside a payload: bytes are decoded once into a typed
//! [`Frame`] and it reads only the fields of §10.3 (BRK-3, BRK-4).
//!
//! Time is handed in (`now_ms`, any monotonic millisecond clock). The broker
//! says when it next needs to be woken ([`Broker::poll_timeout`]) for the HELLO and
//! idle timeouts (BRK-17) and the empty-room TTL (BRK-LIM-6), and acts on them in
//! [`Broker::handle_timeout`]; no fixed tick is needed.
//!
//! Fan-out is O(1) per receiver: a DELIVER frame is encoded once and shared
//! ([`Bytes`] is reference-counted) by every receiver's queue.
//!
//! Three modes (BRK-21, BRK-22): alone (the broker numbers payloads and keeps the
//! backlog in memory), on a bus (the same, and payloads are shared with other
//! brokers), and on a bus with a shared backlog (NATS JetStream: the stream numbers
//! payloads, keeps the backlog, and every broker delivers in stream order).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use clientful_core::room::{CHALLENGE_LEN, verify_join};

use crate::deadlines::{Deadlines, Due};
use crate::frame::{self, BROKER_PROTOCOL_VERSION, ErrorCode, Frame, FrameError, Kind};
use crate::rate::TokenBucket;

pub use crate::deadlines::{ConnId, RoomId};

/// Live DELIVER frames held for a connection while its backlog is fetched from a
/// shared backlog (BRK-22); beyond this the connection is a slow reader.
pub const MAX_HELD: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No bus: numbering and backlog here.
    Alone,
    /// A bus without a shared backlog: numbering and backlog here.
    Bus,
    /// A bus with a shared backlog: the bus numbers and keeps payloads.
    Shared,
}

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
    /// Bytes of DELIVER frames kept per room for resume (BRK-LIM-6); the oldest
    /// entries go first.
    pub room_backlog_bytes: usize,
    /// Bytes of backlog kept over all rooms (BRK-LIM-6); beyond, the oldest
    /// entries of any room are dropped first.
    pub backlog_budget: usize,
    /// A room nobody is in is forgotten, backlog and all, after this long.
    pub empty_room_ttl_ms: u64,
    /// Rooms this broker holds at once; a JOIN that would make another is refused
    /// with OVER_CAPACITY.
    pub max_rooms_total: usize,
    /// Bytes held in backlogs and send queues together; a PUBLISH that would go
    /// beyond is refused with OVER_CAPACITY (the shell reports the queued bytes
    /// with [`Broker::set_queued_bytes`]).
    pub memory_budget: usize,
    /// Sustained PINGs (broker PING frames and WebSocket pings) per second per
    /// connection; beyond, they are discarded as over the rate (BRK-LIM-3).
    pub ping_rate_per_sec: u32,
    /// PINGs that may arrive at once.
    pub ping_burst: u32,
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
            room_backlog_bytes: 4 * 1024 * 1024,
            backlog_budget: 256 * 1024 * 1024,
            empty_room_ttl_ms: 600_000,
            max_rooms_total: 100_000,
            memory_budget: 1024 * 1024 * 1024,
            ping_rate_per_sec: 5,
            ping_burst: 20,
        }
    }
}

/// What the shell must do.
/// Exhaustive on purpose: a shell must perform every action; a new one must fail to compile in every shell.
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
        /// Why (the error code sent before closing), for logs.
        code: ErrorCode,
    },
    /// First local member of a room: subscribe to it on the bus, tagging the
    /// subscription's messages with `generation`, then report it with
    /// [`Broker::subscribed`].
    Subscribe {
        /// Room.
        room: RoomId,
        /// Tags this subscription (a later one of the same room has a higher one).
        generation: u64,
    },
    /// Last local member left: unsubscribe.
    Unsubscribe(RoomId),
    /// Forward a payload published here to the other brokers (and, with a shared
    /// backlog, store it there: report the outcome with [`Broker::stored`]).
    BusPublish {
        /// Room.
        room: RoomId,
        /// `true` for ephemeral payloads.
        ephemeral: bool,
        /// The opaque payload.
        payload: Bytes,
        /// The publishing connection.
        sender: ConnId,
        /// The PUBLISH's `request` (0: no ACK wanted).
        request: u32,
    },
    /// Shared backlog: fetch the room's stored payloads with sequence numbers in
    /// `from..to` and report them with [`Broker::replayed`] (also when the fetch
    /// fails, with what was fetched).
    Replay {
        /// The connection that joined with a cursor.
        conn: ConnId,
        /// Room.
        room: RoomId,
        /// First sequence number wanted (the JOIN's cursor).
        from: u64,
        /// First sequence number delivered live (the JOINED's cursor).
        to: u64,
    },
}

/// A payload that arrived over the bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// Room.
    pub room: RoomId,
    /// The subscription it arrived on, as reported to [`Broker::subscribed`].
    pub generation: u64,
    /// With a shared backlog: its sequence number in the stream. Without: `None`
    /// (this broker numbers it).
    pub seq: Option<u64>,
    /// With a shared backlog, for payloads this broker published: the publishing
    /// connection, which gets no DELIVER of its own payload.
    pub sender: Option<ConnId>,
    /// An ephemeral payload.
    pub ephemeral: bool,
    /// The opaque payload.
    pub payload: Bytes,
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
    pub rejections: HashMap<ErrorCode, u64>,
    /// Payloads published (local and remote).
    pub published: u64,
    /// Backlog entries dropped by the per-room byte limit, the global backlog
    /// budget or the empty-room TTL (BRK-LIM-6).
    pub backlog_evicted: u64,
    /// Rooms forgotten because nobody joined them within the TTL.
    pub rooms_expired: u64,
}

struct Conn {
    challenge: [u8; CHALLENGE_LEN],
    ready: bool,
    opened_ms: u64,
    last_seen_ms: u64,
    rooms: HashSet<RoomId>,
    bucket: TokenBucket,
    pings: TokenBucket,
    strikes: u32,
}

#[derive(Default)]
struct Room {
    members: HashSet<ConnId>,
    next_seq: u64,
    backlog: VecDeque<(u64, Bytes)>,
    /// Bytes of `backlog`.
    backlog_bytes: usize,
    /// Tells this room from an earlier one with the same id (for the global
    /// eviction order).
    incarnation: u64,
    /// When the last member left (the TTL counts from here).
    empty_since_ms: Option<u64>,
    /// With a bus: the subscription is confirmed; JOINED waits for it (BRK-21).
    subscribed: bool,
    /// The bus subscription's generation; messages of older ones are ignored.
    generation: u64,
    /// JOINs (connection, request, cursor) answered once the subscription is
    /// confirmed.
    waiting: Vec<(ConnId, u32, u64)>,
    /// Shared backlog: connections whose backlog is being fetched, with the first
    /// live sequence number and the live frames held until the fetch ends.
    catching_up: HashMap<ConnId, (u64, Vec<Bytes>)>,
}

/// The fields of a JOIN the broker checks (BRK-7).
struct JoinRequest<'a> {
    request: u32,
    room_id: &'a [u8],
    room_key: &'a [u8],
    proof: &'a [u8],
    cursor: u64,
}

/// The broker state machine.
pub struct Broker {
    limits: Limits,
    stream: [u8; 16],
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, Room>,
    stats: Stats,
    shutting_down: bool,
    mode: Mode,
    generations: u64,
    /// Bytes held in every room's backlog.
    backlog_bytes: usize,
    /// Entries held in every room's backlog.
    backlog_entries: usize,
    /// Backlog entries in the order they were added, over all rooms: (room,
    /// incarnation, sequence number). Entries already gone are skipped lazily.
    eviction: VecDeque<(RoomId, u64, u64)>,
    incarnations: u64,
    /// Bytes the shell has queued on connections (reported).
    queued_bytes: usize,
    /// The latest time the broker was fed.
    now_ms: u64,
    /// When the HELLO and idle timeouts and the empty-room TTLs fall due.
    deadlines: Deadlines,
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
            mode: Mode::Alone,
            generations: 0,
            backlog_bytes: 0,
            backlog_entries: 0,
            eviction: VecDeque::new(),
            incarnations: 0,
            queued_bytes: 0,
            now_ms: 0,
            deadlines: Deadlines::default(),
        }
    }

    /// A broker that shares rooms over a bus: JOINED is sent only once the shell
    /// reports the room's subscription with [`Broker::subscribed`], so a member
    /// never misses what other brokers publish after its JOINED (BRK-21).
    pub fn with_bus(mut self) -> Self {
        self.mode = Mode::Bus;
        self
    }

    /// A broker on a bus that also keeps the backlog (BRK-22): payloads are
    /// numbered by the bus's stream ([`BusMessage::seq`]), PUBLISH is answered by
    /// ACK once the bus has stored it ([`Broker::stored`]), and a JOIN's cursor is
    /// served from the bus ([`Action::Replay`]). `stream` (see [`Broker::new`])
    /// must then identify the shared stream, the same on every broker.
    pub fn with_shared_backlog(mut self) -> Self {
        self.mode = Mode::Shared;
        self
    }

    /// The bus subscription of `room` is in place: answer the waiting JOINs.
    /// `generation` tags the subscription's messages; with a shared backlog,
    /// `next_seq` is the first stream sequence number it will deliver.
    pub fn subscribed(
        &mut self,
        room: RoomId,
        generation: u64,
        next_seq: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        // An answer to a subscription the room has since dropped (or replaced).
        if r.members.is_empty() || r.generation != generation {
            return;
        }
        r.subscribed = true;
        if let Some(n) = next_seq {
            r.next_seq = n.max(1);
        }
        let waiting = std::mem::take(&mut r.waiting);
        let members = r.members.clone();
        for (conn, request, cursor) in waiting {
            if members.contains(&conn) {
                self.admit(conn, room, request, cursor, out);
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

    /// Rooms held: with at least one local member, or a backlog within its TTL.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Bytes held in room backlogs.
    pub fn backlog_bytes(&self) -> usize {
        self.backlog_bytes
    }

    /// The shell reports the bytes queued on every connection, for the memory
    /// budget (BRK-LIM-6).
    pub fn set_queued_bytes(&mut self, bytes: usize) {
        self.queued_bytes = bytes;
    }

    /// A new connection with its random join challenge (BRK-6).
    pub fn open(&mut self, conn: ConnId, challenge: [u8; CHALLENGE_LEN], now_ms: u64) {
        let bucket = TokenBucket::new(self.limits.rate_per_sec, self.limits.burst, now_ms);
        let pings = TokenBucket::new(
            self.limits.ping_rate_per_sec,
            self.limits.ping_burst,
            now_ms,
        );
        self.now_ms = self.now_ms.max(now_ms);
        self.conns.insert(
            conn,
            Conn {
                challenge,
                ready: false,
                opened_ms: now_ms,
                last_seen_ms: now_ms,
                rooms: HashSet::new(),
                bucket,
                pings,
                strikes: 0,
            },
        );
        // BRK-17: "no HELLO within" and "nothing for" are strict (`>`), so the
        // timers fall due one millisecond after the limits.
        self.deadlines.push(
            now_ms
                .saturating_add(self.limits.hello_timeout_ms)
                .saturating_add(1),
            Due::Hello(conn),
        );
        self.deadlines
            .push(self.idle_deadline(now_ms), Due::Idle(conn));
        self.compact_deadlines();
    }

    fn idle_deadline(&self, last_seen_ms: u64) -> u64 {
        last_seen_ms
            .saturating_add(self.limits.idle_timeout_ms)
            .saturating_add(1)
    }

    /// Re-arms only the live timers once stale entries (of closed connections,
    /// rooms since re-joined) are most of the heap, so it stays O(live timers).
    fn compact_deadlines(&mut self) {
        let live = 2 * self.conns.len() + self.rooms.len();
        if self.deadlines.len() <= 2 * live + 1024 {
            return;
        }
        self.deadlines.clear();
        let hello = self.limits.hello_timeout_ms;
        let mut armed = Vec::with_capacity(live);
        for (id, c) in &self.conns {
            if !c.ready {
                armed.push((
                    c.opened_ms.saturating_add(hello).saturating_add(1),
                    Due::Hello(*id),
                ));
            }
            armed.push((self.idle_deadline(c.last_seen_ms), Due::Idle(*id)));
        }
        for (id, r) in &self.rooms {
            if let Some(t) = r.empty_since_ms {
                armed.push((
                    t.saturating_add(self.limits.empty_room_ttl_ms),
                    Due::Room(*id),
                ));
            }
        }
        for (at, what) in armed {
            self.deadlines.push(at, what);
        }
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
        code: ErrorCode,
        request: u32,
        room: &[u8],
    ) {
        *self.stats.rejections.entry(code).or_default() += 1;
        self.send(out, conn, frame::error(code, request, room), false);
        if code.is_fatal() {
            self.fail(out, conn, code);
        }
    }

    /// Removes a connection at once and asks the shell to close it.
    fn fail(&mut self, out: &mut Vec<Action>, conn: ConnId, code: ErrorCode) {
        self.remove(conn, out);
        out.push(Action::Close { conn, code });
    }

    /// A frame longer than the limit, seen by a shell that does not read it
    /// (QUIC length prefix): FRAME_TOO_LARGE and close.
    pub fn oversized(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        if self.conns.contains_key(&conn) {
            self.stats.frames_in += 1;
            self.reject(out, conn, ErrorCode::FrameTooLarge, 0, &[]);
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
        self.now_ms = self.now_ms.max(now_ms);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.stats.frames_in += 1;
        c.last_seen_ms = c.last_seen_ms.max(now_ms);
        // BRK-LIM-3: the rate limit comes first, before any parsing.
        if !c.bucket.take(now_ms) {
            return self.strike(conn, out);
        }
        // An accepted frame takes one strike back: a sender that stays near the rate
        // is only throttled; one far above it accumulates strikes and is closed.
        c.strikes = c.strikes.saturating_sub(1);
        let raw = match frame::decode_raw(bytes, self.limits.max_frame) {
            Ok(f) => f,
            Err(FrameError::TooLarge(_)) => {
                return self.reject(out, conn, ErrorCode::FrameTooLarge, 0, &[]);
            }
            Err(_) => return self.reject(out, conn, ErrorCode::Malformed, 0, &[]),
        };
        // A kind a client may not send is answered MALFORMED echoing the request
        // number as sent (BRK-3), whichever kind it is.
        let request_as_sent = raw.request;
        let f = Frame::from_raw(raw);
        if datagram && f.kind() != Some(Kind::Ephemeral) {
            self.stats.drops += 1;
            return;
        }
        let ready = c.ready;
        if !ready && f.kind() != Some(Kind::Hello) {
            return self.reject(out, conn, ErrorCode::NotReady, 0, &[]);
        }
        match f {
            Frame::Hello { version } => self.hello(conn, version, out),
            Frame::Join {
                request,
                room_id,
                room_key,
                proof,
                cursor,
            } => self.join(
                conn,
                JoinRequest {
                    request,
                    room_id: &room_id,
                    room_key: &room_key,
                    proof: &proof,
                    cursor,
                },
                out,
            ),
            Frame::Leave { room_id } => self.leave(conn, request_as_sent, &room_id, out),
            Frame::Publish {
                request,
                room_id,
                payload,
            } => self.publish(conn, request, &room_id, payload, out),
            Frame::Ephemeral { room_id, payload } => {
                self.ephemeral(conn, request_as_sent, &room_id, payload, out)
            }
            Frame::Ping { nonce } => {
                if let Some(c) = self.conns.get_mut(&conn)
                    && !c.pings.take(now_ms)
                {
                    return self.strike(conn, out);
                }
                self.send(out, conn, Frame::Pong { nonce }.encode(), false);
            }
            Frame::Pong { .. } => {}
            _ => self.reject(out, conn, ErrorCode::Malformed, request_as_sent, &[]),
        }
    }

    /// A frame over the rate (BRK-LIM-3): discarded, one strike; the first strike
    /// is answered RATE_LIMITED, and past `max_strikes` the connection gets
    /// RATE_LIMITED and is closed (the error is queued before the close).
    fn strike(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.strikes = c.strikes.saturating_add(1);
        let strikes = c.strikes;
        self.stats.drops += 1;
        if strikes > self.limits.max_strikes {
            *self
                .stats
                .rejections
                .entry(ErrorCode::RateLimited)
                .or_default() += 1;
            self.send(
                out,
                conn,
                frame::error(ErrorCode::RateLimited, 0, &[]),
                false,
            );
            self.fail(out, conn, ErrorCode::RateLimited);
        } else if strikes == 1 {
            self.reject(out, conn, ErrorCode::RateLimited, 0, &[]);
        }
    }

    /// A carrier-level control message (a WebSocket ping or pong) from `conn`:
    /// it costs a frame token and a PING token, like a PING frame (BRK-LIM-3), so
    /// a ping flood is cut off like any other.
    pub fn control(&mut self, conn: ConnId, now_ms: u64, out: &mut Vec<Action>) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_seen_ms = c.last_seen_ms.max(now_ms);
        if !c.bucket.take(now_ms) || !c.pings.take(now_ms) {
            self.strike(conn, out);
        }
    }

    fn hello(&mut self, conn: ConnId, version: u32, out: &mut Vec<Action>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.ready {
            return self.reject(out, conn, ErrorCode::Malformed, 0, &[]);
        }
        if version != BROKER_PROTOCOL_VERSION {
            *self
                .stats
                .rejections
                .entry(ErrorCode::UnsupportedVersion)
                .or_default() += 1;
            let refuse = Frame::Refuse {
                version: BROKER_PROTOCOL_VERSION,
                code: ErrorCode::UnsupportedVersion,
            }
            .encode();
            self.send(out, conn, refuse, false);
            return self.fail(out, conn, ErrorCode::UnsupportedVersion);
        }
        c.ready = true;
        let welcome = Frame::Welcome {
            version: BROKER_PROTOCOL_VERSION,
            nonce: c.challenge.to_vec(),
            max_frame: u32::try_from(self.limits.max_frame).unwrap_or(u32::MAX),
            max_rooms: u32::try_from(self.limits.max_rooms).unwrap_or(u32::MAX),
            rate: self.limits.rate_per_sec,
        }
        .encode();
        self.send(out, conn, welcome, false);
    }

    fn room_id(room_id: &[u8]) -> Option<RoomId> {
        room_id.try_into().ok()
    }

    fn join(&mut self, conn: ConnId, f: JoinRequest<'_>, out: &mut Vec<Action>) {
        // BRK-7: a JOIN whose room id is not 32 bytes fails the join check (the
        // lengths come first) and is BAD_PROOF, not MALFORMED; the connection stays.
        let Some(room) = Self::room_id(f.room_id) else {
            return self.reject(out, conn, ErrorCode::BadProof, f.request, &[]);
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if verify_join(f.room_id, f.room_key, &c.challenge, f.proof).is_err() {
            return self.reject(out, conn, ErrorCode::BadProof, f.request, &room);
        }
        if !c.rooms.contains(&room) && c.rooms.len() >= self.limits.max_rooms {
            return self.reject(out, conn, ErrorCode::TooManyRooms, f.request, &room);
        }
        // BRK-LIM-6: a new room only while the broker holds fewer than its limit.
        if !self.rooms.contains_key(&room) && self.rooms.len() >= self.limits.max_rooms_total {
            return self.reject(out, conn, ErrorCode::OverCapacity, f.request, &room);
        }
        c.rooms.insert(room);
        let generation = self.generations + 1;
        let incarnation = self.incarnations + 1;
        let r = self.rooms.entry(room).or_insert_with(|| Room {
            next_seq: 1,
            incarnation,
            ..Default::default()
        });
        if r.incarnation == incarnation {
            self.incarnations = incarnation;
        }
        r.empty_since_ms = None;
        if r.members.is_empty() && !r.subscribed && r.waiting.is_empty() {
            self.generations = generation;
            r.generation = generation;
            out.push(Action::Subscribe { room, generation });
        }
        if self.mode == Mode::Alone {
            r.subscribed = true;
        }
        r.members.insert(conn);
        if r.subscribed {
            self.admit(conn, room, f.request, f.cursor, out);
        } else {
            r.waiting.push((conn, f.request, f.cursor));
        }
    }

    /// Answers an accepted JOIN: JOINED with the room's next sequence number, then
    /// the backlog from `cursor` (BRK-8): from memory, or with a shared backlog
    /// fetched from the bus while live frames for `conn` are held.
    fn admit(
        &mut self,
        conn: ConnId,
        room: RoomId,
        request: u32,
        cursor: u64,
        out: &mut Vec<Action>,
    ) {
        let shared = self.mode == Mode::Shared;
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        let next = r.next_seq;
        let mut replay = false;
        let backlog: Vec<Bytes> = if cursor == 0 || cursor >= next {
            Vec::new()
        } else if shared {
            // A repeated JOIN during a fetch waits for that fetch.
            if let std::collections::hash_map::Entry::Vacant(e) = r.catching_up.entry(conn) {
                e.insert((next, Vec::new()));
                replay = true;
            }
            Vec::new()
        } else {
            r.backlog
                .iter()
                .filter(|(seq, _)| *seq >= cursor)
                .map(|(_, b)| b.clone())
                .collect()
        };
        let joined = Frame::Joined {
            request,
            room_id: room.to_vec(),
            cursor: next,
            stream: self.stream.to_vec(),
        }
        .encode();
        self.send(out, conn, joined, false);
        for b in backlog {
            self.send(out, conn, b, false);
        }
        if replay {
            out.push(Action::Replay {
                conn,
                room,
                from: cursor,
                to: next,
            });
        }
    }

    /// Shared backlog: the payloads the bus holds for `room` from an
    /// [`Action::Replay`] (sequence number, payload), in order. They are sent to
    /// `conn` as DELIVER (at most the backlog size, below the live boundary), then
    /// the live frames held meanwhile.
    pub fn replayed(
        &mut self,
        conn: ConnId,
        room: RoomId,
        entries: Vec<(u64, Bytes)>,
        out: &mut Vec<Action>,
    ) {
        let keep = self.limits.backlog;
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        let Some((to, held)) = r.catching_up.remove(&conn) else {
            return;
        };
        let mut entries: Vec<(u64, Bytes)> =
            entries.into_iter().filter(|(seq, _)| *seq < to).collect();
        entries.sort_by_key(|(seq, _)| *seq);
        entries.dedup_by_key(|(seq, _)| *seq);
        let skip = entries.len().saturating_sub(keep);
        for (seq, payload) in entries.into_iter().skip(skip) {
            let deliver = Frame::Deliver {
                room_id: room.to_vec(),
                cursor: seq,
                payload: payload.to_vec(),
            }
            .encode();
            self.send(out, conn, deliver, false);
        }
        for f in held {
            self.send(out, conn, f, false);
        }
    }

    /// Shared backlog: the bus stored a payload `conn` published as `seq`;
    /// answers ACK if the PUBLISH asked for one.
    pub fn stored(
        &mut self,
        conn: ConnId,
        room: RoomId,
        request: u32,
        seq: u64,
        out: &mut Vec<Action>,
    ) {
        if request == 0 || !self.conns.contains_key(&conn) {
            return;
        }
        let ack = Frame::Ack {
            request,
            room_id: room.to_vec(),
            cursor: seq,
        }
        .encode();
        self.send(out, conn, ack, false);
    }

    /// `request` is the frame's request field as sent: LEAVE has none (BRK-3),
    /// but an error answer echoes whatever a sender put there.
    fn leave(&mut self, conn: ConnId, request: u32, room_id: &[u8], out: &mut Vec<Action>) {
        let Some(room) = Self::room_id(room_id) else {
            return self.reject(out, conn, ErrorCode::Malformed, request, &[]);
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.remove(&room);
        }
        self.leave_room(conn, room, out);
    }

    fn leave_room(&mut self, conn: ConnId, room: RoomId, out: &mut Vec<Action>) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&conn);
            r.waiting.retain(|(c, _, _)| *c != conn);
            r.catching_up.remove(&conn);
            if r.members.is_empty() {
                out.push(Action::Unsubscribe(room));
                r.subscribed = false;
                r.empty_since_ms = Some(self.now_ms);
                // The backlog outlives its members only while it is non-empty
                // and for at most the empty-room TTL; an empty room is forgotten.
                if r.backlog.is_empty() {
                    self.rooms.remove(&room);
                } else {
                    let at = self.now_ms.saturating_add(self.limits.empty_room_ttl_ms);
                    self.deadlines.push(at, Due::Room(room));
                    self.compact_deadlines();
                }
            }
        }
    }

    fn joined(&self, conn: ConnId, room: &RoomId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.rooms.contains(room))
    }

    fn publish(
        &mut self,
        conn: ConnId,
        request: u32,
        room_id: &[u8],
        payload: Vec<u8>,
        out: &mut Vec<Action>,
    ) {
        let Some(room) = Self::room_id(room_id) else {
            return self.reject(out, conn, ErrorCode::Malformed, request, &[]);
        };
        if !self.joined(conn, &room) {
            self.stats.drops += 1;
            return self.reject(out, conn, ErrorCode::NotJoined, request, &room);
        }
        // BRK-LIM-6: what backlogs and send queues hold, plus this payload, stays
        // within the memory budget; otherwise the publish is refused, not queued.
        let held = self
            .backlog_bytes
            .saturating_add(self.queued_bytes)
            .saturating_add(payload.len());
        if held > self.limits.memory_budget {
            self.stats.drops += 1;
            return self.reject(out, conn, ErrorCode::OverCapacity, request, &room);
        }
        let payload = Bytes::from(payload);
        if self.mode == Mode::Shared {
            // The stream numbers it; every broker, this one included, delivers it
            // when the bus hands it back (BusMessage), and ACK follows `stored`.
            out.push(Action::BusPublish {
                room,
                ephemeral: false,
                payload,
                sender: conn,
                request,
            });
            return;
        }
        let seq = self.fan_out(room, Some(conn), payload.clone(), None, out);
        out.push(Action::BusPublish {
            room,
            ephemeral: false,
            payload,
            sender: conn,
            request,
        });
        if request != 0 {
            let ack = Frame::Ack {
                request,
                room_id: room.to_vec(),
                cursor: seq,
            }
            .encode();
            self.send(out, conn, ack, false);
        }
    }

    /// Numbers a payload (or, with a shared backlog, takes the stream's `numbered`
    /// sequence number), keeps it in the backlog here unless the backlog is shared,
    /// and queues it to every local member but `from`. Returns its sequence number.
    fn fan_out(
        &mut self,
        room: RoomId,
        from: Option<ConnId>,
        payload: Bytes,
        numbered: Option<u64>,
        out: &mut Vec<Action>,
    ) -> u64 {
        let backlog_max = if numbered.is_some() {
            0
        } else {
            self.limits.backlog
        };
        let Some(r) = self.rooms.get_mut(&room) else {
            return 0;
        };
        let seq = match numbered {
            // Stream order: a number already passed is a duplicate.
            Some(n) if n < r.next_seq => return n,
            Some(n) => n,
            None => r.next_seq,
        };
        self.stats.published += 1;
        r.next_seq = seq.saturating_add(1);
        let deliver = Frame::Deliver {
            room_id: room.to_vec(),
            cursor: seq,
            payload: payload.to_vec(),
        }
        .encode();
        let mut evicted = 0u64;
        if backlog_max > 0 && deliver.len() <= self.limits.room_backlog_bytes {
            r.backlog.push_back((seq, deliver.clone()));
            r.backlog_bytes += deliver.len();
            self.backlog_bytes += deliver.len();
            self.backlog_entries += 1;
            self.eviction.push_back((room, r.incarnation, seq));
            while r.backlog.len() > backlog_max || r.backlog_bytes > self.limits.room_backlog_bytes
            {
                let Some((_, old)) = r.backlog.pop_front() else {
                    break;
                };
                r.backlog_bytes -= old.len();
                self.backlog_bytes -= old.len();
                self.backlog_entries -= 1;
                evicted += 1;
            }
        }
        self.stats.backlog_evicted += evicted;
        let mut receivers = Vec::new();
        let mut overflow = Vec::new();
        for m in r.members.iter().copied().filter(|m| Some(*m) != from) {
            match r.catching_up.get_mut(&m) {
                Some((_, held)) if held.len() >= MAX_HELD => overflow.push(m),
                Some((_, held)) => held.push(deliver.clone()),
                None => receivers.push(m),
            }
        }
        for m in receivers {
            self.send(out, m, deliver.clone(), false);
        }
        for m in overflow {
            self.slow_reader(m, out);
        }
        self.enforce_backlog_budget();
        seq
    }

    /// Drops the oldest backlog entries of any room until the backlogs fit the
    /// global budget (BRK-LIM-6); a room left with neither members nor backlog is
    /// forgotten.
    fn enforce_backlog_budget(&mut self) {
        while self.backlog_bytes > self.limits.backlog_budget {
            let Some((room, incarnation, seq)) = self.eviction.pop_front() else {
                break;
            };
            let Some(r) = self.rooms.get_mut(&room) else {
                continue;
            };
            if r.incarnation != incarnation || r.backlog.front().map(|(s, _)| *s) != Some(seq) {
                continue;
            }
            if let Some((_, old)) = r.backlog.pop_front() {
                r.backlog_bytes -= old.len();
                self.backlog_bytes -= old.len();
                self.backlog_entries -= 1;
                self.stats.backlog_evicted += 1;
            }
            if r.members.is_empty() && r.backlog.is_empty() && r.waiting.is_empty() {
                self.rooms.remove(&room);
            }
        }
        // Entries already gone (per-room limits, forgotten rooms) are skipped
        // above; compact when they are most of the queue, so it stays O(entries).
        if self.eviction.len() > 2 * self.backlog_entries + 1024 {
            let rooms = &self.rooms;
            self.eviction.retain(|(room, inc, seq)| {
                rooms.get(room).is_some_and(|r| {
                    r.incarnation == *inc && r.backlog.front().is_some_and(|(s, _)| s <= seq)
                })
            });
        }
    }

    /// `request` as for [`Broker::leave`]: EPHEMERAL has none, errors echo it.
    fn ephemeral(
        &mut self,
        conn: ConnId,
        request: u32,
        room_id: &[u8],
        payload: Vec<u8>,
        out: &mut Vec<Action>,
    ) {
        let Some(room) = Self::room_id(room_id) else {
            return self.reject(out, conn, ErrorCode::Malformed, request, &[]);
        };
        if payload.len() > self.limits.max_ephemeral {
            return self.reject(out, conn, ErrorCode::FrameTooLarge, request, &room);
        }
        if !self.joined(conn, &room) {
            self.stats.drops += 1;
            return self.reject(out, conn, ErrorCode::NotJoined, request, &room);
        }
        let payload = Bytes::from(payload);
        self.relay_ephemeral(room, Some(conn), &payload, out);
        out.push(Action::BusPublish {
            room,
            ephemeral: true,
            payload,
            sender: conn,
            request: 0,
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
        let frame = Frame::Ephemeral {
            room_id: room.to_vec(),
            payload: payload.to_vec(),
        }
        .encode();
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

    /// A payload from the bus: published by another broker or, with a shared
    /// backlog, by any broker (this one included). Messages of a subscription
    /// that is not the room's current one are ignored.
    pub fn bus_message(&mut self, m: BusMessage, out: &mut Vec<Action>) {
        let Some(r) = self.rooms.get(&m.room) else {
            return;
        };
        if !r.subscribed || r.generation != m.generation {
            return;
        }
        if m.ephemeral {
            if m.payload.len() <= self.limits.max_ephemeral {
                self.relay_ephemeral(m.room, None, &m.payload, out);
            }
            return;
        }
        if m.payload.len() > self.limits.max_frame {
            return;
        }
        match (self.mode, m.seq) {
            (Mode::Shared, Some(seq)) => {
                self.fan_out(m.room, m.sender, m.payload, Some(seq), out);
            }
            (Mode::Bus, None) => {
                self.fan_out(m.room, None, m.payload, None, out);
            }
            // A numbered message without a shared backlog, or the reverse: not
            // this broker's configuration.
            _ => {}
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
            *self
                .stats
                .rejections
                .entry(ErrorCode::SlowReader)
                .or_default() += 1;
            self.stats.drops += 1;
            self.fail(out, conn, ErrorCode::SlowReader);
        }
    }

    /// Forgets a room nobody has been in for the empty-room TTL, with its backlog
    /// (BRK-LIM-6); a room still within its TTL is re-armed.
    fn expire_room(&mut self, id: RoomId, now_ms: u64) {
        let ttl = self.limits.empty_room_ttl_ms;
        let Some(r) = self.rooms.get(&id) else {
            return;
        };
        let Some(since) = r.empty_since_ms.filter(|_| r.members.is_empty()) else {
            return;
        };
        if now_ms.saturating_sub(since) < ttl {
            self.deadlines
                .push(since.saturating_add(ttl), Due::Room(id));
            return;
        }
        if let Some(r) = self.rooms.remove(&id) {
            self.backlog_bytes -= r.backlog_bytes;
            self.backlog_entries -= r.backlog.len();
            self.stats.backlog_evicted += r.backlog.len() as u64;
            self.stats.rooms_expired += 1;
        }
    }

    /// When the broker next needs [`Broker::handle_timeout`], in the milliseconds
    /// it is fed: the earliest HELLO or idle timeout (BRK-17) or empty-room TTL
    /// (BRK-LIM-6) armed. `None`: nothing is armed. Waking earlier is harmless.
    /// It changes only after [`Broker::open`], a frame that empties a room, a
    /// close, or [`Broker::handle_timeout`], so a shell asks again after each.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadlines.next()
    }

    /// Time passes: closes connections without HELLO in time or idle too long
    /// (ERROR TIMEOUT, BRK-17), and forgets rooms empty for longer than their TTL
    /// (BRK-LIM-6). Only the timers due at `now_ms` are looked at.
    pub fn handle_timeout(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        self.now_ms = self.now_ms.max(now_ms);
        let due = self.deadlines.take_due(now_ms);
        // Rooms first: a room emptied by a timeout below starts its TTL now.
        for d in &due {
            if let Due::Room(id) = d {
                self.expire_room(*id, now_ms);
            }
        }
        let mut expired: Vec<ConnId> = Vec::new();
        let mut seen: HashSet<ConnId> = HashSet::new();
        for d in due {
            let (Due::Hello(id) | Due::Idle(id)) = d else {
                continue;
            };
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            let hello_late =
                !c.ready && now_ms.saturating_sub(c.opened_ms) > self.limits.hello_timeout_ms;
            let idle = now_ms.saturating_sub(c.last_seen_ms) > self.limits.idle_timeout_ms;
            if hello_late || idle {
                if seen.insert(id) {
                    expired.push(id);
                }
            } else if matches!(d, Due::Idle(_)) {
                // Heard from since it was armed: wait from the last frame.
                let at = self.idle_deadline(c.last_seen_ms);
                self.deadlines.push(at, Due::Idle(id));
            }
        }
        for conn in expired {
            self.reject(out, conn, ErrorCode::Timeout, 0, &[]);
        }
    }

    /// Graceful shutdown: every connection gets SHUTTING_DOWN and is closed; new
    /// connections are refused the same way.
    pub fn shutdown(&mut self, out: &mut Vec<Action>) {
        self.shutting_down = true;
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.reject(out, conn, ErrorCode::ShuttingDown, 0, &[]);
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
    use crate::frame::code;
    use crate::frame::kind;
    use clientful_core::keys::EpochKey;
    use clientful_core::room::RoomCredentials;
    use clientful_proto::v1::BrokerFrame;

    fn frames_to(out: &[Action], to: ConnId) -> Vec<BrokerFrame> {
        out.iter()
            .filter_map(|a| match a {
                Action::Send { conn, frame, .. } if *conn == to => {
                    Some(frame::decode_raw(frame, usize::MAX).expect("broker frames decode"))
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
            code: ErrorCode::UnsupportedVersion
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
            code: ErrorCode::RateLimited
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
                            let f = frame::decode_raw(frame, usize::MAX).expect("decodes");
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
        assert!(out.contains(&Action::Subscribe {
            room: *c.room_id(),
            generation: 1
        }));
        assert!(frames_to(&out, 1).is_empty(), "JOINED held");
        out.clear();
        // An answer for another subscription releases nothing.
        b.subscribed(*c.room_id(), 7, None, &mut out);
        assert!(frames_to(&out, 1).is_empty(), "JOINED still held");
        b.subscribed(*c.room_id(), 1, None, &mut out);
        assert_eq!(frames_to(&out, 1)[0].kind, kind::JOINED);
        // A second member joins at once: the room is subscribed.
        out.clear();
        b.open(2, [2; 32], 0);
        b.frame(2, &hello(), false, 0, &mut out);
        b.frame(2, &join(&c, &[2; 32]), false, 0, &mut out);
        assert_eq!(frames_to(&out, 2)[1].kind, kind::JOINED);
        assert!(!out.iter().any(|a| matches!(a, Action::Subscribe { .. })));
    }

    fn publish(c: &RoomCredentials, request: u32, payload: &[u8]) -> Vec<u8> {
        enc(BrokerFrame {
            kind: kind::PUBLISH,
            request,
            room_id: c.room_id().to_vec(),
            payload: payload.to_vec(),
            ..Default::default()
        })
    }

    fn stored(
        c: &RoomCredentials,
        generation: u64,
        seq: u64,
        sender: Option<ConnId>,
        p: &[u8],
    ) -> BusMessage {
        BusMessage {
            room: *c.room_id(),
            generation,
            seq: Some(seq),
            sender,
            ephemeral: false,
            payload: Bytes::copy_from_slice(p),
        }
    }

    /// Shared backlog (BRK-21, BRK-22): PUBLISH goes to the bus unnumbered, ACK
    /// carries the stream's number, deliveries use the stream's numbers (gaps
    /// allowed, duplicates dropped, the sender skipped), and a JOIN with a cursor
    /// gets JOINED, then the fetched backlog, then the live frames held meanwhile.
    #[test]
    fn shared_backlog_numbers_from_the_stream_and_replays_in_order() {
        let mut b = Broker::new(Limits::default(), [5; 16]).with_shared_backlog();
        let c = creds();
        let room = *c.room_id();
        let mut out = Vec::new();
        b.open(1, [1; 32], 0);
        b.frame(1, &hello(), false, 0, &mut out);
        b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
        b.subscribed(room, 1, Some(40), &mut out);
        let joined = frames_to(&out, 1);
        assert_eq!((joined[1].kind, joined[1].cursor), (kind::JOINED, 40));
        assert_eq!(joined[1].stream, vec![5; 16]);
        out.clear();
        b.frame(1, &publish(&c, 3, b"p1"), false, 0, &mut out);
        assert!(
            frames_to(&out, 1).is_empty(),
            "no ACK before the bus stored it"
        );
        assert!(out.iter().any(|a| matches!(
            a,
            Action::BusPublish {
                ephemeral: false,
                sender: 1,
                request: 3,
                ..
            }
        )));
        out.clear();
        b.stored(1, room, 3, 41, &mut out);
        let ack = frames_to(&out, 1);
        assert_eq!(
            (ack[0].kind, ack[0].request, ack[0].cursor),
            (kind::ACK, 3, 41)
        );
        // The stream hands the payload back: not echoed to its sender.
        out.clear();
        b.bus_message(stored(&c, 1, 41, Some(1), b"p1"), &mut out);
        assert!(frames_to(&out, 1).is_empty());
        // Another broker's payload, with a gap in the numbers: delivered as numbered.
        b.bus_message(stored(&c, 1, 45, None, b"p2"), &mut out);
        let d = frames_to(&out, 1);
        assert_eq!(
            (d[0].kind, d[0].cursor, d[0].payload.as_slice()),
            (kind::DELIVER, 45, &b"p2"[..])
        );
        // A duplicate and a message of an old subscription are dropped.
        out.clear();
        b.bus_message(stored(&c, 1, 45, None, b"p2"), &mut out);
        b.bus_message(stored(&c, 0, 46, None, b"old"), &mut out);
        assert!(frames_to(&out, 1).is_empty());

        // A member resuming from cursor 41 on this broker.
        b.open(2, [2; 32], 0);
        b.frame(2, &hello(), false, 0, &mut out);
        out.clear();
        let mut j = clientful_core::wire::decode::<BrokerFrame>(
            &join(&c, &[2; 32]),
            &clientful_core::wire::BROKER_FRAME,
        )
        .expect("decode");
        j.cursor = 41;
        b.frame(2, &enc(j), false, 0, &mut out);
        assert!(out.contains(&Action::Replay {
            conn: 2,
            room,
            from: 41,
            to: 46
        }));
        assert_eq!(frames_to(&out, 2)[0].cursor, 46, "JOINED: next live number");
        // A live message arrives during the fetch: held for member 2.
        out.clear();
        b.bus_message(stored(&c, 1, 50, None, b"p3"), &mut out);
        assert_eq!(frames_to(&out, 1).len(), 1);
        assert!(frames_to(&out, 2).is_empty(), "held");
        out.clear();
        // The fetch returns (out of order, and with one entry past the boundary).
        b.replayed(
            2,
            room,
            vec![
                (45, Bytes::from_static(b"p2")),
                (41, Bytes::from_static(b"p1")),
                (50, Bytes::from_static(b"p3")),
            ],
            &mut out,
        );
        let got: Vec<(u64, Vec<u8>)> = frames_to(&out, 2)
            .into_iter()
            .map(|f| (f.cursor, f.payload))
            .collect();
        assert_eq!(
            got,
            vec![
                (41, b"p1".to_vec()),
                (45, b"p2".to_vec()),
                (50, b"p3".to_vec())
            ]
        );
        // A second answer for the same fetch sends nothing.
        out.clear();
        b.replayed(2, room, vec![(41, Bytes::from_static(b"p1"))], &mut out);
        assert!(out.is_empty());
    }

    /// A member whose fetch never returns is dropped as a slow reader once the held
    /// frames reach MAX_HELD; the others keep receiving.
    #[test]
    fn shared_backlog_bounds_the_held_frames() {
        let mut b = Broker::new(Limits::default(), [5; 16]).with_shared_backlog();
        let c = creds();
        let room = *c.room_id();
        let mut out = Vec::new();
        for id in [1u64, 2] {
            b.open(id, [id as u8; 32], 0);
            b.frame(id, &hello(), false, 0, &mut out);
        }
        b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
        b.subscribed(room, 1, Some(10), &mut out);
        let mut j = clientful_core::wire::decode::<BrokerFrame>(
            &join(&c, &[2; 32]),
            &clientful_core::wire::BROKER_FRAME,
        )
        .expect("decode");
        j.cursor = 3;
        b.frame(2, &enc(j), false, 0, &mut out);
        out.clear();
        for seq in 10..10 + MAX_HELD as u64 + 1 {
            b.bus_message(stored(&c, 1, seq, None, b"x"), &mut out);
        }
        assert!(out.contains(&Action::Close {
            conn: 2,
            code: ErrorCode::SlowReader
        }));
        assert_eq!(frames_to(&out, 1).len(), MAX_HELD + 1);
        assert_eq!(b.connections(), 1);
    }

    fn ready(b: &mut Broker, id: ConnId, out: &mut Vec<Action>) {
        b.open(id, [id as u8; 32], 0);
        b.frame(id, &hello(), false, 0, out);
    }

    fn other_creds(n: u8) -> RoomCredentials {
        RoomCredentials::derive(&[n; 32], &EpochKey::new([n; 32], [n; 32])).expect("creds")
    }

    /// BRK-7: a JOIN whose room id is 31 bytes is BAD_PROOF, and the connection
    /// stays (BRK-4's length rule is for the other frames).
    #[test]
    fn short_room_id_in_join_is_bad_proof_and_not_fatal() {
        let mut b = Broker::new(Limits::default(), [0; 16]);
        let c = creds();
        let mut out = Vec::new();
        ready(&mut b, 1, &mut out);
        let mut j = clientful_core::wire::decode::<BrokerFrame>(
            &join(&c, &[1; 32]),
            &clientful_core::wire::BROKER_FRAME,
        )
        .expect("decode");
        j.room_id.truncate(31);
        out.clear();
        b.frame(1, &enc(j), false, 0, &mut out);
        let f = frames_to(&out, 1);
        assert_eq!(
            (f[0].kind, f[0].code, f[0].request),
            (kind::ERROR, code::BAD_PROOF, 1)
        );
        assert!(!out.iter().any(|a| matches!(a, Action::Close { .. })));
        out.clear();
        b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
        assert_eq!(frames_to(&out, 1)[0].kind, kind::JOINED);
        // PUBLISH with a 31-byte room id stays MALFORMED (BRK-4).
        out.clear();
        let mut p = clientful_core::wire::decode::<BrokerFrame>(
            &publish(&c, 2, b"x"),
            &clientful_core::wire::BROKER_FRAME,
        )
        .expect("decode");
        p.room_id.truncate(31);
        b.frame(1, &enc(p), false, 0, &mut out);
        assert_eq!(frames_to(&out, 1)[0].code, code::MALFORMED);
        assert!(out.contains(&Action::Close {
            conn: 1,
            code: ErrorCode::Malformed
        }));
    }

    /// BRK-LIM-6: per-room byte limit, global backlog budget (oldest first, across
    /// rooms), the empty-room TTL and the room cap.
    #[test]
    fn backlog_is_bounded_in_bytes_per_room_and_globally_and_expires() {
        let limits = Limits {
            room_backlog_bytes: 10_000,
            backlog_budget: 25_000,
            empty_room_ttl_ms: 1_000,
            max_rooms_total: 4,
            ..Limits::default()
        };
        let mut b = Broker::new(limits, [0; 16]);
        let mut out = Vec::new();
        ready(&mut b, 1, &mut out);
        // Three rooms, each sent 5 payloads of 3,000 bytes, then left.
        for n in 1..=3u8 {
            let c = other_creds(n);
            b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
            for i in 0..5 {
                b.frame(1, &publish(&c, 0, &[i; 3000]), false, 0, &mut out);
            }
            let leave = enc(BrokerFrame {
                kind: kind::LEAVE,
                room_id: c.room_id().to_vec(),
                ..Default::default()
            });
            b.frame(1, &leave, false, 0, &mut out);
        }
        // Each room keeps at most 10,000 bytes; all together at most 25,000.
        assert!(b.backlog_bytes() <= 25_000, "{}", b.backlog_bytes());
        assert!(b.backlog_bytes() > 15_000);
        assert!(b.stats().backlog_evicted >= 6);
        assert_eq!(b.rooms(), 3);
        // The oldest room lost its entries first: a resume there gets fewer.
        let resume = |b: &mut Broker, n: u8, id: ConnId| {
            let mut out = Vec::new();
            ready(b, id, &mut out);
            let mut j = clientful_core::wire::decode::<BrokerFrame>(
                &join(&other_creds(n), &[id as u8; 32]),
                &clientful_core::wire::BROKER_FRAME,
            )
            .expect("decode");
            j.cursor = 1;
            out.clear();
            b.frame(id, &enc(j), false, 0, &mut out);
            frames_to(&out, id)
                .iter()
                .filter(|f| f.kind == kind::DELIVER)
                .count()
        };
        let first = resume(&mut b, 1, 10);
        let last = resume(&mut b, 3, 11);
        assert!(first < last, "oldest room evicted first: {first} vs {last}");
        assert!(last <= 3);
        // Room cap: rooms 1 and 3 have members, 2 is empty; a fourth fits, a fifth
        // is refused with OVER_CAPACITY and the connection stays.
        out.clear();
        b.frame(1, &join(&other_creds(4), &[1; 32]), false, 0, &mut out);
        assert_eq!(frames_to(&out, 1)[0].kind, kind::JOINED);
        out.clear();
        b.frame(1, &join(&other_creds(5), &[1; 32]), false, 0, &mut out);
        let f = frames_to(&out, 1);
        assert_eq!((f[0].kind, f[0].code), (kind::ERROR, code::OVER_CAPACITY));
        assert!(!out.iter().any(|a| matches!(a, Action::Close { .. })));
        // The TTL: room 2 (nobody in it) is forgotten with its backlog.
        let before = b.backlog_bytes();
        b.handle_timeout(500, &mut out);
        assert_eq!(b.rooms(), 4);
        b.handle_timeout(1_500, &mut out);
        assert_eq!(b.rooms(), 3);
        assert_eq!(b.stats().rooms_expired, 1);
        assert!(b.backlog_bytes() < before);
    }

    /// BRK-LIM-6: a PUBLISH that would take the held bytes past the memory budget
    /// is refused with OVER_CAPACITY (not fatal); once the queues drain it passes.
    #[test]
    fn publish_over_the_memory_budget_is_refused() {
        let mut b = Broker::new(
            Limits {
                memory_budget: 100_000,
                ..Limits::default()
            },
            [0; 16],
        );
        let c = creds();
        let mut out = Vec::new();
        ready(&mut b, 1, &mut out);
        b.frame(1, &join(&c, &[1; 32]), false, 0, &mut out);
        b.set_queued_bytes(99_000);
        out.clear();
        b.frame(1, &publish(&c, 5, &[0; 2000]), false, 0, &mut out);
        let f = frames_to(&out, 1);
        assert_eq!((f[0].code, f[0].request), (code::OVER_CAPACITY, 5));
        assert_eq!(b.connections(), 1);
        b.set_queued_bytes(0);
        out.clear();
        b.frame(1, &publish(&c, 6, &[0; 2000]), false, 0, &mut out);
        assert_eq!(frames_to(&out, 1)[0].kind, kind::ACK);
    }

    /// PINGs and carrier pings have their own, lower rate (BRK-LIM-3): a ping
    /// flood is answered RATE_LIMITED and then closed, though the frame rate
    /// would allow it.
    #[test]
    fn pings_are_rate_limited() {
        let mut b = Broker::new(
            Limits {
                max_strikes: 5,
                ping_rate_per_sec: 2,
                ping_burst: 10,
                ..Limits::default()
            },
            [0; 16],
        );
        let mut out = Vec::new();
        ready(&mut b, 1, &mut out);
        let ping = enc(BrokerFrame {
            kind: kind::PING,
            ..Default::default()
        });
        out.clear();
        for _ in 0..10 {
            b.frame(1, &ping, false, 0, &mut out);
        }
        assert_eq!(
            frames_to(&out, 1)
                .iter()
                .filter(|f| f.kind == kind::PONG)
                .count(),
            10
        );
        b.frame(1, &ping, false, 0, &mut out);
        assert!(
            frames_to(&out, 1)
                .iter()
                .any(|f| f.code == code::RATE_LIMITED)
        );
        ready(&mut b, 2, &mut out);
        for _ in 0..20 {
            b.control(2, 0, &mut out);
        }
        let to2 = frames_to(&out, 2);
        assert_eq!(to2.last().map(|f| f.code), Some(code::RATE_LIMITED));
        assert!(out.contains(&Action::Close {
            conn: 2,
            code: ErrorCode::RateLimited
        }));
    }

    /// The earliest moment the full scan the broker used to run on every tick
    /// would act: a HELLO or idle timeout of a connection, or a room's TTL.
    fn scan_deadline(b: &Broker) -> Option<u64> {
        let l = &b.limits;
        let conns = b.conns.values().flat_map(|c| {
            let hello = (!c.ready).then(|| c.opened_ms + l.hello_timeout_ms + 1);
            [hello, Some(c.last_seen_ms + l.idle_timeout_ms + 1)]
        });
        let rooms = b.rooms.values().map(|r| {
            r.empty_since_ms
                .filter(|_| r.members.is_empty())
                .map(|t| t + l.empty_room_ttl_ms)
        });
        conns.chain(rooms).flatten().min()
    }

    proptest::proptest! {
        /// BRK-17, BRK-LIM-6: the timers replace the fixed tick without changing
        /// what happens. Whatever the traffic and the times, `poll_timeout` is never
        /// later than the first moment a full scan would act, and after
        /// `handle_timeout(now)` nothing a full scan would act on at `now` is left.
        #[test]
        fn timers_act_when_a_full_scan_would(
            ops in proptest::collection::vec((0u64..4, 0u8..7, 0u64..1_500), 0..80)
        ) {
            let c = creds();
            let limits = Limits {
                hello_timeout_ms: 1_000,
                idle_timeout_ms: 2_000,
                empty_room_ttl_ms: 1_500,
                ..Limits::default()
            };
            let mut b = Broker::new(limits, [0; 16]);
            let mut now = 0u64;
            let mut out = Vec::new();
            for (conn, what, dt) in ops {
                match what {
                    0 => {
                        if !b.conns.contains_key(&conn) {
                            b.open(conn, [conn as u8; 32], now);
                        }
                    }
                    1 => b.frame(conn, &hello(), false, now, &mut out),
                    2 => b.frame(conn, &join(&c, &[conn as u8; 32]), false, now, &mut out),
                    3 => b.frame(conn, &publish(&c, 0, b"x"), false, now, &mut out),
                    4 => {
                        let leave = enc(BrokerFrame {
                            kind: kind::LEAVE,
                            room_id: c.room_id().to_vec(),
                            ..Default::default()
                        });
                        b.frame(conn, &leave, false, now, &mut out);
                    }
                    5 => b.close(conn, &mut out),
                    _ => now += dt,
                }
                if let Some(due) = scan_deadline(&b) {
                    let armed = b.poll_timeout();
                    proptest::prop_assert!(armed.is_some_and(|t| t <= due), "{armed:?} > {due}");
                }
                if b.poll_timeout().is_some_and(|t| t <= now) {
                    b.handle_timeout(now, &mut out);
                }
                proptest::prop_assert!(scan_deadline(&b).is_none_or(|t| t > now));
            }
        }
    }

    #[test]
    fn idle_and_hello_timeouts() {
        let mut b = Broker::new(Limits::default(), [0; 16]);
        let mut out = Vec::new();
        b.open(1, [0; 32], 0);
        b.handle_timeout(5_000, &mut out);
        assert!(out.is_empty());
        b.handle_timeout(10_001, &mut out);
        assert_eq!(frames_to(&out, 1)[0].code, code::TIMEOUT);
        assert_eq!(b.connections(), 0);
    }
}
