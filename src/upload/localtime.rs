//! Local wall-clock time for the bandwidth timetable, through libc's `localtime_r`.
//!
//! Why libc: the `time` crate refuses `UtcOffset::current_local_offset` once the process has
//! threads (reading `TZ` races with a `setenv` in another thread), and a TZif reader of our own
//! would also need POSIX `TZ` rules for dates past the file's last transition. glibc's
//! `localtime_r` already does both, under its own lock. The remaining hazard is the one the
//! `time` crate fears: `tzset` reads the `TZ` variable with `getenv`, which is unsafe only if
//! another thread calls `setenv` at the same moment; ingestd never changes its environment after
//! start (edition 2024 makes `std::env::set_var` an `unsafe` call, and there is none in the
//! crate). [`now`] calls `tzset` first so that a changed `/etc/localtime` (`timedatectl
//! set-timezone`) or daylight-saving rule is picked up without a restart; glibc re-reads the file
//! only when it changed. `TZ` in the environment is honoured (the tests and benches set it).

use std::time::SystemTime;

unsafe extern "C" {
    /// POSIX `tzset(3)` (not exported by the `libc` crate).
    fn tzset();
}

/// A moment in local time, as the timetable needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Seconds east of UTC.
    pub utc_offset: i64,
}

impl LocalTime {
    /// Minutes since Sunday 00:00.
    pub fn minute_of_week(&self) -> u32 {
        (self.weekday * 24 + self.hour) * 60 + self.minute
    }
}

/// The local time at `at` (None if libc cannot convert it).
pub fn at(at: SystemTime) -> Option<LocalTime> {
    let secs = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_secs()).ok()?,
    };
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain data, zero is a valid value; `localtime_r` writes into it and returns
    // a pointer to it or null; `tzset` has no arguments (see the module doc on `getenv`).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        tzset();
        !libc::localtime_r(&t, &mut tm).is_null()
    };
    if !ok {
        return None;
    }
    Some(LocalTime {
        weekday: u32::try_from(tm.tm_wday).ok()? % 7,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        // A leap second (60) counts as 59.
        second: u32::try_from(tm.tm_sec).ok()?.min(59),
        utc_offset: gmtoff(tm.tm_gmtoff),
    })
}

/// `tm_gmtoff` is a C `long`: 32-bit on armhf and i386, 64-bit elsewhere (the identity).
#[allow(clippy::useless_conversion)]
fn gmtoff(v: libc::c_long) -> i64 {
    i64::from(v)
}

/// The local time now.
pub fn now() -> Option<LocalTime> {
    at(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn converts_a_known_instant_consistently_with_its_offset() {
        // 2026-12-04 13:58:20 UTC, a Friday.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_392_700);
        let l = at(t).unwrap();
        let local = 1_796_392_700 + l.utc_offset;
        let days = local.div_euclid(86_400);
        let secs = u32::try_from(local.rem_euclid(86_400)).unwrap();
        // 1970-01-01 was a Thursday (4).
        assert_eq!(i64::from(l.weekday), (days + 4).rem_euclid(7));
        assert_eq!(l.hour, secs / 3600);
        assert_eq!(l.minute, secs / 60 % 60);
        assert_eq!(l.second, secs % 60);
    }
}
