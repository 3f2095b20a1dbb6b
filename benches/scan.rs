//! Watcher benchmark (not a timed test): initial scan + sink time and peak RSS for trees of 10k and
//! 100k files, and detection latency (file closed → reported stable) minus `settle`.
//!
//! `cargo bench --bench scan` runs each measurement in a fresh child process (so that VmHWM, the
//! peak resident set, belongs to that measurement alone) and prints one line per measurement.
//! Sizes: `INGESTD_BENCH_SIZES=10000,100000` (default). Tree location: `INGESTD_BENCH_DIR` (default
//! the system temp dir). The sink is an in-memory counter that accepts every file; the journal
//! replaces it once merged (its cost is the journal's own).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingestd::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE, WatchConfig, WatchMode};
use ingestd::journal::Observation;
use ingestd::watch::{self, Sink, SinkError};
use tokio_util::sync::CancellationToken;

#[path = "common/mod.rs"]
mod common;
use common::{bench_dir, make_tree, mib, proc_kib, runtime};

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

fn cfg(root: &Path, mode: WatchMode, settle: Duration, poll: Duration) -> WatchConfig {
    WatchConfig {
        path: root.to_owned(),
        recursive: true,
        include: DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect(),
        exclude: DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect(),
        settle,
        mode,
        poll_interval: poll,
        rescan_interval: Duration::from_secs(3600),
        follow_symlinks: false,
        tags: vec![],
        metadata: vec![],
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
            vec![cfg(&root, mode, settle, Duration::from_secs(30))],
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
    let mut lat = rt.block_on(async {
        let h = watch::spawn(
            vec![cfg(&root, mode, settle, poll)],
            sink.clone(),
            stop.clone(),
        );
        h.initial_scan_done().await;
        let mut lat = Vec::new();
        for i in 0..10 {
            let p = root.join(format!("lat-{i}.mp4"));
            std::fs::write(&p, vec![1u8; 1 << 20]).unwrap();
            let closed = Instant::now();
            let at = loop {
                let hit = sink
                    .stable_at
                    .as_ref()
                    .and_then(|m| m.lock().unwrap().iter().find(|(q, _)| *q == p).map(|x| x.1));
                if let Some(at) = hit {
                    break at;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            lat.push((at - closed).as_secs_f64() - settle.as_secs_f64());
            // Spread the writes over the tick phase.
            tokio::time::sleep(Duration::from_millis(137)).await;
        }
        stop.cancel();
        h.join().await;
        lat
    });
    lat.sort_by(f64::total_cmp);
    let ms = |x: f64| format!("{:.0} ms", x * 1000.0);
    println!(
        "latency mode={} (settle 1 s{}): closed → stable minus settle: min {}, median {}, max {} \
         over {} files",
        match mode {
            WatchMode::Poll => "poll",
            _ => "events",
        },
        if mode == WatchMode::Poll {
            ", poll_interval 1 s"
        } else {
            ""
        },
        ms(lat[0]),
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() - 1]),
        lat.len()
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
    // `cargo bench` passes --bench. `cargo test --all-targets` and nextest (`--list`) run this
    // target too: it has no tests, so do nothing then.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let sizes = std::env::var("INGESTD_BENCH_SIZES").unwrap_or_else(|_| "10000,100000".into());
    let run = |args: &[&str]| {
        let st = Command::new(&exe).args(args).status().unwrap();
        assert!(st.success(), "{args:?} failed");
    };
    for n in sizes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        run(&["scan-child", n, "events"]);
        run(&["scan-child", n, "poll"]);
    }
    run(&["latency-child", "events"]);
    run(&["latency-child", "poll"]);
}
