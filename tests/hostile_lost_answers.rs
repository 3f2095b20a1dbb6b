//! Issue 5, scenario 3 (endpoint faults), the answers lost after the endpoint stored the
//! request: the connection dropped without an answer, or a 200 with a truncated body, on the
//! first request of a file — when `ingestd` does not know the video id yet. With an API key the
//! video is created first, so nothing is duplicated; without one a stored first request is a
//! possible orphan, which `status` must report. Invariants: `hostile_support::check_invariants`.

mod common;
mod hostile_support;

use std::time::Duration;

use common::Emulator;
use hostile_support::*;
use serde_json::{Value, json};

const FINISH_WAIT: Duration = Duration::from_secs(120);
const CHUNK: u64 = 5 * MIB;

/// A finished scenario: the status and the endpoint's videos, the file and its SHA-256.
struct Run {
    status: Value,
    videos: Vec<Value>,
    sha: String,
    setup: Setup,
    _em: Emulator,
    _tmp: tempfile::TempDir,
}

/// Runs one file of `size` bytes under `plan` until it is finished and the daemon stopped.
fn run(api_key: bool, plan: Value, size: u64) -> Run {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let opts = Opts {
        api_key,
        ..Opts::default()
    };
    let mut setup = Setup::new(tmp.path(), &em, &opts);
    set_faults(&em, plan);
    let p = setup.inbox.join("clip.mp4");
    write_file(&p, size, 3);
    let sha = sha256_file(&p);
    let mut d = setup.start("");
    setup.wait_settled(1, FINISH_WAIT);
    d.stop();
    let plan = faults(&em);
    assert_eq!(plan["fired"], 1, "the fault fired: {plan:#}");
    Run {
        status: setup.status(),
        videos: videos(&em),
        sha,
        setup,
        _em: em,
        _tmp: tmp,
    }
}

impl Run {
    /// The full invariants (no duplicate complete video at all).
    fn check(&self) {
        let p = self.setup.inbox.join("clip.mp4");
        check_invariants(&self.setup, &self._em, &[(p, self.sha.clone())]);
        assert_eq!(
            self.status["files"][0]["state"], "done",
            "{:#}",
            self.status
        );
    }

    fn orphans(&self) -> Vec<Value> {
        self.status["files"][0]["possible_orphans"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn requests_with(&self, slug: &str) -> usize {
        requests_with_error(&self.videos, slug)
    }

    /// A single-request upload whose answer was lost after the endpoint stored it, without an
    /// API key: nothing can tell ingestd the video's id, so the resend makes a second complete
    /// video. The invariant allows exactly that when `status` reports it: the file is
    /// `done` with a receipt naming one complete video of its content, the other one is the
    /// reported possible orphan, the journal is intact and the logs clean.
    fn check_reported_duplicate(&self) {
        let row = &self.status["files"][0];
        assert_eq!(row["state"], "done", "{row:#}");
        assert_eq!(row["sha256"].as_str(), Some(self.sha.as_str()));
        let vid = row["video_id"].as_str().unwrap();
        let complete: Vec<&Value> = self
            .videos
            .iter()
            .filter(|v| v["complete"] == true)
            .collect();
        assert_eq!(complete.len(), 2, "{:#?}", self.videos);
        assert!(
            complete
                .iter()
                .all(|v| v["sha256"].as_str() == Some(&self.sha))
        );
        assert!(
            complete.iter().any(|v| v["videoId"].as_str() == Some(vid)),
            "the receipt names one of them"
        );
        assert_eq!(self.videos.len(), 2, "nothing else: {:#?}", self.videos);
        let orphans = self.orphans();
        assert_eq!(orphans.len(), 1, "the duplicate is reported: {row:#}");
        assert!(orphans[0]["reason"].is_string(), "{row:#}");
        assert_eq!(self.setup.integrity_check(), "ok");
        check_logs(&self.setup);
    }
}

#[test]
fn lost_answer_of_a_whole_file_upload_without_api_key_is_a_reported_orphan() {
    let run = run(
        false,
        json!([{"path": "/upload", "action": "drop"}]),
        1_000_000,
    );
    run.check_reported_duplicate();
}

#[test]
fn truncated_answer_of_a_stored_whole_file_without_api_key_is_a_reported_orphan() {
    let run = run(
        false,
        json!([{"path": "/upload", "action": "garbage", "store": true}]),
        1_000_000,
    );
    run.check_reported_duplicate();
}

#[test]
fn lost_answer_of_a_whole_file_upload_with_api_key_makes_no_duplicate() {
    // The video is created first (POST /videos), the file then goes with its `videoId`: the
    // resend after the lost answer is refused as already uploaded, which means done.
    let run = run(
        true,
        json!([{"path": "/upload", "action": "drop"}]),
        1_000_000,
    );
    run.check();
    assert_eq!(run.videos.len(), 1, "{:#?}", run.videos);
    assert_eq!(run.requests_with("video-source-already-uploaded"), 1);
    assert!(run.orphans().is_empty(), "{:#}", run.status);
}

#[test]
fn truncated_answer_of_a_stored_first_chunk_with_api_key_advances_on_overlap() {
    let run = run(
        true,
        json!([{"path": "/upload", "action": "garbage", "store": true}]),
        2 * CHUNK + 1,
    );
    run.check();
    assert_eq!(run.videos.len(), 1, "{:#?}", run.videos);
    assert_eq!(
        run.requests_with("video-content-range-by-bytes-range-overlap"),
        1
    );
    assert!(run.orphans().is_empty(), "{:#}", run.status);
}

#[test]
fn lost_answer_of_the_first_chunk_without_api_key_reports_the_incomplete_orphan() {
    let run = run(
        false,
        json!([{"path": "/upload", "action": "drop"}]),
        2 * CHUNK + 1,
    );
    run.check();
    assert_eq!(run.videos.len(), 2, "{:#?}", run.videos);
    let incomplete: Vec<&Value> = run
        .videos
        .iter()
        .filter(|v| v["complete"] != true)
        .collect();
    assert_eq!(incomplete.len(), 1);
    assert_eq!(incomplete[0]["chunkCount"], 1, "only the first chunk");
    assert_eq!(run.orphans().len(), 1, "{:#}", run.status);
}
