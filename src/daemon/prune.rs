//! Automatic retention (`[journal] keep_done`): prunes `done` rows older than `keep_done` a
//! minute after the start and then hourly, on a blocking thread, in the journal's small
//! transactions (a worker's commit waits at most one batch). `keep_done` is re-read on SIGHUP:
//! a changed value prunes at once and then hourly; removed, nothing is pruned any more.

use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;

/// Delay of the first prune after the start (the initial scan and the first claims go first).
const FIRST_PRUNE: Duration = Duration::from_secs(60);
/// Time between prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Sets the `keep_done` in force (after a reload); the loop wakes only if it changed.
pub fn set_keep_done(tx: &watch::Sender<Option<Duration>>, keep_done: Option<Duration>) {
    let changed = tx.send_if_modified(|now| {
        let changed = *now != keep_done;
        *now = keep_done;
        changed
    });
    if changed {
        match keep_done {
            Some(k) => tracing::info!(
                keep_done = %humantime::format_duration(k),
                "[journal] keep_done changed: pruning now, then hourly"
            ),
            None => tracing::info!("[journal] keep_done removed: done files are kept for ever"),
        }
    }
}

/// Prunes by the `keep_done` in force until `stop` is cancelled.
pub async fn run_loop(
    journal: Journal,
    mut keep: watch::Receiver<Option<Duration>>,
    stop: CancellationToken,
) {
    let mut wait = FIRST_PRUNE;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            changed = keep.changed() => if changed.is_err() {
                return; // the daemon is gone
            },
        }
        wait = PRUNE_INTERVAL;
        let Some(keep_done) = *keep.borrow_and_update() else {
            continue;
        };
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
