//! What watches an upload body as it streams: rate limit, content hash, progress counter.
//!
//! [`UploadTap`] is meant to sit behind the api client's body observer (one per file, shared
//! by its chunk requests), with a three-line impl when the two are wired together:
//! ```text
//! impl api::upload::BodyObserver for UploadTap {
//!     fn before_send(&self, n: usize) -> BoxFuture<'static, ()> { Box::pin(self.acquire(n)) }
//!     fn on_bytes(&self, data: &[u8]) { UploadTap::on_bytes(self, data) }
//! }
//! ```
//! Per chunk: `let snap = tap.snapshot();` before the request; on failure `tap.restore(snap)`,
//! so the hash and the progress counter again cover exactly the acknowledged prefix.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::hash::{ContentHasher, HashSnapshot};
use super::rate::RateLimit;

/// Bytes of the current file streamed so far; clone it into a progress bar.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn new(start: u64) -> Progress {
        Progress(Arc::new(AtomicU64::new(start)))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes back bytes streamed by a request that failed (a lane's chunk).
    pub fn sub(&self, bytes: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
    }
}

/// Rate limit + content hash + progress for one file's upload.
#[derive(Debug)]
pub struct UploadTap {
    rate: RateLimit,
    hasher: Mutex<ContentHasher>,
    progress: Progress,
}

impl UploadTap {
    /// `hasher` covers the bytes already acknowledged (from [`super::hash_prefix`] on resume);
    /// `progress` is set to that offset.
    pub fn new(rate: RateLimit, hasher: ContentHasher, progress: Progress) -> UploadTap {
        progress.set(hasher.bytes_hashed());
        UploadTap {
            rate,
            hasher: Mutex::new(hasher),
            progress,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ContentHasher> {
        // A panic while holding the lock cannot leave a half-updated hasher behind that we
        // would trust: the chunk it was hashing fails and is rolled back with `restore`.
        self.hasher.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the shared rate limit to allow `n` bytes (a `'static` future).
    pub fn acquire(&self, n: usize) -> impl Future<Output = ()> + Send + 'static {
        let rate = self.rate.clone();
        async move { rate.acquire(n as u64).await }
    }

    /// The next bytes of the body, in file order.
    pub fn on_bytes(&self, data: &[u8]) {
        self.lock().update(data);
        self.progress.add(data.len() as u64);
    }

    /// Save before sending a chunk.
    pub fn snapshot(&self) -> HashSnapshot {
        self.lock().snapshot()
    }

    /// Roll back a failed chunk: hash and progress return to the snapshot.
    pub fn restore(&self, snapshot: HashSnapshot) {
        let bytes = snapshot.bytes_hashed();
        self.lock().restore(snapshot);
        self.progress.set(bytes);
    }

    /// Bytes covered by the hash (must equal the committed offset after each acknowledged chunk).
    pub fn bytes_hashed(&self) -> u64 {
        self.lock().bytes_hashed()
    }

    /// A copy of the hasher (e.g. for [`ContentHasher::extend_from_file`] after an overlap 400:
    /// `restore`, then extend a copy from disk and put it back with [`replace`](Self::replace)).
    pub fn hasher(&self) -> ContentHasher {
        self.lock().clone()
    }

    pub fn replace(&self, hasher: ContentHasher) {
        let bytes = hasher.bytes_hashed();
        *self.lock() = hasher;
        self.progress.set(bytes);
    }

    /// The hex digest of everything hashed.
    pub fn hex(&self) -> String {
        self.lock().hex_so_far()
    }

    /// `ALGORITHM:HEX` of everything hashed (the receipt, once the last chunk is acknowledged).
    pub fn receipt(&self) -> String {
        self.lock().receipt()
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[tokio::test]
    async fn hashes_counts_and_rolls_back() {
        let progress = Progress::default();
        let mut start = ContentHasher::new(crate::config::HashAlgorithm::Sha256);
        start.update(b"already sent ");
        let tap = UploadTap::new(RateLimit::unlimited(), start, progress.clone());
        assert_eq!(progress.get(), 13);

        let snap = tap.snapshot();
        tap.acquire(5).await;
        tap.on_bytes(b"lost ");
        assert_eq!(progress.get(), 18);
        tap.restore(snap);
        assert_eq!(progress.get(), 13);
        assert_eq!(tap.bytes_hashed(), 13);

        tap.on_bytes(b"then the rest");
        assert_eq!(progress.get(), 26);
        assert_eq!(
            tap.hex(),
            hex::encode(Sha256::digest(b"already sent then the rest"))
        );
        let h = tap.hasher();
        tap.replace(ContentHasher::new(crate::config::HashAlgorithm::Sha256));
        assert_eq!(progress.get(), 0);
        tap.replace(h);
        assert_eq!(tap.bytes_hashed(), 26);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_goes_through_the_shared_limit() {
        let tap = UploadTap::new(
            RateLimit::new(1000),
            ContentHasher::new(crate::config::HashAlgorithm::Sha256),
            Progress::default(),
        );
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            tap.acquire(1000).await;
        }
        // One second of burst, then 3 × 1000 bytes at 1000 B/s.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= std::time::Duration::from_millis(2_900)
                && elapsed <= std::time::Duration::from_millis(3_100),
            "{elapsed:?}"
        );
    }
}
