//! `/metrics`: the OpenMetrics text built with the official `prometheus-client` crate from a
//! [`Snapshot`] (gauges, fresh on every scrape so that vanished roots disappear) and the
//! workers' [`Counters`] (shared, monotonic).
//!
//! Every name starts with `ingestd_`; see docs/OPERATIONS.md ("Metrics and status page").

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::counters::Counters;
use super::snapshot::Snapshot;

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RootModeLabels {
    root: String,
    mode: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RootLabel {
    root: String,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The exposition text for `snapshot` and `counters`.
pub fn encode(snapshot: &Snapshot, counters: &Counters) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("ingestd");

    let files = Family::<StateLabel, Gauge>::default();
    for c in &snapshot.files {
        files
            .get_or_create(&StateLabel { state: c.state })
            .set(int(c.files));
    }
    r.register("files", "Files in the journal, by state", files);

    let backlog = Gauge::<i64>::default();
    backlog.set(int(snapshot.backlog_bytes));
    r.register_with_unit(
        "backlog",
        "Bytes still to upload: sizes of settling, queued and uploading files minus the bytes acknowledged",
        Unit::Bytes,
        backlog,
    );

    let incomplete = Gauge::<i64>::default();
    incomplete.set(int(snapshot.files_incomplete));
    r.register(
        "files_incomplete",
        "Settled files not queued because their container is incomplete (a recorder still writing, or one that died); `ingestd status` says why",
        incomplete,
    );

    let oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    oldest.set(snapshot.oldest_pending_age_seconds.unwrap_or(0.0));
    r.register_with_unit(
        "oldest_pending_age",
        "Seconds since the longest-waiting queued or uploading file was queued (0 when none)",
        Unit::Seconds,
        oldest,
    );

    counters.register(&mut r);

    let writable = Gauge::<i64>::default();
    writable.set(i64::from(snapshot.journal_problem.is_none()));
    r.register(
        "journal_writable",
        "1 while the journal accepts writes, 0 while it cannot write (a full disk, a read-only file system): uploads and scans wait",
        writable,
    );

    let token = Family::<StateLabel, Gauge>::default();
    for s in ["unknown", "ok", "rejected", "api_key_rejected"] {
        token
            .get_or_create(&StateLabel { state: s })
            .set(i64::from(snapshot.token.state == s));
    }
    r.register(
        "token_state",
        "1 for the upload token's current state (unknown, ok, rejected: uploads paused; api_key_rejected: uploads paused until SIGHUP)",
        token,
    );

    let limit = Gauge::<i64>::default();
    let bypassed = snapshot.rate.bypassed;
    limit.set(if bypassed {
        0
    } else {
        int(snapshot.rate.bytes_per_second)
    });
    r.register(
        "upload_rate_limit_bytes_per_second",
        "The upload bandwidth limit in force ([upload] max_rate and its timetable); 0 = unlimited",
        limit,
    );
    let lifted = Gauge::<i64>::default();
    lifted.set(i64::from(bypassed));
    r.register(
        "upload_rate_limit_bypassed",
        "1 while SIGUSR2 has lifted the bandwidth limit (until the next SIGUSR2)",
        lifted,
    );
    if let (Some(at), Some(next)) = (
        snapshot.rate.next_change_unix,
        snapshot.rate.next_bytes_per_second,
    ) {
        let when = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        when.set(at);
        r.register(
            "upload_rate_limit_next_change_timestamp_seconds",
            "When the max_rate timetable next changes the limit (Unix time)",
            when,
        );
        let then = Gauge::<i64>::default();
        then.set(int(next));
        r.register(
            "upload_rate_limit_next_bytes_per_second",
            "The limit the max_rate timetable sets at its next change; 0 = unlimited",
            then,
        );
    }

    let healthy = Family::<RootModeLabels, Gauge>::default();
    let watches = Family::<RootLabel, Gauge>::default();
    let free = Family::<RootLabel, Gauge>::default();
    let size = Family::<RootLabel, Gauge>::default();
    for root in &snapshot.roots {
        healthy
            .get_or_create(&RootModeLabels {
                root: root.path.clone(),
                mode: root.mode.clone(),
            })
            .set(i64::from(root.healthy));
        let label = RootLabel {
            root: root.path.clone(),
        };
        watches.get_or_create(&label).set(int(root.watches));
        if let (Some(f), Some(s)) = (root.free_bytes, root.size_bytes) {
            free.get_or_create(&label).set(int(f));
            size.get_or_create(&label).set(int(s));
        }
    }
    r.register(
        "watch_root_healthy",
        "1 when the watch root can be watched, 0 when it is missing or unusable; mode is events (inotify) or poll",
        healthy,
    );
    r.register(
        "watch_root_watches",
        "inotify watches used by the root (one per watched directory)",
        watches,
    );
    r.register_with_unit(
        "root_free",
        "Bytes available to unprivileged users on the root's filesystem",
        Unit::Bytes,
        free,
    );
    r.register_with_unit(
        "root_size",
        "Size of the root's filesystem",
        Unit::Bytes,
        size,
    );

    let used = Gauge::<i64>::default();
    used.set(int(snapshot.inotify_watches));
    r.register("inotify_watches", "inotify watches used by all roots", used);
    if let Some(limit) = snapshot.inotify_watch_limit {
        let g = Gauge::<i64>::default();
        g.set(int(limit));
        r.register(
            "inotify_watches_limit",
            "The per-user inotify watch limit (/proc/sys/fs/inotify/max_user_watches)",
            g,
        );
    }

    let orphans = Gauge::<i64>::default();
    orphans.set(int(snapshot.orphans_total));
    r.register(
        "orphan_videos",
        "Abandoned videos and possible orphans not resolved yet (ingestd orphans)",
        orphans,
    );
    let j = &snapshot.journal;
    let bytes = Gauge::<i64>::default();
    bytes.set(int(j.bytes));
    r.register_with_unit(
        "journal_size",
        "Size of the journal file and its WAL",
        Unit::Bytes,
        bytes,
    );
    let rows = Gauge::<i64>::default();
    rows.set(int(j.rows));
    r.register("journal_rows", "Files in the journal (every state)", rows);
    let tombs = Gauge::<i64>::default();
    tombs.set(int(j.tombstones));
    r.register(
        "journal_tombstones",
        "Pruned files still in place, remembered so they are not uploaded again",
        tombs,
    );
    if let Some(at) = j.last_prune_unix {
        let g = Gauge::<i64>::default();
        g.set(int(at));
        r.register(
            "journal_last_prune_timestamp_seconds",
            "When the journal was last pruned (Unix time)",
            g,
        );
    }

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::{RootView, StateCount, TokenView};

    fn snapshot() -> Snapshot {
        Snapshot {
            generated_at: String::new(),
            journal_problem: None,
            token: TokenView {
                state: "rejected",
                reason: Some("401".into()),
            },
            files: vec![StateCount {
                state: "queued",
                files: 3,
            }],
            backlog_bytes: 1 << 40,
            files_incomplete: 1,
            oldest_pending_age_seconds: Some(12.5),
            uploaded_bytes_total: 0,
            roots: vec![RootView {
                path: "/srv/a \"b\"\\c".into(),
                mode: "poll".into(),
                health: "missing".into(),
                healthy: false,
                watches: 0,
                settling: 0,
                free_bytes: None,
                size_bytes: None,
            }],
            inotify_watches: 0,
            inotify_watch_limit: None,
            uploading: Vec::new(),
            pending: Vec::new(),
            recent: Vec::new(),
            rate: Default::default(),
            orphans_total: 0,
            orphans: Vec::new(),
            journal: Default::default(),
        }
    }

    #[test]
    fn the_rate_in_force_and_its_next_change() {
        let mut snap = snapshot();
        let text = encode(&snap, &Counters::default()).unwrap();
        assert!(text.contains("ingestd_upload_rate_limit_bytes_per_second 0\n"));
        assert!(!text.contains("next_change"), "no change announced: {text}");
        snap.rate = crate::metrics::snapshot::RateView {
            bytes_per_second: 2 << 20,
            next_change_unix: Some(1_800_000_000.0),
            next_bytes_per_second: Some(0),
            ..Default::default()
        };
        let text = encode(&snap, &Counters::default()).unwrap();
        for line in [
            "ingestd_upload_rate_limit_bytes_per_second 2097152",
            "ingestd_upload_rate_limit_bypassed 0",
            "ingestd_upload_rate_limit_next_change_timestamp_seconds 1800000000.0",
            "ingestd_upload_rate_limit_next_bytes_per_second 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        snap.rate.bypassed = true;
        let text = encode(&snap, &Counters::default()).unwrap();
        assert!(text.contains("ingestd_upload_rate_limit_bytes_per_second 0\n"));
        assert!(text.contains("ingestd_upload_rate_limit_bypassed 1\n"));
    }

    #[test]
    fn gauges_labels_and_escaping() {
        let text = encode(&snapshot(), &Counters::default()).unwrap();
        for line in [
            "ingestd_files{state=\"queued\"} 3",
            "ingestd_backlog_bytes 1099511627776",
            "ingestd_files_incomplete 1",
            "ingestd_oldest_pending_age_seconds 12.5",
            "ingestd_token_state{state=\"rejected\"} 1",
            "ingestd_token_state{state=\"ok\"} 0",
            "ingestd_watch_root_healthy{root=\"/srv/a \\\"b\\\"\\\\c\",mode=\"poll\"} 0",
            "# UNIT ingestd_backlog_bytes bytes",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // A root whose filesystem cannot be read has no free-space sample, and no limit is
        // exported when /proc does not tell it.
        assert!(!text.contains("ingestd_root_free_bytes{"), "{text}");
        assert!(!text.contains("ingestd_inotify_watches_limit"), "{text}");
    }

    #[test]
    fn orphans_and_journal_gauges() {
        let mut s = snapshot();
        s.orphans_total = 2;
        s.journal.bytes = 4096;
        s.journal.rows = 3;
        s.journal.last_prune_unix = Some(1_700_000_000);
        let text = encode(&s, &Counters::default()).unwrap();
        assert!(text.contains("ingestd_orphan_videos 2"), "{text}");
        assert!(text.contains("ingestd_journal_size_bytes 4096"), "{text}");
        assert!(text.contains("ingestd_journal_rows 3"), "{text}");
        assert!(
            text.contains("ingestd_journal_last_prune_timestamp_seconds 1700000000"),
            "{text}"
        );
    }

    #[test]
    fn a_journal_that_cannot_write_and_dropped_log_lines_are_exported() {
        let text = encode(&snapshot(), &Counters::default()).unwrap();
        assert!(
            text.lines().any(|l| l == "ingestd_journal_writable 1"),
            "{text}"
        );
        crate::metrics::counters::log_write_failed();
        let mut s = snapshot();
        s.journal_problem = Some("journal: cannot write (No space left on device)".into());
        let text = encode(&s, &Counters::default()).unwrap();
        assert!(
            text.lines().any(|l| l == "ingestd_journal_writable 0"),
            "{text}"
        );
        let dropped = text
            .lines()
            .find_map(|l| l.strip_prefix("ingestd_log_write_errors_total "))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(dropped.is_some_and(|n| n >= 1), "{text}");
    }
}
