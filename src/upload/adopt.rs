//! Adoption: a lost (or pruned) journal must not mean a second upload.
//!
//! With an API key every video ingestd makes carries its content hash in its metadata
//! (`ingestd-blake3`, or `ingestd-sha256` with `upload.hash = "sha256"`) and the host name
//! (`ingestd-host`): the hash is set by `PATCH /videos/{id}` once the last chunk is acknowledged
//! (the receipt computed while uploading: no extra read), before the row becomes `done`.
//!
//! Before the first request of a file with no history (no `videoId`, nothing sent) modified
//! before the journal's adoption horizon (`journal::adopt`: the journal was created by this
//! process, or pruned past the file), the file is hashed and api.video asked for a video with
//! that hash (`GET /videos?metadata[ingestd-blake3]=HEX`):
//! - a complete one (`ingest.status` uploaded, ingesting or ingested): the row becomes `done`
//!   with its id, marked adopted, and `after_upload` runs as for an upload;
//! - incomplete ones are noted as orphans (`ingestd orphans` lists and deletes them), and the
//!   file is uploaded anew into a video created with the hash already in its metadata.
//!
//! A lookup that fails holds the file (retried with the usual back-off, the reason in
//! `status`): an upload never starts on a failed lookup, so a failed lookup never makes a
//! second video. Without an API key nothing of this runs.

use crate::escape::Show as _;
use std::time::SystemTime;

use tracing::{info, warn};

use crate::api::{self, ApiError, ErrorClass, Metadata, VideoListQuery, VideoUpdate};
use crate::journal::{FileRow, to_unix_ms};
use crate::upload::after;
use crate::upload::events::UploadOutcome;
use crate::upload::hash::{ContentHasher, HashAlgorithm};
use crate::upload::verdict::{handle_error, local_failure};
use crate::upload::worker::{Outcome, WorkerContext, WorkerError, j};

/// Metadata key of the host name.
pub const HOST_KEY: &str = "ingestd-host";

/// Metadata key of the content hash made with `algorithm`.
pub fn hash_key(algorithm: HashAlgorithm) -> String {
    format!("ingestd-{}", algorithm.name())
}

/// This machine's host name, lower case (`None` when it cannot be read).
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is ours and its length is passed.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Whether `row` is looked up before its first request: no history, and modified before the
/// journal's adoption horizon.
fn candidate(row: &FileRow, horizon: Option<SystemTime>) -> bool {
    let Some(horizon) = horizon else {
        return false;
    };
    row.video_id.is_none()
        && row.bytes_uploaded == 0
        && row.identity.size > 0
        && row.identity.mtime_ns / 1_000_000 < to_unix_ms(horizon)
}

/// Before the first request: adopts the file (`Some(Done)`), holds it after a failed lookup
/// (`Some(Retry…)`), or lets the upload go on (`None`; a video with the hash in its metadata is
/// then created and its id committed when the file was looked up).
pub async fn before_first_request(
    ctx: &WorkerContext,
    row: &mut FileRow,
    file: &api::OpenFile,
) -> Result<Option<Outcome>, WorkerError> {
    let Some(keyed) = &ctx.api_key_client else {
        return Ok(None);
    };
    if row.video_id.is_some() || row.bytes_uploaded > 0 {
        return Ok(None); // history: not a file a lost journal forgot
    }
    let horizon = j(&ctx.journal, |j| j.adopt_horizon()).await?;
    if !candidate(row, horizon) {
        return Ok(None);
    }
    let id = row.id;
    let path = row.path.clone();
    let algorithm = ctx.config.hash;
    let (f, p, size) = (file.clone(), path.clone(), row.identity.size);
    let hashed = tokio::task::spawn_blocking(move || {
        let mut h = ContentHasher::new(algorithm);
        h.extend_from_open(f.file(), &p, size).map(|_| h)
    })
    .await?;
    let hasher = match hashed {
        Ok(h) => h,
        Err(e) => {
            return local_failure(ctx, row, format!("hashing before the lookup: {e}"))
                .await
                .map(Some);
        }
    };
    let (key, hex, receipt) = (hash_key(algorithm), hasher.hex_so_far(), hasher.receipt());

    let query = VideoListQuery {
        metadata: vec![(key.clone(), hex.clone())],
        page_size: Some(100),
        ..Default::default()
    };
    let found = match keyed.list_videos(&query).await {
        Ok(page) => page.data,
        Err(e) => return lookup_failed(ctx, row, e).await.map(Some),
    };
    let mut complete = None;
    let mut incomplete = Vec::new();
    for video in found {
        let status = match keyed.video_status(&video.video_id).await {
            Ok(s) => s,
            Err(e) => return lookup_failed(ctx, row, e).await.map(Some),
        };
        let state = status.ingest.and_then(|i| i.status).unwrap_or_default();
        if matches!(state.as_str(), "uploaded" | "ingesting" | "ingested") {
            complete.get_or_insert(video);
        } else {
            incomplete.push(video.video_id);
        }
    }
    for vid in incomplete {
        let note = format!(
            "a video with this file's content hash ({key}) was found incomplete on api.video (a lost journal's upload): possible orphan; the file is uploaded anew"
        );
        warn!(path = %path.shown(), video_id = vid.as_str(), "{note}");
        j(&ctx.journal, move |j| {
            j.record_found_orphan(id, &vid, &note)
        })
        .await?;
    }
    if let Some(video) = complete {
        let vid = video.video_id;
        let host = video
            .metadata
            .iter()
            .find(|m| m.key == HOST_KEY)
            .map(|m| m.value.clone())
            .unwrap_or_default();
        let (v, r) = (vid.clone(), receipt.clone());
        j(&ctx.journal, move |j| j.mark_adopted(id, &r, &v)).await?;
        ctx.metrics.outcome(UploadOutcome::Adopted);
        info!(path = %path.shown(), video_id = vid.as_str(), hash = %receipt, uploaded_by = host.as_str(), "adopted: api.video already holds this file, complete (found by its content hash); not uploaded again");
        run_after_upload(ctx, row, &vid).await?;
        return Ok(Some(Outcome::Done { video_id: vid }));
    }

    // Not there: create the video now, with the hash, so that a later loss finds it even if this
    // upload is interrupted (as an incomplete video: an orphan, not a second copy).
    let meta = (ctx.video_meta)(row);
    let creation = api::VideoCreation {
        title: meta.title,
        tags: meta.tags,
        metadata: with_hash(meta.metadata, &key, &hex),
        ..Default::default()
    };
    match keyed.create_video(&creation).await {
        Ok(video) => {
            let vid = video.video_id;
            info!(path = %path.shown(), video_id = vid.as_str(), "looked up by content hash: not on api.video; created video with the API key");
            let v = vid.clone();
            j(&ctx.journal, move |j| j.commit_video_id(id, &v)).await?;
            row.video_id = Some(vid);
            Ok(None)
        }
        Err(e) => handle_error(ctx, row, e, None).await.map(Some),
    }
}

/// After the last chunk, before `done`: sets the content hash (and host) in the video's
/// metadata. `Some` when the row was rescheduled (transient error, paused key); a permanent
/// refusal is logged and the file still becomes `done` (its bytes are all on api.video).
pub async fn tag_after_upload(
    ctx: &WorkerContext,
    row: &FileRow,
    video_id: &str,
    receipt: &str,
) -> Result<Option<Outcome>, WorkerError> {
    let Some(keyed) = &ctx.api_key_client else {
        return Ok(None);
    };
    let Some((_, hex)) = receipt.split_once(':') else {
        return Ok(None);
    };
    let key = hash_key(ctx.config.hash);
    let meta = (ctx.video_meta)(row);
    let update = VideoUpdate {
        metadata: Some(with_hash(meta.metadata, &key, hex)),
        ..Default::default()
    };
    match keyed.update_video(video_id, &update).await {
        Ok(_) => Ok(None),
        Err(e) if e.class() == ErrorClass::Permanent => {
            warn!(path = %row.path.shown(), video_id, "the video is uploaded but its content hash could not be set in its metadata ({e}): a journal lost later will not find it");
            Ok(None)
        }
        Err(e) if matches!(e.class(), ErrorClass::Transient | ErrorClass::Local) => {
            let msg = format!(
                "setting the content hash in the metadata of video {video_id}: {e} (every byte is on api.video; only this is retried)"
            );
            local_failure(ctx, row, msg).await.map(Some)
        }
        Err(e) => handle_error(ctx, row, e, None).await.map(Some),
    }
}

/// `metadata` with `key = hex` (replacing any earlier value of `key`) as api.video pairs.
fn with_hash(metadata: Vec<(String, String)>, key: &str, hex: &str) -> Vec<Metadata> {
    metadata
        .into_iter()
        .filter(|(k, _)| k != key)
        .chain([(key.to_owned(), hex.to_owned())])
        .map(|(key, value)| Metadata { key, value })
        .collect()
}

/// A lookup failed: the file is held, never uploaded on a failed lookup. Network errors, 5xx and
/// errors that would fail an upload for good (4xx) are retried with the back-off of local
/// failures (at most `retry_max` apart, for ever), the reason shown in `status`; a 429 waits its
/// Retry-After and a rejected API key pauses the pool, as for any request.
async fn lookup_failed(
    ctx: &WorkerContext,
    row: &FileRow,
    e: ApiError,
) -> Result<Outcome, WorkerError> {
    match e.class() {
        ErrorClass::Permanent | ErrorClass::Transient | ErrorClass::Local => {
            let msg = format!(
                "looking up this file on api.video by its content hash: {e} (held: never uploaded before the lookup answers)"
            );
            local_failure(ctx, row, msg).await
        }
        _ => handle_error(ctx, row, e, None).await,
    }
}

/// `after_upload` for an adopted file, as for an uploaded one.
async fn run_after_upload(
    ctx: &WorkerContext,
    row: &FileRow,
    video_id: &str,
) -> Result<(), WorkerError> {
    let (id, root, path) = (row.id, row.root.clone(), row.path.clone());
    let action = after::action_for(&ctx.config.after_upload, &ctx.watch_roots, &root);
    let outcome = after::apply_async(action, root, path.clone()).await;
    let (text, failed) = (outcome.message(), !outcome.is_success());
    if failed {
        warn!(path = %path.shown(), video_id, "{text}");
    }
    j(&ctx.journal, move |j| {
        j.record_after_upload(id, &text, failed)
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_replaces_an_earlier_value_of_its_key() {
        let m = with_hash(
            vec![
                ("ingestd-blake3".into(), "old".into()),
                ("ingestd-host".into(), "nas".into()),
            ],
            "ingestd-blake3",
            "abc",
        );
        let pairs: Vec<_> = m
            .iter()
            .map(|m| (m.key.as_str(), m.value.as_str()))
            .collect();
        assert_eq!(pairs, [("ingestd-host", "nas"), ("ingestd-blake3", "abc")]);
        assert_eq!(hash_key(HashAlgorithm::Sha256), "ingestd-sha256");
    }
}
