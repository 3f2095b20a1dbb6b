//! `upload.max_rate`: one token bucket (GCRA, the `governor` crate) shared by all workers.
//!
//! One cell is one byte. The bucket holds one second of traffic (burst = `max_rate` bytes, at
//! most `u32::MAX`), refilled continuously at `max_rate` bytes per second. A worker calls
//! [`RateLimit::acquire`] with the size of each buffer *before* writing it to the request body;
//! requests larger than the burst are split, so any buffer size works. `0` means unlimited and
//! costs nothing. Rates above `u32::MAX` bytes/s (4 GiB/s) are clamped to that.
//!
//! The limiter reads `tokio::time::Instant` and waits with `tokio::time::sleep`, so it obeys
//! tokio's paused test clock (deterministic tests) and is a plain monotonic clock in production.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// A governor clock on tokio's (pausable) monotonic clock: time since the limiter was created.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.start)
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// A shared byte-rate limit. Clone it (it is an `Arc` inside) into every worker.
#[derive(Debug, Clone)]
pub struct RateLimit {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    limiter: Limiter,
    clock: TokioClock,
    burst: NonZeroU32,
}

impl RateLimit {
    /// A limit of `bytes_per_second` across all clones; 0 = unlimited.
    pub fn new(bytes_per_second: u64) -> RateLimit {
        let rate = u32::try_from(bytes_per_second).unwrap_or(u32::MAX);
        let Some(burst) = NonZeroU32::new(rate) else {
            return RateLimit::unlimited();
        };
        let clock = TokioClock {
            start: tokio::time::Instant::now(),
        };
        let limiter = RateLimiter::direct_with_clock(Quota::per_second(burst), clock);
        RateLimit {
            inner: Some(Arc::new(Inner {
                limiter,
                clock,
                burst,
            })),
        }
    }

    /// No limit: [`acquire`](Self::acquire) returns at once.
    pub fn unlimited() -> RateLimit {
        RateLimit { inner: None }
    }

    pub fn is_unlimited(&self) -> bool {
        self.inner.is_none()
    }

    /// Waits until `n` bytes may be sent. Cancel-safe: dropping the future forfeits nothing that
    /// was not already granted.
    pub async fn acquire(&self, n: u64) {
        let Some(inner) = &self.inner else { return };
        let mut left = n;
        while left > 0 {
            let step = u32::try_from(left)
                .unwrap_or(u32::MAX)
                .min(inner.burst.get());
            let Some(cells) = NonZeroU32::new(step) else {
                return;
            };
            loop {
                match inner.limiter.check_n(cells) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => {
                        let wait = not_until.wait_time_from(inner.clock.now());
                        tokio::time::sleep(wait).await;
                    }
                    // Cannot happen: `step` ≤ burst. Treat it as granted rather than spin.
                    Err(_) => break,
                }
            }
            left -= u64::from(step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// The virtual time since `start` is within `ms` milliseconds.
    fn assert_virtual_ms(start: tokio::time::Instant, ms: std::ops::RangeInclusive<u64>) {
        let elapsed = start.elapsed();
        let (lo, hi) = (
            Duration::from_millis(*ms.start()),
            Duration::from_millis(*ms.end()),
        );
        assert!(elapsed >= lo && elapsed <= hi, "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn ten_mib_at_one_mib_per_second_takes_about_ten_virtual_seconds() {
        let limit = RateLimit::new(MIB);
        let start = tokio::time::Instant::now();
        // 64 KiB buffers, as a worker streaming a chunk would.
        for _ in 0..(10 * MIB / (64 * 1024)) {
            limit.acquire(64 * 1024).await;
        }
        // The first second's worth is the initial burst, so ≈ 9 s; never less than 8.9 s.
        assert_virtual_ms(start, 8_900..=10_100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_larger_than_the_burst_is_split() {
        let limit = RateLimit::new(MIB);
        let start = tokio::time::Instant::now();
        limit.acquire(5 * MIB).await;
        assert_virtual_ms(start, 3_900..=5_100);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_is_shared_by_clones() {
        let limit = RateLimit::new(MIB);
        let start = tokio::time::Instant::now();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    for _ in 0..40 {
                        limit.acquire(64 * 1024).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        // 4 × 40 × 64 KiB = 10 MiB in total at 1 MiB/s.
        assert_virtual_ms(start, 8_900..=10_100);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_is_unlimited() {
        let limit = RateLimit::new(0);
        assert!(limit.is_unlimited());
        let start = tokio::time::Instant::now();
        limit.acquire(100 * 1024 * MIB).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
