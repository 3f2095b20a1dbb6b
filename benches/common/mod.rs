//! Helpers shared by the `scan` and `ingest` benches (`#[path]`-included by each): the test
//! tree, the bench directory, the runtime and /proc readings.

use std::path::Path;

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
