//! Parallel chunk lanes (issue 16, `upload.lanes_per_file`), with the real binary and the real
//! local endpoint: chunks of one file in flight at once, equal content, the completing chunk
//! sent only after every other chunk was acknowledged, and a kill -9 in the middle costing at
//! most one chunk per lane, the resume sending exactly the chunks not acknowledged. Every upload
//! ends with the receipt equal to the file's BLAKE3 (merged from the subtrees each lane hashed
//! while sending, the rest read back from disk); with an API key the lanes start at once (the
//! video is created first) and the video's metadata carries that hash.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Emulator;
use common::daemon::{
    Daemon, MIB5, Opts, Setup, assert_uploaded_once, blake3_file, cap_upload_connections,
    clear_faults, file_row, requests_with_error, set_faults, stats, video, video_id, videos,
};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(120);
const LANES: u64 = 4;

fn lanes_setup(em: &Emulator) -> Setup {
    lanes_setup_with(em, "lanes_per_file = 4\nmax_connections = 8\n")
}

fn lanes_setup_with(em: &Emulator, extra_upload: &'static str) -> Setup {
    Setup::new(
        em,
        Opts {
            workers: 1,
            extra_upload,
            ..Opts::default()
        },
    )
}

/// Waits for the one file to be `done`, then checks it: one complete video with equal content,
/// the completing chunk last, the receipt equal to the file's BLAKE3. Returns the video.
fn assert_done_once(em: &Emulator, setup: &Setup, path: &Path, size: u64) -> Value {
    let s = setup.wait_done(1, T);
    let vid = video_id(&s, path);
    assert_uploaded_once(em, path, &vid);
    let row = file_row(&s, path).unwrap();
    assert_eq!(
        row["blake3"].as_str(),
        Some(&*blake3_file(path)),
        "the receipt is the file's BLAKE3: {row:#}"
    );
    let v = video(em, &vid);
    assert_completing_chunk_last(&v, size);
    v
}

/// A 4-lane daemon uploading `name` (`size` bytes), every connection read at 4 MiB/s (four lanes
/// each mid-chunk most of the time), once `acked` bytes are acknowledged.
fn midway(em: &Emulator, setup: &Setup, name: &str, size: u64, acked: u64) -> (Daemon, PathBuf) {
    cap_upload_connections(em, 4 * 1024 * 1024);
    let d = setup.start();
    let path = setup.drop_file(name, size, size % 251);
    wait_acked(&setup.dir.join("journal.sqlite"), setup, name, |n| {
        n >= acked
    });
    (d, path)
}

/// Some two chunk requests (not starting at `skip_from`, if given) were in flight at once.
fn lanes_overlapped(reqs: &[(u64, u64, i64, i64)], skip_from: Option<u64>) -> bool {
    let counted = |r: &&(u64, u64, i64, i64)| Some(r.0) != skip_from;
    let reqs: Vec<_> = reqs.iter().filter(counted).collect();
    reqs.iter()
        .enumerate()
        .any(|(i, a)| reqs.iter().skip(i + 1).any(|b| a.2 < b.3 && b.2 < a.3))
}

/// The accepted chunk requests of a video: (from, to, startedMs, receivedMs).
fn accepted(v: &Value) -> Vec<(u64, u64, i64, i64)> {
    v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"].as_u64() == Some(201))
        .map(|r| {
            let cr = r["contentRange"].as_str().unwrap_or_default();
            let range = cr.trim_start_matches("bytes ");
            let (span, _) = range.split_once('/').unwrap_or((range, ""));
            let (from, to) = span.split_once('-').unwrap_or(("0", "0"));
            (
                from.parse().unwrap(),
                to.parse().unwrap(),
                r["startedMs"].as_i64().unwrap(),
                r["receivedMs"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The completing chunk (ending at the last byte) started only after every other chunk was
/// received whole (and so acknowledged no earlier).
fn assert_completing_chunk_last(v: &Value, size: u64) {
    let reqs = accepted(v);
    let last = reqs
        .iter()
        .find(|r| r.1 + 1 == size)
        .unwrap_or_else(|| panic!("no completing chunk: {reqs:?}"));
    for r in reqs.iter().filter(|r| r.1 + 1 != size) {
        assert!(
            last.2 >= r.3,
            "the completing chunk {last:?} started before chunk {r:?} was received"
        );
    }
}

/// Polls the journal until the bytes acknowledged (the prefix plus the ranges beyond it) satisfy
/// `pred`; returns them.
fn wait_acked(journal: &Path, setup: &Setup, what: &str, pred: impl Fn(u64) -> bool) -> u64 {
    let c = rusqlite::Connection::open(journal).unwrap();
    let until = Instant::now() + T;
    loop {
        let got: i64 = c
            .query_row(
                "SELECT f.bytes_uploaded + coalesce((SELECT sum(a.end - a.start) FROM acked_ranges a
                     WHERE a.file_id = f.id AND a.video_id = f.video_id), 0)
                 FROM files f ORDER BY f.id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if pred(got as u64) {
            return got as u64;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what} (acknowledged: {got})\n{}",
            setup.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes the endpoint read beyond `size` once, less multipart framing (< 1 KiB a request).
fn resent(em: &Emulator, v: &Value, size: u64) -> u64 {
    let read = stats(em)["uploadBodyBytes"].as_u64().unwrap();
    let requests = v["requests"].as_array().unwrap().len() as u64;
    read.saturating_sub(size + 1024 * (requests + LANES))
}

#[test]
fn four_lanes_upload_one_file_in_parallel_with_equal_content_and_the_completing_chunk_last() {
    let em = Emulator::start();
    // A per-connection ceiling: one lane takes 0.5 s a chunk, so lanes overlap visibly.
    cap_upload_connections(&em, 10 * 1024 * 1024);
    let setup = lanes_setup(&em);
    let mut d = setup.start();
    let size = 8 * MIB5 + 12_345;
    let path = setup.drop_file("lanes.mp4", size, 16);
    let v = assert_done_once(&em, &setup, &path, size);
    let reqs = accepted(&v);
    assert_eq!(reqs.len(), 9, "one request per chunk: {reqs:?}");
    assert!(
        lanes_overlapped(&reqs, Some(0)),
        "no two chunks were in flight at once: {reqs:?}"
    );
    // Chunk 1 alone: every other chunk started after it was received.
    let first = reqs.iter().find(|r| r.0 == 0).unwrap();
    assert!(reqs.iter().all(|r| r.0 == 0 || r.2 >= first.3), "{reqs:?}");
    d.kill9();
}

#[test]
fn with_sha256_lanes_read_the_file_back_and_the_receipt_is_its_sha256() {
    // No subtrees with SHA-256: the prefix streams, the rest is hashed from disk at the end.
    let em = Emulator::start();
    cap_upload_connections(&em, 10 * 1024 * 1024);
    let setup = lanes_setup_with(
        &em,
        "lanes_per_file = 4\nmax_connections = 8\nhash = \"sha256\"\n",
    );
    let mut d = setup.start();
    let size = 6 * MIB5 + 4321;
    let path = setup.drop_file("lanes-sha.mp4", size, 22);
    let s = setup.wait_done(1, T);
    let vid = video_id(&s, &path);
    let v = assert_uploaded_once(&em, &path, &vid);
    let row = file_row(&s, &path).unwrap();
    assert_eq!(
        row["sha256"].as_str(),
        Some(&*common::daemon::sha256_file(&path)),
        "{row:#}"
    );
    assert_eq!(row["blake3"], Value::Null, "{row:#}");
    assert!(
        lanes_overlapped(&accepted(&v), Some(0)),
        "{:#}",
        v["requests"]
    );
    d.kill9();
}

#[test]
fn with_an_api_key_lanes_start_at_once_and_the_metadata_carries_the_files_blake3() {
    let em = Emulator::start();
    cap_upload_connections(&em, 10 * 1024 * 1024);
    let setup = lanes_setup(&em);
    setup.use_api_key();
    let mut d = setup.start();
    let size = 8 * MIB5 + 54_321;
    let path = setup.drop_file("keyed-lanes.mp4", size, 20);
    let s = setup.wait_done(1, T);
    let vid = video_id(&s, &path);
    assert_eq!(videos(&em).len(), 1, "one video: {:#?}", videos(&em));
    let v = video(&em, &vid);
    assert_eq!(v["complete"], true, "{v:#}");
    assert_eq!(
        v["sha256"].as_str(),
        Some(&*common::daemon::sha256_file(&path)),
        "content equal"
    );
    let b3 = blake3_file(&path);
    let meta = v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "ingestd-blake3")
        .and_then(|m| m["value"].as_str());
    assert_eq!(meta, Some(&*b3), "metadata: {:#}", v["metadata"]);
    assert_eq!(file_row(&s, &path).unwrap()["blake3"].as_str(), Some(&*b3));
    // The video exists before any chunk: every chunk carries its id, the first one included,
    // and the lanes start with it (chunk 1 overlaps others). 8 grid chunks + the completing one.
    let reqs = accepted(&v);
    assert_eq!(reqs.len(), 9, "{reqs:?}");
    assert!(
        v["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["withVideoId"] == true),
        "{:#}",
        v["chunks"]
    );
    let first = reqs.iter().find(|r| r.0 == 0).unwrap();
    assert!(
        reqs.iter()
            .any(|b| b.0 != 0 && first.2 < b.3 && b.2 < first.3),
        "chunk 1 goes with the others: {reqs:?}"
    );
    assert_completing_chunk_last(&v, size);
    d.kill9();
}

#[test]
fn kill_9_with_a_chunk_in_flight_resumes_exactly_the_chunks_not_acknowledged() {
    let em = Emulator::start();
    let setup = lanes_setup(&em);
    // The second upload request (a lane's first chunk) crawls: the other lanes are acknowledged
    // beyond the prefix meanwhile, and the completing chunk waits for it.
    set_faults(
        &em,
        json!([{"path": "/upload", "method": "POST", "skip": 1, "count": 1, "action": "throttle", "bytes_per_sec": 256 * 1024}]),
    );
    let mut d = setup.start();
    let size = 12 * MIB5 + 777;
    let path = setup.drop_file("killed.mp4", size, 17);
    // Everything but the crawling chunk and the held-back completing one is acknowledged.
    wait_acked(
        &setup.dir.join("journal.sqlite"),
        &setup,
        "all other chunks",
        |n| n == size - MIB5 - 777,
    );
    let c = rusqlite::Connection::open(setup.dir.join("journal.sqlite")).unwrap();
    let ranges: i64 = c
        .query_row("SELECT count(*) FROM acked_ranges", [], |r| r.get(0))
        .unwrap();
    assert!(
        ranges > 0,
        "chunks acknowledged beyond the prefix are journaled as ranges"
    );
    // `status` and `explain` show the bytes acknowledged, ranges included, and the lanes.
    let s = setup.status();
    let row = file_row(&s, &path).unwrap();
    assert_eq!(
        row["bytes_acked"].as_u64(),
        Some(size - MIB5 - 777),
        "{row:#}"
    );
    assert!(
        row["bytes_uploaded"].as_u64().unwrap() < size - MIB5 - 777,
        "{row:#}"
    );
    let explain = std::process::Command::new(common::bin())
        .args(["explain", "--config"])
        .arg(&setup.config)
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("lanes: up to 4 chunks")
            && text.contains("acknowledged beyond the resume point"),
        "{text}"
    );
    d.kill9();
    clear_faults(&em);
    let mut d = setup.start();
    let v = assert_done_once(&em, &setup, &path, size);
    assert_eq!(
        requests_with_error([&v], "video-content-range-by-bytes-range-overlap"),
        0,
        "the resume sent a chunk already acknowledged: {:#}",
        v["requests"]
    );
    // Resumed: the crawling chunk and the completing one, nothing else.
    assert_eq!(accepted(&v).len(), 13, "{:#}", v["requests"]);
    let resent = resent(&em, &v, size);
    assert!(
        resent <= MIB5,
        "re-sent {resent} bytes > the one chunk in flight"
    );
    d.kill9();
}

#[test]
fn status_and_explain_show_the_lanes_in_flight_now_and_the_bytes_acknowledged() {
    let em = Emulator::start();
    let setup = lanes_setup(&em);
    // Three lanes' first chunks crawl; the fourth lane sends the four other 5 MiB chunks
    // meanwhile, then the completing chunk (1234 bytes) is held back: three lanes stay in flight
    // for seconds, with the prefix and four chunks (25 MiB) acknowledged.
    set_faults(
        &em,
        json!([{"path": "/upload", "method": "POST", "skip": 1, "count": 3, "action": "throttle", "bytes_per_sec": 256 * 1024}]),
    );
    let mut d = setup.start();
    let size = 8 * MIB5 + 1234;
    let path = setup.drop_file("lanes-status.mp4", size, 21);
    let s = setup.wait_for("three lanes in flight in status", T, |s| {
        file_row(s, &path).is_some_and(|r| r["lanes"] == 3 && r["bytes_acked"] == 5 * MIB5)
    });
    let row = file_row(&s, &path).unwrap();
    assert_eq!(row["state"], "uploading", "{row:#}");
    // The resume point (the acknowledged prefix) is below what is acknowledged: which three
    // chunks crawl depends on the order the lanes' requests reach the endpoint (under load the
    // chunk after the prefix may not be among them), so only the bounds are fixed.
    let resume = row["bytes_uploaded"].as_u64().unwrap_or(0);
    assert!(
        (MIB5..5 * MIB5).contains(&resume),
        "the resume point: {row:#}"
    );
    let cli = |cmd: &str| {
        let out = std::process::Command::new(common::bin())
            .args([cmd, "--config"])
            .arg(&setup.config)
            .args((cmd == "explain").then_some(&path))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = cli("status");
    assert!(
        table.contains("62.5%") && table.contains("3 lanes in flight"),
        "{table}"
    );
    let explain = cli("explain");
    assert!(explain.contains("3 in flight now"), "{explain}");
    d.kill9();
    // No daemon: no lanes in flight.
    let row = file_row(&setup.status(), &path).unwrap().clone();
    assert_eq!(row["lanes"], Value::Null, "{row:#}");
}

#[test]
fn kill_9_during_a_four_lane_upload_costs_at_most_one_chunk_per_lane() {
    let em = Emulator::start();
    let setup = lanes_setup(&em);
    let size = 16 * MIB5 + 4321;
    let (mut d, path) = midway(&em, &setup, "lanes-kill.mp4", size, 5 * MIB5);
    d.kill9();
    clear_faults(&em);
    let mut d = setup.start();
    let v = assert_done_once(&em, &setup, &path, size);
    let resent = resent(&em, &v, size);
    assert!(
        resent <= LANES * MIB5,
        "re-sent {resent} bytes > {LANES} lanes × one chunk"
    );
    d.kill9();
}

#[test]
fn sigterm_during_a_four_lane_upload_cancels_the_lanes_and_resumes_after_a_restart() {
    let em = Emulator::start();
    let setup = lanes_setup(&em);
    let size = 12 * MIB5 + 99;
    let (mut d, path) = midway(&em, &setup, "lanes-term.mp4", size, 2 * MIB5);
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}\n{}", setup.log_tail(30));
    assert!(
        setup.log().contains("the chunks in flight are cancelled"),
        "{}",
        setup.log_tail(30)
    );
    clear_faults(&em);
    let mut d = setup.start();
    assert_done_once(&em, &setup, &path, size);
    d.kill9();
}
