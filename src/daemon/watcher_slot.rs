//! The running watcher, shared between the daemon (which replaces it when the roots change on
//! reload) and the metrics listener (which reads its per-root status on every request).

use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use crate::watch::{RootStatus, WatchHandle};

/// Shared, cheap to clone; empty before the first watcher starts and after the last one stops.
#[derive(Clone, Default)]
pub struct WatcherSlot {
    inner: Arc<Mutex<Option<(WatchHandle, CancellationToken)>>>,
}

impl WatcherSlot {
    fn with<R>(&self, f: impl FnOnce(&mut Option<(WatchHandle, CancellationToken)>) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a started watcher (and the token that stops it) in the slot.
    pub fn put(&self, handle: WatchHandle, token: CancellationToken) {
        self.with(|s| *s = Some((handle, token)));
    }

    /// Takes the watcher out (to stop it).
    pub fn take(&self) -> Option<(WatchHandle, CancellationToken)> {
        self.with(Option::take)
    }

    /// Why the watcher stopped on its own (a root task ended before its token was cancelled).
    pub fn failure(&self) -> Option<String> {
        self.with(|s| match s {
            Some((h, token)) if !token.is_cancelled() && h.ended() => {
                Some("a watch task ended unexpectedly".to_owned())
            }
            _ => None,
        })
    }

    /// Per-root status of the current watcher (empty when none runs).
    pub fn status(&self) -> Vec<RootStatus> {
        self.with(|s| s.as_ref().map(|(h, _)| h.status()).unwrap_or_default())
    }
}
