//! `ingestd check-config`.
use std::process::ExitCode;

use super::Cli;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&cli.config)?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    println!("{}: ok", cli.config.display());
    Ok(ExitCode::SUCCESS)
}
