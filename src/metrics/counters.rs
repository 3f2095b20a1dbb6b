//! The counters the upload workers increment (bytes uploaded, uploads by outcome, retries by
//! class), and the process-wide count of log lines that could not be written
//! ([`log_write_failed`]). Everything else the metrics show is read from the journal and the
//! running parts at scrape time. Cheap to clone; clones share the same counters.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

pub use crate::upload::events::{RetryKind, UploadOutcome};

/// Log lines dropped because stderr failed (full disk, closed pipe) or stalled (the log queue
/// was full): process-wide, since the log writer lives below every other part.
static LOG_WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts one log line that could not be written (`ingestd_log_write_errors_total`).
pub fn log_write_failed() {
    LOG_WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// Log lines dropped so far.
pub fn log_write_errors() -> u64 {
    LOG_WRITE_ERRORS.load(Ordering::Relaxed)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

/// The workers' counters.
#[derive(Debug, Clone)]
pub struct Counters {
    uploaded_bytes: Counter,
    uploads: Family<OutcomeLabel, Counter>,
    retries: Family<ClassLabel, Counter>,
    lanes: Gauge,
}

impl Default for Counters {
    fn default() -> Self {
        let c = Counters {
            uploaded_bytes: Counter::default(),
            uploads: Family::default(),
            retries: Family::default(),
            lanes: Gauge::default(),
        };
        // Every label value is exported from the start (0), so rate() and alerts see them.
        for o in UploadOutcome::ALL {
            c.uploads
                .get_or_create(&OutcomeLabel {
                    outcome: o.as_str(),
                })
                .inc_by(0);
        }
        for k in RetryKind::ALL {
            c.retries
                .get_or_create(&ClassLabel { class: k.as_str() })
                .inc_by(0);
        }
        c
    }
}

/// The workers report through [`crate::upload::UploadEvents`] (upload sits below metrics).
impl crate::upload::UploadEvents for Counters {
    fn uploaded(&self, bytes: u64) {
        Counters::uploaded(self, bytes);
    }

    fn outcome(&self, outcome: UploadOutcome) {
        Counters::outcome(self, outcome);
    }

    fn lanes(&self, delta: i64) {
        self.lanes.inc_by(delta);
    }

    fn retry(&self, kind: RetryKind) {
        Counters::retry(self, kind);
    }
}

impl Counters {
    /// Bytes acknowledged by api.video.
    pub fn uploaded(&self, bytes: u64) {
        self.uploaded_bytes.inc_by(bytes);
    }

    pub fn outcome(&self, outcome: UploadOutcome) {
        self.uploads
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn retry(&self, kind: RetryKind) {
        self.retries
            .get_or_create(&ClassLabel {
                class: kind.as_str(),
            })
            .inc();
    }

    /// Total bytes acknowledged so far (for the status page).
    pub fn uploaded_total(&self) -> u64 {
        self.uploaded_bytes.get()
    }

    /// Registers the counters (shared, not copied) into `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "uploaded",
            "Bytes acknowledged by api.video since the daemon started",
            Unit::Bytes,
            self.uploaded_bytes.clone(),
        );
        registry.register(
            "uploads",
            "Uploads that ended, by outcome (done, failed, abandoned because the file changed or vanished, adopted: found on api.video by its content hash, not uploaded)",
            self.uploads.clone(),
        );
        registry.register(
            "retries",
            "Upload requests scheduled for a retry, by class (transient, rate_limited, token_rejected, local)",
            self.retries.clone(),
        );
        registry.register(
            "upload_lanes",
            "Chunk requests in flight on lanes (upload.lanes_per_file > 1), each on its own connection",
            self.lanes.clone(),
        );
        let log_errors: Counter = Counter::default();
        log_errors.inc_by(log_write_errors());
        registry.register(
            "log_write_errors",
            "Log lines dropped because stderr could not take them (write error, closed pipe, or a reader too slow)",
            log_errors,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counts_and_every_label_is_exported() {
        let c = Counters::default();
        let w = c.clone();
        w.uploaded(10);
        w.outcome(UploadOutcome::Done);
        w.retry(RetryKind::RateLimited);
        let mut r = Registry::with_prefix("ingestd");
        c.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains("ingestd_uploaded_bytes_total 10"), "{text}");
        assert!(
            text.contains("ingestd_uploads_total{outcome=\"done\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ingestd_uploads_total{outcome=\"abandoned\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("ingestd_retries_total{class=\"rate_limited\"} 1"),
            "{text}"
        );
        assert_eq!(c.uploaded_total(), 10);
    }
}
