//! One upload worker: claims a queued file from the journal and uploads it, committing progress
//! after every acknowledged request so that a crash costs at most one chunk (per lane).
//!
//! [`upload_file`] runs the phases of one attempt in commit order (DESIGN §2–§3), each a
//! function of `super::phases` or `super::chunks`:
//! 1. claim (`queued → uploading`, one transaction, in [`run_worker`]);
//! 2. `phases::prepare`: rules and identity (a changed file abandons its old
//!    video), the chunk size stored on first start, the file opened;
//! 3. `phases::create_video_with_key`: with an API key and no
//!    `videoId` yet, `POST /videos`, commit `videoId` (no orphan window);
//! 4. `chunks::first_request`: without one, mark "first chunk in
//!    flight", send chunk 1, commit `videoId` (window W3);
//! 5. `chunks::send_all`: each chunk sent, then its acknowledged offset
//!    committed before the next is read (W4);
//! 6. `phases::finish`: re-stat: unchanged → `done` with the receipt (W5),
//!    changed → back to settling; the `after_upload` action only after `done` (W6).
//!
//! How an attempt ends otherwise (retry, pause, failure, released) is in `super::verdict`.

use crate::escape::Show as _;
use std::ops::ControlFlow::{Break, Continue};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api;
use crate::config::UploadConfig;
use crate::journal::{FileIdentity, FileRow, Journal, JournalError};
use crate::upload::backoff::RetryPolicy;
use crate::upload::board::Board;
use crate::upload::events::UploadEvents;
use crate::upload::pause::JournalPause;
use crate::upload::rate::RateLimit;
use crate::upload::token::TokenGate;
use crate::upload::{adopt, chunks, phases};

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

pub(super) fn identity_of(meta: &std::fs::Metadata) -> FileIdentity {
    FileIdentity::from_metadata(meta)
}

/// Same content as far as we can tell without reading it (ctime changes on rename).
pub(super) fn same_content(a: &FileIdentity, b: &FileIdentity) -> bool {
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
        tracing::debug!(worker = n, id = row.id, path = %row.path.shown(), "claimed");
        fail::fail_point!("after-claim"); // W2: journaled and claimed, no byte sent
        fail::fail_point!("worker-panic", |_| panic!(
            "injected panic in upload worker {n}"
        ));
        // A worker that returns on its own (no panic): the daemon must stop too (issue 14).
        fail::fail_point!("worker-exit", |_| Ok(()));
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
                info!(path = %path.shown(), id, state = state.as_str(), "upload dropped: the file changed while it was uploading");
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
    row: FileRow,
    shutdown: &CancellationToken,
) -> Result<Outcome, WorkerError> {
    let mut a = match phases::prepare(ctx, row).await? {
        Continue(a) => a,
        Break(outcome) => return Ok(outcome),
    };
    // A file the journal may have lost (new or pruned journal): adopted if already uploaded.
    if let Some(outcome) = adopt::before_first_request(ctx, &mut a.row, &a.file).await? {
        return Ok(outcome);
    }
    if let Break(outcome) = phases::create_video_with_key(ctx, &mut a).await? {
        return Ok(outcome);
    }
    if let Break(outcome) = phases::refuse_empty(ctx, &a).await? {
        return Ok(outcome);
    }
    let tap = match phases::start_tap(ctx, &a).await? {
        Continue(tap) => tap,
        Break(outcome) => return Ok(outcome),
    };
    let _on_board = ctx
        .board
        .start(a.row.id, &a.row.path, a.total, tap.0.progress().clone());
    let sent = chunks::send_all(ctx, &mut a, &tap, shutdown).await?;
    let phases::Attempt { row, file, .. } = a;
    drop(file); // every byte is sent: the after_upload action may move or delete the file
    match sent {
        Continue(()) => phases::finish(ctx, row, &tap).await,
        Break(outcome) => Ok(outcome),
    }
}
