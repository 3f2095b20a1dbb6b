//! The progress board: bytes sent per file in flight, for `ingestd upload`'s progress bars, the
//! systemd `STATUS=` line and the status page. Memory only; the journal holds committed offsets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One upload in flight.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: i64,
    pub path: PathBuf,
    pub total: u64,
    /// Bytes sent or acknowledged so far (including what was sent before a resume).
    pub done: u64,
    /// Average rate since this process started the file, bytes per second.
    pub rate: f64,
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    total: u64,
    done: u64,
    start_bytes: u64,
    started: Instant,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Arc<Mutex<HashMap<i64, Entry>>>,
}

impl Progress {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<i64, Entry>) -> R) -> R {
        match self.inner.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn start(&self, id: i64, path: &Path, total: u64, done: u64) {
        self.with(|m| {
            m.insert(
                id,
                Entry {
                    path: path.to_owned(),
                    total,
                    done,
                    start_bytes: done,
                    started: Instant::now(),
                },
            )
        });
    }

    pub fn add(&self, id: i64, n: u64) {
        self.with(|m| {
            if let Some(e) = m.get_mut(&id) {
                e.done = (e.done + n).min(e.total);
            }
        });
    }

    pub fn set(&self, id: i64, done: u64) {
        self.with(|m| {
            if let Some(e) = m.get_mut(&id) {
                e.done = done.min(e.total);
            }
        });
    }

    pub fn finish(&self, id: i64) {
        self.with(|m| m.remove(&id));
    }

    pub fn snapshot(&self) -> Vec<InFlight> {
        let mut v: Vec<InFlight> = self.with(|m| {
            m.iter()
                .map(|(id, e)| {
                    let secs = e.started.elapsed().as_secs_f64().max(0.001);
                    InFlight {
                        id: *id,
                        path: e.path.clone(),
                        total: e.total,
                        done: e.done,
                        rate: (e.done.saturating_sub(e.start_bytes)) as f64 / secs,
                    }
                })
                .collect()
        });
        v.sort_by_key(|f| f.id);
        v
    }
}
