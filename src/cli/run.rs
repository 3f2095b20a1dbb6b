//! `ingestd run`: the daemon in the foreground (systemd `Type=notify`).
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{Cli, Exit};

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&cli.config)?;
    match crate::daemon::run(config, CancellationToken::new()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(Exit {
            code: e.exit_code(),
            message: format!("ingestd: {e}"),
        }
        .into()),
    }
}
