//! The api client's body observer for one file ([`Tap`]: rate limit, content hash, progress,
//! and the first request's "last body byte left" mark), and hashing from disk through the
//! upload's held handle (a chunk the service already had, or every chunk when lanes send them
//! out of order).

use std::path::Path;
use std::sync::Arc;

use crate::api::{self, BodyObserver};
use crate::journal::Journal;
use crate::upload::hash::{self, ContentHasher};
use crate::upload::progress::UploadTap;
use crate::upload::worker::j;

/// Extends the tap's hash from disk up to `end` (a chunk the service already had).
pub(super) async fn extend_hash(
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
pub(super) async fn extend_through(
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
pub(super) struct Tap(pub(super) UploadTap, pub(super) FirstBody);

/// Tracks whether the first request's (no `videoId`) last body byte left: committed to the
/// journal just before the last piece goes, so a kill after it is reported as a possible orphan
/// and a kill before it is not (the connection resets; the body never completes).
pub(super) struct FirstBody {
    journal: Journal,
    id: i64,
    /// A first request is in flight.
    armed: std::sync::atomic::AtomicBool,
    /// Its last piece was handed over (after the journal recorded it).
    sent: Arc<std::sync::atomic::AtomicBool>,
}

impl FirstBody {
    pub(super) fn new(journal: Journal, id: i64) -> FirstBody {
        FirstBody {
            journal,
            id,
            armed: Default::default(),
            sent: Default::default(),
        }
    }

    /// Before each request: `first` when it carries no `videoId`; after it: `false`.
    pub(super) fn arm(&self, first: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        if first {
            self.sent.store(false, SeqCst);
        }
        self.armed.store(first, SeqCst);
    }

    pub(super) fn sent(&self) -> bool {
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
