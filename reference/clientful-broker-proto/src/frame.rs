//! Broker frames (spec §10.3): kinds, error codes, the bounded decoder and the
//! encoder of `clientful.v1.BrokerFrame` (BRK-2, BRK-3, BRK-4, BRK-18).
//!
//! Bytes are decoded once, at the boundary, into a typed [`Frame`]: one variant per
//! kind, holding only the fields BRK-3 lists for that kind (the others are ignored,
//! as BRK-3 says receivers do). [`Frame::encode`] writes exactly those fields, in
//! the canonical encoding of §3.4. The state machines ([`crate::state`],
//! [`crate::client`]) only see [`Frame`]s; [`decode_raw`] is for tools and tests
//! that look at a frame field by field as it travelled.

use bytes::Bytes;
use clientful_core::wire;
use clientful_proto::v1::BrokerFrame;

/// The broker protocol version this crate speaks (BRK-2).
pub const BROKER_PROTOCOL_VERSION: u32 = 1;

/// The frame kinds of BRK-3 (the `kind` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// c->b: protocol version.
    Hello,
    /// b->c: version, join challenge, limits.
    Welcome,
    /// b->c: unsupported version; the connection ends.
    Refuse,
    /// c->b: join a room with a proof.
    Join,
    /// b->c: the join succeeded.
    Joined,
    /// c->b: leave a room.
    Leave,
    /// c->b: publish an opaque payload to a room.
    Publish,
    /// b->c: a publish was accepted and numbered.
    Ack,
    /// b->c: a payload published by another connection.
    Deliver,
    /// c<->b: an ephemeral payload, relayed and never stored.
    Ephemeral,
    /// b->c: an error with a reason code.
    Error,
    /// c<->b: keepalive request.
    Ping,
    /// c<->b: keepalive answer.
    Pong,
}

impl Kind {
    /// Every kind, in wire-number order.
    pub const ALL: [Kind; 13] = [
        Kind::Hello,
        Kind::Welcome,
        Kind::Refuse,
        Kind::Join,
        Kind::Joined,
        Kind::Leave,
        Kind::Publish,
        Kind::Ack,
        Kind::Deliver,
        Kind::Ephemeral,
        Kind::Error,
        Kind::Ping,
        Kind::Pong,
    ];

    /// The kind's number on the wire (BRK-3).
    pub const fn number(self) -> u32 {
        match self {
            Kind::Hello => 1,
            Kind::Welcome => 2,
            Kind::Refuse => 3,
            Kind::Join => 4,
            Kind::Joined => 5,
            Kind::Leave => 6,
            Kind::Publish => 7,
            Kind::Ack => 8,
            Kind::Deliver => 9,
            Kind::Ephemeral => 10,
            Kind::Error => 11,
            Kind::Ping => 12,
            Kind::Pong => 13,
        }
    }

    /// The kind with wire number `n`, if this version defines one.
    pub fn from_number(n: u32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.number() == n)
    }

    /// Whether a client may send this kind to a broker (BRK-3: WELCOME, REFUSE,
    /// JOINED, ACK, DELIVER and ERROR are the broker's).
    pub const fn client_may_send(self) -> bool {
        matches!(
            self,
            Kind::Hello
                | Kind::Join
                | Kind::Leave
                | Kind::Publish
                | Kind::Ephemeral
                | Kind::Ping
                | Kind::Pong
        )
    }
}

/// The wire numbers of the frame kinds, for tools and tests that build or read
/// `BrokerFrame`s field by field (the state machines use [`Kind`]).
pub mod kind {
    use super::Kind;
    /// c->b: protocol version.
    pub const HELLO: u32 = Kind::Hello.number();
    /// b->c: version, join challenge, limits.
    pub const WELCOME: u32 = Kind::Welcome.number();
    /// b->c: unsupported version; the connection ends.
    pub const REFUSE: u32 = Kind::Refuse.number();
    /// c->b: join a room with a proof.
    pub const JOIN: u32 = Kind::Join.number();
    /// b->c: the join succeeded.
    pub const JOINED: u32 = Kind::Joined.number();
    /// c->b: leave a room.
    pub const LEAVE: u32 = Kind::Leave.number();
    /// c->b: publish an opaque payload to a room.
    pub const PUBLISH: u32 = Kind::Publish.number();
    /// b->c: a publish was accepted and numbered.
    pub const ACK: u32 = Kind::Ack.number();
    /// b->c: a payload published by another connection.
    pub const DELIVER: u32 = Kind::Deliver.number();
    /// c<->b: an ephemeral payload, relayed and never stored.
    pub const EPHEMERAL: u32 = Kind::Ephemeral.number();
    /// b->c: an error with a reason code.
    pub const ERROR: u32 = Kind::Error.number();
    /// c<->b: keepalive request.
    pub const PING: u32 = Kind::Ping.number();
    /// c<->b: keepalive answer.
    pub const PONG: u32 = Kind::Pong.number();
}

/// Error reason codes of ERROR and REFUSE frames (BRK-18).
pub mod code {
    /// Not a canonical BrokerFrame, or a frame the sender may not send. Fatal.
    pub const MALFORMED: u32 = 1;
    /// The HELLO's version is not supported. Fatal (REFUSE).
    pub const UNSUPPORTED_VERSION: u32 = 2;
    /// The frame is larger than the broker's frame limit. Fatal.
    pub const FRAME_TOO_LARGE: u32 = 3;
    /// Over the connection's rate; the frame was discarded. Fatal on persistence
    /// (BRK-LIM-3).
    pub const RATE_LIMITED: u32 = 4;
    /// The connection already joined as many rooms as allowed; join refused.
    pub const TOO_MANY_ROOMS: u32 = 5;
    /// The join proof does not verify; join refused.
    pub const BAD_PROOF: u32 = 6;
    /// Publish or ephemeral to a room the connection has not joined; discarded.
    pub const NOT_JOINED: u32 = 7;
    /// A frame other than HELLO before the handshake completed. Fatal.
    pub const NOT_READY: u32 = 8;
    /// The connection's send queue overflowed. Fatal.
    pub const SLOW_READER: u32 = 9;
    /// No HELLO in time, or no frame within the idle timeout. Fatal.
    pub const TIMEOUT: u32 = 10;
    /// The broker is shutting down. Fatal.
    pub const SHUTTING_DOWN: u32 = 11;
    /// The broker's resource budget is spent (BRK-LIM-6): a JOIN that would make a
    /// new room, or a PUBLISH, was refused. Not fatal; retry later.
    pub const OVER_CAPACITY: u32 = 12;

    /// Whether the broker closes the connection after an error with this code.
    pub fn is_fatal(code: u32) -> bool {
        !matches!(
            code,
            TOO_MANY_ROOMS | BAD_PROOF | NOT_JOINED | RATE_LIMITED | OVER_CAPACITY
        )
    }

    /// Short name of a code, for logs and metrics.
    pub fn name(code: u32) -> &'static str {
        match code {
            MALFORMED => "malformed",
            UNSUPPORTED_VERSION => "unsupported_version",
            FRAME_TOO_LARGE => "frame_too_large",
            RATE_LIMITED => "rate_limited",
            TOO_MANY_ROOMS => "too_many_rooms",
            BAD_PROOF => "bad_proof",
            NOT_JOINED => "not_joined",
            NOT_READY => "not_ready",
            SLOW_READER => "slow_reader",
            TIMEOUT => "timeout",
            SHUTTING_DOWN => "shutting_down",
            OVER_CAPACITY => "over_capacity",
            _ => "unknown",
        }
    }

    /// Every code, for metrics.
    pub const ALL: &[u32] = &[
        MALFORMED,
        UNSUPPORTED_VERSION,
        FRAME_TOO_LARGE,
        RATE_LIMITED,
        TOO_MANY_ROOMS,
        BAD_PROOF,
        NOT_JOINED,
        NOT_READY,
        SLOW_READER,
        TIMEOUT,
        SHUTTING_DOWN,
        OVER_CAPACITY,
    ];

    /// The WebSocket close status (RFC 6455 §7.4.1) a connection closed for this
    /// code gets: 1009 for a message too big, 1001 when the broker stops, 1000 for
    /// a normal end, 1008 (policy violation) for the rest.
    pub fn websocket_close(code: u32) -> u16 {
        match code {
            0 => 1000,
            FRAME_TOO_LARGE => 1009,
            SHUTTING_DOWN => 1001,
            _ => 1008,
        }
    }
}

/// A decoded frame: one variant per kind of BRK-3 with that kind's fields only.
/// Room ids stay as sent: their length is checked by the receiver's state machine
/// (BRK-4 makes a wrong length MALFORMED in LEAVE, PUBLISH and EPHEMERAL, but
/// BAD_PROOF in JOIN, BRK-7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// c->b: the protocol version the client speaks.
    Hello {
        /// Protocol version (BRK-2).
        version: u32,
    },
    /// b->c: the handshake succeeded.
    Welcome {
        /// The broker's protocol version.
        version: u32,
        /// The 32-byte join challenge (BRK-6).
        nonce: Vec<u8>,
        /// The broker's frame limit in bytes.
        max_frame: u32,
        /// Rooms one connection may join.
        max_rooms: u32,
        /// Sustained frames per second.
        rate: u32,
    },
    /// b->c: the version is not supported; the connection ends.
    Refuse {
        /// The broker's protocol version.
        version: u32,
        /// Reason code ([`code`]).
        code: u32,
    },
    /// c->b: join a room with a proof over the challenge (BRK-7).
    Join {
        /// Client-chosen request number, echoed.
        request: u32,
        /// Room id (32 bytes when well formed).
        room_id: Vec<u8>,
        /// The room's public key.
        room_key: Vec<u8>,
        /// Signature over the challenge.
        proof: Vec<u8>,
        /// First sequence number wanted from the backlog (0: none).
        cursor: u64,
    },
    /// b->c: the join succeeded.
    Joined {
        /// The JOIN's request number.
        request: u32,
        /// Room id.
        room_id: Vec<u8>,
        /// The room's next sequence number.
        cursor: u64,
        /// The numbering stream's id (BRK-9).
        stream: Vec<u8>,
    },
    /// c->b: leave a room.
    Leave {
        /// Room id.
        room_id: Vec<u8>,
    },
    /// c->b: publish an opaque payload.
    Publish {
        /// Request number (0: no ACK wanted).
        request: u32,
        /// Room id.
        room_id: Vec<u8>,
        /// The opaque payload.
        payload: Vec<u8>,
    },
    /// b->c: a publish was accepted.
    Ack {
        /// The PUBLISH's request number.
        request: u32,
        /// Room id.
        room_id: Vec<u8>,
        /// The sequence number given to the payload.
        cursor: u64,
    },
    /// b->c: a payload another connection published.
    Deliver {
        /// Room id.
        room_id: Vec<u8>,
        /// The payload's sequence number.
        cursor: u64,
        /// The opaque payload.
        payload: Vec<u8>,
    },
    /// c<->b: an ephemeral payload.
    Ephemeral {
        /// Room id.
        room_id: Vec<u8>,
        /// The opaque payload.
        payload: Vec<u8>,
    },
    /// b->c: an error.
    Error {
        /// Reason code ([`code`]).
        code: u32,
        /// The request it concerns, or 0.
        request: u32,
        /// The room it concerns, or empty.
        room_id: Vec<u8>,
    },
    /// c<->b: keepalive request.
    Ping {
        /// Optional nonce, echoed in PONG.
        nonce: Vec<u8>,
    },
    /// c<->b: keepalive answer.
    Pong {
        /// The PING's nonce.
        nonce: Vec<u8>,
    },
    /// A kind number this protocol version does not define.
    Unknown {
        /// The kind number as sent.
        kind: u32,
    },
}

impl Frame {
    /// The frame's kind, or `None` for [`Frame::Unknown`].
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            Frame::Hello { .. } => Kind::Hello,
            Frame::Welcome { .. } => Kind::Welcome,
            Frame::Refuse { .. } => Kind::Refuse,
            Frame::Join { .. } => Kind::Join,
            Frame::Joined { .. } => Kind::Joined,
            Frame::Leave { .. } => Kind::Leave,
            Frame::Publish { .. } => Kind::Publish,
            Frame::Ack { .. } => Kind::Ack,
            Frame::Deliver { .. } => Kind::Deliver,
            Frame::Ephemeral { .. } => Kind::Ephemeral,
            Frame::Error { .. } => Kind::Error,
            Frame::Ping { .. } => Kind::Ping,
            Frame::Pong { .. } => Kind::Pong,
            Frame::Unknown { .. } => return None,
        })
    }

    /// The kind's wire number (also for [`Frame::Unknown`]).
    pub fn kind_number(&self) -> u32 {
        match self {
            Frame::Unknown { kind } => *kind,
            other => other.kind().map_or(0, Kind::number),
        }
    }

    /// The typed view of a decoded `BrokerFrame`: the fields of its kind, the
    /// others dropped (BRK-3).
    pub fn from_raw(f: BrokerFrame) -> Frame {
        let Some(k) = Kind::from_number(f.kind) else {
            return Frame::Unknown { kind: f.kind };
        };
        match k {
            Kind::Hello => Frame::Hello { version: f.version },
            Kind::Welcome => Frame::Welcome {
                version: f.version,
                nonce: f.nonce,
                max_frame: f.max_frame,
                max_rooms: f.max_rooms,
                rate: f.rate,
            },
            Kind::Refuse => Frame::Refuse {
                version: f.version,
                code: f.code,
            },
            Kind::Join => Frame::Join {
                request: f.request,
                room_id: f.room_id,
                room_key: f.room_key,
                proof: f.proof,
                cursor: f.cursor,
            },
            Kind::Joined => Frame::Joined {
                request: f.request,
                room_id: f.room_id,
                cursor: f.cursor,
                stream: f.stream,
            },
            Kind::Leave => Frame::Leave { room_id: f.room_id },
            Kind::Publish => Frame::Publish {
                request: f.request,
                room_id: f.room_id,
                payload: f.payload,
            },
            Kind::Ack => Frame::Ack {
                request: f.request,
                room_id: f.room_id,
                cursor: f.cursor,
            },
            Kind::Deliver => Frame::Deliver {
                room_id: f.room_id,
                cursor: f.cursor,
                payload: f.payload,
            },
            Kind::Ephemeral => Frame::Ephemeral {
                room_id: f.room_id,
                payload: f.payload,
            },
            Kind::Error => Frame::Error {
                code: f.code,
                request: f.request,
                room_id: f.room_id,
            },
            Kind::Ping => Frame::Ping { nonce: f.nonce },
            Kind::Pong => Frame::Pong { nonce: f.nonce },
        }
    }

    /// The `BrokerFrame` carrying exactly this kind's fields.
    pub fn into_raw(self) -> BrokerFrame {
        let kind = self.kind_number();
        let base = BrokerFrame {
            kind,
            ..Default::default()
        };
        match self {
            Frame::Hello { version } => BrokerFrame { version, ..base },
            Frame::Welcome {
                version,
                nonce,
                max_frame,
                max_rooms,
                rate,
            } => BrokerFrame {
                version,
                nonce,
                max_frame,
                max_rooms,
                rate,
                ..base
            },
            Frame::Refuse { version, code } => BrokerFrame {
                version,
                code,
                ..base
            },
            Frame::Join {
                request,
                room_id,
                room_key,
                proof,
                cursor,
            } => BrokerFrame {
                request,
                room_id,
                room_key,
                proof,
                cursor,
                ..base
            },
            Frame::Joined {
                request,
                room_id,
                cursor,
                stream,
            } => BrokerFrame {
                request,
                room_id,
                cursor,
                stream,
                ..base
            },
            Frame::Leave { room_id } => BrokerFrame { room_id, ..base },
            Frame::Publish {
                request,
                room_id,
                payload,
            } => BrokerFrame {
                request,
                room_id,
                payload,
                ..base
            },
            Frame::Ack {
                request,
                room_id,
                cursor,
            } => BrokerFrame {
                request,
                room_id,
                cursor,
                ..base
            },
            Frame::Deliver {
                room_id,
                cursor,
                payload,
            } => BrokerFrame {
                room_id,
                cursor,
                payload,
                ..base
            },
            Frame::Ephemeral { room_id, payload } => BrokerFrame {
                room_id,
                payload,
                ..base
            },
            Frame::Error {
                code,
                request,
                room_id,
            } => BrokerFrame {
                code,
                request,
                room_id,
                ..base
            },
            Frame::Ping { nonce } | Frame::Pong { nonce } => BrokerFrame { nonce, ..base },
            Frame::Unknown { .. } => base,
        }
    }

    /// The canonical encoding (§3.4) of this frame, as shareable bytes.
    pub fn encode(self) -> Bytes {
        Bytes::from(wire::encode(&self.into_raw()))
    }
}

/// Decodes a frame into its typed form: the size limit first, then the
/// canonical scan (BRK-4).
pub fn decode(bytes: &[u8], max_frame: usize) -> Result<Frame, FrameError> {
    decode_raw(bytes, max_frame).map(Frame::from_raw)
}

/// Decodes a frame field by field as it travelled (every field of the schema,
/// whatever the kind): the size limit first, then the canonical scan (BRK-4).
pub fn decode_raw(bytes: &[u8], max_frame: usize) -> Result<BrokerFrame, FrameError> {
    if bytes.len() > max_frame {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    let f: BrokerFrame = wire::decode(bytes, &wire::BROKER_FRAME).map_err(FrameError::Malformed)?;
    if f.kind == 0 {
        return Err(FrameError::MissingKind);
    }
    Ok(f)
}

/// Encodes a `BrokerFrame` built field by field (canonical) into shareable bytes.
pub fn encode(f: &BrokerFrame) -> Bytes {
    Bytes::from(wire::encode(f))
}

/// An ERROR frame.
pub fn error(code: u32, request: u32, room_id: &[u8]) -> Bytes {
    Frame::Error {
        code,
        request,
        room_id: room_id.to_vec(),
    }
    .encode()
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Over the frame size limit.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not canonical protobuf of BrokerFrame.
    #[error("malformed frame: {0}")]
    Malformed(clientful_core::Error),
    /// kind is 0.
    #[error("frame kind missing")]
    MissingKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let b = error(code::BAD_PROOF, 7, &[1; 32]);
        let f = decode(&b, 1024).expect("decodes");
        assert_eq!(
            f,
            Frame::Error {
                code: code::BAD_PROOF,
                request: 7,
                room_id: vec![1; 32]
            }
        );
        assert!(matches!(decode(&b, 3), Err(FrameError::TooLarge(_))));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff], 1024),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(decode(&[], 1024), Err(FrameError::MissingKind)));
    }

    /// Every kind's typed form writes the same bytes as the `BrokerFrame` holding
    /// that kind's fields (BRK-3); fields of other kinds are dropped on decode.
    #[test]
    fn typed_frames_encode_like_the_raw_struct() {
        let raw = BrokerFrame {
            kind: kind::JOINED,
            request: 3,
            room_id: vec![9; 32],
            cursor: 17,
            stream: vec![4; 16],
            ..Default::default()
        };
        let typed = decode(&encode(&raw), 1024).expect("decodes");
        assert_eq!(typed.kind(), Some(Kind::Joined));
        assert_eq!(typed.clone().encode(), encode(&raw));
        let noisy = BrokerFrame {
            kind: kind::PING,
            nonce: vec![1, 2],
            payload: b"ignored".to_vec(),
            ..Default::default()
        };
        let typed = decode(&encode(&noisy), 1024).expect("decodes");
        assert_eq!(typed, Frame::Ping { nonce: vec![1, 2] });
        assert_eq!(
            decode(
                &encode(&BrokerFrame {
                    kind: 99,
                    request: 4,
                    ..Default::default()
                }),
                1024
            )
            .expect("decodes"),
            Frame::Unknown { kind: 99 }
        );
        for k in Kind::ALL {
            assert_eq!(Kind::from_number(k.number()), Some(k));
        }
        assert_eq!(Kind::from_number(0), None);
        assert_eq!(Kind::from_number(14), None);
    }

    proptest::proptest! {
        /// Decoding, then encoding the typed frame, then decoding again is stable:
        /// the typed form loses nothing of its kind's fields.
        #[test]
        fn typed_round_trip_is_stable(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(f) = decode(&bytes, 1024) {
                let again = decode(&f.clone().encode(), 1024);
                if f.kind().is_some() {
                    proptest::prop_assert_eq!(again.ok(), Some(f));
                }
            }
        }

        #[test]
        fn decoder_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode(&bytes, 128);
        }
    }
}
