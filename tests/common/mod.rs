//! Shared helpers for integration tests: the real `ingestd` binary and the real local endpoint.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of the `ingestd` binary built by cargo for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ingestd"))
}

/// Python interpreter with the official `api-video` client installed (set by `scripts/test`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("INGESTD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with api-video: run ./scripts/test (it creates .venv) or set INGESTD_TEST_PYTHON"
    );
    venv
}

/// Runs `ingestd ARGS --config CONFIG` to its end.
pub fn ingestd_with(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// A command's stdout then stderr, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port free right now (e.g. for `[metrics] listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// API key every test emulator is started with.
pub const API_KEY: &str = "testApiKey1234567890abcdefXYZ";

/// A running `ingestd emulator` process on 127.0.0.1 with its own data dir; killed on drop.
pub struct Emulator {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Emulator {
    /// Starts an emulator on a free port with a fresh data dir and [`API_KEY`].
    pub fn start() -> Emulator {
        Self::start_with(&[])
    }

    /// Like [`Emulator::start`], with extra command-line arguments.
    pub fn start_with(extra: &[&str]) -> Emulator {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("emulator");
        let mut em = Self::start_in(&data_dir, extra);
        em._tmp = Some(tmp);
        em
    }

    /// Starts an emulator on `data_dir` (e.g. to restart one on the same data).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Emulator {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts an emulator on a given address (to restart it on the same port).
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Emulator {
        let mut child = Command::new(bin())
            .arg("emulator")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--api-key")
            .arg(API_KEY)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ingestd emulator");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("emulator did not print `listening on` within 30 s");
            }
        };
        Emulator {
            child,
            url,
            data_dir: data_dir.to_owned(),
            _tmp: None,
        }
    }

    /// `host:port` of the listener.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// The process id (e.g. to read `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}
pub mod daemon;
