//! Unit tests of what idle upload workers rely on: [`Journal::next_due`], the work signal and
//! `PRAGMA data_version` for other processes' commits.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::sync::Notify;

use super::testutil::Fixture;
use super::{RetrySelection, from_unix_ms, to_unix_ms};

/// A waiter registered now, as an idle worker registers before it looks at the journal.
fn waiter(n: &Arc<Notify>) -> Pin<Box<tokio::sync::futures::Notified<'_>>> {
    let mut w = Box::pin(n.notified());
    w.as_mut().enable();
    w
}

fn woken(w: Pin<Box<tokio::sync::futures::Notified<'_>>>) -> bool {
    w.now_or_never().is_some()
}

#[test]
fn next_due_is_the_earliest_queued_retry_time() {
    let f = Fixture::new();
    assert_eq!(f.journal.next_due().unwrap(), None, "nothing queued");
    let a = f.queued("a.mp4", b"a");
    assert_eq!(
        f.journal.next_due().unwrap(),
        Some(from_unix_ms(0)),
        "a queued row without a retry time is due at once"
    );
    let b = f.queued("b.mp4", b"b");
    let now = SystemTime::now();
    let later = |s| from_unix_ms(to_unix_ms(now + Duration::from_secs(s)));
    f.journal.claim(a).unwrap();
    f.journal
        .schedule_retry(a, later(600), 1, "x", None)
        .unwrap();
    f.journal.claim(b).unwrap();
    f.journal
        .schedule_retry(b, later(30), 1, "x", None)
        .unwrap();
    assert_eq!(f.journal.next_due().unwrap(), Some(later(30)));
    // Rows in other states do not count.
    f.journal.claim_next(later(31)).unwrap().unwrap();
    assert_eq!(f.journal.next_due().unwrap(), Some(later(600)));
    f.journal.claim_next(later(601)).unwrap().unwrap();
    assert_eq!(f.journal.next_due().unwrap(), None);
}

#[test]
fn queueing_and_retries_wake_waiters() {
    let f = Fixture::new();
    let signal = f.journal.work_signal();

    // seen alone (settling) is no work.
    let w = waiter(&signal);
    let obs = f.write("a.mp4", b"a");
    f.journal.seen_batch(std::slice::from_ref(&obs)).unwrap();
    assert!(!woken(w), "a settling file is not work yet");

    let w = waiter(&signal);
    assert_eq!(
        f.journal.stable_batch(std::slice::from_ref(&obs)).unwrap(),
        1
    );
    assert!(woken(w), "the watcher queued a file");

    let id = f.journal.claim_next(SystemTime::now()).unwrap().unwrap().id;
    let w = waiter(&signal);
    f.journal.start_upload(id, 5 << 20).unwrap();
    assert!(!woken(w), "progress commits are no work");

    let w = waiter(&signal);
    let at = SystemTime::now() + Duration::from_secs(5);
    f.journal.schedule_retry(id, at, 1, "x", None).unwrap();
    assert!(
        woken(w),
        "a retry time moved: idle workers recompute their sleep"
    );

    f.journal.claim_next(at).unwrap().unwrap();
    f.journal.mark_failed(id, "bad", None).unwrap();
    let w = waiter(&signal);
    f.journal.retry_failed(&RetrySelection::AllFailed).unwrap();
    assert!(woken(w), "retry queued a failed file");
}

#[test]
fn data_version_sees_other_connections_only() {
    let f = Fixture::new();
    let v0 = f.journal.data_version().unwrap();
    f.queued("a.mp4", b"a");
    assert_eq!(f.journal.data_version().unwrap(), v0, "own commits");
    // Another process, like `ingestd retry`.
    let other = super::Journal::open_existing(f.journal.path()).unwrap();
    other.retry_failed(&RetrySelection::AllFailed).unwrap(); // nothing to do: no commit of rows
    other
        .conn()
        .execute("UPDATE files SET attempts = 3", [])
        .unwrap();
    let v1 = f.journal.data_version().unwrap();
    assert_ne!(v1, v0, "another connection's commit");
    assert_eq!(f.journal.data_version().unwrap(), v1, "unchanged since");
}

#[test]
fn a_queued_file_seen_again_unchanged_wakes_nobody() {
    let f = Fixture::new();
    let obs = f.write("a.mp4", b"a");
    f.journal.seen_batch(std::slice::from_ref(&obs)).unwrap();
    f.journal.stable_batch(std::slice::from_ref(&obs)).unwrap();
    let signal = f.journal.work_signal();
    let w = waiter(&signal);
    // A periodic rescan sees the queued file again, unchanged.
    assert_eq!(
        f.journal.seen_batch(std::slice::from_ref(&obs)).unwrap(),
        vec![false]
    );
    assert!(!woken(w), "no new work: idle workers stay asleep");
}
