//! Odd writers (issue 5 §4) into a watched folder with `settle = 1s`: each file must be uploaded
//! once, whole, and never as a prefix of what was still being written ("no partial upload").
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;
mod hostile_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Emulator;
use hostile_support::*;

const WAIT: Duration = Duration::from_secs(120);

/// Starts the daemon and waits until `status` can read its journal (a `status` before the
/// daemon created the journal fails: "no journal … yet").
fn start(setup: &mut Setup) -> Daemon {
    let d = setup.start("");
    let until = std::time::Instant::now() + WAIT;
    loop {
        let ok = std::process::Command::new(common::bin())
            .args(["status", "--json", "--config"])
            .arg(&setup.config)
            .output()
            .unwrap()
            .status
            .success();
        if ok {
            return d;
        }
        assert!(
            std::time::Instant::now() < until,
            "the daemon did not create its journal: {}",
            setup.all_logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The endpoint, a test directory and a setup with `workers` workers (not started yet).
fn scene(workers: u32) -> (Emulator, tempfile::TempDir, Setup) {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let opts = Opts {
        workers,
        // Off on purpose: these writers put raw bytes into `.mp4` files to test the settle rule
        // alone; tests/container.rs runs writers with real structure and the check on.
        check_container: false,
        ..Opts::default()
    };
    let setup = Setup::new(tmp.path(), &em, &opts);
    (em, tmp, setup)
}

/// Waits until the one file `p` is finished and checks the invariants with its content as it is
/// now; returns that `(path, SHA-256)` list.
fn settled_once(setup: &Setup, em: &Emulator, p: &Path) -> Vec<(PathBuf, String)> {
    let files = vec![(p.to_owned(), sha256_file(p))];
    setup.wait_settled(1, WAIT);
    check_invariants(setup, em, &files);
    files
}

/// The ids in a status row's `abandoned_video_ids`.
fn abandoned(row: &serde_json::Value) -> Vec<&str> {
    row["abandoned_video_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["video_id"].as_str())
        .collect()
}

/// No complete video is a strict prefix of a final file (compared by size and SHA-256 of the
/// file's first `size` bytes).
fn assert_no_partial(em: &Emulator, files: &[(std::path::PathBuf, String)]) {
    for v in videos(em) {
        if v["complete"] != true {
            continue;
        }
        let size = v["size"].as_u64().unwrap();
        for (p, sha) in files {
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            if size < len {
                use sha2::Digest;
                let data = std::fs::read(p).unwrap();
                let prefix = hex::encode(sha2::Sha256::digest(
                    &data[..usize::try_from(size).unwrap()],
                ));
                assert_ne!(
                    v["sha256"].as_str(),
                    Some(prefix.as_str()),
                    "partial upload of {}",
                    p.display()
                );
            }
            let _ = sha;
        }
    }
}

/// A slow writer: 8 pieces of 256 KiB with 400 ms pauses (shorter than settle), then close.
/// One upload of the whole file.
#[test]
fn slow_writer_with_pauses_shorter_than_settle() {
    let (em, _tmp, mut setup) = scene(1);
    let _d = start(&mut setup);
    let p = setup.inbox.join("slow.mp4");
    let mut f = std::fs::File::create(&p).unwrap();
    for i in 0..8u8 {
        f.write_all(&vec![i.wrapping_mul(37); 256 * 1024]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(f);
    let files = settled_once(&setup, &em, &p);
    assert_no_partial(&em, &files);
    assert_eq!(videos(&em).len(), 1);
}

/// Written as `name.part` (excluded), then renamed to `name.mp4`: uploaded once, as `name.mp4`.
#[test]
fn part_file_renamed_when_finished() {
    let (em, _tmp, mut setup) = scene(1);
    let _d = start(&mut setup);
    let part = setup.inbox.join("rec.mp4.part");
    write_file(&part, 2 * MIB, 3);
    std::thread::sleep(Duration::from_millis(1500)); // longer than settle: .part must stay ignored
    let p = setup.inbox.join("rec.mp4");
    std::fs::rename(&part, &p).unwrap();
    settled_once(&setup, &em, &p);
    let vids = videos(&em);
    assert_eq!(vids.len(), 1);
    assert_eq!(vids[0]["title"], "rec.mp4");
}

/// `cp -p` keeps an old mtime (a camera clock in 2001): the settle is measured on the monotonic
/// clock, so the copy is uploaded once, after it is complete.
#[test]
fn cp_preserving_old_mtime() {
    let (em, tmp, mut setup) = scene(1);
    let src = tmp.path().join("orig.mp4");
    write_file(&src, 7 * MIB, 5);
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let _d = start(&mut setup);
    let p = setup.inbox.join("orig.mp4");
    let st = std::process::Command::new("cp")
        .arg("-p")
        .arg(&src)
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    let files = settled_once(&setup, &em, &p);
    assert_no_partial(&em, &files);
}

/// Preallocated to its full size (as Samba does), then filled: the upload holds the filled
/// content, not the zeros.
#[test]
fn preallocate_then_fill() {
    let (em, _tmp, mut setup) = scene(1);
    let _d = start(&mut setup);
    let p = setup.inbox.join("samba.mp4");
    let mut f = std::fs::File::create(&p).unwrap();
    f.set_len(2 * MIB).unwrap();
    for i in 0..8u8 {
        f.write_all(&vec![i + 1; 256 * 1024]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(f);
    settled_once(&setup, &em, &p);
    assert_eq!(videos(&em).len(), 1);
}

/// MP4 "faststart": written, closed, then rewritten whole through a temp file and a rename. The
/// final content is uploaded; a video of the first version may exist only if it was complete
/// before the rewrite (it is then a whole file, never a prefix).
#[test]
fn faststart_rewrite_via_temp_and_rename() {
    let (em, _tmp, mut setup) = scene(1);
    let _d = start(&mut setup);
    let p = setup.inbox.join("fast.mp4");
    write_file(&p, 3 * MIB, 11);
    let t = setup.inbox.join(".fast.mp4.tmp");
    write_file(&t, 3 * MIB, 12);
    std::fs::rename(&t, &p).unwrap();
    let files = vec![(p.clone(), sha256_file(&p))];
    let st = setup.wait_settled(1, WAIT);
    let done = st["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["state"] == "done" && f["sha256"].as_str() == Some(files[0].1.as_str()));
    assert!(done, "the final content is uploaded: {st:#}");
    assert_no_partial(&em, &files);
    check_logs(&setup);
}

/// The same name written again after its upload: a new video; the old one stays untouched.
#[test]
fn same_name_written_again_after_upload() {
    let (em, _tmp, mut setup) = scene(1);
    let _d = start(&mut setup);
    let p = setup.inbox.join("again.mp4");
    write_file(&p, MIB, 21);
    let first = sha256_file(&p);
    setup.wait_settled(1, WAIT);
    let before = videos(&em);
    assert_eq!(before.len(), 1);
    std::fs::remove_file(&p).unwrap();
    write_file(&p, MIB + 5, 22);
    let second = sha256_file(&p);
    let until = std::time::Instant::now() + WAIT;
    loop {
        let vids = videos(&em);
        if vids
            .iter()
            .any(|v| v["sha256"].as_str() == Some(second.as_str()))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "second version not uploaded: {vids:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let vids = videos(&em);
    assert_eq!(vids.len(), 2, "{vids:#?}");
    assert_eq!(vids[0]["videoId"], before[0]["videoId"]);
    assert_eq!(
        vids[0]["sha256"].as_str(),
        Some(first.as_str()),
        "the old video is untouched"
    );
    check_logs(&setup);
}

/// Runs `script` with `sh -c` as a separate process (the odd writer), `args` as `$1…`.
fn sh(script: &str, args: &[&std::path::Path]) -> std::process::Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .spawn()
        .unwrap()
}

fn wait_child(mut c: std::process::Child) {
    let st = c.wait().unwrap();
    assert!(st.success(), "writer process failed: {st}");
}

/// `POST /upload` requests the endpoint received so far.
fn upload_requests(em: &Emulator) -> u64 {
    stats(em)["requests"]["POST /upload"].as_u64().unwrap_or(0)
}

/// The status row of `p` (the live one if several).
fn row_of(st: &serde_json::Value, p: &std::path::Path) -> Option<serde_json::Value> {
    let rows = st["files"].as_array()?;
    let mine = rows
        .iter()
        .filter(|r| r["path"].as_str() == p.to_str())
        .collect::<Vec<_>>();
    mine.iter()
        .find(|r| !matches!(r["state"].as_str(), Some("done" | "gone")))
        .or(mine.last())
        .map(|r| (*r).clone())
}

/// Polls `status` until `pred` holds for the row of `p`; returns that row.
fn wait_row(
    setup: &Setup,
    p: &std::path::Path,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = std::time::Instant::now() + WAIT;
    loop {
        let st = setup.status();
        if let Some(r) = row_of(&st, p).filter(|r| pred(r)) {
            return r;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}: {st:#}\n{}",
            setup.all_logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A writer that opens in append mode, appends a piece, closes, pauses (shorter than settle),
/// and reopens, ten times (`dd … >> file` per piece, each a separate open/close): one video with
/// the whole content, never one of a prefix.
#[test]
fn close_and_reopen_appends() {
    let (em, tmp, mut setup) = scene(1);
    let src = tmp.path().join("source.bin");
    write_file(&src, 10 * 300 * 1024, 31);
    let _d = start(&mut setup);
    let p = setup.inbox.join("appended.mp4");
    let writer = sh(
        "for i in 0 1 2 3 4 5 6 7 8 9; do \
           dd if=\"$1\" bs=307200 skip=$i count=1 status=none >> \"$2\" || exit 1; \
           sleep 0.4; \
         done",
        &[&src, &p],
    );
    wait_child(writer);
    assert_eq!(
        sha256_file(&p),
        sha256_file(&src),
        "the writer wrote it all"
    );
    let files = settled_once(&setup, &em, &p);
    assert_no_partial(&em, &files);
    assert_eq!(videos(&em).len(), 1, "{:#?}", videos(&em));
}

/// A file truncated while its chunked upload runs (the endpoint reads slowly), then written
/// again by another process: never `done` with the old content; once stable it uploads its new
/// content as a new video, and the old partial video is reported in `abandoned_video_ids`.
#[test]
fn truncated_while_uploading() {
    let (em, tmp, mut setup) = scene(1);
    throttle_uploads(&em, 4 * MIB);
    let staged = tmp.path().join("big.mp4");
    write_file(&staged, 20 * MIB + 12_345, 41);
    let old_sha = sha256_file(&staged);
    let fresh = tmp.path().join("fresh.bin");
    write_file(&fresh, 7 * MIB + 99, 42);
    let _d = start(&mut setup);
    let p = setup.inbox.join("big.mp4");
    std::fs::rename(&staged, &p).unwrap();
    // The first chunk is acknowledged (a videoId holds 5 MiB); three more to go.
    let row = wait_row(&setup, &p, "the first chunk committed", |r| {
        r["state"] == "uploading" && r["bytes_uploaded"].as_u64() >= Some(5 * MIB)
    });
    let old_vid = row["video_id"].as_str().unwrap().to_owned();
    wait_child(sh(
        "truncate -s 0 \"$1\" && sleep 0.3 && cat \"$2\" >> \"$1\"",
        &[&p, &fresh],
    ));
    let new_sha = sha256_file(&p);
    let files = vec![(p.clone(), new_sha.clone())];
    let st = setup.wait_settled(1, WAIT);
    let row = row_of(&st, &p).unwrap();
    assert_eq!(row["state"], "done", "{row:#}");
    assert_eq!(row["sha256"].as_str(), Some(new_sha.as_str()));
    assert_ne!(
        row["video_id"].as_str(),
        Some(old_vid.as_str()),
        "a new video"
    );
    let abandoned = abandoned(&row);
    assert!(
        abandoned.contains(&old_vid.as_str()),
        "the old partial video is reported abandoned: {row:#}"
    );
    for v in videos(&em) {
        assert_ne!(
            v["sha256"].as_str(),
            Some(old_sha.as_str()),
            "old content done"
        );
    }
    check_invariants(&setup, &em, &files);
    assert_no_partial(&em, &files);
    let old = videos(&em)
        .into_iter()
        .find(|v| v["videoId"].as_str() == Some(old_vid.as_str()))
        .unwrap();
    eprintln!(
        "truncated while uploading: old video {old_vid} abandoned with {} bytes, new content \
         done as {}",
        old["receivedBytes"], row["video_id"]
    );
}

/// A file deleted while its chunked upload runs: never `done`, shown as `gone` with a reason
/// and its partial video reported abandoned; no retry storm (a bounded number of requests); a
/// second file uploading next to it is not affected.
#[test]
fn deleted_while_uploading() {
    let (em, tmp, mut setup) = scene(2);
    throttle_uploads(&em, 4 * MIB);
    let staged = tmp.path().join("doomed.mp4");
    write_file(&staged, 20 * MIB + 7, 51);
    let other_staged = tmp.path().join("other.mp4");
    write_file(&other_staged, 11 * MIB + 3, 52);
    let _d = start(&mut setup);
    let p = setup.inbox.join("doomed.mp4");
    let other = setup.inbox.join("other.mp4");
    std::fs::rename(&staged, &p).unwrap();
    std::fs::rename(&other_staged, &other).unwrap();
    let files = vec![(other.clone(), sha256_file(&other))];
    let row = wait_row(&setup, &p, "the first chunk committed", |r| {
        r["state"] == "uploading" && r["bytes_uploaded"].as_u64() >= Some(5 * MIB)
    });
    let vid = row["video_id"].as_str().unwrap().to_owned();
    wait_child(sh("rm -f \"$1\"", &[&p]));
    let row = wait_row(&setup, &p, "the deleted file reported gone", |r| {
        r["state"] == "gone"
    });
    let reason = row["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("during its upload"),
        "gone with a reason: {row:#}"
    );
    eprintln!("deleted while uploading: gone, {reason:?}");
    wait_row(&setup, &other, "the other file done", |r| {
        r["state"] == "done"
    });
    // Settled: no retry storm afterwards (a few seconds without a single request).
    let requests = upload_requests(&em);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        upload_requests(&em),
        requests,
        "requests after the file was gone"
    );
    // 4 chunks for the deleted file at most, 3 for the other, a few retries.
    assert!(requests <= 4 + 3 + 3, "{requests} upload requests");
    eprintln!("deleted while uploading: {requests} upload requests in all");
    let st = check_invariants(&setup, &em, &files);
    let row = row_of(&st, &p).unwrap();
    assert_eq!(row["state"], "gone", "{row:#}");
    assert!(row["sha256"].is_null(), "never done: {row:#}");
    let abandoned = abandoned(&row);
    assert_eq!(abandoned, [vid.as_str()], "{row:#}");
}
