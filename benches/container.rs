//! Cost of the container check per file (issue 13): microseconds and bytes read, for the
//! ffmpeg-made files in `tests/data/` and for larger files written here (a 256 MiB sparse MP4
//! with its moov last, a fragmented MP4 with 4000 fragments, an MKV with 2000 clusters, a TS of
//! 100k packets). Files are in the page cache (the watcher checks a file it just stat'ed many
//! times while it settled), so this is the CPU and syscall cost.
//!
//! `cargo bench --bench container` (release profile); results in docs/BENCHMARKS.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ingestd::watch::container::{check_file, sample};

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
    for p in &files {
        let size = std::fs::metadata(p).unwrap().len();
        let first = check_file(p);
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(check_file(p));
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        worst = worst.max(us);
        let v = match &first.verdict {
            ingestd::watch::container::Verdict::Complete => "Complete".to_owned(),
            ingestd::watch::container::Verdict::Unknown => "Unknown".to_owned(),
            ingestd::watch::container::Verdict::Incomplete(r) => r.clone(),
        };
        println!(
            "| {} | {size} | {v} | {} | {us:.1} |",
            p.file_name().unwrap().to_string_lossy(),
            first.bytes_read
        );
    }
    println!("\nworst: {worst:.1} µs per file");
}
