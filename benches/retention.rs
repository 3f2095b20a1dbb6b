//! Retention benchmark (issue 12; not a timed test): N files (default 1 000 000) go through the
//! real ingest path (`seen_batch` + `stable_batch`, batches of 1 000), are marked uploaded (one
//! SQL update from a second connection, `done_at` spread over N minutes), then
//! `Journal::prune_done_before` keeps the newest 10 000 `done` rows. Prints the journal's size
//! (file + WAL, after a checkpoint) full, after the prune and incremental vacuum, bytes per
//! `done` row, and bytes per tombstone (100 000 tombstones of the same paths added by SQL).
//!
//! `cargo bench --bench retention` (the size does not depend on the profile: `--profile dev`
//! builds nothing new after the tests). `INGESTD_BENCH_FILES=N`, `INGESTD_BENCH_DIR=DIR`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ingestd::journal::{FileIdentity, Journal, Observation};

const KEEP: u64 = 10_000;
const BATCH: usize = 1_000;

fn size(path: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal"] {
        let mut p = path.to_path_buf().into_os_string();
        p.push(suffix);
        total += std::fs::metadata(&p).map_or(0, |m| m.len());
    }
    total
}

fn checkpoint(path: &Path) {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    // Only under `cargo bench` (which passes `--bench`): `cargo test --all-targets` and nextest's
    // `--list` run this executable too, and it has no tests.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = std::env::var("INGESTD_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = match std::env::var_os("INGESTD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("bench dir");
    let path = dir.path().join("journal.sqlite");
    let journal = Journal::open(&path).expect("journal");
    let root = PathBuf::from("/srv/recordings");
    let started = Instant::now();
    let mut i = 0u64;
    while i < n {
        let batch: Vec<Observation> = (i..(i + BATCH as u64).min(n))
            .map(|k| Observation {
                root: root.clone(),
                path: root.join(format!("camera-{:02}/2026-12-04/clip-{k:07}.mp4", k % 16)),
                identity: FileIdentity {
                    dev: 2049,
                    ino: 1_000_000 + k,
                    size: 700_000_000 + k,
                    mtime_ns: 1_764_800_000_000_000_000 + k as i64,
                    ctime_ns: 1_764_800_000_000_000_000 + k as i64,
                },
            })
            .collect();
        journal.seen_batch(&batch).expect("seen");
        journal.stable_batch(&batch).expect("stable");
        i += BATCH as u64;
    }
    let ingest = started.elapsed();
    // Uploaded: done with a videoId and a BLAKE3 receipt, `done_at` one minute apart, so that
    // the newest KEEP are younger than the cutoff.
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("clock");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute(
            "UPDATE files SET state = 'done', video_id = 'vi' || substr(hex(randomblob(11)), 1, 22),
                content_hash = 'blake3:' || lower(hex(randomblob(32))), bytes_uploaded = size,
                chunk_size = 67108864, after_upload = 'kept', queued_at = NULL,
                done_at = ?1 - (?2 - id) * 60000",
            rusqlite::params![now_ms, n as i64],
        )
        .expect("done");
    }
    checkpoint(&path);
    let full = size(&path);
    let cutoff = SystemTime::now() - Duration::from_secs(KEEP * 60 - 30);
    let t = Instant::now();
    let out = journal.prune_done_before(cutoff).expect("prune");
    let prune_time = t.elapsed();
    checkpoint(&path);
    let pruned = size(&path);
    let stats = journal.stats().expect("stats");
    println!("files ingested: {n} in {:.1} s", ingest.as_secs_f64());
    println!(
        "journal with {n} done rows: {} ({:.0} bytes per row)",
        mib(full),
        full as f64 / n as f64
    );
    println!(
        "prune to {} rows: {} rows deleted in {:.1} s, {} pages freed",
        stats.rows,
        out.rows,
        prune_time.as_secs_f64(),
        out.freed_pages
    );
    println!("journal after prune + incremental vacuum: {}", mib(pruned));
    // Tombstones: what a pruned file still in place costs.
    let tombs = 100_000i64;
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute(
            "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?1 - 1)
             INSERT INTO tombstones (path, size, mtime_ns, content_hash, video_id, done_at)
             SELECT CAST(printf('/srv/recordings/camera-%02d/2026-12-04/clip-%07d.mp4', i % 16, i) AS BLOB),
                700000000 + i, 1764800000000000000 + i, 'blake3:' || lower(hex(randomblob(32))),
                'vi' || substr(hex(randomblob(11)), 1, 22), ?2 FROM k",
            rusqlite::params![tombs, now_ms],
        )
        .expect("tombstones");
    }
    checkpoint(&path);
    let with_tombs = size(&path);
    println!(
        "{tombs} tombstones: +{} ({:.0} bytes per tombstone)",
        mib(with_tombs.saturating_sub(pruned)),
        with_tombs.saturating_sub(pruned) as f64 / tombs as f64
    );
}
