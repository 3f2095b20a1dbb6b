//! `ingestd prune --done-before DURATION`: forget files uploaded longer ago than DURATION (a
//! file still in place keeps a tombstone, so it is not uploaded again), then give the freed
//! pages back to the filesystem. Safe while `run` runs (small transactions).

use crate::cli::stdout::outln;
use crate::escape::Show as _;
use std::process::ExitCode;
use std::time::SystemTime;

use super::super::{Cli, Exit, PruneArgs};
use crate::journal::{Journal, JournalError};
use crate::metrics::format;

pub fn prune(cli: &Cli, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let config = match super::super::keyed::lenient_config(&cli.config)? {
        Some(c) => c,
        None => super::super::load_config(&cli.config)?,
    };
    let keep = crate::config::units::parse_duration(&args.done_before).map_err(|e| Exit {
        code: 2,
        message: format!("--done-before: {e}; write a duration such as \"90d\" or \"12h\""),
    })?;
    let path = &config.journal.path;
    let journal = match Journal::open_existing(path) {
        Err(e @ JournalError::Missing { .. }) => {
            outln!("{e}; nothing to prune")?;
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    let cutoff = SystemTime::now()
        .checked_sub(keep)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let before = journal.stats()?;
    let out = journal.prune_done_before(cutoff)?;
    let after = journal.stats()?;
    outln!(
        "pruned {} done file{} uploaded before {} ({} tombstone{} for files still in place); journal {} → {}, {} rows left",
        out.rows,
        if out.rows == 1 { "" } else { "s" },
        format::rfc3339(cutoff),
        out.tombstones,
        if out.tombstones == 1 { "" } else { "s" },
        format::size(before.bytes),
        format::size(after.bytes),
        after.rows
    )?;
    if out.rows > 0 && out.freed_pages == 0 {
        outln!(
            "the file did not shrink: this journal predates auto_vacuum; to reclaim the space once, stop ingestd and run: sqlite3 {} 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'",
            path.shown()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
