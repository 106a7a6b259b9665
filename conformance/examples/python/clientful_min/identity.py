"""Device certificates (spec §5.4.1, ID-V1..ID-V7) and user-key continuity statements
(spec §5.7, ROT-V1..ROT-V5)."""

from . import ed25519, suite, wire
from .errors import Rejected

MAX_CERTIFICATE = 1024  # ID-LIM-1
MAX_CONTINUITY = 512  # ROT-LIM-1


def verify_certificate(cert, expected_user=None):
    """Returns (device_id, user_key, device_key, device_x25519) or raises Rejected."""
    if len(cert) > MAX_CERTIFICATE:
        raise Rejected("LIMIT_EXCEEDED", "certificate over 1024 bytes")
    c = wire.decode("clientful.v1.DeviceCertificate", cert)
    if not c["binding"]:
        raise Rejected("MALFORMED", "no binding")
    if len(c["device_signature"]) != 64 or len(c["user_signature"]) != 64:
        raise Rejected("MALFORMED", "signature length")
    b = wire.decode("clientful.v1.DeviceBinding", c["binding"])
    if b["version"] != 1:
        raise Rejected("UNSUPPORTED_VERSION", "binding version")
    for k in ("user_key", "device_key", "device_x25519"):
        if len(b[k]) != 32:
            raise Rejected("MALFORMED", f"{k} length")
    if expected_user is not None and b["user_key"] != expected_user:
        raise Rejected("WRONG_CONTEXT", "another user's device")
    for k in ("user_key", "device_key"):
        if ed25519.valid_public_key(b[k]):
            raise Rejected("INVALID_KEY", k)
    suite.check_x25519_public(b["device_x25519"])
    if b["user_key"] == b["device_key"]:
        raise Rejected("INVALID_KEY", "device key equals user key (ID-6)")
    binding = c["binding"]
    suite.verify_with_label(b["device_key"], "sig/device-pop", binding, c["device_signature"])
    suite.verify_with_label(b["user_key"], "sig/device-cert", binding, c["user_signature"])
    device_id = suite.hash_with_label("id/device", binding)
    return device_id, b["user_key"], b["device_key"], b["device_x25519"]


def verify_continuity(signed):
    """Returns (old_user_key, new_user_key) or raises Rejected (ROT-V1..ROT-V5, in order)."""
    if len(signed) > MAX_CONTINUITY:
        raise Rejected("LIMIT_EXCEEDED", "signed continuity over 512 bytes")
    c = wire.decode("clientful.v1.SignedContinuity", signed)
    if not c["statement"]:
        raise Rejected("MALFORMED", "no statement")
    if len(c["old_signature"]) != 64 or len(c["new_signature"]) != 64:
        raise Rejected("MALFORMED", "signature length")
    st = wire.decode("clientful.v1.UserKeyContinuity", c["statement"])
    if st["version"] != 1:
        raise Rejected("UNSUPPORTED_VERSION", "statement version")
    for k in ("old_user_key", "new_user_key"):
        if len(st[k]) != 32:
            raise Rejected("MALFORMED", f"{k} length")
    for k in ("old_user_key", "new_user_key"):
        if ed25519.valid_public_key(st[k]):
            raise Rejected("INVALID_KEY", k)
    if st["old_user_key"] == st["new_user_key"]:
        raise Rejected("INVALID_KEY", "the new key is the old one")
    statement = c["statement"]
    suite.verify_with_label(st["old_user_key"], "sig/user-continuity", statement, c["old_signature"])
    suite.verify_with_label(
        st["new_user_key"], "sig/user-continuity-accept", statement, c["new_signature"]
    )
    return st["old_user_key"], st["new_user_key"]
