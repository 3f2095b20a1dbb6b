//! Helpers for the hostile-conditions suite (issue 5): a daemon under test with its logs captured,
//! the endpoint's view of what was uploaded, and the invariants every scenario checks.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::daemon::write_token;
/// Shared with the other daemon tests (not every test file uses each).
#[allow(unused_imports)]
pub use crate::common::daemon::{
    cap_upload_connections, create_token, faults, requests_with_error, set_faults, sha256_file,
    stats, throttle_uploads, videos, write_file,
};
use crate::common::{self, API_KEY, Emulator};

pub const MIB: u64 = 1024 * 1024;

/// Options of one test setup's config.
#[derive(Clone)]
pub struct Setup {
    pub dir: PathBuf,
    pub inbox: PathBuf,
    pub journal: PathBuf,
    pub config: PathBuf,
    pub token: String,
    pub logs: PathBuf,
    /// The daemon's `RUST_LOG` ("info" unless a test wants its debug lines).
    pub rust_log: &'static str,
    runs: usize,
}

pub struct Opts {
    pub chunk: &'static str,
    pub after_upload: &'static str,
    pub move_to: Option<PathBuf>,
    pub api_key: bool,
    pub workers: u32,
    pub settle: &'static str,
    /// `[[watch]] check_container` (default true, as in ingestd). Tests whose writers put raw
    /// bytes into `.mp4` files on purpose turn it off and say why.
    pub check_container: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            chunk: "5 MiB",
            after_upload: "keep",
            move_to: None,
            api_key: false,
            workers: 1,
            settle: "1s",
            check_container: true,
        }
    }
}

impl Setup {
    pub fn new(dir: &Path, em: &Emulator, opts: &Opts) -> Setup {
        let inbox = dir.join("inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        let token = create_token(em);
        let token_file = dir.join("upload-token");
        write_token(&token_file, &token);
        let mut api_extra = String::new();
        if opts.api_key {
            let key_file = dir.join("api-key");
            write_token(&key_file, API_KEY);
            api_extra = format!("api_key_file = \"{}\"\n", key_file.display());
        }
        let mut upload_extra = String::new();
        if let Some(m) = &opts.move_to {
            upload_extra = format!("move_to = \"{}\"\n", m.display());
        }
        let journal = dir.join("state/journal.sqlite");
        std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[api]\nendpoint = \"{url}\"\nupload_token_file = \"{tf}\"\n{api_extra}\n\
                 [journal]\npath = \"{j}\"\n\n\
                 [upload]\nworkers = {w}\nchunk_size = \"{chunk}\"\nafter_upload = \"{after}\"\n\
                 hash = \"sha256\"\n{upload_extra}\n\
                 [[watch]]\npath = \"{inbox}\"\nsettle = \"{settle}\"\n\
                 check_container = {check}\n",
                url = em.url,
                tf = token_file.display(),
                j = journal.display(),
                w = opts.workers,
                chunk = opts.chunk,
                after = opts.after_upload,
                inbox = inbox.display(),
                settle = opts.settle,
                check = opts.check_container,
            ),
        )
        .unwrap();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        Setup {
            dir: dir.to_owned(),
            inbox,
            journal,
            config,
            token,
            logs,
            rust_log: "info",
            runs: 0,
        }
    }

    /// Starts `ingestd run` with `FAILPOINTS` (empty: none); stderr goes to a log file.
    pub fn start(&mut self, failpoints: &str) -> Daemon {
        self.runs += 1;
        let log = self.logs.join(format!("run-{}.log", self.runs));
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(common::bin());
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", self.rust_log)
            .stdout(Stdio::null())
            .stderr(f);
        if failpoints.is_empty() {
            cmd.env_remove("FAILPOINTS");
        } else {
            cmd.env("FAILPOINTS", failpoints);
        }
        let mut child = cmd.spawn().unwrap();
        // `status` right after the start must see the journal: wait until the daemon has
        // created it (or has already stopped, e.g. at a failpoint).
        let start = std::time::Instant::now();
        while !self.journal.exists()
            && child.try_wait().unwrap().is_none()
            && start.elapsed() < std::time::Duration::from_secs(30)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Daemon {
            process: common::daemon::Daemon { child },
            log,
        }
    }

    /// `ingestd status --all --json`.
    pub fn status(&self) -> Value {
        common::daemon::status(&self.config)
    }

    /// Polls `status` until every file is `done` or `failed` and there are `n` of them.
    pub fn wait_settled(&self, n: usize, timeout: Duration) -> Value {
        let until = Instant::now() + timeout;
        loop {
            let st = self.status();
            let files = st["files"].as_array().cloned().unwrap_or_default();
            let finished = files
                .iter()
                .filter(|f| matches!(f["state"].as_str(), Some("done" | "failed")))
                .count();
            if files.len() >= n && finished == files.len() {
                return st;
            }
            assert!(
                Instant::now() < until,
                "not finished in {timeout:?}: {}",
                serde_json::to_string_pretty(&st).unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every log line of every run so far.
    pub fn all_logs(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.runs {
            s.push_str(
                &std::fs::read_to_string(self.logs.join(format!("run-{i}.log")))
                    .unwrap_or_default(),
            );
        }
        s
    }

    /// The journal's own check, from outside the daemon.
    pub fn integrity_check(&self) -> String {
        common::daemon::integrity(&self.journal)
    }
}

/// A running `ingestd run` and its log file; killed on drop.
pub struct Daemon {
    pub process: common::daemon::Daemon,
    pub log: PathBuf,
}

impl Daemon {
    /// Waits for the process to end by itself (a failpoint abort).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "the daemon did not stop within {timeout:?}; log:\n{}",
                self.log_text()
            )
        })
    }

    /// SIGTERM, then wait.
    pub fn stop(&mut self) {
        self.process.signal(libc::SIGTERM);
        let _ = self.wait_exit(Duration::from_secs(60));
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The invariants of issue 5, for `files` (path → expected content) after the scenario:
/// every file done or failed with a reason; exactly one complete video with its content per done
/// file (matched by SHA-256) and no other complete video; incomplete videos only as reported
/// orphans or abandoned ids; journal integrity ok; no secret and no panic in any log.
pub fn check_invariants(setup: &Setup, em: &Emulator, files: &[(PathBuf, String)]) -> Value {
    let st = setup.status();
    let rows = st["files"].as_array().unwrap();
    let vids = videos(em);
    let mut complete_by_sha: HashMap<String, usize> = HashMap::new();
    for v in &vids {
        if v["complete"].as_bool() == Some(true) {
            *complete_by_sha
                .entry(v["sha256"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
    }
    // Reported incomplete videos: by id, or (an orphan of a first request whose answer was
    // lost) without one, so only counted.
    let mut reported: Vec<String> = Vec::new();
    let mut unnamed_orphans = 0;
    for r in rows {
        for key in ["possible_orphans", "abandoned_video_ids"] {
            for o in r[key].as_array().into_iter().flatten() {
                match o["video_id"].as_str() {
                    Some(id) => reported.push(id.to_owned()),
                    None => unnamed_orphans += 1,
                }
            }
        }
    }
    for (path, sha) in files {
        let row = rows
            .iter()
            .find(|r| {
                r["path"].as_str() == Some(path.to_str().unwrap())
                    && r["sha256"].as_str() == Some(sha)
            })
            .or_else(|| {
                rows.iter()
                    .find(|r| r["path"].as_str() == Some(path.to_str().unwrap()))
            })
            .unwrap_or_else(|| panic!("no journal row for {}: {st:#}", path.display()));
        match row["state"].as_str() {
            Some("done") => {
                assert_eq!(
                    row["sha256"].as_str(),
                    Some(sha.as_str()),
                    "receipt of {}",
                    path.display()
                );
                assert_eq!(
                    complete_by_sha.get(sha).copied().unwrap_or(0),
                    1,
                    "exactly one complete video with the content of {}; videos: {vids:#?}",
                    path.display()
                );
                let vid = row["video_id"].as_str().unwrap();
                let v = vids
                    .iter()
                    .find(|v| v["videoId"].as_str() == Some(vid))
                    .unwrap();
                assert_eq!(v["sha256"].as_str(), Some(sha.as_str()));
            }
            Some("failed") => assert!(
                row["last_error"].is_string(),
                "failed without a reason: {row}"
            ),
            other => panic!("{} ended {other:?}: {st:#}", path.display()),
        }
    }
    // No other complete video, and every incomplete one is reported.
    let expected: Vec<&String> = files.iter().map(|(_, s)| s).collect();
    for v in &vids {
        let id = v["videoId"].as_str().unwrap_or("");
        if v["complete"].as_bool() == Some(true) {
            let sha = v["sha256"].as_str().unwrap_or("").to_owned();
            assert!(
                expected.contains(&&sha),
                "a complete video matches no file: {v:#}"
            );
        } else if v["receivedBytes"].as_u64().unwrap_or(0) > 0 && !reported.iter().any(|r| r == id)
        {
            assert!(
                unnamed_orphans > 0,
                "incomplete video {id} is not reported by status: {st:#}\n{v:#}"
            );
            unnamed_orphans -= 1;
        }
    }
    assert_eq!(setup.integrity_check(), "ok");
    check_logs(setup);
    st
}

/// No token or API key and no panic text in any log line.
pub fn check_logs(setup: &Setup) {
    let logs = setup.all_logs();
    for line in logs.lines() {
        assert!(
            !line.contains(&setup.token),
            "the upload token is logged: {line}"
        );
        assert!(!line.contains(API_KEY), "the API key is logged: {line}");
        if line.contains("FAILPOINTS") {
            continue; // the deliberate abort line of a failpoint run
        }
        assert!(!line.contains("panicked"), "a panic is logged: {line}");
    }
}
