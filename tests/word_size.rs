//! The word-size tests through the real binary (issue 15). CI runs them natively as 32-bit
//! (`scripts/test-32bit`, i686: 32-bit `usize` and `time_t`, like armhf) as well as on the host:
//! - a sparse file larger than 4 GiB uploads in byte ranges past 4 GiB and arrives whole (the
//!   endpoint's SHA-256 and the receipt equal the file's);
//! - a file whose mtime is after 2038 (`touch -d 2040-01-01`) uploads once, and a restart's scan
//!   sees it unchanged (the identity's mtime survives the journal), so it is never sent again.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Emulator;
use common::daemon::{Opts, Setup, assert_uploaded_once, count, file_row, sha256_file, video_id};

const GIB: u64 = 1024 * 1024 * 1024;

/// Writes `marker` bytes derived from `offset` at `offset` (so a range sent to the wrong place,
/// or a position wrapped at 4 GiB, changes the content).
fn write_marker(f: &mut std::fs::File, offset: u64, len: usize) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| {
            (offset.wrapping_add(i as u64).wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0] | 1
        })
        .collect();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&bytes).unwrap();
}

/// The daemon config with the SHA-256 receipt (the endpoint's referee hash, and cheap here).
fn sha256_setup(em: &Emulator, opts: Opts) -> Setup {
    let setup = Setup::new(em, opts);
    let text = setup
        .config_text()
        .replacen("[upload]\n", "[upload]\nhash = \"sha256\"\n", 1);
    std::fs::write(&setup.config, text).unwrap();
    setup
}

fn check_receipt(setup: &Setup, path: &Path, sha: &str) {
    let s = setup.status();
    let row = file_row(&s, path).unwrap_or_else(|| panic!("no status row for {path:?}: {s:#}"));
    assert_eq!(row["state"], "done", "{row:#}");
    assert_eq!(row["sha256"].as_str(), Some(sha), "receipt: {row:#}");
    assert_eq!(
        row["size"].as_u64(),
        Some(std::fs::metadata(path).unwrap().len()),
        "{row:#}"
    );
}

#[test]
#[cfg_attr(
    target_pointer_width = "64",
    ignore = "5 GiB of traffic: scripts/test-32bit runs it on i686, where it matters"
)]
fn sparse_file_past_4_gib_uploads_whole() {
    let em = Emulator::start();
    let setup = sha256_setup(
        &em,
        Opts {
            workers: 1,
            chunk_size: "64 MiB",
            // Off on purpose: sparse bytes with markers, not a container (the container check
            // would hold it as incomplete); this test is about ranges past 4 GiB.
            check_container: false,
            ..Opts::default()
        },
    );
    // 5 GiB, sparse: data at the start, across the 4 GiB boundary and at the end.
    let len = 5 * GIB;
    let tmp = setup.inbox.join(".big.mp4.tmp");
    {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .unwrap();
        f.set_len(len).unwrap();
        write_marker(&mut f, 0, 4096);
        write_marker(&mut f, 4 * GIB - 3000, 6000);
        write_marker(&mut f, len - 4096, 4096);
        f.sync_all().unwrap();
    }
    let path = setup.inbox.join("big.mp4");
    std::fs::rename(&tmp, &path).unwrap();
    let sha = sha256_file(&path);

    let mut d = setup.start();
    setup.wait_done(1, Duration::from_secs(1800));
    check_receipt(&setup, &path, &sha);
    let vid = video_id(&setup.status(), &path);
    let v = assert_uploaded_once(&em, &path, &vid);
    let chunks = v["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 80, "5 GiB in 64 MiB ranges: {v:#}");
    let last = chunks.last().unwrap();
    assert_eq!(
        last["contentRange"],
        "bytes 5301600256-5368709119/5368709120"
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["contentRange"] == "bytes 4294967296-4362076159/5368709120"),
        "the range starting at 4 GiB was sent: {v:#}"
    );
    d.kill9();
    // 5 GiB of received chunks: give the disk back now, not at the end of the whole run.
    drop(em);
}

#[test]
fn mtime_after_2038_uploads_once_and_stays_done() {
    let em = Emulator::start();
    let setup = sha256_setup(&em, Opts::default());
    let tmp = setup.dir.join("future.mp4");
    common::daemon::write_file(&tmp, 1_000_000, 2038);
    let out = Command::new("touch")
        .args(["-d", "2040-01-01 00:00:00 UTC"])
        .arg(&tmp)
        .output()
        .expect("touch");
    assert!(out.status.success(), "touch -d 2040-01-01: {out:?}");
    let mtime = std::fs::metadata(&tmp).unwrap().modified().unwrap();
    let secs = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .expect("mtime after 1970")
        .as_secs();
    assert_eq!(
        secs, 2_208_988_800,
        "the platform reads the 2040 mtime back"
    );
    let path = setup.inbox.join("future.mp4");
    std::fs::rename(&tmp, &path).unwrap();
    let sha = sha256_file(&path);

    let mut d = setup.start();
    setup.wait_done(1, Duration::from_secs(120));
    check_receipt(&setup, &path, &sha);
    let vid = video_id(&setup.status(), &path);
    assert_uploaded_once(&em, &path, &vid);

    // A restart scans the root again: the stored identity (mtime in ns, past 2^31 s) must equal
    // the file's, or the file would be queued and sent a second time.
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(60)).expect("daemon stops");
    let mut d = setup.start();
    let start = Instant::now();
    while setup.log().matches("ingestd is running").count() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "restart: {}",
            setup.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = setup.status();
    assert_eq!(count(&s, "done"), 1, "{s:#}");
    assert_eq!(
        file_row(&s, &path).unwrap()["video_id"],
        vid.as_str(),
        "{s:#}"
    );
    assert_uploaded_once(&em, &path, &vid);
    d.kill9();
}
