//! `ingestd demo`: the self-contained tour (issue 4).
use std::process::ExitCode;

use super::DemoArgs;

pub async fn run(_args: &DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd demo` is not implemented yet")
}
