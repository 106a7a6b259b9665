"""The vector operations of test-vectors/README.md ("Operations") for the
families primitives, identity, wire-codec and envelope-open, on the JSON
conventions of the files: bytes as lowercase hex, integers above 2^53 - 1 as
decimal strings, large byte inputs as {"prefix", "fill", "length"}."""

from . import envelope, identity, suite, wire
from .errors import Rejected

MAX_SAFE = 2**53 - 1


def unhex(v):
    """Bytes from hex, or from the {"prefix", "fill", "length"} form."""
    if isinstance(v, dict):
        prefix = bytes.fromhex(v["prefix"])
        fill = bytes.fromhex(v["fill"])
        return prefix + fill * (int(v["length"]) - len(prefix))
    return bytes.fromhex(v)


def number(n):
    """An integer in the files' convention."""
    return n if n <= MAX_SAFE else str(n)


# ---- primitives ----

def labeled_input(params, inp):
    return {"bytes": suite.labeled(inp["label"], unhex(inp["content"])).hex()}


def hash_with_label(params, inp):
    return {"hash": suite.hash_with_label(inp["label"], unhex(inp["content"])).hex()}


def derive_with_label(params, inp):
    okm = suite.derive_with_label(
        unhex(inp["ikm"]), unhex(inp["salt"]), inp["label"], unhex(inp["context"]),
        int(inp["length"]),
    )
    return {"okm": okm.hex()}


def sign_with_label(params, inp):
    pk, sig = suite.sign_with_label(unhex(inp["seed"]), inp["label"], unhex(inp["content"]))
    return {"publicKey": pk.hex(), "signature": sig.hex()}


def verify_with_label(params, inp):
    suite.verify_with_label(
        unhex(inp["publicKey"]), inp["label"], unhex(inp["content"]), unhex(inp["signature"])
    )
    return {}


def x25519_public_key(params, inp):
    suite.check_x25519_public(unhex(inp["publicKey"]))
    return {}


def aead_open(params, inp):
    pt = suite.aead_open(
        unhex(inp["key"]), unhex(inp["nonce"]), unhex(inp["aad"]), unhex(inp["ciphertext"])
    )
    return {"plaintext": pt.hex()}


def padding_bucket(params, inp):
    return {"paddedLength": suite.padding_bucket(int(inp["contentLength"]))}


# ---- identity ----

def _certificate(cert, expected):
    device_id, user, device, x25519 = identity.verify_certificate(cert, expected)
    return {
        "deviceId": device_id.hex(),
        "userKey": user.hex(),
        "deviceKey": device.hex(),
        "deviceX25519": x25519.hex(),
    }


def verify_chain(params, inp):
    return _certificate(unhex(inp["certificate"]), unhex(params["expectedUser"]))


def verify_certificate(params, inp):
    return _certificate(unhex(inp["certificate"]), None)


def verify_continuity(params, inp):
    old, new = identity.verify_continuity(unhex(inp["continuity"]))
    return {"oldUserKey": old.hex(), "newUserKey": new.hex()}


# ---- wire-codec ----

def decode(params, inp):
    name = inp["message"]
    if name not in wire.SCHEMAS:
        raise KeyError(f"no schema for {name}")
    data = unhex(inp["bytes"])
    fields = {}
    for field, kind, value in wire.scan(name, data):
        v = value.hex() if isinstance(value, bytes) else number(value)
        if kind == wire.REPEATED:
            fields.setdefault(field, []).append(v)
        else:
            fields[field] = v
    reencoded = wire.encode(name, wire.decode(name, data))
    return {"fields": fields, "reencoded": reencoded.hex()}


# ---- envelope-open ----

def open_(params, inp):
    ctx = envelope.Context(
        space_id=unhex(params["spaceId"]),
        doc_id=None if params.get("docId") is None else unhex(params["docId"]),
        signers=[unhex(s) for s in params["signers"]],
        epochs={unhex(e["epochId"]): unhex(e["secret"]) for e in params["epochs"]},
        accepted={
            (unhex(a["author"]), unhex(a["docId"]), int(a["seq"])): unhex(a["id"])
            for a in params["accepted"]
        },
    )
    env_id, h, content_type, body = envelope.open_envelope(unhex(inp["envelope"]), ctx)
    return {
        "id": env_id.hex(),
        "header": {
            "docId": h["doc_id"].hex(),
            "author": h["author"].hex(),
            "seq": number(h["seq"]),
            "prev": h["prev"].hex() if h["prev"] else None,
            "preds": [p.hex() for p in h["preds"]],
            "epochId": h["epoch_id"].hex(),
        },
        "contentType": content_type,
        "body": body.hex(),
    }


def epoch_authenticator(params, inp):
    """KEY-2 epoch id, KEY-10 authenticator and its 30-digit display."""
    space_id, secret = unhex(inp["spaceId"]), unhex(inp["epochSecret"])
    epoch_id = suite.hash_with_label("id/epoch", space_id + secret)
    auth = suite.derive_with_label(
        secret, space_id, "kdf/epoch-authenticator",
        epoch_id + unhex(inp["membershipDigest"]), 32,
    )
    groups = [int.from_bytes(auth[5 * i:5 * i + 5], "big") % 100000 for i in range(6)]
    return {
        "epochId": epoch_id.hex(),
        "authenticator": auth.hex(),
        "display": " ".join(f"{g:05d}" for g in groups),
    }


OPERATIONS = {
    ("primitives", "labeled-input"): labeled_input,
    ("primitives", "hash-with-label"): hash_with_label,
    ("primitives", "derive-with-label"): derive_with_label,
    ("primitives", "sign-with-label"): sign_with_label,
    ("primitives", "verify-with-label"): verify_with_label,
    ("primitives", "x25519-public-key"): x25519_public_key,
    ("primitives", "aead-open"): aead_open,
    ("primitives", "padding-bucket"): padding_bucket,
    ("primitives", "epoch-authenticator"): epoch_authenticator,
    ("identity", "verify-chain"): verify_chain,
    ("identity", "verify-certificate"): verify_certificate,
    ("identity", "verify-continuity"): verify_continuity,
    ("wire-codec", "decode"): decode,
    ("envelope-open", "open"): open_,
}

FAMILIES = sorted({f for f, _ in OPERATIONS})


def run(family, operation, params, inp):
    """The operation's output (a JSON value), or Rejected; None if unknown."""
    op = OPERATIONS.get((family, operation))
    if op is None:
        return None
    return op(params, inp)


__all__ = ["run", "FAMILIES", "Rejected"]
