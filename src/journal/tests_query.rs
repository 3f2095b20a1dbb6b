//! Unit tests of the aggregate queries behind the metrics and the status page.

use super::FileState;
use super::testutil::Fixture;

#[test]
fn backlog_counts_unfinished_bytes_and_the_oldest_pending_row() {
    let f = Fixture::new();
    assert_eq!(f.journal.backlog().unwrap(), Default::default());

    let a = f.queued("a.mp4", &[1; 100]);
    let _b = f.queued("b.mp4", &[2; 50]);
    f.done("c.mp4", &[3; 70], "vi1");
    f.journal.seen_batch(&[f.write("d.mp4", &[4; 30])]).unwrap();
    let row = f.journal.claim(a).unwrap();
    f.journal.start_upload(row.id, 40).unwrap();
    f.journal.commit_video_id(row.id, "vi2").unwrap();
    f.journal.commit_offset(row.id, 40).unwrap();

    let b = f.journal.backlog().unwrap();
    // a: 100 - 40, b: 50, d (settling): 30; c is done.
    assert_eq!(b.bytes, 60 + 50 + 30);
    let oldest = b.oldest_pending_at.unwrap();
    assert_eq!(Some(oldest), row.queued_at, "a was queued first");
}

#[test]
fn recent_done_is_newest_first_and_unfinished_puts_failed_first() {
    let f = Fixture::new();
    f.done("one.mp4", b"1", "vi1");
    f.done("two.mp4", b"22", "vi2");
    let q = f.queued("q.mp4", b"q");
    let x = f.queued("x.mp4", b"x");
    f.journal.claim(x).unwrap();
    f.journal.mark_failed(x, "400 nope", Some("bad")).unwrap();

    let recent = f.journal.recent_done(10).unwrap();
    let ids: Vec<_> = recent.iter().map(|r| r.video_id.clone().unwrap()).collect();
    assert_eq!(ids, ["vi2", "vi1"]);
    assert_eq!(f.journal.recent_done(1).unwrap().len(), 1);

    let open = f.journal.unfinished(10).unwrap();
    let states: Vec<_> = open.iter().map(|r| (r.id, r.state)).collect();
    assert_eq!(states, [(x, FileState::Failed), (q, FileState::Queued)]);
    assert_eq!(f.journal.unfinished(1).unwrap().len(), 1);
}
