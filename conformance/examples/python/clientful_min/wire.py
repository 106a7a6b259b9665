"""The canonical scan (spec §3.4, CAN-1..CAN-9) and the v1 message schemas (§3.5).

`scan(schema, data)` reads a message left to right and either returns its records
or raises Rejected with MALFORMED or NON_CANONICAL: the first failing check decides.
"""

from .errors import Rejected

UINT32, UINT64, BYTES, REPEATED = "uint32", "uint64", "bytes", "repeated bytes"

# (message name) -> {field number: (field name, type)}, as in spec §3.5 and proto/.
SCHEMAS = {
    "clientful.v1.SignedEnvelope": {1: ("payload", BYTES), 2: ("signature", BYTES)},
    "clientful.v1.EnvelopePayload": {1: ("header", BYTES), 2: ("ciphertext", BYTES)},
    "clientful.v1.EnvelopeHeader": {
        1: ("protocol_version", UINT32),
        2: ("cipher_suite", UINT32),
        4: ("doc_id", BYTES),
        5: ("author", BYTES),
        6: ("seq", UINT64),
        7: ("prev", BYTES),
        8: ("preds", REPEATED),
        9: ("epoch_id", BYTES),
        10: ("key_commitment", BYTES),
        11: ("nonce", BYTES),
    },
    "clientful.v1.EnvelopeContent": {1: ("content_type", UINT32), 2: ("body", BYTES)},
    "clientful.v1.DeviceBinding": {
        1: ("version", UINT32),
        2: ("user_key", BYTES),
        3: ("device_key", BYTES),
        4: ("device_x25519", BYTES),
    },
    "clientful.v1.DeviceCertificate": {
        1: ("binding", BYTES),
        2: ("device_signature", BYTES),
        3: ("user_signature", BYTES),
    },
    "clientful.v1.UserKeyContinuity": {
        1: ("version", UINT32),
        2: ("old_user_key", BYTES),
        3: ("new_user_key", BYTES),
    },
    "clientful.v1.SignedContinuity": {
        1: ("statement", BYTES),
        2: ("old_signature", BYTES),
        3: ("new_signature", BYTES),
    },
}


def read_varint(data, pos):
    """CAN-2: one varint at `pos`; returns (value, new position)."""
    value = 0
    for i in range(10):
        if pos >= len(data):
            raise Rejected("MALFORMED", "truncated varint")
        b = data[pos]
        pos += 1
        if i == 9 and b & 0x80:
            raise Rejected("MALFORMED", "varint longer than 10 bytes")
        if i == 9 and b > 1:
            raise Rejected("MALFORMED", "varint above 64 bits")
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if i > 0 and b == 0:
                raise Rejected("NON_CANONICAL", "non-minimal varint")
            return value, pos
    raise Rejected("MALFORMED", "varint longer than 10 bytes")  # unreachable


def scan(schema_name, data):
    """The canonical scan: a list of (field name, type, value) in input order."""
    schema = SCHEMAS[schema_name]
    records = []
    pos, last = 0, 0
    while pos < len(data):
        tag, pos = read_varint(data, pos)
        if tag > 0xFFFFFFFF:
            raise Rejected("MALFORMED", "tag above 2^32-1")
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise Rejected("MALFORMED", "field number 0")
        if number not in schema:
            raise Rejected("NON_CANONICAL", f"unknown field {number}")
        name, kind = schema[number]
        want = 0 if kind in (UINT32, UINT64) else 2
        if wire_type != want:
            raise Rejected("MALFORMED", f"wire type {wire_type} for {name}")
        if number < last:
            raise Rejected("NON_CANONICAL", "fields out of order")
        if number == last and kind != REPEATED:
            raise Rejected("NON_CANONICAL", f"duplicate {name}")
        last = number
        if want == 0:
            value, pos = read_varint(data, pos)
            if kind == UINT32 and value > 0xFFFFFFFF:
                raise Rejected("MALFORMED", f"{name} above 2^32-1")
            if value == 0:
                raise Rejected("NON_CANONICAL", f"{name} = 0 encoded")
        else:
            length, pos = read_varint(data, pos)
            if length > len(data) - pos:
                raise Rejected("MALFORMED", "length beyond the input")
            if length == 0 and kind == BYTES:
                raise Rejected("NON_CANONICAL", f"empty {name} encoded")
            value = bytes(data[pos : pos + length])
            pos += length
        records.append((name, kind, value))
    return records


def decode(schema_name, data):
    """Scan, then a dict of the fields: absent uint = 0, absent bytes = b"",
    repeated = list."""
    out = {}
    for name, kind in SCHEMAS[schema_name].values():
        out[name] = [] if kind == REPEATED else (0 if kind in (UINT32, UINT64) else b"")
    for name, kind, value in scan(schema_name, data):
        if kind == REPEATED:
            out[name].append(value)
        else:
            out[name] = value
    return out


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(schema_name, fields):
    """The canonical encoding of a field dict (ascending numbers, defaults omitted)."""
    out = bytearray()
    for number in sorted(SCHEMAS[schema_name]):
        name, kind = SCHEMAS[schema_name][number]
        value = fields.get(name)
        if kind == REPEATED:
            for item in value or []:
                out += varint(number << 3 | 2) + varint(len(item)) + item
        elif kind in (UINT32, UINT64):
            if value:
                out += varint(number << 3) + varint(value)
        elif value:
            out += varint(number << 3 | 2) + varint(len(value)) + value
    return bytes(out)
