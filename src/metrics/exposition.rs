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

    let token = Family::<StateLabel, Gauge>::default();
    for s in ["unknown", "ok", "rejected"] {
        token
            .get_or_create(&StateLabel { state: s })
            .set(i64::from(snapshot.token.state == s));
    }
    r.register(
        "token_state",
        "1 for the upload token's current state (unknown, ok, rejected: uploads paused)",
        token,
    );

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
        }
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
}
