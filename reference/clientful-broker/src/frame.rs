//! Broker frames (spec §10.3): kinds, error codes, and the bounded decoder and
//! encoders of `clientful.v1.BrokerFrame`.

use bytes::Bytes;
use clientful_core::wire;
use clientful_proto::v1::BrokerFrame;

/// The broker protocol version this crate speaks (BRK-2).
pub const BROKER_PROTOCOL_VERSION: u32 = 1;

/// Frame kinds (BRK-3).
pub mod kind {
    /// c->b: protocol version.
    pub const HELLO: u32 = 1;
    /// b->c: version, join challenge, limits.
    pub const WELCOME: u32 = 2;
    /// b->c: unsupported version; the connection ends.
    pub const REFUSE: u32 = 3;
    /// c->b: join a room with a proof.
    pub const JOIN: u32 = 4;
    /// b->c: the join succeeded.
    pub const JOINED: u32 = 5;
    /// c->b: leave a room.
    pub const LEAVE: u32 = 6;
    /// c->b: publish an opaque payload to a room.
    pub const PUBLISH: u32 = 7;
    /// b->c: a publish was accepted and numbered.
    pub const ACK: u32 = 8;
    /// b->c: a payload published by another connection.
    pub const DELIVER: u32 = 9;
    /// c<->b: an ephemeral payload, relayed and never stored.
    pub const EPHEMERAL: u32 = 10;
    /// b->c: an error with a reason code.
    pub const ERROR: u32 = 11;
    /// c<->b: keepalive request.
    pub const PING: u32 = 12;
    /// c<->b: keepalive answer.
    pub const PONG: u32 = 13;
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

/// Decodes a frame: the size limit first, then the canonical scan (BRK-4).
pub fn decode(bytes: &[u8], max_frame: usize) -> Result<BrokerFrame, FrameError> {
    if bytes.len() > max_frame {
        return Err(FrameError::TooLarge(bytes.len()));
    }
    let f: BrokerFrame = wire::decode(bytes, &wire::BROKER_FRAME).map_err(FrameError::Malformed)?;
    if f.kind == 0 {
        return Err(FrameError::MissingKind);
    }
    Ok(f)
}

/// Encodes a frame (canonical) into shareable bytes.
pub fn encode(f: &BrokerFrame) -> Bytes {
    Bytes::from(wire::encode(f))
}

/// An ERROR frame.
pub fn error(code: u32, request: u32, room_id: &[u8]) -> Bytes {
    encode(&BrokerFrame {
        kind: kind::ERROR,
        code,
        request,
        room_id: room_id.to_vec(),
        ..Default::default()
    })
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
            (f.kind, f.code, f.request),
            (kind::ERROR, code::BAD_PROOF, 7)
        );
        assert!(matches!(decode(&b, 3), Err(FrameError::TooLarge(_))));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff], 1024),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(decode(&[], 1024), Err(FrameError::MissingKind)));
    }

    proptest::proptest! {
        #[test]
        fn decoder_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode(&bytes, 128);
        }
    }
}
