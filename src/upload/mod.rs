//! Uploading: worker pool, chunk planning, retry classes, rate limit.
//!
//! # Building blocks (here)
//! - [`backoff`]: [`RetryClass`] → [`Decision`] (full-jitter backoff, 429 waits, token pause),
//!   and [`RetryNote`], the visible reason of a file waiting in retry.
//! - [`rate`]: [`RateLimit`], the `upload.max_rate` token bucket shared by all workers.
//! - [`schedule`]: [`Schedule`], the `max_rate` timetable and SIGUSR2 driving that bucket;
//!   [`localtime`]: the local wall clock it reads (libc `localtime_r`).
//! - [`hash`]: [`ContentHasher`] (BLAKE3 or SHA-256, with snapshot/restore) and [`hash_prefix`] for resume.
//! - [`progress`]: [`UploadTap`] (rate limit + hash + [`Progress`] for one file's body; the api
//!   client's body observer) with snapshot/restore per chunk.
//! - [`resolve`]: [`resolve_refusal`], the two 400s that confirm a chunk (overlap, already uploaded).
//! - [`after`]: [`after::apply`], the `after_upload` keep / delete / move.
//! - [`pause`]: a worker's back-off while the journal cannot write.
//!
//! Mapping of the api client's error classes onto [`RetryClass`]: `Transient` → `Transient`
//! (and a 503 carrying a retry-after → `RateLimited(Some(..))`); `RateLimited` →
//! `RateLimited(err.retry_after())`; `TokenRejected` → `TokenRejected`; `Permanent` →
//! `Permanent` (except the two 400 slugs handled in step 4 below); `ApiKeyRejected` →
//! `Permanent` for the file-creating `POST /videos` (the key is wrong: failing loudly beats
//! retrying); `Local` → handled by the worker (vanished → `gone`, changed → requeue, other I/O →
//! `Transient` with the reason shown).
//!
//! # Worker design (for the pool)
//! `upload.workers` tasks, each a loop under the daemon's `CancellationToken`:
//!
//! 1. **Claim** (one journal transaction): pick the oldest `queued` row whose `next_attempt_at`
//!    is past (or an `uploading` row whose claim belongs to a previous process — the journal
//!    stores a per-process run id, and rows claimed by another run id are reclaimable at start),
//!    set it `uploading` with this run id, and, on a fresh start, store the `chunk_size` in use.
//!    If nothing is claimable, wait for a journal "queued" notification or the earliest
//!    `next_attempt_at`, whichever comes first. While the token is rejected, claim nothing.
//! 2. **Check identity**: `stat` the file; if (dev, inode, size, mtime) differs from the row, and
//!    a `videoId` exists, record the old video as abandoned (journal + log with its id) and
//!    restart as a new video (offset 0). A vanished file → `gone`.
//! 3. **Resume the hash**: `hash_prefix(path, committed_offset)` (skip at offset 0).
//! 4. **Chunk loop**, with `chunk_size` from the row, `total = size`:
//!    - file ≤ chunk_size: one request without `Content-Range`; mark "first chunk in flight"
//!      before sending (W3 orphan record), then commit `videoId` + done-offset together.
//!      A 0-byte file cannot be uploaded (400 `uploaded-file-empty`): park it as `failed`
//!      with that reason without a request.
//!    - larger files go chunk by chunk, `[from, to]` inclusive, `from` = committed offset.
//!    - first chunk (no `videoId` yet): commit "first chunk in flight" (so a crash before the
//!      next commit is reported as a possible orphan), send without `videoId`, then **commit
//!      `videoId` and offset `to+1` in one transaction** before reading the next chunk;
//!    - later chunks: send with `videoId` and `Content-Range: bytes from-to/total`, then commit
//!      offset `to+1`. Reset the failure count to 0 on every acknowledged chunk;
//!    - stream each body from disk (`seek(from)` + `take(len)`), passing every buffer through
//!      [`RateLimit::acquire`] and [`ContentHasher::update`] (both in [`UploadTap`]); take a
//!      [`HashSnapshot`] before the chunk and `restore` it if the chunk fails.
//!    - 400s go through [`resolve_refusal`] first:
//!      `video-content-range-by-bytes-range-overlap` for exactly the chunk that follows the
//!      committed offset (the one in flight before a crash): the service has it → restore the
//!      hash snapshot, [`ContentHasher::extend_from_file`] to `to+1` (the server may have
//!      refused before reading the body), commit the offset and advance.
//!    - 400 `video-source-already-uploaded` on the last chunk → treat as acknowledged.
//! 5. **Finish**: re-stat; if identity changed during the upload, do not mark `done` (record
//!    "changed during upload" and requeue as a new video). Else commit `done` with the content
//!    hash (`blake3:HEX` or `sha256:HEX`), `videoId`, size and times (the receipt), then run [`after::apply_async`] and store
//!    its message; a failed action leaves the file `done`.
//! 6. **Errors**: map the api error to a [`RetryClass`] and ask [`RetryPolicy::decide`]:
//!    `RetryAfter(d)` → commit `attempts+1`, `next_attempt_at = now + d` and the
//!    [`RetryNote`] text as `last_error`, release the claim (row back to `uploading`-waiting or
//!    `queued`, keeping offset/videoId), and sleep or move on to another file;
//!    `PauseForToken` → set the shared token state to rejected (one log line), release the
//!    claim without counting an attempt; `Fail` → `failed` with the api slug, title and detail.
//! 7. **Shutdown**: stop claiming when cancelled; let the in-flight chunk finish within
//!    `shutdown_timeout`, then drop it (nothing is committed for an unacknowledged chunk, so
//!    the journal is consistent either way).
//!
//! # Where each step lives
//! [`worker`]'s `upload_file` names the phases in order: `phases` (prepare, create with the API
//! key, refuse an empty file, the resume hash, finish and `after_upload`), [`adopt`] (with an
//! API key, the lookup by content hash before a first request, and the hash in the video's
//! metadata before `done`), `chunks` (the first request alone, then chunk by chunk), `lanes`
//! (with `lanes_per_file` > 1: after the first request's `videoId` is committed, up to N chunks
//! in flight on their own connections, each acknowledged range committed on its own in
//! `acked_ranges`, the completing chunk held back until all others are acknowledged; each lane
//! hashes its chunk into BLAKE3 subtrees, merged by [`tree`]), and
//! `verdict` (how an attempt ends otherwise: retry, pause, failure, released).

pub mod adopt;
pub mod after;
pub mod backoff;
pub mod board;
mod chunks;
pub mod container;
pub mod events;
pub mod hash;
mod lanes;
pub mod localtime;
pub mod pause;
mod phases;
pub mod pool;
pub mod progress;
pub mod rate;
pub mod resolve;
pub mod schedule;
mod tap;
#[cfg(test)]
mod tests_worker;
pub mod token;
pub mod tree;
mod verdict;
pub mod worker;

pub use after::{AfterError, AfterOutcome};
pub use backoff::{Backoff, Decision, RetryClass, RetryNote, RetryPolicy};
pub use events::{NoEvents, RetryKind, UploadEvents, UploadOutcome};
pub use hash::{ContentHasher, HashError, HashSnapshot, hash_prefix, hash_prefix_async};
pub use progress::{Progress, UploadTap};
pub use rate::RateLimit;
pub use resolve::{Resolution, resolve_refusal};
pub use schedule::Schedule;
