//! Load (issue 5 §5): many small files dropped at once into nested directories are all uploaded
//! exactly once; with the endpoint's per-minute upload limit on, 429s are waited out, not failed.

mod common;
mod hostile_support;

use std::collections::HashSet;
use std::time::Duration;

use common::Emulator;
use hostile_support::*;

fn drop_files(setup: &Setup, n: usize) -> Vec<(std::path::PathBuf, String)> {
    let mut files = Vec::new();
    for i in 0..n {
        let d = setup.inbox.join(format!("d{}/e{}", i % 10, i % 7));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(format!("f{i}.mp4"));
        std::fs::write(&p, format!("small file {i}\n").repeat(3)).unwrap();
        files.push((p.clone(), sha256_file(&p)));
    }
    files
}

fn assert_exactly_once(em: &Emulator, files: &[(std::path::PathBuf, String)]) {
    let vids = videos(em);
    assert_eq!(vids.len(), files.len(), "one video per file");
    let shas: HashSet<_> = vids
        .iter()
        .map(|v| v["sha256"].as_str().unwrap().to_owned())
        .collect();
    for (_, sha) in files {
        assert!(shas.contains(sha));
    }
}

/// 1 000 files at once (CI size; `HOSTILE_LOAD_FILES=10000` for the full run, see
/// docs/RELIABILITY.md), dropped into nested directories while the daemon runs (an inotify
/// flood, not only an initial scan): every one uploaded exactly once. Prints the time to drain
/// and the daemon's peak RSS.
#[test]
fn many_small_files_nested() {
    let n: usize = std::env::var("HOSTILE_LOAD_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let opts = Opts {
        workers: 4,
        // Off on purpose: the files are a few bytes of text named `.mp4` (a volume test).
        check_container: false,
        ..Opts::default()
    };
    let mut setup = Setup::new(tmp.path(), &em, &opts);
    let d = setup.start("");
    let started = std::time::Instant::now();
    let files = drop_files(&setup, n);
    let dropped = started.elapsed();
    setup.wait_settled(n, Duration::from_secs(600));
    let drained = started.elapsed();
    let peak = std::fs::read_to_string(format!("/proc/{}/status", d.process.child.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    println!(
        "load: {n} files written in {:.1} s while running, all done {:.1} s after the first write; daemon peak RSS {:.1} MiB",
        dropped.as_secs_f64(),
        drained.as_secs_f64(),
        peak as f64 / 1024.0
    );
    assert_exactly_once(&em, &files);
    assert_eq!(setup.integrity_check(), "ok");
    check_logs(&setup);
}

/// 150 files with the upload limit at the real 100/min: the last 50 wait for the next window
/// (429 with retry-after); none fails. Takes about a minute.
#[test]
fn rate_limit_100_per_minute_respected() {
    let em = Emulator::start_with(&["--upload-limit-per-minute", "100"]);
    let tmp = tempfile::tempdir().unwrap();
    let opts = Opts {
        workers: 4,
        // Off on purpose: the files are a few bytes of text named `.mp4` (a rate-limit test).
        check_container: false,
        ..Opts::default()
    };
    let mut setup = Setup::new(tmp.path(), &em, &opts);
    let files = drop_files(&setup, 150);
    let _d = setup.start("");
    let st = setup.wait_settled(150, Duration::from_secs(300));
    assert_eq!(st["counts"]["done"], 150, "{st:#}");
    assert_exactly_once(&em, &files);
    check_logs(&setup);
}
