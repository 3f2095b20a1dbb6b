//! Retention: pruning `done` rows older than a cutoff, tombstones for pruned files still on
//! disk, and giving the freed pages back to the filesystem (`incremental_vacuum`).
//!
//! Pruning runs in batches of [`PRUNE_BATCH`] rows, one short IMMEDIATE transaction each
//! (`synchronous = NORMAL`, like the watcher's batches), so a worker's commit never waits long
//! behind it. A row is pruned only if it is `done`, its
//! `done_at` is before the cutoff and it has no unresolved note (an orphan to clean up stays
//! listed). A pruned file that still exists at its path with the same size and mtime leaves a
//! tombstone (path, size, mtime, content hash, videoId): when the watcher sees that file again,
//! the row comes back `done` from the tombstone instead of the file being uploaded again. A file
//! no longer at its path (deleted or moved by `after_upload`, or by hand) leaves nothing.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};

use super::row::{bytes_to_path, path_bytes, to_unix_ms};
use super::{Journal, JournalError, Observation};

/// Rows deleted per transaction.
pub const PRUNE_BATCH: usize = 500;
/// Pages `incremental_vacuum` frees per transaction (4 KiB pages: 8 MiB).
const VACUUM_STEP: i64 = 2048;
/// `kv` key of the last prune's outcome.
const LAST_PRUNE_KEY: &str = "last_prune";

/// A prunable row: `(id, path bytes, size, mtime_ns)`.
type Candidate = (i64, Vec<u8>, i64, i64);

/// What one prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// `done` rows deleted.
    pub rows: u64,
    /// Of those, files still at their path: tombstones written.
    pub tombstones: u64,
    /// Pages given back to the filesystem by `incremental_vacuum`.
    pub freed_pages: u64,
}

/// Size of the journal and its last prune (`status`, metrics, the page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Bytes of the database file plus its `-wal`.
    pub bytes: u64,
    /// Rows in `files`.
    pub rows: u64,
    pub tombstones: u64,
    /// When the last prune ran, and what it did.
    pub last_prune: Option<(SystemTime, PruneOutcome)>,
}

impl Journal {
    /// Deletes `done` rows whose `done_at` is before `cutoff` (see the module docs), then frees
    /// the pages. Each batch is its own transaction; returns the totals.
    pub fn prune_done_before(&self, cutoff: SystemTime) -> Result<PruneOutcome, JournalError> {
        let cutoff_ms = to_unix_ms(cutoff);
        let mut out = PruneOutcome::default();
        let mut after_id = 0i64;
        loop {
            let batch = self.prune_candidates(cutoff_ms, after_id)?;
            let Some(&(last, _, _, _)) = batch.last() else {
                break;
            };
            after_id = last;
            // Stat outside the transaction: a slow filesystem must not hold the write lock.
            let on_disk: Vec<bool> = batch
                .iter()
                .map(|(_, path, size, mtime_ns)| {
                    still_there(&bytes_to_path(path), *size, *mtime_ns)
                })
                .collect();
            // `synchronous = NORMAL` like a scan batch: a batch lost to a power cut is pruned
            // again next time, and a batch is all or nothing (tombstones with their deletes).
            let (rows, tombs) =
                self.scan_tx(|tx, _now| prune_batch(tx, cutoff_ms, &batch, &on_disk))?;
            out.rows += rows;
            out.tombstones += tombs;
        }
        if out.rows > 0 {
            // A pruned file without a tombstone (moved away, then back) has no history: files
            // older than the cutoff are looked up on api.video before an upload.
            self.raise_adopt_horizon(cutoff)?;
        }
        out.freed_pages = self.incremental_vacuum()?;
        let value = serde_json::json!({
            "rows": out.rows,
            "tombstones": out.tombstones,
            "freed_pages": out.freed_pages,
        })
        .to_string();
        self.kv_set(LAST_PRUNE_KEY, &value)?;
        Ok(out)
    }

    /// Up to [`PRUNE_BATCH`] prunable rows after `after_id`: `(id, path, size, mtime_ns)`.
    fn prune_candidates(
        &self,
        cutoff_ms: i64,
        after_id: i64,
    ) -> Result<Vec<Candidate>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached(
            // `+state`: walk the rowid from `after_id` (each batch starts where the last ended)
            // instead of the state index, which would sort every done row for every batch.
            "SELECT id, path, size, mtime_ns FROM files
             WHERE +state = 'done' AND done_at < ?1 AND id > ?2
               AND NOT EXISTS (SELECT 1 FROM file_notes n
                               WHERE n.file_id = files.id AND n.resolved_at IS NULL)
             ORDER BY id LIMIT ?3",
        )
        .and_then(|mut st| {
            st.query_map(params![cutoff_ms, after_id, PRUNE_BATCH as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    /// `PRAGMA incremental_vacuum` in steps of `VACUUM_STEP` pages, one transaction each;
    /// returns the pages freed (0 on a journal without `auto_vacuum = INCREMENTAL`).
    pub fn incremental_vacuum(&self) -> Result<u64, JournalError> {
        let mut freed = 0u64;
        loop {
            let conn = self.conn();
            let before: i64 = conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            let mode: i64 = conn
                .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if before == 0 || mode != 2 {
                return Ok(freed);
            }
            conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))
                .map_err(|e| self.err(e))?;
            let after: i64 = conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if after >= before {
                return Ok(freed);
            }
            freed += (before - after) as u64;
        }
    }

    /// The journal's size, rows, tombstones and last prune.
    pub fn stats(&self) -> Result<JournalStats, JournalError> {
        let mut bytes = 0;
        for suffix in ["", "-wal"] {
            let mut p = self.path().to_path_buf().into_os_string();
            p.push(suffix);
            bytes += std::fs::metadata(&p).map_or(0, |m| m.len());
        }
        let (rows, tombstones) = {
            let conn = self.conn();
            conn.query_row(
                "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM tombstones)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err(e))?
        };
        let last_prune = self.kv_get(LAST_PRUNE_KEY)?.map(|(v, at)| {
            let n = |k: &str| v[k].as_u64().unwrap_or(0);
            (
                at,
                PruneOutcome {
                    rows: n("rows"),
                    tombstones: n("tombstones"),
                    freed_pages: n("freed_pages"),
                },
            )
        });
        Ok(JournalStats {
            bytes,
            rows,
            tombstones,
            last_prune,
        })
    }
}

/// Whether the file of a pruned row is still at `path` with the same size and mtime.
fn still_there(path: &Path, size: i64, mtime_ns: i64) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file()
            && m.size() as i64 == size
            && m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec() == mtime_ns
    })
}

/// One batch: each row re-checked inside the transaction, its tombstone written if its file is
/// still there, then deleted (resolved notes go with it). Returns (rows, tombstones).
fn prune_batch(
    c: &Connection,
    cutoff_ms: i64,
    batch: &[Candidate],
    on_disk: &[bool],
) -> rusqlite::Result<(u64, u64)> {
    let mut tomb = c.prepare_cached(
        "INSERT OR REPLACE INTO tombstones (path, size, mtime_ns, content_hash, video_id, done_at)
         SELECT path, size, mtime_ns, content_hash, video_id, done_at FROM files WHERE id = ?1",
    )?;
    let mut delete = c.prepare_cached(
        "DELETE FROM files WHERE id = ?1 AND state = 'done' AND done_at < ?2
           AND NOT EXISTS (SELECT 1 FROM file_notes n
                           WHERE n.file_id = files.id AND n.resolved_at IS NULL)",
    )?;
    let (mut rows, mut tombs) = (0, 0);
    for ((id, _, _, _), keep_tomb) in batch.iter().zip(on_disk) {
        // Tombstone first (it reads the row), then the delete decides; undone if not deleted.
        if *keep_tomb {
            tomb.execute([id])?;
        }
        if delete.execute(params![id, cutoff_ms])? == 1 {
            rows += 1;
            tombs += u64::from(*keep_tomb);
        } else if *keep_tomb {
            c.prepare_cached(
                "DELETE FROM tombstones WHERE path = (SELECT path FROM files WHERE id = ?1)",
            )?
            .execute([id])?;
        }
    }
    Ok((rows, tombs))
}

/// For the watcher: a file with no row at its path that matches a tombstone (same path, size
/// and mtime) comes back as a `done` row with the tombstone's hash and videoId, and the
/// tombstone goes. Returns the new row's id.
pub(crate) fn restore_tombstone(
    c: &Connection,
    obs: &Observation,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    let i = &obs.identity;
    let found: Option<(Option<String>, Option<String>, Option<i64>)> = c
        .prepare_cached(
            "SELECT content_hash, video_id, done_at FROM tombstones
             WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3",
        )?
        .query_row(
            params![path_bytes(&obs.path), i.size as i64, i.mtime_ns],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((hash, video_id, done_at)) = found else {
        return Ok(None);
    };
    c.prepare_cached(
        "INSERT INTO files (path, root, dev, ino, size, mtime_ns, ctime_ns, state, changed_at,
            video_id, bytes_uploaded, content_hash, created_at, updated_at, done_at, after_upload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'done', ?8, ?9, ?5, ?10, ?8, ?8, ?11, 'kept')",
    )?
    .execute(params![
        path_bytes(&obs.path),
        path_bytes(&obs.root),
        i.dev as i64,
        i.ino as i64,
        i.size as i64,
        i.mtime_ns,
        i.ctime_ns,
        now,
        video_id,
        hash,
        done_at.unwrap_or(now),
    ])?;
    let id = c.last_insert_rowid();
    c.prepare_cached("DELETE FROM tombstones WHERE path = ?1")?
        .execute([path_bytes(&obs.path)])?;
    Ok(Some(id))
}
