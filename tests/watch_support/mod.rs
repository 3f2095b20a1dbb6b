//! Shared by the watcher tests: an in-memory [`Sink`] that behaves like the journal will (rows
//! per file, renames followed by dev+inode+size+mtime, `gone` rows revived when their file shows
//! up again) and records every call, plus a poll-until helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ingestd::journal::{FileIdentity, Observation};
use ingestd::watch::{Sink, SinkError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Settling,
    Queued,
    Gone,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub path: PathBuf,
    pub id: FileIdentity,
    pub state: State,
    /// State before `gone`, restored when the file reappears (a rename whose new path was seen
    /// after the old one was reported gone).
    pub before_gone: State,
}

/// Key the journal matches renames on.
pub fn key(id: &FileIdentity) -> (u64, u64, u64, i64) {
    (id.dev, id.ino, id.size, id.mtime_ns)
}

#[derive(Debug, Default)]
pub struct Log {
    pub rows: Vec<Row>,
    /// Every observation passed to `seen`, with the wall instant of the call.
    pub seen: Vec<(Observation, Instant)>,
    /// Every `settling → queued` transition, with the instant of the call.
    pub queued: Vec<(Observation, Instant)>,
    /// Every path passed to `gone`.
    pub gone: Vec<PathBuf>,
    pub calls: usize,
    /// Largest batch passed to one call.
    pub max_batch: usize,
}

#[derive(Debug, Default)]
pub struct FakeSink {
    pub log: Mutex<Log>,
    /// While set, every call fails.
    pub fail: Mutex<bool>,
}

impl FakeSink {
    pub fn with<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.lock().unwrap())
    }

    pub fn was_seen(&self, p: &Path) -> bool {
        self.with(|l| l.seen.iter().any(|(o, _)| o.path == p))
    }

    pub fn queued_at(&self, p: &Path) -> Option<Instant> {
        self.with(|l| l.queued.iter().find(|(o, _)| o.path == p).map(|(_, t)| *t))
    }

    pub fn queued_count(&self, p: &Path) -> usize {
        self.with(|l| l.queued.iter().filter(|(o, _)| o.path == p).count())
    }

    pub fn row(&self, p: &Path) -> Option<Row> {
        self.with(|l| {
            l.rows
                .iter()
                .find(|r| r.path == p && r.state != State::Gone)
                .cloned()
        })
    }

    fn check_fail(&self) -> Result<(), SinkError> {
        if *self.fail.lock().unwrap() {
            Err(SinkError("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

impl Log {
    fn seen_one(&mut self, o: &Observation) -> bool {
        let k = key(&o.identity);
        if let Some(r) = self
            .rows
            .iter_mut()
            .find(|r| r.path == o.path && r.state != State::Gone)
        {
            if key(&r.id) == k {
                r.id = o.identity;
                return r.state == State::Settling;
            }
            if r.id.dev == o.identity.dev && r.id.ino == o.identity.ino {
                // Same file, changed content: back to settling.
                r.id = o.identity;
                r.state = State::Settling;
                return true;
            }
            // Another file now lives at this path: the old row is gone.
            r.before_gone = r.state;
            r.state = State::Gone;
        }
        // A rename (or a reappearance): same dev+inode+size+mtime elsewhere keeps its row.
        if let Some(r) = self.rows.iter_mut().find(|r| key(&r.id) == k) {
            r.path = o.path.clone();
            r.id = o.identity;
            if r.state == State::Gone {
                r.state = r.before_gone;
            }
            return r.state == State::Settling;
        }
        self.rows.push(Row {
            path: o.path.clone(),
            id: o.identity,
            state: State::Settling,
            before_gone: State::Settling,
        });
        true
    }
}

impl Sink for FakeSink {
    fn seen(&self, batch: &[Observation]) -> Result<Vec<bool>, SinkError> {
        self.check_fail()?;
        let mut l = self.log.lock().unwrap();
        l.calls += 1;
        l.max_batch = l.max_batch.max(batch.len());
        let now = Instant::now();
        Ok(batch
            .iter()
            .map(|o| {
                l.seen.push((o.clone(), now));
                l.seen_one(o)
            })
            .collect())
    }

    fn stable(&self, batch: &[Observation]) -> Result<(), SinkError> {
        self.check_fail()?;
        let mut l = self.log.lock().unwrap();
        l.calls += 1;
        l.max_batch = l.max_batch.max(batch.len());
        let now = Instant::now();
        for o in batch {
            let hit = l
                .rows
                .iter_mut()
                .find(|r| r.path == o.path && r.state == State::Settling && r.id == o.identity);
            if let Some(r) = hit {
                r.state = State::Queued;
                l.queued.push((o.clone(), now));
            }
        }
        Ok(())
    }

    fn gone(&self, _root: &Path, paths: &[PathBuf]) -> Result<(), SinkError> {
        self.check_fail()?;
        let mut l = self.log.lock().unwrap();
        l.calls += 1;
        for p in paths {
            l.gone.push(p.clone());
            for r in l.rows.iter_mut() {
                if &r.path == p && matches!(r.state, State::Settling | State::Queued) {
                    r.before_gone = r.state;
                    r.state = State::Gone;
                }
            }
        }
        Ok(())
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
