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

/// The reason codes of ERROR and REFUSE frames (BRK-18). Codes this version does
/// not define, when a peer sends one, decode to [`ErrorCode::Unknown`] (the frame
/// keeps the number as sent); [`ErrorCode::try_from`] refuses them with
/// [`UnknownErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not a canonical BrokerFrame, or a frame the sender may not send. Fatal.
    Malformed,
    /// The HELLO's version is not supported. Fatal (REFUSE).
    UnsupportedVersion,
    /// The frame is larger than the broker's frame limit. Fatal.
    FrameTooLarge,
    /// Over the connection's rate; the frame was discarded. Fatal on persistence
    /// (BRK-LIM-3).
    RateLimited,
    /// The connection already joined as many rooms as allowed; join refused.
    TooManyRooms,
    /// The join proof does not verify; join refused.
    BadProof,
    /// Publish or ephemeral to a room the connection has not joined; discarded.
    NotJoined,
    /// A frame other than HELLO before the handshake completed. Fatal.
    NotReady,
    /// The connection's send queue overflowed. Fatal.
    SlowReader,
    /// No HELLO in time, or no frame within the idle timeout. Fatal.
    Timeout,
    /// The broker is shutting down. Fatal.
    ShuttingDown,
    /// The broker's resource budget is spent (BRK-LIM-6): a JOIN that would make a
    /// new room, or a PUBLISH, was refused. Not fatal; retry later.
    OverCapacity,
    /// A code this protocol version does not define, as a peer sent it (treated
    /// as fatal by [`ErrorCode::is_fatal`]).
    Unknown(u32),
}

/// A reason code this protocol version does not define (BRK-18 lists 1 to 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown broker error code {0}")]
pub struct UnknownErrorCode(pub u32);

impl ErrorCode {
    /// Every code BRK-18 defines, in wire-number order (for metrics).
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Malformed,
        ErrorCode::UnsupportedVersion,
        ErrorCode::FrameTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::TooManyRooms,
        ErrorCode::BadProof,
        ErrorCode::NotJoined,
        ErrorCode::NotReady,
        ErrorCode::SlowReader,
        ErrorCode::Timeout,
        ErrorCode::ShuttingDown,
        ErrorCode::OverCapacity,
    ];

    /// The code's number on the wire (BRK-18).
    pub const fn code(self) -> u32 {
        match self {
            ErrorCode::Malformed => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::FrameTooLarge => 3,
            ErrorCode::RateLimited => 4,
            ErrorCode::TooManyRooms => 5,
            ErrorCode::BadProof => 6,
            ErrorCode::NotJoined => 7,
            ErrorCode::NotReady => 8,
            ErrorCode::SlowReader => 9,
            ErrorCode::Timeout => 10,
            ErrorCode::ShuttingDown => 11,
            ErrorCode::OverCapacity => 12,
            ErrorCode::Unknown(n) => n,
        }
    }

    /// The code with wire number `n`; a number this version does not define
    /// becomes [`ErrorCode::Unknown`] (total: decoding a peer's frame never fails
    /// on its code).
    pub fn from_code(n: u32) -> ErrorCode {
        ErrorCode::try_from(n).unwrap_or(ErrorCode::Unknown(n))
    }

    /// Whether the broker closes the connection after an error with this code
    /// (BRK-18); an unknown code counts as fatal.
    pub const fn is_fatal(self) -> bool {
        !matches!(
            self,
            ErrorCode::TooManyRooms
                | ErrorCode::BadProof
                | ErrorCode::NotJoined
                | ErrorCode::RateLimited
                | ErrorCode::OverCapacity
        )
    }

    /// Short name of the code, for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::BadProof => "bad_proof",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::SlowReader => "slow_reader",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::OverCapacity => "over_capacity",
            ErrorCode::Unknown(_) => "unknown",
        }
    }

    /// The WebSocket close status (RFC 6455 §7.4.1) a connection closed after
    /// this code gets (BRK-18): 1009 for a message too big, 1001 when the broker
    /// stops, 1008 (policy violation) for the rest.
    pub const fn websocket_close(self) -> u16 {
        match self {
            ErrorCode::FrameTooLarge => 1009,
            ErrorCode::ShuttingDown => 1001,
            _ => 1008,
        }
    }
}

impl TryFrom<u32> for ErrorCode {
    type Error = UnknownErrorCode;

    /// The code with wire number `n`, or [`UnknownErrorCode`] if BRK-18 does not
    /// define it.
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.code() == n)
            .ok_or(UnknownErrorCode(n))
    }
}

impl From<ErrorCode> for u32 {
    fn from(c: ErrorCode) -> u32 {
        c.code()
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ErrorCode::Unknown(n) => write!(f, "unknown({n})"),
            known => f.write_str(known.name()),
        }
    }
}

/// The wire numbers of the error codes, for tools and tests that build or read
/// `BrokerFrame`s field by field (the state machines use [`ErrorCode`]).
pub mod code {
    use super::ErrorCode;
    /// [`ErrorCode::Malformed`].
    pub const MALFORMED: u32 = ErrorCode::Malformed.code();
    /// [`ErrorCode::UnsupportedVersion`].
    pub const UNSUPPORTED_VERSION: u32 = ErrorCode::UnsupportedVersion.code();
    /// [`ErrorCode::FrameTooLarge`].
    pub const FRAME_TOO_LARGE: u32 = ErrorCode::FrameTooLarge.code();
    /// [`ErrorCode::RateLimited`].
    pub const RATE_LIMITED: u32 = ErrorCode::RateLimited.code();
    /// [`ErrorCode::TooManyRooms`].
    pub const TOO_MANY_ROOMS: u32 = ErrorCode::TooManyRooms.code();
    /// [`ErrorCode::BadProof`].
    pub const BAD_PROOF: u32 = ErrorCode::BadProof.code();
    /// [`ErrorCode::NotJoined`].
    pub const NOT_JOINED: u32 = ErrorCode::NotJoined.code();
    /// [`ErrorCode::NotReady`].
    pub const NOT_READY: u32 = ErrorCode::NotReady.code();
    /// [`ErrorCode::SlowReader`].
    pub const SLOW_READER: u32 = ErrorCode::SlowReader.code();
    /// [`ErrorCode::Timeout`].
    pub const TIMEOUT: u32 = ErrorCode::Timeout.code();
    /// [`ErrorCode::ShuttingDown`].
    pub const SHUTTING_DOWN: u32 = ErrorCode::ShuttingDown.code();
    /// [`ErrorCode::OverCapacity`].
    pub const OVER_CAPACITY: u32 = ErrorCode::OverCapacity.code();
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
        /// Reason code (BRK-18).
        code: ErrorCode,
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
        /// Reason code (BRK-18).
        code: ErrorCode,
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
                code: ErrorCode::from_code(f.code),
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
                code: ErrorCode::from_code(f.code),
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
                code: code.code(),
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
                code: code.code(),
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
pub fn error(code: ErrorCode, request: u32, room_id: &[u8]) -> Bytes {
    Frame::Error {
        code,
        request,
        room_id: room_id.to_vec(),
    }
    .encode()
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

    /// BRK-18: every defined code round-trips through its wire number; an
    /// undefined number is refused by `try_from` and kept as `Unknown` by
    /// `from_code` (and by the frame decoder), so re-encoding keeps the bytes.
    #[test]
    fn error_codes_round_trip_and_unknown_codes_stay_typed() {
        for (i, c) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(c.code() as usize, i + 1);
            assert_eq!(ErrorCode::try_from(c.code()), Ok(c));
            assert_eq!(ErrorCode::from_code(c.code()), c);
        }
        assert_eq!(ErrorCode::try_from(0), Err(UnknownErrorCode(0)));
        assert_eq!(ErrorCode::try_from(13), Err(UnknownErrorCode(13)));
        assert_eq!(ErrorCode::from_code(99), ErrorCode::Unknown(99));
        assert!(ErrorCode::Unknown(99).is_fatal());
        assert!(!ErrorCode::BadProof.is_fatal());
        assert_eq!(ErrorCode::FrameTooLarge.websocket_close(), 1009);
        let raw = BrokerFrame {
            kind: kind::ERROR,
            code: 99,
            request: 3,
            ..Default::default()
        };
        let typed = decode(&encode(&raw), 1024).expect("decodes");
        assert_eq!(
            typed,
            Frame::Error {
                code: ErrorCode::Unknown(99),
                request: 3,
                room_id: Vec::new()
            }
        );
        assert_eq!(typed.encode(), encode(&raw));
    }

    #[test]
    fn round_trip_and_bounds() {
        let b = error(ErrorCode::BadProof, 7, &[1; 32]);
        let f = decode(&b, 1024).expect("decodes");
        assert_eq!(
            f,
            Frame::Error {
                code: ErrorCode::BadProof,
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
