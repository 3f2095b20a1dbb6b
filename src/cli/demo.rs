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

use crate::escape::Show as _;
use std::io::Write;

use crate::cli::stdout::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::DemoArgs;
use super::demo_table::Table;
use crate::api::{AuthMode, Client, ClientOptions};
use crate::config::Config;
use crate::emulator::{EmulatorOptions, start};
use crate::journal::{FileState, Journal};
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

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = absolute(&args.dir)?;
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).with_context(|| format!("creating {}", inbox.shown()))?;
    let log = dir.join("demo.log");
    super::log_writer::log_to_file(&log).with_context(|| format!("opening {}", log.shown()))?;
    outln!("logs: {}", log.shown())?;

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
        token_file.shown()
    )?;

    let status_port = free_port()?;
    let config_path = dir.join("config.toml");
    std::fs::write(
        &config_path,
        demo_config(&dir, &url, &token_file, status_port),
    )
    .with_context(|| format!("writing {}", config_path.shown()))?;
    let config = Config::load(&config_path)?;
    outln!("wrote {}", config_path.shown())?;

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

    outln!("watching {}", inbox.shown())?;
    outln!("status page: http://127.0.0.1:{status_port}/")?;
    let journal_path = config.journal.path.clone();
    // The table follows while the samples are written: the first is uploading before the last
    // is complete.
    let samples: Vec<PathBuf> = SAMPLES.iter().map(|(n, _)| inbox.join(n)).collect();
    let (notes, notes_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(write_samples(inbox.clone(), journal_path.clone(), notes));
    let mut table = Table::new(&journal_path, status_port, notes_rx);
    tokio::select! {
        r = table.follow(&shutdown, Some(&samples)) => r?,
        written = writer => {
            written??;
            table.follow(&shutdown, Some(&samples)).await?;
        }
    }

    let exe = std::env::current_exe()
        .map(|p| p.shown().to_string())
        .unwrap_or_else(|_| "ingestd".into());
    if !shutdown.is_cancelled() {
        if args.once {
            table.finish();
            outln!()?;
            outln!("The samples are uploaded. Next:")?;
            outln!(
                "  {exe} status --all --config {}   (what was uploaded)",
                config_path.shown()
            )?;
            outln!(
                "  {exe} demo --dir {}   (without --once: keeps watching {} for files you drop in)",
                dir.shown(),
                inbox.shown()
            )?;
        } else {
            // Above the table, which stays at the bottom of a terminal and grows with the files
            // dropped in.
            table.note("")?;
            table.note(&format!(
                "Drop video files (*.mp4, *.mov, …) into {} to upload them: they appear below.",
                inbox.shown()
            ))?;
            // The binary that runs now: `/usr/bin/ingestd` when installed, `target/…/ingestd`
            // under `cargo run`.
            table.note(&format!(
                "In another terminal: {exe} status --config {}",
                config_path.shown()
            ))?;
            table.note("Ctrl-C to stop.")?;
            table.follow(&shutdown, None).await?;
        }
    }
    table.finish();
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
        .with_context(|| format!("writing {}", path.shown()))?;
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
        token = token_file.shown(),
        dir = dir.shown()
    )
}

/// Writes the sample files the way a camera would: in pieces, the large one over a second or so.
/// Each is a structurally valid MP4/MOV (`ftyp`, `mdat` holding pseudo-random bytes, then the
/// `moov` last, as a recorder finishes), so the container check queues it once it is whole.
/// A sample the journal has as uploaded, unchanged since, is kept (a re-run uploads nothing
/// twice).
/// Says what it did through `notes` (printed above the table).
async fn write_samples(
    inbox: PathBuf,
    journal: PathBuf,
    notes: tokio::sync::mpsc::UnboundedSender<String>,
) -> anyhow::Result<()> {
    let (inbox, journal) = (inbox.as_path(), journal.as_path());
    for &(name, size) in SAMPLES {
        let path = inbox.join(name);
        if let Some(video) = uploaded_before(journal, &path) {
            let _ = notes.send(format!(
                "kept {} (uploaded by an earlier run as {video}; delete {} to start afresh)",
                path.shown(),
                inbox.parent().unwrap_or(inbox).shown()
            ));
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
        let _ = notes.send(format!("wrote {} ({} bytes)", path.shown(), size));
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
