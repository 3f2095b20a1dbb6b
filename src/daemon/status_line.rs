//! The one-line `STATUS=` text systemd shows: "2 uploading, 14 queued, oldest 3 min".

use std::time::Duration;

/// What the status line summarises (read from the journal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub uploading: u64,
    pub queued: u64,
    pub settling: u64,
    pub failed: u64,
    /// How long the oldest queued (or uploading) file has been waiting.
    pub oldest: Option<Duration>,
    /// The upload token was rejected: uploads are paused.
    pub token_rejected: bool,
    /// `journal: cannot write (No space left on device)` while the journal refuses writes.
    pub journal_problem: Option<String>,
}

/// E.g. `2 uploading, 14 queued, oldest 3 min`, `idle`, `idle, 1 failed`,
/// `paused (upload token rejected): 0 uploading, 14 queued, oldest 2 h`,
/// `degraded (journal: cannot write (No space left on device)): 0 uploading, 3 queued`.
pub fn status_line(c: &StatusCounts) -> String {
    let mut parts = Vec::new();
    if c.uploading == 0 && c.queued == 0 {
        parts.push("idle".to_owned());
    } else {
        parts.push(format!("{} uploading", c.uploading));
        parts.push(format!("{} queued", c.queued));
        if let Some(age) = c.oldest {
            parts.push(format!("oldest {}", format_age(age)));
        }
    }
    if c.settling > 0 {
        parts.push(format!("{} settling", c.settling));
    }
    if c.failed > 0 {
        parts.push(format!("{} failed", c.failed));
    }
    let line = parts.join(", ");
    let line = if c.token_rejected {
        format!("paused (upload token rejected): {line}")
    } else {
        line
    };
    match &c.journal_problem {
        Some(p) => format!("degraded ({p}): {line}"),
        None => line,
    }
}

/// A coarse age: `42 s`, `3 min`, `5 h`, `2 d` (rounded down).
pub fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min", s / 60),
        3_600..172_800 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_from_the_issue() {
        let c = StatusCounts {
            uploading: 2,
            queued: 14,
            oldest: Some(Duration::from_secs(3 * 60 + 20)),
            ..Default::default()
        };
        assert_eq!(status_line(&c), "2 uploading, 14 queued, oldest 3 min");
    }

    #[test]
    fn idle_settling_failed_and_paused() {
        assert_eq!(status_line(&StatusCounts::default()), "idle");
        let c = StatusCounts {
            settling: 3,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(status_line(&c), "idle, 3 settling, 1 failed");
        let c = StatusCounts {
            queued: 14,
            oldest: Some(Duration::from_secs(7_300)),
            token_rejected: true,
            ..Default::default()
        };
        assert_eq!(
            status_line(&c),
            "paused (upload token rejected): 0 uploading, 14 queued, oldest 2 h"
        );
    }

    #[test]
    fn a_journal_that_cannot_write_is_named_first() {
        let c = StatusCounts {
            queued: 3,
            journal_problem: Some("journal: cannot write (No space left on device)".into()),
            ..Default::default()
        };
        assert_eq!(
            status_line(&c),
            "degraded (journal: cannot write (No space left on device)): 0 uploading, 3 queued"
        );
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(Duration::from_secs(0)), "0 s");
        assert_eq!(format_age(Duration::from_secs(59)), "59 s");
        assert_eq!(format_age(Duration::from_secs(60)), "1 min");
        assert_eq!(format_age(Duration::from_secs(3_599)), "59 min");
        assert_eq!(format_age(Duration::from_secs(3_600)), "1 h");
        assert_eq!(format_age(Duration::from_secs(47 * 3_600)), "47 h");
        assert_eq!(format_age(Duration::from_secs(3 * 86_400)), "3 d");
    }
}
