//! Cost of hashing a file before its lookup on api.video (issue 12 item 4, `upload::adopt`):
//! MiB/s of `ContentHasher::extend_from_file` (the code the adoption runs: 256 KiB positioned
//! reads) for BLAKE3 and SHA-256 over a 1 GiB file, warm (in the page cache) and cold
//! (`posix_fadvise(DONTNEED)` on that file first), 5 runs each, median (min–max).
//!
//! `cargo bench --bench adopt_hash` (release profile); results in docs/BENCHMARKS.md.

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

use ingestd::upload::hash::{ContentHasher, HashAlgorithm};

const SIZE: u64 = 1 << 30;

fn main() {
    // Only under `cargo bench` (which passes `--bench`): `cargo test --all-targets` and nextest's
    // `--list` run this executable too, and it has no tests.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..SIZE >> 20 {
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    for algorithm in [HashAlgorithm::Blake3, HashAlgorithm::Sha256] {
        for cold in [false, true] {
            let mut rates: Vec<f64> = (0..5)
                .map(|_| {
                    if cold {
                        let f = std::fs::File::open(&path).unwrap();
                        // SAFETY: a valid descriptor; advice only.
                        unsafe {
                            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
                        };
                    }
                    let t = Instant::now();
                    let mut h = ContentHasher::new(algorithm);
                    h.extend_from_file(&path, SIZE).unwrap();
                    std::hint::black_box(h.receipt());
                    SIZE as f64 / 1_048_576.0 / t.elapsed().as_secs_f64()
                })
                .collect();
            rates.sort_by(f64::total_cmp);
            println!(
                "{} {}: {:.0} MiB/s ({:.0}-{:.0})",
                algorithm.name(),
                if cold { "cold" } else { "warm" },
                rates[2],
                rates[0],
                rates[4]
            );
        }
    }
}
