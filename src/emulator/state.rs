//! The endpoint's shared state: persisted records (behind locks), the rate limiter, the fault
//! plan and request statistics.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::faults::FaultPlan;
use super::model::{AccessToken, UploadToken, VideoRec};
use super::store::Store;
use crate::secret::Secret;

/// Limit reported in `X-RateLimit-Limit` when nothing is enforced.
pub const UNLIMITED: u32 = 1_000_000;
const WINDOW: Duration = Duration::from_secs(60);

/// A one-minute fixed window.
#[derive(Debug)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new() -> Self {
        Window {
            start: Instant::now(),
            count: 0,
        }
    }
    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.start) >= WINDOW {
            self.start = now;
            self.count = 0;
        }
    }
    fn retry_after(&self, now: Instant) -> u64 {
        let left = WINDOW.saturating_sub(now.duration_since(self.start));
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// Values of the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    pub retry_after: u64,
}

/// Per-minute counters: uploads (enforced when a limit is set) and everything else (reported only).
#[derive(Debug)]
pub struct Limiter {
    pub upload_limit: u32,
    upload: Window,
    other: Window,
}

impl Limiter {
    pub fn new(upload_limit: u32) -> Self {
        Limiter {
            upload_limit,
            upload: Window::new(),
            other: Window::new(),
        }
    }

    /// Sets the upload limit (0 = off) and starts a new window.
    pub fn set_upload_limit(&mut self, limit: u32) {
        self.upload_limit = limit;
        self.upload = Window::new();
    }

    /// Counts one request; `Err` when the upload limit is exhausted (the request is not counted).
    pub fn take(&mut self, upload: bool) -> Result<RateInfo, RateInfo> {
        let now = Instant::now();
        let (window, limit) = if upload && self.upload_limit > 0 {
            (&mut self.upload, self.upload_limit)
        } else if upload {
            (&mut self.upload, UNLIMITED)
        } else {
            (&mut self.other, UNLIMITED)
        };
        window.roll(now);
        let retry_after = window.retry_after(now).max(1);
        if window.count >= limit {
            return Err(RateInfo {
                limit,
                remaining: 0,
                retry_after,
            });
        }
        window.count += 1;
        Ok(RateInfo {
            limit,
            remaining: limit - window.count,
            retry_after,
        })
    }
}

/// Request counts for `/_emulator/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: BTreeMap<String, u64>,
    pub statuses: BTreeMap<String, u64>,
}

/// Everything handlers share.
pub struct Shared {
    pub store: Store,
    pub api_key: Option<Secret>,
    pub tokens: tokio::sync::Mutex<Vec<UploadToken>>,
    pub access: tokio::sync::Mutex<Vec<AccessToken>>,
    videos: Mutex<HashMap<String, Arc<tokio::sync::Mutex<VideoRec>>>>,
    seq: AtomicU64,
    pub limiter: Mutex<Limiter>,
    pub faults: Mutex<FaultPlan>,
    pub stats: Mutex<Stats>,
    /// Body bytes received on upload routes (`POST /upload`, `POST /videos/{id}/source`).
    pub upload_body_bytes: Arc<AtomicU64>,
    /// Lifetime of new access tokens (`expires_in`), seconds.
    pub access_ttl_secs: AtomicU64,
}

/// Locks a std mutex, recovering from poisoning (state stays usable after a panic elsewhere).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(
        store: Store,
        api_key: Option<Secret>,
        upload_limit: u32,
        loaded: super::store::Loaded,
    ) -> Shared {
        let max_seq = loaded
            .videos
            .iter()
            .map(|v| v.seq)
            .chain(loaded.tokens.iter().map(|t| t.seq))
            .max()
            .unwrap_or(0);
        let videos = loaded
            .videos
            .into_iter()
            .map(|v| (v.id.clone(), Arc::new(tokio::sync::Mutex::new(v))))
            .collect();
        Shared {
            store,
            api_key,
            tokens: tokio::sync::Mutex::new(loaded.tokens),
            access: tokio::sync::Mutex::new(loaded.access),
            videos: Mutex::new(videos),
            seq: AtomicU64::new(max_seq + 1),
            limiter: Mutex::new(Limiter::new(upload_limit)),
            faults: Mutex::new(FaultPlan::default()),
            stats: Mutex::new(Stats::default()),
            upload_body_bytes: Arc::new(AtomicU64::new(0)),
            access_ttl_secs: AtomicU64::new(super::auth::ACCESS_TTL_SECS),
        }
    }

    /// A new creation sequence number (orders records created in the same millisecond).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    pub fn video(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<VideoRec>>> {
        lock(&self.videos).get(id).cloned()
    }

    pub fn insert_video(&self, video: VideoRec) -> Arc<tokio::sync::Mutex<VideoRec>> {
        let id = video.id.clone();
        let arc = Arc::new(tokio::sync::Mutex::new(video));
        lock(&self.videos).insert(id, arc.clone());
        arc
    }

    pub fn remove_video(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<VideoRec>>> {
        lock(&self.videos).remove(id)
    }

    pub fn video_exists(&self, id: &str) -> bool {
        lock(&self.videos).contains_key(id)
    }

    /// Snapshots of every video, ordered by creation.
    pub async fn all_videos(&self) -> Vec<VideoRec> {
        let arcs: Vec<_> = lock(&self.videos).values().cloned().collect();
        let mut out = Vec::with_capacity(arcs.len());
        for a in arcs {
            out.push(a.lock().await.clone());
        }
        out.sort_by_key(|v| (v.created_ms, v.seq));
        out
    }

    /// Whether `key` is an accepted API key (the configured one, or any non-empty key).
    pub fn api_key_ok(&self, key: &str) -> bool {
        match &self.api_key {
            Some(k) => k.expose() == key,
            None => !key.is_empty(),
        }
    }

    /// Runs blocking disk work off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, super::errors::ApiError>
    where
        F: FnOnce(&Store) -> Result<T, super::EmulatorError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!("storage error: {e}");
                Err(super::errors::ApiError::internal("storage error"))
            }
            Err(e) => Err(super::errors::ApiError::internal(format!(
                "storage task failed: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_enforces_uploads_only() {
        let mut l = Limiter::new(2);
        assert_eq!(l.take(true).unwrap().remaining, 1);
        assert_eq!(l.take(true).unwrap().remaining, 0);
        let e = l.take(true).unwrap_err();
        assert!(e.retry_after >= 1 && e.retry_after <= 60);
        assert!(l.take(false).is_ok());
        l.set_upload_limit(0);
        assert_eq!(l.take(true).unwrap().limit, UNLIMITED);
    }
}
