//! The worker pool: `upload.workers` tasks under the daemon's cancellation token, resizable on
//! SIGHUP. Workers retired by a resize finish their current file first. The workers' context
//! (api client, API key, `[upload]` settings) can be replaced on SIGHUP too: each worker takes
//! the current one when it claims its next file; a file in progress keeps the one it began with.
//!
//! Idle workers do not poll: they sleep until the next retry is due or they are woken. Work this
//! process queues wakes them through the journal's [`Journal::work_signal`]; work queued by other
//! processes (`ingestd retry` writes the journal directly) is noticed by one pool task reading
//! `PRAGMA data_version` once per [`FOREIGN_CHECK`], which then wakes them the same way.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::upload::worker::{WorkerContext, WorkerError, run_worker};

/// How often the pool looks for journal changes made by other processes.
pub const FOREIGN_CHECK: Duration = Duration::from_secs(1);

struct Slot {
    retire: CancellationToken,
    handle: JoinHandle<Result<(), WorkerError>>,
}

/// A running pool of upload workers.
pub struct Pool {
    ctx: watch::Sender<WorkerContext>,
    shutdown: CancellationToken,
    wake: Arc<Notify>,
    slots: Vec<Slot>,
    foreign: JoinHandle<()>,
    failed: Failure,
}

/// Why a worker ended although neither retired nor shut down (`None` while all run). Shared
/// with the daemon's liveness check.
#[derive(Debug, Clone, Default)]
pub struct Failure(Arc<Mutex<Option<String>>>);

impl Failure {
    fn set(&self, why: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
    }

    /// The first worker that ended on its own, and why.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Pool {
    /// Starts `workers` workers. Rows left `uploading` by a crashed process must have been
    /// reclaimed (`Journal::reclaim_interrupted`) before.
    pub fn spawn(ctx: WorkerContext, workers: usize, shutdown: CancellationToken) -> Pool {
        let wake = ctx.journal.work_signal();
        let foreign = tokio::spawn(watch_other_processes(
            ctx.journal.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
        let mut pool = Pool {
            ctx: watch::Sender::new(ctx),
            shutdown,
            wake,
            slots: Vec::new(),
            foreign,
            failed: Failure::default(),
        };
        pool.resize(workers);
        pool
    }

    /// The context workers use for the files they claim from now on.
    pub fn context(&self) -> WorkerContext {
        self.ctx.borrow().clone()
    }

    /// Replaces the context for files claimed from now on (SIGHUP).
    pub fn set_context(&self, ctx: WorkerContext) {
        self.ctx.send_replace(ctx);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Set when a worker ends on its own (an error it could not handle): the daemon stops.
    pub fn failure(&self) -> Failure {
        self.failed.clone()
    }

    /// Grows or shrinks the pool; retired workers stop after their current file.
    pub fn resize(&mut self, workers: usize) {
        while self.slots.len() > workers {
            if let Some(slot) = self.slots.pop() {
                slot.retire.cancel();
            }
        }
        while self.slots.len() < workers {
            let n = self.slots.len() + 1;
            let retire = self.shutdown.child_token();
            let ctx = self.ctx.subscribe();
            let wake = self.wake.clone();
            let (r, shutdown) = (retire.clone(), self.shutdown.clone());
            let failed = self.failed.clone();
            let handle = tokio::spawn(async move {
                let result = run_worker(n, ctx, r.clone(), shutdown, wake).await;
                if !r.is_cancelled() {
                    failed.set(match &result {
                        Ok(()) => format!("upload worker {n} ended unexpectedly"),
                        Err(e) => format!("upload worker {n} stopped: {e}"),
                    });
                }
                result
            });
            self.slots.push(Slot { retire, handle });
        }
    }

    /// Waits for every worker to end (after the shutdown token was cancelled).
    pub async fn join(self) -> Result<(), WorkerError> {
        self.foreign.abort();
        let mut first_err = None;
        for slot in self.slots {
            match slot.handle.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("upload worker stopped: {e}");
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    tracing::error!("upload worker panicked: {e}");
                    first_err.get_or_insert(WorkerError::Join(e));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Wakes idle workers when another process changed the journal (`ingestd retry`, `ingestd
/// upload`): `PRAGMA data_version` of our connection changes only for other connections'
/// commits. One short read per [`FOREIGN_CHECK`] for the whole pool, whatever its size.
async fn watch_other_processes(journal: Journal, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut last = None;
    let mut tick = tokio::time::interval(FOREIGN_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let j = journal.clone();
        match tokio::task::spawn_blocking(move || j.data_version()).await {
            Ok(Ok(v)) => {
                if last.is_some_and(|l| l != v) {
                    tracing::debug!("the journal was changed by another process: waking workers");
                    wake.notify_waiters();
                }
                last = Some(v);
            }
            // The workers report a failing journal themselves; this check just tries again.
            Ok(Err(e)) => tracing::debug!("journal data_version: {e}"),
            Err(e) => tracing::debug!("journal data_version task: {e}"),
        }
    }
}
