//! Retry decisions: exponential backoff with full jitter, and what each error class does.
//!
//! - [`Backoff`]: `delay = random(0, min(cap, base · 2^(failures−1)))` ("full jitter", AWS
//!   Architecture Blog, 2015). The random source is injected so tests are deterministic.
//! - [`RetryPolicy::decide`]: maps a [`RetryClass`] and the count of consecutive failures to a
//!   [`Decision`]. Transient errors are retried **forever**, with the delay capped at
//!   `retry_max`: a file is never given up on because the network or the service was down.
//!   Once a chunk has failed [`RetryPolicy::persistent_after`] times in a row the failure is
//!   "persistent" and [`RetryNote`] renders the reason that `status` and the log show
//!   ("chunk 3/8 failed 5 times: 503 Service Unavailable; next attempt at …").
//! - 429 (and 503 with a retry-after header): wait what the server asked, even beyond
//!   `retry_max` (retrying earlier only earns another 429 and counts against the limit), but at
//!   least 1 s (a `0` header must not produce a hot loop) and at most
//!   `max(retry_max, `[`MAX_RETRY_AFTER`]`)` = 1 h by default (a bogus or huge header must not
//!   stall the queue for a day; if the server still refuses, the next 429 just waits again).
//!   Without a header, the normal backoff applies.
//! - The caller resets the failure count to 0 whenever a chunk is acknowledged (progress), and
//!   stores `now + delay` as `next_attempt_at` in the journal so the wait survives a restart.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Default base of the exponential backoff.
pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// Default number of consecutive failures after which a failure is reported as persistent.
pub const DEFAULT_PERSISTENT_AFTER: u32 = 5;
/// Shortest wait honoured for a server-provided retry-after.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest wait honoured for a server-provided retry-after when `retry_max` is shorter.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How an upload error should be handled. The api client's error classes map onto this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Network error, timeout, 5xx without retry-after: back off and retry.
    Transient,
    /// 429, or 503 with a retry-after header; `Some` is the server's requested wait.
    RateLimited(Option<Duration>),
    /// 401 on the upload token: pause the whole queue until the token changes.
    TokenRejected,
    /// Any other 4xx, or a local error that retrying cannot fix: park the file as `failed`.
    Permanent,
}

/// What to do after a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay (store `now + delay` as `next_attempt_at`).
    RetryAfter(Duration),
    /// Pause every upload until the token changes; do not count this as a failure.
    PauseForToken,
    /// Park the file as `failed` with the server's reason.
    Fail,
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// `base` is the ceiling after the first failure; `cap` bounds every delay.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap }
    }

    /// The upper bound of the delay after `failures` consecutive failures (`failures ≥ 1`;
    /// 0 is treated as 1): `min(cap, base · 2^(failures−1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(63);
        let factor = 1u64 << exp;
        let nanos = self.base.as_nanos().saturating_mul(u128::from(factor));
        let capped = nanos.min(self.cap.as_nanos());
        // `capped` ≤ cap, which came from a Duration, so it fits in u64 nanoseconds for any
        // realistic cap; saturate instead of panicking for absurd ones.
        Duration::from_nanos(u64::try_from(capped).unwrap_or(u64::MAX))
    }

    /// A delay drawn uniformly from `[0, ceiling(failures)]`.
    pub fn delay<R: Rng + ?Sized>(&self, failures: u32, rng: &mut R) -> Duration {
        let ceiling = u64::try_from(self.ceiling(failures).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=ceiling))
    }
}

/// Turns an error class and the number of consecutive failures into a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    backoff: Backoff,
    retry_max: Duration,
    persistent_after: u32,
}

impl RetryPolicy {
    /// The default policy for `upload.retry_max` (base 1 s, persistent after 5 failures).
    pub fn new(retry_max: Duration) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff::new(DEFAULT_BASE, retry_max),
            retry_max,
            persistent_after: DEFAULT_PERSISTENT_AFTER,
        }
    }

    /// Overrides the backoff base (tests use milliseconds).
    pub fn with_base(mut self, base: Duration) -> RetryPolicy {
        self.backoff = Backoff::new(base, self.retry_max);
        self
    }

    /// Overrides the number of failures after which a failure is reported as persistent.
    pub fn with_persistent_after(mut self, failures: u32) -> RetryPolicy {
        self.persistent_after = failures.max(1);
        self
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    pub fn retry_max(&self) -> Duration {
        self.retry_max
    }

    pub fn persistent_after(&self) -> u32 {
        self.persistent_after
    }

    /// True once `failures` consecutive failures should be shown as a persistent problem.
    pub fn is_persistent(&self, failures: u32) -> bool {
        failures >= self.persistent_after
    }

    /// The decision after the `failures`-th consecutive failure (counting this one) of class `class`.
    pub fn decide<R: Rng + ?Sized>(
        &self,
        class: RetryClass,
        failures: u32,
        rng: &mut R,
    ) -> Decision {
        match class {
            RetryClass::Transient | RetryClass::RateLimited(None) => {
                Decision::RetryAfter(self.backoff.delay(failures, rng))
            }
            RetryClass::RateLimited(Some(wait)) => Decision::RetryAfter(
                wait.max(MIN_RETRY_AFTER)
                    .min(self.retry_max.max(MAX_RETRY_AFTER)),
            ),
            RetryClass::TokenRejected => Decision::PauseForToken,
            RetryClass::Permanent => Decision::Fail,
        }
    }

    /// [`decide`](Self::decide) with the thread-local random generator.
    pub fn decide_now(&self, class: RetryClass, failures: u32) -> Decision {
        self.decide(class, failures, &mut rand::rng())
    }
}

/// The human reason for a file waiting in retry, for `status` (`last_error`) and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryNote {
    /// `(1-based chunk index, chunk count)` for chunked uploads; `None` for a single request.
    pub chunk: Option<(u64, u64)>,
    /// Consecutive failures, counting the latest.
    pub failures: u32,
    /// The latest error, e.g. `503 Service Unavailable` or `connection reset`.
    pub reason: String,
    pub next_attempt_at: OffsetDateTime,
}

impl fmt::Display for RetryNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chunk {
            Some((index, count)) => write!(f, "chunk {index}/{count} failed")?,
            None => write!(f, "upload failed")?,
        }
        match self.failures {
            0 | 1 => write!(f, " once")?,
            n => write!(f, " {n} times")?,
        }
        let at = self
            .next_attempt_at
            .replace_nanosecond(0)
            .unwrap_or(self.next_attempt_at)
            .format(&Rfc3339)
            .map_err(|_| fmt::Error)?;
        write!(f, ": {}; next attempt at {at}", self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::new(Duration::from_secs(1), 10 * MIN);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(4), Duration::from_secs(8));
        assert_eq!(b.ceiling(10), Duration::from_secs(512));
        assert_eq!(b.ceiling(11), 10 * MIN);
        assert_eq!(b.ceiling(u32::MAX), 10 * MIN);
    }

    #[test]
    fn delay_is_full_jitter_within_ceiling_and_deterministic_with_a_seed() {
        let b = Backoff::new(Duration::from_secs(1), 10 * MIN);
        let mut a = StdRng::seed_from_u64(7);
        let mut c = StdRng::seed_from_u64(7);
        let mut below_half = 0;
        for failures in 1..200 {
            let d = b.delay(failures, &mut a);
            assert!(d <= b.ceiling(failures), "{d:?} > ceiling for {failures}");
            assert_eq!(d, b.delay(failures, &mut c));
            if d < b.ceiling(failures) / 2 {
                below_half += 1;
            }
        }
        // Full jitter: about half the draws fall in the lower half (it is not "equal jitter").
        assert!((50..150).contains(&below_half), "{below_half}");
    }

    #[test]
    fn transient_is_retried_forever_within_retry_max() {
        let p = RetryPolicy::new(10 * MIN);
        let mut rng = StdRng::seed_from_u64(1);
        for failures in [1, 5, 6, 100, 10_000] {
            match p.decide(RetryClass::Transient, failures, &mut rng) {
                Decision::RetryAfter(d) => assert!(d <= 10 * MIN),
                other => panic!("transient failure {failures} gave {other:?}"),
            }
        }
        assert!(!p.is_persistent(4));
        assert!(p.is_persistent(5));
    }

    #[test]
    fn rate_limited_honours_server_wait_clamped() {
        let p = RetryPolicy::new(10 * MIN);
        let mut rng = StdRng::seed_from_u64(1);
        let wait = |s| {
            p.decide(
                RetryClass::RateLimited(Some(s)),
                1,
                &mut StdRng::seed_from_u64(1),
            )
        };
        assert_eq!(
            wait(Duration::from_secs(42)),
            Decision::RetryAfter(Duration::from_secs(42))
        );
        assert_eq!(wait(Duration::ZERO), Decision::RetryAfter(MIN_RETRY_AFTER));
        assert_eq!(
            wait(Duration::from_secs(86_400)),
            Decision::RetryAfter(MAX_RETRY_AFTER)
        );
        // The server's wait wins over a shorter retry_max.
        let short = RetryPolicy::new(Duration::from_secs(2));
        assert_eq!(
            short.decide(
                RetryClass::RateLimited(Some(Duration::from_secs(30))),
                1,
                &mut StdRng::seed_from_u64(1)
            ),
            Decision::RetryAfter(Duration::from_secs(30))
        );
        // A retry_max above the ceiling still bounds it.
        let long = RetryPolicy::new(2 * MAX_RETRY_AFTER);
        assert_eq!(
            long.decide(
                RetryClass::RateLimited(Some(Duration::from_secs(86_400))),
                1,
                &mut StdRng::seed_from_u64(1)
            ),
            Decision::RetryAfter(2 * MAX_RETRY_AFTER)
        );
        // No header: ordinary backoff.
        match p.decide(RetryClass::RateLimited(None), 3, &mut rng) {
            Decision::RetryAfter(d) => assert!(d <= Duration::from_secs(4)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_and_permanent_classes() {
        let p = RetryPolicy::new(10 * MIN);
        assert_eq!(
            p.decide_now(RetryClass::TokenRejected, 1),
            Decision::PauseForToken
        );
        assert_eq!(
            p.decide_now(RetryClass::TokenRejected, 50),
            Decision::PauseForToken
        );
        assert_eq!(p.decide_now(RetryClass::Permanent, 1), Decision::Fail);
    }

    proptest::proptest! {
        #[test]
        fn delays_never_exceed_the_cap(
            base_ms in 1u64..10_000,
            cap_s in 1u64..100_000,
            failures in 0u32..u32::MAX,
            seed: u64,
        ) {
            let cap = Duration::from_secs(cap_s);
            let b = Backoff::new(Duration::from_millis(base_ms), cap);
            let d = b.delay(failures, &mut StdRng::seed_from_u64(seed));
            proptest::prop_assert!(d <= b.ceiling(failures));
            proptest::prop_assert!(b.ceiling(failures) <= cap);
            proptest::prop_assert!(b.ceiling(failures) <= b.ceiling(failures.saturating_add(1)));
        }
    }

    #[test]
    fn retry_note_reads_well() {
        let at = time::macros::datetime!(2026-11-28 05:12:03.5 UTC);
        let note = RetryNote {
            chunk: Some((3, 8)),
            failures: 5,
            reason: "503 Service Unavailable".into(),
            next_attempt_at: at,
        };
        assert_eq!(
            note.to_string(),
            "chunk 3/8 failed 5 times: 503 Service Unavailable; next attempt at 2026-11-28T05:12:03Z"
        );
        let single = RetryNote {
            chunk: None,
            failures: 1,
            ..note
        };
        assert_eq!(
            single.to_string(),
            "upload failed once: 503 Service Unavailable; next attempt at 2026-11-28T05:12:03Z"
        );
    }
}
