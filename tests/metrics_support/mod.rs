//! Helpers for the metrics and status-page tests: a real `ingestd run` with `[metrics]` on a
//! free loopback port (`listen = "127.0.0.1:0"`, the bound address read from its log) against a
//! real `ingestd emulator`, and a minimal HTTP/1.1 client over `std::net`.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common::daemon::{create_token, write_file};
use crate::common::{self, Emulator};

/// How long any condition is waited for before the test fails.
pub const T: Duration = Duration::from_secs(60);

/// Polls `f` until it returns `Some`, or panics with `what` after [`T`].
pub fn wait_for<R>(what: &str, mut f: impl FnMut() -> Option<R>) -> R {
    let start = Instant::now();
    loop {
        if let Some(r) = f() {
            return r;
        }
        assert!(start.elapsed() < T, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh directory with an inbox, an upload token file and a config listening on `listen`;
/// returns the directory, the config path and the token.
pub fn setup(em: &Emulator, listen: &str) -> (tempfile::TempDir, PathBuf, String) {
    let token = create_token(em);
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let token_file = dir.path().join("upload-token");
    std::fs::write(&token_file, &token).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nendpoint = \"{}\"\nupload_token_file = \"{}\"\n\n\
             [journal]\npath = \"{}/journal.sqlite\"\n\n\
             [upload]\nworkers = 1\nchunk_size = \"5 MiB\"\n\n\
             [metrics]\nlisten = \"{listen}\"\n\n\
             [[watch]]\npath = \"{}\"\nsettle = \"1s\"\n",
            em.url,
            token_file.display(),
            dir.path().display(),
            inbox.display()
        ),
    )
    .unwrap();
    (dir, config, token)
}

/// A running `ingestd run`; SIGTERM and wait on drop.
pub struct Daemon {
    child: Child,
    /// `host:port` of the metrics listener.
    pub addr: String,
    pub token: String,
    pub inbox: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon on a fresh inbox with `[metrics] listen = "127.0.0.1:0"`.
    pub fn start(em: &Emulator) -> Daemon {
        let (dir, config, token) = setup(em, "127.0.0.1:0");
        let inbox = dir.path().join("inbox");
        let mut child = Command::new(common::bin())
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some((_, rest)) = line.split_once("status page on http://") {
                        let url = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(url.trim_end_matches('/').to_owned());
                    }
                    eprintln!("[ingestd] {line}");
                    log.lock().unwrap().push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(T) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "ingestd run did not log its metrics address; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Daemon {
            child,
            addr,
            token,
            inbox,
            log,
            dir,
        }
    }

    /// GET `path` on the metrics listener.
    pub fn get(&self, path: &str) -> Response {
        get(&self.addr, path)
    }

    /// `/status.json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let r = self.get("/status.json");
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// The number of files in `state`, from `/status.json`.
    pub fn files(&self, state: &str) -> u64 {
        self.status()["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["state"] == state)
            .and_then(|c| c["files"].as_u64())
            .unwrap()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// The daemon's config file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Writes a file of `len` pseudo-random bytes into the inbox.
    pub fn drop_file(&self, name: &str, len: usize) -> PathBuf {
        let path = self.inbox.join(name);
        write_file(&path, len as u64, len as u64);
        path
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM: the daemon drains and exits 0.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET path` on `addr` over HTTP/1.1 with `Connection: close`.
pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, None)
}

/// A request with an optional JSON body; the whole response is read (the server closes).
pub fn request(addr: &str, method: &str, path: &str, json: Option<&str>) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(T)).unwrap();
    let body = json.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Response {
        status,
        content_type,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..i]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let rest = &s[i + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The file name of `path` as text.
pub fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
