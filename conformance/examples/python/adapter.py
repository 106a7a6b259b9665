#!/usr/bin/env python3
"""A Clientful conformance adapter in Python (harness protocol v1, spec §12).

Reads framed Request messages on stdin, answers framed Response messages on
stdout (a 4-byte little-endian length, then the protobuf bytes), and runs the
vector families primitives, identity, wire-codec and envelope-open with the
small implementation in clientful_min/ (written from spec/ and proto/). Every
other command is answered `unsupported`. Logs go to stderr only.

    clientful-conformance run --impl-cmd "python3 conformance/examples/python/adapter.py"
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clientful_min import vectors  # noqa: E402
from clientful_min.errors import Rejected  # noqa: E402
from clientful_min.wire import read_varint, varint  # noqa: E402

MAX_FRAME = 64 * 1024 * 1024
NAME, VERSION = "clientful-python-example", "0.1.0"
CAPABILITIES = [f"vectors/{f}" for f in vectors.FAMILIES]

# Request.command field numbers (harness.proto).
HELLO, RUN_VECTOR, SHUTDOWN, CONFIGURE = 10, 11, 20, 28
KNOWN_COMMANDS = set(range(10, 30))
# Response.result field numbers.
R_HELLO, R_VECTOR, R_DONE, R_UNSUPPORTED, R_ERROR = 10, 11, 13, 30, 31


def log(*args):
    print("[python-adapter]", *args, file=sys.stderr, flush=True)


# ---- a hand codec for the harness messages (any valid proto3 encoding in,
# ---- unknown fields skipped; CONF-4) ----

def fields(data):
    """(number, wire type, value) of each record; value is int or bytes."""
    pos = 0
    while pos < len(data):
        tag, pos = read_varint_lenient(data, pos)
        number, wt = tag >> 3, tag & 7
        if wt == 0:
            value, pos = read_varint_lenient(data, pos)
        elif wt == 2:
            n, pos = read_varint_lenient(data, pos)
            value, pos = data[pos : pos + n], pos + n
        elif wt == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wt == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield number, wt, value


def read_varint_lenient(data, pos):
    """Harness messages are not canonical (CONF-4): accept any valid varint."""
    value, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number, value):
    return varint(number << 3) + varint(value) if value else b""


def string(number, s):
    return field_bytes(number, s.encode("utf-8"))


# ---- commands ----

def run_vector(msg):
    f = {n: v for n, _, v in fields(msg)}
    family = f.get(1, b"").decode()
    operation = f.get(2, b"").decode()
    params = json.loads(f.get(3, b"null") or b"null")
    inp = json.loads(f.get(4, b"null") or b"null")
    try:
        out = vectors.run(family, operation, params, inp)
    except Rejected as e:
        return R_VECTOR, field_varint(2, e.number)
    if out is None:
        return R_UNSUPPORTED, string(1, f"run_vector {family}/{operation}")
    return R_VECTOR, string(1, json.dumps(out, separators=(",", ":")))


def handle(data):
    """(request id, result field number, result message bytes, stop)."""
    req_id, command, body = 0, None, b""
    for number, wt, value in fields(data):
        if number == 1 and wt == 0:
            req_id = value
        elif number in KNOWN_COMMANDS and wt == 2:
            command, body = number, value
        # Anything else, including the probe range 1000-1999: not a command we know.
    if command == HELLO:
        hello = field_varint(1, 1) + string(2, NAME) + string(3, VERSION)
        for c in CAPABILITIES:
            hello += string(4, c)
        return req_id, R_HELLO, hello, False
    if command == CONFIGURE:
        # The run's seed and clock; nothing here reads time or randomness.
        return req_id, R_DONE, b"", False
    if command == RUN_VECTOR:
        try:
            result, msg = run_vector(body)
        except Exception as e:  # an internal failure is `error`, never a rejection
            log(traceback.format_exc())
            result, msg = R_ERROR, string(1, f"{type(e).__name__}: {e}")
        return req_id, result, msg, False
    if command == SHUTDOWN:
        return req_id, R_DONE, b"", True
    return req_id, R_UNSUPPORTED, string(1, f"command {command}"), False


def read_exact(stream, n):
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = read_exact(stdin, 4)
        if head is None:
            return 0  # end of input: exit (CONF-9)
        n = int.from_bytes(head, "little")
        if n > MAX_FRAME:
            log(f"frame of {n} bytes")
            return 1
        data = read_exact(stdin, n)
        if data is None:
            return 1
        req_id, result, msg, stop = handle(data)
        resp = field_varint(1, req_id) + field_bytes(result, msg)
        stdout.write(len(resp).to_bytes(4, "little") + resp)
        stdout.flush()
        if stop:
            return 0


if __name__ == "__main__":
    sys.exit(main())
