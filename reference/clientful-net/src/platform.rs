//! The few things the driver needs from the platform it runs on, and nothing else:
//! starting a task, sleeping, and a millisecond clock. Natively these are tokio's
//! (`tokio::spawn`, `tokio::time`, `std::time::Instant`); on `wasm32` they are the
//! browser's (`wasm_bindgen_futures::spawn_local`, a `setTimeout` future, `Date.now()`:
//! `std::time` panics there). Every decision (backoff, outbox, keepalive, resume) stays
//! in the shared code, which is compiled unchanged for both (BRK-17, BRK-19).

use std::future::Future;
use std::time::Duration;

/// Runs `task` in the background (tokio's runtime).
#[cfg(not(target_arch = "wasm32"))]
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(task);
}

/// Runs `task` in the background (the page's or worker's event loop).
#[cfg(target_arch = "wasm32")]
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + 'static,
{
    wasm_bindgen_futures::spawn_local(task);
}

/// Completes after `delay`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep(delay: Duration) {
    tokio::time::sleep(delay).await;
}

/// Completes after `delay` (a `setTimeout`).
#[cfg(target_arch = "wasm32")]
pub async fn sleep(delay: Duration) {
    let ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Milliseconds since the clock was made, never decreasing: the time the connection
/// state machines are fed.
#[derive(Debug, Clone)]
pub struct Clock {
    #[cfg(not(target_arch = "wasm32"))]
    start: std::time::Instant,
    #[cfg(target_arch = "wasm32")]
    start: f64,
    #[cfg(target_arch = "wasm32")]
    last: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock at 0 now.
    pub fn new() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Clock {
                start: std::time::Instant::now(),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            Clock {
                start: js_sys::Date::now(),
                last: std::rc::Rc::default(),
            }
        }
    }

    /// Milliseconds since [`Clock::new`].
    pub fn now_ms(&self) -> u64 {
        #[cfg(not(target_arch = "wasm32"))]
        {
            u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
        }
        #[cfg(target_arch = "wasm32")]
        {
            // `Date.now()` is wall time and may step back; the state machines are
            // given a time that does not.
            let elapsed = (js_sys::Date::now() - self.start).max(0.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ms = elapsed as u64;
            let now = ms.max(self.last.get());
            self.last.set(now);
            now
        }
    }
}

/// Milliseconds since the Unix epoch, for the ephemeral counters (BRK-14).
pub fn unix_ms() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
    #[cfg(target_arch = "wasm32")]
    {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = js_sys::Date::now().max(0.0) as u64;
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clock_counts_milliseconds_and_sleep_waits() {
        let clock = Clock::new();
        let a = clock.now_ms();
        sleep(Duration::from_millis(30)).await;
        let b = clock.now_ms();
        assert!(b >= a + 30, "{a} then {b}");
        assert!(unix_ms() > 1_600_000_000_000);
    }
}
