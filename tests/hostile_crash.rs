//! Crash windows W1–W6 (DESIGN §3), each hit exactly: `ingestd run` is started with `FAILPOINTS`
//! so that it aborts the whole process at that point (built with `--features failpoints`, as
//! `scripts/test` does), then restarted without failpoints; the invariants of issue 5 are checked
//! (no file lost, no duplicate, content equal, orphans reported, journal intact, no secret or
//! panic in the logs). Without the feature the tests are compiled out.
#![cfg(feature = "failpoints")]

mod common;
mod hostile_support;

use std::path::PathBuf;
use std::time::Duration;

use common::Emulator;
use hostile_support::*;

const ABORT_WAIT: Duration = Duration::from_secs(90);
const FINISH_WAIT: Duration = Duration::from_secs(120);

/// Runs one crash scenario: write the files, start with `failpoints`, wait for the abort, restart
/// clean, wait until all files are finished, check the invariants. Returns what the checks need.
fn crash_and_restart(
    em: &Emulator,
    opts: Opts,
    failpoints: &str,
    sizes: &[u64],
) -> (Setup, Vec<(PathBuf, String)>, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.keep();
    let mut setup = Setup::new(&dir, em, &opts);
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let p = setup.inbox.join(format!("clip-{i}.mp4"));
        write_file(&p, *size, i as u64 + 7);
        files.push((p.clone(), sha256_file(&p)));
    }
    let mut d = setup.start(failpoints);
    let status = d.wait_exit(ABORT_WAIT);
    assert!(!status.success(), "the failpoint run must abort");
    assert!(
        d.log_text().contains("aborting the process (FAILPOINTS)"),
        "the window was not hit: {}",
        d.log_text()
    );
    drop(d);
    let mut d = setup.start("");
    setup.wait_settled(files.len(), FINISH_WAIT);
    // The restart's startup (reclaims, interrupted post-upload actions) is over once it says so.
    let deadline = std::time::Instant::now() + FINISH_WAIT;
    while !d.log_text().contains("ingestd is running") {
        assert!(
            std::time::Instant::now() < deadline,
            "restart never became ready: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.stop();
    let st = check_invariants(&setup, em, &files);
    (setup, files, st)
}

/// W1: stable, not yet journaled. The restart's initial scan finds the file again, it settles
/// and is uploaded once.
#[test]
fn w1_stable_not_journaled() {
    let em = Emulator::start();
    let (_, _, st) = crash_and_restart(&em, Opts::default(), "before-stable=panic", &[3 * MIB]);
    assert_eq!(videos(&em).len(), 1);
    assert_eq!(st["counts"]["done"], 1);
}

/// W2: journaled and claimed, no byte sent. The restart uploads the file from byte 0; no video
/// existed before, none is reported as an orphan.
#[test]
fn w2_claimed_nothing_sent() {
    let em = Emulator::start();
    let (_, _, st) = crash_and_restart(&em, Opts::default(), "after-claim=panic", &[12 * MIB]);
    assert_eq!(videos(&em).len(), 1, "one video, no orphan");
    assert_eq!(
        st["files"][0]["possible_orphans"].as_array().unwrap().len(),
        0
    );
}

/// W3 without an API key: the first chunk was stored (a video exists), its `videoId` was not
/// committed. The restart reports the possible orphan and uploads into a new video.
#[test]
fn w3_first_chunk_sent_orphan_reported() {
    let em = Emulator::start();
    let (_, _, st) = crash_and_restart(
        &em,
        Opts::default(),
        "after-first-chunk-before-commit=panic",
        &[12 * MIB],
    );
    let vids = videos(&em);
    assert_eq!(
        vids.len(),
        2,
        "the orphan and the complete video: {vids:#?}"
    );
    let orphans = st["files"][0]["possible_orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "the orphan is reported: {st:#}");
    let complete = vids.iter().filter(|v| v["complete"] == true).count();
    assert_eq!(complete, 1);
}

/// W3 with an API key: the video is created and committed before any byte is sent, so a crash
/// after the first chunk's acknowledgement leaves no orphan: the restart re-sends chunk 1 into
/// the same video (answered with an overlap), and goes on.
#[test]
fn w3_with_api_key_no_orphan() {
    let em = Emulator::start();
    let opts = Opts {
        api_key: true,
        ..Opts::default()
    };
    let (_, _, st) = crash_and_restart(&em, opts, "after-chunk-before-commit=panic", &[12 * MIB]);
    let vids = videos(&em);
    assert_eq!(vids.len(), 1, "no orphan: {vids:#?}");
    assert_eq!(
        st["files"][0]["possible_orphans"].as_array().unwrap().len(),
        0
    );
    assert_eq!(
        requests_with_error(&videos(&em), "video-content-range-by-bytes-range-overlap"),
        1
    );
}

/// W4: chunk 2 of 4 acknowledged, its offset not committed. The restart re-sends exactly that
/// chunk, the endpoint answers overlap, ingestd advances; the video is complete and unique.
#[test]
fn w4_chunk_acknowledged_offset_not_committed() {
    let em = Emulator::start();
    let (_, _, _) = crash_and_restart(
        &em,
        Opts::default(),
        "after-chunk-before-commit=1*off->panic",
        &[16 * MIB],
    );
    let vids = videos(&em);
    assert_eq!(vids.len(), 1, "{vids:#?}");
    let overlap: Vec<_> = vids[0]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["error"].as_str() == Some("video-content-range-by-bytes-range-overlap"))
        .map(|r| r["contentRange"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        overlap,
        vec![format!("bytes 5242880-10485759/{}", 16 * MIB)]
    );
    assert_eq!(vids[0]["chunkCount"], 4);
}

/// W5a: the last chunk acknowledged, its offset not committed. The restart re-sends it, the
/// endpoint answers `video-source-already-uploaded`, the file is done.
#[test]
fn w5_last_chunk_acknowledged_not_committed() {
    let em = Emulator::start();
    crash_and_restart(
        &em,
        Opts::default(),
        "after-chunk-before-commit=2*off->panic",
        &[12 * MIB],
    );
    assert_eq!(videos(&em).len(), 1);
    assert_eq!(
        requests_with_error(&videos(&em), "video-source-already-uploaded"),
        1
    );
}

/// W5b: every offset committed, `done` not. The restart re-checks the file and marks it done
/// without sending anything.
#[test]
fn w5_offset_committed_done_not() {
    let em = Emulator::start();
    crash_and_restart(
        &em,
        Opts::default(),
        "before-done-commit=panic",
        &[12 * MIB],
    );
    let vids = videos(&em);
    assert_eq!(vids.len(), 1);
    assert_eq!(
        vids[0]["requests"].as_array().unwrap().len(),
        3,
        "nothing re-sent"
    );
}

/// W6 (delete): `done` committed, the post-upload action not run. The restart does not upload
/// the file again (its row is done with the same identity).
#[test]
fn w6_before_after_upload_delete() {
    let em = Emulator::start();
    let opts = Opts {
        after_upload: "delete",
        ..Opts::default()
    };
    let (setup, files, st) = crash_and_restart(&em, opts, "before-after-upload=panic", &[6 * MIB]);
    assert_eq!(videos(&em).len(), 1, "not uploaded again");
    assert_eq!(st["counts"]["done"], 1);
    let _ = setup;
    // The restart finishes the interrupted action (see `w6_delete_is_resumed_after_restart`).
    let _ = files;
}

/// W6 (move across filesystems): the copy is in place under `move_to` (a tmpfs), the source not
/// yet removed. The restart does not upload the file again; the copy is complete.
#[test]
fn w6_move_across_filesystems_copied_not_removed() {
    let mnt = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(mnt.path().to_owned());
    let em = Emulator::start();
    let opts = Opts {
        after_upload: "move",
        move_to: Some(mnt.path().to_owned()),
        ..Opts::default()
    };
    let (_, files, st) = crash_and_restart(&em, opts, "after-upload-copied=panic", &[6 * MIB]);
    assert_eq!(videos(&em).len(), 1, "not uploaded again");
    assert_eq!(st["counts"]["done"], 1);
    let copy = mnt.path().join("clip-0.mp4");
    assert_eq!(sha256_file(&copy), files[0].1, "the moved copy is complete");
    // The restart finishes the move with the copy already in place: no second copy, and the
    // source is removed.
    let names: Vec<_> = std::fs::read_dir(mnt.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("clip-0.mp4")],
        "one copy only"
    );
    assert!(!files[0].0.exists(), "the source is removed by the restart");
}

/// The restart finishes the post-upload action that a crash interrupted (a `done` row with no
/// recorded `after_upload`, and the file on disk still the uploaded one).
#[test]
fn w6_delete_is_resumed_after_restart() {
    let em = Emulator::start();
    let opts = Opts {
        after_upload: "delete",
        ..Opts::default()
    };
    let (_, files, st) = crash_and_restart(&em, opts, "before-after-upload=panic", &[6 * MIB]);
    assert_eq!(st["counts"]["done"], 1);
    assert!(!files[0].0.exists(), "the source is deleted by the restart");
}
