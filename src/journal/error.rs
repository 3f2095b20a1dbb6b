//! [`JournalError`]: every error names the journal file and says what to do. The journal is never
//! deleted or rewritten to get past an error.

use crate::escape::Show as _;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use super::FileState;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// `status`/`explain`/`retry` before the daemon ever ran.
    #[error("no journal at {} yet: ingestd has not run with this config", path.shown())]
    Missing { path: PathBuf },

    #[error(
        "{}: journal schema version {found} is newer than this ingestd understands (up to {known}); \
         install the newer ingestd that wrote it (the journal was left untouched)",
        path.shown()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(
        "{}: journal schema version {found} is older than this ingestd ({known}); \
         run `ingestd run` once to upgrade it",
        path.shown()
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error(
        "{}: not an ingestd journal, or corrupt ({detail}); nothing was changed. Move it aside \
         (`mv {} {}.broken`) to start a new journal — files already uploaded would then be \
         uploaded again — or restore it from a backup",
        path.shown(), path.shown(), path.shown()
    )]
    Corrupt { path: PathBuf, detail: String },

    /// An existing file that is not (or no longer) an ingestd journal: emptied to 0 bytes, an
    /// empty SQLite database, or another program's database. Starting afresh from it would
    /// upload every file in the roots again, so it is refused (exit 78).
    #[error(
        "{}: {detail}: not an ingestd journal; nothing was changed. Starting a new journal \
         uploads every file in the watch roots again. To start afresh on purpose, remove it: `rm {} {}-wal {}-shm`; otherwise restore it from a backup",
        path.shown(), path.shown(), path.shown(), path.shown()
    )]
    NotAJournal { path: PathBuf, detail: String },

    /// The journal file was deleted, replaced or emptied while this process had it open: what
    /// it records from now on would be lost. The daemon stops (exit 1) so that its restart
    /// starts from what is on disk (see `journal::presence`).
    #[error(
        "{}: the journal {detail} while ingestd was running: stopping, nothing more is recorded \
         in the lost file. On restart a deleted journal is created anew (with an API key, files \
         already on api.video are found by their content hash and not uploaded again); an \
         emptied one is refused until it is removed or restored",
        path.shown()
    )]
    Lost { path: PathBuf, detail: String },

    #[error(
        "{}: cannot write the journal: the file or its filesystem is read-only ({detail}); make \
         the file, its `-wal` and `-shm` files if present, and its directory writable by the user \
         running ingestd",
        path.shown()
    )]
    ReadOnly { path: PathBuf, detail: String },

    #[error(
        "{}: the disk holding the journal is full ({detail}); free some space — the last change \
         was not recorded and will be redone",
        path.shown()
    )]
    DiskFull { path: PathBuf, detail: String },

    #[error(
        "{}: the journal stayed locked by another process for too long ({detail}); try again",
        path.shown()
    )]
    Busy { path: PathBuf, detail: String },

    #[error("{}: cannot open the journal ({detail}); check that the directory exists and is accessible", path.shown())]
    CannotOpen { path: PathBuf, detail: String },

    #[error("{}: cannot create the journal's directory {}: {source}", path.shown(), dir.shown())]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: {source}", path.shown())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("the journal has no file with id {id}")]
    NotFound { id: i64 },

    /// A transition was asked of a row in another state (e.g. a worker's row was moved back to
    /// `settling` because the file changed). The worker must stop working on it.
    #[error("file {id} is {state}, not {expected}")]
    WrongState {
        id: i64,
        state: FileState,
        expected: &'static str,
    },

    /// A caller passed a value that contradicts the row (e.g. an offset going backwards).
    #[error("file {id}: {message}")]
    Invalid { id: i64, message: String },
}

impl JournalError {
    /// Classifies a SQLite error for the journal at `path`.
    pub(crate) fn from_sqlite(path: &Path, e: rusqlite::Error) -> JournalError {
        let path = path.to_owned();
        let detail = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                JournalError::Corrupt { path, detail }
            }
            Some(ErrorCode::ReadOnly) => JournalError::ReadOnly { path, detail },
            Some(ErrorCode::DiskFull) => JournalError::DiskFull { path, detail },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                JournalError::Busy { path, detail }
            }
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                JournalError::CannotOpen { path, detail }
            }
            _ => JournalError::Sqlite { path, source: e },
        }
    }
}
