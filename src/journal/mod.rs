//! The SQLite journal: the only owner of the database and the truth about every file.
//!
//! SKELETON: the data types below are shared with the watcher (`crate::watch::Sink`) and the
//! upload side; the journal work (issue 3) fills in the database, states and queries.

use std::path::PathBuf;

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
}
