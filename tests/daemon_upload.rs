//! `ingestd run` against the real local endpoint: small, chunked and many parallel files each
//! end as exactly one complete video whose SHA-256 equals the file's, every chunk after the first
//! carries `videoId`, and `status --all --json` shows the receipt.

mod common;

use std::time::Duration;

use common::Emulator;
use common::daemon::{
    MIB5, Opts, Setup, assert_uploaded_once, blake3_file, file_row, video_id, videos,
};

const T: Duration = Duration::from_secs(120);

fn check_done(em: &Emulator, setup: &Setup, path: &std::path::Path) {
    let s = setup.status();
    let row = file_row(&s, path).unwrap_or_else(|| panic!("no status row for {path:?}: {s:#}"));
    assert_eq!(row["state"], "done", "{row:#}");
    let b3 = blake3_file(path);
    assert_eq!(row["blake3"].as_str(), Some(&*b3), "receipt hash: {row:#}");
    assert_eq!(row["content_hash"], format!("blake3:{b3}"), "{row:#}");
    assert_eq!(row["sha256"], serde_json::Value::Null, "{row:#}");
    assert_eq!(
        row["size"].as_u64(),
        Some(std::fs::metadata(path).unwrap().len())
    );
    let vid = row["video_id"].as_str().expect("video_id in the receipt");
    assert_uploaded_once(em, path, vid);
}

#[test]
fn small_file_is_one_request_one_video() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let mut d = setup.start();
    let f = setup.drop_file("small.mp4", 300_000, 1);
    setup.wait_done(1, T);
    check_done(&em, &setup, &f);
    let vid = video_id(&setup.status(), &f);
    let v = common::daemon::video(&em, &vid);
    assert_eq!(
        v["mode"], "whole",
        "no Content-Range for a file <= chunk_size: {v:#}"
    );
    assert_eq!(v["requests"].as_array().unwrap().len(), 1);
    d.kill9();
}

#[test]
fn chunked_file_sends_every_later_chunk_with_video_id() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let mut d = setup.start();
    let len = 3 * MIB5 + 123_457;
    let f = setup.drop_file("chunked.mp4", len, 2);
    setup.wait_done(1, T);
    check_done(&em, &setup, &f);
    let vid = video_id(&setup.status(), &f);
    let v = common::daemon::video(&em, &vid);
    assert_eq!(v["mode"], "bytes");
    assert_eq!(v["chunkCount"], 4, "{v:#}");
    let chunks = v["chunks"].as_array().unwrap();
    assert_eq!(
        chunks[0]["withVideoId"], false,
        "the first chunk creates the video"
    );
    assert_eq!(chunks[3]["length"].as_u64(), Some(123_457));
    for c in &chunks[..3] {
        assert_eq!(c["length"].as_u64(), Some(MIB5));
    }
    assert_eq!(
        v["requests"].as_array().unwrap().len(),
        4,
        "no retries needed: {v:#}"
    );
    d.kill9();
}

#[test]
fn many_files_in_parallel_each_one_video() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            workers: 4,
            ..Opts::default()
        },
    );
    let mut d = setup.start();
    let mut files = Vec::new();
    for i in 0..20u64 {
        // Mostly small files, every fifth one chunked.
        let len = if i % 5 == 0 {
            MIB5 + 1000 * i + 1
        } else {
            10_000 + 7919 * i
        };
        files.push(setup.drop_file(&format!("clip-{i:02}.mp4"), len, 100 + i));
    }
    setup.wait_done(20, T);
    for f in &files {
        check_done(&em, &setup, f);
    }
    assert_eq!(videos(&em).len(), 20, "exactly one video per file");
    d.kill9();
}
