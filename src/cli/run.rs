//! `ingestd run`: the daemon in the foreground (systemd `Type=notify`). Refuses to start (exit 78)
//! without an upload token or without a `[[watch]]` root, before logging anything else.
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{Cli, Exit};

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&cli.config)?;
    let fail = |e: crate::daemon::DaemonError| -> anyhow::Error {
        Exit {
            code: e.exit_code(),
            message: format!("ingestd: {e}"),
        }
        .into()
    };
    // A missing token first (a fresh install lacks it most), as one line: the daemon would log
    // the configuration's "no upload token" warning before failing the same way.
    crate::daemon::services::read_token(&config).map_err(fail)?;
    if let Some(message) = crate::daemon::not_runnable(&config) {
        return Err(Exit {
            code: crate::config::EXIT_CONFIG,
            message,
        }
        .into());
    }
    // From here on, a panic anywhere stops the daemon (exit 70) instead of leaving it running
    // without the task that panicked.
    crate::daemon::fatal::fatal_panics(super::flush_logs);
    crate::daemon::run(config, CancellationToken::new())
        .await
        .map_err(fail)?;
    Ok(ExitCode::SUCCESS)
}
