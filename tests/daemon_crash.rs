//! kill -9 of `ingestd run` at random moments during a chunked upload (the endpoint reads
//! slowly), restarted each time: the upload ends as one complete video, the same `videoId`
//! throughout, SHA-256 equal, and the endpoint received at most one chunk more per kill.

mod common;

use std::time::{Duration, Instant};

use common::Emulator;
use common::daemon::{
    MIB5, Opts, Setup, assert_uploaded_once, count, file_row, set_faults, stats, videos,
};
use serde_json::json;

#[test]
fn kill_9_at_random_moments_resumes_the_same_video() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            workers: 1,
            ..Opts::default()
        },
    );
    // ~12 MiB/s: a 5 MiB chunk takes ~0.4 s, the file ~6 s of sending.
    set_faults(
        &em,
        json!([{"path": "/upload", "count": 1000000, "action": "throttle", "bytes_per_sec": 12_582_912}]),
    );
    let len = 14 * MIB5 + 777_777;
    let f = setup.drop_file("big.mp4", len, 7);

    let mut kills = 0u64;
    let mut first_vid: Option<String> = None;
    let mut delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while kills < 10 {
        assert!(
            Instant::now() < deadline,
            "kill loop too slow\n{}",
            setup.log_tail(40)
        );
        let mut d = setup.start();
        // Wait until this run is uploading with its videoId committed (killing inside the first
        // request is the orphan window W3, which has its own test), then kill at a random moment.
        let s = setup.wait_for("the upload running", Duration::from_secs(60), |s| {
            count(s, "done") == 1
                || (count(s, "uploading") == 1
                    && file_row(s, &f).is_some_and(|r| r["video_id"].is_string()))
        });
        if count(&s, "done") == 1 {
            break;
        }
        let ms = rand::random_range(50..1200u64);
        delays.push(ms);
        std::thread::sleep(Duration::from_millis(ms));
        d.kill9();
        kills += 1;
        let s = setup.status();
        let row = file_row(&s, &f).unwrap();
        if let Some(v) = row["video_id"].as_str() {
            match &first_vid {
                None => first_vid = Some(v.to_owned()),
                Some(first) => assert_eq!(first, v, "videoId changed after kill {kills}"),
            }
        }
        if row["state"] == "done" {
            break;
        }
    }
    eprintln!("killed {kills} times, after {delays:?} ms");
    let mut d = setup.start();
    let s = setup.wait_done(1, Duration::from_secs(120));
    d.kill9();
    let row = file_row(&s, &f).unwrap();
    let vid = row["video_id"].as_str().unwrap();
    if let Some(first) = &first_vid {
        assert_eq!(first, vid, "same videoId at the end");
    }
    assert_uploaded_once(&em, &f, vid);
    assert_eq!(videos(&em).len(), 1, "exactly one video");

    let st = stats(&em);
    let body = st["uploadBodyBytes"].as_u64().unwrap();
    let requests = st["requests"]["POST /upload"].as_u64().unwrap();
    // Multipart framing costs a few hundred bytes per request.
    let bound = len + kills * MIB5 + requests * 4096;
    assert!(
        body <= bound,
        "endpoint received {body} body bytes for a {len}-byte file with {kills} kills (bound {bound}, {requests} requests)"
    );
}
