//! `ingestd upload FILE…`: foreground upload with progress bars (issue 4).
use std::process::ExitCode;

use super::{Cli, UploadArgs};

pub async fn run(_cli: &Cli, _args: &UploadArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd upload` is not implemented yet")
}
