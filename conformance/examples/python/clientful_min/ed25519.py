"""Edwards25519 point checks for the pinned Ed25519 rule (spec SIG-2, SIG-3),
in plain Python: decoding with the canonical checks, and the small-order test.
The curve equation of SIG-3 step 3.4 runs in libsodium (PyNaCl), whose
crypto_sign_open computes ENC([S]B - [k]A) and compares it with R;
the checks here are the ones a library may skip, done explicitly so that the
class and the verdict follow the spec whatever the library version."""

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    """RFC 8032 §5.1.3 step 2-4; None if there is no such point."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def decode_point(b):
    """The point of a 32-byte encoding, or None unless b = ENC(P) exactly
    (y < p, and no x = 0 with the sign bit set)."""
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def has_small_order(pt):
    """[8]P is the neutral element."""
    q = pt
    for _ in range(3):
        q = _add(q, q)
    x, y, z, _ = q
    return x % P == 0 and (y - z) % P == 0


def valid_public_key(b):
    """SIG-2: None if valid, else the class."""
    if len(b) != 32:
        return "MALFORMED"
    pt = decode_point(b)
    if pt is None or has_small_order(pt):
        return "INVALID_KEY"
    return None


def signature_shape_ok(sig):
    """SIG-3 steps 3.1 to 3.3: R canonical and not of small order, S < L."""
    r = decode_point(sig[:32])
    if r is None or has_small_order(r):
        return False
    return int.from_bytes(sig[32:], "little") < L
