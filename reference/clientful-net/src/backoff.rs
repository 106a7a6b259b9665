//! Reconnection delays (BRK-19): exponential backoff with jitter, sans-IO (the
//! random draw is an input).

use std::time::Duration;

/// Backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays start at `base` and double up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: half the current step plus a random part of the other half
    /// ("equal jitter"), so clients that lost the same broker spread out.
    /// `random` is any uniformly random u64.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let step = self.base.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_millis(random % half_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_bounded_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d: Vec<Duration> = (0..10).map(|i| b.next_delay(i * 7919)).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] < Duration::from_millis(100));
        assert!(d.iter().all(|x| *x < Duration::from_secs(2)));
        assert!(d[9] >= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay(0) < Duration::from_millis(100));
        let mut a = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut c = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_ne!(a.next_delay(1), c.next_delay(30));
    }
}
