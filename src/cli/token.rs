//! `ingestd token create|list|show|delete`.
use std::process::ExitCode;

use super::{Cli, TokenCommand};

pub async fn run(_cli: &Cli, _cmd: &TokenCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd token` is not implemented yet")
}
