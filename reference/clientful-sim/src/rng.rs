//! Small helpers over the seeded generator (no floating-point libm, no `rand`).

use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

/// A uniform number in `0..n` (0 when `n` is 0). The modulo bias is irrelevant
/// for a simulator and keeps the stream simple to replay.
pub fn below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

/// A uniform index in `0..n` (0 when `n` is 0).
pub fn index(rng: &mut ChaCha20Rng, n: usize) -> usize {
    usize::try_from(below(rng, n as u64)).unwrap_or(0)
}

/// `true` with probability `p`.
pub fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    x < p
}

/// 32 random bytes (an id nobody has).
pub fn bytes32(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b
}

/// `len` random bytes.
pub fn bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rng.fill_bytes(&mut b);
    b
}

/// Shuffles `v` in place (Fisher–Yates).
pub fn shuffle<T>(rng: &mut ChaCha20Rng, v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = index(rng, i + 1);
        v.swap(i, j);
    }
}
