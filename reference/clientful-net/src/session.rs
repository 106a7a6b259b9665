//! The sans-IO client session (spec §10.3): one connection to a broker, one room.
//!
//! ```text
//! start()            -> HELLO
//! WELCOME {nonce}    -> JOIN {room id, room key, proof(nonce), cursor}
//! JOINED             -> Output::Joined; the caller re-publishes its outbox
//! DELIVER {seq, p}   -> Output::Deliver (duplicates of the same stream dropped)
//! ACK {request}      -> Output::Acked
//! ```

use std::sync::Arc;

use clientful_broker::frame::{self, BROKER_PROTOCOL_VERSION, code, kind};
use clientful_core::room::RoomCredentials;
use clientful_core::wire;
use clientful_proto::v1::BrokerFrame;

/// What the broker told the session.
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
        /// Reason code.
        code: u32,
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
pub enum SessionError {
    /// Not a canonical frame.
    #[error("bad frame from broker: {0}")]
    Frame(#[from] frame::FrameError),
    /// A frame the broker may not send now.
    #[error("unexpected frame kind {0}")]
    Unexpected(u32),
    /// The join proof could not be made.
    #[error("join proof: {0}")]
    Proof(#[from] clientful_core::Error),
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

fn enc(f: BrokerFrame) -> Vec<u8> {
    wire::encode(&f)
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
        enc(BrokerFrame {
            kind: kind::HELLO,
            version: BROKER_PROTOCOL_VERSION,
            ..Default::default()
        })
    }

    /// A PUBLISH frame.
    pub fn publish(&self, request: u32, payload: &[u8]) -> Vec<u8> {
        enc(BrokerFrame {
            kind: kind::PUBLISH,
            request,
            room_id: self.room.room_id().to_vec(),
            payload: payload.to_vec(),
            ..Default::default()
        })
    }

    /// An EPHEMERAL frame.
    pub fn ephemeral(&self, payload: &[u8]) -> Vec<u8> {
        enc(BrokerFrame {
            kind: kind::EPHEMERAL,
            room_id: self.room.room_id().to_vec(),
            payload: payload.to_vec(),
            ..Default::default()
        })
    }

    /// A PING frame.
    pub fn ping(&self) -> Vec<u8> {
        enc(BrokerFrame {
            kind: kind::PING,
            ..Default::default()
        })
    }

    /// Handles one frame from the broker.
    pub fn handle(&mut self, bytes: &[u8], out: &mut Vec<Output>) -> Result<(), SessionError> {
        let f = frame::decode(bytes, self.max_frame)?;
        match (self.state, f.kind) {
            (State::AwaitWelcome, kind::WELCOME) => {
                if f.max_frame > 0 {
                    self.max_frame = (f.max_frame as usize).max(CLIENT_MAX_FRAME);
                }
                let proof = self.room.join_proof(&f.nonce)?;
                out.push(Output::Send(enc(BrokerFrame {
                    kind: kind::JOIN,
                    request: 1,
                    room_id: self.room.room_id().to_vec(),
                    room_key: self.room.room_public_key().to_vec(),
                    proof: proof.to_vec(),
                    cursor: self.resume.next_seq,
                    ..Default::default()
                })));
                self.state = State::AwaitJoined;
            }
            (_, kind::REFUSE) => out.push(Output::Refused { version: f.version }),
            (State::AwaitJoined, kind::JOINED) => {
                let resumed = !self.resume.stream.is_empty() && self.resume.stream == f.stream;
                if !resumed {
                    self.resume = Resume {
                        stream: f.stream,
                        next_seq: f.cursor,
                    };
                }
                self.state = State::Joined;
                out.push(Output::Joined { resumed });
            }
            (State::Joined, kind::DELIVER) => {
                // Sequence numbers of one stream only grow: a lower one is a
                // duplicate (backlog overlapping live delivery).
                if f.cursor >= self.resume.next_seq {
                    self.resume.next_seq = f.cursor.saturating_add(1);
                    out.push(Output::Deliver {
                        seq: f.cursor,
                        payload: f.payload,
                    });
                }
            }
            (State::Joined, kind::EPHEMERAL) => out.push(Output::Ephemeral(f.payload)),
            (State::Joined, kind::ACK) => out.push(Output::Acked(f.request)),
            (_, kind::ERROR) => out.push(Output::Error {
                code: f.code,
                request: f.request,
            }),
            (_, kind::PING) => out.push(Output::Send(enc(BrokerFrame {
                kind: kind::PONG,
                nonce: f.nonce,
                ..Default::default()
            }))),
            (_, kind::PONG) => {}
            (_, other) => return Err(SessionError::Unexpected(other)),
        }
        Ok(())
    }
}

/// Whether an ERROR code ends the connection (the broker closes it).
pub fn is_fatal(c: u32) -> bool {
    code::is_fatal(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use clientful_broker::state::{Action, Broker, Limits};
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
}
