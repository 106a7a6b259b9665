"""Opening an envelope in a receiver context (spec §6.8, ENV-20 steps 1 to 15)."""

import hmac

from . import ed25519, suite, wire
from .errors import Rejected

MAX_ENVELOPE = 4 * 1024 * 1024  # ENV-LIM-1
MAX_PREDS = 64  # ENV-LIM-2
MAX_SEQ = 2**53 - 1  # ENV-LIM-3


class Context:
    """What the receiver knows: its space, optionally the document, the known
    signers, the known epochs (id -> secret) and the accepted set
    ((author, doc_id, seq) -> id)."""

    def __init__(self, space_id, doc_id, signers, epochs, accepted):
        self.space_id = space_id
        self.doc_id = doc_id
        self.signers = set(signers)
        self.epochs = dict(epochs)
        self.accepted = dict(accepted)


def open_envelope(data, ctx):
    """Returns (id, header dict, content_type, body) or raises Rejected."""
    # 1. Size.
    if len(data) > MAX_ENVELOPE:
        raise Rejected("LIMIT_EXCEEDED", "envelope over 4 MiB")
    # 2. SignedEnvelope.
    se = wire.decode("clientful.v1.SignedEnvelope", data)
    if not se["payload"]:
        raise Rejected("MALFORMED", "no payload")
    if len(se["signature"]) != 64:
        raise Rejected("MALFORMED", "signature length")
    # 3. EnvelopePayload.
    payload = wire.decode("clientful.v1.EnvelopePayload", se["payload"])
    if not payload["header"]:
        raise Rejected("MALFORMED", "no header")
    if len(payload["ciphertext"]) < 16:
        raise Rejected("MALFORMED", "ciphertext shorter than the tag")
    # 4. EnvelopeHeader.
    h = wire.decode("clientful.v1.EnvelopeHeader", payload["header"])
    # 5. Versions.
    if h["protocol_version"] != 1 or h["cipher_suite"] != 1:
        raise Rejected("UNSUPPORTED_VERSION", "version or cipher suite")
    # 6. Field shapes and limits.
    for k in ("doc_id", "author"):
        if len(h[k]) != 32:
            raise Rejected("MALFORMED", f"{k} length")
    if h["seq"] == 0:
        raise Rejected("MALFORMED", "seq 0")
    if h["seq"] > MAX_SEQ:
        raise Rejected("LIMIT_EXCEEDED", "seq above 2^53-1")
    if (h["seq"] == 1) == bool(h["prev"]):
        raise Rejected("MALFORMED", "prev present iff seq > 1")
    if h["prev"] and len(h["prev"]) != 32:
        raise Rejected("MALFORMED", "prev length")
    if len(h["preds"]) > MAX_PREDS:
        raise Rejected("LIMIT_EXCEEDED", "more than 64 preds")
    for p in h["preds"]:
        if len(p) != 32:
            raise Rejected("MALFORMED", "pred length")
    if any(a >= b for a, b in zip(h["preds"], h["preds"][1:])):
        raise Rejected("NON_CANONICAL", "preds not strictly ascending")
    if len(h["epoch_id"]) != 32 or len(h["key_commitment"]) != 32 or len(h["nonce"]) != 24:
        raise Rejected("MALFORMED", "epoch_id, key_commitment or nonce length")
    env_id = suite.hash_with_label("id/envelope", se["payload"])
    # 7. Context: the document. The header does not name the space; the
    # signature covers it (step 9).
    if ctx.doc_id is not None and h["doc_id"] != ctx.doc_id:
        raise Rejected("WRONG_CONTEXT", "another document")
    # 8. Signer.
    if h["author"] not in ctx.signers:
        raise Rejected("UNKNOWN_SIGNER", "author")
    if ed25519.valid_public_key(h["author"]):
        raise Rejected("INVALID_KEY", "author")
    # 9. Signature.
    suite.verify_with_label(
        h["author"], "sig/envelope", ctx.space_id + se["payload"], se["signature"]
    )
    # 10. Equivocation.
    seen = ctx.accepted.get((h["author"], h["doc_id"], h["seq"]))
    if seen is not None and seen != env_id:
        raise Rejected("EQUIVOCATION", "another envelope with this seq")
    # 11. Epoch.
    secret = ctx.epochs.get(h["epoch_id"])
    if secret is None:
        raise Rejected("UNKNOWN_EPOCH", "epoch")
    # 12. Key commitment.
    doc_key = suite.derive_with_label(
        secret, ctx.space_id, "kdf/doc-key", h["epoch_id"] + h["doc_id"], 32
    )
    keys = suite.derive_with_label(doc_key, h["nonce"], "kdf/envelope-keys", b"", 64)
    if not hmac.compare_digest(keys[32:], h["key_commitment"]):
        raise Rejected("DECRYPT_FAILED", "key commitment")
    # 13. Decryption.
    plaintext = suite.aead_open(
        keys[:32], h["nonce"], suite.labeled("aad/envelope", payload["header"]),
        payload["ciphertext"],
    )
    # 14. Unframing.
    if len(plaintext) < 4:
        raise Rejected("MALFORMED", "plaintext shorter than its length prefix")
    n = int.from_bytes(plaintext[:4], "big")
    if n > len(plaintext) - 4:
        raise Rejected("MALFORMED", "length prefix beyond the plaintext")
    content, padding = plaintext[4 : 4 + n], plaintext[4 + n :]
    if any(padding):
        raise Rejected("NON_CANONICAL", "non-zero padding")
    # 15. Content.
    c = wire.decode("clientful.v1.EnvelopeContent", content)
    if c["content_type"] == 0:
        raise Rejected("MALFORMED", "content_type 0")
    return env_id, h, c["content_type"], c["body"]
