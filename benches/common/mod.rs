//! Helpers shared by the `scan` and `ingest` benches (`#[path]`-included by each): the test
//! tree, the bench directory, the watch config, the runtime, /proc readings, the latency loop and
//! the parent process that runs each measurement in a child.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ingestd::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE, WatchConfig, WatchMode};

/// A field of /proc/self/status in KiB (`VmHWM:`, `VmRSS:`).
pub fn proc_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A temp dir under `INGESTD_BENCH_DIR` (to bench another filesystem), else under the default.
pub fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("INGESTD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// `n` files of 16 bytes, 100 per leaf directory, leaves grouped 100 per top directory.
pub fn make_tree(root: &Path, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("d{}/e{}", i / 10_000, (i / 100) % 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("clip-{i}.mp4")), b"0123456789abcdef").unwrap();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A recursive root with the default include and exclude globs.
pub fn watch_config(root: &Path, mode: WatchMode, settle: Duration, poll: Duration) -> WatchConfig {
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
        follow_symlinks_outside: false,
        // Settle only: the benches measure events, scans and settle latency.
        check_container: false,
        incomplete_after: Duration::from_secs(3600),
        tags: vec![],
        metadata: vec![],
    }
}

/// Writes `files` files of 1 MiB into `root`, one after the other, and returns for each how long
/// after its close it appeared in `log` (a sink's record of `(path, when)`), minus `settle`;
/// sorted.
pub async fn latencies(
    root: &Path,
    files: usize,
    settle: Duration,
    log: &Mutex<Vec<(PathBuf, Instant)>>,
    mut each: impl FnMut(&Path),
) -> Vec<f64> {
    let mut lat = Vec::new();
    for i in 0..files {
        let p = root.join(format!("lat-{i}.mp4"));
        std::fs::write(&p, vec![1u8; 1 << 20]).unwrap();
        let closed = Instant::now();
        let at = loop {
            let hit = log
                .lock()
                .unwrap()
                .iter()
                .find(|(q, _)| *q == p)
                .map(|x| x.1);
            if let Some(at) = hit {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        each(&p);
        lat.push((at - closed).as_secs_f64() - settle.as_secs_f64());
        // Spread the writes over the tick phase.
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    lat.sort_by(f64::total_cmp);
    lat
}

/// `min …, median …, max … over N files` of sorted latencies in seconds.
pub fn spread(lat: &[f64]) -> String {
    let ms = |x: f64| format!("{:.0} ms", x * 1000.0);
    format!(
        "min {}, median {}, max {} over {} files",
        ms(lat[0]),
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() - 1]),
        lat.len()
    )
}

/// The parent process: unless `cargo bench` runs this target (`--bench`; `cargo test
/// --all-targets` and nextest's `--list` run it too, and it has no tests), does nothing. Else
/// calls `measure` with the tree sizes (`INGESTD_BENCH_SIZES`, default `10000,100000`) and a
/// function that runs this executable with the given arguments as a child.
pub fn parent(args: &[String], measure: impl FnOnce(&[&str], &dyn Fn(&[&str]))) {
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let sizes = std::env::var("INGESTD_BENCH_SIZES").unwrap_or_else(|_| "10000,100000".into());
    let sizes: Vec<&str> = sizes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let run = |args: &[&str]| {
        let st = Command::new(&exe).args(args).status().unwrap();
        assert!(st.success(), "{args:?} failed");
    };
    measure(&sizes, &run);
}
