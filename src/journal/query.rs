//! Read-only queries for `status`, `explain`, the daemon's sd_notify `STATUS=` line, the
//! Prometheus metrics and the status page.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::row::{FileRow, file_columns, from_unix_ms, path_bytes};
use super::{FileState, Journal, JournalError};

/// Number of rows per state (every state present, zero or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts([u64; 6]);

impl Counts {
    pub fn get(&self, state: FileState) -> u64 {
        self.0[Self::index(state)]
    }

    /// `(state, count)` in [`FileState::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FileState, u64)> + '_ {
        FileState::ALL.into_iter().map(|s| (s, self.get(s)))
    }

    fn index(state: FileState) -> usize {
        FileState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or_default()
    }
}

/// Counts plus the age of the queue, for the daemon's status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub counts: Counts,
    /// `queued_at` of the oldest queued row.
    pub oldest_queued_at: Option<SystemTime>,
}

/// What is left to upload, for metrics and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Sizes of the settling, queued and uploading files minus the bytes already acknowledged.
    pub bytes: u64,
    /// `queued_at` of the longest-waiting queued or uploading row (what an operator alerts on).
    pub oldest_pending_at: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// A started upload given up; its `videoId` exists on the service, incomplete.
    Abandoned,
    /// The first request was in flight when the process stopped: a video may exist.
    Orphan,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Abandoned => "abandoned",
            NoteKind::Orphan => "orphan",
        }
    }
}

/// A `videoId` (or possible video) a file left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNote {
    /// The note's own id (`orphans --delete` resolves notes by it).
    pub id: i64,
    pub file_id: i64,
    pub kind: NoteKind,
    pub video_id: Option<String>,
    pub reason: String,
    pub at: SystemTime,
}

impl Journal {
    /// Rows per state.
    pub fn counts(&self) -> Result<Counts, JournalError> {
        let conn = self.conn();
        let mut counts = Counts::default();
        let mut st = conn
            .prepare_cached("SELECT state, count(*) FROM files GROUP BY state")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (state, n) = row.map_err(|e| self.err(e))?;
            if let Some(s) = FileState::parse(&state) {
                counts.0[Counts::index(s)] = n as u64;
            }
        }
        Ok(counts)
    }

    /// Counts and the oldest queued time.
    pub fn summary(&self) -> Result<Summary, JournalError> {
        let counts = self.counts()?;
        let oldest: Option<i64> = self
            .conn()
            .query_row(
                "SELECT min(queued_at) FROM files WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(Summary {
            counts,
            oldest_queued_at: oldest.map(from_unix_ms),
        })
    }

    /// Backlog bytes and the oldest pending row, in one pass over the unfinished rows; chunks
    /// acknowledged beyond a resume point (lanes) are not backlog.
    pub fn backlog(&self) -> Result<Backlog, JournalError> {
        let beyond: u64 = self.acked_beyond_prefix()?.values().sum();
        let (bytes, oldest): (i64, Option<i64>) = self
            .conn()
            .query_row(
                "SELECT coalesce(sum(max(size - bytes_uploaded, 0)), 0),
                        min(CASE WHEN state IN ('queued', 'uploading') THEN queued_at END)
                 FROM files WHERE state IN ('settling', 'queued', 'uploading')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(Backlog {
            bytes: u64::try_from(bytes)
                .unwrap_or_default()
                .saturating_sub(beyond),
            oldest_pending_at: oldest.map(from_unix_ms),
        })
    }

    /// The `limit` most recently uploaded rows, newest first.
    pub fn recent_done(&self, limit: usize) -> Result<Vec<FileRow>, JournalError> {
        self.rows_where(
            "state = 'done' ORDER BY done_at DESC, id DESC LIMIT ?1",
            limit,
        )
    }

    /// Up to `limit` done rows whose post-upload action has no recorded outcome: the process
    /// stopped between `done` and the action (crash window W6).
    pub fn done_without_after_upload(&self, limit: usize) -> Result<Vec<FileRow>, JournalError> {
        self.rows_where(
            "state = 'done' AND after_upload IS NULL ORDER BY id LIMIT ?1",
            limit,
        )
    }

    /// Up to `limit` unfinished rows: failed first, then uploading, queued, settling; by id.
    pub fn unfinished(&self, limit: usize) -> Result<Vec<FileRow>, JournalError> {
        self.rows_where(
            "state IN ('settling', 'queued', 'uploading', 'failed')
             ORDER BY CASE state WHEN 'failed' THEN 0 WHEN 'uploading' THEN 1
                                 WHEN 'queued' THEN 2 ELSE 3 END, id LIMIT ?1",
            limit,
        )
    }

    fn rows_where(&self, clause: &str, limit: usize) -> Result<Vec<FileRow>, JournalError> {
        let sql = format!("SELECT {} FROM files WHERE {clause}", file_columns!());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn();
        conn.prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_map([limit], FileRow::from_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.err(e))
    }

    /// Rows by id: without `all`, the unfinished and failed ones (settling, queued, uploading,
    /// failed) and the done ones whose delete or move failed (they need a hand); with `all`,
    /// every row including done (the receipts) and gone.
    pub fn list(&self, all: bool) -> Result<Vec<FileRow>, JournalError> {
        let mut rows = Vec::new();
        self.for_each_file(all, |row| {
            rows.push(row);
            true
        })?;
        Ok(rows)
    }

    /// Calls `f` for each row [`list`](Self::list) would return, in id order, without
    /// collecting them (for `status` on a journal with 100 000s of rows); stops when `f`
    /// returns false.
    pub fn for_each_file(
        &self,
        all: bool,
        mut f: impl FnMut(FileRow) -> bool,
    ) -> Result<(), JournalError> {
        let sql = if all {
            concat!("SELECT ", file_columns!(), " FROM files ORDER BY id")
        } else {
            concat!(
                "SELECT ",
                file_columns!(),
                " FROM files WHERE state IN ('settling', 'queued', 'uploading', 'failed')
                   OR (state = 'done' AND after_upload_failed = 1)
                 ORDER BY id"
            )
        };
        let conn = self.conn();
        let mut run = || -> rusqlite::Result<()> {
            let mut st = conn.prepare_cached(sql)?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                if !f(FileRow::from_sql(row)?) {
                    break;
                }
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// Abandoned and possibly orphaned videos not resolved yet (`ingestd orphans --delete`), of
    /// one file or of all (`None`), oldest first.
    pub fn notes(&self, file_id: Option<i64>) -> Result<Vec<FileNote>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached(
            "SELECT file_id, kind, video_id, reason, at, id FROM file_notes
             WHERE (?1 IS NULL OR file_id = ?1) AND resolved_at IS NULL ORDER BY id",
        )
        .and_then(|mut st| {
            st.query_map([file_id], |r| {
                Ok(FileNote {
                    id: r.get(5)?,
                    file_id: r.get(0)?,
                    kind: if r.get::<_, String>(1)? == "orphan" {
                        NoteKind::Orphan
                    } else {
                        NoteKind::Abandoned
                    },
                    video_id: r.get(2)?,
                    reason: r.get(3)?,
                    at: from_unix_ms(r.get(4)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| self.err(e))
    }

    /// The row for `path`: the live one (settling/queued/uploading/failed) if any, else the most
    /// recent done or gone one.
    pub fn find_by_path(&self, path: &Path) -> Result<Option<FileRow>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached(concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE path = ?1
          ORDER BY state IN ('done', 'gone'), superseded, id DESC LIMIT 1"
        ))
        .and_then(|mut st| {
            st.query_row([path_bytes(path)], FileRow::from_sql)
                .optional()
        })
        .map_err(|e| self.err(e))
    }

    /// For a `queued` row: its 1-based position in claim order (rows ahead of it that are due at
    /// `now`, plus one), and how many rows are queued in all (due or waiting for a retry). `None`
    /// if the row is not queued.
    pub fn queue_position(
        &self,
        id: i64,
        now: SystemTime,
    ) -> Result<Option<(u64, u64)>, JournalError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT
                (SELECT count(*) FROM files o WHERE o.state = 'queued'
                   AND (o.id = f.id OR ((o.next_attempt_at IS NULL OR o.next_attempt_at <= ?2)
                   AND (o.queued_at < f.queued_at OR (o.queued_at = f.queued_at AND o.id < f.id))))),
                (SELECT count(*) FROM files WHERE state = 'queued')
             FROM files f WHERE f.id = ?1 AND f.state = 'queued'",
            params![id, super::to_unix_ms(now)],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .optional()
        .map_err(|e| self.err(e))
    }
}
