//! The phases of one upload attempt, in commit order (DESIGN §2–§3), each a function:
//!
//! 1. [`prepare`]: the rules, the file's identity against the row (a changed file abandons its
//!    old video), the chunk size fixed on first start, a possible orphan to report, the
//!    container check before a first request, and the one handle every chunk reads; then, for
//!    a file a lost or pruned journal may have forgotten, the lookup by content hash
//!    ([`adopt::before_first_request`], API key only);
//! 2. [`create_video_with_key`]: with an API key and no `videoId` yet, `POST /videos` and commit
//!    the `videoId` (no orphan window);
//! 3. [`refuse_empty`], then [`start_tap`]: the hash of what was already sent (resume);
//! 4. the requests ([`super::chunks`]: the first request, then chunk by chunk, or in lanes);
//! 5. [`finish`]: re-stat (unchanged → `done` with the receipt, W5; changed → settling again;
//!    with an API key the hash is first set in the video's metadata, [`adopt::tag_after_upload`]),
//!    then the `after_upload` action, only after `done` is committed (W6).

use crate::escape::Show as _;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use tracing::{info, warn};

use crate::api;
use crate::journal::FileRow;
use crate::upload::adopt;
use crate::upload::after;
use crate::upload::container::{self, Moment};
use crate::upload::events::UploadOutcome;
use crate::upload::hash::ContentHasher;
use crate::upload::progress::{Progress, UploadTap};
use crate::upload::tap::{FirstBody, Tap, extend_through};
use crate::upload::verdict::{
    file_name, handle_error, local_failure, refused, released_by_watcher, still_ours,
};
use crate::upload::worker::{Outcome, WorkerContext, WorkerError, identity_of, j, same_content};

/// What a phase returns: go on with `T`, or the attempt ended with an [`Outcome`].
pub(super) type Phase<T> = Result<ControlFlow<Outcome, T>, WorkerError>;

/// One claimed file on its way up: the row (kept in step with the journal), the open handle
/// every request of this attempt reads, its chunk size and length.
pub(super) struct Attempt {
    pub row: FileRow,
    pub file: api::OpenFile,
    pub chunk_size: u64,
    pub total: u64,
}

impl Attempt {
    /// The whole file goes in one request without `Content-Range`.
    pub fn single(&self) -> bool {
        self.total <= self.chunk_size
    }
}

/// Phase 1: checks the row against the rules and the disk, fixes the chunk size, reports a
/// possible orphan left by a previous attempt, and opens the file.
pub(super) async fn prepare(ctx: &WorkerContext, mut row: FileRow) -> Phase<Attempt> {
    let id = row.id;
    let path = row.path.clone();

    // The rules (a path that turned into a symlink, a secret), then the identity check.
    if let Some(outcome) = refused(ctx, &row).await? {
        return Ok(Break(outcome));
    }
    let meta = match tokio::fs::metadata(&path).await {
        Ok(m) => m,
        Err(e) => {
            let msg = match row.bytes_uploaded {
                0 => format!("file vanished before upload: {e}"),
                n => format!("file vanished during its upload, after {n} bytes: {e}"),
            };
            warn!(path = %path.shown(), "{msg}");
            ctx.metrics.outcome(UploadOutcome::Abandoned);
            j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
            return Ok(Break(Outcome::Released));
        }
    };
    let now_identity = identity_of(&meta);
    if !same_content(&now_identity, &row.identity) {
        if let Some(video_id) = row.video_id.clone() {
            warn!(path = %path.shown(), video_id, "file changed since its upload started: abandoning the partial video, starting over");
        }
        tracing::debug!("the file changed since it was queued");
        ctx.metrics.outcome(UploadOutcome::Abandoned);
        j(&ctx.journal, move |j| {
            j.reset_for_new_video(id, &now_identity)
        })
        .await?;
        return Ok(Break(Outcome::Released));
    }

    // The chunk size is fixed per file at the start of its upload.
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
            path.shown(),
            file_name(&path)
        );
        warn!(path = %path.shown(), "{note}");
        j(&ctx.journal, move |j| j.record_orphan(id, &note)).await?;
    }

    if row.bytes_uploaded == 0
        && let Some(out) = container::recheck(ctx, &row, Moment::BeforeFirstRequest).await?
    {
        return Ok(Break(out));
    }

    // A file that cannot be opened (permissions) is reported before any request, so it never
    // leaves a possible orphan nor an empty video; it is retried until it becomes readable. The
    // handle opened here is the one every chunk of this attempt reads.
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => api::OpenFile::from(f.into_std().await),
        Err(e) => {
            let msg = format!("cannot read {}: {e}; {}", path.shown(), api::open_hint(&e));
            return Ok(Break(local_failure(ctx, &row, msg).await?));
        }
    };
    Ok(Continue(Attempt {
        row,
        file,
        chunk_size,
        total,
    }))
}

/// Phase 2: with an API key and no `videoId` yet, creates the video first and commits its id.
pub(super) async fn create_video_with_key(ctx: &WorkerContext, a: &mut Attempt) -> Phase<()> {
    let Some(keyed) = ctx
        .api_key_client
        .as_ref()
        .filter(|_| a.row.video_id.is_none())
    else {
        return Ok(Continue(()));
    };
    let id = a.row.id;
    let meta = (ctx.video_meta)(&a.row);
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
            info!(path = %a.row.path.shown(), video_id = vid.as_str(), "created video with the API key");
            let v = vid.clone();
            j(&ctx.journal, move |j| j.commit_video_id(id, &v)).await?;
            a.row.video_id = Some(vid);
            Ok(Continue(()))
        }
        Err(e) => Ok(Break(handle_error(ctx, &a.row, e, None).await?)),
    }
}

/// api.video refuses empty files (400 uploaded-file-empty); the watcher never queues one.
pub(super) async fn refuse_empty(ctx: &WorkerContext, a: &Attempt) -> Phase<()> {
    if a.total != 0 {
        return Ok(Continue(()));
    }
    let id = a.row.id;
    ctx.metrics.outcome(UploadOutcome::Failed);
    j(&ctx.journal, move |j| {
        j.mark_failed(
            id,
            "the file is empty: api.video refuses empty files",
            Some("uploaded-file-empty"),
        )
    })
    .await?;
    Ok(Break(Outcome::Failed))
}

/// Phase 3: the body observer, its hash covering what was already sent (resume): the bytes
/// are hashed from disk, the rest streams through the hasher (lanes with BLAKE3 hash the
/// prefix themselves, [`super::lanes::hashes_prefix`]).
pub(super) async fn start_tap(ctx: &WorkerContext, a: &Attempt) -> Phase<Arc<Tap>> {
    let mut hasher = ContentHasher::new(ctx.config.hash);
    // Lanes with BLAKE3 hash the prefix themselves, into subtrees (read once, not twice).
    let deferred = super::lanes::hashes_prefix(ctx, a).await?;
    if a.row.bytes_uploaded > 0
        && !deferred
        && let Err(e) =
            extend_through(&mut hasher, &a.file, &a.row.path, a.row.bytes_uploaded).await
    {
        let msg = format!("reading {}: {e}", a.row.path.shown());
        return Ok(Break(local_failure(ctx, &a.row, msg).await?));
    }
    let rate = match ctx.rate.read() {
        Ok(r) => r.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let progress = Progress::new(a.row.bytes_uploaded);
    let tap = Tap(
        UploadTap::new(rate, hasher, progress),
        FirstBody::new(ctx.journal.clone(), a.row.id),
    );
    tap.0.progress().set(a.row.bytes_uploaded);
    Ok(Continue(Arc::new(tap)))
}

/// Phase 5: every byte is acknowledged. The file must be unchanged to be `done`; then the
/// `after_upload` action runs.
pub(super) async fn finish(
    ctx: &WorkerContext,
    row: FileRow,
    tap: &Tap,
) -> Result<Outcome, WorkerError> {
    let (id, path, total) = (row.id, row.path.clone(), row.identity.size);
    if !still_ours(ctx, &row).await? {
        return Ok(released_by_watcher(&row, None));
    }
    let video_id = row.video_id.clone().unwrap_or_default();
    let after_identity = tokio::fs::metadata(&path).await.map(|m| identity_of(&m));
    match after_identity {
        Ok(ident) if same_content(&ident, &row.identity) => {}
        Ok(ident) => {
            warn!(path = %path.shown(), video_id, "the file changed during its upload: not done; it settles again and uploads as a new video");
            ctx.metrics.outcome(UploadOutcome::Abandoned);
            j(&ctx.journal, move |j| j.reset_for_new_video(id, &ident)).await?;
            return Ok(Outcome::Released);
        }
        Err(e) => {
            let msg = format!("file vanished during its upload: {e}");
            warn!(path = %path.shown(), video_id, "{msg}");
            ctx.metrics.outcome(UploadOutcome::Abandoned);
            j(&ctx.journal, move |j| j.mark_gone(id, &msg)).await?;
            return Ok(Outcome::Released);
        }
    }
    if let Some(out) = container::recheck(ctx, &row, Moment::AfterLastChunk).await? {
        return Ok(out);
    }
    let receipt = tap.0.receipt();
    if let Some(out) = adopt::tag_after_upload(ctx, &row, &video_id, &receipt).await? {
        return Ok(out);
    }
    let (v, s) = (video_id.clone(), receipt.clone());
    fail::fail_point!("before-done-commit");
    j(&ctx.journal, move |j| j.mark_done(id, &s, &v)).await?;
    ctx.metrics.outcome(UploadOutcome::Done);
    info!(path = %path.shown(), video_id, hash = %receipt, bytes = total, "uploaded");
    after_upload(ctx, &row).await?;
    Ok(Outcome::Done { video_id })
}

/// The `after_upload` action, only once `done` is committed; its outcome is recorded.
async fn after_upload(ctx: &WorkerContext, row: &FileRow) -> Result<(), WorkerError> {
    fail::fail_point!("before-after-upload");
    let (id, path, root) = (row.id, row.path.clone(), row.root.clone());
    let video_id = row.video_id.as_deref().unwrap_or_default();
    let action = after::action_for(&ctx.config.after_upload, &ctx.watch_roots, &root);
    let outcome = after::apply_async(action, root, path.clone()).await;
    let text = outcome.message();
    if !outcome.is_success() {
        warn!(path = %path.shown(), video_id, "{text}");
    }
    let failed = !outcome.is_success();
    j(&ctx.journal, move |j| {
        j.record_after_upload(id, &text, failed)
    })
    .await?;
    Ok(())
}
