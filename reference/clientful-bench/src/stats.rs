//! Side-by-side measurement: baseline and candidate alternate over several
//! rounds (so drift of a noisy machine hits both), and each figure is the ratio
//! of the medians.

use std::time::Instant;

/// The median of `v` (0 for an empty slice).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let mid = |i: usize| s.get(i).copied().unwrap_or(0.0);
    match n {
        0 => 0.0,
        n if n % 2 == 1 => mid(n / 2),
        n => (mid(n / 2 - 1) + mid(n / 2)) / 2.0,
    }
}

/// Times `f` once, in seconds.
pub fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed().as_secs_f64(), out)
}

/// Runs baseline and candidate `rounds` times each, alternating which goes first,
/// and returns their median times.
pub fn alternate<A, B>(
    rounds: usize,
    mut baseline: impl FnMut() -> anyhow::Result<A>,
    mut candidate: impl FnMut() -> anyhow::Result<B>,
) -> anyhow::Result<(f64, f64, A, B)> {
    let (mut tb, mut tc) = (Vec::new(), Vec::new());
    let (mut last_b, mut last_c) = (None, None);
    for round in 0..rounds.max(1) {
        if round % 2 == 0 {
            let (t, b) = time(&mut baseline);
            tb.push(t);
            last_b = Some(b?);
            let (t, c) = time(&mut candidate);
            tc.push(t);
            last_c = Some(c?);
        } else {
            let (t, c) = time(&mut candidate);
            tc.push(t);
            last_c = Some(c?);
            let (t, b) = time(&mut baseline);
            tb.push(t);
            last_b = Some(b?);
        }
    }
    match (last_b, last_c) {
        (Some(b), Some(c)) => Ok((median(&tb), median(&tc), b, c)),
        _ => anyhow::bail!("no round ran"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
