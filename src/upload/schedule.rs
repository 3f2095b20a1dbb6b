//! The bandwidth timetable at run time: which rate of `[upload] max_rate` is in force, SIGUSR2's
//! toggle, and telling `status` and metrics (through the journal) what applies and what is next.
//!
//! One task looks at the local time ([`super::localtime`]) once a second, on the second, and
//! sets the shared [`RateLimit`]; a waiting upload sees a new rate within 250 ms
//! (`rate.rs`), so a change takes effect within a second of the minute it is due. A reload
//! ([`Schedule::set_table`]) and SIGUSR2 ([`Schedule::toggle`]) apply at once. As in rclone,
//! SIGUSR2 lifts the limit until the next SIGUSR2, whatever the timetable says meanwhile; the
//! timetable keeps being followed underneath, and applies again when the limit comes back.
//!
//! The next change is computed in local minutes, so across a daylight-saving jump the time
//! announced may be an hour off; the switch itself follows the local clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::localtime::{self, LocalTime};
use super::rate::RateLimit;
use crate::config::timetable::{RateTable, format_rate};
use crate::journal::{Journal, RateInForce};

/// The timetable driving a [`RateLimit`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Schedule {
    limit: RateLimit,
    table: Arc<Mutex<RateTable>>,
    wake: Arc<Notify>,
}

impl Schedule {
    /// Follows `table` on `limit`, applying the rate in force now at once.
    pub fn new(table: RateTable, limit: RateLimit) -> Schedule {
        let s = Schedule {
            limit,
            table: Arc::new(Mutex::new(table)),
            wake: Arc::new(Notify::new()),
        };
        s.evaluate(SystemTime::now(), localtime::now());
        s
    }

    /// The limit this schedule drives.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// A new `max_rate` (SIGHUP): applies at once, to uploads already running too.
    pub fn set_table(&self, table: RateTable) {
        *self.lock() = table;
        self.evaluate(SystemTime::now(), localtime::now());
        self.wake.notify_one();
    }

    /// SIGUSR2: lifts the limit, or brings it back. Returns what applies now.
    pub fn toggle(&self) -> RateInForce {
        let bypass = !self.limit.is_bypassed();
        self.limit.set_bypass(bypass);
        let now = self.evaluate(SystemTime::now(), localtime::now());
        if bypass {
            tracing::info!(
                "SIGUSR2: bandwidth limit off until the next SIGUSR2 (max_rate says {} now)",
                format_rate(now.rate)
            );
        } else {
            tracing::info!(
                "SIGUSR2: bandwidth limit back on: {}",
                format_rate(now.rate)
            );
        }
        self.wake.notify_one();
        now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateTable> {
        match self.table.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sets the rate in force at `now` (local time `local`) and says what applies.
    pub fn evaluate(&self, now: SystemTime, local: Option<LocalTime>) -> RateInForce {
        let table = self.lock().clone();
        let (rate, next) = match local {
            Some(l) => {
                let f = table.at(l.minute_of_week());
                let next = f.next.map(|(minutes, rate)| {
                    let secs = u64::from(minutes) * 60 - u64::from(l.second);
                    // Whole seconds, so that the same change is announced identically each tick.
                    let base = now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| Duration::from_secs(d.as_secs()))
                        .unwrap_or_default();
                    (
                        SystemTime::UNIX_EPOCH + base + Duration::from_secs(secs),
                        rate,
                    )
                });
                (f.rate, next)
            }
            // No local time (cannot happen with glibc): keep the rate, announce nothing.
            None => (self.limit.rate(), None),
        };
        self.limit.set_rate(rate);
        RateInForce {
            rate,
            bypassed: self.limit.is_bypassed(),
            timetable: table.text().map(str::to_owned),
            next_change_at: next.map(|(at, _)| at),
            next_rate: next.map(|(_, r)| r),
        }
    }

    /// Follows the timetable until `stop`, recording each change in `journal` (if any).
    pub fn spawn(&self, journal: Option<Journal>, stop: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last: Option<RateInForce> = None;
            loop {
                let now = SystemTime::now();
                let current = this.evaluate(now, localtime::now());
                if last.as_ref() != Some(&current) {
                    if let Some(prev) = &last
                        && prev.rate != current.rate
                    {
                        tracing::info!(
                            "upload rate now {} (max_rate timetable){}",
                            format_rate(current.rate),
                            if current.bypassed {
                                "; lifted by SIGUSR2 until the next one"
                            } else {
                                ""
                            }
                        );
                    }
                    if let Some(j) = &journal {
                        let (j, c) = (j.clone(), current.clone());
                        match tokio::task::spawn_blocking(move || j.set_rate_in_force(&c)).await {
                            Ok(Err(e)) => tracing::warn!("cannot record the upload rate: {e}"),
                            Err(e) => tracing::warn!("cannot record the upload rate: {e}"),
                            Ok(Ok(())) => {}
                        }
                    }
                    last = Some(current);
                }
                // Just after the next whole second.
                let into = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or_default();
                let wait = Duration::from_nanos(1_000_000_000 - u64::from(into) + 5_000_000);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                    () = this.wake.notified() => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1024 * 1024;

    fn local(weekday: u32, hour: u32, minute: u32, second: u32) -> Option<LocalTime> {
        Some(LocalTime {
            weekday,
            hour,
            minute,
            second,
            utc_offset: 0,
        })
    }

    #[tokio::test]
    async fn the_rate_follows_the_local_clock_and_announces_the_next_change() {
        let table = RateTable::parse("08:00,2M 18:00,20M 23:00,off", 1024).unwrap();
        let limit = RateLimit::new(0);
        let s = Schedule::new(table, limit.clone());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at_759 = s.evaluate(t0, local(3, 7, 59, 30));
        assert_eq!(at_759.rate, 0);
        assert_eq!(at_759.next_rate, Some(2 * M));
        assert_eq!(at_759.next_change_at, Some(t0 + Duration::from_secs(30)));
        assert_eq!(limit.rate(), 0);
        let at_800 = s.evaluate(t0 + Duration::from_secs(30), local(3, 8, 0, 0));
        assert_eq!((at_800.rate, at_800.next_rate), (2 * M, Some(20 * M)));
        assert_eq!(limit.rate(), 2 * M);
        assert_eq!(
            at_800.timetable.as_deref(),
            Some("08:00,2M 18:00,20M 23:00,off")
        );
    }

    #[tokio::test]
    async fn sigusr2_lifts_the_limit_until_the_next_one_and_a_reload_applies_at_once() {
        let limit = RateLimit::new(0);
        let s = Schedule::new(RateTable::flat(M), limit.clone());
        assert_eq!(limit.rate(), M);
        assert!(s.toggle().bypassed);
        assert!(limit.is_unlimited());
        s.set_table(RateTable::flat(3 * M));
        assert!(limit.is_unlimited(), "still lifted after a reload");
        let back = s.toggle();
        assert!(!back.bypassed);
        assert_eq!(back.rate, 3 * M);
        assert_eq!(back.next_change_at, None);
        assert!(!limit.is_unlimited());
    }
}
