//! `ingestd check-config`: parse and validate the configuration (the same [`Config::load`] as
//! `run`, token and key files included). Exit 0 with `FILE: ok` and a one-line summary (never the
//! token), warnings on stderr; or exit 78 with `FILE:LINE:COL: what is wrong and what to write`.
use std::process::ExitCode;

use super::Cli;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&cli.config)?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    println!("{}: ok", cli.config.display());
    println!("{}", config.summary());
    Ok(ExitCode::SUCCESS)
}
