//! A token bucket fed time (BRK-LIM-3): `rate` tokens per second up to `burst`.
//! Integer arithmetic in milli-tokens, no clock inside.

/// One connection's bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: u64,
    capacity_milli: u64,
    level_milli: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(rate_per_sec: u32, burst: u32, now_ms: u64) -> Self {
        let capacity_milli = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            rate_per_sec: u64::from(rate_per_sec),
            capacity_milli,
            level_milli: capacity_milli,
            last_ms: now_ms,
        }
    }

    /// Takes one token at `now_ms`; false when the bucket is empty.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.level_milli = self
            .level_milli
            .saturating_add(elapsed.saturating_mul(self.rate_per_sec))
            .min(self.capacity_milli);
        if self.level_milli >= 1000 {
            self.level_milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(10, 3, 0);
        assert!(b.take(0) && b.take(0) && b.take(0));
        assert!(!b.take(0));
        assert!(!b.take(50));
        assert!(b.take(100));
        assert!(!b.take(100));
        // Never above capacity, time going backwards is harmless.
        assert!(b.take(10_000) && b.take(10_000) && b.take(10_000));
        assert!(!b.take(5));
    }
}
