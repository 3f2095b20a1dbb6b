//! The watcher's side of the journal: `impl crate::watch::Sink for Journal`.
//!
//! Rules for `seen(path, identity)` (identity = dev, ino, size, mtime, ctime):
//! - a live row (settling/queued/uploading/failed) at the path with the same identity: nothing
//!   changes; the watcher tracks it only while it is `settling`;
//! - a live row with another identity: the file changed — back to `settling` with the new
//!   identity; a started upload is abandoned (its `videoId` is recorded), the worker's next commit
//!   fails with [`JournalError::WrongState`];
//! - a rename: another row has the same dev+ino+size+mtime and its old path no longer holds that
//!   inode → that row takes the new path and keeps its state (never uploaded twice, before or
//!   after its upload); a row it lands on (file replaced by `mv`) becomes `gone`;
//! - a done row at the path with the same content: nothing to do (not tracked); a `gone` row with
//!   the same content comes back as `settling` keeping its upload progress;
//! - anything else (a new file, a new file at an old done path): a new `settling` row.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::row::{FileRow, add_note, bytes_to_path, file_columns, path_bytes};
use super::{FileIdentity, FileState, Journal, JournalError, Observation};
use crate::watch::{Sink, SinkError};

impl Sink for Journal {
    fn seen(&self, batch: &[Observation]) -> Result<Vec<bool>, SinkError> {
        self.seen_batch(batch).map_err(sink_error)
    }

    fn stable(&self, batch: &[Observation]) -> Result<(), SinkError> {
        self.stable_batch(batch).map(|_| ()).map_err(sink_error)
    }

    fn gone(&self, root: &Path, paths: &[PathBuf]) -> Result<(), SinkError> {
        self.gone_batch(root, paths).map(|_| ()).map_err(sink_error)
    }

    fn degraded(&self) -> bool {
        self.write_problem().is_some()
    }

    fn settling(&self, root: &Path, limit: usize) -> Result<Vec<PathBuf>, SinkError> {
        self.settling_under(root, limit).map_err(sink_error)
    }

    fn refused(&self, root: &Path, paths: &[(PathBuf, String)]) -> Result<(), SinkError> {
        self.refused_batch(root, paths)
            .map(|_| ())
            .map_err(sink_error)
    }

    fn incomplete(&self, batch: &[(Observation, String)]) -> Result<(), SinkError> {
        self.incomplete_batch(batch).map(|_| ()).map_err(sink_error)
    }

    fn expired(&self, batch: &[Observation], after: std::time::Duration) -> Result<(), SinkError> {
        self.expired_batch(batch, after)
            .map(|_| ())
            .map_err(sink_error)
    }
}

fn sink_error(e: JournalError) -> SinkError {
    SinkError(e.to_string())
}

impl Journal {
    /// [`Sink::seen`]: records a batch of observations in one transaction; per observation,
    /// whether the watcher must track it for settling.
    pub fn seen_batch(&self, batch: &[Observation]) -> Result<Vec<bool>, JournalError> {
        let seen = self.scan_tx(|tx, now| {
            batch
                .iter()
                .map(|obs| seen_one(tx, obs, now))
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        // A file that reappeared (rename back, remount) may be queued again at once; a queued
        // file seen again unchanged is no new work.
        if seen.iter().any(|s| s.state == FileState::Queued && s.moved) {
            self.work_changed();
        }
        Ok(seen
            .into_iter()
            .map(|s| s.state == FileState::Settling)
            .collect())
    }

    /// [`Sink::stable`]: `settling` → `queued` for each observation whose row still has exactly
    /// this identity (and is not empty: an empty file keeps waiting). Returns how many were queued.
    pub fn stable_batch(&self, batch: &[Observation]) -> Result<usize, JournalError> {
        self.scan_tx(|tx, now| {
            let mut st = tx.prepare_cached(
                "UPDATE files SET state = 'queued', queued_at = ?1, updated_at = ?1,
                    last_error = CASE last_error_slug WHEN 'incomplete-container' THEN NULL
                                 ELSE last_error END,
                    last_error_slug = CASE last_error_slug WHEN 'incomplete-container' THEN NULL
                                      ELSE last_error_slug END
                 WHERE path = ?2 AND state = 'settling' AND size > 0
                   AND dev = ?3 AND ino = ?4 AND size = ?5 AND mtime_ns = ?6 AND ctime_ns = ?7",
            )?;
            let mut n = 0;
            for obs in batch {
                let i = &obs.identity;
                n += st.execute(params![
                    now,
                    path_bytes(&obs.path),
                    i.dev as i64,
                    i.ino as i64,
                    i.size as i64,
                    i.mtime_ns,
                    i.ctime_ns
                ])?;
            }
            Ok(n)
        })
        .inspect(|&n| {
            if n > 0 {
                self.work_changed();
            }
        })
    }

    /// [`Sink::gone`]: rows at these paths that were `settling`, `queued` or `failed` become
    /// `gone` (uploading rows are the worker's to judge; done rows stay done), a started video
    /// recorded as abandoned. `root` is not needed: paths are absolute. Returns how many rows
    /// changed.
    pub fn gone_batch(&self, _root: &Path, paths: &[PathBuf]) -> Result<usize, JournalError> {
        self.scan_tx(|tx, now| {
            let mut started = tx.prepare_cached(concat!(
                "SELECT ",
                file_columns!(),
                " FROM files WHERE path = ?1 AND state IN ('settling', 'queued', 'failed')
                   AND video_id IS NOT NULL"
            ))?;
            let mut st = tx.prepare_cached(
                "UPDATE files SET gone_from = state, state = 'gone', updated_at = ?1
                 WHERE path = ?2 AND state IN ('settling', 'queued', 'failed')",
            )?;
            let mut n = 0;
            for p in paths {
                let rows = started
                    .query_map([path_bytes(p)], FileRow::from_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for row in &rows {
                    note_gone_video(tx, row, now)?;
                }
                n += st.execute(params![now, path_bytes(p)])?;
            }
            Ok(n)
        })
    }

    /// [`Sink::settling`]: paths of `settling` rows recorded under `root`.
    pub fn settling_under(&self, root: &Path, limit: usize) -> Result<Vec<PathBuf>, JournalError> {
        self.scan_tx(|tx, _now| {
            let mut st = tx.prepare_cached(
                "SELECT path FROM files WHERE root = ?1 AND state = 'settling' LIMIT ?2",
            )?;
            let rows = st.query_map(params![path_bytes(root), limit as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })?;
            rows.map(|r| r.map(|b| bytes_to_path(&b))).collect()
        })
    }

    /// [`Sink::refused`]: like [`Journal::gone_batch`], with the reason as the row's last error.
    pub fn refused_batch(
        &self,
        root: &Path,
        paths: &[(PathBuf, String)],
    ) -> Result<usize, JournalError> {
        let plain: Vec<PathBuf> = paths.iter().map(|(p, _)| p.clone()).collect();
        let n = self.gone_batch(root, &plain)?;
        self.scan_tx(|tx, now| {
            let mut st = tx.prepare_cached(
                "UPDATE files SET last_error = ?1, updated_at = ?2
                 WHERE path = ?3 AND state = 'gone' AND superseded = 0",
            )?;
            for (p, why) in paths {
                st.execute(params![format!("not uploaded: {why}"), now, path_bytes(p)])?;
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// For `ingestd upload FILE`: records the file like [`Sink::seen`] and, if it is `settling`,
    /// queues it at once (the user said it is finished). Returns its row, whatever the state —
    /// `done` means it was uploaded before (same content), `uploading` that a worker (maybe
    /// another process) has it.
    pub fn enqueue(&self, obs: &Observation) -> Result<FileRow, JournalError> {
        let row = self.immediate(|tx, now| {
            let Seen { id, state, .. } = seen_one(tx, obs, now).map_err(|e| self.err(e))?;
            if state == FileState::Settling {
                tx.execute(
                    "UPDATE files SET state = 'queued', queued_at = ?1, updated_at = ?1 WHERE id = ?2",
                    params![now, id],
                )
                .map_err(|e| self.err(e))?;
            }
            self.row_in(tx, id)
        })?;
        if row.state == FileState::Queued {
            self.work_changed();
        }
        Ok(row)
    }
}

/// The row at `path`: the live one if any, else the most recent history row.
fn row_at_path(c: &Connection, path: &Path) -> rusqlite::Result<Option<FileRow>> {
    c.prepare_cached(concat!(
        "SELECT ",
        file_columns!(),
        " FROM files WHERE path = ?1
          ORDER BY state IN ('done', 'gone'), superseded, id DESC LIMIT 1"
    ))?
    .query_row([path_bytes(path)], FileRow::from_sql)
    .optional()
}

/// A row elsewhere with the same content whose old path no longer holds that inode.
fn rename_source(c: &Connection, obs: &Observation) -> rusqlite::Result<Option<FileRow>> {
    let i = &obs.identity;
    let mut st = c.prepare_cached(concat!(
        "SELECT ",
        file_columns!(),
        " FROM files WHERE ino = ?1 AND dev = ?2 AND size = ?3 AND mtime_ns = ?4 AND path != ?5
          ORDER BY state IN ('done', 'gone'), id DESC"
    ))?;
    let rows = st.query_map(
        params![
            i.ino as i64,
            i.dev as i64,
            i.size as i64,
            i.mtime_ns,
            path_bytes(&obs.path)
        ],
        FileRow::from_sql,
    )?;
    for row in rows {
        let row = row?;
        if !holds_inode(&row.path, &row.identity) {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Whether `path` currently is the inode of `identity` (a hard link or the file itself).
fn holds_inode(path: &Path, identity: &FileIdentity) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .map(|m| m.dev() == identity.dev && m.ino() == identity.ino)
        .unwrap_or(false)
}

fn is_live(state: FileState) -> bool {
    !matches!(state, FileState::Done | FileState::Gone)
}

/// What [`seen_one`] left: the row, its state, and whether a row followed its file here.
struct Seen {
    id: i64,
    state: FileState,
    moved: bool,
}

/// One observation (see the module docs).
fn seen_one(c: &Connection, obs: &Observation, now: i64) -> rusqlite::Result<Seen> {
    let current = row_at_path(c, &obs.path)?;
    let mut moved = false;
    let mut follow = |src: &FileRow| {
        moved = true;
        move_row(c, src, obs, now)
    };
    let (id, state) = match current {
        Some(row) if is_live(row.state) && row.identity == obs.identity => (row.id, row.state),
        Some(row) if is_live(row.state) => {
            if let Some(src) = rename_source(c, obs)? {
                // `mv other path` replaced the tracked file: the old row's file is gone.
                abandon(
                    c,
                    &row,
                    "the file was replaced by another one (rename)",
                    now,
                )?;
                c.prepare_cached(
                    "UPDATE files SET state = 'gone', claimed_by = NULL, updated_at = ?1 WHERE id = ?2",
                )?
                .execute(params![now, row.id])?;
                follow(&src)?
            } else {
                reset_to_settling(c, &row, &obs.identity, "the file changed", now)?;
                (row.id, FileState::Settling)
            }
        }
        Some(row) if row.identity.same_content(&obs.identity) => match row.state {
            FileState::Done => (row.id, FileState::Done),
            // gone, and back with the same content (remount, undelete).
            _ => follow(&row)?,
        },
        _ => match rename_source(c, obs)? {
            Some(src) => follow(&src)?,
            None => match super::retention::restore_tombstone(c, obs, now)? {
                // Pruned, and back unchanged: uploaded before, not again.
                Some(id) => (id, FileState::Done),
                None => (insert(c, obs, now)?, FileState::Settling),
            },
        },
    };
    Ok(Seen { id, state, moved })
}

/// A rename (or a `gone` file back at its path): the row follows its file to `obs.path`, keeping
/// its state; a `gone` row gets back the state it had before (settling if unknown), with its
/// upload progress. Returns its id and new state.
fn move_row(
    c: &Connection,
    src: &FileRow,
    obs: &Observation,
    now: i64,
) -> rusqlite::Result<(i64, FileState)> {
    c.prepare_cached("UPDATE files SET superseded = 1 WHERE path = ?1 AND id != ?2")?
        .execute(params![path_bytes(&obs.path), src.id])?;
    // Back from `gone` with its upload progress: the video it left is resumed, not abandoned.
    c.prepare_cached(
        "DELETE FROM file_notes WHERE file_id = ?1 AND kind = 'abandoned' AND video_id IN
           (SELECT video_id FROM files WHERE id = ?1 AND state = 'gone')",
    )?
    .execute([src.id])?;
    let state: String = c
        .prepare_cached(
            "UPDATE files SET path = ?1, root = ?2, ctime_ns = ?3, updated_at = ?4, superseded = 0,
                changed_at = CASE state WHEN 'gone' THEN ?4 ELSE changed_at END,
                state = CASE state WHEN 'gone' THEN coalesce(gone_from, 'settling') ELSE state END,
                gone_from = NULL
             WHERE id = ?5 RETURNING state",
        )?
        .query_row(
            params![
                path_bytes(&obs.path),
                path_bytes(&obs.root),
                obs.identity.ctime_ns,
                now,
                src.id
            ],
            |r| r.get(0),
        )?;
    Ok((
        src.id,
        FileState::parse(&state).unwrap_or(FileState::Settling),
    ))
}

fn insert(c: &Connection, obs: &Observation, now: i64) -> rusqlite::Result<i64> {
    let i = &obs.identity;
    c.prepare_cached(
        "INSERT INTO files (path, root, dev, ino, size, mtime_ns, ctime_ns, state, changed_at,
                            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'settling', ?8, ?8, ?8)",
    )?
    .execute(params![
        path_bytes(&obs.path),
        path_bytes(&obs.root),
        i.dev as i64,
        i.ino as i64,
        i.size as i64,
        i.mtime_ns,
        i.ctime_ns,
        now
    ])?;
    Ok(c.last_insert_rowid())
}

/// Records the `videoId` of a started upload (or the possible orphan of a first chunk in flight)
/// that this row leaves behind.
pub(crate) fn abandon(c: &Connection, row: &FileRow, why: &str, now: i64) -> rusqlite::Result<()> {
    if row.state == FileState::Done {
        return Ok(());
    }
    if let Some(video_id) = &row.video_id {
        let reason = format!(
            "{why} after {} of {} bytes were uploaded",
            row.bytes_uploaded, row.identity.size
        );
        add_note(c, row.id, "abandoned", Some(video_id), &reason, now)?;
    } else if row.possible_orphan() {
        let reason = format!(
            "{why} after the first request's whole body was sent, before its answer: a video titled after the file may exist"
        );
        add_note(c, row.id, "orphan", None, &reason, now)?;
    }
    Ok(())
}

/// The file of a row with a started upload vanished: its video is recorded as abandoned
/// ([`move_row`] withdraws the note if the same content comes back and resumes).
pub(crate) fn note_gone_video(c: &Connection, row: &FileRow, now: i64) -> rusqlite::Result<()> {
    let Some(video_id) = &row.video_id else {
        return Ok(());
    };
    let reason = format!(
        "the file was deleted after {} of {} bytes were uploaded",
        row.bytes_uploaded, row.identity.size
    );
    add_note(c, row.id, "abandoned", Some(video_id), &reason, now)
}

/// The file changed: the row starts over as `settling` with the new identity, any started upload
/// abandoned (recorded), attempts and errors cleared.
pub(crate) fn reset_to_settling(
    c: &Connection,
    row: &FileRow,
    identity: &FileIdentity,
    why: &str,
    now: i64,
) -> rusqlite::Result<()> {
    abandon(c, row, why, now)?;
    c.prepare_cached(
        "UPDATE files SET dev = ?1, ino = ?2, size = ?3, mtime_ns = ?4, ctime_ns = ?5,
            state = 'settling', changed_at = ?6, updated_at = ?6, queued_at = NULL,
            claimed_by = NULL, video_id = NULL, chunk_size = NULL, bytes_uploaded = 0,
            first_chunk_in_flight = 0, first_body_sent = 0, content_hash = NULL, attempts = 0,
            next_attempt_at = NULL, last_error = NULL, last_error_slug = NULL, done_at = NULL,
            after_upload = NULL, container_waived = 0
         WHERE id = ?7",
    )?
    .execute(params![
        identity.dev as i64,
        identity.ino as i64,
        identity.size as i64,
        identity.mtime_ns,
        identity.ctime_ns,
        now,
        row.id
    ])?;
    Ok(())
}
