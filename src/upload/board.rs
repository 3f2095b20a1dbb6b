//! The board of uploads in flight (path, size, bytes streamed, rate), for `ingestd upload`'s
//! progress bars, the systemd `STATUS=` line and the status page. Memory only: the journal holds
//! the committed offsets; each entry reads the worker's live [`Progress`] counter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::progress::Progress;

/// One upload in flight.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: i64,
    pub path: PathBuf,
    pub total: u64,
    /// Bytes streamed so far, including what was acknowledged before a resume.
    pub done: u64,
    /// Average rate since this process started the file, bytes per second.
    pub rate: f64,
    /// Chunk requests in flight for it (1, or up to `upload.lanes_per_file` once its
    /// `videoId` is known).
    pub lanes: usize,
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    total: u64,
    progress: Progress,
    start_bytes: u64,
    started: Instant,
    lanes: usize,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<HashMap<i64, Entry>>>,
}

/// Removes its entry from the board when dropped (the upload ended, whatever the way).
pub struct OnBoard {
    board: Board,
    id: i64,
}

impl Drop for OnBoard {
    fn drop(&mut self) {
        self.board.with(|m| m.remove(&self.id));
    }
}

impl Board {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<i64, Entry>) -> R) -> R {
        match self.inner.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Puts a file on the board until the returned guard is dropped.
    pub fn start(&self, id: i64, path: &Path, total: u64, progress: Progress) -> OnBoard {
        let start_bytes = progress.get();
        self.with(|m| {
            m.insert(
                id,
                Entry {
                    path: path.to_owned(),
                    total,
                    progress,
                    start_bytes,
                    started: Instant::now(),
                    lanes: 1,
                },
            )
        });
        OnBoard {
            board: self.clone(),
            id,
        }
    }

    /// How many chunk requests of file `id` are in flight (lanes).
    pub fn set_lanes(&self, id: i64, lanes: usize) {
        self.with(|m| {
            if let Some(e) = m.get_mut(&id) {
                e.lanes = lanes.max(1);
            }
        });
    }

    /// The uploads in flight, by journal id.
    pub fn snapshot(&self) -> Vec<InFlight> {
        let mut v: Vec<InFlight> = self.with(|m| {
            m.iter()
                .map(|(id, e)| {
                    let done = e.progress.get().min(e.total);
                    let secs = e.started.elapsed().as_secs_f64().max(0.001);
                    InFlight {
                        id: *id,
                        path: e.path.clone(),
                        total: e.total,
                        done,
                        rate: done.saturating_sub(e.start_bytes) as f64 / secs,
                        lanes: e.lanes,
                    }
                })
                .collect()
        });
        v.sort_by_key(|f| f.id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_with_their_guard() {
        let board = Board::default();
        let p = Progress::new(10);
        let guard = board.start(7, Path::new("/r/a.mp4"), 100, p.clone());
        p.add(40);
        let snap = board.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!((snap[0].id, snap[0].done, snap[0].total), (7, 50, 100));
        drop(guard);
        assert!(board.snapshot().is_empty());
    }
}
