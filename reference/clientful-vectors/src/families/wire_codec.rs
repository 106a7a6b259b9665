//! `wire-codec`: the canonical scan (spec §3.4, CAN-1..CAN-9) on every v1 message:
//! decoding, canonical re-encoding, and rejection of each way protobuf lets the
//! same value be written differently.

use clientful_core::wire::{self, FieldKind, FieldValue, Schema};
use clientful_core::{Error, ErrorClass};
use clientful_proto::v1 as pb;
use serde_json::{Map, Value, json};

use crate::generate::{FileBuilder, Variation};
use crate::hexutil::{get_hex, get_str, hex, json_u64};
use crate::schema::VectorFile;
use crate::verify::Outcome;

const SEED: &str = "clientful/v1/vectors/wire-codec";

/// Decodes with the message's prost type and re-encodes.
fn reencode(schema: &Schema, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    fn rt<M: prost::Message + Default>(b: &[u8], s: &Schema) -> Result<Vec<u8>, Error> {
        wire::decode::<M>(b, s).map(|m| wire::encode(&m))
    }
    match schema.name {
        "clientful.v1.SignedEnvelope" => rt::<pb::SignedEnvelope>(bytes, schema),
        "clientful.v1.EnvelopePayload" => rt::<pb::EnvelopePayload>(bytes, schema),
        "clientful.v1.EnvelopeHeader" => rt::<pb::EnvelopeHeader>(bytes, schema),
        "clientful.v1.EnvelopeContent" => rt::<pb::EnvelopeContent>(bytes, schema),
        "clientful.v1.DeviceBinding" => rt::<pb::DeviceBinding>(bytes, schema),
        _ => rt::<pb::DeviceCertificate>(bytes, schema),
    }
}

/// The decoded value as JSON: bytes as hex, integers as numbers (decimal strings
/// above 2^53 - 1), repeated fields as arrays; absent fields omitted.
fn fields_json(schema: &Schema, bytes: &[u8]) -> Result<Value, Error> {
    let mut out = Map::new();
    for (field, value) in wire::records(bytes, schema)? {
        let v = match value {
            FieldValue::Varint(n) => json_u64(n),
            FieldValue::Bytes(b) => Value::from(hex(b)),
        };
        if field.kind == FieldKind::RepeatedBytes {
            let entry = out
                .entry(field.name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = entry {
                items.push(v);
            }
        } else {
            out.insert(field.name.to_string(), v);
        }
    }
    Ok(Value::Object(out))
}

fn decode_case(message: &str, bytes: &[u8]) -> Value {
    json!({"message": message, "bytes": hex(bytes)})
}

/// An invalid decode case: name, message, bytes, class, flag, spec refs, description.
type BadCase<'a> = (
    &'a str,
    &'a str,
    Vec<u8>,
    ErrorClass,
    &'a str,
    &'a [&'a str],
    &'a str,
);

/// Builds the file from the family's fixed seed.
pub fn generate() -> Result<VectorFile, String> {
    generate_seeded(SEED)
}

/// Builds the file from `seed`: the fixed seed gives the committed file, any
/// other seed fresh cases of the same shape (other field values, CONF-53).
// The generator indexes and slices values it built itself; it reads no outside input.
#[allow(clippy::indexing_slicing, clippy::too_many_lines)]
pub fn generate_seeded(seed: &str) -> Result<VectorFile, String> {
    let mut var = Variation::new(seed, SEED);
    let mut f = FileBuilder::new(
        "wire-codec",
        seed,
        "The canonical scan on every v1 message: a message is accepted iff decoding then \
         re-encoding gives the same bytes; each deviation has one defined error class.",
    );
    f.note(
        "Ktv",
        "BASIC",
        "A canonical encoding; `reencoded` equals the input.",
    );
    f.note(
        "EmptyMessage",
        "EDGE_CASE",
        "Zero bytes: the message with every field absent (codec-valid; semantic checks decide).",
    );
    f.note(
        "UnknownField",
        "NON_CANONICAL",
        "A field number the schema does not define.",
    );
    f.note(
        "DuplicateField",
        "NON_CANONICAL",
        "A singular field written twice (protobuf's last-one-wins).",
    );
    f.note(
        "OutOfOrder",
        "NON_CANONICAL",
        "Fields not in ascending field-number order.",
    );
    f.note(
        "NonContiguousRepeated",
        "NON_CANONICAL",
        "Elements of a repeated field interrupted by another field.",
    );
    f.note(
        "NonMinimalVarint",
        "NON_CANONICAL",
        "A varint with redundant continuation bytes.",
    );
    f.note(
        "DefaultValueEncoded",
        "NON_CANONICAL",
        "A zero or empty value written explicitly.",
    );
    f.note("Truncated", "BASIC", "The input ends inside a record.");
    f.note(
        "WrongWireType",
        "BASIC",
        "A known field with the wrong wire type.",
    );
    f.note("FieldNumberZero", "BASIC", "Field number 0.");
    f.note(
        "OverlongVarint",
        "BASIC",
        "A varint longer than 10 bytes or above 64 bits.",
    );
    f.note(
        "Uint32Overflow",
        "BASIC",
        "A uint32 field holding a value above 2^32 - 1.",
    );
    f.note(
        "LengthOverrun",
        "BASIC",
        "A length prefix larger than the remaining input.",
    );
    f.note(
        "TrailingGarbage",
        "BASIC",
        "Bytes after the last complete record that do not form one.",
    );

    f.group(
        "decode",
        "Canonical decoding of one message (CAN-1..CAN-9).",
        json!({}),
    );
    let env = pb::SignedEnvelope {
        payload: var.bytes(&[0xaa; 40]),
        signature: var.bytes(&[0x55; 64]),
    };
    let payload = pb::EnvelopePayload {
        header: vec![0x08, 0x01],
        ciphertext: var.bytes(&[0xcc; 16]),
    };
    let header = pb::EnvelopeHeader {
        protocol_version: 1,
        cipher_suite: 1,
        doc_id: var.bytes(&[2; 32]),
        author: var.bytes(&[3; 32]),
        seq: var.number(300, 1 << 40),
        prev: var.bytes(&[4; 32]),
        preds: vec![var.bytes(&[5; 32]), var.bytes(&[6; 32])],
        epoch_id: var.bytes(&[7; 32]),
        key_commitment: var.bytes(&[8; 32]),
        nonce: var.bytes(&[9; 24]),
    };
    let big_seq = pb::EnvelopeHeader {
        seq: u64::MAX,
        ..Default::default()
    };
    let content = pb::EnvelopeContent {
        content_type: var.number(1, 1 << 20) as u32,
        body: var.bytes(b"hello"),
    };
    let binding = pb::DeviceBinding {
        version: 1,
        user_key: var.bytes(&[1; 32]),
        device_key: var.bytes(&[2; 32]),
        device_x25519: var.bytes(&[3; 32]),
    };
    let cert = pb::DeviceCertificate {
        binding: wire::encode(&binding),
        device_signature: var.bytes(&[4; 64]),
        user_signature: var.bytes(&[5; 64]),
    };
    let valid: Vec<(&str, &Schema, Vec<u8>, &str)> = vec![
        (
            "signed-envelope",
            &wire::SIGNED_ENVELOPE,
            wire::encode(&env),
            "Ktv",
        ),
        (
            "envelope-payload",
            &wire::ENVELOPE_PAYLOAD,
            wire::encode(&payload),
            "Ktv",
        ),
        (
            "envelope-header",
            &wire::ENVELOPE_HEADER,
            wire::encode(&header),
            "Ktv",
        ),
        (
            "envelope-header-max-u64",
            &wire::ENVELOPE_HEADER,
            wire::encode(&big_seq),
            "Ktv",
        ),
        (
            "envelope-content",
            &wire::ENVELOPE_CONTENT,
            wire::encode(&content),
            "Ktv",
        ),
        (
            "device-binding",
            &wire::DEVICE_BINDING,
            wire::encode(&binding),
            "Ktv",
        ),
        (
            "device-certificate",
            &wire::DEVICE_CERTIFICATE,
            wire::encode(&cert),
            "Ktv",
        ),
        (
            "empty-signed-envelope",
            &wire::SIGNED_ENVELOPE,
            vec![],
            "EmptyMessage",
        ),
        (
            "empty-envelope-header",
            &wire::ENVELOPE_HEADER,
            vec![],
            "EmptyMessage",
        ),
    ];
    for (name, schema, bytes, flag) in valid {
        let expected = json!({
            "fields": fields_json(schema, &bytes).map_err(|e| e.to_string())?,
            "reencoded": hex(reencode(schema, &bytes).map_err(|e| e.to_string())?),
        });
        f.valid(
            name,
            "Canonical encoding: decodes, and re-encodes to the same bytes.",
            &["CAN-1", "CAN-9", "ENV-2"],
            &[flag],
            decode_case(schema.name, &bytes),
            expected,
        );
    }

    let se = "clientful.v1.SignedEnvelope";
    let hd = "clientful.v1.EnvelopeHeader";
    let ct = "clientful.v1.EnvelopeContent";
    let db = "clientful.v1.DeviceBinding";
    let h = wire::encode(&header);
    let mut cases: Vec<BadCase<'_>> = Vec::new();
    let mut with = |name, msg, bytes, class, flag, refs, desc| {
        cases.push((name, msg, bytes, class, flag, refs, desc))
    };
    // Non-canonical.
    with(
        "unknown-field-varint",
        se,
        [wire::encode(&env), vec![0x18, 0x01]].concat(),
        ErrorClass::NonCanonical,
        "UnknownField",
        &["CAN-4", "ENV-2"],
        "Field 3 (varint) appended.",
    );
    with(
        "unknown-field-bytes",
        hd,
        [h.clone(), vec![0x62, 0x01, 0x00]].concat(),
        ErrorClass::NonCanonical,
        "UnknownField",
        &["CAN-4", "ENV-2"],
        "Field 12 (bytes) appended.",
    );
    with(
        "unknown-field-high-number",
        ct,
        [
            wire::encode(&content),
            vec![0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01],
        ]
        .concat(),
        ErrorClass::NonCanonical,
        "UnknownField",
        &["CAN-4"],
        "Field 2^29 - 1 appended.",
    );
    with(
        "unknown-field-fixed64",
        se,
        [vec![0x19], vec![0u8; 8]].concat(),
        ErrorClass::NonCanonical,
        "UnknownField",
        &["CAN-4"],
        "Unknown field 3 with wire type 1: unknown is checked before the wire type.",
    );
    with(
        "duplicate-field",
        se,
        [wire::encode(&env), vec![0x12, 0x01, 0x00]].concat(),
        ErrorClass::NonCanonical,
        "DuplicateField",
        &["CAN-6", "ENV-2"],
        "Signature written twice.",
    );
    with(
        "duplicate-uint32",
        hd,
        vec![0x08, 0x01, 0x08, 0x01],
        ErrorClass::NonCanonical,
        "DuplicateField",
        &["CAN-6"],
        "protocol_version written twice.",
    );
    with(
        "out-of-order",
        se,
        vec![0x12, 0x01, 0x07, 0x0a, 0x01, 0x07],
        ErrorClass::NonCanonical,
        "OutOfOrder",
        &["CAN-6"],
        "Field 2 before field 1.",
    );
    with(
        "non-contiguous-repeated",
        hd,
        vec![0x42, 0x01, 0x01, 0x4a, 0x01, 0x02, 0x42, 0x01, 0x03],
        ErrorClass::NonCanonical,
        "NonContiguousRepeated",
        &["CAN-6"],
        "preds, epoch_id, preds.",
    );
    with(
        "non-minimal-length",
        se,
        vec![0x0a, 0x81, 0x00, 0x07],
        ErrorClass::NonCanonical,
        "NonMinimalVarint",
        &["CAN-2", "CAN-8"],
        "Length 1 written as 0x81 0x00.",
    );
    with(
        "non-minimal-value",
        hd,
        vec![0x08, 0x81, 0x00],
        ErrorClass::NonCanonical,
        "NonMinimalVarint",
        &["CAN-2", "CAN-7"],
        "protocol_version 1 written as 0x81 0x00.",
    );
    with(
        "non-minimal-tag",
        se,
        vec![0x8a, 0x00, 0x01, 0x07],
        ErrorClass::NonCanonical,
        "NonMinimalVarint",
        &["CAN-2", "CAN-3"],
        "Tag of field 1 written in two bytes.",
    );
    with(
        "default-uint",
        hd,
        vec![0x08, 0x00],
        ErrorClass::NonCanonical,
        "DefaultValueEncoded",
        &["CAN-7"],
        "protocol_version = 0 written explicitly.",
    );
    with(
        "default-uint64",
        hd,
        vec![0x30, 0x00],
        ErrorClass::NonCanonical,
        "DefaultValueEncoded",
        &["CAN-7"],
        "seq = 0 written explicitly.",
    );
    with(
        "default-bytes",
        se,
        vec![0x0a, 0x00],
        ErrorClass::NonCanonical,
        "DefaultValueEncoded",
        &["CAN-8"],
        "Empty payload written explicitly.",
    );
    // Malformed.
    with(
        "truncated-value",
        se,
        vec![0x0a, 0x05, 0x01, 0x02],
        ErrorClass::Malformed,
        "LengthOverrun",
        &["CAN-8"],
        "Length 5, two bytes follow.",
    );
    with(
        "truncated-varint",
        hd,
        vec![0x08, 0x81],
        ErrorClass::Malformed,
        "Truncated",
        &["CAN-2"],
        "Varint with a continuation bit at the end of input.",
    );
    with(
        "truncated-tag",
        se,
        vec![0x80],
        ErrorClass::Malformed,
        "Truncated",
        &["CAN-2", "CAN-3"],
        "A tag varint cut short.",
    );
    with(
        "trailing-zero-byte",
        se,
        [wire::encode(&env), vec![0x00]].concat(),
        ErrorClass::Malformed,
        "TrailingGarbage",
        &["CAN-3"],
        "A 0x00 after the last record reads as field number 0.",
    );
    with(
        "wrong-wire-type",
        se,
        vec![0x08, 0x01],
        ErrorClass::Malformed,
        "WrongWireType",
        &["CAN-5"],
        "payload (bytes) with wire type 0.",
    );
    with(
        "wrong-wire-type-uint",
        hd,
        vec![0x0a, 0x01, 0x01],
        ErrorClass::Malformed,
        "WrongWireType",
        &["CAN-5"],
        "protocol_version (uint32) with wire type 2.",
    );
    with(
        "group-wire-type",
        db,
        vec![0x0b, 0x0c],
        ErrorClass::Malformed,
        "WrongWireType",
        &["CAN-5"],
        "version with the deprecated start-group wire type.",
    );
    with(
        "field-number-zero",
        se,
        vec![0x02, 0x01, 0x00],
        ErrorClass::Malformed,
        "FieldNumberZero",
        &["CAN-3"],
        "Field number 0.",
    );
    with(
        "varint-11-bytes",
        hd,
        [vec![0x30], vec![0xff; 10], vec![0x01]].concat(),
        ErrorClass::Malformed,
        "OverlongVarint",
        &["CAN-2"],
        "A varint of 11 bytes.",
    );
    with(
        "varint-over-64-bits",
        hd,
        [vec![0x30], vec![0xff; 9], vec![0x02]].concat(),
        ErrorClass::Malformed,
        "OverlongVarint",
        &["CAN-2"],
        "A 10-byte varint whose last byte is 2.",
    );
    with(
        "uint32-overflow",
        hd,
        vec![0x08, 0x80, 0x80, 0x80, 0x80, 0x10],
        ErrorClass::Malformed,
        "Uint32Overflow",
        &["CAN-7"],
        "protocol_version = 2^32.",
    );
    with(
        "tag-over-32-bits",
        se,
        vec![0x80, 0x80, 0x80, 0x80, 0x10],
        ErrorClass::Malformed,
        "OverlongVarint",
        &["CAN-3"],
        "A tag above 2^32 - 1.",
    );
    with(
        "length-overrun-huge",
        ct,
        vec![0x12, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ErrorClass::Malformed,
        "LengthOverrun",
        &["CAN-8"],
        "Length 2^32 - 1 with no data.",
    );
    for (name, msg, bytes, class, flag, refs, desc) in cases {
        f.invalid(name, desc, refs, class, &[flag], decode_case(msg, &bytes));
    }
    Ok(f.finish())
}

/// Runs one case.
pub fn run(operation: &str, _params: &Value, input: &Value) -> Result<Outcome, String> {
    if operation != "decode" {
        return Err(format!("unknown operation {operation}"));
    }
    let name = get_str(input, "message")?;
    let schema = wire::schema_by_name(name).ok_or_else(|| format!("unknown message {name}"))?;
    let bytes = get_hex(input, "bytes")?;
    let result = reencode(schema, &bytes)
        .and_then(|re| Ok(json!({"fields": fields_json(schema, &bytes)?, "reencoded": hex(re)})));
    Ok(match result {
        Ok(v) => Outcome::Accepted(v),
        Err(e) => Outcome::Rejected(e.class()),
    })
}
