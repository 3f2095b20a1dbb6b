//! Automatic retention (`[journal] keep_done`): prunes `done` rows older than `keep_done` a
//! minute after the start and then hourly, on a blocking thread, in the journal's small
//! transactions (a worker's commit waits at most one batch). Read at start: a changed
//! `keep_done` applies from the next restart.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::journal::Journal;

/// Delay of the first prune after the start (the initial scan and the first claims go first).
const FIRST_PRUNE: Duration = Duration::from_secs(60);
/// Time between prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes until `stop` is cancelled.
pub async fn run_loop(journal: Journal, keep_done: Duration, stop: CancellationToken) {
    let mut wait = FIRST_PRUNE;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = PRUNE_INTERVAL;
        let Some(cutoff) = SystemTime::now().checked_sub(keep_done) else {
            continue;
        };
        let j = journal.clone();
        match tokio::task::spawn_blocking(move || j.prune_done_before(cutoff)).await {
            Ok(Ok(out)) if out.rows > 0 => tracing::info!(
                rows = out.rows,
                tombstones = out.tombstones,
                freed_pages = out.freed_pages,
                keep_done = %humantime::format_duration(keep_done),
                "pruned done files from the journal"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("pruning the journal failed (retried in an hour): {e}"),
            Err(e) => tracing::warn!("pruning the journal stopped: {e}"),
        }
    }
}
