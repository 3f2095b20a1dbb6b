//! Acknowledged byte ranges of an upload sent in parallel lanes (`upload.lanes_per_file`).
//!
//! `files.bytes_uploaded` stays the contiguous prefix the service has; a chunk acknowledged
//! beyond it is one row of `acked_ranges` (for the row's current `videoId`) until the prefix
//! reaches it, when the prefix advances over it and the row is deleted, all in the transaction
//! that commits the acknowledgement. Resume sends exactly what neither covers.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::row::FileRow;
use super::{Journal, JournalError};

impl Journal {
    /// Commits the acknowledged range `[start, end)` of the row's current video in one
    /// transaction; the prefix `bytes_uploaded` advances over every range that now joins it.
    /// Progress: also resets `attempts`, `next_attempt_at` and the last error.
    pub fn commit_range(&self, id: i64, start: u64, end: u64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            let Some(video) = row.video_id.as_deref() else {
                return Err(JournalError::Invalid {
                    id,
                    message: "a range needs a videoId".into(),
                });
            };
            if start >= end || end > row.identity.size {
                return Err(JournalError::Invalid {
                    id,
                    message: format!("range {start}..{end} outside 0..{}", row.identity.size),
                });
            }
            let sql = |e| self.err(e);
            if end > row.bytes_uploaded {
                self.exec(
                    c,
                    "INSERT OR REPLACE INTO acked_ranges (file_id, video_id, start, end, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, video, start as i64, end as i64, now],
                )?;
            }
            let mut prefix = row.bytes_uploaded as i64;
            let mut st = c
                .prepare_cached(
                    "SELECT max(end) FROM acked_ranges
                     WHERE file_id = ?1 AND video_id = ?2 AND start <= ?3 AND end > ?3",
                )
                .map_err(sql)?;
            while let Some(next) = st
                .query_row(params![id, video, prefix], |r| r.get::<_, Option<i64>>(0))
                .optional()
                .map_err(sql)?
                .flatten()
            {
                prefix = next;
            }
            self.exec(
                c,
                "DELETE FROM acked_ranges WHERE file_id = ?1 AND (video_id != ?2 OR end <= ?3)",
                params![id, video, prefix],
            )?;
            self.exec(
                c,
                "UPDATE files SET bytes_uploaded = ?1, attempts = 0, next_attempt_at = NULL,
                    last_error = NULL, last_error_slug = NULL, updated_at = ?2 WHERE id = ?3",
                params![prefix, now, id],
            )
        })
    }

    /// The ranges `[start, end)` acknowledged beyond the row's prefix for its current video,
    /// sorted by start (empty without a `videoId`).
    pub fn acked_ranges(&self, id: i64) -> Result<Vec<(u64, u64)>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached(
            "SELECT a.start, a.end FROM acked_ranges a JOIN files f ON f.id = a.file_id
             WHERE a.file_id = ?1 AND a.video_id = f.video_id AND a.end > f.bytes_uploaded
             ORDER BY a.start",
        )
        .and_then(|mut st| {
            st.query_map([id], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    /// For every file with ranges beyond its prefix (its current video): the bytes they hold.
    /// `status` adds them to `bytes_uploaded` as `bytes_acked`.
    pub fn acked_beyond_prefix(&self) -> Result<HashMap<i64, u64>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached(
            "SELECT a.file_id, sum(a.end - max(a.start, f.bytes_uploaded))
             FROM acked_ranges a JOIN files f ON f.id = a.file_id AND a.video_id = f.video_id
             WHERE a.end > f.bytes_uploaded GROUP BY a.file_id",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?
            .collect()
        })
        .map_err(|e| self.err(e))
    }

    /// Bytes the service acknowledged for the row's current video: the prefix plus the ranges
    /// beyond it (`status`, `explain`).
    pub fn acked_bytes(&self, row: &FileRow) -> Result<u64, JournalError> {
        let beyond: u64 = self
            .acked_ranges(row.id)?
            .iter()
            .map(|(s, e)| e - (*s).max(row.bytes_uploaded))
            .sum();
        Ok(row.bytes_uploaded + beyond)
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::testutil::Fixture;

    #[test]
    fn ranges_join_the_prefix_and_stale_videos_are_ignored() {
        let f = Fixture::new();
        let id = f.queued("a.mp4", &[7u8; 100]);
        f.journal.claim(id).unwrap();
        f.journal.commit_video_id(id, "vi1").unwrap();
        f.journal.commit_offset(id, 10).unwrap();
        // Out of order: 30..40 and 20..30 before 10..20.
        let r = f.journal.commit_range(id, 30, 40).unwrap();
        assert_eq!(r.bytes_uploaded, 10);
        f.journal.commit_range(id, 20, 30).unwrap();
        assert_eq!(
            f.journal.acked_ranges(id).unwrap(),
            vec![(20, 30), (30, 40)]
        );
        let row = f.journal.get(id).unwrap().unwrap();
        assert_eq!(f.journal.acked_bytes(&row).unwrap(), 30);
        assert_eq!(f.journal.acked_beyond_prefix().unwrap().get(&id), Some(&20));
        let r = f.journal.commit_range(id, 10, 20).unwrap();
        assert_eq!(r.bytes_uploaded, 40);
        assert!(f.journal.acked_ranges(id).unwrap().is_empty());
        // A range already inside the prefix changes nothing.
        assert_eq!(
            f.journal.commit_range(id, 0, 10).unwrap().bytes_uploaded,
            40
        );
        f.journal.commit_range(id, 90, 100).unwrap();
        assert_eq!(f.journal.acked_ranges(id).unwrap(), vec![(90, 100)]);
        // Another video: the old ranges no longer count.
        f.journal.restart_upload(id, "lost").unwrap();
        f.journal.commit_video_id(id, "vi2").unwrap();
        assert!(f.journal.acked_ranges(id).unwrap().is_empty());
        assert!(f.journal.commit_range(id, 0, 101).is_err());
    }
}
