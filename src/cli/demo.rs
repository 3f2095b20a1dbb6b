//! `ingestd demo`: a self-contained tour on the built-in local endpoint.
//!
//! Starts the endpoint in-process on a free loopback port, creates an upload token with its API
//! key, writes `ingestd-demo/config.toml`, runs the daemon on `ingestd-demo/inbox`, drops a few
//! sample files there (one large enough to be chunked) and shows them settle, upload and finish
//! with their `videoId`s. Then it keeps watching until Ctrl-C.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::DemoArgs;
use crate::api::{AuthMode, Client, ClientOptions};
use crate::config::Config;
use crate::emulator::{EmulatorOptions, start};
use crate::journal::{FileState, Journal};
use crate::secret::Secret;

const DEMO_API_KEY: &str = "demoApiKey0000000000000000000000";
const MIB: usize = 1024 * 1024;

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = absolute(&args.dir)?;
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).with_context(|| format!("creating {}", inbox.display()))?;

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
    println!("local api.video-compatible endpoint: {url}");

    let client = Client::new(ClientOptions::new(url.parse()?))?
        .with_api_key(Secret::new(DEMO_API_KEY), AuthMode::Basic);
    let token = client.create_upload_token(0).await?;
    let token_file = dir.join("upload-token");
    write_private(&token_file, &token.token)?;
    println!(
        "created upload token {} (in {})",
        Secret::new(&token.token).redacted(),
        token_file.display()
    );

    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, demo_config(&dir, &url, &token_file))
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = Config::load(&config_path)?;
    println!("wrote {}", config_path.display());

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

    println!("watching {}", inbox.display());
    let samples = write_samples(&inbox).await?;
    let journal_path = config.journal.path.clone();
    follow(&journal_path, &samples, &shutdown).await;

    if args.once || shutdown.is_cancelled() {
        shutdown.cancel();
    } else {
        println!();
        println!(
            "Drop video files (*.mp4, *.mov, …) into {} to upload them.",
            inbox.display()
        );
        // The binary that runs now: `/usr/bin/ingestd` when installed, `target/…/ingestd`
        // under `cargo run`.
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "ingestd".into());
        println!(
            "In another terminal: {exe} status --config {}",
            config_path.display()
        );
        println!("Ctrl-C to stop.");
        shutdown.cancelled().await;
    }
    let result = daemon.await?;
    endpoint.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
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

fn demo_config(dir: &Path, url: &str, token_file: &Path) -> String {
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

[[watch]]
path = "{dir}/inbox"
settle = "2s"
"#,
        token = token_file.display(),
        dir = dir.display()
    )
}

/// Writes the sample files the way a camera would: in pieces, the large one over a second or so.
async fn write_samples(inbox: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let samples = [
        ("demo-small.mp4", 2 * MIB),
        ("demo-clip.mov", 3 * MIB + 12_345),
        ("demo-large.mp4", 12 * MIB + 777),
    ];
    let mut paths = Vec::new();
    for (name, size) in samples {
        let path = inbox.join(name);
        let mut f = tokio::fs::File::create(&path).await?;
        let mut written = 0;
        let mut seed = size as u64;
        while written < size {
            let n = MIB.min(size - written);
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
        println!("wrote {} ({} bytes)", path.display(), size);
        paths.push(path);
    }
    Ok(paths)
}

/// Prints each sample's state changes until all are done (or failed), or Ctrl-C.
async fn follow(journal_path: &Path, samples: &[PathBuf], shutdown: &CancellationToken) {
    let mut last: Vec<Option<String>> = vec![None; samples.len()];
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let journal = Journal::open_read_only(journal_path).ok();
        let mut finished = 0;
        for (i, path) in samples.iter().enumerate() {
            let Some(row) = journal
                .as_ref()
                .and_then(|j| j.find_by_path(path).ok().flatten())
            else {
                continue;
            };
            let line = match row.state {
                FileState::Uploading => format!(
                    "uploading {:>3}%{}",
                    row.bytes_uploaded * 100 / row.identity.size.max(1),
                    row.video_id
                        .as_deref()
                        .map(|v| format!("  videoId {v}"))
                        .unwrap_or_default()
                ),
                FileState::Done => {
                    finished += 1;
                    format!(
                        "done       videoId {}",
                        row.video_id.as_deref().unwrap_or("?")
                    )
                }
                FileState::Failed => {
                    finished += 1;
                    format!("failed     {}", row.last_error.as_deref().unwrap_or(""))
                }
                other => other.as_str().to_owned(),
            };
            if last[i].as_deref() != Some(line.as_str()) {
                println!(
                    "  {:<16} {line}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                );
                last[i] = Some(line);
            }
        }
        if finished == samples.len() {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
