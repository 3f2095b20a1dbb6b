//! Model test of the settle logic (`watch::tracker::Tracker` over `watch::settle::Settler`) with a
//! fake filesystem, a fake monotonic clock and a sink that follows renames like the journal:
//! random sequences of create, append, pause, rename, truncate, delete and rewrite over a few
//! files, with events delivered or lost at random and occasional reconcile scans.
//!
//! Invariants: no file is reported stable while it changed within the last `settle`; every file
//! left unchanged for `settle` ends up queued, exactly once per identity (dev, inode, size, mtime),
//! renames included.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod watch_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ingestd::journal::{FileIdentity, Observation};
use ingestd::watch::tracker::Tracker;
use proptest::prelude::*;
use tokio::time::Instant;
use watch_support::{FakeSink, State, key};

const SETTLE_MS: u64 = 1000;
const TICK_MS: u64 = 250;
const NAMES: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u64),
    Append(usize, u64),
    Pause(u64),
    Rename(usize, usize),
    Truncate(usize),
    Delete(usize),
    /// Write a new file and rename it over the old name (new inode).
    Rewrite(usize, u64),
    /// A reconcile scan: every file is observed.
    Scan,
}

fn op() -> impl Strategy<Value = (Op, bool)> {
    let n = 0..NAMES;
    let op = prop_oneof![
        (n.clone(), 0..3u64).prop_map(|(f, s)| Op::Create(f, s)),
        (n.clone(), 1..100u64).prop_map(|(f, s)| Op::Append(f, s)),
        (0..2500u64).prop_map(Op::Pause),
        (0..2500u64).prop_map(Op::Pause),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        n.clone().prop_map(Op::Truncate),
        n.clone().prop_map(Op::Delete),
        (n, 1..100u64).prop_map(|(f, s)| Op::Rewrite(f, s)),
        Just(Op::Scan),
    ];
    // The bool: whether this operation's events reach the watcher.
    (op, prop::bool::weighted(0.7))
}

#[derive(Debug, Clone, Copy)]
struct Inode {
    id: FileIdentity,
    /// Model time (ms) of the last change of anything in the identity.
    changed_at: u64,
}

struct Model {
    files: BTreeMap<PathBuf, Inode>,
    t: u64,
    next_tick: u64,
    next_ino: u64,
    /// Strictly increasing timestamp source: every change changes mtime/ctime.
    stamp: i64,
    base: Instant,
    tracker: Tracker,
    sink: Arc<FakeSink>,
    checked: usize,
}

fn name(i: usize) -> PathBuf {
    PathBuf::from(format!("/root/f{i}.mp4"))
}

impl Model {
    fn new() -> Model {
        let sink = Arc::new(FakeSink::default());
        let tracker = Tracker::new(
            "/root".into(),
            sink.clone(),
            Duration::from_millis(SETTLE_MS),
        );
        Model {
            files: BTreeMap::new(),
            t: 0,
            next_tick: TICK_MS,
            next_ino: 1,
            stamp: 1_000,
            base: Instant::now(),
            tracker,
            sink,
            checked: 0,
        }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.t)
    }

    fn stamp(&mut self) -> i64 {
        self.stamp += 1;
        self.stamp
    }

    fn stat(&self, p: &Path) -> Option<FileIdentity> {
        self.files.get(p).map(|i| i.id)
    }

    /// Event hints for `paths`: stat each, report present ones first, then missing ones (as the
    /// engine does within one batch).
    fn hints(&mut self, paths: &[PathBuf]) {
        let now = self.now();
        let mut obs = Vec::new();
        let mut gone = Vec::new();
        for p in paths {
            match self.stat(p) {
                Some(id) => obs.push(Observation {
                    root: "/root".into(),
                    path: p.clone(),
                    identity: id,
                }),
                None => gone.push(p.clone()),
            }
        }
        self.tracker.observed(obs, now);
        if !gone.is_empty() {
            self.tracker.vanished(gone);
        }
        self.verify();
    }

    fn scan(&mut self) {
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        let now = self.now();
        let obs = paths
            .iter()
            .map(|p| Observation {
                root: "/root".into(),
                path: p.clone(),
                identity: self.files[p].id,
            })
            .collect();
        self.tracker.observed(obs, now);
        self.verify();
    }

    fn pause(&mut self, dt: u64) {
        let target = self.t + dt;
        while self.next_tick <= target {
            self.t = self.next_tick;
            self.next_tick += TICK_MS;
            let now = self.now();
            let files = self.files.clone();
            let gone = self.tracker.check(now, |p| files.get(p).map(|i| i.id));
            if !gone.is_empty() {
                self.tracker.vanished(gone);
            }
            self.verify();
        }
        self.t = target;
    }

    fn new_inode(&mut self, size: u64) -> Inode {
        let ino = self.next_ino;
        self.next_ino += 1;
        let s = self.stamp();
        Inode {
            id: FileIdentity {
                dev: 1,
                ino,
                size,
                mtime_ns: s,
                ctime_ns: s,
            },
            changed_at: self.t,
        }
    }

    fn modify(&mut self, p: &Path, f: impl FnOnce(&mut FileIdentity)) -> bool {
        let s = self.stamp();
        let t = self.t;
        match self.files.get_mut(p) {
            Some(i) => {
                f(&mut i.id);
                i.id.mtime_ns = s;
                i.id.ctime_ns = s;
                i.changed_at = t;
                true
            }
            None => false,
        }
    }

    fn apply(&mut self, op: &Op, delivered: bool) {
        let touched: Vec<PathBuf> = match *op {
            Op::Create(f, size) => {
                let p = name(f);
                if self.files.contains_key(&p) {
                    return;
                }
                let i = self.new_inode(size);
                self.files.insert(p.clone(), i);
                vec![p]
            }
            Op::Append(f, n) => {
                let p = name(f);
                if !self.modify(&p, |id| id.size += n) {
                    return;
                }
                vec![p]
            }
            Op::Truncate(f) => {
                let p = name(f);
                if !self.modify(&p, |id| id.size = 0) {
                    return;
                }
                vec![p]
            }
            Op::Delete(f) => {
                let p = name(f);
                if self.files.remove(&p).is_none() {
                    return;
                }
                vec![p]
            }
            Op::Rename(a, b) => {
                let (pa, pb) = (name(a), name(b));
                if a == b || self.files.contains_key(&pb) {
                    return;
                }
                let Some(mut i) = self.files.remove(&pa) else {
                    return;
                };
                // rename(2) changes ctime, not mtime.
                i.id.ctime_ns = self.stamp();
                i.changed_at = self.t;
                self.files.insert(pb.clone(), i);
                vec![pb, pa]
            }
            Op::Rewrite(f, size) => {
                let p = name(f);
                let i = self.new_inode(size);
                self.files.insert(p.clone(), i);
                vec![p]
            }
            Op::Pause(dt) => {
                self.pause(dt);
                return;
            }
            Op::Scan => {
                self.scan();
                return;
            }
        };
        if delivered {
            self.hints(&touched);
        }
    }

    /// Checks every new `queued` transition against the model at the current time.
    fn verify(&mut self) {
        let queued: Vec<Observation> = self.sink.with(|l| {
            l.queued[self.checked..]
                .iter()
                .map(|(o, _)| o.clone())
                .collect()
        });
        self.checked += queued.len();
        for o in queued {
            let f = self.files.get(&o.path).unwrap_or_else(|| {
                panic!("{} reported stable but does not exist", o.path.display())
            });
            assert_eq!(f.id, o.identity, "stable with a stale identity");
            assert!(
                f.changed_at + SETTLE_MS <= self.t,
                "{} reported stable at {} ms but changed at {} ms",
                o.path.display(),
                self.t,
                f.changed_at
            );
            assert!(o.identity.size > 0, "an empty file was reported stable");
        }
    }

    fn finish(&mut self) {
        // A reconcile scan, then long enough for everything to settle.
        self.scan();
        self.pause(SETTLE_MS + 2 * TICK_MS);
        let mut per_key: HashMap<(u64, u64, u64, i64), usize> = HashMap::new();
        self.sink.with(|l| {
            for (o, _) in &l.queued {
                *per_key.entry(key(&o.identity)).or_default() += 1;
            }
        });
        for (k, n) in &per_key {
            assert_eq!(*n, 1, "identity {k:?} queued {n} times");
        }
        for (p, i) in &self.files {
            if i.id.size == 0 {
                continue;
            }
            let row = self
                .sink
                .row(p)
                .unwrap_or_else(|| panic!("{} has no row", p.display()));
            assert_eq!(
                row.state,
                State::Queued,
                "{} not queued: {row:?}",
                p.display()
            );
            assert_eq!(key(&row.id), key(&i.id));
        }
        assert!(
            self.tracker.tracked() <= self.files.len(),
            "tracks files that do not exist"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn settle_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut m = Model::new();
        for (op, delivered) in &ops {
            m.apply(op, *delivered);
        }
        m.finish();
    }
}

/// A file appended to more often than `settle` is never stable; once it stops it is, once.
#[test]
fn steady_writer_never_stable_until_it_stops() {
    let mut m = Model::new();
    m.apply(&Op::Create(0, 1), true);
    for _ in 0..40 {
        m.apply(&Op::Append(0, 10), false);
        m.pause(SETTLE_MS / 2);
        assert!(m.sink.with(|l| l.queued.is_empty()));
    }
    m.pause(SETTLE_MS + TICK_MS);
    assert_eq!(m.sink.with(|l| l.queued.len()), 1);
    m.finish();
}

/// A rename after `queued` (with the events in either order) does not queue the file again.
#[test]
fn rename_after_queued_is_not_queued_again() {
    for gone_first in [false, true] {
        let mut m = Model::new();
        m.apply(&Op::Create(0, 5), true);
        m.pause(SETTLE_MS + TICK_MS);
        assert_eq!(m.sink.with(|l| l.queued.len()), 1);
        m.apply(&Op::Rename(0, 1), false);
        if gone_first {
            m.hints(&[name(0)]);
            m.hints(&[name(1)]);
        } else {
            m.hints(&[name(1), name(0)]);
        }
        m.pause(3 * SETTLE_MS);
        m.finish();
        assert_eq!(m.sink.with(|l| l.queued.len()), 1);
    }
}

/// A failing sink delays reports; nothing is lost once it recovers.
#[test]
fn sink_failures_are_retried() {
    let mut m = Model::new();
    *m.sink.fail.lock().unwrap() = true;
    m.apply(&Op::Create(0, 5), true);
    m.apply(&Op::Create(1, 5), true);
    m.pause(2 * SETTLE_MS);
    assert!(m.sink.with(|l| l.queued.is_empty()));
    *m.sink.fail.lock().unwrap() = false;
    m.pause(2 * SETTLE_MS);
    assert_eq!(m.sink.with(|l| l.queued.len()), 2);
    m.finish();
}
