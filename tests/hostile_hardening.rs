//! Hardening, round 2 (issue 14 items 1, 2, 7): a log that cannot be written, a panic, a full
//! journal disk, a read-only journal mount. Each runs the real binary against the real endpoint;
//! the tmpfs cases need root (they skip otherwise).
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod bad_input_support;
mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bad_input_support::Tmpfs;
use common::daemon::{Daemon, Opts, Setup, assert_uploaded_once, count, file_row, status};
use common::{Emulator, bin};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// `ingestd run` with stdout and stderr given by the test (no log file).
fn start_with(s: &Setup, stderr: Stdio, env: &[(&str, &str)]) -> Daemon {
    let mut c = Command::new(bin());
    c.args(["run", "--config"])
        .arg(&s.config)
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        c.env(k, v);
    }
    Daemon {
        child: c.spawn().unwrap(),
    }
}

/// A `NOTIFY_SOCKET` the test reads: every datagram the daemon sends, in order.
struct NotifySocket {
    path: PathBuf,
    got: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let into = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                into.lock().unwrap().push(text);
            }
        });
        NotifySocket { path, got }
    }

    fn env(&self) -> (&'static str, &str) {
        ("NOTIFY_SOCKET", self.path.to_str().unwrap())
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// Waits for a datagram that holds `needle`; returns its index.
    fn wait(&self, needle: &str) -> usize {
        let start = Instant::now();
        loop {
            if let Some(i) = self.messages().iter().position(|m| m.contains(needle)) {
                return i;
            }
            assert!(
                start.elapsed() < WAIT,
                "no {needle:?} from the daemon: {:#?}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// A free loopback port for `[metrics] listen` (the log may be on `/dev/full`, so the port
// cannot be read from it).
use common::free_port;

/// Adds `[metrics] listen = "127.0.0.1:PORT"` to the config; returns the port.
fn with_metrics(s: &Setup) -> u16 {
    let port = free_port();
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("{text}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    port
}

/// `GET path` on the metrics listener: the whole answer, or `None` if it did not answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The value of the sample `name` (no labels) on `/metrics`, once the listener answers.
fn metric(port: u16, name: &str) -> f64 {
    let start = Instant::now();
    loop {
        let value = http_get(port, "/metrics").and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse().ok())
        });
        if let Some(v) = value {
            return v;
        }
        assert!(start.elapsed() < WAIT, "no {name} on /metrics");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then a clean exit (0) within the shutdown timeout.
fn stops_cleanly(d: &mut Daemon) {
    d.signal(libc::SIGTERM);
    let st = d.wait_exit(WAIT).expect("SIGTERM stops the daemon");
    assert!(st.success(), "exit status after SIGTERM: {st:?}");
}

fn uploaded(em: &Emulator, s: &Setup, files: &[std::path::PathBuf]) {
    let st = s.status();
    for p in files {
        let row = file_row(&st, p).unwrap_or_else(|| panic!("{} in status", p.display()));
        assert_uploaded_once(em, p, row["video_id"].as_str().unwrap());
    }
}

/// stderr on /dev/full: every log write fails with ENOSPC. The daemon used to exit 101 without
/// a word; now it uploads, counts the dropped lines, and stops cleanly on SIGTERM.
#[test]
fn stderr_on_dev_full_never_stops_the_daemon() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let port = with_metrics(&s);
    let mut d = start_with(&s, Stdio::from(full), &[]);
    let files = [s.drop_file("a.mp4", 1000, 1), s.drop_file("b.mp4", 2000, 2)];
    s.wait_done(2, WAIT);
    assert!(d.running());
    uploaded(&em, &s, &files);
    // The lines that could not be written are counted.
    let dropped = metric(port, "ingestd_log_write_errors_total");
    assert!(dropped >= 2.0, "ingestd_log_write_errors_total {dropped}");
    stops_cleanly(&mut d);
}

/// stderr a pipe whose reader went away (`| head -3`, journald restarted): writes fail with
/// EPIPE. The logging task used to panic and take the workers with it; now uploads go on and
/// SIGTERM works.
#[test]
fn stderr_pipe_without_reader_never_stops_the_workers() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let mut d = start_with(&s, Stdio::piped(), &[]);
    drop(d.child.stderr.take()); // the reader goes away
    let files = [s.drop_file("a.mp4", 1000, 1), s.drop_file("b.mp4", 2000, 2)];
    s.wait_done(2, WAIT);
    // Later files too: the workers are alive, not just the first claims.
    let more = [s.drop_file("c.mp4", 3000, 3)];
    s.wait_done(3, WAIT);
    assert!(d.running());
    uploaded(&em, &s, &files);
    uploaded(&em, &s, &more);
    stops_cleanly(&mut d);
}

/// stderr a pipe whose reader stalls (never reads; journald hung): the pipe fills, writes would
/// block. Logging goes through a bounded queue on a thread of its own, so the workers never
/// wait on it: every file uploads and SIGTERM still stops the daemon (session 6 audit: the
/// "never block" half of item 1 had no test).
#[test]
fn a_stalled_stderr_reader_never_blocks_the_daemon() {
    use std::os::fd::AsRawFd;
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let mut d = start_with(&s, Stdio::piped(), &[("RUST_LOG", "debug")]);
    let reader = d.child.stderr.take().unwrap(); // held, never read
    // The smallest pipe (one page), so that it is full after a few lines.
    // SAFETY: fcntl on a descriptor this test owns.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    let files: Vec<_> = (0..20)
        .map(|i| s.drop_file(&format!("f{i}.mp4"), 1000 + i, i))
        .collect();
    s.wait_done(files.len(), WAIT);
    assert!(d.running());
    uploaded(&em, &s, &files);
    stops_cleanly(&mut d);
    drop(reader);
}

/// A panic in any task is fatal: logged, exit 70, so that systemd's `Restart=` brings back a
/// whole daemon, never one running without a worker (which kept its heartbeat going).
#[cfg(feature = "failpoints")]
#[test]
fn a_panic_in_a_worker_stops_the_daemon_non_zero() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let log = std::fs::File::create(s.dir.join("daemon.log")).unwrap();
    let notify = NotifySocket::bind(&s.dir);
    let mut d = start_with(
        &s,
        Stdio::from(log),
        &[("FAILPOINTS", "worker-panic=1*return"), notify.env()],
    );
    s.drop_file("a.mp4", 1000, 1);
    let st = d
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("the daemon kept running\n{}", s.log_tail(30)));
    assert_eq!(st.code(), Some(70), "{}", s.log_tail(30));
    let log = s.log();
    assert!(
        log.contains("internal error: a task panicked")
            && log.contains("injected panic in upload worker"),
        "{log}"
    );
    // systemd is told why (`systemctl status` shows it).
    let i = notify.wait("ERRNO=70");
    let m = &notify.messages()[i];
    assert!(
        m.contains("STOPPING=1")
            && m.contains("STATUS=internal error (panic): injected panic in upload worker"),
        "{m}"
    );
    // Restarted (as systemd would), the file is uploaded.
    let _d = s.start();
    s.wait_done(1, WAIT);
}

/// Starts a daemon with `failpoint` set and one file dropped, and checks that it stops by itself
/// with exit 1, the log saying `reason` "…: stopping so that the service manager restarts
/// ingestd", and systemd told (`STOPPING=1`, `ERRNO=1`, the reason). Returns the setup.
#[cfg(feature = "failpoints")]
fn stops_non_zero_at(em: &Emulator, failpoint: &str, reason: &str) -> Setup {
    let s = Setup::new(em, Opts::default());
    let log = std::fs::File::create(s.dir.join("daemon.log")).unwrap();
    let notify = NotifySocket::bind(&s.dir);
    let mut d = start_with(
        &s,
        Stdio::from(log),
        &[("FAILPOINTS", failpoint), notify.env()],
    );
    s.drop_file("a.mp4", 1000, 1);
    let st = d
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("the daemon kept running\n{}", s.log_tail(30)));
    assert_eq!(st.code(), Some(1), "{}", s.log_tail(30));
    let log = s.log();
    assert!(
        log.contains(&format!(
            "{reason}: stopping so that the service manager restarts ingestd"
        )),
        "{log}"
    );
    let i = notify.wait("ERRNO=1");
    let m = &notify.messages()[i];
    assert!(m.contains("STOPPING=1") && m.contains(reason), "{m}");
    s
}

/// A worker that ends on its own (no panic; failpoint `worker-exit`) stops the daemon too:
/// exit 1, the reason logged and told to systemd, so that `Restart=` brings back a daemon with
/// all its workers (it used to run on without that worker, heartbeat and watchdog going on).
#[cfg(feature = "failpoints")]
#[test]
fn a_worker_that_ends_on_its_own_stops_the_daemon_non_zero() {
    let em = Emulator::start();
    let s = stops_non_zero_at(&em, "worker-exit=1*return", "ended unexpectedly");
    // Restarted (as systemd would), the file is uploaded.
    let _d = s.start();
    s.wait_done(1, WAIT);
}

/// A watch task that ends on its own (failpoint `watch-exit`) stops the daemon the same way:
/// exit 1, logged, `ERRNO=1`; no daemon goes on without its watcher.
#[cfg(feature = "failpoints")]
#[test]
fn a_watch_task_that_ends_on_its_own_stops_the_daemon_non_zero() {
    let em = Emulator::start();
    stops_non_zero_at(&em, "watch-exit=return", "a watch task ended unexpectedly");
}

/// The journal's file system full while files wait: no spin (the claim's failed commit used to
/// be lost, and a worker looped on "upload dropped: the file changed while it was uploading"
/// ~9,500 times a second), no line repeated within a second, `status` names the condition, and
/// everything uploads once space is back. Needs root (mount).
#[test]
fn a_full_journal_disk_degrades_without_spinning_and_recovers() {
    let em = Emulator::start();
    let s = Setup::new(
        &em,
        Opts {
            workers: 1,
            ..Opts::default()
        },
    );
    let Some(fs) = Tmpfs::mount(&s.dir.join("jfs"), "1m") else {
        return;
    };
    let journal = fs.path.join("journal.sqlite");
    let text = s.config_text().replace(
        &s.dir.join("journal.sqlite").display().to_string(),
        &journal.display().to_string(),
    );
    std::fs::write(&s.config, text).unwrap();
    let port = with_metrics(&s);
    let first = s.drop_file("first.mp4", 1000, 1);
    let notify = NotifySocket::bind(&s.dir);
    let log = std::fs::File::create(s.dir.join("daemon.log")).unwrap();
    // A watchdog of 1 s: `WATCHDOG=1` every 0.5 s while the daemon is healthy.
    let mut d = start_with(
        &s,
        Stdio::from(log),
        &[notify.env(), ("WATCHDOG_USEC", "1000000")],
    );
    s.wait_done(1, WAIT);
    assert_eq!(metric(port, "ingestd_journal_writable"), 1.0);

    // One slow upload in flight and three files queued behind it, then the disk fills up.
    common::daemon::throttle_uploads(&em, 100_000);
    let slow = s.drop_file("slow.mp4", 600_000, 2);
    s.wait_for("the slow upload", WAIT, |st| count(st, "uploading") == 1);
    let queued: Vec<_> = (0..3)
        .map(|i| s.drop_file(&format!("q{i}.mp4"), 1000, 10 + i))
        .collect();
    s.wait_for("3 queued", WAIT, |st| count(st, "queued") == 3);
    let filler = fs.fill();
    let log_before = s.log().len();
    s.wait_log("the disk holding the journal is full", WAIT);
    common::daemon::clear_faults(&em);

    let st = s.wait_for("the journal problem in status", WAIT, |st| {
        st["journal_problem"].as_str().is_some()
    });
    assert_eq!(
        st["journal_problem"], "journal: cannot write (No space left on device)",
        "{st:#}"
    );
    // Visible to systemd and to the scraper too.
    let degraded = notify.wait("STATUS=degraded (journal: cannot write (No space left on device))");
    assert_eq!(metric(port, "ingestd_journal_writable"), 0.0);
    let page = http_get(port, "/").unwrap_or_default();
    assert!(
        page.contains("journal: cannot write (No space left on device)"),
        "the status page: {page}"
    );
    // An observation window: the worker must not spin, nothing may repeat within a second.
    std::thread::sleep(Duration::from_secs(6));
    // Reads work, so the watchdog goes on while degraded.
    assert!(
        notify.messages()[degraded..]
            .iter()
            .any(|m| m.contains("WATCHDOG=1")),
        "no WATCHDOG=1 while degraded: {:#?}",
        notify.messages()
    );
    assert!(
        d.running(),
        "the daemon keeps running on a full journal disk"
    );
    let during = s.log()[log_before..].to_owned();
    assert!(
        !during.contains("upload dropped"),
        "a claim that was never recorded: {during}"
    );
    assert!(
        during.lines().count() < 30,
        "{} lines in 6 s:\n{during}",
        during.lines().count()
    );
    no_line_repeats_within_a_second(&during);

    std::fs::remove_file(&filler).unwrap();
    s.wait_done(5, WAIT);
    s.wait_log("the journal accepts writes again", WAIT);
    let st = s.status();
    assert_eq!(st["journal_problem"], Value::Null);
    assert_eq!(metric(port, "ingestd_journal_writable"), 1.0);
    d.kill9();
    assert_eq!(common::daemon::integrity(&journal), "ok");
    let mut all = vec![first, slow];
    all.extend(queued);
    uploaded(&em, &s, &all);
}

/// Every line, timestamp aside, appears at most once per second of the log.
fn no_line_repeats_within_a_second(log: &str) {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for line in log.lines() {
        let Some((ts, rest)) = line.split_once(' ') else {
            continue;
        };
        // 2026-12-04T13:58:24.123456Z → per-second bucket.
        let second = ts.get(..19).unwrap_or(ts).to_owned();
        let key = rest.trim().to_owned();
        let at = seen.entry(key.clone()).or_default();
        assert!(
            !at.contains(&second),
            "repeated within {second}: {key}\n{log}"
        );
        at.push(second);
    }
}

/// `status` on a read-only mount (a backup, a snapshot, a file system remounted read-only after
/// errors): it opens the journal read-only (`immutable`, since no `-shm` can be created there)
/// instead of failing with "unable to open database file", and says the journal cannot write.
#[test]
fn status_reads_a_journal_on_a_read_only_mount() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let Some(fs) = Tmpfs::mount(&s.dir.join("jfs"), "4m") else {
        return;
    };
    let journal = fs.path.join("journal.sqlite");
    let text = s.config_text().replace(
        &s.dir.join("journal.sqlite").display().to_string(),
        &journal.display().to_string(),
    );
    std::fs::write(&s.config, text).unwrap();
    s.drop_file("a.mp4", 1000, 1);
    let mut d = s.start();
    s.wait_done(1, WAIT);
    stops_cleanly(&mut d);
    let st = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs.path)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!Path::new(&format!("{}-shm", journal.display())).exists());

    let st = status(&s.config);
    assert_eq!(count(&st, "done"), 1, "{st:#}");
    assert_eq!(
        st["journal_problem"], "journal: cannot write (Read-only file system)",
        "{st:#}"
    );
    let out = Command::new(bin())
        .args(["status", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("journal: cannot write (Read-only file system)"),
        "{text}"
    );
}

/// The endpoint hashes a completed upload before it answers (seconds for GiBs); a client that
/// gives up meanwhile (an interrupted upload) cancels the handler. The video used to stay
/// complete in memory without its hash, and the resent last chunk was answered "already
/// uploaded": `sha256: null` for good. Now the resend completes it with its SHA-256.
#[cfg(feature = "failpoints")]
#[test]
fn a_last_chunk_whose_client_gave_up_during_the_hash_completes_on_resend() {
    use ingestd::api::{ChunkRange, Client, ClientOptions, UploadRequest, chunk_at};
    use ingestd::secret::Secret;
    // SAFETY: set before any thread of this test process reads the environment; only the
    // endpoint started below (a child process) uses this failpoint.
    unsafe { std::env::set_var("FAILPOINTS", "emulator-before-hash=1*sleep(3000)") };
    let em = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mp4");
    let mib5 = common::daemon::MIB5;
    common::daemon::write_file(&path, mib5 + 1000, 7);
    let total = mib5 + 1000;
    let req = |range: ChunkRange, video_id: Option<&str>| UploadRequest {
        path: path.clone(),
        file_name: "big.mp4".into(),
        range: Some(range),
        whole_len: None,
        video_id: video_id.map(str::to_owned),
        observer: None,
        file: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Client::new(ClientOptions::new(em.url.parse().unwrap())).unwrap();
        let token = Secret::new(common::daemon::create_token(&em));
        let first = c
            .upload(&token, req(chunk_at(0, total, mib5), None))
            .await
            .unwrap();
        let id = first.video_id;
        let last = chunk_at(mib5, total, mib5);
        // The client gives up while the endpoint hashes.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(1000),
            c.upload(&token, req(last, Some(&id))),
        )
        .await;
        assert!(
            gave_up.is_err(),
            "the failpoint holds the answer: {gave_up:?}"
        );
        // Once the endpoint is done with the abandoned request, the client resends.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let again = c.upload(&token, req(last, Some(&id))).await;
        let v: Value = reqwest::get(format!("{}/_emulator/videos/{id}", em.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["complete"], true, "{v:#} {again:?}");
        assert_eq!(
            v["sha256"].as_str(),
            Some(common::daemon::sha256_file(&path).as_str()),
            "{v:#} {again:?}"
        );
    });
}
