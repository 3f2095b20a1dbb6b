//! One read of everything the metrics and the status page show: the journal (counts, backlog,
//! unfinished and recent rows), the token gate, the board of uploads in flight, the watch roots
//! and the kernel (free space, inotify limit). Taken off the async runtime on every request.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::counters::Counters;
use super::format::rfc3339;
use super::reason::reason;
use super::sys;
use crate::journal::{FileRow, FileState, Journal, JournalError};
use crate::upload::board::Board;
use crate::upload::token::{TokenGate, TokenState};
use crate::watch::{Health, RootStatus};

/// How many unfinished and recent rows the status page lists.
pub const PAGE_ROWS: usize = 100;
/// How many completions the status page lists.
pub const RECENT_ROWS: usize = 20;

/// The running parts the metrics and the status page read.
#[derive(Clone)]
pub struct Sources {
    pub journal: Journal,
    pub gate: TokenGate,
    pub board: Board,
    pub counters: Counters,
    /// Per-root watch status; the watcher is replaced on reload, so this is asked each time.
    pub roots: Arc<dyn Fn() -> Vec<RootStatus> + Send + Sync>,
}

/// Everything shown, as served by `/status.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub generated_at: String,
    pub token: TokenView,
    /// `journal: cannot write (No space left on device)` while the journal refuses writes.
    pub journal_problem: Option<String>,
    pub files: Vec<StateCount>,
    pub backlog_bytes: u64,
    /// Settled files held because their container is incomplete (`ingestd_files_incomplete`).
    pub files_incomplete: u64,
    /// Seconds since the longest-waiting queued or uploading file was queued.
    pub oldest_pending_age_seconds: Option<f64>,
    pub uploaded_bytes_total: u64,
    pub roots: Vec<RootView>,
    pub inotify_watches: u64,
    pub inotify_watch_limit: Option<u64>,
    pub uploading: Vec<InFlightView>,
    /// Failed, uploading, queued and settling files (at most [`PAGE_ROWS`]); empty for `/metrics`.
    pub pending: Vec<PendingView>,
    /// The latest completions (at most [`RECENT_ROWS`]); empty for `/metrics`.
    pub recent: Vec<DoneView>,
    /// `[upload] max_rate` in force (timetable, SIGUSR2).
    pub rate: RateView,
    /// Unresolved abandoned videos and possible orphans (`ingestd orphans`).
    pub orphans_total: u64,
    /// Those notes (at most [`PAGE_ROWS`]); empty for `/metrics`.
    pub orphans: Vec<OrphanView>,
    pub journal: JournalView,
}

/// One video a file left behind (`ingestd orphans` resolves and deletes it).
#[derive(Debug, Clone, Serialize)]
pub struct OrphanView {
    pub file_id: i64,
    pub path: String,
    /// `abandoned` or `orphan`.
    pub kind: &'static str,
    pub video_id: Option<String>,
    pub reason: String,
    pub at: String,
}

/// The journal's size, rows and last prune.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JournalView {
    /// Database file plus WAL.
    pub bytes: u64,
    pub rows: u64,
    pub tombstones: u64,
    pub last_prune_at: Option<String>,
    /// Unix seconds of the last prune (for the metric).
    pub last_prune_unix: Option<u64>,
    pub last_prune_rows: Option<u64>,
}

/// The upload rate in force, as the schedule last recorded it in the journal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RateView {
    /// What `max_rate` asks for now, bytes/s; 0 = unlimited.
    pub bytes_per_second: u64,
    /// SIGUSR2 lifted the limit.
    pub bypassed: bool,
    pub timetable: Option<String>,
    /// RFC 3339, and as a Unix timestamp for the metric.
    pub next_change_at: Option<String>,
    pub next_change_unix: Option<f64>,
    pub next_bytes_per_second: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    /// `unknown`, `ok` or `rejected`.
    pub state: &'static str,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateCount {
    pub state: &'static str,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RootView {
    pub path: String,
    /// `events` or `poll`.
    pub mode: String,
    /// `ok`, `missing` or `error: …`.
    pub health: String,
    pub healthy: bool,
    pub watches: u64,
    pub settling: u64,
    pub free_bytes: Option<u64>,
    pub size_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InFlightView {
    pub id: i64,
    pub path: String,
    pub size: u64,
    pub sent: u64,
    pub percent: f64,
    pub rate_bytes_per_sec: f64,
    /// Chunk requests in flight for it (lanes).
    pub lanes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    pub id: i64,
    pub path: String,
    pub state: &'static str,
    pub size: u64,
    pub bytes_uploaded: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DoneView {
    pub id: i64,
    pub path: String,
    pub video_id: String,
    pub size: u64,
    pub done_at: Option<String>,
}

/// Whether the rows for the status page are read too (not needed for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Metrics,
    Page,
}

fn lossy(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Sources {
    /// Reads everything; blocking (SQLite, statvfs): call from `spawn_blocking`.
    pub fn snapshot(&self, detail: Detail) -> Result<Snapshot, JournalError> {
        let now = SystemTime::now();
        let counts = self.journal.counts()?;
        let backlog = self.journal.backlog()?;
        let (unfinished, recent) = match detail {
            Detail::Metrics => (Vec::new(), Vec::new()),
            Detail::Page => (
                self.journal.unfinished(PAGE_ROWS)?,
                self.journal.recent_done(RECENT_ROWS)?,
            ),
        };
        let notes = self.journal.notes(None)?;
        let orphans = match detail {
            Detail::Metrics => Vec::new(),
            Detail::Page => notes
                .iter()
                .take(PAGE_ROWS)
                .map(|n| -> Result<OrphanView, JournalError> {
                    let path = self
                        .journal
                        .get(n.file_id)?
                        .map(|r| lossy(&r.path))
                        .unwrap_or_default();
                    Ok(OrphanView {
                        file_id: n.file_id,
                        path,
                        kind: n.kind.as_str(),
                        video_id: n.video_id.clone(),
                        reason: n.reason.clone(),
                        at: rfc3339(n.at),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let stats = self.journal.stats()?;
        let journal = JournalView {
            bytes: stats.bytes,
            rows: stats.rows,
            tombstones: stats.tombstones,
            last_prune_at: stats.last_prune.map(|(at, _)| rfc3339(at)),
            last_prune_unix: stats.last_prune.map(|(at, _)| {
                at.duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
            }),
            last_prune_rows: stats.last_prune.map(|(_, o)| o.rows),
        };
        let token = match self.gate.state() {
            TokenState::Rejected { reason } => TokenView {
                state: "rejected",
                reason: Some(scrub(&reason, self.gate.current().expose())),
            },
            TokenState::ApiKeyRejected { reason } => TokenView {
                state: "api_key_rejected",
                reason: Some(scrub(&reason, self.gate.current().expose())),
            },
            s => TokenView {
                state: s.as_str(),
                reason: None,
            },
        };
        let rate = self
            .journal
            .rate_in_force()?
            .map(|r| RateView {
                bytes_per_second: r.rate,
                bypassed: r.bypassed,
                timetable: r.timetable,
                next_change_at: r.next_change_at.map(rfc3339),
                next_change_unix: r.next_change_at.and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs_f64())
                }),
                next_bytes_per_second: r.next_rate,
            })
            .unwrap_or_default();
        let paused = matches!(token.state, "rejected" | "api_key_rejected");
        let roots = (self.roots)();
        let inotify_watches = roots.iter().map(|r| r.watches as u64).sum();
        let roots = roots.iter().map(root_view).collect();
        let uploading = self
            .board
            .snapshot()
            .into_iter()
            .map(|f| InFlightView {
                id: f.id,
                path: lossy(&f.path),
                size: f.total,
                sent: f.done,
                percent: f.done as f64 * 100.0 / f.total.max(1) as f64,
                rate_bytes_per_sec: f.rate,
                lanes: f.lanes,
            })
            .collect();
        Ok(Snapshot {
            generated_at: rfc3339(now),
            token,
            journal_problem: self.journal.write_problem().map(|p| p.summary()),
            files: counts
                .iter()
                .map(|(s, n)| StateCount {
                    state: s.as_str(),
                    files: n,
                })
                .collect(),
            backlog_bytes: backlog.bytes,
            files_incomplete: self.journal.count_incomplete()?,
            oldest_pending_age_seconds: backlog
                .oldest_pending_at
                .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64()),
            uploaded_bytes_total: self.counters.uploaded_total(),
            roots,
            inotify_watches,
            inotify_watch_limit: sys::inotify_watch_limit(),
            uploading,
            pending: unfinished
                .iter()
                .map(|r| pending_view(r, paused, now))
                .collect(),
            recent: recent.iter().map(done_view).collect(),
            rate,
            orphans_total: notes.len() as u64,
            orphans,
            journal,
        })
    }
}

/// Never show a token, even if an error text were to quote it.
fn scrub(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, "[redacted]")
    }
}

fn root_view(r: &RootStatus) -> RootView {
    let space = sys::space(&r.path).ok();
    RootView {
        path: lossy(&r.path),
        mode: r.mode.to_string(),
        health: r.health.to_string(),
        healthy: r.health == Health::Ok,
        watches: r.watches as u64,
        settling: r.settling as u64,
        free_bytes: space.map(|s| s.free),
        size_bytes: space.map(|s| s.size),
    }
}

fn pending_view(r: &FileRow, paused: bool, now: SystemTime) -> PendingView {
    PendingView {
        id: r.id,
        path: lossy(&r.path),
        state: r.state.as_str(),
        size: r.identity.size,
        bytes_uploaded: r.bytes_uploaded,
        reason: reason(r, paused && r.state != FileState::Failed, now),
    }
}

fn done_view(r: &FileRow) -> DoneView {
    DoneView {
        id: r.id,
        path: lossy(&r.path),
        video_id: r.video_id.clone().unwrap_or_default(),
        size: r.identity.size,
        done_at: r.done_at.map(rfc3339),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_token() {
        assert_eq!(
            scrub("401 for to1234 here", "to1234"),
            "401 for [redacted] here"
        );
        assert_eq!(scrub("nothing", ""), "nothing");
    }
}
