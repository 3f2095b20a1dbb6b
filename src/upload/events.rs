//! What upload workers report as they go (bytes acknowledged, how uploads end, why requests are
//! retried), through the [`UploadEvents`] trait: the metrics layer above implements it
//! (`metrics::Counters`), so upload never depends on metrics.

/// Where a worker reports its events; `metrics::Counters` in the daemon, [`NoEvents`] elsewhere.
pub trait UploadEvents: Send + Sync + 'static {
    /// Bytes acknowledged by api.video.
    fn uploaded(&self, bytes: u64);
    fn outcome(&self, outcome: UploadOutcome);
    fn retry(&self, kind: RetryKind);
    /// Lanes (chunk requests of one file on their own connections) opened (+1) or closed (-1).
    fn lanes(&self, _delta: i64) {}
}

/// Reports nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl UploadEvents for NoEvents {
    fn uploaded(&self, _: u64) {}
    fn outcome(&self, _: UploadOutcome) {}
    fn retry(&self, _: RetryKind) {}
}

/// How an upload ended, for `ingestd_uploads_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Uploaded and committed as `done`.
    Done,
    /// Parked as `failed` (a permanent error).
    Failed,
    /// Given up after it started: the file changed or vanished.
    Abandoned,
    /// Not uploaded: found complete on api.video by its content hash (`upload::adopt`).
    Adopted,
}

impl UploadOutcome {
    pub const ALL: [UploadOutcome; 4] = [
        UploadOutcome::Done,
        UploadOutcome::Failed,
        UploadOutcome::Abandoned,
        UploadOutcome::Adopted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadOutcome::Done => "done",
            UploadOutcome::Failed => "failed",
            UploadOutcome::Abandoned => "abandoned",
            UploadOutcome::Adopted => "adopted",
        }
    }
}

/// Why a request is retried, for `ingestd_retries_total{class}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// Network error, timeout, 5xx.
    Transient,
    /// 429 (or 503 with retry-after).
    RateLimited,
    /// 401 on the upload token: the pool paused until the token changes.
    TokenRejected,
    /// A local problem (reading the file).
    Local,
}

impl RetryKind {
    pub const ALL: [RetryKind; 4] = [
        RetryKind::Transient,
        RetryKind::RateLimited,
        RetryKind::TokenRejected,
        RetryKind::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryKind::Transient => "transient",
            RetryKind::RateLimited => "rate_limited",
            RetryKind::TokenRejected => "token_rejected",
            RetryKind::Local => "local",
        }
    }
}
