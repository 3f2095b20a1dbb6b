//! Units in the configuration: sizes (`"64 MiB"`, `"5MiB"`, `"1.5 GiB"`, integers as bytes),
//! rates (`"10 MiB"` or `"10 MiB/s"` per second, `"0"` = unlimited) and durations (`"30s"`,
//! `"10 min"`). Pure functions; the caller attaches the file position to the error.

use std::time::Duration;

/// Parses a size such as `"64 MiB"`, `"5MiB"`, `"1.5 GiB"` or `"67108864"` (bytes).
/// `KiB`/`MiB`/`GiB` are powers of 1024; `kB`/`MB`/`GB` are powers of 1000.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the size is empty".into());
    }
    if t.starts_with('-') {
        return Err(format!("`{t}` is negative"));
    }
    // A number then a unit; bytesize accepts the unit with or without a space.
    let starts_with_digit = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.');
    if !starts_with_digit {
        return Err(format!("`{t}` does not start with a number"));
    }
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("`{t}` is not a size (use a number and a unit: B, KiB, MiB, GiB)"))
}

/// Parses a rate in bytes per second: a size with an optional `/s` suffix; `"0"` = unlimited.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("/sec"))
        .or_else(|| t.strip_suffix("ps"))
        .unwrap_or(t);
    parse_size(t)
}

/// Parses a duration such as `"30s"`, `"10 min"`, `"1h 30m"`, `"500ms"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the duration is empty".into());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{t}` has no unit"));
    }
    // humantime wants the number and unit together ("10min"); accept "10 min" too.
    let joined = join_number_and_unit(t);
    humantime::parse_duration(&joined).map_err(|e| format!("`{t}` is not a duration ({e})"))
}

/// `"10 min 5 s"` → `"10min 5s"`: removes spaces between a number and the unit that follows it.
fn join_number_and_unit(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    let mut last_was_digit = false;
    while let Some(c) = chars.next() {
        if c == ' ' && last_was_digit {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if chars.peek().is_some_and(|n| n.is_ascii_alphabetic()) {
                continue;
            }
        }
        last_was_digit = c.is_ascii_digit();
        out.push(c);
    }
    out
}

/// Renders a byte count the way it is written in the config (`64 MiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes < size {
            continue;
        }
        if bytes % size == 0 {
            return format!("{} {name}", bytes / size);
        }
        if (u128::from(bytes) * 10) % u128::from(size) == 0 {
            return format!("{:.1} {name}", bytes as f64 / size as f64);
        }
    }
    // Written with decimal units (`6 MB`): shown the same way.
    const DECIMAL: [(&str, u64); 4] = [
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("kB", 1_000),
    ];
    for (name, size) in DECIMAL {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {name}", bytes / size);
        }
    }
    format!("{bytes} B")
}

/// Renders a duration the way it is written in the config (`10m`, `30s`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64 MiB"), Ok(64 * MIB));
        assert_eq!(parse_size("5MiB"), Ok(5 * MIB));
        assert_eq!(parse_size("1.5 GiB"), Ok(1536 * MIB));
        assert_eq!(parse_size("128 mib"), Ok(128 * MIB));
        assert_eq!(parse_size("67108864"), Ok(64 * MIB));
        assert_eq!(parse_size("1 MB"), Ok(1_000_000));
        assert_eq!(parse_size("64 KiB"), Ok(65536));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("").is_err());
        assert!(parse_size("-5 MiB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("64 MeB").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("10 MiB"), Ok(10 * MIB));
        assert_eq!(parse_rate("10 MiB/s"), Ok(10 * MIB));
        assert_eq!(parse_rate("10MiBps"), Ok(10 * MIB));
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10 min"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("10min"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1 h 30 m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10 lightyears").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(64 * MIB), "64 MiB");
        assert_eq!(format_size(1536 * MIB), "1.5 GiB");
        assert_eq!(format_size(1000), "1 kB");
        assert_eq!(format_size(6_000_000), "6 MB");
        assert_eq!(format_size(1001), "1001 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(1500), "1500 B");
        for n in [
            1000,
            6_000_000,
            1500,
            5 * MIB + 1,
            64 * MIB,
            2_000_000_000_000,
        ] {
            assert_eq!(parse_size(&format_size(n)).unwrap(), n, "round trip of {n}");
        }
        assert_eq!(format_size(5 * MIB + 1), "5242881 B");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    }
}
