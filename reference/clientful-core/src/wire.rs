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
//!
//! The schemas the scan runs against are generated from the `.proto` descriptor set
//! at build time and re-exported here (`wire::SIGNED_ENVELOPE`, `wire::ALL_SCHEMAS`).

use alloc::vec::Vec;

use crate::error::Error;

// The schema tables (`Schema`, `Field`, `FieldKind`, one constant per v1 message
// such as `SIGNED_ENVELOPE`, and `ALL_SCHEMAS`) are generated at build time from
// the compiled `.proto` descriptor set (clientful-proto's build.rs): there is no
// hand-written copy of the schemas to keep in step. `tests/schemas.rs` checks
// them against the descriptor.
pub use clientful_proto::schema::*;

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
/// Exhaustive on purpose: the protobuf wire types of the canonical codec (§3.4) are a closed list.
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
