//! `upload.max_rate`: one token bucket (GCRA, the `governor` crate) shared by all workers.
//!
//! One cell is one byte. The bucket holds one second of traffic (burst = the rate in bytes, at
//! most `u32::MAX`), refilled continuously at the rate. A worker calls [`RateLimit::acquire`]
//! with the size of each buffer *before* writing it to the request body; requests larger than
//! the burst are split, so any buffer size works. `0` means unlimited and costs nothing. Rates
//! above `u32::MAX` bytes/s (4 GiB/s) are clamped to that.
//!
//! The rate can change while uploads run ([`RateLimit::set_rate`], driven by the timetable in
//! `upload::schedule`, and [`RateLimit::set_bypass`] for SIGUSR2): every clone sees the change
//! at its next buffer, and a waiter re-checks at least every 250 ms, so a change takes effect
//! within a second. A new rate starts with an empty bucket: the first second after a change is
//! not a burst on top of the new rate.
//!
//! The limiter reads `tokio::time::Instant` and waits with `tokio::time::sleep`, so it obeys
//! tokio's paused test clock (deterministic tests) and is a plain monotonic clock in production.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The longest a waiter sleeps before looking again at the rate in force.
const RECHECK: Duration = Duration::from_millis(250);

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
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The bucket of the rate in force; None = unlimited.
    bucket: Mutex<Option<Arc<Bucket>>>,
    /// SIGUSR2: the limit is lifted until toggled back.
    bypass: AtomicBool,
}

#[derive(Debug)]
struct Bucket {
    rate: u64,
    limiter: Limiter,
    clock: TokioClock,
    burst: NonZeroU32,
}

impl Bucket {
    /// A bucket for `rate` bytes/s (None for 0); `full` = the first second's burst is available.
    fn new(rate: u64, full: bool) -> Option<Arc<Bucket>> {
        let burst = NonZeroU32::new(u32::try_from(rate).unwrap_or(u32::MAX))?;
        let clock = TokioClock {
            start: tokio::time::Instant::now(),
        };
        let limiter = RateLimiter::direct_with_clock(Quota::per_second(burst), clock);
        if !full {
            let _ = limiter.check_n(burst);
        }
        Some(Arc::new(Bucket {
            rate,
            limiter,
            clock,
            burst,
        }))
    }
}

impl RateLimit {
    /// A limit of `bytes_per_second` across all clones; 0 = unlimited.
    pub fn new(bytes_per_second: u64) -> RateLimit {
        RateLimit {
            inner: Arc::new(Shared {
                bucket: Mutex::new(Bucket::new(bytes_per_second, true)),
                bypass: AtomicBool::new(false),
            }),
        }
    }

    /// No limit: [`acquire`](Self::acquire) returns at once.
    pub fn unlimited() -> RateLimit {
        RateLimit::new(0)
    }

    /// Whether bytes go through without waiting (no rate, or the limit is bypassed).
    pub fn is_unlimited(&self) -> bool {
        self.current().is_none()
    }

    /// The configured rate in bytes/s (0 = unlimited), bypass or not.
    pub fn rate(&self) -> u64 {
        self.bucket().map_or(0, |b| b.rate)
    }

    /// Changes the rate for every clone, from their next buffer on (no-op if unchanged).
    pub fn set_rate(&self, bytes_per_second: u64) {
        let mut slot = match self.inner.bucket.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if slot.as_ref().map_or(0, |b| b.rate) != bytes_per_second {
            *slot = Bucket::new(bytes_per_second, false);
        }
    }

    /// Lifts (`true`) or restores (`false`) the limit without forgetting the rate (SIGUSR2).
    pub fn set_bypass(&self, bypass: bool) {
        self.inner.bypass.store(bypass, Ordering::SeqCst);
    }

    pub fn is_bypassed(&self) -> bool {
        self.inner.bypass.load(Ordering::SeqCst)
    }

    fn bucket(&self) -> Option<Arc<Bucket>> {
        match self.inner.bucket.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The bucket that applies now (None = go).
    fn current(&self) -> Option<Arc<Bucket>> {
        if self.is_bypassed() {
            None
        } else {
            self.bucket()
        }
    }

    /// Waits until `n` bytes may be sent. Cancel-safe: dropping the future forfeits nothing that
    /// was not already granted.
    pub async fn acquire(&self, n: u64) {
        let mut left = n;
        while left > 0 {
            let Some(bucket) = self.current() else { return };
            let step = u32::try_from(left)
                .unwrap_or(u32::MAX)
                .min(bucket.burst.get());
            let Some(cells) = NonZeroU32::new(step) else {
                return;
            };
            match bucket.limiter.check_n(cells) {
                Ok(Ok(())) => left -= u64::from(step),
                Ok(Err(not_until)) => {
                    // Sleep at most RECHECK: the rate may change (timetable, SIGUSR2) meanwhile.
                    let wait = not_until.wait_time_from(bucket.clock.now());
                    tokio::time::sleep(wait.min(RECHECK)).await;
                }
                // Cannot happen: `step` ≤ burst. Treat it as granted rather than spin.
                Err(_) => left -= u64::from(step),
            }
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
    async fn a_new_rate_applies_to_a_waiting_acquire_within_a_second() {
        let limit = RateLimit::new(64 * 1024);
        let start = tokio::time::Instant::now();
        let l = limit.clone();
        // 64 KiB/s: 10 MiB would take ~159 s.
        let big = tokio::spawn(async move { l.acquire(10 * MIB).await });
        tokio::time::sleep(Duration::from_secs(2)).await;
        limit.set_rate(10 * MIB);
        big.await.unwrap();
        // 2 s at the old rate, then ~1 s at the new one (the new bucket starts empty).
        assert_virtual_ms(start, 2_000..=3_300);
        assert_eq!(limit.rate(), 10 * MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn bypass_lifts_the_limit_and_keeps_the_rate() {
        let limit = RateLimit::new(MIB);
        let l = limit.clone();
        let start = tokio::time::Instant::now();
        let big = tokio::spawn(async move { l.acquire(100 * MIB).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        limit.set_bypass(true);
        big.await.unwrap();
        assert_virtual_ms(start, 1_000..=1_300);
        assert!(limit.is_unlimited());
        assert_eq!(limit.rate(), MIB);
        limit.set_bypass(false);
        assert!(!limit.is_unlimited());
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
