//! Whether the journal file this process opened is still the one at its path, whole: a journal
//! deleted, replaced or emptied under a running daemon would otherwise take every later commit
//! with it (SQLite keeps writing to the open, unlinked file). The daemon checks it once a
//! second and stops when it is gone (`JournalError::Lost`).
//!
//! Only `stat(2)`, never `open(2)`: closing any descriptor of the database file would drop every
//! POSIX lock this process holds on it (SQLite's locks), letting another process write under it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Journal, JournalError};

/// `(dev, ino)` of the file at `path`, if it can be read.
pub(super) fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Journal {
    /// `Ok` while the file at the journal's path is the one opened and not empty;
    /// [`JournalError::Lost`] when it was deleted, replaced or emptied.
    pub fn still_in_place(&self) -> Result<(), JournalError> {
        let path = self.path();
        let lost = |detail: &str| JournalError::Lost {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(lost("was deleted"));
            }
            // Unreadable for a moment (permissions, I/O): not proof of a loss.
            Err(_) => return Ok(()),
        };
        if self
            .inner
            .file_id
            .is_some_and(|id| id != (meta.dev(), meta.ino()))
        {
            return Err(lost("was replaced by another file"));
        }
        if meta.len() == 0 {
            return Err(lost("was emptied (truncated)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::JournalError;
    use crate::journal::testutil::Fixture;

    #[test]
    fn a_deleted_emptied_or_replaced_journal_is_noticed() {
        let f = Fixture::new();
        f.journal.still_in_place().unwrap();
        let path = f.journal.path().to_owned();
        let saved = std::fs::read(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let e = f.journal.still_in_place().unwrap_err();
        assert!(matches!(e, JournalError::Lost { .. }), "{e}");
        assert!(e.to_string().contains("emptied"), "{e}");
        std::fs::write(&path, &saved).unwrap();
        f.journal.still_in_place().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            f.journal
                .still_in_place()
                .unwrap_err()
                .to_string()
                .contains("deleted")
        );
        std::fs::write(&path, &saved).unwrap(); // another inode now
        assert!(
            f.journal
                .still_in_place()
                .unwrap_err()
                .to_string()
                .contains("replaced")
        );
    }
}
