//! How an upload attempt ends when it does not end `done`: the watcher took the row back, the
//! file left (changed, deleted), the shutdown deadline hit, the rules refuse the path, a local
//! I/O error, or an api error mapped to a retry, a token pause or a failure. Each writes its
//! verdict to the journal in one transaction and returns the worker's [`Outcome`].

use crate::escape::Show as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::api::{ApiError, ChunkRange, ErrorClass};
use crate::journal::{FileRow, TokenState};
use crate::upload::backoff::{Decision, RetryClass};
use crate::upload::events::{RetryKind, UploadOutcome};
use crate::upload::worker::{Outcome, WorkerContext, WorkerError, identity_of, j, same_content};

/// Whether the journal row is still this upload: `uploading`, same content identity, same
/// `videoId`. When the watcher sees the file change it takes the row back (→ `settling`, the
/// started video recorded as abandoned) and may queue it again for another worker of this same
/// process, whose claim the journal cannot tell apart from ours: committing on would write this
/// upload's progress onto that one. Checked before every commit; the window between the check and
/// the commit is a few microseconds, against a chunk's seconds.
pub(super) async fn still_ours(ctx: &WorkerContext, row: &FileRow) -> Result<bool, WorkerError> {
    let id = row.id;
    let now = j(&ctx.journal, move |j| j.get(id)).await?;
    Ok(now.is_some_and(|r| {
        r.state == crate::journal::FileState::Uploading
            && r.video_id == row.video_id
            && same_content(&r.identity, &row.identity)
    }))
}

/// The watcher took the row back while this upload ran (the file changed): stop, touch nothing.
pub(super) fn released_by_watcher(row: &FileRow, new_video: Option<&str>) -> Outcome {
    warn!(
        path = %row.path.shown(),
        video_id = row.video_id.as_deref().or(new_video),
        "the file changed during its upload: this upload stops (the journal recorded the started video as abandoned); the file settles again and uploads as a new video"
    );
    Outcome::Released
}

/// After a local error mid-upload at `offset` (file truncated, unreadable, missing): if the file
/// was deleted or changed, that is the answer, not a retry. Deleted → `gone` (its video recorded
/// as abandoned); changed → back to settling, uploaded again as a new video once stable. `None`:
/// the file is still the one being uploaded (retry as usual).
pub(super) async fn file_left(
    ctx: &WorkerContext,
    row: &FileRow,
    offset: u64,
) -> Result<Option<Outcome>, WorkerError> {
    let id = row.id;
    let path = row.path.shown().to_string();
    let video_id = row.video_id.clone();
    let now = tokio::fs::metadata(&row.path).await;
    match &now {
        Ok(m) if same_content(&identity_of(m), &row.identity) => return Ok(None),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    if !still_ours(ctx, row).await? {
        return Ok(Some(released_by_watcher(row, None)));
    }
    if now.is_err()
        && let Some(to) = renamed_to(ctx, row).await?
    {
        // The watcher recorded a rename of this very file (same inode, size, mtime): not a
        // deletion. Retried at once from the new path, resuming at the committed offset.
        let msg = format!(
            "the file was renamed to {} during its upload; it resumes from there",
            to.shown()
        );
        return Ok(Some(local_failure(ctx, row, msg).await?));
    }
    match now {
        Ok(m) => {
            let ident = identity_of(&m);
            warn!(
                path,
                video_id,
                "the file changed during its upload (truncated or rewritten): this upload stops; it settles again and uploads as a new video"
            );
            j(&ctx.journal, move |j| j.reset_for_new_video(id, &ident)).await?;
        }
        Err(_) => {
            // The whole root gone (unmounted, renamed away) is not the file deleted: the watcher
            // restores the row when the root is back, and the upload resumes into its video.
            let (msg, then) = if tokio::fs::metadata(&row.root).await.is_err() {
                let msg = format!(
                    "the watch root {} disappeared during the upload (unmounted or moved?), after {offset} of {} bytes",
                    row.root.shown(),
                    row.identity.size
                );
                (
                    msg,
                    "; it resumes into the same video when the root is back",
                )
            } else {
                let msg = format!(
                    "the file was deleted during its upload, after {offset} of {} bytes",
                    row.identity.size
                );
                (msg, ": not retried")
            };
            warn!(path, video_id = video_id.as_deref(), "{msg}{then}");
            j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
        }
    }
    ctx.metrics.outcome(UploadOutcome::Abandoned);
    Ok(Some(Outcome::Released))
}

/// The path the journal now holds for `row`'s file when the watcher recorded a rename of it
/// during the upload and the file is there, unchanged.
async fn renamed_to(
    ctx: &WorkerContext,
    row: &FileRow,
) -> Result<Option<std::path::PathBuf>, WorkerError> {
    let id = row.id;
    let Some(now) = j(&ctx.journal, move |j| j.get(id)).await? else {
        return Ok(None);
    };
    if now.path == row.path {
        return Ok(None);
    }
    Ok(match tokio::fs::metadata(&now.path).await {
        Ok(m) if same_content(&identity_of(&m), &row.identity) => Some(now.path),
        _ => None,
    })
}

/// The shutdown deadline stopped the request at `offset`: the journal and the log say whether a
/// first request was aborted before its last byte (no video can exist) or after it (a possible
/// orphan, reported by the next attempt), or a later chunk was cancelled (it is sent again).
pub(super) async fn stopped_at_shutdown(
    ctx: &WorkerContext,
    row: &FileRow,
    offset: u64,
    first_request: bool,
    body_sent: bool,
) -> Result<Outcome, WorkerError> {
    let id = row.id;
    let path = row.path.shown().to_string();
    let why = match (first_request, body_sent) {
        (true, false) => format!(
            "shutdown: the first request did not finish within shutdown_timeout ({} s) and was aborted before its last byte (connection reset): no video was created; it starts again on restart",
            ctx.config.shutdown_timeout.as_secs()
        ),
        (true, true) => format!(
            "shutdown: the first request's body was sent but no answer came within shutdown_timeout ({} s): api.video may hold a video (possible orphan, reported on restart)",
            ctx.config.shutdown_timeout.as_secs()
        ),
        (false, _) => format!(
            "shutdown: the chunk at byte {offset} was cancelled (connection reset); it resumes there on restart"
        ),
    };
    warn!(path, video_id = row.video_id.as_deref(), "{why}");
    j(&ctx.journal, move |j| {
        j.requeue_stopped(id, &why, body_sent)
    })
    .await?;
    Ok(Outcome::Released)
}

/// A row whose path the rules refuse now (it became a symlink, its directory did, it is one of
/// the daemon's secrets) goes `gone` with the reason instead of settling again on what the
/// path now points to. `None`: the path may be uploaded (or is missing: the caller says so).
pub(super) async fn refused(
    ctx: &WorkerContext,
    row: &FileRow,
) -> Result<Option<Outcome>, WorkerError> {
    let rules = ctx.rules.clone();
    let (root, path) = (row.root.clone(), row.path.clone());
    let check = tokio::task::spawn_blocking(move || rules.check(&root, &path)).await?;
    let Err(crate::watch::rules::Refusal::Refused(why)) = check else {
        return Ok(None);
    };
    let id = row.id;
    let msg = format!("not uploaded: {why}");
    warn!(path = %row.path.shown(), "{msg}");
    ctx.metrics.outcome(UploadOutcome::Abandoned);
    j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
    Ok(Some(Outcome::Released))
}

/// Resolves `deadline` after `shutdown` is cancelled (never, while it is not).
pub(super) async fn deadline_after(shutdown: &CancellationToken, deadline: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(deadline).await;
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".to_owned())
}

/// A local problem (I/O) while uploading: retried with backoff, reason visible.
pub(super) async fn local_failure(
    ctx: &WorkerContext,
    row: &FileRow,
    msg: String,
) -> Result<Outcome, WorkerError> {
    let id = row.id;
    let attempts = row.attempts + 1;
    let delay = match ctx.policy.decide_now(RetryClass::Transient, attempts) {
        Decision::RetryAfter(d) => d,
        _ => ctx.policy.retry_max(),
    };
    let at = SystemTime::now() + delay;
    ctx.metrics.retry(RetryKind::Local);
    warn!(path = %row.path.shown(), "{msg}; retrying in {}s", delay.as_secs());
    j(&ctx.journal, move |j| {
        j.schedule_retry(id, at, attempts, &msg, None)
    })
    .await?;
    Ok(Outcome::Retry)
}

/// Maps an api error to the journal: retry, token pause or failure.
pub(super) async fn handle_error(
    ctx: &WorkerContext,
    row: &FileRow,
    e: ApiError,
    range: Option<ChunkRange>,
) -> Result<Outcome, WorkerError> {
    let id = row.id;
    let path = row.path.shown().to_string();
    let video_id = row.video_id.clone();
    let class = match e.class() {
        ErrorClass::Transient | ErrorClass::Local => RetryClass::Transient,
        ErrorClass::RateLimited => RetryClass::RateLimited(e.retry_after()),
        // A wrong API key (401 on `POST /videos`) would fail every file the same way: pause the
        // pool like a rejected token, until SIGHUP re-reads `api.api_key_file`.
        ErrorClass::TokenRejected | ErrorClass::ApiKeyRejected => RetryClass::TokenRejected,
        ErrorClass::Permanent => RetryClass::Permanent,
    };
    let where_ = match range {
        Some(r) => format!("bytes {}-{}/{}", r.offset, r.offset + r.len - 1, r.total),
        None => "single request".to_owned(),
    };
    let slug = e.slug().map(str::to_owned);
    let msg = format!("{where_}: {e}");
    let attempts = row.attempts + 1;
    let rate_limited = matches!(class, RetryClass::RateLimited(_));
    match ctx.policy.decide_now(class, attempts) {
        Decision::RetryAfter(delay) => {
            let at = SystemTime::now() + delay;
            let counted = if rate_limited { row.attempts } else { attempts };
            ctx.metrics.retry(if rate_limited {
                RetryKind::RateLimited
            } else {
                RetryKind::Transient
            });
            warn!(path, video_id = ?video_id, "{msg}; attempt {attempts}, next in {:.1}s", delay.as_secs_f64());
            j(&ctx.journal, move |j| {
                j.schedule_retry(id, at, counted, &msg, slug.as_deref())
            })
            .await?;
            Ok(Outcome::Retry)
        }
        Decision::PauseForToken => {
            ctx.metrics.retry(RetryKind::TokenRejected);
            let api_key = e.class() == ErrorClass::ApiKeyRejected;
            let reason = e.to_string();
            let paused_now = if api_key {
                ctx.token.reject_api_key(&reason)
            } else {
                ctx.token.reject(&reason)
            };
            if paused_now {
                if api_key {
                    warn!(
                        "api.video rejected the API key ({}): uploads paused; fix api.api_key_file (or APIVIDEO_API_KEY) and send SIGHUP",
                        e.slug().unwrap_or("401")
                    );
                } else {
                    warn!(
                        "api.video rejected the upload token ({}): uploads paused until the token changes (token file rewritten or SIGHUP)",
                        e.slug().unwrap_or("401")
                    );
                }
            }
            let r = reason.clone();
            let state = if api_key {
                TokenState::ApiKeyRejected
            } else {
                TokenState::Rejected
            };
            j(&ctx.journal, move |j| {
                j.set_token_state(state, Some(&r))?;
                j.requeue(id)
            })
            .await?;
            Ok(Outcome::TokenPaused)
        }
        Decision::Fail => {
            warn!(path, video_id = ?video_id, "upload failed: {msg}");
            ctx.metrics.outcome(UploadOutcome::Failed);
            j(&ctx.journal, move |j| {
                j.mark_failed(id, &msg, slug.as_deref())
            })
            .await?;
            Ok(Outcome::Failed)
        }
    }
}
