"""Cipher suite 1 (spec §5): labelled inputs, HashWithLabel, DeriveWithLabel,
SignWithLabel and VerifyWithLabel under the pinned rule, X25519 key validity,
XChaCha20-Poly1305 and the padding policy."""

import hashlib
import hmac

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing

from . import ed25519
from .errors import Rejected

PREFIX = b"clientful/v1/"


def labeled(label, content):
    """LBL-1: M(label, content) = u8(len(L)) || L || u32be(len(content)) || content."""
    full = PREFIX + label.encode("ascii")
    if len(full) > 255 or len(content) > 0xFFFFFFFF:
        raise ValueError("label or content too long")
    return bytes([len(full)]) + full + len(content).to_bytes(4, "big") + content


def hash_with_label(label, content):
    return hashlib.sha256(labeled(label, content)).digest()


def hkdf(ikm, salt, info, n):
    """RFC 5869 with HMAC-SHA256 (KDF-1); an empty salt is 32 zero bytes."""
    if n > 255 * 32:
        raise ValueError("HKDF output too long")
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < n:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:n]


def derive_with_label(ikm, salt, label, context, n):
    return hkdf(ikm, salt, labeled(label, context), n)


def sign_with_label(seed, label, content):
    """SIG-1, SIG-4: the public key comes from the seed itself."""
    key = nacl.signing.SigningKey(seed)
    sig = key.sign(labeled(label, content)).signature
    return bytes(key.verify_key), sig


def verify_with_label(public_key, label, content, sig):
    """SIG-3 in its order; raises Rejected with the class."""
    bad_key = ed25519.valid_public_key(public_key)
    if bad_key:
        raise Rejected(bad_key, "public key (SIG-2)")
    if len(sig) != 64:
        raise Rejected("MALFORMED", "signature length")
    if not ed25519.signature_shape_ok(sig):
        raise Rejected("BAD_SIGNATURE", "R or S (SIG-3 step 3)")
    try:
        nacl.signing.VerifyKey(public_key).verify(labeled(label, content), sig)
    except nacl.exceptions.BadSignatureError:
        raise Rejected("BAD_SIGNATURE", "equation (SIG-3 step 3.4)") from None


# X25519-1: after the range checks, exactly these u-coordinates have small order.
_X25519_SMALL_ORDER = {
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    )
}


def check_x25519_public(b):
    """X25519-1; raises Rejected."""
    if len(b) != 32:
        raise Rejected("MALFORMED", "X25519 key length")
    u = int.from_bytes(b, "little")
    if u >> 255 or u >= ed25519.P:
        raise Rejected("INVALID_KEY", "non-canonical X25519 key")
    if b in _X25519_SMALL_ORDER:
        raise Rejected("INVALID_KEY", "small-order X25519 key")


def aead_open(key, nonce, aad, ciphertext):
    """AEAD-1: XChaCha20-Poly1305; DECRYPT_FAILED on a bad tag."""
    if len(ciphertext) < 16:
        raise Rejected("DECRYPT_FAILED", "shorter than the tag")
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key)
    except nacl.exceptions.CryptoError:
        raise Rejected("DECRYPT_FAILED", "tag") from None


def padme(n):
    if n < 2:
        return n
    e = n.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def padding_bucket(content_length):
    """The recommended padded plaintext length (§6.6)."""
    return max(64, padme(4 + content_length))
