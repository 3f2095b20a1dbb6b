//! Parallel chunk lanes (`upload.lanes_per_file` > 1, capped by `upload.max_connections`).
//!
//! - Chunk 1 goes alone ([`super::chunks::first_request`]); only once its `videoId` is
//!   committed are up to N chunks of the file in flight, each lane on a connection of its own
//!   ([`crate::api::LaneClient`]).
//! - Every acknowledged chunk is committed as a range ([`Journal::commit_range`], one
//!   transaction each); resume sends exactly the chunks no range covers, so a crash costs at
//!   most one chunk per lane.
//! - **The completing request is the last one sent:** the chunk that ends at the file's last
//!   byte is held back until every other chunk is acknowledged, then sent alone. api.video
//!   completes a video with that chunk, so nothing can still be in flight for a complete video.
//! - Lanes share the file's rate limit (`max_rate` and its timetable, one token bucket for the
//!   whole process) and a 429: the first failure stops new chunks, the chunks in flight finish
//!   (their acknowledgements are committed), then the failure is handled once for the file.
//! - The content hash: with BLAKE3 each lane hashes its chunk as it streams, into subtrees of
//!   BLAKE3's tree ([`super::tree`]); the subtrees of acknowledged chunks are kept in memory and
//!   merged into the root once every chunk is acknowledged, equal to the sequential hash. What
//!   no lane hashed in this attempt is read back from disk through the held handle: chunks
//!   acknowledged before a restart, the prefix (unless it is a power of two of 1 KiB, then its
//!   subtree comes from the sequential hasher), and the at most 1023 bytes on each side of a
//!   chunk edge that is not on a 1 KiB boundary. With `hash = "sha256"` (no tree) the prefix
//!   streams as before and the rest is hashed from disk once every chunk is acknowledged.
//!
//! [`Journal::commit_range`]: crate::journal::Journal::commit_range

use crate::escape::Show as _;
use std::collections::VecDeque;
use std::ops::ControlFlow::{Break, Continue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::api::{self, BodyObserver, ChunkRange, ErrorClass};
use crate::config::HashAlgorithm;
use crate::upload::chunks::{Sent, send_request};
use crate::upload::hash::{self, ContentHasher};
use crate::upload::phases::{Attempt, Phase};
use crate::upload::tap::{Tap, extend_hash};
use crate::upload::tree::{RangeHasher, Tree};
use crate::upload::verdict::{file_left, handle_error, local_failure};
use crate::upload::worker::{Outcome, WorkerContext, WorkerError, j};

/// Whether the rest of this file goes in lanes.
pub(super) fn wanted(ctx: &WorkerContext, a: &Attempt) -> bool {
    ctx.config.lanes() > 1 && !a.single()
}

/// Whether this attempt's bytes all go through [`send_rest`] with a BLAKE3 tree, so the resume
/// hash of the committed prefix is left to it (read from disk once, into subtrees) instead of
/// the sequential hasher ([`super::phases::start_tap`]).
pub(super) async fn hashes_prefix(ctx: &WorkerContext, a: &Attempt) -> Result<bool, WorkerError> {
    let prefix = a.row.bytes_uploaded;
    if ctx.config.hash != HashAlgorithm::Blake3
        || a.row.video_id.is_none()
        || a.single()
        || prefix == 0
        || prefix >= a.total
        || Tree::new(a.total).is_none()
    {
        return Ok(false);
    }
    if wanted(ctx, a) {
        return Ok(true);
    }
    let id = a.row.id;
    Ok(!j(&ctx.journal, move |j| j.acked_ranges(id))
        .await?
        .is_empty())
}

/// Length of the first request (sent alone): with lanes the smallest chunk api.video takes, so
/// the lanes start early; else the chunk size.
pub(super) fn first_len(ctx: &WorkerContext, a: &Attempt) -> u64 {
    if wanted(ctx, a) {
        MIN_CHUNK.min(a.chunk_size)
    } else {
        a.chunk_size
    }
}

/// The completing request (sent alone, after every other chunk) is at most this long: the last
/// chunk of the grid is split when both parts stay valid (every chunk but the completing one
/// at least [`MIN_CHUNK`]).
pub(super) const COMPLETING_LEN: u64 = 1 << 20;

/// The smallest chunk api.video accepts but for the completing one.
const MIN_CHUNK: u64 = 5 << 20;

/// The chunks of `[prefix, total)` that no acknowledged range covers, in file order: the grid of
/// `chunk_size` from `prefix`, its last chunk split into `COMPLETING_LEN` at the end and the rest
/// when that rest is at least [`MIN_CHUNK`]. Deterministic from `(prefix, total, chunk_size)`, and
/// the prefix only ever advances over whole grid chunks, so every attempt plans the same grid.
pub(super) fn missing(
    prefix: u64,
    acked: &[(u64, u64)],
    total: u64,
    chunk_size: u64,
) -> VecDeque<ChunkRange> {
    let mut out = VecDeque::new();
    let mut offset = prefix;
    while offset < total {
        let mut r = api::chunk_at(offset, total, chunk_size);
        let tail = total.saturating_sub(COMPLETING_LEN);
        if r.offset + r.len == total && r.len >= MIN_CHUNK + COMPLETING_LEN {
            r.len = tail - r.offset;
        }
        let end = r.offset + r.len;
        if !acked.iter().any(|&(s, e)| s <= r.offset && e >= end) {
            out.push_back(r);
        }
        offset = end;
    }
    out
}

/// A lane's body observer: the file's rate limit and progress, and its chunk's BLAKE3 subtrees
/// (none with SHA-256); counts what it sent so a failed chunk's bytes leave the progress again.
struct LaneTap {
    tap: Arc<Tap>,
    sent: AtomicU64,
    hasher: Mutex<Option<RangeHasher>>,
}

impl LaneTap {
    /// The subtrees of the chunk (once its request has returned).
    fn take_hasher(&self) -> Option<RangeHasher> {
        self.hasher.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl BodyObserver for LaneTap {
    fn before_send(&self, n: usize) -> BoxFuture<'static, ()> {
        Box::pin(self.tap.0.acquire(n))
    }

    fn on_bytes(&self, data: &[u8]) {
        self.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(h) = self
            .hasher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            h.update(data);
        }
        self.tap.0.progress().add(data.len() as u64);
    }
}

/// Decrements the lanes gauge when the lane ends, whatever the way.
struct LaneCount<'a>(&'a WorkerContext);

impl<'a> LaneCount<'a> {
    fn open(ctx: &'a WorkerContext) -> Self {
        ctx.metrics.lanes(1);
        LaneCount(ctx)
    }
}

impl Drop for LaneCount<'_> {
    fn drop(&mut self) {
        self.0.metrics.lanes(-1);
    }
}

/// Sends every chunk from `prefix` on that no range acknowledges, in up to N lanes, the
/// completing chunk last. `Continue`: every byte is acknowledged and hashed.
pub(super) async fn send_rest(
    ctx: &WorkerContext,
    a: &mut Attempt,
    tap: &Arc<Tap>,
    prefix: u64,
    shutdown: &CancellationToken,
) -> Phase<()> {
    let (id, total) = (a.row.id, a.total);
    let acked = j(&ctx.journal, move |j| j.acked_ranges(id)).await?;
    let mut todo = missing(prefix, &acked, total, a.chunk_size);
    let last = match todo.back() {
        Some(r) if r.offset + r.len == total => todo.pop_back(),
        _ => None,
    };
    let mut last = last;
    let acked_bytes = total - todo.iter().chain(&last).map(|r| r.len).sum::<u64>();
    tap.0.progress().set(acked_bytes);
    let lanes = ctx.config.lanes();
    let mut tree = start_tree(tap, prefix, total);
    debug!(path = %a.row.path.shown(), lanes, chunks = todo.len() + usize::from(last.is_some()), "sending in lanes");
    let never = CancellationToken::new(); // shutdown is handled here, for all lanes at once
    let mut failed = None;
    let outcome = {
        let a: &Attempt = a;
        let mut inflight = FuturesUnordered::new();
        loop {
            while failed.is_none() && inflight.len() < lanes {
                let next = match todo.pop_front() {
                    Some(r) => r,
                    None if inflight.is_empty() => match last.take() {
                        Some(r) => r,
                        None => break,
                    },
                    None => break,
                };
                if next.offset > prefix
                    && let Some(outcome) = file_left(ctx, &a.row, next.offset).await?
                {
                    return Ok(Break(outcome));
                }
                let client = match ctx.client.lane() {
                    Ok(c) => c,
                    Err(e) => {
                        failed = Some((e, next));
                        break;
                    }
                };
                let lane = Arc::new(LaneTap {
                    tap: tap.clone(),
                    sent: AtomicU64::new(0),
                    hasher: Mutex::new(
                        tree.is_some()
                            .then(|| RangeHasher::new(next.offset, next.offset + next.len, total)),
                    ),
                });
                let never = &never;
                inflight.push(async move {
                    let _count = LaneCount::open(ctx);
                    let observer = lane.clone() as Arc<dyn BodyObserver>;
                    let sent =
                        send_request(ctx, &client, a, tap, Some(observer), Some(next), never).await;
                    (next, lane, sent)
                });
            }
            ctx.board.set_lanes(id, inflight.len());
            if inflight.is_empty() {
                break None;
            }
            let (r, lane, sent) = tokio::select! {
                Some(done) = inflight.next() => done,
                _ = shutdown.cancelled() => {
                    // Every lane's chunk is cancelled at once (its connection resets); the
                    // acknowledged ranges are committed.
                    drop(inflight);
                    info!(path = %a.row.path.shown(), video_id = a.row.video_id.as_deref(), "stopping: the chunks in flight are cancelled; the rest resumes on restart");
                    j(&ctx.journal, move |j| j.requeue(id)).await?;
                    return Ok(Break(Outcome::Released));
                }
            };
            let sent = sent?;
            if matches!(sent, Sent::Acked) {
                ctx.metrics.uploaded(r.len);
            }
            match sent {
                Sent::Acked | Sent::AlreadyHad | Sent::AlreadyComplete => {
                    if let (Some(tree), Some(h)) = (tree.as_mut(), lane.take_hasher()) {
                        tree.insert(h.finish());
                    }
                    let (start, end) = (r.offset, r.offset + r.len);
                    fail::fail_point!("after-chunk-before-commit");
                    j(&ctx.journal, move |j| j.commit_range(id, start, end)).await?;
                }
                Sent::Failed(e) => {
                    tap.0.progress().sub(lane.sent.load(Ordering::Relaxed));
                    if failed.is_none() {
                        failed = Some((e, r));
                    }
                }
                Sent::Stop(outcome) => break Some(outcome),
            }
        }
    };
    ctx.board.set_lanes(id, 1);
    if let Some(outcome) = outcome {
        return Ok(Break(outcome));
    }
    if let Some((e, r)) = failed {
        if e.class() == ErrorClass::Local
            && let Some(outcome) = file_left(ctx, &a.row, r.offset).await?
        {
            return Ok(Break(outcome));
        }
        return Ok(Break(handle_error(ctx, &a.row, e, Some(r)).await?));
    }
    a.row.attempts = 0;
    if let Err(e) = finish_hash(tap, tree, a).await {
        let msg = format!("reading {}: {e}", a.row.path.shown());
        return Ok(Break(local_failure(ctx, &a.row, msg).await?));
    }
    Ok(Continue(()))
}

/// The BLAKE3 tree of the file (`None` with SHA-256), with the prefix's subtree when the tap's
/// sequential hasher covers exactly a power of two of chunks.
fn start_tree(tap: &Tap, prefix: u64, total: u64) -> Option<Tree> {
    let h = tap.0.hasher();
    if h.algorithm() != HashAlgorithm::Blake3 {
        return None;
    }
    let mut tree = Tree::new(total)?;
    if h.bytes_hashed() == prefix
        && let Some(leaf) = h.blake3_leaf()
    {
        tree.insert([leaf]);
    }
    Some(tree)
}

/// Every chunk is acknowledged: the tap's hash becomes the file's. With a tree, the gaps are
/// read from disk and the subtrees merged; else (or should the subtrees not fit) the tap's
/// sequential hasher goes on from disk to the end.
async fn finish_hash(
    tap: &Arc<Tap>,
    tree: Option<Tree>,
    a: &Attempt,
) -> Result<(), hash::HashError> {
    if let Some(mut tree) = tree {
        let (file, path) = (a.file.clone(), a.row.path.clone());
        let (tree, read) = tokio::task::spawn_blocking(move || {
            let read = tree.fill_gaps(file.file(), &path)?;
            Ok::<_, hash::HashError>((tree, read))
        })
        .await
        .map_err(|e| hash::HashError::Join(e.to_string()))??;
        if let Some(root) = tree.root() {
            debug!(path = %a.row.path.shown(), read_back = read, "content hash merged from the lanes' subtrees");
            tap.0
                .replace(ContentHasher::from_blake3(root, tree.total()));
            return Ok(());
        }
        debug!(path = %a.row.path.shown(), "the lanes' subtrees do not make a tree: hashing from disk");
    }
    extend_hash(tap, &a.file, &a.row.path, a.total).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_chunks_skip_acknowledged_ranges() {
        let offsets =
            |v: VecDeque<ChunkRange>| v.iter().map(|r| (r.offset, r.len)).collect::<Vec<_>>();
        assert_eq!(
            offsets(missing(10, &[], 35, 10)),
            vec![(10, 10), (20, 10), (30, 5)]
        );
        assert_eq!(
            offsets(missing(10, &[(20, 30)], 35, 10)),
            vec![(10, 10), (30, 5)]
        );
        assert_eq!(
            offsets(missing(10, &[(10, 20), (30, 35)], 35, 10)),
            vec![(20, 10)]
        );
        assert!(missing(35, &[], 35, 10).is_empty());
        // The completing request is split off the last chunk when the rest stays >= 5 MiB.
        const M: u64 = 1 << 20;
        assert_eq!(
            offsets(missing(0, &[], 16 * M, 10 * M)),
            vec![(0, 10 * M), (10 * M, 5 * M), (15 * M, M)]
        );
        assert_eq!(
            offsets(missing(0, &[(10 * M, 15 * M)], 16 * M, 10 * M)),
            vec![(0, 10 * M), (15 * M, M)]
        );
        assert_eq!(
            offsets(missing(0, &[], 15 * M, 10 * M)),
            vec![(0, 10 * M), (10 * M, 5 * M)]
        );
    }
}
