//! The client side of the broker protocol without IO (spec §10.3, §10.7): one
//! connection to a broker, one room.
//!
//! [`ClientSession`] is the frame exchange:
//!
//! ```text
//! start()            -> HELLO
//! WELCOME {nonce}    -> JOIN {room id, room key, proof(nonce), cursor}
//! JOINED             -> Output::Joined; the caller re-publishes its outbox
//! DELIVER {seq, p}   -> Output::Deliver (duplicates of the same stream dropped)
//! ACK {request}      -> Output::Acked
//! ```
//!
//! [`ClientConnection`] adds time (BRK-17): it is fed frames with the time they
//! arrived, says when it next needs to be woken ([`ClientConnection::poll_timeout`]),
//! and when woken sends PING or reports the broker lost after three silent PING
//! intervals. Transports drive it; they decide nothing about timing.

use std::sync::Arc;

use clientful_core::room::RoomCredentials;

use crate::frame::{self, BROKER_PROTOCOL_VERSION, ErrorCode, Frame};

/// What the broker told the session.
/// Exhaustive on purpose: a driver must act on every output; a new one must fail to compile in every driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these frame bytes to the broker.
    Send(Vec<u8>),
    /// The room is joined. `resumed` is true when the broker is the same instance
    /// as before, so the backlog covered what was missed.
    Joined {
        /// Same broker stream as the last session.
        resumed: bool,
    },
    /// A payload another member published.
    Deliver {
        /// Broker sequence number.
        seq: u64,
        /// The opaque (sealed) payload.
        payload: Vec<u8>,
    },
    /// An ephemeral payload.
    Ephemeral(Vec<u8>),
    /// A publish was acknowledged.
    Acked(u32),
    /// The broker reported an error.
    Error {
        /// Reason code (BRK-18; [`ErrorCode::Unknown`] for a code this version
        /// does not define).
        code: ErrorCode,
        /// The request it concerns, or 0.
        request: u32,
    },
    /// The broker refused the protocol version; it speaks `version`.
    Refused {
        /// The broker's version.
        version: u32,
    },
}

/// Where to resume: the last broker stream seen and the next sequence number.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The broker instance's stream id.
    pub stream: Vec<u8>,
    /// First sequence number not yet received.
    pub next_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    AwaitWelcome,
    AwaitJoined,
    Joined,
}

/// A frame the session could not accept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Not a canonical frame.
    #[error("bad frame from broker: {0}")]
    Frame(#[from] frame::FrameError),
    /// A frame the broker may not send now (its kind number).
    #[error("unexpected frame kind {0}")]
    Unexpected(u32),
    /// The join proof could not be made.
    #[error("join proof: {0}")]
    Proof(#[from] clientful_core::Error),
    /// A JOINED, ACK, DELIVER or EPHEMERAL naming a room other than the
    /// session's (BRK-19): a broker that misroutes is not trusted further.
    #[error("frame kind {0} for another room")]
    OtherRoom(u32),
}

/// One session.
pub struct ClientSession {
    room: Arc<RoomCredentials>,
    state: State,
    resume: Resume,
    max_frame: usize,
}

/// Largest frame a client accepts from a broker.
pub const CLIENT_MAX_FRAME: usize = 4 * 1024 * 1024;

fn enc(f: Frame) -> Vec<u8> {
    f.encode().into()
}

impl ClientSession {
    /// A session for `room`, resuming after `resume` (default: from nothing).
    pub fn new(room: Arc<RoomCredentials>, resume: Resume) -> Self {
        ClientSession {
            room,
            state: State::New,
            resume,
            max_frame: CLIENT_MAX_FRAME,
        }
    }

    /// The resume point to hand to the next session.
    pub fn resume(&self) -> &Resume {
        &self.resume
    }

    /// Whether the room is joined.
    pub fn is_joined(&self) -> bool {
        self.state == State::Joined
    }

    /// The HELLO frame.
    pub fn start(&mut self) -> Vec<u8> {
        self.state = State::AwaitWelcome;
        enc(Frame::Hello {
            version: BROKER_PROTOCOL_VERSION,
        })
    }

    /// A PUBLISH frame.
    pub fn publish(&self, request: u32, payload: &[u8]) -> Vec<u8> {
        enc(Frame::Publish {
            request,
            room_id: self.room.room_id().to_vec(),
            payload: payload.to_vec(),
        })
    }

    /// An EPHEMERAL frame.
    pub fn ephemeral(&self, payload: &[u8]) -> Vec<u8> {
        enc(Frame::Ephemeral {
            room_id: self.room.room_id().to_vec(),
            payload: payload.to_vec(),
        })
    }

    /// A PING frame.
    pub fn ping(&self) -> Vec<u8> {
        enc(Frame::Ping { nonce: Vec::new() })
    }

    /// Handles one frame from the broker.
    pub fn handle(&mut self, bytes: &[u8], out: &mut Vec<Output>) -> Result<(), SessionError> {
        let f = frame::decode(bytes, self.max_frame)?;
        if let Frame::Joined { room_id, .. }
        | Frame::Ack { room_id, .. }
        | Frame::Deliver { room_id, .. }
        | Frame::Ephemeral { room_id, .. } = &f
            && room_id.as_slice() != self.room.room_id().as_slice()
        {
            return Err(SessionError::OtherRoom(f.kind_number()));
        }
        match (self.state, f) {
            (
                State::AwaitWelcome,
                Frame::Welcome {
                    nonce, max_frame, ..
                },
            ) => {
                if max_frame > 0 {
                    self.max_frame = (max_frame as usize).max(CLIENT_MAX_FRAME);
                }
                let proof = self.room.join_proof(&nonce)?;
                out.push(Output::Send(enc(Frame::Join {
                    request: 1,
                    room_id: self.room.room_id().to_vec(),
                    room_key: self.room.room_public_key().to_vec(),
                    proof: proof.to_vec(),
                    cursor: self.resume.next_seq,
                })));
                self.state = State::AwaitJoined;
            }
            (_, Frame::Refuse { version, .. }) => out.push(Output::Refused { version }),
            (State::AwaitJoined, Frame::Joined { cursor, stream, .. }) => {
                let resumed = !self.resume.stream.is_empty() && self.resume.stream == stream;
                if !resumed {
                    self.resume = Resume {
                        stream,
                        next_seq: cursor,
                    };
                }
                self.state = State::Joined;
                out.push(Output::Joined { resumed });
            }
            (
                State::Joined,
                Frame::Deliver {
                    cursor, payload, ..
                },
            ) => {
                // Sequence numbers of one stream only grow: a lower one is a
                // duplicate (backlog overlapping live delivery).
                if cursor >= self.resume.next_seq {
                    self.resume.next_seq = cursor.saturating_add(1);
                    out.push(Output::Deliver {
                        seq: cursor,
                        payload,
                    });
                }
            }
            (State::Joined, Frame::Ephemeral { payload, .. }) => {
                out.push(Output::Ephemeral(payload))
            }
            (State::Joined, Frame::Ack { request, .. }) => out.push(Output::Acked(request)),
            (_, Frame::Error { code, request, .. }) => out.push(Output::Error { code, request }),
            (_, Frame::Ping { nonce }) => out.push(Output::Send(enc(Frame::Pong { nonce }))),
            (_, Frame::Pong { .. }) => {}
            (_, other) => return Err(SessionError::Unexpected(other.kind_number())),
        }
        Ok(())
    }
}

/// The broker said nothing, not even PONG, for three PING intervals (BRK-17):
/// the connection is lost (a killed broker sends no close over QUIC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broker was silent for {silent_ms} ms")]
pub struct BrokerSilent {
    /// How long nothing was heard.
    pub silent_ms: u64,
}

/// One connection to a broker with its timing (BRK-17): a [`ClientSession`] fed
/// frames and time. It PINGs every `keepalive_ms` and, when woken, reports the
/// broker lost once nothing was heard for more than three intervals.
pub struct ClientConnection {
    session: ClientSession,
    keepalive_ms: u64,
    last_heard_ms: u64,
    next_ping_ms: u64,
}

impl ClientConnection {
    /// A connection opened at `now_ms` for `session`, pinging every
    /// `keepalive_ms` (at least 1).
    pub fn new(session: ClientSession, keepalive_ms: u64, now_ms: u64) -> Self {
        let keepalive_ms = keepalive_ms.max(1);
        ClientConnection {
            session,
            keepalive_ms,
            last_heard_ms: now_ms,
            next_ping_ms: now_ms.saturating_add(keepalive_ms),
        }
    }

    /// The session (resume point, joined state, frame builders).
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The HELLO frame to send first.
    pub fn start(&mut self) -> Vec<u8> {
        self.session.start()
    }

    /// A frame from the broker, arrived at `now_ms`.
    pub fn handle(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), SessionError> {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
        self.session.handle(bytes, out)
    }

    /// When [`ClientConnection::handle_timeout`] is next due (the next PING).
    pub fn poll_timeout(&self) -> u64 {
        self.next_ping_ms
    }

    /// Time passes: at a PING time, either the broker has been silent for more
    /// than three intervals ([`BrokerSilent`]: reconnect) or a PING is queued as
    /// [`Output::Send`]. Before it, nothing happens.
    pub fn handle_timeout(
        &mut self,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), BrokerSilent> {
        if now_ms < self.next_ping_ms {
            return Ok(());
        }
        // The next PING one interval on; intervals missed while not woken are
        // skipped rather than sent in a burst.
        while self.next_ping_ms <= now_ms {
            self.next_ping_ms = self.next_ping_ms.saturating_add(self.keepalive_ms);
        }
        let silent_ms = now_ms.saturating_sub(self.last_heard_ms);
        if silent_ms > self.keepalive_ms.saturating_mul(3) {
            return Err(BrokerSilent { silent_ms });
        }
        out.push(Output::Send(self.session.ping()));
        Ok(())
    }
}

/// Whether an ERROR code ends the connection (the broker closes it).
pub fn is_fatal(c: ErrorCode) -> bool {
    c.is_fatal()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::state::{Action, Broker, Limits};
    use clientful_core::keys::EpochKey;

    /// A client session against the sans-IO broker, wire bytes both ways.
    #[test]
    fn session_joins_and_exchanges_with_the_broker_state_machine() {
        let room = Arc::new(
            RoomCredentials::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).expect("room"),
        );
        let mut broker = Broker::new(Limits::default(), [7; 16]);
        let mut sessions = [
            ClientSession::new(room.clone(), Resume::default()),
            ClientSession::new(room.clone(), Resume::default()),
        ];
        let mut inbox: Vec<Vec<Output>> = vec![Vec::new(), Vec::new()];
        let mut to_broker: Vec<(u64, Vec<u8>)> = Vec::new();
        for (i, s) in sessions.iter_mut().enumerate() {
            broker.open(i as u64, [i as u8; 32], 0);
            to_broker.push((i as u64, s.start()));
        }
        let mut publish_once = true;
        for _round in 0..10 {
            let mut actions = Vec::new();
            for (conn, bytes) in to_broker.drain(..) {
                broker.frame(conn, &bytes, false, 0, &mut actions);
            }
            for a in actions {
                if let Action::Send { conn, frame, .. } = a {
                    let mut out = Vec::new();
                    sessions[conn as usize]
                        .handle(&frame, &mut out)
                        .expect("valid");
                    for o in out {
                        match o {
                            Output::Send(b) => to_broker.push((conn, b)),
                            other => inbox[conn as usize].push(other),
                        }
                    }
                }
            }
            if publish_once && sessions.iter().all(|s| s.is_joined()) {
                publish_once = false;
                to_broker.push((0, sessions[0].publish(5, b"sealed")));
            }
        }
        assert!(inbox[0].contains(&Output::Acked(5)));
        assert!(inbox[1].contains(&Output::Deliver {
            seq: 1,
            payload: b"sealed".to_vec()
        }));
        assert_eq!(sessions[1].resume().next_seq, 2);
    }

    fn session() -> ClientSession {
        let room = Arc::new(
            RoomCredentials::derive(&[1; 32], &EpochKey::new([2; 32], [3; 32])).expect("room"),
        );
        ClientSession::new(room, Resume::default())
    }

    /// BRK-19: a JOINED or DELIVER naming another room fails the session and
    /// hands nothing to the application.
    #[test]
    fn frames_for_another_room_are_refused() {
        let other =
            RoomCredentials::derive(&[1; 32], &EpochKey::new([4; 32], [3; 32])).expect("room");
        let mut s = session();
        let own = s.room.room_id().to_vec();
        let mut out = Vec::new();
        s.start();
        let welcome: Vec<u8> = Frame::Welcome {
            version: 1,
            nonce: vec![5; 32],
            max_frame: 0,
            max_rooms: 0,
            rate: 0,
        }
        .encode()
        .into();
        s.handle(&welcome, &mut out).expect("welcome");
        let joined = |room: Vec<u8>| -> Vec<u8> {
            Frame::Joined {
                request: 1,
                room_id: room,
                cursor: 1,
                stream: vec![8; 16],
            }
            .encode()
            .into()
        };
        assert!(matches!(
            s.handle(&joined(other.room_id().to_vec()), &mut out),
            Err(SessionError::OtherRoom(_))
        ));
        s.handle(&joined(own), &mut out).expect("own room");
        let deliver: Vec<u8> = Frame::Deliver {
            room_id: other.room_id().to_vec(),
            cursor: 1,
            payload: vec![1],
        }
        .encode()
        .into();
        out.clear();
        assert!(matches!(
            s.handle(&deliver, &mut out),
            Err(SessionError::OtherRoom(_))
        ));
        assert!(out.is_empty());
        assert_eq!(s.resume().next_seq, 1);
    }

    /// BRK-17: a PING every interval while the broker answers; after more than
    /// three silent intervals the broker counts as lost. Nothing before a PING time.
    #[test]
    fn keepalive_pings_and_declares_a_silent_broker_lost() {
        let mut c = ClientConnection::new(session(), 1_000, 0);
        let mut out = Vec::new();
        assert_eq!(c.poll_timeout(), 1_000);
        c.handle_timeout(999, &mut out).expect("alive");
        assert!(out.is_empty());
        c.handle_timeout(1_000, &mut out).expect("alive");
        assert_eq!(out, vec![Output::Send(c.session().ping())]);
        assert_eq!(c.poll_timeout(), 2_000);
        // The broker answers (a PONG) at 2,500: alive until 5,500.
        let pong: Vec<u8> = Frame::Pong { nonce: Vec::new() }.encode().into();
        out.clear();
        c.handle(&pong, 2_500, &mut out).expect("pong");
        assert!(out.is_empty());
        for t in [2_000, 3_000, 4_000, 5_000] {
            c.handle_timeout(t, &mut out).expect("alive");
        }
        assert_eq!(out.len(), 4, "one PING per interval");
        assert_eq!(
            c.handle_timeout(6_000, &mut out),
            Err(BrokerSilent { silent_ms: 3_500 })
        );
        // Woken late: the missed intervals are skipped, not sent in a burst.
        let mut late = ClientConnection::new(session(), 1_000, 0);
        let mut out = Vec::new();
        late.handle(&pong, 2_900, &mut out).expect("pong");
        late.handle_timeout(3_500, &mut out).expect("alive");
        assert_eq!(out.len(), 1);
        assert_eq!(late.poll_timeout(), 4_000);
    }
}
