//! `ingestd status`, `retry` and `explain` through the real binary, on a journal prepared with
//! the library API (the same calls the watcher and the upload workers make).
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use ingestd::journal::{FileIdentity, FileState, Journal, Observation, TokenState};
use serde_json::Value;

struct Setup {
    dir: tempfile::TempDir,
    journal_path: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let journal_path = dir.path().join("state/journal.sqlite");
        let config = format!(
            r#"[api]
endpoint = "http://127.0.0.1:9"

[journal]
path = "{}"

[[watch]]
path = "{}"
settle = "10s"
rescan_interval = "10 min"
"#,
            journal_path.display(),
            root.display()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Setup { dir, journal_path }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn journal(&self) -> Journal {
        Journal::open(&self.journal_path).unwrap()
    }

    /// Writes a file under the root and returns its observation.
    fn file(&self, name: &str, bytes: &[u8]) -> Observation {
        let path = self.root().join(name);
        std::fs::write(&path, bytes).unwrap();
        Observation {
            root: self.root(),
            identity: FileIdentity::from_metadata(&std::fs::metadata(&path).unwrap()),
            path,
        }
    }

    /// A file journaled up to `queued`; returns its id.
    fn queued(&self, j: &Journal, name: &str, bytes: &[u8]) -> i64 {
        let obs = self.file(name, bytes);
        j.seen_batch(std::slice::from_ref(&obs)).unwrap();
        j.stable_batch(std::slice::from_ref(&obs)).unwrap();
        j.find_by_path(&obs.path).unwrap().unwrap().id
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ingestd"))
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .env_remove("INGESTD_CONFIG")
            .output()
            .unwrap()
    }

    fn status_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["status", "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One file in each interesting state: settling, queued, uploading (with a videoId), waiting
/// for a retry, failed, done. Returns the ids in that order.
fn populate(s: &Setup, j: &Journal) -> [i64; 6] {
    let settling = s.file("settling.mp4", b"still being written");
    j.seen_batch(std::slice::from_ref(&settling)).unwrap();
    let settling = j.find_by_path(&settling.path).unwrap().unwrap().id;
    let queued = s.queued(j, "queued.mp4", b"waiting");
    let uploading = s.queued(j, "uploading.mp4", b"0123456789");
    let waiting = s.queued(j, "waiting.mp4", b"retry me");
    let failed = s.queued(j, "failed.mp4", b"not a video");
    let done = s.queued(j, "done.mp4", b"all good");
    for id in [uploading, waiting, failed, done] {
        j.claim(id).unwrap();
    }
    j.start_upload(uploading, 4).unwrap();
    j.commit_video_id(uploading, "vi-uploading").unwrap();
    j.commit_offset(uploading, 4).unwrap();
    j.schedule_retry(
        waiting,
        SystemTime::now() + Duration::from_secs(3600),
        2,
        "connection reset",
        None,
    )
    .unwrap();
    j.mark_failed(failed, "The file is not a video", Some("invalid-file"))
        .unwrap();
    j.commit_video_id(done, "vi-done").unwrap();
    j.mark_done(done, "sha256:5d41402abc4b2a76b9719d911017c592", "vi-done")
        .unwrap();
    j.record_after_upload(done, "kept", false).unwrap();
    [settling, queued, uploading, waiting, failed, done]
}

fn check_file_shape(f: &Value) {
    let obj = f.as_object().expect("file is an object");
    for (key, ok) in [
        ("id", f["id"].is_i64()),
        ("path", f["path"].is_string()),
        ("state", f["state"].is_string()),
        ("size", f["size"].is_u64()),
        ("bytes_uploaded", f["bytes_uploaded"].is_u64()),
        (
            "video_id",
            f["video_id"].is_string() || f["video_id"].is_null(),
        ),
        ("attempts", f["attempts"].is_u64()),
        (
            "last_error",
            f["last_error"].is_string() || f["last_error"].is_null(),
        ),
        (
            "next_attempt_at",
            f["next_attempt_at"].is_string() || f["next_attempt_at"].is_null(),
        ),
        ("sha256", f["sha256"].is_string() || f["sha256"].is_null()),
        ("blake3", f["blake3"].is_string() || f["blake3"].is_null()),
    ] {
        assert!(obj.contains_key(key), "missing {key} in {f}");
        assert!(ok, "wrong type for {key} in {f}");
    }
}

#[test]
fn status_json_golden_shape() {
    let s = Setup::new();
    let j = s.journal();
    let [settling, queued, uploading, waiting, failed, done] = populate(&s, &j);
    j.set_token_state(TokenState::Ok, None).unwrap();

    let v = s.status_json(&[]);
    let top = v.as_object().unwrap();
    for key in ["counts", "token", "files"] {
        assert!(top.contains_key(key), "missing {key}");
    }
    let counts = v["counts"].as_object().unwrap();
    for (state, n) in [
        ("settling", 1),
        ("queued", 2),
        ("uploading", 1),
        ("done", 1),
        ("failed", 1),
        ("gone", 0),
    ] {
        assert_eq!(counts[state].as_u64(), Some(n), "counts.{state} in {v}");
    }
    assert_eq!(counts.len(), 6);
    assert_eq!(v["token"], "ok");
    assert_eq!(v["daemon"], Value::Null);

    let files = v["files"].as_array().unwrap();
    files.iter().for_each(check_file_shape);
    let ids: Vec<i64> = files.iter().map(|f| f["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        [settling, queued, uploading, waiting, failed],
        "no done without --all"
    );
    let by_id = |id: i64| files.iter().find(|f| f["id"] == id).unwrap();

    let up = by_id(uploading);
    assert_eq!(up["state"], "uploading");
    assert_eq!(up["size"], 10);
    assert_eq!(up["bytes_uploaded"], 4);
    assert_eq!(up["video_id"], "vi-uploading");
    assert!(
        up["path"]
            .as_str()
            .unwrap()
            .ends_with("/root/uploading.mp4")
    );

    let w = by_id(waiting);
    assert_eq!(w["state"], "queued");
    assert_eq!(w["attempts"], 2);
    assert_eq!(w["last_error"], "connection reset");
    let at = w["next_attempt_at"].as_str().unwrap();
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("next_attempt_at {at:?} is not RFC 3339: {e}"));

    let f = by_id(failed);
    assert_eq!(f["state"], "failed");
    assert_eq!(f["last_error"], "The file is not a video");
    assert_eq!(f["last_error_slug"], "invalid-file");
    assert_eq!(by_id(queued)["next_attempt_at"], Value::Null);

    // --all adds the receipt of the done file.
    let v = s.status_json(&["--all"]);
    let files = v["files"].as_array().unwrap();
    files.iter().for_each(check_file_shape);
    let d = files.iter().find(|f| f["id"] == done).unwrap();
    assert_eq!(d["state"], "done");
    assert_eq!(d["sha256"], "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(d["blake3"], Value::Null);
    assert_eq!(d["content_hash"], "sha256:5d41402abc4b2a76b9719d911017c592");
    assert_eq!(d["video_id"], "vi-done");
    assert_eq!(d["bytes_uploaded"], d["size"]);
    assert!(d["done_at"].is_string());
    assert_eq!(d["after_upload"], "kept");
}

#[test]
fn status_shows_a_rejected_token_and_orphans() {
    let s = Setup::new();
    let j = s.journal();
    j.heartbeat().unwrap();
    let id = s.queued(&j, "a.mp4", b"x");
    j.record_abandoned(id, "vi-old", "the file changed")
        .unwrap();
    j.set_token_state(
        TokenState::Rejected,
        Some("authentication-invalid-upload-token"),
    )
    .unwrap();
    let v = s.status_json(&[]);
    assert_eq!(v["token"], "rejected");
    assert_eq!(v["daemon"]["pid"], std::process::id());
    assert_eq!(v["daemon"]["running"], true, "this test process wrote it");
    let f = &v["files"][0];
    assert_eq!(f["abandoned_video_ids"][0]["video_id"], "vi-old");

    let out = s.run(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("token: REJECTED"), "{text}");
    assert!(text.contains("abandoned video vi-old"), "{text}");
}

#[test]
fn status_table_lists_unfinished_files() {
    let s = Setup::new();
    let j = s.journal();
    let [_, _, uploading, _, failed, _] = populate(&s, &j);
    let out = s.run(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("1 settling, 2 queued, 1 uploading, 1 done, 1 failed, 0 gone"),
        "{text}"
    );
    assert!(text.contains("token: unknown"), "{text}");
    let line = |id: i64| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no row {id} in\n{text}"))
            .to_owned()
    };
    assert!(line(uploading).contains("40.0%"), "{text}");
    assert!(line(uploading).contains("vi-uploading"), "{text}");
    assert!(line(failed).contains("invalid-file"), "{text}");
    assert!(
        line(failed).contains(&format!("ingestd retry {failed}")),
        "{text}"
    );
    assert!(!text.contains("done.mp4"), "{text}");
}

#[test]
fn status_without_a_journal_says_so_and_exits_0() {
    let s = Setup::new();
    let out = s.run(&["status", "--json"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("ingestd has not run with this config"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&s.journal_path.display().to_string()));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["queued"], 0);
    assert_eq!(v["files"], Value::Array(vec![]));
    assert!(
        !s.journal_path.exists(),
        "status must not create the journal"
    );
}

#[test]
fn status_works_while_another_process_holds_a_write_transaction() {
    let s = Setup::new();
    let j = s.journal();
    s.queued(&j, "a.mp4", b"x");
    let writer = rusqlite::Connection::open(&s.journal_path).unwrap();
    writer
        .execute_batch("BEGIN IMMEDIATE; UPDATE files SET attempts = 7;")
        .unwrap();
    let v = s.status_json(&[]);
    assert_eq!(v["counts"]["queued"], 1);
    assert_eq!(
        v["files"][0]["attempts"], 0,
        "reads the last committed state"
    );
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(s.status_json(&[])["files"][0]["attempts"], 7);
}

#[test]
fn status_reports_a_corrupt_journal_and_leaves_it() {
    let s = Setup::new();
    std::fs::create_dir_all(s.journal_path.parent().unwrap()).unwrap();
    let garbage = vec![0x5a_u8; 4096];
    std::fs::write(&s.journal_path, &garbage).unwrap();
    let out = s.run(&["status"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&s.journal_path.display().to_string()), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(std::fs::read(&s.journal_path).unwrap(), garbage);
}

#[test]
fn retry_ids_and_failed() {
    let s = Setup::new();
    let j = s.journal();
    let [_, queued, _, _, failed, _] = populate(&s, &j);
    let other = s.queued(&j, "other.mp4", b"other");
    j.claim(other).unwrap();
    j.mark_failed(other, "bad", Some("bad-request")).unwrap();

    let out = s.run(&["retry", "4242"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("4242"), "{}", stderr(&out));
    assert_eq!(j.get(failed).unwrap().unwrap().state, FileState::Failed);

    let out = s.run(&["retry", &failed.to_string(), &queued.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("#{failed} queued again")), "{text}");
    assert!(text.contains("The file is not a video"), "{text}");
    assert!(text.contains(&format!("#{queued} is queued")), "{text}");
    let row = j.get(failed).unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (FileState::Queued, 0));

    let out = s.run(&["retry", "--failed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("#{other} queued again")));
    assert_eq!(j.counts().unwrap().get(FileState::Failed), 0);
}

fn explain(s: &Setup, path: &Path) -> String {
    let out = s.run(&["explain", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn explain_says_why() {
    let s = Setup::new();
    // No journal yet.
    let p = s.file("early.mp4", b"x").path;
    assert!(explain(&s, &p).contains("ingestd has not run"));

    let j = s.journal();
    let [settling, queued, uploading, waiting, failed, done] = populate(&s, &j);
    let path_of = |id: i64| j.get(id).unwrap().unwrap().path;

    let text = explain(&s, &s.file("clip.mp4.part", b"x").path);
    assert!(text.contains("exclude pattern `*.part`"), "{text}");
    let text = explain(&s, &s.file("notes.txt", b"x").path);
    assert!(text.contains("not included"), "{text}");
    let outside = s.dir.path().join("outside.mp4");
    std::fs::write(&outside, b"x").unwrap();
    let text = explain(&s, &outside);
    assert!(text.contains("not under any watch root"), "{text}");
    let text = explain(&s, &s.root().join("missing.mp4"));
    assert!(text.contains("does not exist"), "{text}");
    let text = explain(&s, &p);
    assert!(text.contains("not seen yet"), "{text}");
    assert!(text.contains("10m"), "{text}");

    let text = explain(&s, &path_of(settling));
    assert!(text.contains("settling: unchanged for"), "{text}");
    assert!(text.contains("of 10s"), "{text}");
    let text = explain(&s, &path_of(queued));
    assert!(text.contains("queued: position 1 of 2"), "{text}");
    let text = explain(&s, &path_of(uploading));
    assert!(
        text.contains("uploading: 4 B of 10 B acknowledged (40.0%)"),
        "{text}"
    );
    assert!(text.contains("vi-uploading"), "{text}");
    let text = explain(&s, &path_of(waiting));
    assert!(text.contains("waiting for retry at"), "{text}");
    assert!(text.contains("connection reset"), "{text}");
    let text = explain(&s, &path_of(failed));
    assert!(text.contains("invalid-file"), "{text}");
    assert!(text.contains(&format!("ingestd retry {failed}")), "{text}");
    let text = explain(&s, &path_of(done));
    assert!(text.contains("uploaded: videoId vi-done"), "{text}");

    j.set_token_state(
        TokenState::Rejected,
        Some("authentication-invalid-upload-token"),
    )
    .unwrap();
    let text = explain(&s, &path_of(queued));
    assert!(text.contains("uploads are paused"), "{text}");
}

/// `status` streams its rows: many rows come out whole as JSON, and a reader that stops early
/// (`status | head`) ends it quietly with success, not a "Broken pipe" error.
#[test]
fn status_streams_many_rows_and_tolerates_a_closed_pipe() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let s = Setup::new();
    let j = s.journal();
    let batch: Vec<Observation> = (0..3000)
        .map(|i| Observation {
            root: s.root(),
            identity: FileIdentity {
                dev: 1,
                ino: 1_000 + i,
                size: i,
                mtime_ns: 1,
                ctime_ns: 1,
            },
            path: s.root().join(format!("clip-{i:05}.mp4")),
        })
        .collect();
    j.seen_batch(&batch).unwrap();
    drop(j);

    let v = s.status_json(&[]);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3000);
    assert_eq!(v["counts"]["settling"], 3000);
    assert!(
        files
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
    );

    // The table is ~400 KB: more than a pipe holds, so the writer meets the closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingestd"))
        .arg("--config")
        .arg(s.dir.path().join("config.toml"))
        .arg("status")
        .env_remove("INGESTD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(
        first.trim(),
        "3000 settling, 0 queued, 0 uploading, 0 done, 0 failed, 0 gone"
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
}
