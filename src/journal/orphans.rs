//! What `ingestd orphans` needs from the journal: which file owns a video, and marking a note
//! resolved (kept as history, no longer listed) once its videos are dealt with.

use rusqlite::{OptionalExtension, params};

use super::{Journal, JournalError};

impl Journal {
    /// The id of a file whose `video_id` is `video_id` (its final or current video), if any:
    /// such a video is never an orphan.
    pub fn video_owner(&self, video_id: &str) -> Result<Option<i64>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached("SELECT id FROM files WHERE video_id = ?1 ORDER BY id DESC LIMIT 1")
            .and_then(|mut st| st.query_row([video_id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Marks note `note_id` resolved with what was done (`deleted vi…`, `no video found`), in
    /// one transaction. False if it was already resolved or does not exist.
    pub fn resolve_note(&self, note_id: i64, resolution: &str) -> Result<bool, JournalError> {
        self.immediate(|tx, now| {
            tx.prepare_cached(
                "UPDATE file_notes SET resolved_at = ?1, resolution = ?2
                 WHERE id = ?3 AND resolved_at IS NULL",
            )
            .and_then(|mut st| st.execute(params![now, resolution, note_id]))
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::testutil::Fixture;

    #[test]
    fn resolved_notes_are_no_longer_listed_and_final_videos_have_an_owner() {
        let f = Fixture::new();
        let id = f.queued("a.mp4", b"0123456789");
        f.journal.claim(id).unwrap();
        f.journal
            .record_orphan(id, "the response was lost")
            .unwrap();
        f.journal.commit_video_id(id, "vi1").unwrap();
        let notes = f.journal.notes(None).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(f.journal.video_owner("vi1").unwrap(), Some(id));
        assert_eq!(f.journal.video_owner("vi2").unwrap(), None);
        assert!(
            f.journal
                .resolve_note(notes[0].id, "no video found")
                .unwrap()
        );
        assert!(!f.journal.resolve_note(notes[0].id, "again").unwrap());
        assert!(f.journal.notes(None).unwrap().is_empty());
    }
}
