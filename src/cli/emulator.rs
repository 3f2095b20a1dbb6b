//! `ingestd emulator`: runs the local api.video-compatible endpoint.
use std::process::ExitCode;

use super::EmulatorArgs;

pub async fn run(_args: &EmulatorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd emulator` is not implemented yet")
}
