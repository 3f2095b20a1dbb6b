//! Whether the journal accepts writes: a full disk or a read-only file system puts the daemon in
//! a visible degraded state instead of an error per attempt.
//!
//! Every failed write that is the storage's fault (full, read-only, I/O error) is noted here
//! through `Journal::err`; every committed write clears it. The state is logged on its own,
//! at most once per [`REMIND_EVERY`] (callers log such errors at `debug`), read by the metrics
//! (`ingestd_journal_writable`), the status page, `STATUS=`, and the watchdog (which keeps
//! going while reads work). `ingestd status`, another process, sees the same condition on the
//! file system itself ([`probe_dir`]).

use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, Instant, SystemTime};

use super::{Journal, JournalError};

/// While the journal cannot write, the degraded state is logged at most this often.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// Why the journal cannot write, as `status` and the page show it after `journal: cannot write`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteProblem {
    /// `No space left on device`, `Read-only file system`, …
    pub reason: String,
    /// The first failure of this spell.
    pub since: SystemTime,
}

impl WriteProblem {
    /// `journal: cannot write (No space left on device)`.
    pub fn summary(&self) -> String {
        format!("journal: cannot write ({})", self.reason)
    }
}

#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    problem: Option<WriteProblem>,
    failures: u64,
    logged_at: Option<Instant>,
}

/// The reason to show for a storage error, `None` for other errors (a constraint, a busy lock,
/// a row in another state: the caller's business).
pub fn storage_reason(e: &JournalError) -> Option<String> {
    match e {
        JournalError::DiskFull { .. } => Some("No space left on device".into()),
        JournalError::ReadOnly { .. } => Some("Read-only file system".into()),
        JournalError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure) =>
        {
            Some(format!("I/O error: {source}"))
        }
        _ => None,
    }
}

impl Journal {
    fn health(&self) -> std::sync::MutexGuard<'_, WriteHealth> {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes `e` if the storage caused it; logs the degraded state (once per [`REMIND_EVERY`]).
    pub(super) fn note_error(&self, e: &JournalError) {
        let Some(reason) = storage_reason(e) else {
            return;
        };
        let mut h = self.health();
        h.failures += 1;
        let first = h.problem.is_none();
        let problem = h.problem.get_or_insert_with(|| WriteProblem {
            reason: reason.clone(),
            since: SystemTime::now(),
        });
        problem.reason = reason;
        let due = h.logged_at.is_none_or(|t| t.elapsed() >= REMIND_EVERY);
        if first || due {
            h.logged_at = Some(Instant::now());
            let failures = h.failures;
            drop(h);
            if first {
                tracing::error!(
                    "{e}. Uploads and scans pause and resume on their own once the journal accepts writes (this is logged once a minute at most)"
                );
            } else {
                tracing::error!(
                    failed_writes = failures,
                    "the journal still cannot write: {e}"
                );
            }
        }
    }

    /// A write committed: the degraded state (if any) ends.
    pub(super) fn note_write_ok(&self) {
        let mut h = self.health();
        if let Some(p) = h.problem.take() {
            let failures = std::mem::take(&mut h.failures);
            h.logged_at = None;
            drop(h);
            let secs = SystemTime::now()
                .duration_since(p.since)
                .unwrap_or_default()
                .as_secs();
            tracing::info!(
                failed_writes = failures,
                "the journal accepts writes again after {secs} s ({}): uploads and scans resume",
                p.reason
            );
        }
    }

    /// Why the journal cannot write right now (`None` when the last write worked).
    pub fn write_problem(&self) -> Option<WriteProblem> {
        self.health().problem.clone()
    }
}

/// What `ingestd status` (another process, which never writes) can tell about the journal's
/// directory: a read-only mount or a full file system (less than `min_free` bytes available).
pub fn probe_dir(dir: &Path, min_free: u64) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    if st.f_flag & libc::ST_RDONLY != 0 {
        return Some("Read-only file system".into());
    }
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    (free < min_free).then(|| "No space left on device".into())
}
