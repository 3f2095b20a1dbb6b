//! Pruning: which rows go, tombstones for files still on disk, a pruned file seen again is done,
//! unresolved notes keep their row, pages go back to the filesystem.

use std::time::{Duration, SystemTime};

use super::FileState;
use super::testutil::Fixture;

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

#[test]
fn new_journals_use_incremental_auto_vacuum() {
    let f = Fixture::new();
    let mode: i64 = f
        .journal
        .conn()
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "INCREMENTAL");
}

#[test]
fn prune_keeps_recent_rows_and_tombstones_files_still_there() {
    let f = Fixture::new();
    let kept = f.done("kept.mp4", b"kept", "vi1");
    let gone = f.done("gone.mp4", b"gone", "vi2");
    std::fs::remove_file(f.path("gone.mp4")).unwrap();
    let pending = f.queued("pending.mp4", b"pending");

    // Nothing is older than an hour ago.
    let none = f
        .journal
        .prune_done_before(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    assert_eq!(none.rows, 0);

    let out = f.journal.prune_done_before(later()).unwrap();
    assert_eq!((out.rows, out.tombstones), (2, 1));
    assert!(f.journal.get(kept).unwrap().is_none());
    assert!(f.journal.get(gone).unwrap().is_none());
    assert_eq!(
        f.journal.get(pending).unwrap().unwrap().state,
        FileState::Queued
    );
    let stats = f.journal.stats().unwrap();
    assert_eq!((stats.rows, stats.tombstones), (1, 1));
    assert_eq!(stats.last_prune.unwrap().1.rows, 2);

    // The pruned file still there is seen again by a scan: done, from its tombstone.
    let obs = f.observe("kept.mp4");
    assert_eq!(
        f.journal.seen_batch(std::slice::from_ref(&obs)).unwrap(),
        [false]
    );
    let row = f.journal.find_by_path(&obs.path).unwrap().unwrap();
    assert_eq!(row.state, FileState::Done);
    assert_eq!(row.video_id.as_deref(), Some("vi1"));
    assert_eq!(row.content_hash.as_deref(), Some("ab12"));
    assert_eq!(f.journal.stats().unwrap().tombstones, 0);

    // The deleted one, written again (new content), is a new file.
    let obs = f.write("gone.mp4", b"new content");
    assert_eq!(f.journal.seen_batch(&[obs]).unwrap(), [true]);
}

#[test]
fn a_changed_file_does_not_match_its_tombstone() {
    let f = Fixture::new();
    f.done("a.mp4", b"first", "vi1");
    f.journal.prune_done_before(later()).unwrap();
    let obs = f.append("a.mp4", b" and more");
    assert_eq!(f.journal.seen_batch(&[obs]).unwrap(), [true], "settling");
}

#[test]
fn rows_with_unresolved_notes_stay() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    f.journal.claim(id).unwrap();
    f.journal.record_orphan(id, "answer lost").unwrap();
    f.journal.commit_video_id(id, "vi9").unwrap();
    f.journal.mark_done(id, "ab12", "vi9").unwrap();
    assert_eq!(f.journal.prune_done_before(later()).unwrap().rows, 0);
    let note = f.journal.notes(None).unwrap()[0].id;
    f.journal.resolve_note(note, "deleted vi8").unwrap();
    assert_eq!(f.journal.prune_done_before(later()).unwrap().rows, 1);
}

#[test]
fn pruning_many_rows_gives_pages_back() {
    let f = Fixture::new();
    f.sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO files (path, root, dev, ino, size, mtime_ns, ctime_ns, state, changed_at,
            video_id, bytes_uploaded, content_hash, created_at, updated_at, done_at)
         SELECT CAST('/nowhere/some/longer/directory/clip-' || i || '.mp4' AS BLOB), CAST('/nowhere' AS BLOB), 1, i, 1000, 1, 1,
            'done', 1, 'vi' || i, 1000, 'blake3:' || hex(randomblob(32)), 1, 1, 1 FROM n;",
    );
    let before = std::fs::metadata(f.journal.path()).unwrap().len();
    f.journal
        .conn()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let full = std::fs::metadata(f.journal.path()).unwrap().len();
    let out = f.journal.prune_done_before(later()).unwrap();
    assert_eq!((out.rows, out.tombstones), (5000, 0));
    assert!(out.freed_pages > 0, "{out:?}");
    f.journal
        .conn()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let after = std::fs::metadata(f.journal.path()).unwrap().len();
    assert!(after < full / 2, "{before} {full} → {after}");
}
