//! Helpers for tests that run `ingestd run` (a child process) against the real local endpoint:
//! a config in a tempdir, the daemon process, `status --json` polling, the endpoint's
//! `/_emulator/` extras, and file contents with their SHA-256.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{API_KEY, Emulator, bin};

/// 5 MiB, the smallest chunk size.
pub const MIB5: u64 = 5 * 1024 * 1024;

/// Knobs of the config a test writes; `Default` is a fast, small setup.
#[derive(Debug, Clone)]
pub struct Opts {
    pub workers: usize,
    pub chunk_size: &'static str,
    pub settle: &'static str,
    pub after_upload: &'static str,
    pub retry_max: &'static str,
    pub shutdown_timeout: &'static str,
    pub min_rate: &'static str,
    /// Extra roots besides `inbox` (directories under the test dir).
    pub extra_roots: Vec<&'static str>,
    /// `[[watch]] check_container` (default true, as in ingestd; the file writers here make
    /// valid containers). Tests that write raw bytes on purpose turn it off and say why.
    pub check_container: bool,
    /// Lines appended to `[upload]` as they are (e.g. `lanes_per_file = 4\n`).
    pub extra_upload: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            workers: 2,
            chunk_size: "5 MiB",
            settle: "1s",
            after_upload: "keep",
            retry_max: "2s",
            shutdown_timeout: "5s",
            min_rate: "64 KiB",
            extra_roots: Vec::new(),
            check_container: true,
            extra_upload: "",
        }
    }
}

/// A test directory: `inbox/` (the watch root), `moved/`, the token file, the journal, the
/// config, and the daemon's log.
pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub inbox: PathBuf,
    pub moved: PathBuf,
    pub config: PathBuf,
    pub token_file: PathBuf,
    pub token: String,
    pub endpoint: String,
    pub opts: Opts,
    /// Config `status` reads (default: `config`); a test that breaks `config` on purpose points
    /// this at a good copy.
    pub status_config: Option<PathBuf>,
}

impl Setup {
    /// Creates the directories, an upload token on `em` and the config.
    pub fn new(em: &Emulator, opts: Opts) -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        let inbox = dir.join("inbox");
        let moved = dir.join("moved");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&moved).unwrap();
        let token = create_token(em);
        let token_file = dir.join("upload-token");
        write_token(&token_file, &token);
        let s = Setup {
            config: dir.join("config.toml"),
            tmp,
            dir,
            inbox,
            moved,
            token_file,
            token,
            endpoint: em.url.clone(),
            opts,
            status_config: None,
        };
        s.write_config();
        s
    }

    /// (Re)writes the config from `self.opts`.
    pub fn write_config(&self) {
        std::fs::write(&self.config, self.config_text()).unwrap();
    }

    pub fn config_text(&self) -> String {
        let o = &self.opts;
        let mut t = format!(
            "[api]\nendpoint = \"{}\"\nupload_token_file = \"{}\"\nmin_rate = \"{}\"\n\n\
             [journal]\npath = \"{}\"\n\n\
             [upload]\nworkers = {}\nchunk_size = \"{}\"\nafter_upload = \"{}\"\n\
             retry_max = \"{}\"\nshutdown_timeout = \"{}\"\n",
            self.endpoint,
            self.token_file.display(),
            o.min_rate,
            self.dir.join("journal.sqlite").display(),
            o.workers,
            o.chunk_size,
            o.after_upload,
            o.retry_max,
            o.shutdown_timeout,
        );
        t += o.extra_upload;
        if o.after_upload == "move" {
            t += &format!("move_to = \"{}\"\n", self.moved.display());
        }
        let mut roots = vec![self.inbox.clone()];
        roots.extend(o.extra_roots.iter().map(|r| self.dir.join(r)));
        for r in roots {
            std::fs::create_dir_all(&r).unwrap();
            t += &format!(
                "\n[[watch]]\npath = \"{}\"\nsettle = \"{}\"\ninclude = [\"*.mp4\"]\n\
                 check_container = {}\n",
                r.display(),
                o.settle,
                o.check_container
            );
        }
        t
    }

    /// Adds `api.api_key_file` (the emulator's key, mode 0600) to the config on disk: videos are
    /// created first, with the content hash in their metadata.
    pub fn use_api_key(&self) {
        use std::os::unix::fs::PermissionsExt;
        let key_file = self.dir.join("api-key");
        std::fs::write(&key_file, super::API_KEY).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = self.config_text().replacen(
            "[api]\n",
            &format!("[api]\napi_key_file = \"{}\"\n", key_file.display()),
            1,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// Starts `ingestd run` with this config.
    pub fn start(&self) -> Daemon {
        Daemon::start(&self.config, &self.dir.join("daemon.log"))
    }

    /// `ingestd status --all --json`.
    pub fn status(&self) -> Value {
        status(self.status_config.as_ref().unwrap_or(&self.config))
    }

    /// Polls `status --all --json` until `pred` holds; panics after `timeout` with the last
    /// status and the daemon log.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nlast status: {}\n--- daemon log (tail) ---\n{}",
                    serde_json::to_string_pretty(&s).unwrap(),
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls the daemon log until it contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_text(&self.dir.join("daemon.log"), needle, timeout);
    }

    /// Waits until `n` files are `done`.
    pub fn wait_done(&self, n: usize, timeout: Duration) -> Value {
        self.wait_for(&format!("{n} files done"), timeout, |s| {
            count(s, "done") == n as u64
        })
    }

    /// The last `n` lines of the daemon log (all runs append to it).
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Writes a file of `len` pseudo-random bytes into `inbox/name` via a hidden temp name
    /// (renamed into place, so the watcher sees it whole) and returns its path.
    pub fn drop_file(&self, name: &str, len: u64, seed: u64) -> PathBuf {
        let path = self.inbox.join(name);
        write_file_atomic(&path, len, seed);
        path
    }
}

/// Writes `len` pseudo-random bytes (seeded) to `path` through a `.name.tmp` sibling + rename.
/// Polls the file at `path` (a log) until it contains `needle`; panics with its last lines after
/// `timeout`.
pub fn wait_text(path: &Path, needle: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        if start.elapsed() > timeout {
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "timed out after {timeout:?} waiting for {needle:?} in {}:\n{}",
                path.display(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn write_file_atomic(path: &Path, len: u64, seed: u64) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    write_file_named(&tmp, len, seed, path);
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes a file of exactly `len` bytes to `path`, streaming: for a video extension ingestd
/// checks (MP4/MOV/M4V, MKV/WebM), a structurally valid container (`ingestd::watch::container::
/// sample::wrap`: `ftyp`+`mdat`+`moov`, or EBML header + Segment + Void) around pseudo-random
/// bytes (xorshift, seeded), so the daemon's container check finds it complete; otherwise (and
/// when `len` is too small to hold a container) pseudo-random bytes only.
pub fn write_file(path: &Path, len: u64, seed: u64) {
    write_file_named(path, len, seed, path);
}

/// [`write_file`] to `path`, with the container chosen by `name`'s extension (for a temp file
/// renamed to `name` afterwards).
pub fn write_file_named(path: &Path, len: u64, seed: u64, name: &Path) {
    use ingestd::watch::container::{format_by_extension, sample};
    let wrap = format_by_extension(name).and_then(|f| sample::wrap(f, len));
    let (head, payload, tail) = match wrap {
        Some(w) => (w.head, w.payload, w.tail),
        None => (Vec::new(), len, Vec::new()),
    };
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&head).unwrap();
    write_random(&mut f, payload, seed);
    f.write_all(&tail).unwrap();
    f.flush().unwrap();
}

/// Writes `len` pseudo-random bytes (xorshift, seeded) to `f`.
pub fn write_random(f: &mut impl Write, len: u64, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap();
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// Hex BLAKE3 of a file (the default receipt hash, `upload.hash`).
pub fn blake3_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a secret file (an upload token or an API key, newline-terminated) atomically, mode 0600.
pub fn write_token(path: &Path, token: &str) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `ingestd token create --endpoint URL` with the emulator's API key; returns the token.
pub fn create_token(em: &Emulator) -> String {
    let out = Command::new(bin())
        .args(["token", "create", "--json", "--endpoint", &em.url])
        .env("APIVIDEO_API_KEY", API_KEY)
        .env_remove("INGESTD_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// `ingestd status --all --json --config CONFIG`.
pub fn status(config: &Path) -> Value {
    let out = Command::new(bin())
        .args(["status", "--all", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `PRAGMA integrity_check` of a journal (opened read-only): `"ok"` when it is intact.
pub fn integrity(journal: &Path) -> String {
    let c =
        rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// `counts[state]` of a status object.
pub fn count(s: &Value, state: &str) -> u64 {
    s["counts"][state].as_u64().unwrap_or(0)
}

/// The status row of `path`.
pub fn file_row<'a>(s: &'a Value, path: &Path) -> Option<&'a Value> {
    let p = path.to_string_lossy();
    s["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"].as_str() == Some(&*p))
}

/// The `video_id` of the status row of `path` (panics if there is no row or no id yet).
pub fn video_id(s: &Value, path: &Path) -> String {
    let row = file_row(s, path).unwrap_or_else(|| panic!("no row for {}: {s:#}", path.display()));
    row["video_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no video_id: {row:#}"))
        .to_owned()
}

/// A running `ingestd run`; SIGKILLed on drop.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    /// Starts `ingestd run --config CONFIG`, appending stderr and stdout to `log`.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// GET `url` → JSON.
pub fn get_json(url: &str) -> Value {
    rt().block_on(async {
        let r = reqwest::get(url).await.unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.unwrap()
    })
}

/// `GET /_emulator/videos` → the list.
pub fn videos(em: &Emulator) -> Vec<Value> {
    get_json(&format!("{}/_emulator/videos", em.url))["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// `GET /_emulator/videos/{id}`.
pub fn video(em: &Emulator, id: &str) -> Value {
    get_json(&format!("{}/_emulator/videos/{id}", em.url))
}

/// `GET /_emulator/stats`.
pub fn stats(em: &Emulator) -> Value {
    get_json(&format!("{}/_emulator/stats", em.url))
}

/// Replaces the fault plan (`POST /_emulator/faults`).
pub fn set_faults(em: &Emulator, plan: Value) {
    rt().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/_emulator/faults", em.url))
            .json(&plan)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST faults: {}", r.status());
    })
}

/// Slows every `POST /upload` body to `bytes_per_sec` for the rest of the test (the endpoint
/// reads slowly), replacing the fault plan.
pub fn throttle_uploads(em: &Emulator, bytes_per_sec: u64) {
    set_faults(
        em,
        serde_json::json!([{"path": "/upload", "count": 1_000_000, "action": "throttle", "bytes_per_sec": bytes_per_sec}]),
    );
}

/// Caps the socket read rate of every connection carrying a `POST /upload` to `bytes_per_sec`
/// for the rest of the test (`conn_rate_bps`: the endpoint reads its socket slowly, so TCP flow
/// control holds the body back in the sender's kernel), replacing the fault plan. Unlike
/// [`throttle_uploads`], the endpoint's kernel buffers only its receive window.
pub fn cap_upload_connections(em: &Emulator, bytes_per_sec: u64) {
    set_faults(
        em,
        serde_json::json!([{"path": "/upload", "count": 1_000_000, "action": "conn_rate_bps", "bytes_per_sec": bytes_per_sec}]),
    );
}

/// `GET /_emulator/faults`.
pub fn faults(em: &Emulator) -> Value {
    get_json(&format!("{}/_emulator/faults", em.url))
}

/// Clears the fault plan.
pub fn clear_faults(em: &Emulator) {
    rt().block_on(async {
        reqwest::Client::new()
            .delete(format!("{}/_emulator/faults", em.url))
            .send()
            .await
            .unwrap();
    })
}

/// `DELETE /upload-tokens/{token}` with the API key.
pub fn delete_token(em: &Emulator, token: &str) {
    rt().block_on(async {
        let r = reqwest::Client::new()
            .delete(format!("{}/upload-tokens/{token}", em.url))
            .basic_auth(API_KEY, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "DELETE token");
    })
}

/// How many requests the `videos` (`/_emulator/videos` entries) received were answered with the
/// error `slug`.
pub fn requests_with_error<'a>(videos: impl IntoIterator<Item = &'a Value>, slug: &str) -> usize {
    videos
        .into_iter()
        .flat_map(|v| {
            v["requests"]
                .as_array()
                .unwrap_or_else(|| panic!("no requests in {v:#}"))
        })
        .filter(|r| r["error"].as_str() == Some(slug))
        .count()
}

/// Checks the service side of one uploaded file: exactly one complete video with the file's
/// SHA-256 and title, every chunk after the first sent with `videoId`. Returns the video.
pub fn assert_uploaded_once(em: &Emulator, path: &Path, video_id: &str) -> Value {
    // The title on the token path is the multipart filename, control characters replaced.
    let name = ingestd::api::upload::safe_file_name(&path.file_name().unwrap().to_string_lossy());
    let all = videos(em);
    let same_title: Vec<&Value> = all
        .iter()
        .filter(|v| v["title"].as_str() == Some(&*name))
        .collect();
    assert_eq!(
        same_title.len(),
        1,
        "exactly one video titled {name}: {same_title:#?}"
    );
    let v = video(em, video_id);
    assert_eq!(v["complete"], true, "{name}: video complete: {v:#}");
    assert_eq!(
        v["sha256"].as_str(),
        Some(&*sha256_file(path)),
        "{name}: endpoint SHA-256 equals the file's"
    );
    for (i, c) in v["chunks"].as_array().unwrap().iter().enumerate() {
        if c["from"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(
                c["withVideoId"], true,
                "{name}: chunk {i} ({}) carries videoId",
                c["contentRange"]
            );
        }
    }
    v
}

/// `POST /videos` with the API key: an empty video with `title`, `tags` and `metadata` pairs;
/// returns its id.
pub fn create_video(
    em: &Emulator,
    title: &str,
    tags: &[&str],
    metadata: &[(&str, &str)],
) -> String {
    let meta: Vec<Value> = metadata
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
        .collect();
    let body = serde_json::json!({"title": title, "tags": tags, "metadata": meta});
    rt().block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/videos", em.url))
            .basic_auth(API_KEY, None::<&str>)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "POST /videos");
        let v: Value = r.json().await.unwrap();
        v["videoId"].as_str().unwrap().to_owned()
    })
}
