//! Small helpers: api.video-style ids, ATOM timestamps, the wall clock in milliseconds.

use rand::Rng;
use rand::distr::Alphanumeric;
use time::OffsetDateTime;
use time::macros::format_description;

/// `prefix` + 22 characters `[0-9A-Za-z]` (`to…` tokens, `vi…` videos; PROTOCOL §3).
pub fn new_id(prefix: &str) -> String {
    let tail: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(22)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// An opaque random secret of `len` alphanumerics (access and refresh tokens).
pub fn random_secret(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// ATOM/RFC 3339 with a `+00:00` offset, e.g. `2020-12-02T10:13:19+00:00`.
pub fn atom(ms: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00+00:00".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_api_video_shape() {
        let id = new_id("to");
        assert_eq!(id.len(), 24);
        assert!(id.starts_with("to"));
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn atom_format() {
        assert_eq!(atom(1_606_903_999_123), "2020-12-02T10:13:19+00:00");
    }
}
