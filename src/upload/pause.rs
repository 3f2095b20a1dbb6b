//! A worker's pause while the journal fails (a full disk, a read-only file system): it backs off
//! (1 s, doubling up to [`JOURNAL_PAUSE_MAX`]) and resumes on its own when the journal answers,
//! never spinning and never ending. Storage failures are logged by the journal itself
//! (`journal::health`, once a minute at most), so a pause logs them at `debug` only.

use crate::escape::Show as _;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::worker::WorkerError;

/// A worker's back-off while the journal fails: 1 s, doubling up to [`JOURNAL_PAUSE_MAX`].
/// Storage failures (full, read-only) are logged by the journal itself, once a minute at most;
/// other errors here, at most once per pause.
#[derive(Debug, Default)]
pub struct JournalPause {
    failures: u32,
}

/// The longest a worker waits before trying a failing journal again.
pub const JOURNAL_PAUSE_MAX: Duration = Duration::from_secs(30);

impl JournalPause {
    /// Waits before the next attempt; false when the worker must stop (retired).
    pub async fn wait(
        &mut self,
        n: usize,
        path: Option<&std::path::Path>,
        e: &WorkerError,
        retire: &CancellationToken,
    ) -> bool {
        let delay = Duration::from_secs(1u64 << self.failures.min(5)).min(JOURNAL_PAUSE_MAX);
        self.failures = self.failures.saturating_add(1);
        let storage = matches!(e, WorkerError::Journal(je) if crate::journal::health::storage_reason(je).is_some());
        let path = path.map(|p| p.shown().to_string()).unwrap_or_default();
        if storage {
            tracing::debug!(
                worker = n,
                path,
                "{e}; trying again in {} s",
                delay.as_secs()
            );
        } else {
            tracing::error!(
                worker = n,
                path,
                "{e}; trying again in {} s",
                delay.as_secs()
            );
        }
        tokio::select! {
            _ = retire.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// The journal answered: the next failure starts over at 1 s.
    pub fn ok(&mut self) {
        self.failures = 0;
    }
}
