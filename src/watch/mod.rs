//! Watching: which files exist under the watch roots and when each has settled, reported to the
//! journal through [`Sink`].
//!
//! Events are hints; scans are the truth. Each root gets an initial scan, a periodic reconcile
//! scan (`rescan_interval`, or `poll_interval` when polling), a rescan when events were lost
//! (inotify overflow or a full event channel), and a subtree scan of every new directory right
//! after its watch is added. Roots on network or FUSE filesystems are polled in `mode = "auto"`;
//! running out of inotify watches makes a root fall back to polling with one log line saying how
//! to raise the limit. A missing root is reported and re-checked, never fatal.
//!
//! Files:
//! - [`bridge`]: notify → tokio channel, overflow flag.
//! - [`scan`]: the directory walk (filters, symlinks, odd entries).
//! - [`rules`]: what is never uploaded (the daemon's secrets, links against the rules).
//! - [`settle`]: the pure settle state machine; [`tracker`] wires it to the sink in batches.
//! - [`container`]: is a settled recording finished (header-only structure check)?
//! - `engine`: per-root synchronous work; `root`: per-root task; [`fstype`]: statfs magic.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::WatchConfig;
use crate::journal::Observation;

pub mod bridge;
pub mod container;
mod engine;
pub mod filter;
pub mod fstype;
mod root;
pub mod rules;
pub mod scan;
pub mod settle;
pub mod tracker;

/// Error reported by a [`Sink`] (the journal); the watcher logs it and retries on the next scan.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where the watcher reports what it sees. Implemented by `journal::Journal`; tests use a fake.
/// Each call is one transaction in the journal.
///
/// Calls block (SQLite): the watcher makes them from blocking threads, at most [`tracker::BATCH`]
/// observations per call. A failed call is logged and retried at the next check.
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
    ///
    /// Notes for implementors: a path may be one the journal never saw (ignore it). The old path
    /// of a rename can be reported `gone` before the new path is `seen` (the two events were
    /// split across batches, or lost and found again by a rescan), so `seen` should match `gone`
    /// rows by dev+inode+size+mtime as well and restore them (with their earlier state) rather
    /// than create a new row. Files the watcher does not track (already queued) under a deleted
    /// directory, or deleted while a root is polled, are not reported: the uploader finds them
    /// missing.
    fn gone(&self, root: &Path, paths: &[PathBuf]) -> Result<(), SinkError>;

    /// Whether the sink is in a degraded state it reports itself (the journal cannot write: a
    /// full disk), so that the watcher does not log each failed call on top of it.
    fn degraded(&self) -> bool {
        false
    }

    /// Paths of `settling` rows under `root` (at most `limit`), for the check after a full scan
    /// of rows no scan reports any more (their path became a symlink, say). None by default.
    fn settling(&self, _root: &Path, _limit: usize) -> Result<Vec<PathBuf>, SinkError> {
        Ok(Vec::new())
    }
    /// Rows at these paths whose path the rules refuse now: `settling`/`queued`/`failed` rows
    /// become `gone` with the reason. By default reported as plain [`Sink::gone`].
    fn refused(&self, root: &Path, paths: &[(PathBuf, String)]) -> Result<(), SinkError> {
        let paths: Vec<PathBuf> = paths.iter().map(|(p, _)| p.clone()).collect();
        self.gone(root, &paths)
    }

    /// Settled files whose container check said incomplete, with the reason: they stay
    /// `settling` (not queued) and the reason is shown (only if the identity still matches).
    fn incomplete(&self, batch: &[(Observation, String)]) -> Result<(), SinkError> {
        let _ = batch;
        Ok(())
    }
    /// Files held as incomplete and unchanged for `incomplete_after`: `settling` → `failed` with
    /// the slug [`container::SLUG`] (only if the identity still matches). `after` is that duration.
    fn expired(&self, batch: &[Observation], after: std::time::Duration) -> Result<(), SinkError> {
        let _ = (batch, after);
        Ok(())
    }
}

/// How a root is being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// inotify events plus periodic reconcile scans.
    Events,
    /// Scans every `poll_interval`, no events.
    Poll,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Events => "events",
            Mode::Poll => "poll",
        })
    }
}

/// Whether a root can be watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// The root does not exist (yet, or not mounted): re-checked every `poll_interval`.
    Missing,
    /// The root exists but cannot be used (not a directory, unreadable, …).
    Error(String),
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Ok => f.write_str("ok"),
            Health::Missing => f.write_str("missing"),
            Health::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// The state of one watch root, for `status` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootStatus {
    pub path: PathBuf,
    pub mode: Mode,
    pub health: Health,
    /// inotify watches this root uses (one per watched directory).
    pub watches: usize,
    /// Files the watcher is waiting on to settle.
    pub settling: usize,
}

/// Knobs for tests and benchmarks; [`spawn`] uses the defaults.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Capacity of each root's event channel (a full channel triggers a rescan).
    pub event_capacity: usize,
    /// Pretend the inotify watch limit is this many watches per root.
    pub max_watches: Option<usize>,
    /// The daemon's own files, never reported (see [`rules`]).
    pub secrets: rules::Secrets,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            event_capacity: 4096,
            max_watches: None,
            secrets: rules::Secrets::default(),
        }
    }
}

struct RootHandle {
    status: Arc<Mutex<RootStatus>>,
    signals: Arc<bridge::Signals>,
    rescan: Arc<Notify>,
}

/// The running watcher: status, rescans, readiness and shutdown.
pub struct WatchHandle {
    roots: Vec<RootHandle>,
    initial: watch::Receiver<usize>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts one task per root, reporting to `sink` until `shutdown` is cancelled. Must be called
/// inside a tokio runtime.
pub fn spawn(
    roots: Vec<WatchConfig>,
    sink: Arc<dyn Sink>,
    shutdown: CancellationToken,
) -> WatchHandle {
    spawn_with(roots, sink, shutdown, SpawnOptions::default())
}

/// [`spawn`] with test knobs.
#[doc(hidden)]
pub fn spawn_with(
    roots: Vec<WatchConfig>,
    sink: Arc<dyn Sink>,
    shutdown: CancellationToken,
    opts: SpawnOptions,
) -> WatchHandle {
    let (tx, initial) = watch::channel(roots.len());
    let tx = Arc::new(tx);
    let rules = Arc::new(rules::Rules::new(&roots, opts.secrets.clone()));
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for cfg in roots {
        let status = Arc::new(Mutex::new(RootStatus {
            path: cfg.path.clone(),
            mode: match cfg.mode {
                crate::config::WatchMode::Poll => Mode::Poll,
                _ => Mode::Events,
            },
            health: Health::Ok,
            watches: 0,
            settling: 0,
        }));
        let signals = Arc::new(bridge::Signals::default());
        let rescan = Arc::new(Notify::new());
        let task = root::RootTask {
            cfg,
            sink: sink.clone(),
            shutdown: shutdown.clone(),
            signals: signals.clone(),
            rescan: rescan.clone(),
            status: status.clone(),
            initial: Some(root::InitialGuard(tx.clone())),
            opts: opts.clone(),
            rules: rules.clone(),
        };
        tasks.push(tokio::spawn(task.run()));
        handles.push(RootHandle {
            status,
            signals,
            rescan,
        });
    }
    WatchHandle {
        roots: handles,
        initial,
        tasks,
    }
}

impl WatchHandle {
    /// Resolves once every root's initial scan has been reported to the sink (a root missing at
    /// start counts as scanned). The daemon sends `READY=1` then.
    pub async fn initial_scan_done(&self) {
        let mut rx = self.initial.clone();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// One entry per root, in configuration order.
    pub fn status(&self) -> Vec<RootStatus> {
        self.roots
            .iter()
            .map(|r| {
                r.status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
            .collect()
    }

    /// Whether a root's task has ended (they only end at shutdown; earlier means it failed).
    pub fn ended(&self) -> bool {
        self.tasks.iter().any(JoinHandle::is_finished)
    }

    /// Rescans every root now (SIGHUP); a missing root is re-checked now.
    pub fn rescan_now(&self) {
        for r in &self.roots {
            r.rescan.notify_one();
        }
    }

    /// Waits for every root task to end (after the shutdown token is cancelled).
    pub async fn join(self) {
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!("watch task failed: {e}");
            }
        }
    }

    /// Test hook: behave as if events had been lost (as when the event channel is full).
    #[doc(hidden)]
    pub fn simulate_overflow(&self) {
        for r in &self.roots {
            r.signals.raise_overflow();
        }
    }

    /// Test hook: discard every event from now on (`true`), as if the kernel had lost them.
    #[doc(hidden)]
    pub fn set_drop_events(&self, drop: bool) {
        for r in &self.roots {
            r.signals
                .drop_events
                .store(drop, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
