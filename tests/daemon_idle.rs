//! Idle upload workers sleep instead of polling the journal (they wake for work queued by this
//! daemon, at the next retry time, or when another process changed the journal). What must keep
//! working: `ingestd retry --failed`, run as a separate process while the daemon idles, gets the
//! failed file uploaded promptly — well before the idle workers' longest sleep (60 s), so this
//! test fails if the daemon did not notice the other process's change.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, assert_uploaded_once, count, file_row, set_faults};
use serde_json::json;

/// Shorter than `upload::worker::IDLE_MAX` (60 s): only a wake-up can make it.
const PROMPTLY: Duration = Duration::from_secs(20);

#[test]
fn retry_failed_from_another_process_is_uploaded_by_the_running_daemon() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    // The first upload request is refused for good (a 400): the file ends `failed`.
    set_faults(
        &em,
        json!([{"path": "/upload", "count": 1, "action": "fail", "status": 400}]),
    );
    let _d = setup.start();
    let f = setup.drop_file("clip.mp4", 300_000, 7);
    setup.wait_for("the file failed", Duration::from_secs(60), |s| {
        count(s, "failed") == 1
    });
    // Idle now: nothing queued, both workers asleep.

    let out = Command::new(env!("CARGO_BIN_EXE_ingestd"))
        .arg("--config")
        .arg(&setup.config)
        .args(["retry", "--failed"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued again"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let s = setup.wait_done(1, PROMPTLY);
    let vid = file_row(&s, &f).unwrap()["video_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_uploaded_once(&em, &f, &vid);
}
