//! A lost journal must not mean a second upload (issue 12, item 4), with an API key: every video
//! carries its content hash (`ingestd-blake3`) and host (`ingestd-host`) in its metadata; a
//! journal deleted between runs, or deleted or emptied under a running daemon, ends with every
//! file already on api.video adopted (`done`, `adopted_at` set) and 0 second uploads (the
//! emulator's video count). A failed lookup holds the file, never uploads it; an incomplete
//! video with the hash is reported as an orphan and the file uploaded anew.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Emulator;
use common::daemon::{
    Daemon, Opts, Setup, blake3_file, create_video, file_row, set_faults, video_id, videos,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;

/// A setup whose config has `api.api_key_file` (the emulator's key).
fn keyed(em: &Emulator) -> Setup {
    let setup = Setup::new(em, Opts::default());
    setup.use_api_key();
    setup
}

fn journal(setup: &Setup) -> PathBuf {
    setup.dir.join("journal.sqlite")
}

/// Removes the journal and its `-wal` and `-shm`.
fn delete_journal(setup: &Setup) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = journal(setup).into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// `ingestd videos show ID --json` (the API key of the config).
fn show(setup: &Setup, id: &str) -> Value {
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&setup.config)
        .args(["videos", "show", id, "--json"])
        .env_remove("APIVIDEO_API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn metadata(video: &Value, key: &str) -> Option<String> {
    video["metadata"]
        .as_array()?
        .iter()
        .find(|m| m["key"] == key)
        .and_then(|m| m["value"].as_str().map(str::to_owned))
}

fn stop(d: &mut Daemon) {
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());
}

/// Uploads `files`, checks their metadata, returns their video ids.
fn upload_all(setup: &Setup, files: &[&Path]) -> Vec<String> {
    let mut d = setup.start();
    let s = setup.wait_done(files.len(), WAIT);
    stop(&mut d);
    files
        .iter()
        .map(|f| {
            let id = video_id(&s, f);
            let v = show(setup, &id);
            assert_eq!(
                metadata(&v, "ingestd-blake3"),
                Some(blake3_file(f)),
                "{v:#}"
            );
            assert!(
                metadata(&v, "ingestd-host").is_some_and(|h| !h.is_empty()),
                "{v:#}"
            );
            id
        })
        .collect()
}

/// Every file of `files` is `done` with its earlier video, adopted.
fn assert_adopted(s: &Value, files: &[&Path], ids: &[String]) {
    for (f, id) in files.iter().zip(ids) {
        let row = file_row(s, f).unwrap();
        assert_eq!(row["state"], "done", "{row:#}");
        assert_eq!(row["video_id"], id.as_str(), "{row:#}");
        assert!(row["adopted_at"].is_string(), "{row:#}");
    }
}

#[test]
fn a_journal_deleted_between_runs_adopts_every_uploaded_file_and_a_failed_lookup_holds() {
    let em = Emulator::start();
    let setup = keyed(&em);
    let a = setup.drop_file("a.mp4", MIB, 1);
    let b = setup.drop_file("b.mp4", 6 * MIB, 2); // two chunks
    let ids = upload_all(&setup, &[&a, &b]);
    assert_eq!(videos(&em).len(), 2);

    delete_journal(&setup);
    // A file that arrived while stopped: looked up, not found, uploaded.
    let c = setup.drop_file("c.mp4", MIB, 3);
    // The first lookups fail: the files are held, never uploaded on a failed lookup.
    set_faults(
        &em,
        json!([{"path": "/videos", "method": "GET", "count": 3, "action": "fail", "status": 503}]),
    );
    let mut d = setup.start();
    let s = setup.wait_done(3, WAIT);
    stop(&mut d);
    assert_eq!(videos(&em).len(), 3, "0 second uploads: {:#}", s);
    assert_adopted(&s, &[&a, &b], &ids);
    let row = file_row(&s, &c).unwrap();
    assert!(row["adopted_at"].is_null(), "{row:#}");
    assert!(!ids.contains(&video_id(&s, &c)));
    let log = setup.log();
    assert!(
        log.contains("adopted: api.video already holds this file"),
        "{log}"
    );
    assert!(log.contains("held"), "the failed lookups are logged: {log}");
}

#[test]
fn an_incomplete_video_with_the_hash_is_an_orphan_and_the_file_is_uploaded_anew() {
    let em = Emulator::start();
    let setup = keyed(&em);
    let a = setup.drop_file("a.mp4", MIB, 4);
    // A lost journal's upload that never finished: created with the hash, no bytes.
    let partial = create_video(&em, "a", &[], &[("ingestd-blake3", &blake3_file(&a))]);
    let mut d = setup.start();
    let s = setup.wait_done(1, WAIT);
    stop(&mut d);
    let row = file_row(&s, &a).unwrap();
    assert!(row["adopted_at"].is_null(), "{row:#}");
    assert_ne!(row["video_id"], partial.as_str());
    let orphans = row["possible_orphans"].as_array().unwrap();
    assert!(
        orphans.iter().any(|o| o["video_id"] == partial.as_str()),
        "{row:#}"
    );
    assert_eq!(videos(&em).len(), 2);
    // `ingestd orphans` lists it, and `--delete --yes` removes it alone.
    let orphans = |args: &[&str]| {
        let out = Command::new(common::bin())
            .arg("--config")
            .arg(&setup.config)
            .arg("orphans")
            .args(args)
            .env_remove("APIVIDEO_API_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(orphans(&["--json"]).contains(&partial));
    orphans(&["--delete", "--yes"]);
    let left = videos(&em);
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["videoId"], video_id(&s, &a).as_str());
}

#[test]
fn a_journal_deleted_under_a_running_daemon_stops_it_and_the_restart_adopts() {
    let em = Emulator::start();
    let setup = keyed(&em);
    let a = setup.drop_file("a.mp4", MIB, 5);
    let b = setup.drop_file("b.mp4", MIB, 6);
    let mut d = setup.start();
    let s = setup.wait_done(2, WAIT);
    let ids = vec![video_id(&s, &a), video_id(&s, &b)];
    delete_journal(&setup);
    let status = d.wait_exit(WAIT).expect("the daemon stops");
    assert_eq!(status.code(), Some(1), "{}", setup.log_tail(20));
    setup.wait_log("was deleted while ingestd was running", WAIT);

    // What systemd's Restart= does: a new journal, the files adopted.
    let mut d = setup.start();
    let s = setup.wait_done(2, WAIT);
    stop(&mut d);
    assert_adopted(&s, &[&a, &b], &ids);
    assert_eq!(videos(&em).len(), 2, "0 second uploads");
}

#[test]
fn a_journal_emptied_under_a_running_daemon_stops_it_and_is_refused_until_removed() {
    let em = Emulator::start();
    let setup = keyed(&em);
    let a = setup.drop_file("a.mp4", MIB, 7);
    let mut d = setup.start();
    let s = setup.wait_done(1, WAIT);
    let ids = vec![video_id(&s, &a)];
    std::fs::OpenOptions::new()
        .write(true)
        .open(journal(&setup))
        .unwrap()
        .set_len(0)
        .unwrap();
    let status = d.wait_exit(WAIT).expect("the daemon stops");
    assert_eq!(status.code(), Some(1), "{}", setup.log_tail(20));
    setup.wait_log("was emptied (truncated) while ingestd was running", WAIT);

    // Restarted: the emptied journal is refused (exit 78, RestartPreventExitStatus=78) ...
    let mut d = setup.start();
    assert_eq!(d.wait_exit(WAIT).unwrap().code(), Some(78));
    // ... until the operator removes it on purpose: then every file is adopted.
    delete_journal(&setup);
    let mut d = setup.start();
    let s = setup.wait_done(1, WAIT);
    stop(&mut d);
    assert_adopted(&s, &[&a], &ids);
    assert_eq!(videos(&em).len(), 1, "0 second uploads");
}

/// The hash `PATCH` after the last chunk failing (503) is retried alone: one video, done, with
/// the hash in its metadata.
#[test]
fn a_failed_hash_patch_is_retried_and_the_file_uploaded_once() {
    let em = Emulator::start();
    let setup = keyed(&em);
    set_faults(
        &em,
        json!([{"path": "/videos/", "method": "PATCH", "count": 2, "action": "fail", "status": 503}]),
    );
    // Written after the journal exists: not looked up, tagged after the upload.
    let mut d = setup.start();
    setup.wait_log("ingestd is running", WAIT);
    let a = setup.drop_file("a.mp4", MIB, 8);
    let s = setup.wait_done(1, WAIT);
    stop(&mut d);
    let id = video_id(&s, &a);
    let v = show(&setup, &id);
    assert_eq!(
        metadata(&v, "ingestd-blake3"),
        Some(blake3_file(&a)),
        "{v:#}"
    );
    assert_eq!(videos(&em).len(), 1);
    let log = setup.log();
    assert!(
        log.contains("setting the content hash in the metadata"),
        "{log}"
    );
    assert!(!log.contains("looked up by content hash"), "{log}");
}
