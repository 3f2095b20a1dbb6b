//! The SQLite journal: the only owner of the database and the truth about every file.
//!
//! One row per file (its identity, state and upload progress), a table of abandoned and
//! possibly-orphaned `videoId`s, and a small key-value table for daemon-wide state such as the
//! upload token's verdict. Every transition is one SQLite transaction (WAL, `synchronous=FULL`).
//!
//! - `db`: opening, pragmas, migrations on `PRAGMA user_version`, error classification.
//! - `ingest`: the watcher side ([`crate::watch::Sink`]: `seen`, `stable`, `gone`).
//! - `upload`: the upload side (claim, progress commits, retry, done, failed).
//! - `container`: files held or failed because their container is incomplete, and the
//!   operator's `retry --anyway` waiver.
//! - `query`: what `status` and `explain` read.
//! - `kv`: daemon-wide state (token verdict, heartbeat) shared with other processes.
//! - [`health`]: whether writes work (a full disk or read-only journal is a visible state).
//!
//! [`Journal`] is `Clone + Send + Sync` (a shared connection behind a mutex); its methods are
//! synchronous and short, so async callers use `tokio::task::spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

mod adopt;
mod container;
mod db;
mod error;
pub mod health;
mod ingest;
mod kv;
mod live;
mod orphans;
mod owner;
mod presence;
mod query;
mod ranges;
mod retention;
mod row;
mod schema;
mod upload;

#[cfg(test)]
mod tests_health;
#[cfg(test)]
mod tests_idle;
#[cfg(test)]
mod tests_ingest;
#[cfg(test)]
mod tests_model;
#[cfg(test)]
mod tests_query;
#[cfg(test)]
mod tests_retention;
#[cfg(test)]
mod tests_upload;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::JournalError;
pub use health::WriteProblem;
pub use kv::{DaemonInfo, RateInForce, TokenState, TokenStatus};
pub use query::{Backlog, Counts, FileNote, NoteKind, Summary};
pub use retention::{JournalStats, PruneOutcome};
pub use row::{FileRow, from_unix_ms, to_unix_ms};
pub use upload::{RetryOutcome, RetrySelection};

/// What identifies a file's content on disk. A rename keeps `dev`, `ino`, `size`, `mtime_ns` (but
/// changes `ctime_ns`), so rename detection matches on the first four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileIdentity {
    /// Whether `other` is the same content as far as a rename can tell (dev, ino, size, mtime).
    pub fn same_content(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && self.size == other.size
            && self.mtime_ns == other.mtime_ns
    }

    /// The identity of a file from its metadata (`symlink_metadata` or `metadata`).
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
        }
    }
}

/// A file the watcher saw under a root, with its identity at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The watch root (as configured) the file was found under.
    pub root: PathBuf,
    /// The file's absolute path.
    pub path: PathBuf,
    pub identity: FileIdentity,
}

/// A file's state in the journal (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileState {
    Settling,
    Queued,
    Uploading,
    Done,
    Failed,
    Gone,
}

impl FileState {
    pub const ALL: [FileState; 6] = [
        FileState::Settling,
        FileState::Queued,
        FileState::Uploading,
        FileState::Done,
        FileState::Failed,
        FileState::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Settling => "settling",
            FileState::Queued => "queued",
            FileState::Uploading => "uploading",
            FileState::Done => "done",
            FileState::Failed => "failed",
            FileState::Gone => "gone",
        }
    }

    /// The inverse of [`FileState::as_str`].
    pub fn parse(s: &str) -> Option<FileState> {
        FileState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handle on the journal database. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<rusqlite::Connection>,
    path: PathBuf,
    /// This process's identity, stored in `claimed_by` of the rows it uploads.
    owner: String,
    /// Signalled after a commit of this process that may have made a row claimable (queued, or
    /// its retry time moved): idle upload workers wait on it. See [`Journal::work_signal`].
    work: Arc<tokio::sync::Notify>,
    /// Whether the last write worked ([`health`]).
    health: Mutex<health::WriteHealth>,
    /// `(dev, ino)` of the file opened, to notice it deleted or replaced ([`presence`]).
    file_id: Option<(u64, u64)>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The connection. A poisoned mutex is recovered: a panic mid-transaction rolled it back.
    fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What idle upload workers wait on: notified (`notify_waiters`) after every commit of this
    /// handle's connection that queued a row or changed when one is due (the watcher queueing
    /// settled files, a scheduled retry, a requeue, `retry`). Commits of other processes are not
    /// seen here: compare [`Journal::data_version`] for those.
    pub fn work_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.work.clone()
    }

    /// Wakes the waiters of [`Journal::work_signal`].
    fn work_changed(&self) {
        self.inner.work.notify_waiters();
    }

    /// Maps a SQLite error to a [`JournalError`] naming this journal's file, noting a storage
    /// failure (full, read-only) in [`health`].
    fn err(&self, e: rusqlite::Error) -> JournalError {
        let e = JournalError::from_sqlite(&self.inner.path, e);
        self.note_error(&e);
        e
    }
}
