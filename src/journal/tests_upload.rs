//! Unit tests of the upload side's transitions.

use std::time::{Duration, SystemTime};

use super::testutil::Fixture;
use super::{FileState, JournalError, NoteKind, RetrySelection, TokenState};

const DEAD_OWNER: &str = "no-such-boot:1:1";

#[test]
fn claim_next_takes_the_oldest_due_row() {
    let f = Fixture::new();
    let a = f.queued("a.mp4", b"a");
    let b = f.queued("b.mp4", b"b");
    let c = f.queued("c.mp4", b"c");
    let now = SystemTime::now();
    // a fails and waits an hour.
    f.journal.claim(a).unwrap();
    f.journal
        .schedule_retry(a, now + Duration::from_secs(3600), 1, "timeout", None)
        .unwrap();
    let first = f.journal.claim_next(now).unwrap().unwrap();
    assert_eq!((first.id, first.state), (b, FileState::Uploading));
    assert_eq!(f.journal.claim_next(now).unwrap().unwrap().id, c);
    assert_eq!(f.journal.claim_next(now).unwrap(), None, "a is not due");
    let later = now + Duration::from_secs(3601);
    let retried = f.journal.claim_next(later).unwrap().unwrap();
    assert_eq!((retried.id, retried.attempts), (a, 1));
    assert_eq!(retried.last_error.as_deref(), Some("timeout"));
}

#[test]
fn a_whole_chunked_upload_leaves_a_receipt() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    let row = f.journal.claim_next(SystemTime::now()).unwrap().unwrap();
    assert_eq!(row.id, id);
    assert_eq!(f.journal.start_upload(id, 4).unwrap().chunk_size, Some(4));
    let row = f.journal.mark_first_chunk_in_flight(id).unwrap();
    assert!(row.first_chunk_in_flight);
    let row = f.journal.commit_video_id(id, "vi1").unwrap();
    assert!(!row.first_chunk_in_flight);
    f.journal.commit_offset(id, 4).unwrap();
    f.journal.commit_offset(id, 8).unwrap();
    f.journal.commit_offset(id, 10).unwrap();
    let row = f.journal.mark_done(id, "abcdef", "vi1").unwrap();
    assert_eq!(row.state, FileState::Done);
    assert_eq!(row.content_hash.as_deref(), Some("abcdef"));
    assert_eq!(row.bytes_uploaded, 10);
    assert!(row.done_at.is_some());
    assert_eq!(row.claimed_by, None);
    let row = f.journal.record_after_upload(id, "kept", false).unwrap();
    assert_eq!(row.after_upload.as_deref(), Some("kept"));
}

#[test]
fn progress_commits_are_checked() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    let e = f.journal.commit_offset(id, 4).unwrap_err();
    assert!(
        matches!(e, JournalError::WrongState { .. }),
        "not claimed: {e}"
    );
    f.journal.claim(id).unwrap();
    f.journal.start_upload(id, 4).unwrap();
    assert_eq!(
        f.journal.start_upload(id, 8).unwrap().chunk_size,
        Some(4),
        "kept"
    );
    f.journal.commit_offset(id, 8).unwrap();
    assert!(matches!(
        f.journal.commit_offset(id, 4),
        Err(JournalError::Invalid { .. })
    ));
    assert!(matches!(
        f.journal.commit_offset(id, 11),
        Err(JournalError::Invalid { .. })
    ));
    f.journal.commit_video_id(id, "vi1").unwrap();
    f.journal.commit_video_id(id, "vi1").unwrap();
    assert!(matches!(
        f.journal.commit_video_id(id, "vi2"),
        Err(JournalError::Invalid { .. })
    ));
    assert!(matches!(
        f.journal.mark_first_chunk_in_flight(id),
        Err(JournalError::Invalid { .. })
    ));
    assert!(matches!(
        f.journal.mark_done(id, "ab", "vi2"),
        Err(JournalError::Invalid { .. })
    ));
    assert!(f.journal.get(999).unwrap().is_none());
    assert!(matches!(
        f.journal.requeue(999),
        Err(JournalError::NotFound { id: 999 })
    ));
}

#[test]
fn commit_offset_resets_attempts() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    f.journal.claim(id).unwrap();
    f.journal
        .schedule_retry(id, SystemTime::UNIX_EPOCH, 3, "503", None)
        .unwrap();
    let row = f.journal.claim_next(SystemTime::now()).unwrap().unwrap();
    assert_eq!(row.attempts, 3);
    let row = f.journal.commit_offset(id, 4).unwrap();
    assert_eq!(
        (row.attempts, row.last_error, row.next_attempt_at),
        (0, None, None)
    );
    f.journal
        .schedule_retry(id, SystemTime::UNIX_EPOCH, 2, "503", None)
        .unwrap();
    assert_eq!(f.journal.reset_attempts(id).unwrap().attempts, 0);
}

/// A first request whose last body byte never left (its connection resets when the process
/// dies) cannot have created a video: the reclaim notes no possible orphan for it; one whose
/// whole body left is noted.
#[test]
fn reclaim_notes_an_orphan_only_after_the_whole_first_body_left() {
    let f = Fixture::new();
    let partial = f.queued("a.mp4", b"0123456789");
    let whole = f.queued("b.mp4", b"0123456789");
    for id in [partial, whole] {
        f.journal.claim(id).unwrap();
        f.journal.mark_first_chunk_in_flight(id).unwrap();
    }
    let row = f.journal.mark_first_body_sent(whole).unwrap();
    assert!(row.possible_orphan());
    assert!(!f.journal.get(partial).unwrap().unwrap().possible_orphan());
    f.sql(&format!(
        "UPDATE files SET claimed_by = '{DEAD_OWNER}' WHERE id IN ({partial}, {whole})"
    ));
    f.journal.reclaim_interrupted().unwrap();
    assert!(f.journal.notes(Some(partial)).unwrap().is_empty());
    let notes = f.journal.notes(Some(whole)).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NoteKind::Orphan);
    for id in [partial, whole] {
        let r = f.journal.get(id).unwrap().unwrap();
        assert!(!r.first_chunk_in_flight && !r.first_body_sent, "{r:?}");
    }
    // Only a first request in flight can be marked.
    f.journal.claim(partial).unwrap();
    assert!(f.journal.mark_first_body_sent(partial).is_err());
}

#[test]
fn reclaim_resumes_dead_claims_and_leaves_live_ones() {
    let f = Fixture::new();
    let resumed = f.queued("a.mp4", b"0123456789");
    let orphaned = f.queued("b.mp4", b"0123456789");
    let mine = f.queued("c.mp4", b"0123456789");
    for id in [resumed, orphaned, mine] {
        f.journal.claim(id).unwrap();
    }
    f.journal.start_upload(resumed, 4).unwrap();
    f.journal.commit_video_id(resumed, "vi1").unwrap();
    f.journal.commit_offset(resumed, 4).unwrap();
    f.journal.mark_first_chunk_in_flight(orphaned).unwrap();
    f.journal.mark_first_body_sent(orphaned).unwrap();
    f.sql(&format!(
        "UPDATE files SET claimed_by = '{DEAD_OWNER}' WHERE id IN ({resumed}, {orphaned})"
    ));
    let back = f.journal.reclaim_interrupted().unwrap();
    let ids: Vec<i64> = back.iter().map(|r| r.id).collect();
    assert_eq!(ids, [resumed, orphaned]);
    let r = f.journal.get(resumed).unwrap().unwrap();
    assert_eq!(r.state, FileState::Queued);
    assert_eq!(
        (r.video_id.as_deref(), r.bytes_uploaded, r.chunk_size),
        (Some("vi1"), 4, Some(4))
    );
    let o = f.journal.get(orphaned).unwrap().unwrap();
    assert_eq!(
        (o.state, o.first_chunk_in_flight),
        (FileState::Queued, false)
    );
    let notes = f.journal.notes(Some(orphaned)).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NoteKind::Orphan);
    assert_eq!(
        f.journal.get(mine).unwrap().unwrap().state,
        FileState::Uploading
    );
    // A claim held by another (dead or alive) process cannot be committed to by this one.
    f.sql(&format!(
        "UPDATE files SET claimed_by = '{DEAD_OWNER}' WHERE id = {mine}"
    ));
    assert!(matches!(
        f.journal.commit_offset(mine, 4),
        Err(JournalError::WrongState { .. })
    ));
}

#[test]
fn reset_for_new_video_records_the_abandoned_video() {
    let f = Fixture::new();
    let id = f.uploading("a.mp4", b"0123456789", None, "vi1", 4);
    let changed = f.append("a.mp4", b"!");
    let row = f
        .journal
        .reset_for_new_video(id, &changed.identity)
        .unwrap();
    assert_eq!(row.state, FileState::Settling);
    assert_eq!(row.identity, changed.identity);
    assert_eq!((row.video_id, row.bytes_uploaded), (None, 0));
    let notes = f.journal.notes(None).unwrap();
    assert_eq!(notes[0].video_id.as_deref(), Some("vi1"));
}

#[test]
fn restart_upload_keeps_the_claim_and_forgets_the_video() {
    let f = Fixture::new();
    let id = f.uploading("a.mp4", b"0123456789", Some(4), "vi1", 4);
    let row = f
        .journal
        .restart_upload(id, "the video was deleted")
        .unwrap();
    assert_eq!(row.state, FileState::Uploading);
    assert_eq!(
        (row.video_id, row.bytes_uploaded, row.chunk_size),
        (None, 0, None)
    );
    f.journal.record_abandoned(id, "vi0", "manual").unwrap();
    f.journal.record_orphan(id, "lost response").unwrap();
    let notes = f.journal.notes(Some(id)).unwrap();
    assert_eq!(notes.len(), 3);
    assert!(notes[0].reason.contains("the video was deleted"));
}

#[test]
fn failed_then_retried() {
    let f = Fixture::new();
    let a = f.queued("a.mp4", b"a");
    let b = f.queued("b.mp4", b"b");
    let c = f.queued("c.mp4", b"c");
    for id in [a, b] {
        f.journal.claim(id).unwrap();
        f.journal
            .mark_failed(id, "Invalid file: not a video", Some("invalid-file"))
            .unwrap();
    }
    let row = f.journal.get(a).unwrap().unwrap();
    assert_eq!(row.state, FileState::Failed);
    assert_eq!(row.last_error_slug.as_deref(), Some("invalid-file"));
    assert_eq!(
        f.journal.claim_next(SystemTime::now()).unwrap().unwrap().id,
        c
    );

    let e = f
        .journal
        .retry_failed(&RetrySelection::Ids(vec![a, 4242]))
        .unwrap_err();
    assert!(matches!(e, JournalError::NotFound { id: 4242 }), "{e}");
    assert_eq!(
        f.journal.get(a).unwrap().unwrap().state,
        FileState::Failed,
        "unchanged"
    );

    let out = f
        .journal
        .retry_failed(&RetrySelection::Ids(vec![a, c]))
        .unwrap();
    assert_eq!(out.requeued.len(), 1);
    assert_eq!(out.requeued[0].id, a);
    assert_eq!(out.requeued[0].state, FileState::Queued);
    assert_eq!(out.skipped, [(c, FileState::Uploading)]);
    let out = f.journal.retry_failed(&RetrySelection::AllFailed).unwrap();
    assert_eq!(out.requeued.iter().map(|r| r.id).collect::<Vec<_>>(), [b]);
    assert_eq!(f.journal.counts().unwrap().get(FileState::Failed), 0);
}

#[test]
fn retry_makes_a_waiting_row_due_now() {
    let f = Fixture::new();
    let a = f.queued("a.mp4", b"a");
    f.journal.claim(a).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    f.journal.schedule_retry(a, later, 4, "503", None).unwrap();
    assert_eq!(f.journal.claim_next(SystemTime::now()).unwrap(), None);
    let out = f
        .journal
        .retry_failed(&RetrySelection::Ids(vec![a]))
        .unwrap();
    assert_eq!(out.requeued.len(), 1);
    assert_eq!(
        f.journal.claim_next(SystemTime::now()).unwrap().unwrap().id,
        a
    );
}

#[test]
fn requeue_releases_the_claim_keeping_progress() {
    let f = Fixture::new();
    let a = f.queued("a.mp4", b"0123456789");
    f.journal.claim(a).unwrap();
    f.journal.commit_video_id(a, "vi1").unwrap();
    f.journal.commit_offset(a, 5).unwrap();
    let row = f.journal.requeue(a).unwrap();
    assert_eq!(
        (row.state, row.claimed_by, row.bytes_uploaded),
        (FileState::Queued, None, 5)
    );
    assert!(matches!(
        f.journal.requeue(a),
        Err(JournalError::WrongState { .. })
    ));
}

#[test]
fn token_state_is_shared_through_the_journal() {
    let f = Fixture::new();
    assert_eq!(f.journal.token_state().unwrap().state, TokenState::Unknown);
    f.journal
        .set_token_state(
            TokenState::Rejected,
            Some("authentication-invalid-upload-token"),
        )
        .unwrap();
    let other = super::Journal::open_read_only(f.journal.path()).unwrap();
    let t = other.token_state().unwrap();
    assert_eq!(t.state, TokenState::Rejected);
    assert_eq!(
        t.reason.as_deref(),
        Some("authentication-invalid-upload-token")
    );
    assert!(t.since.is_some());
    f.journal.set_token_state(TokenState::Ok, None).unwrap();
    assert_eq!(other.token_state().unwrap().state, TokenState::Ok);
}

#[test]
fn queue_position_and_summary() {
    let f = Fixture::new();
    let a = f.queued("a.mp4", b"a");
    let b = f.queued("b.mp4", b"b");
    assert_eq!(
        f.journal.queue_position(a, SystemTime::now()).unwrap(),
        Some((1, 2))
    );
    assert_eq!(
        f.journal.queue_position(b, SystemTime::now()).unwrap(),
        Some((2, 2))
    );
    f.journal.claim(a).unwrap();
    assert_eq!(
        f.journal.queue_position(a, SystemTime::now()).unwrap(),
        None
    );
    assert_eq!(
        f.journal.queue_position(b, SystemTime::now()).unwrap(),
        Some((1, 1))
    );
    let s = f.journal.summary().unwrap();
    assert_eq!(s.counts.get(FileState::Uploading), 1);
    assert_eq!(s.counts.get(FileState::Queued), 1);
    assert!(s.oldest_queued_at.is_some());
    assert_eq!(s.counts.iter().count(), 6);
}

#[test]
fn queue_position_skips_rows_waiting_for_a_retry() {
    let f = Fixture::new();
    let a = f.queued("a.mp4", b"a");
    let b = f.queued("b.mp4", b"b");
    f.journal.claim(a).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    f.journal.schedule_retry(a, later, 1, "503", None).unwrap();
    let now = SystemTime::now();
    assert_eq!(f.journal.queue_position(b, now).unwrap(), Some((1, 2)));
    assert_eq!(f.journal.queue_position(a, now).unwrap(), Some((1, 2)));
    let after = later + Duration::from_secs(1);
    assert_eq!(f.journal.queue_position(b, after).unwrap(), Some((2, 2)));
}

/// The hot queries search an index instead of scanning the table (100k rows must stay cheap).
#[test]
fn hot_queries_use_indexes() {
    let f = Fixture::new();
    let plan = |sql: &str| -> String {
        let c = f.journal.conn();
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = st
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join("; ")
    };
    for sql in [
        // claim_next
        "SELECT id FROM files WHERE state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= 5) ORDER BY queued_at, id LIMIT 1",
        // row_at_path / find_by_path
        "SELECT id FROM files WHERE path = x'2f61' ORDER BY state IN ('done', 'gone'), id DESC LIMIT 1",
        // rename_source
        "SELECT id FROM files WHERE ino = 1 AND dev = 2 AND size = 3 AND mtime_ns = 4 AND path != x'2f61'",
        // stable
        "SELECT id FROM files WHERE path = x'2f61' AND state = 'settling'",
        // status without --all
        "SELECT id FROM files WHERE state IN ('settling', 'queued', 'uploading', 'failed') ORDER BY id",
        // notes of a file
        "SELECT id FROM file_notes WHERE file_id = 3",
    ] {
        let p = plan(sql);
        assert!(p.contains("USING"), "{sql}\n  → {p}");
        assert!(
            !p.contains("SCAN files ") && p != "SCAN files",
            "{sql}\n  → {p}"
        );
    }
    // counts: a scan of the small state index, not of the table.
    let p = plan("SELECT state, count(*) FROM files GROUP BY state");
    assert!(p.contains("COVERING INDEX"), "{p}");
}

#[test]
fn heartbeat_names_a_running_daemon() {
    let f = Fixture::new();
    assert_eq!(f.journal.daemon_info().unwrap(), None);
    f.journal.heartbeat().unwrap();
    let d = f.journal.daemon_info().unwrap().unwrap();
    assert_eq!(d.pid, std::process::id());
    assert!(d.running);
    f.sql(&format!(
        "UPDATE kv SET value = '{{\"owner\":\"{DEAD_OWNER}\",\"pid\":1}}' WHERE key = 'daemon'"
    ));
    let d = f.journal.daemon_info().unwrap().unwrap();
    assert_eq!((d.pid, d.running), (1, false));
}

#[test]
fn heartbeat_if_older_writes_only_when_stale_or_not_ours() {
    let f = Fixture::new();
    let at = |f: &Fixture| f.journal.daemon_info().unwrap().map(|d| d.heartbeat_at);
    f.journal
        .heartbeat_if_older(Duration::from_secs(30))
        .unwrap();
    assert!(at(&f).is_some(), "none recorded: written");
    f.sql("UPDATE kv SET at = at - 1000 WHERE key = 'daemon'");
    let moved = at(&f).unwrap();
    f.journal
        .heartbeat_if_older(Duration::from_secs(30))
        .unwrap();
    assert_eq!(at(&f).unwrap(), moved, "fresh and ours: no write");
    f.journal
        .heartbeat_if_older(Duration::from_millis(500))
        .unwrap();
    assert!(at(&f).unwrap() > moved, "older than max_age: written");
    f.sql(&format!(
        "UPDATE kv SET value = '{{\"owner\":\"{DEAD_OWNER}\",\"pid\":1}}' WHERE key = 'daemon'"
    ));
    f.journal
        .heartbeat_if_older(Duration::from_secs(30))
        .unwrap();
    let d = f.journal.daemon_info().unwrap().unwrap();
    assert_eq!(
        d.pid,
        std::process::id(),
        "another owner's heartbeat: written"
    );
}

#[test]
fn vanished_file_is_gone_and_resumes_if_it_comes_back() {
    use crate::watch::Sink;
    let f = Fixture::new();
    let id = f.uploading("a.mp4", b"0123456789", None, "vi1", 5);
    let moved = f.rename("a.mp4", "elsewhere.mp4");
    let row = f
        .journal
        .mark_gone(id, "No such file or directory")
        .unwrap();
    assert_eq!((row.state, row.claimed_by), (FileState::Gone, None));
    let notes = f.journal.notes(Some(id)).unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (notes[0].kind, notes[0].video_id.as_deref()),
        (super::NoteKind::Abandoned, Some("vi1")),
        "the started video is reported abandoned while the file is gone"
    );
    assert!(notes[0].reason.contains("after 5 of 10 bytes"), "{notes:?}");
    assert_eq!(
        f.journal.seen(std::slice::from_ref(&moved)).unwrap(),
        [false]
    );
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!(row.state, FileState::Queued);
    assert_eq!(
        (row.video_id.as_deref(), row.bytes_uploaded),
        (Some("vi1"), 5)
    );
    assert_eq!(
        f.journal.notes(Some(id)).unwrap(),
        [],
        "back: the video resumes, the abandoned note is withdrawn"
    );
}

#[test]
fn vanished_file_without_a_video_leaves_no_note() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    f.journal.claim(id).unwrap();
    let row = f.journal.mark_gone(id, "gone").unwrap();
    assert_eq!(row.state, FileState::Gone);
    assert_eq!(f.journal.notes(Some(id)).unwrap(), []);
}

#[test]
fn journal_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<super::Journal>();
}

#[test]
fn a_first_request_that_never_left_clears_the_in_flight_mark() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    f.journal.claim_next(SystemTime::now()).unwrap().unwrap();
    assert!(
        f.journal
            .mark_first_chunk_in_flight(id)
            .unwrap()
            .first_chunk_in_flight
    );
    let row = f.journal.clear_first_chunk_in_flight(id).unwrap();
    assert!(!row.first_chunk_in_flight);
    assert_eq!(row.video_id, None);
    assert_eq!(row.state, FileState::Uploading, "the claim is kept");
    // Only the claimant may clear it.
    f.journal.requeue(id).unwrap();
    assert!(f.journal.clear_first_chunk_in_flight(id).is_err());
}

#[test]
fn list_without_all_shows_done_files_whose_delete_or_move_failed() {
    let f = Fixture::new();
    let done = |name: &str, outcome: &str| {
        let id = f.queued(name, b"0123");
        f.journal.claim(id).unwrap();
        f.journal.start_upload(id, 4).unwrap();
        f.journal.commit_video_id(id, "vi1").unwrap();
        f.journal.commit_offset(id, 4).unwrap();
        f.journal.mark_done(id, "blake3:ab", "vi1").unwrap();
        let failed = outcome.contains("failed:");
        f.journal.record_after_upload(id, outcome, failed).unwrap();
        id
    };
    done("kept.mp4", "kept");
    done("moved.mp4", "moved to /srv/uploaded/moved.mp4");
    let stuck_move = done(
        "m.mp4",
        "move failed: Read-only file system (os error 30); …",
    );
    let stuck_delete = done("d.mp4", "delete failed: Permission denied (os error 13); …");
    let listed: Vec<i64> = f
        .journal
        .list(false)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [stuck_move, stuck_delete]);
    assert_eq!(f.journal.list(true).unwrap().len(), 4);
}

/// `ingestd upload` waiting on the daemon reads the claim's owner instead of writing a reclaim
/// every few seconds: only a claim of a dead process is stale.
#[test]
fn a_claim_is_stale_only_when_its_process_is_gone() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123");
    let row = f.journal.claim(id).unwrap();
    assert!(!row.claim_is_stale(), "this process is alive");
    f.sql(&format!(
        "UPDATE files SET claimed_by = '{DEAD_OWNER}' WHERE id = {id}"
    ));
    assert!(f.journal.get(id).unwrap().unwrap().claim_is_stale());
}
