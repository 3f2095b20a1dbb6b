//! Watcher benchmark (not a timed test): initial scan + sink time and peak RSS for trees of 10k and
//! 100k files, and detection latency (file closed → reported stable) minus `settle`.
//!
//! `cargo bench --bench scan` runs each measurement in a fresh child process (so that VmHWM, the
//! peak resident set, belongs to that measurement alone) and prints one line per measurement.
//! Sizes: `INGESTD_BENCH_SIZES=10000,100000` (default). Tree location: `INGESTD_BENCH_DIR` (default
//! the system temp dir). The sink is an in-memory counter that accepts every file; the journal
//! replaces it once merged (its cost is the journal's own).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingestd::config::WatchMode;
use ingestd::journal::Observation;
use ingestd::watch::{self, Sink, SinkError};
use tokio_util::sync::CancellationToken;

#[path = "common/mod.rs"]
mod common;
use common::{
    bench_dir, latencies, make_tree, mib, parent, proc_kib, runtime, spread, watch_config,
};

/// Counts reports; remembers when each path was reported stable only if asked to.
#[derive(Default)]
struct BenchSink {
    seen: AtomicUsize,
    stable: AtomicUsize,
    calls: AtomicUsize,
    max_batch: AtomicUsize,
    stable_at: Option<Mutex<Vec<(PathBuf, Instant)>>>,
}

impl Sink for BenchSink {
    fn seen(&self, batch: &[Observation]) -> Result<Vec<bool>, SinkError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.max_batch.fetch_max(batch.len(), Ordering::Relaxed);
        self.seen.fetch_add(batch.len(), Ordering::Relaxed);
        Ok(vec![true; batch.len()])
    }

    fn stable(&self, batch: &[Observation]) -> Result<(), SinkError> {
        let now = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.max_batch.fetch_max(batch.len(), Ordering::Relaxed);
        self.stable.fetch_add(batch.len(), Ordering::Relaxed);
        if let Some(m) = &self.stable_at {
            let mut v = m.lock().unwrap();
            v.extend(batch.iter().map(|o| (o.path.clone(), now)));
        }
        Ok(())
    }

    fn gone(&self, _root: &Path, _paths: &[PathBuf]) -> Result<(), SinkError> {
        Ok(())
    }
}

fn child_scan(n: usize, mode: WatchMode) {
    let dir = bench_dir();
    let root = dir.path().join("root");
    let t = Instant::now();
    make_tree(&root, n);
    let made = t.elapsed();
    let rt = runtime();
    let base = proc_kib("VmRSS:");
    let settle = Duration::from_secs(2);
    let sink = Arc::new(BenchSink::default());
    let stop = CancellationToken::new();
    let (scan, all_stable, status) = rt.block_on(async {
        let t0 = Instant::now();
        let h = watch::spawn(
            vec![watch_config(&root, mode, settle, Duration::from_secs(30))],
            sink.clone(),
            stop.clone(),
        );
        h.initial_scan_done().await;
        let scan = t0.elapsed();
        while sink.stable.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all = t0.elapsed();
        let status = h.status();
        stop.cancel();
        h.join().await;
        (scan, all, status)
    });
    assert_eq!(sink.seen.load(Ordering::Relaxed), n);
    println!(
        "scan n={n} mode={} (watches {}): initial scan + seen = {:.3} s; all stable after {:.3} s \
         (settle {} s, so {:.3} s past settle); sink calls {} (max batch {}); \
         RSS before spawn {}, peak (VmHWM) {}; tree created in {:.1} s",
        status[0].mode,
        status[0].watches,
        scan.as_secs_f64(),
        all_stable.as_secs_f64(),
        settle.as_secs(),
        (all_stable - scan).as_secs_f64() - settle.as_secs_f64(),
        sink.calls.load(Ordering::Relaxed),
        sink.max_batch.load(Ordering::Relaxed),
        mib(base),
        mib(proc_kib("VmHWM:")),
        made.as_secs_f64(),
    );
}

fn child_latency(mode: WatchMode) {
    let dir = bench_dir();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let settle = Duration::from_secs(1);
    let poll = Duration::from_secs(1);
    let sink = Arc::new(BenchSink {
        stable_at: Some(Mutex::new(Vec::new())),
        ..BenchSink::default()
    });
    let stop = CancellationToken::new();
    let rt = runtime();
    let lat = rt.block_on(async {
        let h = watch::spawn(
            vec![watch_config(&root, mode, settle, poll)],
            sink.clone(),
            stop.clone(),
        );
        h.initial_scan_done().await;
        let log = sink.stable_at.as_ref().unwrap();
        let lat = latencies(&root, 10, settle, log, |_| {}).await;
        stop.cancel();
        h.join().await;
        lat
    });
    println!(
        "latency mode={} (settle 1 s{}): closed → stable minus settle: {}",
        match mode {
            WatchMode::Poll => "poll",
            _ => "events",
        },
        if mode == WatchMode::Poll {
            ", poll_interval 1 s"
        } else {
            ""
        },
        spread(&lat),
    );
}

fn mode_arg(s: &str) -> WatchMode {
    if s == "poll" {
        WatchMode::Poll
    } else {
        WatchMode::Events
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("scan-child") => return child_scan(args[2].parse().unwrap(), mode_arg(&args[3])),
        Some("latency-child") => return child_latency(mode_arg(&args[2])),
        _ => {}
    }
    parent(&args, |sizes, run| {
        for n in sizes {
            run(&["scan-child", n, "events"]);
            run(&["scan-child", n, "poll"]);
        }
        run(&["latency-child", "events"]);
        run(&["latency-child", "poll"]);
    });
}
