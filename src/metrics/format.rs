//! Small text formats shared by the status page, `/status.json` and the `status` command.

use std::time::SystemTime;

/// RFC 3339 UTC time, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::from(t);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// `1.5 GiB`-style size.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `3m 12s`-style duration, rounded to seconds.
pub fn duration_secs(secs: f64) -> String {
    // `as` from f64 saturates (NaN is 0, +inf is u64::MAX) and drops the fraction: whole seconds
    // are what is shown.
    #[allow(clippy::cast_possible_truncation)]
    let whole = secs.max(0.0) as u64;
    let d = std::time::Duration::from_secs(whole);
    humantime::format_duration(d).to_string()
}

/// ` (attempt N)`, or nothing for a wait that counted no attempt (a 429, a paused token).
pub(crate) fn attempt_suffix(attempts: u32) -> String {
    if attempts == 0 {
        String::new()
    } else {
        format!(" (attempt {attempts})")
    }
}

/// The row's last error as `slug: message` (`message` alone without a slug); `None` if there is
/// none.
pub(crate) fn last_error(row: &crate::journal::FileRow) -> Option<String> {
    let slug = row
        .last_error_slug
        .as_deref()
        .map(|s| format!("{s}: "))
        .unwrap_or_default();
    row.last_error.as_deref().map(|e| format!("{slug}{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(duration_secs(75.6), "1m 15s");
        assert_eq!(duration_secs(-1.0), "0s");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        assert_eq!(rfc3339(t), "1970-01-01T00:00:01Z");
    }
}
