//! `ingestd run` as a process: SIGTERM mid-upload (exit 0 within the deadline, resume with the
//! same videoId), SIGHUP with a broken and with a valid config, `after_upload` move/delete only
//! after completion, a file modified during its upload, `ingestd upload FILE`, and a wrong API
//! key (paused, then resumed by SIGHUP with the right one and the reloaded `[upload]`).
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Emulator;
use common::daemon::{
    MIB5, Opts, Setup, assert_uploaded_once, clear_faults, count, file_row, sha256_file,
    throttle_uploads, video_id, videos,
};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(120);

/// Waits until `f` is uploading with its videoId committed; returns the videoId.
fn wait_uploading(setup: &Setup, f: &Path) -> String {
    let s = setup.wait_for("upload in progress with a videoId", T, |s| {
        file_row(s, f).is_some_and(|r| r["state"] == "uploading" && r["video_id"].is_string())
    });
    video_id(&s, f)
}

fn wait_path(p: &Path, exists: bool, setup: &Setup) {
    let start = Instant::now();
    while p.exists() != exists {
        assert!(
            start.elapsed() < T,
            "{p:?} never {}\n{}",
            if exists { "appeared" } else { "went away" },
            setup.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_mid_upload_exits_0_and_resumes_the_same_video() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            shutdown_timeout: "1s",
            ..Opts::default()
        },
    );
    // 2 MiB/s: a 5 MiB chunk is in flight for ~2.5 s.
    throttle_uploads(&em, 2 * 1024 * 1024);
    let mut d = setup.start();
    let f = setup.drop_file("term.mp4", 3 * MIB5 + 321, 11);
    let vid = wait_uploading(&setup, &f);
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit after SIGTERM\n{}", setup.log_tail(30)));
    assert!(st.success(), "exit status {st:?}\n{}", setup.log_tail(30));
    let s = setup.status();
    let row = file_row(&s, &f).unwrap().clone();
    assert_ne!(row["state"], "done", "stopped mid-upload: {row:#}");
    assert_ne!(row["state"], "failed", "{row:#}");

    clear_faults(&em);
    let mut d = setup.start();
    let s = setup.wait_done(1, T);
    d.kill9();
    let row = file_row(&s, &f).unwrap();
    assert_eq!(
        row["video_id"].as_str(),
        Some(&*vid),
        "resumed the same video"
    );
    assert_uploaded_once(&em, &f, &vid);
    assert_eq!(videos(&em).len(), 1);
}

#[test]
fn sighup_broken_config_keeps_running_valid_config_adds_a_root() {
    let em = Emulator::start();
    let mut setup = Setup::new(&em, Opts::default());
    let good = setup.dir.join("good.toml");
    std::fs::copy(&setup.config, &good).unwrap();
    setup.status_config = Some(good);
    let mut d = setup.start();
    setup.wait_log("ingestd is running", T);

    std::fs::write(&setup.config, "[api\nthis is not toml").unwrap();
    d.signal(libc::SIGHUP);
    setup.wait_log("keeping the running configuration", T);
    assert!(
        d.running(),
        "a broken config on SIGHUP must not stop the daemon"
    );
    // Valid TOML but nothing to watch: refused the same way (the daemon would sit idle).
    let text = setup.config_text();
    let cut = text.find("[[watch]]").unwrap();
    std::fs::write(&setup.config, &text[..cut]).unwrap();
    d.signal(libc::SIGHUP);
    setup.wait_log("no [[watch]] section", T);
    assert!(d.running());
    let a = setup.drop_file("after-broken.mp4", 200_000, 21);
    setup.wait_done(1, T);

    setup.opts.extra_roots = vec!["second"];
    setup.write_config();
    d.signal(libc::SIGHUP);
    setup.wait_log("configuration reloaded", T);
    let b = setup.dir.join("second").join("second-root.mp4");
    common::daemon::write_file_atomic(&b, MIB5 + 17, 22);
    let s = setup.wait_done(2, T);
    assert!(d.running());
    d.kill9();
    for f in [&a, &b] {
        let vid = video_id(&s, f);
        assert_uploaded_once(&em, f, &vid);
    }
}

#[test]
fn after_upload_move_happens_only_after_completion() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            after_upload: "move",
            ..Opts::default()
        },
    );
    throttle_uploads(&em, 8 * 1024 * 1024);
    let mut d = setup.start();
    let f = setup.inbox.join("cam1").join("day").join("m.mp4");
    common::daemon::write_file_atomic(&f, 2 * MIB5 + 5, 31);
    let sha = sha256_file(&f);
    wait_uploading(&setup, &f);
    assert!(f.exists(), "still in place while uploading");
    let target = setup.moved.join("cam1").join("day").join("m.mp4");
    assert!(!target.exists());
    let s = setup.wait_done(1, T);
    wait_path(&target, true, &setup);
    wait_path(&f, false, &setup);
    d.kill9();
    assert_eq!(sha256_file(&target), sha, "moved content intact");
    let vid = video_id(&s, &f);
    assert_eq!(
        common::daemon::video(&em, &vid)["sha256"].as_str(),
        Some(&*sha)
    );
}

#[test]
fn after_upload_delete_happens_only_after_completion() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            after_upload: "delete",
            ..Opts::default()
        },
    );
    throttle_uploads(&em, 8 * 1024 * 1024);
    let mut d = setup.start();
    let f = setup.drop_file("del.mp4", 2 * MIB5 + 5, 41);
    let sha = sha256_file(&f);
    wait_uploading(&setup, &f);
    assert!(f.exists(), "still present while uploading");
    let s = setup.wait_done(1, T);
    wait_path(&f, false, &setup);
    d.kill9();
    let vid = video_id(&s, &f);
    assert_eq!(
        common::daemon::video(&em, &vid)["sha256"].as_str(),
        Some(&*sha)
    );
    assert_eq!(common::daemon::video(&em, &vid)["complete"], true);
}

#[test]
fn file_modified_during_upload_is_not_done_and_uploads_again() {
    modified_during_upload(2);
}

/// With one worker, the stale upload must leave that worker alive: a later file still uploads.
#[test]
fn file_modified_during_upload_with_one_worker_keeps_the_worker() {
    modified_during_upload(1);
}

fn modified_during_upload(workers: usize) {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            workers,
            ..Opts::default()
        },
    );
    throttle_uploads(&em, 4 * 1024 * 1024);
    let mut d = setup.start();
    let f = setup.drop_file("grow.mp4", 2 * MIB5 + 5, 51);
    let old_vid = wait_uploading(&setup, &f);
    {
        use std::io::Write;
        let mut h = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        // A 4 KiB `free` box: the file changes and stays a complete MP4 (the check is on).
        let mut free = vec![7u8; 4096];
        free[..8].copy_from_slice(&[0, 0, 0x10, 0, b'f', b'r', b'e', b'e']);
        h.write_all(&free).unwrap();
    }
    let s = setup.wait_for("uploaded again after the change", T, |s| {
        file_row(s, &f).is_some_and(|r| r["state"] == "done")
    });
    clear_faults(&em);
    let next = setup.drop_file("next.mp4", 100_000, 52);
    setup.wait_done(2, T);
    assert!(next.exists());
    d.kill9();
    let row = file_row(&s, &f).unwrap().clone();
    let vid = row["video_id"].as_str().unwrap().to_owned();
    assert_ne!(
        vid, old_vid,
        "a modified file is not done under its old video: {row:#}"
    );
    let abandoned: Vec<Value> = row["abandoned_video_ids"].as_array().unwrap().clone();
    assert!(
        abandoned
            .iter()
            .any(|a| a["video_id"].as_str() == Some(&*old_vid) || a.as_str() == Some(&*old_vid)),
        "the old video is recorded as abandoned: {row:#}"
    );
    // The stale upload stopped without touching the new one (no orphan from a clobbered claim).
    assert_eq!(row["possible_orphans"], json!([]), "{row:#}");
    assert!(
        !setup.log().contains("journal error"),
        "{}",
        setup.log_tail(30)
    );
    let v = common::daemon::video(&em, &vid);
    assert_eq!(
        v["sha256"].as_str(),
        Some(&*sha256_file(&f)),
        "new video has the new content"
    );
    assert_eq!(
        row["blake3"].as_str(),
        Some(&*common::daemon::blake3_file(&f))
    );
}

fn upload_cmd(setup: &Setup, file: &Path) -> std::process::Output {
    Command::new(common::bin())
        .args(["upload", "--config"])
        .arg(&setup.config)
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn upload_command_uploads_once_and_reports() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let f = setup.dir.join("outside").join("fg.mp4");
    common::daemon::write_file(&f, 2 * MIB5 + 99, 61);
    let out = upload_cmd(&setup, &f);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "upload failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = videos(&em);
    assert_eq!(all.len(), 1);
    let vid = all[0]["videoId"].as_str().unwrap().to_owned();
    assert!(stdout.contains(&vid), "prints the videoId: {stdout}");
    assert_uploaded_once(&em, &f, &vid);
    let s = setup.status();
    assert_eq!(count(&s, "done"), 1);

    let again = upload_cmd(&setup, &f);
    let stdout = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success());
    assert!(
        stdout.contains("already uploaded") && stdout.contains(&vid),
        "{stdout}"
    );
    assert_eq!(videos(&em).len(), 1, "no second video");

    let missing = upload_cmd(&setup, &setup.dir.join("nope.mp4"));
    assert!(!missing.status.success(), "a missing file is an error");
}

/// The API-key pause also lifts when `api.api_key_file` is rewritten (no SIGHUP needed), and the
/// video is created with the new key.
#[test]
fn a_rewritten_api_key_file_lifts_the_api_key_pause_without_sighup() {
    use std::os::unix::fs::PermissionsExt;
    let em = Emulator::start(); // accepts only common::API_KEY
    let setup = Setup::new(&em, Opts::default());
    let key_file = setup.dir.join("api-key");
    let write_key = |key: &str| {
        std::fs::write(&key_file, key).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_key("wrongApiKey000000000000000000");
    let text = setup.config_text().replacen(
        "[api]\n",
        &format!("[api]\napi_key_file = \"{}\"\n", key_file.display()),
        1,
    );
    std::fs::write(&setup.config, text).unwrap();
    let _d = setup.start();
    setup.drop_file("clip.mp4", 1024 * 1024, 7);
    setup.wait_for("uploads paused by the API key", T, |s| {
        s["paused"] == "API key rejected"
    });
    assert!(videos(&em).is_empty());
    // No SIGHUP: the daemon notices the rewritten file on its own.
    write_key(common::API_KEY);
    let s = setup.wait_done(1, T);
    assert!(s["paused"].is_null(), "{s:#}");
    setup.wait_log("the API key file changed: uploads resume", T);
    let vids = videos(&em);
    assert_eq!(vids.len(), 1, "{vids:#?}");
    assert_eq!(vids[0]["title"], "clip", "created with the new API key");
}

/// A wrong API key (401 on `POST /videos`) pauses the uploads in its own state (`status`:
/// `"paused": "API key rejected"`; a new token or a successful chunk does not lift it): nothing is marked failed, one log line says what to do. Fixing `api.api_key_file` and sending SIGHUP
/// resumes them with the new key and the reloaded `[upload]` settings (`after_upload` too).
#[test]
fn wrong_api_key_pauses_and_sighup_with_the_right_key_resumes() {
    use std::os::unix::fs::PermissionsExt;
    let em = Emulator::start(); // accepts only common::API_KEY
    let setup = Setup::new(&em, Opts::default());
    let key_file = setup.dir.join("api-key");
    let write_key = |key: &str| {
        std::fs::write(&key_file, key).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_key("wrongApiKey000000000000000000");
    let with_key = |text: String| {
        text.replacen(
            "[api]\n",
            &format!("[api]\napi_key_file = \"{}\"\n", key_file.display()),
            1,
        )
    };
    std::fs::write(&setup.config, with_key(setup.config_text())).unwrap();
    let d = setup.start();
    let f = setup.drop_file("clip.mp4", 1024 * 1024, 7);
    // Its own pause, by type: `paused` says so, the token is not called rejected.
    let s = setup.wait_for("uploads paused by the API key", T, |s| {
        s["paused"] == "API key rejected"
    });
    assert_ne!(s["token"], "rejected", "{s:#}");
    assert!(
        s["token_reason"]
            .as_str()
            .is_some_and(|r| r.contains("authentication-invalid-api-key")),
        "{s:#}"
    );
    assert_eq!(count(&s, "failed"), 0, "nothing failed: {s:#}");
    setup.wait_log("rejected the API key", T);
    assert_eq!(
        setup.log().matches("rejected the API key").count(),
        1,
        "one log line, no retry storm: {}",
        setup.log_tail(20)
    );
    assert!(videos(&em).is_empty());

    write_key(common::API_KEY);
    let reloaded = with_key(setup.config_text())
        .replace("after_upload = \"keep\"", "after_upload = \"delete\"");
    std::fs::write(&setup.config, reloaded).unwrap();
    d.signal(libc::SIGHUP);
    let s = setup.wait_done(1, T);
    assert_eq!(s["token"], "ok", "{s:#}");
    let row = s["files"].as_array().unwrap()[0].clone();
    wait_path(&f, false, &setup);
    assert_eq!(
        row["after_upload"], "deleted",
        "the reloaded after_upload applies: {row:#}"
    );
    let vids = videos(&em);
    assert_eq!(vids.len(), 1, "{vids:#?}");
    assert_eq!(
        vids[0]["title"], "clip",
        "created with the API key: the title is the stem"
    );
    assert!(
        !setup.log().contains(common::API_KEY),
        "no API key in the log"
    );
}

/// An upload token file emptied under the running daemon (session 5 probe: it went unnoticed)
/// is said once, the token read before stays in use (a file dropped meanwhile is uploaded), and
/// a fixed file is said too.
#[test]
fn an_emptied_token_file_is_said_once_and_the_token_read_before_goes_on() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let _d = setup.start();
    setup.drop_file("one.mp4", 300_000, 1);
    setup.wait_done(1, T);
    std::fs::write(&setup.token_file, "").unwrap();
    setup.wait_log("the upload token file is empty", T);
    setup.drop_file("two.mp4", 300_000, 2);
    // Counted at the endpoint (`status` also works with an empty token file since session 6).
    let start = Instant::now();
    while videos(&em).len() < 2 {
        assert!(
            start.elapsed() < T,
            "two.mp4 not uploaded with the token read before:\n{}",
            setup.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&setup.token_file, &setup.token).unwrap();
    setup.wait_log("the upload token file is readable again", T);
    let log = setup.log();
    assert_eq!(
        log.matches("the upload token file is empty").count(),
        1,
        "said once per reason:\n{log}"
    );
    assert!(!log.contains(&setup.token), "the token is never logged");
    assert_eq!(videos(&em).len(), 2);
}
