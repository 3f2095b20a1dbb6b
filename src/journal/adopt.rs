//! What adoption needs from the journal (`upload::adopt`): the horizon before which a file with
//! no history may already be on api.video, and the transitions of an adopted file.
//!
//! The horizon (`kv` key `adopt_before`, Unix ms) is raised, never lowered: to the creation time
//! of a journal this process created (every file already there may have been uploaded through a
//! journal that was lost), and to the cutoff of a prune that removed rows (a pruned file with no
//! tombstone may come back). A file whose mtime is before it and that has no history is looked
//! up by its content hash before its first request; any other file is not hashed in advance.

use std::time::SystemTime;

use rusqlite::params;

use super::row::{from_unix_ms, to_unix_ms};
use super::{FileRow, Journal, JournalError};

/// `kv` key of the adoption horizon.
const ADOPT_BEFORE_KEY: &str = "adopt_before";

impl Journal {
    /// Files modified before this time with no history are looked up on api.video before their
    /// first request; `None` when this journal was never new nor pruned.
    pub fn adopt_horizon(&self) -> Result<Option<SystemTime>, JournalError> {
        Ok(self
            .kv_get(ADOPT_BEFORE_KEY)?
            .and_then(|(v, _)| v.as_i64())
            .map(from_unix_ms))
    }

    /// Raises the adoption horizon to `t` (never lowers it).
    pub fn raise_adopt_horizon(&self, t: SystemTime) -> Result<(), JournalError> {
        let ms = to_unix_ms(t);
        if self
            .adopt_horizon()?
            .is_some_and(|old| to_unix_ms(old) >= ms)
        {
            return Ok(());
        }
        self.kv_set(ADOPT_BEFORE_KEY, &ms.to_string())
    }

    /// The claimed file was found complete on api.video as `video_id` (same content hash):
    /// `done` with that video and the hash as its receipt, marked adopted, in one transaction.
    pub fn mark_adopted(
        &self,
        id: i64,
        content_hash: &str,
        video_id: &str,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed_without_video(row, "has a videoId already: not adopted")?;
            self.exec(
                c,
                "UPDATE files SET state = 'done', content_hash = ?1, video_id = ?2, bytes_uploaded = size,
                    first_chunk_in_flight = 0, first_body_sent = 0, claimed_by = NULL, next_attempt_at = NULL,
                    last_error = NULL, last_error_slug = NULL, done_at = ?3, updated_at = ?3, adopted_at = ?3
                 WHERE id = ?4",
                params![content_hash, video_id, now, id],
            )
        })
    }

    /// An incomplete video with this file's content hash was found on api.video: noted as an
    /// orphan (listed by `ingestd orphans`, deleted by `orphans --delete`).
    pub fn record_found_orphan(
        &self,
        id: i64,
        video_id: &str,
        reason: &str,
    ) -> Result<FileRow, JournalError> {
        self.note_video(id, "orphan", video_id, reason)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::journal::testutil::Fixture;

    #[test]
    fn horizon_only_rises() {
        let f = Fixture::new();
        // A journal created by this process starts with its creation time as the horizon.
        let born = f.journal.adopt_horizon().unwrap().unwrap();
        assert!(born <= std::time::SystemTime::now());
        let t = born + Duration::from_secs(3600);
        f.journal.raise_adopt_horizon(t).unwrap();
        f.journal
            .raise_adopt_horizon(t - Duration::from_secs(10))
            .unwrap();
        assert_eq!(f.journal.adopt_horizon().unwrap(), Some(t));
        f.journal
            .raise_adopt_horizon(t + Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            f.journal.adopt_horizon().unwrap(),
            Some(t + Duration::from_secs(10))
        );
    }

    #[test]
    fn a_prune_that_removes_rows_raises_the_horizon_to_its_cutoff() {
        let f = Fixture::new();
        let born = f.journal.adopt_horizon().unwrap().unwrap();
        let cutoff = born + Duration::from_secs(7200);
        f.journal.prune_done_before(cutoff).unwrap(); // nothing to prune: unchanged
        assert_eq!(f.journal.adopt_horizon().unwrap(), Some(born));
        f.done("a.mp4", b"a", "vi1");
        assert_eq!(f.journal.prune_done_before(cutoff).unwrap().rows, 1);
        let h = f.journal.adopt_horizon().unwrap().unwrap();
        assert_eq!(
            crate::journal::to_unix_ms(h),
            crate::journal::to_unix_ms(cutoff)
        );
    }

    #[test]
    fn adopted_rows_are_done_with_the_found_video_and_its_orphans_listed() {
        let f = Fixture::new();
        let id = f.queued("a.mp4", b"0123456789");
        f.journal.claim(id).unwrap();
        f.journal
            .record_found_orphan(id, "viPartial", "incomplete copy")
            .unwrap();
        let row = f.journal.mark_adopted(id, "blake3:ab", "viFound").unwrap();
        assert_eq!(row.state, crate::journal::FileState::Done);
        assert_eq!(row.video_id.as_deref(), Some("viFound"));
        assert_eq!(row.bytes_uploaded, 10);
        assert!(row.adopted_at.is_some());
        let notes = f.journal.notes(Some(id)).unwrap();
        assert_eq!(notes[0].video_id.as_deref(), Some("viPartial"));
    }
}
