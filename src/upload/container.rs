//! The worker's side of the container check (issue 13): right before the first request and
//! after the last chunk (with the re-stat), a file under a root with `check_container = true`
//! must still be a complete container, unless the operator waived the check with
//! `ingestd retry ID --anyway`. An incomplete file goes back to `settling` with the reason (a
//! started video recorded as abandoned); the watcher's next scan tracks it again.

use crate::escape::Show as _;
use std::path::PathBuf;

use tracing::warn;

use crate::journal::FileRow;
use crate::upload::events::UploadOutcome;
use crate::upload::worker::{Outcome, WorkerContext, WorkerError};
use crate::watch::container::{self, Verdict};

/// When the worker asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    BeforeFirstRequest,
    AfterLastChunk,
}

/// `None`: go on. `Some(Outcome::Released)`: the file is incomplete and went back to settling.
pub async fn recheck(
    ctx: &WorkerContext,
    row: &FileRow,
    moment: Moment,
) -> Result<Option<Outcome>, WorkerError> {
    if !ctx.container_roots.contains(&row.root) {
        return Ok(None);
    }
    let (id, path) = (row.id, row.path.clone());
    let journal = ctx.journal.clone();
    let verdict = tokio::task::spawn_blocking(move || -> Result<Verdict, WorkerError> {
        if journal.container_waived(id)? {
            return Ok(Verdict::Unknown);
        }
        Ok(container::check_file(&path).verdict)
    })
    .await??;
    let Verdict::Incomplete(reason) = verdict else {
        return Ok(None);
    };
    let when = match moment {
        Moment::BeforeFirstRequest => "before its upload",
        Moment::AfterLastChunk => "after its last chunk",
    };
    warn!(path = %row.path.shown(), video_id = row.video_id.as_deref(), "{reason} ({when}): not uploaded; it waits until the file changes");
    ctx.metrics.outcome(UploadOutcome::Abandoned);
    let journal = ctx.journal.clone();
    tokio::task::spawn_blocking(move || journal.hold_incomplete(id, &reason)).await??;
    Ok(Some(Outcome::Released))
}

/// The roots whose files the worker re-checks.
pub fn roots(watch: &[crate::config::WatchConfig]) -> Vec<PathBuf> {
    watch
        .iter()
        .filter(|w| w.check_container)
        .map(|w| w.path.clone())
        .collect()
}
