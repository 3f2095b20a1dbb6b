//! Ingest benchmark (issue 3; not a timed test): the watcher with the REAL SQLite journal as its
//! sink. For trees of 10k and 100k files already present: initial scan + journal time (every file
//! has a `settling` row), time until every row is `queued` (past `settle`), a restart on the same
//! journal (the rows are already queued: nothing to track), and peak RSS. Then detection latency
//! (file written and closed → its row is `queued`) minus `settle`.
//!
//! `cargo bench --bench ingest` runs each measurement in a fresh child process, so VmHWM (peak
//! resident set) belongs to that measurement alone, and prints one line per measurement with its
//! CPU seconds (user+sys of the process, from getrusage) next to the wall time. Sizes:
//! `INGESTD_BENCH_SIZES=10000,100000` (default). Tree and journal location: `INGESTD_BENCH_DIR`
//! (default the system temp dir).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingestd::config::{WatchConfig, WatchMode};
use ingestd::journal::{FileState, Journal, Observation};
use ingestd::watch::{self, Sink, SinkError};
use tokio_util::sync::CancellationToken;

#[path = "common/mod.rs"]
mod common;
use common::{
    bench_dir, latencies, make_tree, mib, parent, proc_kib, runtime, spread, watch_config,
};

/// The journal, plus counters: how many rows the journal queued, and when each batch was queued.
struct JournalSink {
    journal: Journal,
    queued: AtomicUsize,
    seen_calls: AtomicUsize,
    queued_at: Option<Mutex<Vec<(PathBuf, Instant)>>>,
}

impl JournalSink {
    fn new(journal: Journal, record: bool) -> JournalSink {
        JournalSink {
            journal,
            queued: AtomicUsize::new(0),
            seen_calls: AtomicUsize::new(0),
            queued_at: record.then(|| Mutex::new(Vec::new())),
        }
    }
}

impl Sink for JournalSink {
    fn seen(&self, batch: &[Observation]) -> Result<Vec<bool>, SinkError> {
        self.seen_calls.fetch_add(1, Ordering::Relaxed);
        self.journal.seen(batch)
    }

    fn stable(&self, batch: &[Observation]) -> Result<(), SinkError> {
        let n = self
            .journal
            .stable_batch(batch)
            .map_err(|e| SinkError(e.to_string()))?;
        let now = Instant::now();
        self.queued.fetch_add(n, Ordering::Relaxed);
        if let Some(m) = &self.queued_at {
            let mut v = m.lock().unwrap();
            v.extend(batch.iter().map(|o| (o.path.clone(), now)));
        }
        Ok(())
    }

    fn gone(&self, root: &Path, paths: &[PathBuf]) -> Result<(), SinkError> {
        self.journal.gone(root, paths)
    }
}

fn cfg(root: &Path, settle: Duration) -> WatchConfig {
    watch_config(root, WatchMode::Events, settle, Duration::from_secs(30))
}

/// User + system CPU seconds of this process so far (all threads).
fn cpu_s() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn child_scan(n: usize) {
    let dir = bench_dir();
    let root = dir.path().join("root");
    let t = Instant::now();
    make_tree(&root, n);
    let made = t.elapsed();
    let journal_path = dir.path().join("journal.sqlite");
    let rt = runtime();
    let base = proc_kib("VmRSS:");
    let settle = Duration::from_secs(2);
    let journal = Journal::open(&journal_path).unwrap();
    let sink = Arc::new(JournalSink::new(journal.clone(), false));

    // First start: every file is new.
    let cpu0 = cpu_s();
    let (scan, scan_cpu, all_queued, all_cpu) = rt.block_on(async {
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let h = watch::spawn(vec![cfg(&root, settle)], sink.clone(), stop.clone());
        h.initial_scan_done().await;
        let scan = t0.elapsed();
        let scan_cpu = cpu_s() - cpu0;
        while sink.queued.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all = t0.elapsed();
        let all_cpu = cpu_s() - cpu0;
        stop.cancel();
        h.join().await;
        (scan, scan_cpu, all, all_cpu)
    });
    let counts = journal.counts().unwrap();
    assert_eq!(counts.get(FileState::Queued), n as u64);
    let hwm_first = proc_kib("VmHWM:");

    // Restart on the same journal: the rows are queued already, nothing is tracked.
    let sink2 = Arc::new(JournalSink::new(journal.clone(), false));
    let cpu1 = cpu_s();
    let (rescan, rescan_cpu) = rt.block_on(async {
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let h = watch::spawn(vec![cfg(&root, settle)], sink2.clone(), stop.clone());
        h.initial_scan_done().await;
        let t = t0.elapsed();
        let c = cpu_s() - cpu1;
        stop.cancel();
        h.join().await;
        (t, c)
    });
    assert_eq!(
        journal.counts().unwrap().get(FileState::Queued),
        n as u64,
        "a restart must not add rows"
    );
    let t = Instant::now();
    let listed = journal.list(false).unwrap().len();
    let list = t.elapsed();
    assert_eq!(listed, n);
    let journal_bytes = std::fs::metadata(&journal_path)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "ingest n={n}: initial scan + journal (settling rows) = {:.3} s wall, {:.3} s CPU; \
         all queued after {:.3} s (settle {} s, so {:.3} s past settle), {:.3} s CPU; \
         restart scan (all rows known) = {:.3} s wall, {:.3} s CPU; list(unfinished) {:.3} s; \
         seen batches {}; RSS before spawn {}, peak (VmHWM) {} after first start, {} at end; \
         journal {:.1} MiB; tree created in {:.1} s; load {}",
        scan.as_secs_f64(),
        scan_cpu,
        all_queued.as_secs_f64(),
        settle.as_secs(),
        (all_queued - scan).as_secs_f64() - settle.as_secs_f64(),
        all_cpu,
        rescan.as_secs_f64(),
        rescan_cpu,
        list.as_secs_f64(),
        sink.seen_calls.load(Ordering::Relaxed),
        mib(base),
        mib(hwm_first),
        mib(proc_kib("VmHWM:")),
        journal_bytes as f64 / 1048576.0,
        made.as_secs_f64(),
        load(),
    );
}

fn child_latency() {
    let dir = bench_dir();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let settle = Duration::from_secs(1);
    let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let sink = Arc::new(JournalSink::new(journal.clone(), true));
    let stop = CancellationToken::new();
    let rt = runtime();
    let lat = rt.block_on(async {
        let h = watch::spawn(vec![cfg(&root, settle)], sink.clone(), stop.clone());
        h.initial_scan_done().await;
        let log = sink.queued_at.as_ref().unwrap();
        let lat = latencies(&root, 20, settle, log, |p| {
            let row = journal.find_by_path(p).unwrap().unwrap();
            assert_eq!(row.state, FileState::Queued);
        })
        .await;
        stop.cancel();
        h.join().await;
        lat
    });
    println!(
        "latency (events, settle 1 s, real journal): closed → queued minus settle: {}; load {}",
        spread(&lat),
        load(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("scan-child") => return child_scan(args[2].parse().unwrap()),
        Some("latency-child") => return child_latency(),
        _ => {}
    }
    parent(&args, |sizes, run| {
        for n in sizes {
            run(&["scan-child", n]);
        }
        run(&["latency-child"]);
    });
}
