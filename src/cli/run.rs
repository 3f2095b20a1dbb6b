//! `ingestd run`: the daemon in the foreground (issue 4).
use std::process::ExitCode;

use super::Cli;

pub async fn run(_cli: &Cli) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd run` is not implemented yet")
}
