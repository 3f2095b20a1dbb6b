//! `ingestd check-config`: parse and validate the configuration (the same [`Config::load`](crate::config::Config::load) as
//! `run`, token and key files included). Exit 0 with `FILE: ok` and a one-line summary (never the
//! token), warnings on stderr; or exit 78 with `FILE:LINE:COL: what is wrong and what to write`.
use crate::cli::stdout::{errln, outln};
use crate::escape::Show as _;
use std::process::ExitCode;

use super::Cli;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&cli.config)?;
    for w in &config.warnings {
        errln!("warning: {w}");
    }
    outln!("{}: ok", cli.config.shown())?;
    outln!("{}", config.summary())?;
    for w in &config.watch {
        outln!("{}: {}", w.path.shown(), container_line(w))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `check_container` means for one root, in one line.
fn container_line(w: &crate::config::WatchConfig) -> String {
    if w.check_container {
        format!(
            "check_container = true: settled MP4/MOV, MKV/WebM and MPEG-TS files are queued only \
             once their structure is complete (a file still incomplete and unchanged after \
             incomplete_after = {} fails with `incomplete-container`, a fragmented MP4 without \
             mfra is uploaded then); other formats use settle ({}) alone",
            humantime::format_duration(w.incomplete_after),
            humantime::format_duration(w.settle)
        )
    } else {
        format!(
            "check_container = false: a file is queued once unchanged for settle ({}), whatever \
             its structure",
            humantime::format_duration(w.settle)
        )
    }
}
