//! The canonical encoding rule (spec §3.4) and the decoder that enforces it.
//!
//! Every v1 message is decoded by [`decode`], which first runs the *canonical scan*
//! defined in the spec (CAN-1..CAN-9) against the message's [`Schema`], and only
//! then hands the bytes to prost. The scan is the normative definition: it decides
//! between `MALFORMED` and `NON_CANONICAL` in one fixed order, so every
//! implementation, whatever protobuf library it uses, gives the same class. The
//! consequence (checked by tests and fuzzing) is the rule: a message is
//! accepted iff decoding then re-encoding gives the same bytes.
//!
//! v1 messages have only `uint32`, `uint64`, `bytes` and `repeated bytes` fields, and
//! never a message-typed field, so the scan is flat: nesting depth is bounded by the
//! layering, not by recursion.

use alloc::vec::Vec;

use crate::error::Error;

/// The type of one field, which fixes its wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `uint32`, wire type 0; values above 2^32 - 1 are malformed.
    Uint32,
    /// `uint64`, wire type 0.
    Uint64,
    /// `bytes`, wire type 2.
    Bytes,
    /// `repeated bytes`, wire type 2, one record per element.
    RepeatedBytes,
}

impl FieldKind {
    fn wire_type(self) -> u64 {
        match self {
            FieldKind::Uint32 | FieldKind::Uint64 => 0,
            FieldKind::Bytes | FieldKind::RepeatedBytes => 2,
        }
    }
}

/// One field of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Field number.
    pub number: u32,
    /// Field name as in the `.proto` file.
    pub name: &'static str,
    /// Field type.
    pub kind: FieldKind,
}

/// A message schema: its fully qualified protobuf name and fields in ascending
/// field-number order. Tests check each schema against the compiled `.proto`.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Fully qualified name, e.g. `clientful.v1.SignedEnvelope`.
    pub name: &'static str,
    /// Fields, ascending by number.
    pub fields: &'static [Field],
}

impl Schema {
    fn field(&self, number: u64) -> Option<&Field> {
        self.fields.iter().find(|f| u64::from(f.number) == number)
    }
}

const fn f(number: u32, name: &'static str, kind: FieldKind) -> Field {
    Field { number, name, kind }
}

/// `clientful.v1.SignedEnvelope`.
pub const SIGNED_ENVELOPE: Schema = Schema {
    name: "clientful.v1.SignedEnvelope",
    fields: &[
        f(1, "payload", FieldKind::Bytes),
        f(2, "signature", FieldKind::Bytes),
    ],
};

/// `clientful.v1.EnvelopePayload`.
pub const ENVELOPE_PAYLOAD: Schema = Schema {
    name: "clientful.v1.EnvelopePayload",
    fields: &[
        f(1, "header", FieldKind::Bytes),
        f(2, "ciphertext", FieldKind::Bytes),
    ],
};

/// `clientful.v1.EnvelopeHeader`.
pub const ENVELOPE_HEADER: Schema = Schema {
    name: "clientful.v1.EnvelopeHeader",
    fields: &[
        f(1, "protocol_version", FieldKind::Uint32),
        f(2, "cipher_suite", FieldKind::Uint32),
        f(3, "space_id", FieldKind::Bytes),
        f(4, "doc_id", FieldKind::Bytes),
        f(5, "author", FieldKind::Bytes),
        f(6, "seq", FieldKind::Uint64),
        f(7, "prev", FieldKind::Bytes),
        f(8, "preds", FieldKind::RepeatedBytes),
        f(9, "epoch_id", FieldKind::Bytes),
        f(10, "key_commitment", FieldKind::Bytes),
        f(11, "nonce", FieldKind::Bytes),
    ],
};

/// `clientful.v1.EnvelopeContent`.
pub const ENVELOPE_CONTENT: Schema = Schema {
    name: "clientful.v1.EnvelopeContent",
    fields: &[
        f(1, "content_type", FieldKind::Uint32),
        f(2, "body", FieldKind::Bytes),
    ],
};

/// `clientful.v1.DeviceBinding`.
pub const DEVICE_BINDING: Schema = Schema {
    name: "clientful.v1.DeviceBinding",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "user_key", FieldKind::Bytes),
        f(3, "device_key", FieldKind::Bytes),
        f(4, "device_x25519", FieldKind::Bytes),
    ],
};

/// `clientful.v1.DeviceCertificate`.
pub const DEVICE_CERTIFICATE: Schema = Schema {
    name: "clientful.v1.DeviceCertificate",
    fields: &[
        f(1, "binding", FieldKind::Bytes),
        f(2, "device_signature", FieldKind::Bytes),
        f(3, "user_signature", FieldKind::Bytes),
    ],
};

/// `clientful.v1.SyncMessage`.
pub const SYNC_MESSAGE: Schema = Schema {
    name: "clientful.v1.SyncMessage",
    fields: &[
        f(1, "kind", FieldKind::Uint32),
        f(2, "doc_id", FieldKind::Bytes),
        f(3, "heads", FieldKind::RepeatedBytes),
        f(4, "clock", FieldKind::RepeatedBytes),
        f(5, "want", FieldKind::RepeatedBytes),
        f(6, "envelopes", FieldKind::RepeatedBytes),
        f(7, "more", FieldKind::Uint32),
    ],
};

/// `clientful.v1.MembershipOp` (spec §11).
pub const MEMBERSHIP_OP: Schema = Schema {
    name: "clientful.v1.MembershipOp",
    fields: &[
        f(1, "user_key", FieldKind::Bytes),
        f(2, "role", FieldKind::Uint32),
        f(3, "scope", FieldKind::RepeatedBytes),
        f(4, "certificates", FieldKind::RepeatedBytes),
        f(5, "device_id", FieldKind::Bytes),
        f(6, "invite_key", FieldKind::Bytes),
        f(7, "single_use", FieldKind::Uint32),
        f(8, "invite_secret", FieldKind::Bytes),
        f(9, "invite_proof", FieldKind::Bytes),
        f(10, "expires_at_ms", FieldKind::Uint64),
        f(11, "nonce", FieldKind::Bytes),
        f(12, "epoch_id", FieldKind::Bytes),
        f(13, "prev_epochs", FieldKind::RepeatedBytes),
        f(14, "chain_links", FieldKind::RepeatedBytes),
        f(15, "recipients", FieldKind::RepeatedBytes),
        f(16, "key_message", FieldKind::Bytes),
        f(17, "redemption", FieldKind::Bytes),
        f(18, "cuts", FieldKind::RepeatedBytes),
    ],
};

/// `clientful.v1.KeyMessage` (spec §11).
pub const KEY_MESSAGE: Schema = Schema {
    name: "clientful.v1.KeyMessage",
    fields: &[
        f(1, "space_id", FieldKind::Bytes),
        f(2, "epoch_id", FieldKind::Bytes),
        f(3, "boxes", FieldKind::RepeatedBytes),
    ],
};

/// `clientful.v1.SealedKey` (spec §11).
pub const SEALED_KEY: Schema = Schema {
    name: "clientful.v1.SealedKey",
    fields: &[
        f(1, "device_id", FieldKind::Bytes),
        f(2, "ephemeral", FieldKind::Bytes),
        f(3, "ciphertext", FieldKind::Bytes),
    ],
};

/// `clientful.v1.Welcome` (spec §11).
pub const WELCOME: Schema = Schema {
    name: "clientful.v1.Welcome",
    fields: &[
        f(1, "space_id", FieldKind::Bytes),
        f(2, "secrets", FieldKind::RepeatedBytes),
    ],
};

/// `clientful.v1.InviteCode` (spec §11).
pub const INVITE_CODE: Schema = Schema {
    name: "clientful.v1.InviteCode",
    fields: &[
        f(1, "space_id", FieldKind::Bytes),
        f(2, "secret", FieldKind::Bytes),
        f(3, "create_op", FieldKind::Bytes),
        f(4, "genesis", FieldKind::Bytes),
    ],
};

/// `clientful.v1.StorageFormat` (spec §9).
pub const STORAGE_FORMAT: Schema = Schema {
    name: "clientful.v1.StorageFormat",
    fields: &[f(1, "version", FieldKind::Uint32)],
};

/// `clientful.v1.StoredObject` (spec §9).
pub const STORED_OBJECT: Schema = Schema {
    name: "clientful.v1.StoredObject",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "kind", FieldKind::Uint32),
        f(3, "epoch_id", FieldKind::Bytes),
        f(4, "nonce", FieldKind::Bytes),
        f(5, "ciphertext", FieldKind::Bytes),
    ],
};

/// `clientful.v1.SignedObject` (spec §9).
pub const SIGNED_OBJECT: Schema = Schema {
    name: "clientful.v1.SignedObject",
    fields: &[
        f(1, "body", FieldKind::Bytes),
        f(2, "signer", FieldKind::Bytes),
        f(3, "signature", FieldKind::Bytes),
    ],
};

/// `clientful.v1.HeadManifest` (spec §9).
pub const HEAD_MANIFEST: Schema = Schema {
    name: "clientful.v1.HeadManifest",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "space_id", FieldKind::Bytes),
        f(3, "device", FieldKind::Bytes),
        f(4, "counter", FieldKind::Uint64),
        f(5, "segment_count", FieldKind::Uint64),
        f(6, "segments", FieldKind::RepeatedBytes),
        f(7, "gc_floor", FieldKind::Uint64),
        f(8, "base_snapshot", FieldKind::Bytes),
        f(9, "snapshots", FieldKind::RepeatedBytes),
        f(10, "checkpoints", FieldKind::RepeatedBytes),
        f(11, "epoch_id", FieldKind::Bytes),
        f(12, "tips", FieldKind::RepeatedBytes),
    ],
};

/// `clientful.v1.Segment` (spec §9).
pub const SEGMENT: Schema = Schema {
    name: "clientful.v1.Segment",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "space_id", FieldKind::Bytes),
        f(3, "device", FieldKind::Bytes),
        f(4, "index", FieldKind::Uint64),
        f(5, "envelopes", FieldKind::RepeatedBytes),
        f(6, "epoch_id", FieldKind::Bytes),
    ],
};

/// `clientful.v1.Snapshot` (spec §9).
pub const SNAPSHOT: Schema = Schema {
    name: "clientful.v1.Snapshot",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "space_id", FieldKind::Bytes),
        f(3, "device", FieldKind::Bytes),
        f(4, "covers", FieldKind::RepeatedBytes),
        f(5, "heads", FieldKind::RepeatedBytes),
        f(6, "envelopes", FieldKind::RepeatedBytes),
        f(7, "epoch_id", FieldKind::Bytes),
    ],
};

/// `clientful.v1.Checkpoint` (spec §9).
pub const CHECKPOINT: Schema = Schema {
    name: "clientful.v1.Checkpoint",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "space_id", FieldKind::Bytes),
        f(3, "device", FieldKind::Bytes),
        f(4, "doc_id", FieldKind::Bytes),
        f(5, "content_type", FieldKind::Uint32),
        f(6, "snapshot", FieldKind::Bytes),
        f(7, "coverage", FieldKind::Uint64),
        f(8, "state_digest", FieldKind::Bytes),
        f(9, "state", FieldKind::Bytes),
        f(10, "epoch_id", FieldKind::Bytes),
    ],
};

/// `clientful.v1.FileManifest` (spec §9).
pub const FILE_MANIFEST: Schema = Schema {
    name: "clientful.v1.FileManifest",
    fields: &[
        f(1, "version", FieldKind::Uint32),
        f(2, "space_id", FieldKind::Bytes),
        f(3, "device", FieldKind::Bytes),
        f(4, "size", FieldKind::Uint64),
        f(5, "chunk_size", FieldKind::Uint32),
        f(6, "chunks", FieldKind::RepeatedBytes),
        f(7, "file_key", FieldKind::Bytes),
        f(8, "content_hash", FieldKind::Bytes),
        f(9, "media_type", FieldKind::Bytes),
        f(10, "epoch_id", FieldKind::Bytes),
    ],
};

/// `clientful.v1.BrokerFrame` (spec §10.3).
pub const BROKER_FRAME: Schema = Schema {
    name: "clientful.v1.BrokerFrame",
    fields: &[
        f(1, "kind", FieldKind::Uint32),
        f(2, "version", FieldKind::Uint32),
        f(3, "request", FieldKind::Uint32),
        f(4, "room_id", FieldKind::Bytes),
        f(5, "room_key", FieldKind::Bytes),
        f(6, "proof", FieldKind::Bytes),
        f(7, "cursor", FieldKind::Uint64),
        f(8, "stream", FieldKind::Bytes),
        f(9, "nonce", FieldKind::Bytes),
        f(10, "code", FieldKind::Uint32),
        f(11, "max_frame", FieldKind::Uint32),
        f(12, "max_rooms", FieldKind::Uint32),
        f(13, "rate", FieldKind::Uint32),
        f(14, "payload", FieldKind::Bytes),
    ],
};

/// `clientful.v1.RoomMessage` (spec §10.5).
pub const ROOM_MESSAGE: Schema = Schema {
    name: "clientful.v1.RoomMessage",
    fields: &[
        f(1, "kind", FieldKind::Uint32),
        f(2, "session", FieldKind::Bytes),
        f(3, "body", FieldKind::Bytes),
    ],
};

/// `clientful.v1.EphemeralPayload` (spec §10.6).
pub const EPHEMERAL_PAYLOAD: Schema = Schema {
    name: "clientful.v1.EphemeralPayload",
    fields: &[
        f(1, "room_id", FieldKind::Bytes),
        f(2, "sender", FieldKind::Bytes),
        f(3, "counter", FieldKind::Uint64),
        f(4, "time_ms", FieldKind::Uint64),
        f(5, "body", FieldKind::Bytes),
    ],
};

/// `clientful.v1.SignedEphemeral` (spec §10.6).
pub const SIGNED_EPHEMERAL: Schema = Schema {
    name: "clientful.v1.SignedEphemeral",
    fields: &[
        f(1, "payload", FieldKind::Bytes),
        f(2, "signature", FieldKind::Bytes),
    ],
};

/// Every schema, for the descriptor cross-check and the wire-codec vectors.
pub const ALL_SCHEMAS: &[Schema] = &[
    SIGNED_ENVELOPE,
    ENVELOPE_PAYLOAD,
    ENVELOPE_HEADER,
    ENVELOPE_CONTENT,
    DEVICE_BINDING,
    DEVICE_CERTIFICATE,
    SYNC_MESSAGE,
    MEMBERSHIP_OP,
    KEY_MESSAGE,
    SEALED_KEY,
    WELCOME,
    INVITE_CODE,
    STORAGE_FORMAT,
    STORED_OBJECT,
    SIGNED_OBJECT,
    HEAD_MANIFEST,
    SEGMENT,
    SNAPSHOT,
    CHECKPOINT,
    FILE_MANIFEST,
    BROKER_FRAME,
    ROOM_MESSAGE,
    EPHEMERAL_PAYLOAD,
    SIGNED_EPHEMERAL,
];

/// Looks a schema up by its fully qualified name.
pub fn schema_by_name(name: &str) -> Option<&'static Schema> {
    ALL_SCHEMAS.iter().find(|s| s.name == name)
}

enum VarintError {
    Truncated,
    TooLong,
    Overflow,
    NonMinimal,
}

/// CAN-2: reads one varint at `*pos`.
fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    for i in 0..10usize {
        let at = pos.checked_add(i).ok_or(VarintError::Truncated)?;
        let byte = *buf.get(at).ok_or(VarintError::Truncated)?;
        if i == 9 {
            if byte & 0x80 != 0 {
                return Err(VarintError::TooLong);
            }
            if byte > 1 {
                return Err(VarintError::Overflow);
            }
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(VarintError::NonMinimal);
            }
            *pos = at + 1;
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

fn varint_error(what: &'static str, e: VarintError) -> Error {
    match e {
        VarintError::Truncated => Error::malformed(what, "truncated varint"),
        VarintError::TooLong => Error::malformed(what, "varint longer than 10 bytes"),
        VarintError::Overflow => Error::malformed(what, "varint exceeds 64 bits"),
        VarintError::NonMinimal => Error::non_canonical(what, "non-minimal varint"),
    }
}

/// The value of one record, as the canonical scan read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A `uint32` or `uint64` value.
    Varint(u64),
    /// A `bytes` value or one element of a `repeated bytes` field.
    Bytes(&'a [u8]),
}

/// The canonical scan (CAN-1..CAN-9). Returns `Ok(())` iff `bytes` is the canonical
/// encoding of some value of `schema`.
pub fn scan(bytes: &[u8], schema: &Schema) -> Result<(), Error> {
    records(bytes, schema).map(|_| ())
}

/// The canonical scan, returning the records in order (field, value). Used by
/// tools that show a message generically (`inspect`, the wire-codec vectors).
pub fn records<'a, 's>(
    bytes: &'a [u8],
    schema: &'s Schema,
) -> Result<Vec<(&'s Field, FieldValue<'a>)>, Error> {
    let what = schema.name;
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut last: u64 = 0;
    while pos < bytes.len() {
        // CAN-2, CAN-3: the tag.
        let tag = read_varint(bytes, &mut pos).map_err(|e| varint_error(what, e))?;
        if tag > u64::from(u32::MAX) {
            return Err(Error::malformed(what, "tag exceeds 32 bits"));
        }
        let number = tag >> 3;
        let wire_type = tag & 7;
        if number == 0 {
            return Err(Error::malformed(what, "field number 0"));
        }
        // CAN-4: unknown fields.
        let field = schema
            .field(number)
            .ok_or(Error::non_canonical(what, "unknown field"))?;
        // CAN-5: wire type.
        if wire_type != field.kind.wire_type() {
            return Err(Error::malformed(what, "wrong wire type for field"));
        }
        // CAN-6: order and uniqueness.
        if number < last {
            return Err(Error::non_canonical(what, "fields out of order"));
        }
        if number == last && field.kind != FieldKind::RepeatedBytes {
            return Err(Error::non_canonical(what, "duplicate field"));
        }
        last = number;
        // CAN-7..CAN-8: the value.
        match field.kind {
            FieldKind::Uint32 | FieldKind::Uint64 => {
                let v = read_varint(bytes, &mut pos).map_err(|e| varint_error(what, e))?;
                if field.kind == FieldKind::Uint32 && v > u64::from(u32::MAX) {
                    return Err(Error::malformed(what, "uint32 value exceeds 32 bits"));
                }
                if v == 0 {
                    return Err(Error::non_canonical(what, "default value encoded"));
                }
                out.push((field, FieldValue::Varint(v)));
            }
            FieldKind::Bytes | FieldKind::RepeatedBytes => {
                let len = read_varint(bytes, &mut pos).map_err(|e| varint_error(what, e))?;
                let remaining = bytes.get(pos..).unwrap_or_default();
                if len > remaining.len() as u64 {
                    return Err(Error::malformed(what, "length exceeds input"));
                }
                if len == 0 && field.kind == FieldKind::Bytes {
                    return Err(Error::non_canonical(what, "default value encoded"));
                }
                // len <= remaining.len(), so the cast is exact.
                let (value, _) = remaining.split_at(len as usize);
                pos += value.len();
                out.push((field, FieldValue::Bytes(value)));
            }
        }
    }
    Ok(out)
}

/// Decodes a v1 message: the canonical scan, then prost. Errors are `MALFORMED` or
/// `NON_CANONICAL` exactly as the scan defines.
pub fn decode<M: prost::Message + Default>(bytes: &[u8], schema: &Schema) -> Result<M, Error> {
    scan(bytes, schema)?;
    let msg = M::decode(bytes).map_err(|_| Error::malformed(schema.name, "protobuf decode"))?;
    // The scan implies this; a mismatch would be a bug in a schema table.
    if msg.encoded_len() != bytes.len() {
        return Err(Error::non_canonical(schema.name, "re-encoding differs"));
    }
    Ok(msg)
}

/// Encodes a v1 message. prost writes fields in ascending order, minimal varints
/// and no default values, which is the canonical form.
pub fn encode<M: prost::Message>(msg: &M) -> Vec<u8> {
    msg.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use clientful_proto::v1::{EnvelopeHeader, SignedEnvelope};

    fn class(bytes: &[u8], schema: &Schema) -> Option<ErrorClass> {
        scan(bytes, schema).err().map(|e| e.class())
    }

    #[test]
    fn canonical_round_trip() {
        let env = SignedEnvelope {
            payload: alloc::vec![1, 2, 3],
            signature: alloc::vec![9; 64],
        };
        let bytes = encode(&env);
        let back: SignedEnvelope = decode(&bytes, &SIGNED_ENVELOPE).expect("canonical");
        assert_eq!(back, env);
    }

    #[test]
    fn classes_of_classic_deviations() {
        let s = &SIGNED_ENVELOPE;
        // Unknown field 3.
        assert_eq!(
            class(&[0x0a, 1, 0, 0x1a, 1, 0], s),
            Some(ErrorClass::NonCanonical)
        );
        // Duplicate field 1.
        assert_eq!(
            class(&[0x0a, 1, 0, 0x0a, 1, 0], s),
            Some(ErrorClass::NonCanonical)
        );
        // Out of order.
        assert_eq!(
            class(&[0x12, 1, 0, 0x0a, 1, 0], s),
            Some(ErrorClass::NonCanonical)
        );
        // Non-minimal length varint.
        assert_eq!(
            class(&[0x0a, 0x81, 0x00, 7], s),
            Some(ErrorClass::NonCanonical)
        );
        // Explicit empty bytes.
        assert_eq!(class(&[0x0a, 0x00], s), Some(ErrorClass::NonCanonical));
        // Truncated.
        assert_eq!(class(&[0x0a, 5, 0], s), Some(ErrorClass::Malformed));
        // Wrong wire type.
        assert_eq!(class(&[0x08, 1], s), Some(ErrorClass::Malformed));
        // Field 0.
        assert_eq!(class(&[0x02, 1, 0], s), Some(ErrorClass::Malformed));
        // Empty message is canonical (all fields absent).
        assert_eq!(class(&[], s), None);
        // Repeated field may repeat, contiguously.
        let h = &ENVELOPE_HEADER;
        assert_eq!(class(&[0x42, 1, 1, 0x42, 1, 2], h), None);
        assert_eq!(
            class(&[0x42, 1, 1, 0x4a, 1, 2, 0x42, 1, 3], h),
            Some(ErrorClass::NonCanonical)
        );
        // uint32 overflow.
        assert_eq!(
            class(&[0x08, 0x80, 0x80, 0x80, 0x80, 0x10], h),
            Some(ErrorClass::Malformed)
        );
        // Explicit zero.
        assert_eq!(class(&[0x08, 0x00], h), Some(ErrorClass::NonCanonical));
        let _: EnvelopeHeader = decode(&[0x08, 1], h).expect("ok");
    }
}
