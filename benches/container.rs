//! Cost of the container check per file (issue 13): microseconds and bytes read, for the
//! ffmpeg-made files in `tests/data/` and for larger files written here (a 256 MiB sparse MP4
//! with its moov last, a fragmented MP4 with 4000 fragments with and without `mfra`, an MKV with
//! 2000 clusters, a TS of 100k packets). A file past one check's budget is then walked on across
//! checks (`resume`): how many checks, and the cost of each. Files are in the page cache (the watcher checks a file it just stat'ed many
//! times while it settled), so this is the CPU and syscall cost.
//!
//! `cargo bench --bench container` (release profile); results in docs/BENCHMARKS.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ingestd::watch::container::{Verdict, check, check_keyed, sample};

fn write(dir: &Path, name: &str, parts: &[&[u8]]) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    for b in parts {
        f.write_all(b).unwrap();
    }
    p
}

fn main() {
    // Only under `cargo bench` (which passes `--bench`): `cargo test --all-targets` and nextest's
    // `--list` run this executable too, and it has no tests.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "md"))
            .collect();
    for sub in ["incomplete", "unproven"] {
        let d = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
        files.extend(
            std::fs::read_dir(format!("{d}{sub}"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file()),
        );
    }
    files.sort();

    // 256 MiB moov-last MP4 (sparse payload).
    let big = sample::wrap(
        ingestd::watch::container::Format::IsoBmff { mov: false },
        256 << 20,
    )
    .unwrap();
    let p = dir.join("big.mp4");
    {
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&big.head).unwrap();
        f.set_len(big.head.len() as u64 + big.payload).unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(&big.tail).unwrap();
    }
    files.push(p);
    let frag = [7u8; 256];
    let parts: Vec<&[u8]> = (0..4000).map(|_| &frag[..]).collect();
    files.push(write(
        dir,
        "frag4000.mp4",
        &[&sample::fragmented_mp4(&parts, true)],
    ));
    files.push(write(
        dir,
        "frag4000-no-mfra.mp4",
        &[&sample::fragmented_mp4(&parts, false)],
    ));
    let parts: Vec<&[u8]> = (0..2000).map(|_| &frag[..]).collect();
    files.push(write(
        dir,
        "clusters2000.mkv",
        &[&sample::mkv(&parts, false, false)],
    ));
    files.push(write(
        dir,
        "packets100k.ts",
        &[&sample::ts(100_000, false, 0)],
    ));

    println!("| file | size | verdict | bytes read | µs per check |");
    println!("|---|---|---|---|---|");
    let mut worst = 0f64;
    let mut walked = Vec::new();
    for p in &files {
        let f = std::fs::File::open(p).unwrap();
        let size = f.metadata().unwrap().len();
        // Without a key: every check starts from byte 0 (the cost of a first check).
        let first = check(p, &f, size);
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(check(p, &f, size));
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        worst = worst.max(us);
        if matches!(first.verdict, Verdict::Pending(_)) {
            walked.push(p.clone());
        }
        println!(
            "| {} | {size} | {} | {} | {us:.1} |",
            name(p),
            verdict(&first.verdict),
            first.bytes_read
        );
    }
    println!("\nworst: {worst:.1} µs per check");

    // Files past one check's budget: walked on across checks (`resume`), each check timed.
    println!(
        "\n| file | checks to the end | verdict | most bytes in one check | CPU µs per check (mean / max) | µs per check once walked |"
    );
    println!("|---|---|---|---|---|---|");
    for p in &walked {
        let f = std::fs::File::open(p).unwrap();
        let size = f.metadata().unwrap().len();
        let (mut checks, mut most, mut total, mut max) = (0u32, 0u64, 0f64, 0f64);
        let mut last = Verdict::Unknown;
        let rounds = 50u64;
        for round in 0..rounds {
            let key = Some((u64::MAX, round));
            loop {
                // CPU time of this thread: the goal is CPU per check, and the shared machine
                // preempts (wall-clock maxima there are scheduling, not the check).
                let t = cpu_us();
                let r = check_keyed(p, &f, size, key);
                let us = cpu_us() - t;
                if round == 0 {
                    checks += 1;
                }
                total += us;
                max = max.max(us);
                most = most.max(r.bytes_read);
                if !matches!(r.verdict, Verdict::Pending(_)) {
                    last = r.verdict;
                    break;
                }
            }
        }
        let mean = total / (f64::from(checks) * rounds as f64);
        let key = Some((u64::MAX, 0));
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(check_keyed(p, &f, size, key));
        }
        let warm = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!(
            "| {} | {checks} | {} | {most} | {mean:.1} / {max:.1} | {warm:.1} |",
            name(p),
            verdict(&last)
        );
    }
}

/// CPU time of the calling thread, in µs.
fn cpu_us() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec on the stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

fn name(p: &Path) -> String {
    let parent = p
        .parent()
        .and_then(|d| d.file_name())
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = p.file_name().unwrap().to_string_lossy().into_owned();
    if parent == "incomplete" || parent == "unproven" {
        format!("{parent}/{file}")
    } else {
        file
    }
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Complete => "Complete".to_owned(),
        Verdict::Unknown => "Unknown".to_owned(),
        Verdict::Pending(_) => "Pending".to_owned(),
        Verdict::Incomplete(r) | Verdict::Unproven(r) => r.chars().take(60).collect(),
    }
}
