//! Scale check (ignored by default; run with `cargo test --test journal_scale -- --ignored
//! --nocapture`): 100 000 new files journaled in batches of 1000, then queued, then a status
//! read. Prints the times and the process's peak RSS; asserts only the counts.

use std::path::PathBuf;
use std::time::Instant;

use ingestd::journal::{FileIdentity, FileState, Journal, Observation};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore]
fn hundred_thousand_files() {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let root = PathBuf::from("/srv/recordings");
    let batch_of = |start: u64| -> Vec<Observation> {
        (start..(start + 1000).min(N))
            .map(|i| Observation {
                root: root.clone(),
                path: root.join(format!("day{}/clip{i:06}.mp4", i / 1000)),
                identity: FileIdentity {
                    dev: 42,
                    ino: 1_000_000 + i,
                    size: 1 + i,
                    mtime_ns: 1_700_000_000_000_000_000 + i as i64,
                    ctime_ns: 1_700_000_000_000_000_000 + i as i64,
                },
            })
            .collect()
    };
    let t = Instant::now();
    for start in (0..N).step_by(1000) {
        let track = journal.seen_batch(&batch_of(start)).unwrap();
        assert!(track.iter().all(|t| *t));
    }
    let seen = t.elapsed();
    let t = Instant::now();
    for start in (0..N).step_by(1000) {
        journal.stable_batch(&batch_of(start)).unwrap();
    }
    let stable = t.elapsed();
    let t = Instant::now();
    for start in (0..N).step_by(1000) {
        let track = journal.seen_batch(&batch_of(start)).unwrap();
        assert!(track.iter().all(|t| !*t));
    }
    let rescan = t.elapsed();
    let t = Instant::now();
    let counts = journal.counts().unwrap();
    let listed = journal.list(false).unwrap().len();
    let status = t.elapsed();
    assert_eq!(counts.get(FileState::Queued), N);
    assert_eq!(listed as u64, N);
    println!(
        "{N} files: seen {seen:?}, stable {stable:?}, rescan {rescan:?}, counts+list {status:?}, \
         peak RSS {} KiB",
        peak_rss_kib().unwrap_or(0)
    );
}
