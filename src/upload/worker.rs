//! One upload worker: claims a queued file from the journal and uploads it, committing progress
//! after every acknowledged request so that a crash costs at most one chunk.
//!
//! Commit order for one file (DESIGN §2–§3):
//! 1. claim (`queued → uploading`, one transaction); the chunk size is stored on first start;
//! 2. the file's identity is checked against the row (a changed file abandons its old video);
//! 3. with an API key and no `videoId` yet: `POST /videos`, commit `videoId` (no orphan window);
//! 4. without one: mark "first chunk in flight", send chunk 1, commit `videoId` (window W3);
//! 5. each chunk: send, then commit the acknowledged offset before reading the next (W4);
//!    a 400 `…-bytes-range-overlap` for the chunk at the committed offset means the service
//!    already has it (the response was lost): advance;
//! 6. re-stat: unchanged → `done` with the SHA-256 receipt (W5); changed → back to settling;
//! 7. the `after_upload` action runs only after `done` is committed (W6).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{self, ApiError, BodyObserver, ChunkRange, ErrorClass, UploadRequest};
use crate::config::UploadConfig;
use crate::journal::{FileIdentity, FileRow, Journal, JournalError, TokenState};
use crate::upload::after;
use crate::upload::backoff::{Decision, RetryClass, RetryPolicy};
use crate::upload::board::Board;
use crate::upload::container::{self, Moment};
use crate::upload::events::{RetryKind, UploadEvents, UploadOutcome};
use crate::upload::hash::{self, ContentHasher};
use crate::upload::pause::JournalPause;
use crate::upload::progress::{Progress, UploadTap};
use crate::upload::rate::RateLimit;
use crate::upload::token::TokenGate;

/// Everything a worker needs; shared by all workers of a pool.
#[derive(Clone)]
pub struct WorkerContext {
    pub journal: Journal,
    /// Client used with the upload token.
    pub client: api::Client,
    /// Client with the API key, when one is configured: videos are created first.
    pub api_key_client: Option<api::Client>,
    pub token: TokenGate,
    pub config: Arc<UploadConfig>,
    /// `upload.max_rate`; replaced on reload, read when a file starts.
    pub rate: Arc<std::sync::RwLock<RateLimit>>,
    pub board: Board,
    pub policy: Arc<RetryPolicy>,
    /// Watch-root title templates, tags and metadata, by root path.
    pub video_meta: Arc<dyn Fn(&FileRow) -> VideoMeta + Send + Sync>,
    /// Where bytes uploaded, outcomes and retries are reported (the daemon's Prometheus counters).
    pub metrics: Arc<dyn UploadEvents>,
    /// The watch roots: `after_upload` applies only to files recorded under one of them.
    pub watch_roots: Arc<Vec<std::path::PathBuf>>,
    /// What is never uploaded (the daemon's secrets, paths through links against the rules).
    pub rules: Arc<crate::watch::rules::Rules>,
    /// Roots with `check_container = true`: their files are re-checked (`upload::container`).
    pub container_roots: Arc<Vec<std::path::PathBuf>>,
}

/// What a video created with the API key is given.
#[derive(Debug, Clone, Default)]
pub struct VideoMeta {
    pub title: String,
    pub tags: Vec<String>,
    pub metadata: Vec<(String, String)>,
}

/// How one upload attempt ended.
#[derive(Debug)]
pub enum Outcome {
    Done {
        video_id: String,
    },
    /// Scheduled for a later attempt (recorded in the journal).
    Retry,
    /// Token rejected: the row went back to the queue, the pool is paused.
    TokenPaused,
    Failed,
    /// The file changed, vanished or the shutdown deadline hit; the journal says which.
    Released,
}

/// Errors inside a worker that are not the upload's own (the journal failing).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("a journal task panicked or was cancelled: {0}")]
    Join(#[from] tokio::task::JoinError),
}

tokio::task_local! {
    /// The daemon's shutdown token, while a worker of the pool uploads a file: journal calls
    /// then wait out a full or read-only journal instead of failing (see [`j`]).
    static WAIT_OUT_STORAGE: CancellationToken;
}

/// Runs a blocking journal call off the async runtime.
///
/// In a pool worker, a storage failure (full disk, read-only file system) is waited out: the
/// call is tried again with back-off until it commits or the daemon stops. A worker holding an
/// acknowledged `videoId` or offset must record it, not hand the file back: handed back, a
/// single-request file would be sent again as a second video.
pub(super) async fn j<T, F>(journal: &Journal, f: F) -> Result<T, WorkerError>
where
    T: Send + 'static,
    F: Fn(&Journal) -> Result<T, JournalError> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut pause = JournalPause::default();
    loop {
        let (journal, call) = (journal.clone(), f.clone());
        let e = match tokio::task::spawn_blocking(move || call(&journal)).await? {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Ok(stop) = WAIT_OUT_STORAGE.try_with(CancellationToken::clone) else {
            return Err(e.into());
        };
        if crate::journal::health::storage_reason(&e).is_none() || stop.is_cancelled() {
            return Err(e.into());
        }
        let e = WorkerError::Journal(e);
        if !pause.wait(0, None, &e, &stop).await {
            return Err(e);
        }
    }
}

fn identity_of(meta: &std::fs::Metadata) -> FileIdentity {
    FileIdentity::from_metadata(meta)
}

/// Same content as far as we can tell without reading it (ctime changes on rename).
fn same_content(a: &FileIdentity, b: &FileIdentity) -> bool {
    a.same_content(b)
}

/// The longest an idle worker sleeps without being woken: a safety net only. Work queued by this
/// process wakes the workers through [`Journal::work_signal`], work queued by another process
/// (`ingestd retry`, `ingestd upload`) through the pool's `PRAGMA data_version` check, and a
/// retry's time is known in advance ([`Journal::next_due`]).
pub const IDLE_MAX: Duration = Duration::from_secs(60);

/// How long an idle worker sleeps when nothing is due at `now`: until the next queued row is due
/// (`next_due`), at most [`IDLE_MAX`]. Zero when a row is due already.
pub fn idle_nap(next_due: Option<SystemTime>, now: SystemTime) -> Duration {
    match next_due {
        Some(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(IDLE_MAX),
        None => IDLE_MAX,
    }
}

/// The worker loop: claim, upload, repeat, until `shutdown`.
///
/// When nothing is due it sleeps until the next queued row is due or `wake` is notified (new
/// work), never polling the journal on a timer.
///
/// `retire` stops claiming new files (a child of `shutdown`, also cancelled by a pool resize);
/// `shutdown` starts the deadline for the request in flight.
pub async fn run_worker(
    n: usize,
    contexts: tokio::sync::watch::Receiver<WorkerContext>,
    retire: CancellationToken,
    shutdown: CancellationToken,
    wake: Arc<tokio::sync::Notify>,
) -> Result<(), WorkerError> {
    let mut pause = JournalPause::default();
    loop {
        if retire.is_cancelled() {
            return Ok(());
        }
        // The gate is the same in every context; wait on it before taking the current context
        // (replaced on SIGHUP, e.g. with a fixed API key), which this file then keeps.
        let gate = contexts.borrow().token.clone();
        if !gate.wait_usable(&retire).await {
            return Ok(());
        }
        let ctx = contexts.borrow().clone();
        // Registered before looking, so a wake-up between the look and the sleep is not lost.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // One read per idle wake-up: when is the next row due? Claim (a write) only if one is.
        let due = match j(&ctx.journal, |j| j.next_due()).await {
            Ok(due) => due,
            Err(e) => {
                if !pause.wait(n, None, &e, &retire).await {
                    return Ok(());
                }
                continue;
            }
        };
        let nap = idle_nap(due, SystemTime::now());
        if !nap.is_zero() {
            pause.ok();
            tokio::select! {
                _ = retire.cancelled() => return Ok(()),
                _ = woken => {}
                _ = tokio::time::sleep(nap) => {}
            }
            continue;
        }
        let row = match j(&ctx.journal, |j| j.claim_next(SystemTime::now())).await {
            Ok(row) => row,
            Err(e) => {
                if !pause.wait(n, None, &e, &retire).await {
                    return Ok(());
                }
                continue;
            }
        };
        let Some(row) = row else {
            continue; // another worker (or process) took it
        };
        pause.ok();
        tracing::debug!(worker = n, id = row.id, path = %row.path.display(), "claimed");
        fail::fail_point!("after-claim"); // W2: journaled and claimed, no byte sent
        fail::fail_point!("worker-panic", |_| panic!(
            "injected panic in upload worker {n}"
        ));
        let (path, id) = (row.path.clone(), row.id);
        match WAIT_OUT_STORAGE
            .scope(shutdown.clone(), upload_file(&ctx, row, &shutdown))
            .await
        {
            Ok(_) => {}
            Err(WorkerError::Journal(crate::journal::JournalError::WrongState {
                id,
                state,
                ..
            })) => {
                // The watcher moved the row on (the file changed or vanished while uploading);
                // the journal already recorded the abandoned videoId.
                info!(path = %path.display(), id, state = state.as_str(), "upload dropped: the file changed while it was uploading");
            }
            Err(e) => {
                // The journal failing (disk full, read-only): never die, never spin. Back off,
                // then hand the row back to the queue (its progress kept) once writes work.
                if !pause.wait(n, Some(&path), &e, &retire).await {
                    return Ok(());
                }
                loop {
                    match j(&ctx.journal, move |j| j.requeue(id)).await {
                        Ok(_) => break,
                        // Moved on meanwhile (not ours any more): nothing to hand back.
                        Err(WorkerError::Journal(
                            JournalError::WrongState { .. } | JournalError::NotFound { .. },
                        )) => break,
                        Err(e) => {
                            if !pause.wait(n, Some(&path), &e, &retire).await {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Uploads one claimed row to the end or to the next decision point.
pub async fn upload_file(
    ctx: &WorkerContext,
    mut row: FileRow,
    shutdown: &CancellationToken,
) -> Result<Outcome, WorkerError> {
    let id = row.id;
    let path = row.path.clone();

    // 2. the rules (a path that turned into a symlink, a secret), then the identity check.
    if let Some(outcome) = refused(ctx, &row).await? {
        return Ok(outcome);
    }
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) => m,
        Err(e) => {
            let msg = match row.bytes_uploaded {
                0 => format!("file vanished before upload: {e}"),
                n => format!("file vanished during its upload, after {n} bytes: {e}"),
            };
            warn!(path = %path.display(), "{msg}");
            ctx.metrics.outcome(UploadOutcome::Abandoned);
            j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
            return Ok(Outcome::Released);
        }
    };
    let now_identity = identity_of(&meta);
    if !same_content(&now_identity, &row.identity) {
        let reason = "the file changed since it was queued".to_owned();
        if let Some(video_id) = row.video_id.clone() {
            warn!(path = %path.display(), video_id, "file changed since its upload started: abandoning the partial video, starting over");
        }
        tracing::debug!("{reason}");
        ctx.metrics.outcome(UploadOutcome::Abandoned);
        j(&ctx.journal, move |j| {
            j.reset_for_new_video(id, &now_identity)
        })
        .await?;
        return Ok(Outcome::Released);
    }

    // 1b. chunk size is fixed per file at the start of its upload.
    let chunk_size = match row.chunk_size {
        Some(c) => c,
        None => {
            let c = ctx.config.chunk_size;
            j(&ctx.journal, move |j| j.start_upload(id, c)).await?;
            row.chunk_size = Some(c);
            c
        }
    };
    let total = row.identity.size;

    if row.possible_orphan() {
        let note = format!(
            "the first request of {} got no answer (ingestd stopped, or the answer was lost): api.video may hold a video titled {:?} that ingestd cannot name (possible orphan); the file is uploaded again as a new video — set [api] api_key_file to close this window",
            path.display(),
            file_name(&path)
        );
        warn!(path = %path.display(), "{note}");
        j(&ctx.journal, move |j| j.record_orphan(id, &note)).await?;
    }

    if row.bytes_uploaded == 0
        && let Some(out) = container::recheck(ctx, &row, Moment::BeforeFirstRequest).await?
    {
        return Ok(out);
    }

    // A file that cannot be opened (permissions) is reported before any request, so it never
    // leaves a possible orphan nor an empty video; it is retried until it becomes readable. The
    // handle opened here is the one every chunk of this attempt reads.
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => api::OpenFile::from(f.into_std().await),
        Err(e) => {
            let msg = format!(
                "cannot read {}: {e}; {}",
                path.display(),
                api::open_hint(&e)
            );
            return local_failure(ctx, &row, msg).await;
        }
    };

    // 2b. a file the journal may have lost (new or pruned journal): adopted if already there.
    if let Some(out) = crate::upload::adopt::before_first_request(ctx, &mut row, &file).await? {
        return Ok(out);
    }

    // 3. with an API key, create the video first.
    if row.video_id.is_none()
        && let Some(keyed) = &ctx.api_key_client
    {
        let meta = (ctx.video_meta)(&row);
        let creation = api::VideoCreation {
            title: meta.title,
            tags: meta.tags,
            metadata: meta
                .metadata
                .into_iter()
                .map(|(key, value)| api::Metadata { key, value })
                .collect(),
            ..Default::default()
        };
        match keyed.create_video(&creation).await {
            Ok(video) => {
                let vid = video.video_id.clone();
                info!(path = %path.display(), video_id = vid.as_str(), "created video with the API key");
                let v = vid.clone();
                j(&ctx.journal, move |j| j.commit_video_id(id, &v)).await?;
                row.video_id = Some(vid);
            }
            Err(e) => return handle_error(ctx, &row, e, None).await,
        }
    }

    if total == 0 {
        // api.video refuses empty files (400 uploaded-file-empty); the watcher never queues one.
        ctx.metrics.outcome(UploadOutcome::Failed);
        j(&ctx.journal, move |j| {
            j.mark_failed(
                id,
                "the file is empty: api.video refuses empty files",
                Some("uploaded-file-empty"),
            )
        })
        .await?;
        return Ok(Outcome::Failed);
    }

    // Hash what was already sent (resume), then stream the rest through the hasher.
    let hasher = if row.bytes_uploaded > 0 {
        let mut h = ContentHasher::new(ctx.config.hash);
        match extend_through(&mut h, &file, &path, row.bytes_uploaded).await {
            Ok(()) => h,
            Err(e) => {
                return local_failure(ctx, &row, format!("reading {}: {e}", path.display())).await;
            }
        }
    } else {
        ContentHasher::new(ctx.config.hash)
    };
    let progress = Progress::new(row.bytes_uploaded);
    let rate = match ctx.rate.read() {
        Ok(r) => r.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let tap = Arc::new(Tap(
        UploadTap::new(rate, hasher, progress.clone()),
        FirstBody::new(ctx.journal.clone(), id),
    ));

    let single = total <= chunk_size;
    let mut offset = row.bytes_uploaded;
    let _on_board = ctx.board.start(id, &path, total, progress);
    let result = loop {
        if offset >= total && !(single && offset == 0) {
            break None;
        }
        if shutdown.is_cancelled() {
            // Stopping: the acknowledged chunks are committed; the next one waits for a restart.
            info!(path = %path.display(), video_id = row.video_id.as_deref(), offset, "stopping between chunks; resumes here on restart");
            j(&ctx.journal, move |j| j.requeue(id)).await?;
            return Ok(Outcome::Released);
        }
        // The chunks read the handle opened above, so a file deleted, moved away or replaced
        // since the previous chunk is noticed here, by its path (as a fresh open would).
        if offset > row.bytes_uploaded
            && let Some(outcome) = file_left(ctx, &row, offset).await?
        {
            break Some(outcome);
        }
        let range = if single {
            None
        } else {
            Some(api::chunk_at(offset, total, chunk_size))
        };
        let len = range.map(|r| r.len).unwrap_or(total);
        let first_request = row.video_id.is_none();
        if first_request {
            j(&ctx.journal, move |j| j.mark_first_chunk_in_flight(id)).await?;
        }
        let snapshot = tap.0.snapshot();
        tap.1.arm(first_request);
        let req = UploadRequest {
            path: path.clone(),
            file_name: file_name(&path),
            range,
            whole_len: Some(total),
            video_id: row.video_id.clone(),
            observer: Some(tap.clone() as Arc<dyn BodyObserver>),
            file: Some(file.clone()),
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
            r = ctx.client.upload(&token, req) => r,
            _ = deadline_after(shutdown, grace) => {
                tap.1.arm(false);
                return stopped_at_shutdown(ctx, &row, offset, first_request, tap.1.sent()).await;
            }
        };
        tap.1.arm(false);
        match sent {
            Ok(resp) => {
                if matches!(
                    ctx.token.state(),
                    crate::upload::token::TokenState::Unknown
                        | crate::upload::token::TokenState::Rejected { .. }
                ) {
                    // Mirror the recovery at once (a pause was written to the journal at once
                    // too), so `status` never shows a stale "rejected" while uploads run.
                    ctx.token.accepted();
                    j(&ctx.journal, |j| j.set_token_state(TokenState::Ok, None)).await?;
                }
                if !still_ours(ctx, &row).await? {
                    return Ok(released_by_watcher(&row, Some(&resp.video_id)));
                }
                if first_request {
                    let v = resp.video_id.clone();
                    fail::fail_point!("after-first-chunk-before-commit");
                    j(&ctx.journal, move |j| j.commit_video_id(id, &v)).await?;
                    info!(path = %path.display(), video_id = resp.video_id.as_str(), "upload started");
                    row.video_id = Some(resp.video_id.clone());
                }
                offset += len;
                ctx.metrics.uploaded(len);
                fail::fail_point!("after-chunk-before-commit");
                // Also resets the attempt counter: progress was made.
                j(&ctx.journal, move |j| j.commit_offset(id, offset)).await?;
                row.attempts = 0;
                if single {
                    break None;
                }
            }
            Err(e)
                if e.slug() == Some("video-content-range-by-bytes-range-overlap")
                    && range.is_some() =>
            {
                // The service already has exactly this chunk (a response lost before a crash or
                // a reset): hash it from disk and advance.
                let Some(r) = range else { break None };
                info!(path = %path.display(), video_id = row.video_id.as_deref(), from = r.offset, "chunk already stored by api.video: advancing");
                tap.0.restore(snapshot);
                if !still_ours(ctx, &row).await? {
                    return Ok(released_by_watcher(&row, None));
                }
                if let Err(e) = extend_hash(&tap, &file, &path, r.offset + r.len).await {
                    break Some(
                        local_failure(ctx, &row, format!("reading {}: {e}", path.display()))
                            .await?,
                    );
                }
                offset += len;
                j(&ctx.journal, move |j| j.commit_offset(id, offset)).await?;
            }
            Err(e)
                if e.slug() == Some("video-source-already-uploaded")
                    && row.video_id.is_some()
                    && offset + len >= total =>
            {
                // The completing chunk was stored before a crash; the video is complete.
                tap.0.restore(snapshot);
                if !still_ours(ctx, &row).await? {
                    return Ok(released_by_watcher(&row, None));
                }
                if let Err(e) = extend_hash(&tap, &file, &path, total).await {
                    break Some(
                        local_failure(ctx, &row, format!("reading {}: {e}", path.display()))
                            .await?,
                    );
                }
                offset = total;
                j(&ctx.journal, move |j| j.commit_offset(id, offset)).await?;
                break None;
            }
            Err(e) => {
                tap.0.restore(snapshot);
                if first_request && (e.created_nothing() || !tap.1.sent()) {
                    // DNS or connect failure, a 4xx answer (turned down), or a body whose last
                    // byte never left (the connection closed with a RST): no video can exist,
                    // so no possible orphan.
                    j(&ctx.journal, move |j| j.clear_first_chunk_in_flight(id)).await?;
                }
                if e.class() == ErrorClass::Local
                    && let Some(outcome) = file_left(ctx, &row, offset).await?
                {
                    break Some(outcome);
                }
                break Some(handle_error(ctx, &row, e, range).await?);
            }
        }
    };
    drop(file); // every byte is sent: the after_upload action may move or delete the file
    if let Some(outcome) = result {
        return Ok(outcome);
    }

    // 6. re-stat: the file must be unchanged to be done.
    if !still_ours(ctx, &row).await? {
        return Ok(released_by_watcher(&row, None));
    }
    let video_id = row.video_id.clone().unwrap_or_default();
    let after_identity = tokio::fs::metadata(&path).await.map(|m| identity_of(&m));
    match after_identity {
        Ok(ident) if same_content(&ident, &row.identity) => {}
        Ok(ident) => {
            warn!(path = %path.display(), video_id, "the file changed during its upload: not done; it settles again and uploads as a new video");
            ctx.metrics.outcome(UploadOutcome::Abandoned);
            j(&ctx.journal, move |j| j.reset_for_new_video(id, &ident)).await?;
            return Ok(Outcome::Released);
        }
        Err(e) => {
            let msg = format!("file vanished during its upload: {e}");
            warn!(path = %path.display(), video_id, "{msg}");
            ctx.metrics.outcome(UploadOutcome::Abandoned);
            j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
            return Ok(Outcome::Released);
        }
    }
    if let Some(out) = container::recheck(ctx, &row, Moment::AfterLastChunk).await? {
        return Ok(out);
    }
    let receipt = tap.0.receipt();
    if let Some(out) =
        crate::upload::adopt::tag_after_upload(ctx, &row, &video_id, &receipt).await?
    {
        return Ok(out);
    }
    let (v, s) = (video_id.clone(), receipt.clone());
    fail::fail_point!("before-done-commit");
    j(&ctx.journal, move |j| j.mark_done(id, &s, &v)).await?;
    ctx.metrics.outcome(UploadOutcome::Done);
    info!(path = %path.display(), video_id, hash = %receipt, bytes = total, "uploaded");

    // 7. after_upload, only now.
    fail::fail_point!("before-after-upload");
    let root = row.root.clone();
    let action = after::action_for(&ctx.config.after_upload, &ctx.watch_roots, &root);
    let p = path.clone();
    let outcome = after::apply_async(action, root, p).await;
    let text = outcome.message();
    if !outcome.is_success() {
        warn!(path = %path.display(), video_id, "{text}");
    }
    let failed = !outcome.is_success();
    j(&ctx.journal, move |j| {
        j.record_after_upload(id, &text, failed)
    })
    .await?;
    Ok(Outcome::Done { video_id })
}

/// Whether the journal row is still this upload: `uploading`, same content identity, same
/// `videoId`. When the watcher sees the file change it takes the row back (→ `settling`, the
/// started video recorded as abandoned) and may queue it again for another worker of this same
/// process, whose claim the journal cannot tell apart from ours: committing on would write this
/// upload's progress onto that one. Checked before every commit; the window between the check and
/// the commit is a few microseconds, against a chunk's seconds.
async fn still_ours(ctx: &WorkerContext, row: &FileRow) -> Result<bool, WorkerError> {
    let id = row.id;
    let now = j(&ctx.journal, move |j| j.get(id)).await?;
    Ok(now.is_some_and(|r| {
        r.state == crate::journal::FileState::Uploading
            && r.video_id == row.video_id
            && same_content(&r.identity, &row.identity)
    }))
}

/// The watcher took the row back while this upload ran (the file changed): stop, touch nothing.
fn released_by_watcher(row: &FileRow, new_video: Option<&str>) -> Outcome {
    warn!(
        path = %row.path.display(),
        video_id = row.video_id.as_deref().or(new_video),
        "the file changed during its upload: this upload stops (the journal recorded the started video as abandoned); the file settles again and uploads as a new video"
    );
    Outcome::Released
}

/// After a local error mid-upload at `offset` (file truncated, unreadable, missing): if the file
/// was deleted or changed, that is the answer, not a retry. Deleted → `gone` (its video recorded
/// as abandoned); changed → back to settling, uploaded again as a new video once stable. `None`:
/// the file is still the one being uploaded (retry as usual).
async fn file_left(
    ctx: &WorkerContext,
    row: &FileRow,
    offset: u64,
) -> Result<Option<Outcome>, WorkerError> {
    let id = row.id;
    let path = row.path.display().to_string();
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
            to.display()
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
            let msg = format!(
                "the file was deleted during its upload, after {offset} of {} bytes",
                row.identity.size
            );
            warn!(path, video_id = video_id.as_deref(), "{msg}: not retried");
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
async fn stopped_at_shutdown(
    ctx: &WorkerContext,
    row: &FileRow,
    offset: u64,
    first_request: bool,
    body_sent: bool,
) -> Result<Outcome, WorkerError> {
    let id = row.id;
    let path = row.path.display().to_string();
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
async fn refused(ctx: &WorkerContext, row: &FileRow) -> Result<Option<Outcome>, WorkerError> {
    let rules = ctx.rules.clone();
    let (root, path) = (row.root.clone(), row.path.clone());
    let check = tokio::task::spawn_blocking(move || rules.check(&root, &path)).await?;
    let Err(crate::watch::rules::Refusal::Refused(why)) = check else {
        return Ok(None);
    };
    let id = row.id;
    let msg = format!("not uploaded: {why}");
    warn!(path = %row.path.display(), "{msg}");
    ctx.metrics.outcome(UploadOutcome::Abandoned);
    j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
    Ok(Some(Outcome::Released))
}

/// Resolves `deadline` after `shutdown` is cancelled (never, while it is not).
async fn deadline_after(shutdown: &CancellationToken, deadline: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(deadline).await;
}

fn file_name(path: &Path) -> String {
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
    warn!(path = %row.path.display(), "{msg}; retrying in {}s", delay.as_secs());
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
    let path = row.path.display().to_string();
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

/// Extends the tap's hash from disk up to `end` (a chunk the service already had).
async fn extend_hash(
    tap: &Arc<Tap>,
    file: &api::OpenFile,
    path: &Path,
    end: u64,
) -> Result<(), hash::HashError> {
    let mut h = tap.0.hasher();
    extend_through(&mut h, file, path, end).await?;
    tap.0.replace(h);
    Ok(())
}

/// Extends `hasher` up to `end` through the upload's held handle, off the async runtime.
async fn extend_through(
    hasher: &mut ContentHasher,
    file: &api::OpenFile,
    path: &Path,
    end: u64,
) -> Result<(), hash::HashError> {
    let (mut h, file, p) = (hasher.clone(), file.clone(), path.to_owned());
    let h =
        tokio::task::spawn_blocking(move || h.extend_from_open(file.file(), &p, end).map(|_| h))
            .await
            .map_err(|e| hash::HashError::Join(e.to_string()))??;
    *hasher = h;
    Ok(())
}

/// The api client's body observer: rate limit, SHA-256 and progress for one file, and the first
/// request's "body fully handed over" mark.
struct Tap(UploadTap, FirstBody);

/// Tracks whether the first request's (no `videoId`) last body byte left: committed to the
/// journal just before the last piece goes, so a kill after it is reported as a possible orphan
/// and a kill before it is not (the connection resets; the body never completes).
struct FirstBody {
    journal: Journal,
    id: i64,
    /// A first request is in flight.
    armed: std::sync::atomic::AtomicBool,
    /// Its last piece was handed over (after the journal recorded it).
    sent: Arc<std::sync::atomic::AtomicBool>,
}

impl FirstBody {
    fn new(journal: Journal, id: i64) -> FirstBody {
        FirstBody {
            journal,
            id,
            armed: Default::default(),
            sent: Default::default(),
        }
    }

    /// Before each request: `first` when it carries no `videoId`; after it: `false`.
    fn arm(&self, first: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        if first {
            self.sent.store(false, SeqCst);
        }
        self.armed.store(first, SeqCst);
    }

    fn sent(&self) -> bool {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl BodyObserver for Tap {
    fn before_send(&self, n: usize) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(self.0.acquire(n))
    }

    fn on_bytes(&self, data: &[u8]) {
        self.0.on_bytes(data);
    }

    fn before_last_piece(&self) -> futures_util::future::BoxFuture<'static, Result<(), String>> {
        if !self.1.armed.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::ready(Ok(())));
        }
        let (journal, id, sent) = (self.1.journal.clone(), self.1.id, self.1.sent.clone());
        Box::pin(async move {
            // Kill here: every byte but the last piece left; no video can exist, none is reported.
            fail::fail_point!("first-body-nearly-written");
            j(&journal, move |j| j.mark_first_body_sent(id))
                .await
                .map_err(|e| format!("cannot record the first request's last byte: {e}"))?;
            sent.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::debug!(
                id,
                "first request: its last piece leaves now (body recorded as sent)"
            );
            // Kill here: the last piece never leaves; the journal reports a possible orphan.
            fail::fail_point!("first-body-written");
            Ok(())
        })
    }
}
