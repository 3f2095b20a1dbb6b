//! The requests of one upload attempt: [`first_request`] (no `videoId` yet: window W3), then
//! [`send_all`] chunk by chunk, each acknowledged offset committed before the next chunk is read
//! (W4), or, with `upload.lanes_per_file` > 1, in parallel lanes ([`super::lanes`]).
//!
//! A 400 `…-bytes-range-overlap` for the chunk at the committed offset means the service already
//! has it (the response was lost): advance. A 400 `video-source-already-uploaded` for the
//! completing chunk means the video is complete.

use crate::escape::Show as _;
use std::ops::ControlFlow::{Break, Continue};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::{self, ApiError, BodyObserver, ChunkRange, ErrorClass, UploadRequest};
use crate::journal::TokenState;
use crate::upload::phases::{Attempt, Phase};
use crate::upload::tap::{Tap, extend_hash};
use crate::upload::verdict::{
    deadline_after, file_left, file_name, handle_error, local_failure, released_by_watcher,
    still_ours, stopped_at_shutdown,
};
use crate::upload::worker::{Outcome, WorkerContext, WorkerError, j};

/// What one request came to.
pub(super) enum Sent {
    /// Acknowledged by the service; for a first request its `videoId` is committed already.
    Acked,
    /// The service already had this chunk (400 overlap for it): nothing more to send for it.
    AlreadyHad,
    /// The completing chunk was stored before (400 already uploaded): the video is complete.
    AlreadyComplete,
    /// Refused or failed: the caller decides (retry, pause, failure).
    Failed(ApiError),
    /// The attempt ended here (shutdown deadline, the watcher took the row back).
    Stop(Outcome),
}

/// Sends chunks from the committed offset to the end (or the whole file in one request),
/// committing each acknowledged offset. `Continue`: every byte is acknowledged.
pub(super) async fn send_all(
    ctx: &WorkerContext,
    a: &mut Attempt,
    tap: &Arc<Tap>,
    shutdown: &CancellationToken,
) -> Phase<()> {
    let (id, total) = (a.row.id, a.total);
    let single = a.single();
    let start = a.row.bytes_uploaded;
    let mut offset = start;
    // Ranges acknowledged beyond the prefix (lanes before a restart) are never sent again, even
    // with `lanes_per_file` now 1: the lanes path sends exactly the missing chunks.
    let ranges = a.row.video_id.is_some()
        && !single
        && !j(&ctx.journal, move |j| j.acked_ranges(id))
            .await?
            .is_empty();
    loop {
        if offset >= total && !(single && offset == 0) {
            return Ok(Continue(()));
        }
        if shutdown.is_cancelled() {
            // Stopping: the acknowledged chunks are committed; the next one waits for a restart.
            info!(path = %a.row.path.shown(), video_id = a.row.video_id.as_deref(), offset, "stopping between chunks; resumes here on restart");
            j(&ctx.journal, move |j| j.requeue(id)).await?;
            return Ok(Break(Outcome::Released));
        }
        // The chunks read the handle opened up front, so a file deleted, moved away or replaced
        // since the previous chunk is noticed here, by its path (as a fresh open would).
        if offset > start
            && let Some(outcome) = file_left(ctx, &a.row, offset).await?
        {
            return Ok(Break(outcome));
        }
        if a.row.video_id.is_some() && (ranges || super::lanes::wanted(ctx, a)) {
            return super::lanes::send_rest(ctx, a, tap, offset, shutdown).await;
        }
        let len = match a.row.video_id {
            None => super::lanes::first_len(ctx, a),
            Some(_) => a.chunk_size,
        };
        let range = (!single).then(|| api::chunk_at(offset, total, len));
        let len = range.map(|r| r.len).unwrap_or(total);
        // The hash streams on from the offset: it must cover everything before it (a prefix
        // left to the lanes' tree, `lanes::hashes_prefix`, is read from disk here if needed).
        if tap.0.bytes_hashed() < offset
            && let Err(e) = extend_hash(tap, &a.file, &a.row.path, offset).await
        {
            let msg = format!("reading {}: {e}", a.row.path.shown());
            return Ok(Break(local_failure(ctx, &a.row, msg).await?));
        }
        let snapshot = tap.0.snapshot();
        let sent = if a.row.video_id.is_none() {
            first_request(ctx, a, tap, range, shutdown).await?
        } else {
            send_request(ctx, &ctx.client, a, tap, None, range, shutdown).await?
        };
        match sent {
            Sent::Acked => {
                offset += len;
                ctx.metrics.uploaded(len);
                fail::fail_point!("after-chunk-before-commit");
                // Also resets the attempt counter: progress was made.
                j(&ctx.journal, move |j| j.commit_offset(id, offset)).await?;
                a.row.attempts = 0;
                if single {
                    return Ok(Continue(()));
                }
            }
            Sent::AlreadyHad => {
                // A response lost before a crash or a reset: hash the chunk from disk, advance.
                info!(path = %a.row.path.shown(), video_id = a.row.video_id.as_deref(), from = offset, "chunk already stored by api.video: advancing");
                tap.0.restore(snapshot);
                if let Err(e) = extend_hash(tap, &a.file, &a.row.path, offset + len).await {
                    let msg = format!("reading {}: {e}", a.row.path.shown());
                    return Ok(Break(local_failure(ctx, &a.row, msg).await?));
                }
                offset += len;
                j(&ctx.journal, move |j| j.commit_offset(id, offset)).await?;
            }
            Sent::AlreadyComplete => {
                tap.0.restore(snapshot);
                if let Err(e) = extend_hash(tap, &a.file, &a.row.path, total).await {
                    let msg = format!("reading {}: {e}", a.row.path.shown());
                    return Ok(Break(local_failure(ctx, &a.row, msg).await?));
                }
                j(&ctx.journal, move |j| j.commit_offset(id, total)).await?;
                return Ok(Continue(()));
            }
            Sent::Failed(e) => {
                tap.0.restore(snapshot);
                if e.class() == ErrorClass::Local
                    && let Some(outcome) = file_left(ctx, &a.row, offset).await?
                {
                    return Ok(Break(outcome));
                }
                return Ok(Break(handle_error(ctx, &a.row, e, range).await?));
            }
            Sent::Stop(outcome) => return Ok(Break(outcome)),
        }
    }
}

/// The first request (no `videoId`): marked in flight before it is sent, so a crash before its
/// `videoId` is committed is reported as a possible orphan; the `videoId` of its answer is
/// committed before anything else is sent. A request that failed before it could create a video
/// clears the mark (no false orphan).
pub(super) async fn first_request(
    ctx: &WorkerContext,
    a: &mut Attempt,
    tap: &Arc<Tap>,
    range: Option<ChunkRange>,
    shutdown: &CancellationToken,
) -> Result<Sent, WorkerError> {
    let id = a.row.id;
    j(&ctx.journal, move |j| j.mark_first_chunk_in_flight(id)).await?;
    // On a connection pool of its own (a lane client), so that the body can tell when the
    // endpoint has read it and hold its last bytes until then (api::drain). A client that cannot
    // be built falls back to the shared pool, without that wait.
    let lane = ctx.client.lane();
    let client = lane.as_deref().unwrap_or(&ctx.client);
    let (sent, video_id) = request(ctx, client, a, tap, None, range, shutdown).await?;
    drop(lane);
    match (&sent, video_id) {
        (Sent::Acked, Some(v)) => {
            fail::fail_point!("after-first-chunk-before-commit");
            let vid = v.clone();
            j(&ctx.journal, move |j| j.commit_video_id(id, &vid)).await?;
            info!(path = %a.row.path.shown(), video_id = v.as_str(), "upload started");
            a.row.video_id = Some(v);
        }
        (Sent::Failed(e), _) if e.created_nothing() || !tap.1.sent() => {
            // DNS or connect failure, a 4xx answer (turned down), or a body whose last byte never
            // left (the connection closed with a RST): no video can exist, so no possible orphan.
            j(&ctx.journal, move |j| j.clear_first_chunk_in_flight(id)).await?;
        }
        _ => {}
    }
    Ok(sent)
}

/// One request carrying the `videoId` (a chunk after the first), through `client`; its body
/// watched by `observer` (a lane's), else by the file's `tap`.
pub(super) async fn send_request(
    ctx: &WorkerContext,
    client: &api::Client,
    a: &Attempt,
    tap: &Arc<Tap>,
    observer: Option<Arc<dyn BodyObserver>>,
    range: Option<ChunkRange>,
    shutdown: &CancellationToken,
) -> Result<Sent, WorkerError> {
    Ok(request(ctx, client, a, tap, observer, range, shutdown)
        .await?
        .0)
}

/// Sends one request and sorts its answer; with it the `videoId` the service answered.
async fn request(
    ctx: &WorkerContext,
    client: &api::Client,
    a: &Attempt,
    tap: &Arc<Tap>,
    observer: Option<Arc<dyn BodyObserver>>,
    range: Option<ChunkRange>,
    shutdown: &CancellationToken,
) -> Result<(Sent, Option<String>), WorkerError> {
    let row = &a.row;
    let offset = range.map(|r| r.offset).unwrap_or(0);
    let len = range.map(|r| r.len).unwrap_or(a.total);
    let first_request = row.video_id.is_none();
    tap.1.arm(first_request);
    let req = UploadRequest {
        path: row.path.clone(),
        file_name: file_name(&row.path),
        range,
        whole_len: Some(a.total),
        video_id: row.video_id.clone(),
        observer: Some(observer.unwrap_or_else(|| tap.clone() as Arc<dyn BodyObserver>)),
        file: Some(a.file.clone()),
    };
    fail::fail_point!("before-send");
    let token = ctx.token.current();
    // On shutdown a first request may finish within `shutdown_timeout` (losing it may cost an
    // orphan video); any other chunk is cancelled at once (it costs at most that chunk).
    let grace = if first_request {
        ctx.config.shutdown_timeout
    } else {
        Duration::ZERO
    };
    let sent = tokio::select! {
        r = client.upload(&token, req) => r,
        _ = deadline_after(shutdown, grace) => {
            tap.1.arm(false);
            let out = stopped_at_shutdown(ctx, row, offset, first_request, tap.1.sent()).await?;
            return Ok((Sent::Stop(out), None));
        }
    };
    tap.1.arm(false);
    let e = match sent {
        Ok(resp) => {
            if matches!(
                ctx.token.state(),
                crate::upload::token::TokenState::Unknown
                    | crate::upload::token::TokenState::Rejected { .. }
            ) {
                // Mirror the recovery at once (a pause was written to the journal at once too),
                // so `status` never shows a stale "rejected" while uploads run.
                ctx.token.accepted();
                j(&ctx.journal, |j| j.set_token_state(TokenState::Ok, None)).await?;
            }
            if !still_ours(ctx, row).await? {
                let out = released_by_watcher(row, Some(&resp.video_id));
                return Ok((Sent::Stop(out), None));
            }
            return Ok((Sent::Acked, Some(resp.video_id)));
        }
        Err(e) => e,
    };
    let had = if e.slug() == Some("video-content-range-by-bytes-range-overlap") && range.is_some() {
        Sent::AlreadyHad
    } else if e.slug() == Some("video-source-already-uploaded")
        && row.video_id.is_some()
        && offset + len >= a.total
    {
        Sent::AlreadyComplete
    } else {
        return Ok((Sent::Failed(e), None));
    };
    if !still_ours(ctx, row).await? {
        return Ok((Sent::Stop(released_by_watcher(row, None)), None));
    }
    Ok((had, None))
}
