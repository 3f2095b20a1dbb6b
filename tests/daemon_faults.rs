//! `ingestd run` against the endpoint's fault plan: a reset mid-chunk, a response dropped after
//! the chunk was stored (overlap 400 → advance), 503 bursts, 429 with a Retry-After longer than
//! `retry_max` (the server wins), a stalled endpoint before or after storing the chunk (client
//! timeout, shortened with `[api] request_timeout`), and a deleted token (pause, nothing failed,
//! resume on a new token).
//! Each checks one complete video with the file's SHA-256, the journal's integrity, and that no
//! token, API key or panic reached the log. (The newer scenarios are in `hostile_faults.rs`.)

mod common;

use std::time::Duration;

use common::Emulator;
use common::daemon::{
    MIB5, Opts, Setup, assert_uploaded_once, count, delete_token, faults, file_row, integrity,
    requests_with_error, set_faults, throttle_uploads, video_id, videos, write_token,
};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(120);

/// Uploads one `len`-byte file under `plan`; returns (setup, path, video).
fn upload_under(
    em: &Emulator,
    opts: Opts,
    plan: Value,
    len: u64,
) -> (Setup, std::path::PathBuf, Value) {
    upload_under_with(em, opts, "", plan, len)
}

/// [`upload_under`] with `api_extra` lines added to the config's `[api]` section.
fn upload_under_with(
    em: &Emulator,
    opts: Opts,
    api_extra: &str,
    plan: Value,
    len: u64,
) -> (Setup, std::path::PathBuf, Value) {
    let setup = Setup::new(em, opts);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replacen("[api]\n", &format!("[api]\n{api_extra}"), 1),
    )
    .unwrap();
    set_faults(em, plan);
    let mut d = setup.start();
    let f = setup.drop_file("clip.mp4", len, len);
    let s = setup.wait_done(1, T);
    d.kill9();
    let vid = video_id(&s, &f);
    let v = assert_uploaded_once(em, &f, &vid);
    assert_eq!(videos(em).len(), 1, "exactly one video");
    check_journal_and_log(&setup);
    assert!(
        faults(em)["fired"].as_u64().unwrap() >= 1,
        "the fault fired: {}",
        faults(em)
    );
    (setup, f, v)
}

/// The invariants of issue 5 that `assert_uploaded_once` does not cover: journal
/// `PRAGMA integrity_check` = ok, no upload token or API key and no panic in the log.
fn check_journal_and_log(setup: &Setup) {
    assert_eq!(integrity(&setup.dir.join("journal.sqlite")), "ok");
    for line in setup.log().lines() {
        assert!(!line.contains(&setup.token), "token logged: {line}");
        assert!(!line.contains(common::API_KEY), "API key logged: {line}");
        assert!(!line.contains("panicked"), "panic: {line}");
    }
}

#[test]
fn connection_reset_mid_chunk_is_retried() {
    let em = Emulator::start();
    let plan = json!([{"path": "/upload", "skip": 1, "action": "reset", "after_bytes": 1_048_576}]);
    let (setup, _, v) = upload_under(&em, Opts::default(), plan, 2 * MIB5 + 999);
    assert_eq!(v["chunkCount"], 3);
    assert!(
        setup.log().contains("bytes 5242880-"),
        "the retry is logged with its range"
    );
}

#[test]
fn response_dropped_after_store_advances_on_overlap() {
    let em = Emulator::start();
    let plan = json!([{"path": "/upload", "skip": 1, "action": "drop"}]);
    let (_, _, v) = upload_under(&em, Opts::default(), plan, 3 * MIB5 + 4242);
    assert_eq!(v["chunkCount"], 4);
    assert!(
        requests_with_error([&v], "video-content-range-by-bytes-range-overlap") > 0,
        "the resent chunk got the overlap 400: {v:#}"
    );
}

#[test]
fn dropped_response_of_the_last_chunk_means_done() {
    let em = Emulator::start();
    let plan = json!([{"path": "/upload", "skip": 2, "action": "drop"}]);
    let (_, _, v) = upload_under(&em, Opts::default(), plan, 2 * MIB5 + 4242);
    assert_eq!(v["chunkCount"], 3);
    assert!(
        requests_with_error([&v], "video-source-already-uploaded") > 0,
        "the resent last chunk got already-uploaded: {v:#}"
    );
}

#[test]
fn bursts_of_503_are_retried() {
    let em = Emulator::start();
    let plan = json!([
        {"path": "/upload", "skip": 1, "count": 3, "action": "fail", "status": 503},
        {"path": "/upload", "skip": 2, "count": 2, "action": "fail", "status": 502,
         "body": "<html><body>502 Bad Gateway</body></html>"}
    ]);
    let (setup, f, v) = upload_under(&em, Opts::default(), plan, 3 * MIB5 + 1);
    assert_eq!(v["chunkCount"], 4);
    let row = file_row(&setup.status(), &f).unwrap().clone();
    assert_eq!(row["attempts"], 0, "attempts reset after progress: {row:#}");
    assert_eq!(faults(&em)["fired"], 5);
}

#[test]
fn rate_limited_429_waits_the_retry_after_then_completes() {
    // The server's Retry-After (4 s) wins over a shorter retry_max (2 s).
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            retry_max: "2s",
            ..Opts::default()
        },
    );
    set_faults(
        &em,
        json!([{"path": "/upload", "skip": 1, "count": 1, "action": "fail", "status": 429, "retry_after": 4}]),
    );
    let mut d = setup.start();
    let f = setup.drop_file("clip.mp4", 2 * MIB5 + 10, 9);
    // The 429 is recorded with a next attempt no earlier than Retry-After.
    let s = setup.wait_for("the 429 scheduled", T, |s| {
        file_row(s, &f).is_some_and(|r| r["next_attempt_at"].is_string()) || count(s, "done") == 1
    });
    let row = file_row(&s, &f).unwrap().clone();
    assert!(
        row["next_attempt_at"].is_string(),
        "the 429 left a next_attempt_at: {row:#}"
    );
    let last = row["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        last.contains("429") || last.to_lowercase().contains("too many"),
        "{row:#}"
    );
    let next = parse_time(row["next_attempt_at"].as_str().unwrap());
    let at = parse_time(row["updated_at"].as_str().unwrap());
    assert!(
        next - at >= 3.9,
        "next attempt {next} is at least Retry-After (4 s, above retry_max 2 s) after the 429 at {at}: {row:#}"
    );
    assert_ne!(row["state"], "failed");
    let s = setup.wait_done(1, T);
    d.kill9();
    let vid = video_id(&s, &f);
    assert_uploaded_once(&em, &f, &vid);
    check_journal_and_log(&setup);
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS(.fff)Z`.
fn parse_time(t: &str) -> f64 {
    let (date, time) = t.split_once('T').unwrap();
    let time = time.trim_end_matches('Z').trim_end_matches("+00:00");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let hms: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as f64 * 86400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
}

#[test]
fn stalled_endpoint_times_out_and_retries() {
    let em = Emulator::start();
    // A black-holed request times out after `[api] request_timeout` (here 2 s instead of the
    // default 30 s) + len / min_rate.
    let opts = Opts {
        min_rate: "100 MiB",
        ..Opts::default()
    };
    let plan = json!([{"path": "/upload", "skip": 1, "count": 1, "action": "blackhole"}]);
    let (setup, _, v) =
        upload_under_with(&em, opts, "request_timeout = \"2s\"\n", plan, 2 * MIB5 + 5);
    assert_eq!(v["chunkCount"], 3);
    let log = setup.log();
    let line = log
        .lines()
        .find(|l| l.contains("no answer within"))
        .unwrap_or_else(|| panic!("{}", setup.log_tail(30)));
    // 2 s + 5 MiB / 100 MiB/s: the configured base, not the 30 s default.
    assert!(line.contains("no answer within 2 s"), "{line}");
}

#[test]
fn stalled_after_storing_a_middle_chunk_times_out_and_advances_on_overlap() {
    // The endpoint stores chunk 2, then never answers: after the timeout the chunk is re-sent,
    // the overlap 400 says it was stored, and the upload goes on in the same video.
    let em = Emulator::start();
    let opts = Opts {
        min_rate: "100 MiB",
        ..Opts::default()
    };
    let plan =
        json!([{"path": "/upload", "skip": 1, "count": 1, "action": "blackhole", "store": true}]);
    let (setup, _, v) =
        upload_under_with(&em, opts, "request_timeout = \"2s\"\n", plan, 3 * MIB5 + 77);
    assert_eq!(v["chunkCount"], 4);
    assert!(
        requests_with_error([&v], "video-content-range-by-bytes-range-overlap") > 0,
        "the re-sent chunk got the overlap 400: {v:#}"
    );
    assert!(
        setup.log().contains("no answer within 2 s"),
        "{}",
        setup.log_tail(30)
    );
}

#[test]
fn deleted_token_pauses_without_failing_and_a_new_token_resumes() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            workers: 1,
            ..Opts::default()
        },
    );
    // Slow enough that the queue is still busy when the token goes away.
    throttle_uploads(&em, 8_388_608);
    let mut d = setup.start();
    let files: Vec<_> = (0..4u64)
        .map(|i| setup.drop_file(&format!("q{i}.mp4"), MIB5 + 1000 + i, 50 + i))
        .collect();
    setup.wait_for("a first upload in progress", T, |s| {
        count(s, "uploading") >= 1
    });
    delete_token(&em, &setup.token);
    let s = setup.wait_for("token rejected", T, |s| s["token"] == "rejected");
    assert_eq!(count(&s, "failed"), 0, "nothing failed: {s:#}");
    assert!(
        count(&s, "done") < 4,
        "the queue was paused before the end: {s:#}"
    );
    // Paused: still nothing failed a little later (a status poll, then another one).
    let s = setup.wait_for("queue paused, nothing uploading", T, |s| {
        count(s, "uploading") == 0 && count(s, "queued") >= 1
    });
    assert_eq!(count(&s, "failed"), 0, "{s:#}");
    let rejections = setup.log().matches("rejected the upload token").count();
    assert_eq!(
        rejections,
        1,
        "one log line for the pause:\n{}",
        setup.log_tail(40)
    );

    let new = common::daemon::create_token(&em);
    write_token(&setup.token_file, &new);
    let s = setup.wait_done(4, T);
    assert_ne!(s["token"], "rejected");
    d.kill9();
    for f in &files {
        let vid = video_id(&s, f);
        assert_uploaded_once(&em, f, &vid);
    }
    check_journal_and_log(&setup);
}
