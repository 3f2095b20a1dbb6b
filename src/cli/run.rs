//! `ingestd run`: the daemon in the foreground (systemd `Type=notify`).
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{Cli, Exit};

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&cli.config)?;
    if config.watch.is_empty() {
        // Valid for `upload` and `token`, but a daemon without a root would sit idle. A missing
        // token is reported first: a fresh install lacks it most.
        crate::daemon::services::read_token(&config).map_err(|e| Exit {
            code: e.exit_code(),
            message: format!("ingestd: {e}"),
        })?;
        return Err(Exit {
            code: crate::config::EXIT_CONFIG,
            message: format!(
                "{}: no [[watch]] section: `ingestd run` has nothing to watch; add one, such as\n\n[[watch]]\npath = \"/srv/recordings\"",
                cli.config.display()
            ),
        }
        .into());
    }
    match crate::daemon::run(config, CancellationToken::new()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(Exit {
            code: e.exit_code(),
            message: format!("ingestd: {e}"),
        }
        .into()),
    }
}
