//! Unit tests of the watcher side ([`crate::watch::Sink`] semantics) on real files.

use std::slice::from_ref;

use super::testutil::Fixture;
use super::{FileState, JournalError, NoteKind};
use crate::watch::Sink;

fn rows(f: &Fixture) -> usize {
    f.journal.list(true).unwrap().len()
}

#[test]
fn new_file_settles_then_queues_once() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"hello");
    assert_eq!(f.journal.seen(from_ref(&obs)).unwrap(), [true]);
    assert_eq!(
        f.journal.seen(from_ref(&obs)).unwrap(),
        [true],
        "still settling"
    );
    let row = f.journal.find_by_path(&obs.path).unwrap().unwrap();
    assert_eq!(row.state, FileState::Settling);
    assert_eq!(row.identity, obs.identity);
    assert_eq!(row.root, f.root());
    f.journal.stable(from_ref(&obs)).unwrap();
    let row = f.journal.get(row.id).unwrap().unwrap();
    assert_eq!(row.state, FileState::Queued);
    assert!(row.queued_at.is_some());
    assert_eq!(
        f.journal.seen(from_ref(&obs)).unwrap(),
        [false],
        "queued: forget"
    );
    assert_eq!(
        f.journal.stable_batch(from_ref(&obs)).unwrap(),
        0,
        "queued once"
    );
    assert_eq!(rows(&f), 1);
}

#[test]
fn stable_requires_the_same_identity_and_a_non_empty_file() {
    let f = Fixture::new();
    let old = f.write("a.mp4", b"hello");
    f.journal.seen(from_ref(&old)).unwrap();
    let new = f.append("a.mp4", b" world");
    f.journal.seen(from_ref(&new)).unwrap();
    assert_eq!(f.journal.stable_batch(from_ref(&old)).unwrap(), 0);
    assert_eq!(f.journal.stable_batch(from_ref(&new)).unwrap(), 1);

    let empty = f.write("empty.mp4", b"");
    assert_eq!(f.journal.seen(from_ref(&empty)).unwrap(), [true]);
    assert_eq!(f.journal.stable_batch(from_ref(&empty)).unwrap(), 0);
    let row = f.journal.find_by_path(&empty.path).unwrap().unwrap();
    assert_eq!(row.state, FileState::Settling, "an empty file waits");
}

#[test]
fn changed_after_queued_goes_back_to_settling() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"hello");
    let changed = f.append("a.mp4", b" more");
    assert_eq!(f.journal.seen(from_ref(&changed)).unwrap(), [true]);
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!(row.state, FileState::Settling);
    assert_eq!(row.identity, changed.identity);
    assert_eq!(row.queued_at, None);
    assert_eq!(rows(&f), 1, "same row");
}

#[test]
fn changed_while_uploading_abandons_the_video_and_stops_the_worker() {
    let f = Fixture::new();
    let id = f.uploading("a.mp4", b"0123456789", Some(4), "vi1", 4);
    let changed = f.append("a.mp4", b"x");
    assert_eq!(f.journal.seen(from_ref(&changed)).unwrap(), [true]);
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!(row.state, FileState::Settling);
    assert_eq!(
        (row.video_id, row.bytes_uploaded, row.chunk_size),
        (None, 0, None)
    );
    let e = f.journal.commit_offset(id, 8).unwrap_err();
    assert!(matches!(e, JournalError::WrongState { .. }), "{e}");
    let notes = f.journal.notes(Some(id)).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NoteKind::Abandoned);
    assert_eq!(notes[0].video_id.as_deref(), Some("vi1"));
    assert!(
        notes[0].reason.contains("4 of 10 bytes"),
        "{}",
        notes[0].reason
    );
}

#[test]
fn done_with_the_same_identity_is_not_tracked_again() {
    let f = Fixture::new();
    let id = f.done("a.mp4", b"hello", "vi1");
    let obs = f.observe("a.mp4");
    assert_eq!(f.journal.seen(from_ref(&obs)).unwrap(), [false]);
    assert_eq!(f.journal.stable_batch(from_ref(&obs)).unwrap(), 0);
    assert_eq!(rows(&f), 1);
    assert_eq!(f.journal.get(id).unwrap().unwrap().state, FileState::Done);
}

#[test]
fn rename_before_upload_keeps_the_row_and_its_state() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"hello");
    let moved = f.rename("a.mp4", "b.mp4");
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [false]);
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!(row.path, moved.path);
    assert_eq!(row.state, FileState::Queued);
    assert_eq!(row.identity, moved.identity, "ctime follows");
    f.journal.gone(&f.root(), &[f.path("a.mp4")]).unwrap();
    assert_eq!(f.journal.get(id).unwrap().unwrap().state, FileState::Queued);
    assert_eq!(rows(&f), 1);
}

#[test]
fn rename_while_settling_keeps_tracking_the_same_row() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"hello");
    f.journal.seen(from_ref(&obs)).unwrap();
    let moved = f.rename("a.mp4", "sub.mp4");
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [true]);
    assert_eq!(f.journal.stable_batch(from_ref(&moved)).unwrap(), 1);
    assert_eq!(rows(&f), 1);
}

#[test]
fn rename_after_upload_is_not_uploaded_again() {
    let f = Fixture::new();
    let id = f.done("a.mp4", b"hello", "vi1");
    let moved = f.rename("a.mp4", "b.mp4");
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [false]);
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!((row.state, row.path), (FileState::Done, moved.path.clone()));
    assert_eq!(row.video_id.as_deref(), Some("vi1"));
    assert_eq!(rows(&f), 1);
}

#[test]
fn rename_reported_after_gone_restores_the_row_with_its_state_and_progress() {
    let f = Fixture::new();
    let id = f.uploading("a.mp4", b"0123456789", None, "vi1", 5);
    f.journal.requeue(id).unwrap();
    let moved = f.rename("a.mp4", "b.mp4");
    f.journal.gone(&f.root(), &[f.path("a.mp4")]).unwrap();
    assert_eq!(f.journal.get(id).unwrap().unwrap().state, FileState::Gone);
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [false]);
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!(row.state, FileState::Queued, "the state it had before");
    assert_eq!(row.path, moved.path);
    assert_eq!(row.identity, moved.identity);
    assert_eq!(
        (row.video_id.as_deref(), row.bytes_uploaded),
        (Some("vi1"), 5)
    );
    assert_eq!(rows(&f), 1);
}

#[test]
fn settling_file_renamed_after_gone_settles_again() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"hello");
    f.journal.seen(from_ref(&obs)).unwrap();
    let moved = f.rename("a.mp4", "b.mp4");
    f.journal.gone(&f.root(), from_ref(&obs.path)).unwrap();
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [true]);
    assert_eq!(f.journal.stable_batch(from_ref(&moved)).unwrap(), 1);
    assert_eq!(rows(&f), 1);
}

#[test]
fn new_file_at_an_old_done_path_is_a_new_row() {
    let f = Fixture::new();
    let old = f.done("a.mp4", b"first", "vi1");
    std::fs::remove_file(f.path("a.mp4")).unwrap();
    let obs = f.write("a.mp4", b"second take, longer");
    assert_eq!(f.journal.seen(from_ref(&obs)).unwrap(), [true]);
    let row = f.journal.find_by_path(&obs.path).unwrap().unwrap();
    assert_ne!(row.id, old);
    assert_eq!(row.state, FileState::Settling);
    assert_eq!(f.journal.get(old).unwrap().unwrap().state, FileState::Done);
    assert_eq!(rows(&f), 2);
}

#[test]
fn mv_over_a_tracked_file_keeps_the_moved_row_and_retires_the_replaced_one() {
    let f = Fixture::new();
    let done = f.done("a.mp4", b"uploaded", "vi1");
    let queued = f.queued("b.mp4", b"waiting");
    let moved = f.rename("a.mp4", "b.mp4");
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [false]);
    let row = f.journal.get(done).unwrap().unwrap();
    assert_eq!((row.state, row.path), (FileState::Done, moved.path.clone()));
    assert_eq!(
        f.journal.get(queued).unwrap().unwrap().state,
        FileState::Gone
    );
    assert_eq!(rows(&f), 2);
}

#[test]
fn hard_link_is_not_a_rename() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"hello");
    std::fs::hard_link(f.path("a.mp4"), f.path("link.mp4")).unwrap();
    let link = f.observe("link.mp4");
    assert_eq!(f.journal.seen(from_ref(&link)).unwrap(), [true]);
    assert_eq!(f.journal.get(id).unwrap().unwrap().path, f.path("a.mp4"));
    assert_eq!(rows(&f), 2);
}

#[test]
fn gone_and_back_with_the_same_content() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"hello");
    f.journal.seen(from_ref(&obs)).unwrap();
    assert_eq!(
        f.journal
            .gone_batch(&f.root(), from_ref(&obs.path))
            .unwrap(),
        1
    );
    let row = f.journal.find_by_path(&obs.path).unwrap().unwrap();
    assert_eq!(row.state, FileState::Gone);
    assert_eq!(f.journal.seen(from_ref(&obs)).unwrap(), [true]);
    let again = f.journal.find_by_path(&obs.path).unwrap().unwrap();
    assert_eq!((again.id, again.state), (row.id, FileState::Settling));
}

#[test]
fn gone_with_a_started_video_reports_it_abandoned() {
    let f = Fixture::new();
    let id = f.uploading("a.mp4", b"0123456789", None, "vi7", 4);
    f.journal
        .schedule_retry(id, std::time::SystemTime::now(), 1, "timeout", None)
        .unwrap();
    let idle = f.queued("b.mp4", b"xy");
    std::fs::remove_file(f.path("a.mp4")).unwrap();
    std::fs::remove_file(f.path("b.mp4")).unwrap();
    let n = f
        .journal
        .gone_batch(&f.root(), &[f.path("a.mp4"), f.path("b.mp4")])
        .unwrap();
    assert_eq!(n, 2);
    let notes = f.journal.notes(None).unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (
            notes[0].file_id,
            notes[0].kind,
            notes[0].video_id.as_deref()
        ),
        (id, NoteKind::Abandoned, Some("vi7"))
    );
    assert_eq!(f.journal.notes(Some(idle)).unwrap(), []);
}

#[test]
fn gone_leaves_uploading_and_done_rows_alone() {
    let f = Fixture::new();
    let up = f.queued("up.mp4", b"x");
    f.journal.claim(up).unwrap();
    let done = f.done("done.mp4", b"y", "vi1");
    let n = f
        .journal
        .gone_batch(&f.root(), &[f.path("up.mp4"), f.path("done.mp4")])
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        f.journal.get(up).unwrap().unwrap().state,
        FileState::Uploading
    );
    assert_eq!(f.journal.get(done).unwrap().unwrap().state, FileState::Done);
}

#[test]
fn failed_file_that_changes_gets_a_fresh_start() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"bad");
    f.journal.claim(id).unwrap();
    f.journal
        .mark_failed(id, "invalid file", Some("invalid-file"))
        .unwrap();
    let same = f.observe("a.mp4");
    assert_eq!(f.journal.seen(from_ref(&same)).unwrap(), [false]);
    let fixed = f.write("a.mp4", b"re-exported");
    assert_eq!(f.journal.seen(from_ref(&fixed)).unwrap(), [true]);
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!((row.state, row.last_error), (FileState::Settling, None));
}

#[test]
fn enqueue_skips_settling_and_reports_done_files() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"hello");
    let row = f.journal.enqueue(&obs).unwrap();
    assert_eq!(row.state, FileState::Queued);
    assert_eq!(f.journal.enqueue(&obs).unwrap().id, row.id);
    f.journal.claim(row.id).unwrap();
    f.journal.mark_done(row.id, "ab", "vi9").unwrap();
    let again = f.journal.enqueue(&obs).unwrap();
    assert_eq!((again.id, again.state), (row.id, FileState::Done));
}

#[test]
fn a_batch_of_a_thousand_is_one_call() {
    let f = Fixture::new();
    let batch: Vec<_> = (0..1000)
        .map(|i| f.write(&format!("f{i}.mp4"), format!("{i}").as_bytes()))
        .collect();
    let track = f.journal.seen(&batch).unwrap();
    assert_eq!(track.len(), 1000);
    assert!(track.iter().all(|t| *t));
    assert_eq!(f.journal.stable_batch(&batch).unwrap(), 1000);
    assert_eq!(f.journal.counts().unwrap().get(FileState::Queued), 1000);
    assert!(f.journal.seen(&batch).unwrap().iter().all(|t| !*t));
}

#[test]
fn scan_batches_restore_full_sync() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"x");
    f.journal.seen(from_ref(&obs)).unwrap();
    f.journal.stable(from_ref(&obs)).unwrap();
    let sync: i64 = f
        .journal
        .conn()
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL for the upload side's commits");
}

#[test]
fn mv_of_a_done_file_over_another_done_file() {
    let f = Fixture::new();
    let a = f.done("a.mp4", b"first upload", "vi1");
    let _b = f.done("b.mp4", b"second", "vi2");
    let moved = f.rename("a.mp4", "b.mp4");
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [false]);
    let row = f.journal.find_by_path(&moved.path).unwrap().unwrap();
    assert_eq!(row.id, a, "the row of the file now at the path");
    assert_eq!(row.video_id.as_deref(), Some("vi1"));
    assert_eq!(f.journal.seen(from_ref(&moved)).unwrap(), [false]);
    assert_eq!(rows(&f), 2);
}
