//! Shamir's secret sharing of a 32-byte secret over GF(2^8) (spec REC-3): the field,
//! splitting with explicit coefficients, and Lagrange interpolation at zero.
//!
//! The field is GF(2)[x] / (x^8 + x^4 + x^3 + x + 1), the AES field, so that any
//! implementation's byte arithmetic agrees. Every byte of the secret is shared with its
//! own polynomial of degree k − 1; share `i` (1..=n) holds the 32 evaluations at `x = i`.
//!
//! Multiplication and inversion run in time independent of their operands (no log or
//! exp tables indexed by secret bytes), since the shares and the secret are secrets.

use alloc::vec::Vec;
use zeroize::Zeroizing;

use crate::error::Error;

/// Length of the shared secret and of each share's value.
pub const SECRET_LEN: usize = 32;

/// `a · b` in GF(2^8) with the reduction polynomial 0x11b, in constant time.
pub(crate) fn mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut product = 0u8;
    for _ in 0..8 {
        // Add `a` when the low bit of `b` is set, without a branch.
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// `a^-1` in GF(2^8) as `a^254` (0 maps to 0; never called with 0 here).
pub(crate) fn inv(a: u8) -> u8 {
    // a^254 = a^(2+4+8+16+32+64+128), by square and multiply with a fixed schedule.
    let mut result = 1u8;
    let mut square = a;
    for bit in 0..8 {
        square = mul(square, square);
        if bit < 7 {
            result = mul(result, square);
        }
    }
    result
}

/// The shares of `secret` for the polynomial whose coefficients of degree 1..k are
/// `coefficients[j]` for byte `j` (each `k − 1` bytes): share `i` (1..=n) is
/// `f_j(i)` for every `j`. `coefficients` must hold 32 rows of `k − 1` bytes.
pub fn split_with(
    secret: &[u8; SECRET_LEN],
    coefficients: &[Vec<u8>],
    count: u8,
) -> Result<Vec<Zeroizing<[u8; SECRET_LEN]>>, Error> {
    if coefficients.len() != SECRET_LEN {
        return Err(Error::InvalidOperation {
            reason: "one coefficient row per secret byte",
        });
    }
    let degree = coefficients.first().map_or(0, Vec::len);
    if degree == 0 || coefficients.iter().any(|row| row.len() != degree) {
        return Err(Error::InvalidOperation {
            reason: "every coefficient row has k - 1 bytes, k at least 2",
        });
    }
    if usize::from(count) <= degree {
        return Err(Error::InvalidOperation {
            reason: "fewer shares than the threshold",
        });
    }
    let mut shares = Vec::with_capacity(usize::from(count));
    for x in 1..=count {
        let mut value = Zeroizing::new([0u8; SECRET_LEN]);
        for ((out, row), s) in value.iter_mut().zip(coefficients).zip(secret) {
            // Horner: ((c_{k-1} x + c_{k-2}) x + ... + c_1) x + secret_j.
            let mut acc = 0u8;
            for &c in row.iter().rev() {
                acc = mul(acc, x) ^ c;
            }
            *out = mul(acc, x) ^ s;
        }
        shares.push(value);
    }
    Ok(shares)
}

/// The secret from shares with distinct, non-zero x coordinates: Lagrange
/// interpolation at zero, `Σ y_i · Π_{m≠i} x_m / (x_m − x_i)` (subtraction is XOR).
/// Exactly the given shares are used; the caller chooses which k.
pub fn combine(shares: &[(u8, &[u8; SECRET_LEN])]) -> Result<Zeroizing<[u8; SECRET_LEN]>, Error> {
    for (i, (x, _)) in shares.iter().enumerate() {
        if *x == 0 || shares.iter().take(i).any(|(other, _)| other == x) {
            return Err(Error::InvalidOperation {
                reason: "share coordinates must be distinct and non-zero",
            });
        }
    }
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    for (i, (xi, yi)) in shares.iter().enumerate() {
        let mut num = 1u8;
        let mut den = 1u8;
        for (m, (xm, _)) in shares.iter().enumerate() {
            if m != i {
                num = mul(num, *xm);
                den = mul(den, xm ^ xi);
            }
        }
        let basis = mul(num, inv(den));
        for (out, y) in secret.iter_mut().zip(yi.iter()) {
            *out ^= mul(*y, basis);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Slow reference multiplication: carry-less product, then reduction.
    fn mul_reference(a: u8, b: u8) -> u8 {
        let mut wide = 0u16;
        for bit in 0..8 {
            if b >> bit & 1 == 1 {
                wide ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if wide >> bit & 1 == 1 {
                wide ^= 0x11b << (bit - 8);
            }
        }
        wide as u8
    }

    #[test]
    fn the_field_matches_the_reference_and_every_element_has_an_inverse() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), mul_reference(a, b));
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
            }
        }
        // FIPS-197 §4.2: {57} · {83} = {c1}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
    }

    fn rows(k: usize, seed: u8) -> Vec<Vec<u8>> {
        (0..SECRET_LEN)
            .map(|j| {
                (0..k - 1)
                    .map(|d| seed.wrapping_mul(31).wrapping_add((j * 7 + d * 13) as u8))
                    .collect()
            })
            .collect()
    }

    proptest! {
        /// Any k of the n shares give the secret back.
        #[test]
        fn any_k_shares_give_the_secret(
            secret in any::<[u8; 32]>(),
            k in 2usize..=6,
            extra in 0usize..=4,
            seed in any::<u8>(),
            pick in any::<u64>(),
        ) {
            let n = k + extra;
            let shares = split_with(&secret, &rows(k, seed), n as u8).unwrap();
            // A pseudo-random choice of k distinct indices.
            let mut idx: Vec<usize> = (0..n).collect();
            let mut p = pick;
            for i in (1..n).rev() {
                idx.swap(i, (p % (i as u64 + 1)) as usize);
                p /= i as u64 + 1;
            }
            let chosen: Vec<(u8, &[u8; 32])> =
                idx[..k].iter().map(|&i| ((i + 1) as u8, &*shares[i])).collect();
            prop_assert_eq!(*combine(&chosen).unwrap(), secret);
        }
    }

    /// Fewer than k shares say nothing (perfect secrecy): for a fixed secret byte, the
    /// map from the random coefficients to the k − 1 held values is a bijection, so the
    /// held values are uniformly distributed whatever the secret is. Exhaustive for
    /// k = 2 (every secret byte, every x) and k = 3 (every coefficient pair, for several
    /// secrets and coordinate pairs).
    #[test]
    fn fewer_than_k_shares_are_uniform_whatever_the_secret() {
        for s in 0..=255u8 {
            for x in 1..=255u8 {
                let mut seen = [false; 256];
                for c in 0..=255u8 {
                    seen[usize::from(mul(c, x) ^ s)] = true;
                }
                assert!(seen.iter().all(|&b| b), "k = 2, s = {s}, x = {x}");
            }
        }
        for (s, x1, x2) in [(0u8, 1u8, 2u8), (0x5a, 3, 200), (0xff, 16, 17), (7, 255, 1)] {
            let mut seen = alloc::vec![false; 65536];
            for c1 in 0..=255u8 {
                for c2 in 0..=255u8 {
                    let f = |x: u8| mul(mul(c2, x) ^ c1, x) ^ s;
                    seen[usize::from(f(x1)) << 8 | usize::from(f(x2))] = true;
                }
            }
            assert!(seen.iter().all(|&b| b), "k = 3, s = {s}, x = {x1}, {x2}");
        }
    }

    #[test]
    fn refuses_bad_parameters_and_coordinates() {
        let s = [9u8; 32];
        assert!(split_with(&s, &rows(3, 1), 2).is_err(), "n < k");
        assert!(split_with(&s, &[], 3).is_err());
        let shares = split_with(&s, &rows(2, 1), 3).unwrap();
        assert!(combine(&[(1, &shares[0]), (1, &shares[0])]).is_err());
        assert!(combine(&[(0, &shares[0]), (2, &shares[1])]).is_err());
    }
}
