//! `ingestd emulator`: runs the local api.video-compatible endpoint until SIGINT/SIGTERM.
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::EmulatorArgs;
use crate::emulator::{EmulatorOptions, start};

pub async fn run(args: &EmulatorArgs) -> anyhow::Result<ExitCode> {
    let opts = EmulatorOptions {
        data_dir: args.data_dir.clone(),
        api_key: args.api_key.clone(),
        upload_limit_per_minute: args.upload_limit_per_minute,
    };
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    // The error's text already names its cause: no `{:#}` chain (it printed the cause twice).
    let running = start(opts, &args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the emulator: {e}"))?;
    crate::cli::stdout::outln!("listening on {}", running.url())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping the emulator");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
