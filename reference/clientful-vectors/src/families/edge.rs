//! Deliberately bad key material for negative vectors: small-order and
//! non-canonical Ed25519 points, and signatures valid only under other rules.
//! Generator-only code: it reads no outside input.
#![allow(clippy::indexing_slicing)]

use clientful_core::labels;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

/// `p = 2^255 - 19`, little-endian.
pub const FIELD_P: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The order of the base point, L, little-endian.
pub const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Encoding of the identity point (small order).
pub fn identity_point() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
}

/// A point of order 8.
pub fn order8_point() -> [u8; 32] {
    EIGHT_TORSION[1].compress().to_bytes()
}

/// Non-canonical encoding of the identity: y = p + 1.
pub fn non_canonical_identity() -> [u8; 32] {
    let mut b = FIELD_P;
    b[0] = 0xee;
    b
}

/// A 32-byte string that is not the encoding of any curve point.
pub fn not_on_curve() -> [u8; 32] {
    // y = 2 is not the y-coordinate of a curve point (x^2 would be a non-square).
    let mut b = [0u8; 32];
    b[0] = 2;
    b
}

/// `s + L` as 32 little-endian bytes (fits: s < L < 2^253).
pub fn add_order(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for (i, (o, l)) in out.iter_mut().zip(ORDER_L).enumerate() {
        let v = u16::from(s.get(i).copied().unwrap_or(0)) + u16::from(l) + carry;
        *o = (v & 0xff) as u8;
        carry = v >> 8;
    }
    out
}

fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(msg);
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A labelled "signature" `(R = [r]B, S = r)` that satisfies the cofactorless
/// equation under the identity public key for every message: what a small-order
/// key admits.
pub fn forgery_under_identity(r_seed: u8) -> [u8; 64] {
    let r = Scalar::from(u64::from(r_seed) + 1);
    let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
    let mut sig = [0u8; 64];
    let (r_half, s_half) = sig.split_at_mut(32);
    r_half.copy_from_slice(&big_r);
    s_half.copy_from_slice(r.as_bytes());
    sig
}

/// A mixed-order public key `A' = [a]B + T` (T of order 8) and a labelled
/// signature on `content` that satisfies the cofactored equation but not the
/// cofactorless one.
pub fn mixed_order_signature(label: &str, content: &[u8]) -> ([u8; 32], [u8; 64]) {
    let a = Scalar::from(0x1234_5678_9abc_u64);
    let a_prime = (ED25519_BASEPOINT_POINT * a) + EIGHT_TORSION[1];
    let a_bytes = a_prime.compress().to_bytes();
    let msg = labels::labeled(label, content).unwrap_or_default();
    let mut r_val = 7u64;
    loop {
        let r = Scalar::from(r_val);
        let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let k = challenge(&big_r, &a_bytes, &msg);
        // Cofactorless holds iff [k]T = 0 iff k = 0 mod 8: skip those.
        if !k.as_bytes()[0].is_multiple_of(8) {
            let s = r + k * a;
            let mut sig = [0u8; 64];
            let (r_half, s_half) = sig.split_at_mut(32);
            r_half.copy_from_slice(&big_r);
            s_half.copy_from_slice(s.as_bytes());
            return (a_bytes, sig);
        }
        r_val += 1;
    }
}

/// A public key `A = [a]B` and a labelled signature on `content` whose `R` is the
/// identity (small order) and whose `S = k·a`: `S < L` and the cofactorless
/// equation `[S]B = R + [k]A` holds, so only SIG-3's small-order check on `R`
/// fails. (No `R` of order 2, 4 or 8 can satisfy it: `[S]B − [k]A` lies in the
/// prime-order subgroup, which holds no other small-order point.)
pub fn small_order_r_equation_holds(label: &str, content: &[u8]) -> ([u8; 32], [u8; 64]) {
    let a = Scalar::from(0x0fed_cba9_8765_u64);
    let a_bytes = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
    let msg = labels::labeled(label, content).unwrap_or_default();
    let big_r = identity_point();
    let k = challenge(&big_r, &a_bytes, &msg);
    let s = k * a;
    let mut sig = [0u8; 64];
    let (r_half, s_half) = sig.split_at_mut(32);
    r_half.copy_from_slice(&big_r);
    s_half.copy_from_slice(s.as_bytes());
    (a_bytes, sig)
}
