//! Watching: notify bridge, initial and periodic scans, settle check.
//!
//! SKELETON: [`Sink`] is the contract between the watcher and the journal (which implements it).

use std::path::{Path, PathBuf};

use crate::journal::Observation;

pub mod filter;

/// Error reported by a [`Sink`] (the journal); the watcher logs it and retries on the next scan.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where the watcher reports what it sees. Implemented by `journal::Journal`; tests use a fake.
/// Each call is one transaction in the journal.
pub trait Sink: Send + Sync + 'static {
    /// Files present now (from a scan or an event). The journal creates `settling` rows for new
    /// files, moves changed files back to `settling`, and follows renames (same dev+inode+size+mtime
    /// → the row keeps its state, only its path changes). Returns, per observation, whether the
    /// watcher must track it for settling (`true`) or can forget it (already queued/uploading/done
    /// with this identity).
    fn seen(&self, batch: &[Observation]) -> Result<Vec<bool>, SinkError>;
    /// Files whose identity stayed unchanged for `settle`: `settling` → `queued` (only if the
    /// identity still matches the row).
    fn stable(&self, batch: &[Observation]) -> Result<(), SinkError>;
    /// Paths under `root` that no longer exist: `settling`/`queued` rows become `gone`.
    fn gone(&self, root: &Path, paths: &[PathBuf]) -> Result<(), SinkError>;
}
