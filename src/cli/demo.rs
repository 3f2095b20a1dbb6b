//! `ingestd demo`: a self-contained tour on the built-in local endpoint.
//!
//! Starts the endpoint in-process on a free loopback port, creates an upload token with its API
//! key, writes `ingestd-demo/config.toml`, runs the daemon on `ingestd-demo/inbox`, drops a few
//! sample files there (one large enough to be chunked) and shows every file of the journal in a
//! table as it changes: state, bytes sent, rate and `videoId`, files dropped in by the user
//! included. Then it keeps watching until Ctrl-C (or stops, with `--once`).
//!
//! The terminal belongs to the table: log lines go to `ingestd-demo/demo.log`. Live bytes and
//! rates come from the daemon's status page (`/status.json` on a loopback `[metrics] listen`
//! port); states and `videoId`s from the journal. The demo config sets `max_rate = "1 MiB"` so
//! that uploads last long enough to be watched. A re-run in the same directory keeps samples
//! the journal has as uploaded (same file, same content), so they are not uploaded again.

use crate::cli::stdout::{OutputError, outln};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::DemoArgs;
use crate::api::{AuthMode, Client, ClientOptions};
use crate::config::Config;
use crate::emulator::{EmulatorOptions, start};
use crate::journal::{FileRow, FileState, Journal};
use crate::metrics::format::size as human_size;
use crate::secret::Secret;
use crate::watch::container::{format_by_extension, sample};

const DEMO_API_KEY: &str = "demoApiKey0000000000000000000000";
const MIB: usize = 1024 * 1024;
/// The sample files: names and sizes (the large one goes in chunks).
const SAMPLES: &[(&str, usize)] = &[
    ("demo-small.mp4", 2 * MIB),
    ("demo-clip.mov", 3 * MIB + 12_345),
    ("demo-large.mp4", 12 * MIB + 777),
];
/// How often an `uploading` row is printed again with new bytes.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = absolute(&args.dir)?;
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).with_context(|| format!("creating {}", inbox.display()))?;
    let log = dir.join("demo.log");
    super::log_writer::log_to_file(&log).with_context(|| format!("opening {}", log.display()))?;
    outln!("logs: {}", log.display())?;

    let endpoint = start(
        EmulatorOptions {
            data_dir: dir.join("endpoint"),
            api_key: Some(DEMO_API_KEY.to_owned()),
            upload_limit_per_minute: 0,
        },
        "127.0.0.1:0",
    )
    .await
    .context("starting the local endpoint")?;
    let url = endpoint.url();
    outln!("local api.video-compatible endpoint: {url}")?;

    let client = Client::new(ClientOptions::new(url.parse()?))?
        .with_api_key(Secret::new(DEMO_API_KEY), AuthMode::Basic);
    let token = client.create_upload_token(0).await?;
    let token_file = dir.join("upload-token");
    write_private(&token_file, &token.token)?;
    outln!(
        "created upload token {} (in {})",
        Secret::new(&token.token).redacted(),
        token_file.display()
    )?;

    let status_port = free_port()?;
    let config_path = dir.join("config.toml");
    std::fs::write(
        &config_path,
        demo_config(&dir, &url, &token_file, status_port),
    )
    .with_context(|| format!("writing {}", config_path.display()))?;
    let config = Config::load(&config_path)?;
    outln!("wrote {}", config_path.display())?;

    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(crate::daemon::run(config.clone(), shutdown.clone()));
    {
        let s = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                s.cancel();
            }
        });
    }

    outln!("watching {}", inbox.display())?;
    outln!("status page: http://127.0.0.1:{status_port}/")?;
    let journal_path = config.journal.path.clone();
    // The table follows while the samples are written: the first is uploading before the last
    // is complete.
    let samples: Vec<PathBuf> = SAMPLES.iter().map(|(n, _)| inbox.join(n)).collect();
    let writer = tokio::spawn(write_samples(inbox.clone(), journal_path.clone()));
    let mut table = Table::new(&journal_path, status_port);
    tokio::select! {
        r = table.follow(&shutdown, Some(&samples)) => r?,
        written = writer => {
            written??;
            table.follow(&shutdown, Some(&samples)).await?;
        }
    }

    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ingestd".into());
    if !shutdown.is_cancelled() {
        outln!()?;
        if args.once {
            outln!("The samples are uploaded. Next:")?;
            outln!(
                "  {exe} status --all --config {}   (what was uploaded)",
                config_path.display()
            )?;
            outln!(
                "  {exe} demo --dir {}   (without --once: keeps watching {} for files you drop in)",
                dir.display(),
                inbox.display()
            )?;
        } else {
            outln!(
                "Drop video files (*.mp4, *.mov, …) into {} to upload them: they appear below.",
                inbox.display()
            )?;
            // The binary that runs now: `/usr/bin/ingestd` when installed, `target/…/ingestd`
            // under `cargo run`.
            outln!(
                "In another terminal: {exe} status --config {}",
                config_path.display()
            )?;
            outln!("Ctrl-C to stop.")?;
            table.follow(&shutdown, None).await?;
        }
    }
    shutdown.cancel();
    let result = daemon.await?;
    endpoint.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// A free loopback port for the status page (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok(())
}

fn demo_config(dir: &Path, url: &str, token_file: &Path, status_port: u16) -> String {
    format!(
        r#"# Written by `ingestd demo`: the daemon against the built-in local endpoint.
[api]
endpoint = "{url}"
upload_token_file = "{token}"

[journal]
path = "{dir}/journal.sqlite"

[upload]
workers = 2
chunk_size = "5 MiB"
# Slow enough to watch the uploads; remove it to go at full speed.
max_rate = "1 MiB"

[metrics]
listen = "127.0.0.1:{status_port}"

[[watch]]
path = "{dir}/inbox"
settle = "2s"
"#,
        token = token_file.display(),
        dir = dir.display()
    )
}

/// Writes the sample files the way a camera would: in pieces, the large one over a second or so.
/// Each is a structurally valid MP4/MOV (`ftyp`, `mdat` holding pseudo-random bytes, then the
/// `moov` last, as a recorder finishes), so the container check queues it once it is whole.
/// A sample the journal has as uploaded, unchanged since, is kept (a re-run uploads nothing
/// twice).
async fn write_samples(inbox: PathBuf, journal: PathBuf) -> anyhow::Result<()> {
    let (inbox, journal) = (inbox.as_path(), journal.as_path());
    for &(name, size) in SAMPLES {
        let path = inbox.join(name);
        if let Some(video) = uploaded_before(journal, &path) {
            outln!(
                "kept {} (uploaded by an earlier run as {video}; delete {} to start afresh)",
                path.display(),
                inbox.parent().unwrap_or(inbox).display()
            )?;
            continue;
        }
        let mut f = tokio::fs::File::create(&path).await?;
        let wrap = format_by_extension(&path)
            .and_then(|fmt| sample::wrap(fmt, size as u64))
            .unwrap_or(sample::Wrap {
                head: Vec::new(),
                payload: size as u64,
                tail: Vec::new(),
            });
        tokio::io::AsyncWriteExt::write_all(&mut f, &wrap.head).await?;
        let payload = usize::try_from(wrap.payload).context("sample size")?;
        let mut written = 0;
        let mut seed = size as u64;
        while written < payload {
            let n = MIB.min(payload - written);
            let block: Vec<u8> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 33).to_le_bytes()[0]
                })
                .collect();
            tokio::io::AsyncWriteExt::write_all(&mut f, &block).await?;
            written += n;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::io::AsyncWriteExt::write_all(&mut f, &wrap.tail).await?;
        outln!("wrote {} ({} bytes)", path.display(), size)?;
    }
    Ok(())
}

/// The `videoId` of `path` if the journal has it `done` and the file is the one uploaded
/// (same size, same inode).
fn uploaded_before(journal: &Path, path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let row = Journal::open_read_only(journal)
        .ok()?
        .find_by_path(path)
        .ok()??;
    let meta = std::fs::metadata(path).ok()?;
    let same = row.state == FileState::Done
        && row.identity.size == meta.len()
        && row.identity.ino == meta.ino();
    if same { row.video_id } else { None }
}

/// Live figures of an upload in flight, from the daemon's `/status.json`.
#[derive(Debug, Clone, Copy)]
struct Live {
    sent: u64,
    rate: f64,
}

/// The table: one line per change of a file (every file of the journal).
struct Table {
    journal: PathBuf,
    status_url: String,
    http: Option<reqwest::Client>,
    /// Per file id: the last line printed and when.
    last: HashMap<i64, (String, Instant)>,
    header: bool,
}

impl Table {
    fn new(journal: &Path, status_port: u16) -> Table {
        Table {
            journal: journal.to_owned(),
            status_url: format!("http://127.0.0.1:{status_port}/status.json"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .ok(),
            last: HashMap::new(),
            header: false,
        }
    }

    /// Prints changes until every one of `samples` is done or failed (None: until Ctrl-C).
    async fn follow(
        &mut self,
        shutdown: &CancellationToken,
        samples: Option<&[PathBuf]>,
    ) -> Result<(), OutputError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let live = self.live().await;
            let journal = self.journal.clone();
            let rows = tokio::task::spawn_blocking(move || {
                Journal::open_read_only(&journal)
                    .and_then(|j| j.list(true))
                    .unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            let mut finished = 0;
            for row in &rows {
                self.show(row, live.get(&row.id).copied())?;
                let sample = samples.is_some_and(|s| s.contains(&row.path));
                if sample && matches!(row.state, FileState::Done | FileState::Failed) {
                    finished += 1;
                }
            }
            if samples.is_some_and(|s| finished == s.len()) {
                return Ok(());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Bytes and rate of the uploads in flight, by file id (empty if the page does not answer).
    async fn live(&self) -> HashMap<i64, Live> {
        let Some(http) = &self.http else {
            return HashMap::new();
        };
        let Ok(resp) = http.get(&self.status_url).send().await else {
            return HashMap::new();
        };
        let Ok(v) = resp.json::<serde_json::Value>().await else {
            return HashMap::new();
        };
        v["uploading"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| {
                        Some((
                            u["id"].as_i64()?,
                            Live {
                                sent: u["sent"].as_u64()?,
                                rate: u["rate_bytes_per_sec"].as_f64().unwrap_or(0.0),
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn show(&mut self, row: &FileRow, live: Option<Live>) -> Result<(), OutputError> {
        let size = row.identity.size;
        let video = || {
            row.video_id
                .as_deref()
                .map(|v| format!("videoId {v}"))
                .unwrap_or_default()
        };
        let (state, bytes, rate) = match row.state {
            FileState::Uploading => {
                let sent = live.map_or(row.bytes_uploaded, |l| l.sent.max(row.bytes_uploaded));
                let pct = sent * 100 / size.max(1);
                let rate = live
                    .filter(|l| l.rate > 0.0)
                    .map(|l| {
                        // Display only: `as` saturates a rate too large for u64.
                        #[allow(clippy::cast_possible_truncation)]
                        let rate = l.rate as u64;
                        format!("{}/s", human_size(rate))
                    })
                    .unwrap_or_default();
                (
                    "uploading",
                    format!("{} / {} {pct:>3}%", human_size(sent), human_size(size)),
                    rate,
                )
            }
            FileState::Done => ("done", human_size(size), String::new()),
            FileState::Failed => (
                "failed",
                human_size(size),
                row.last_error.clone().unwrap_or_default(),
            ),
            other => (other.as_str(), human_size(size), String::new()),
        };
        let name = row
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let line = format!(
            "  {name:<16} {state:<9}  {bytes:<24} {rate:<12} {}",
            video()
        );
        let line = line.trim_end().to_owned();
        let now = Instant::now();
        if let Some((prev, at)) = self.last.get(&row.id) {
            let same_state = prev.contains(&format!(" {state} "));
            if *prev == line
                || (row.state == FileState::Uploading && same_state && now - *at < PROGRESS_EVERY)
            {
                return Ok(());
            }
        }
        if !self.header {
            outln!(
                "  {:<16} {:<9}  {:<24} {:<12} VIDEO",
                "FILE",
                "STATE",
                "BYTES",
                "RATE"
            )?;
            self.header = true;
        }
        outln!("{line}")?;
        let _ = std::io::stdout().flush();
        self.last.insert(row.id, (line, now));
        Ok(())
    }
}
