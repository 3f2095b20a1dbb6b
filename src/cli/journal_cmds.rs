//! `ingestd status`, `retry`, `explain`: read and edit the journal (works while `run` holds it).
use std::process::ExitCode;

use super::{Cli, ExplainArgs, RetryArgs, StatusArgs};

pub fn status(_cli: &Cli, _args: &StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd status` is not implemented yet")
}

pub fn retry(_cli: &Cli, _args: &RetryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd retry` is not implemented yet")
}

pub fn explain(_cli: &Cli, _args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`ingestd explain` is not implemented yet")
}
