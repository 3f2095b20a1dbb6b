//! Unit tests of write failures: a failed commit is an error (never a phantom claim), and the
//! degraded state starts with a storage failure and ends with the next commit.

use std::time::SystemTime;

use super::testutil::Fixture;
use super::{FileState, JournalError, TokenState};

/// Makes every commit that follows fail after its statements succeeded, as a full disk does when
/// the WAL cannot grow: a deferred foreign-key violation is only raised at COMMIT. (The pragma
/// comes last: every COMMIT switches it off again.)
fn fail_commits_of_state_changes(f: &Fixture) {
    f.sql(
        "CREATE TEMP TRIGGER fail_commit AFTER UPDATE OF state ON main.files
         BEGIN INSERT INTO file_notes (file_id, kind, reason, at) VALUES (-1, 'orphan', 'x', 0); END;
         PRAGMA defer_foreign_keys = ON;",
    );
}

#[test]
fn a_claim_whose_commit_fails_is_an_error_not_a_phantom_claim() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"a");
    fail_commits_of_state_changes(&f);
    let claimed = f.journal.claim_next(SystemTime::now());
    assert!(
        claimed.is_err(),
        "the commit failed, so there is no claim: {claimed:?}"
    );
    assert_eq!(f.journal.get(id).unwrap().unwrap().state, FileState::Queued);
}

#[test]
fn a_storage_failure_is_a_visible_state_until_the_next_commit() {
    let f = Fixture::new();
    assert_eq!(f.journal.write_problem(), None);
    let e = JournalError::DiskFull {
        path: f.journal.path().to_owned(),
        detail: "database or disk is full".into(),
    };
    f.journal.note_error(&e);
    f.journal.note_error(&e);
    let p = f.journal.write_problem().unwrap();
    assert_eq!(
        p.summary(),
        "journal: cannot write (No space left on device)"
    );
    // Other errors (a row in another state) say nothing about the storage.
    f.journal.note_error(&JournalError::NotFound { id: 1 });
    assert!(f.journal.write_problem().is_some());
    f.journal.set_token_state(TokenState::Ok, None).unwrap();
    assert_eq!(f.journal.write_problem(), None, "a commit ends it");
}
