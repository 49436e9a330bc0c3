//! `tektra-rate`: a byte rate shared by every task that draws from it.
//! Each [`RateLimiter::take`] books its bytes on a virtual clock that runs
//! at the rate and waits until their slot begins, so any number of
//! connections together stay at the rate, each getting slots in the order
//! they asked. A short burst (an eighth of a second's worth) is allowed
//! after a pause, so a paced stream does not lose time it did not use.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let limit = std::sync::Arc::new(tektra_rate::RateLimiter::new(4 << 20));
//! let started = std::time::Instant::now();
//! for _ in 0..4 {
//!     // 4 MiB at 4 MiB/s: the last MiB's slot begins after 0.75 s, less
//!     // the burst allowance of 0.125 s.
//!     limit.take(1 << 20).await;
//! }
//! assert!(started.elapsed() >= std::time::Duration::from_millis(600));
//! # }
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second, shared (put it in an `Arc`).
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: u64,
    /// When the next byte's slot begins.
    next: Mutex<Instant>,
}

/// The burst a paused stream may take at once, in seconds of the rate.
const BURST: f64 = 0.125;

impl RateLimiter {
    /// A limiter at `bytes_per_sec` (0 is taken as 1).
    #[must_use]
    pub fn new(bytes_per_sec: u64) -> Self {
        // A new limiter has its burst to give, as one idle a while has.
        let now = Instant::now();
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1),
            next: Mutex::new(
                now.checked_sub(Duration::from_secs_f64(BURST))
                    .unwrap_or(now),
            ),
        }
    }

    /// The rate.
    #[must_use]
    pub fn rate(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Books `bytes` and returns how long to wait before sending them.
    #[must_use]
    pub fn reserve(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let burst = Duration::from_secs_f64(BURST);
        let start = (*next).max(now.checked_sub(burst).unwrap_or(now));
        #[allow(clippy::cast_precision_loss)]
        let length = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        *next = start + length;
        start.saturating_duration_since(now)
    }

    /// Waits until `bytes` may be sent.
    pub async fn take(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_follow_the_rate_across_callers() {
        let limit = RateLimiter::new(1000);
        // The burst allowance, then a second's worth takes a second.
        let first = limit.reserve(125);
        assert!(first.is_zero(), "{first:?}");
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            last = limit.reserve(100);
        }
        assert!(last >= Duration::from_millis(850), "{last:?}");
        assert!(last <= Duration::from_millis(1000), "{last:?}");
    }
}
