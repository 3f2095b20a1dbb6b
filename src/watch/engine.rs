//! The synchronous work of one root, run on a blocking thread: full and subtree scans (adding
//! directory watches before listing), event hints turned into stats, and the periodic settle
//! check. Reports go through the [`Tracker`] to the sink.

use crate::escape::Show as _;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bridge::{AddError, CREATED, HintKind, Watcher};
use super::filter::Filter;
use super::rules::{Refusal, Route, Rules};
use super::scan::{LogOnce, UNREADABLE_DIR_HINT, Visitor, Walk, identity};
use super::tracker::{BATCH, Tracker};
use super::{Health, Sink};
use crate::config::WatchConfig;
use crate::journal::{FileIdentity, Observation};

/// Per-root state owned by the root task and lent to blocking threads.
pub struct Engine {
    cfg: WatchConfig,
    filter: Filter,
    rules: Arc<Rules>,
    tracker: Tracker,
    watcher: Option<Watcher>,
    log: LogOnce,
    cancel: CancellationToken,
    /// The inotify watch limit was reached: this root polls from now on.
    limit_hit: bool,
}

impl Engine {
    pub fn new(
        cfg: WatchConfig,
        filter: Filter,
        sink: Arc<dyn Sink>,
        rules: Arc<Rules>,
        cancel: CancellationToken,
    ) -> Engine {
        let mut tracker = Tracker::new(cfg.path.clone(), sink, cfg.settle);
        if cfg.check_container {
            tracker.set_checker(Tracker::file_checker(), cfg.incomplete_after);
        }
        Engine {
            cfg,
            filter,
            rules,
            tracker,
            watcher: None,
            log: LogOnce::default(),
            cancel,
            limit_hit: false,
        }
    }

    pub fn limit_hit(&self) -> bool {
        self.limit_hit
    }

    pub fn watches(&self) -> usize {
        self.watcher.as_ref().map_or(0, Watcher::count)
    }

    /// Nothing to check at the next tick.
    pub fn idle(&self) -> bool {
        self.tracker.idle()
    }

    /// When the earliest tracked file may become stable (`None` when none can, or when so many
    /// files are tracked that finding it costs more than waiting for the next tick).
    pub fn next_due(&self) -> Option<Instant> {
        let s = self.tracker.settler();
        if s.len() > 10_000 {
            return None;
        }
        s.next_due()
    }

    pub fn tracked(&self) -> usize {
        self.tracker.tracked()
    }

    pub fn set_watcher(&mut self, w: Option<Watcher>) {
        self.watcher = w;
    }

    /// Whether the root is a readable directory now.
    pub fn check_root(&self) -> Health {
        match fs::metadata(&self.cfg.path) {
            Ok(m) if m.is_dir() => Health::Ok,
            Ok(_) => Health::Error("the watch root is not a directory".into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Health::Missing,
            Err(e) => Health::Error(format!("cannot stat the watch root: {e}")),
        }
    }

    /// The root went away: stop tracking (without reporting files gone: an unmounted share
    /// comes back) and drop the watches.
    pub fn down(&mut self) {
        self.tracker.clear();
        self.watcher = None;
    }

    /// Scans the whole root. Returns the root's health.
    pub fn full_scan(&mut self) -> Health {
        let h = self.check_root();
        if h != Health::Ok {
            return h;
        }
        let root = self.cfg.path.clone();
        match self.scan_dir(&root) {
            Ok(()) => {
                self.reconcile();
                Health::Ok
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Health::Missing,
            Err(e) => Health::Error(format!("cannot read the watch root: {e}")),
        }
    }

    /// Scans `dir` (the root or a directory under it), watching its directories when events are
    /// in use and reporting files in batches.
    fn scan_dir(&mut self, dir: &Path) -> io::Result<()> {
        let walk = Walk {
            root: &self.cfg.path,
            filter: &self.filter,
            follow_symlinks: self.cfg.follow_symlinks,
            rules: &self.rules,
            cancel: &self.cancel,
        };
        let mut v = ScanVisitor {
            root: &self.cfg.path,
            poll_every: self.cfg.poll_interval,
            tracker: &mut self.tracker,
            watcher: &mut self.watcher,
            limit_hit: &mut self.limit_hit,
            batch: Vec::new(),
            watch_errors: Vec::new(),
        };
        let r = walk.run(dir, &mut self.log, &mut v);
        let (batch, errors) = (
            std::mem::take(&mut v.batch),
            std::mem::take(&mut v.watch_errors),
        );
        if !batch.is_empty() {
            self.tracker.observed(batch, Instant::now());
        }
        for (d, e) in errors {
            self.log.skip(
                &d,
                format_args!("cannot watch directory (polled only by rescans): {e}"),
            );
        }
        r
    }

    /// After a full scan: `settling` rows under this root that the scan did not report (so the
    /// tracker does not follow them) are checked against the rules; a path that is gone or that
    /// the rules refuse now (it became a symlink, or its directory did) ends the row `gone` with
    /// the reason instead of leaving it settling forever.
    fn reconcile(&mut self) {
        const LIMIT: usize = 10_000;
        let root = self.cfg.path.clone();
        let rows = match self.tracker.sink().settling(&root, LIMIT) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("cannot list settling rows: {e}");
                return;
            }
        };
        let mut refused = Vec::new();
        let mut missing = Vec::new();
        for p in rows {
            if self.tracker.settler().identity(&p).is_some() {
                continue;
            }
            match self.rules.check(&root, &p) {
                Ok(_) | Err(Refusal::Unknown(_)) => {}
                Err(Refusal::Missing(_)) => missing.push(p),
                Err(Refusal::Refused(why)) => {
                    self.log.skip(&p, &why);
                    refused.push((p, why));
                }
            }
        }
        if !refused.is_empty()
            && let Err(e) = self.tracker.sink().refused(&root, &refused)
        {
            tracing::warn!(root = %root.shown(), "journal: {e}");
        }
        if !missing.is_empty() {
            self.tracker.vanished(missing);
        }
    }

    /// Handles the paths events mentioned (deduplicated, with their merged kinds).
    pub fn hints(&mut self, hints: HashMap<PathBuf, HintKind>) -> Health {
        let now = Instant::now();
        let mut obs = Vec::new();
        let mut gone = Vec::new();
        for (path, kind) in hints {
            if path == self.cfg.path {
                let h = self.check_root();
                if h != Health::Ok {
                    return h;
                }
                continue;
            }
            let Ok(rel) = path.strip_prefix(&self.cfg.path) else {
                continue;
            };
            let meta = if self.cfg.follow_symlinks {
                fs::metadata(&path)
            } else {
                fs::symlink_metadata(&path)
            };
            if meta.is_ok() && self.cfg.follow_symlinks && is_link(&path) {
                match self.rules.route(&self.cfg.path, &path) {
                    Ok(Route::Inside { root, real }) => {
                        // Another name for a file or directory of the roots: whatever was
                        // tracked under this path (a file or directory replaced by the link) is
                        // gone from it, and a file of this root is observed under its real path.
                        if let Some(w) = self.watcher.as_mut() {
                            w.removed_under(&path);
                        }
                        if self.tracker.forget(&path) {
                            gone.push(path.clone());
                        }
                        gone.extend(self.tracker.forget_under(&path));
                        if root == self.cfg.path
                            && let Some(o) = self.inside_file(&path, real)
                        {
                            obs.push(o);
                        }
                        continue;
                    }
                    Ok(Route::Outside) | Err(_) => {}
                }
            }
            match meta {
                Ok(m) if m.is_dir() => {
                    if kind & CREATED != 0 && self.filter.rejects_dir(rel).is_none() {
                        if let Some(why) = self.link_refused(&path) {
                            self.log.skip(&path, why);
                            continue;
                        }
                        if self.cfg.follow_symlinks && link_to_ancestor(&path) {
                            self.log.skip(
                                &path,
                                "symlink loop: it points to one of its parent directories",
                            );
                            continue;
                        }
                        if let Some(w) = self.watcher.as_mut() {
                            w.removed_under(&path);
                        }
                        if let Err(e) = self.scan_dir(&path) {
                            if e.kind() != io::ErrorKind::NotFound {
                                self.log.skip(
                                    &path,
                                    format_args!(
                                        "cannot read directory: {e}; {UNREADABLE_DIR_HINT}"
                                    ),
                                );
                            }
                        }
                    }
                }
                Ok(m) if m.is_file() => {
                    if self.filter.rejects_file(rel).is_none() {
                        let why = self.link_refused(&path).or_else(|| {
                            let via_link = self.cfg.follow_symlinks && is_link(&path);
                            self.rules.refuse_file(&path, &m, via_link)
                        });
                        if let Some(why) = why {
                            self.log.skip(&path, why);
                            if self.tracker.forget(&path) {
                                gone.push(path);
                            }
                            continue;
                        }
                        obs.push(Observation {
                            root: self.cfg.path.clone(),
                            path,
                            identity: identity(&m),
                        });
                    }
                }
                Ok(m) if m.file_type().is_symlink() => {}
                Ok(_) => {
                    if self.filter.rejects_file(rel).is_none() {
                        self.log.skip(
                            &path,
                            "not a regular file (FIFO, socket or device): nothing to upload",
                        );
                    }
                }
                Err(e) if is_missing(&e) => {
                    let was_dir = self
                        .watcher
                        .as_mut()
                        .is_some_and(|w| w.removed_under(&path));
                    if self.tracker.forget(&path) {
                        gone.push(path);
                    } else if was_dir {
                        gone.extend(self.tracker.forget_under(&path));
                    } else if self.filter.rejects_file(rel).is_none() {
                        // Maybe a queued file the journal knows and we do not track.
                        gone.push(path);
                    }
                }
                Err(e) => {
                    if e.raw_os_error() == Some(libc::ELOOP) {
                        self.log.skip(&path, format_args!("symlink loop: {e}"));
                    } else if self.filter.rejects_file(rel).is_none() {
                        self.log.skip(&path, format_args!("cannot stat: {e}"));
                    }
                }
            }
        }
        while !obs.is_empty() {
            let rest = obs.split_off(obs.len().min(BATCH));
            self.tracker.observed(obs, now);
            obs = rest;
        }
        if !gone.is_empty() {
            // Seen first, gone after: a rename's new path reaches the journal before its old one.
            self.tracker.vanished(gone);
        }
        Health::Ok
    }

    /// The periodic settle check. Returns the root's health (files that vanished because the
    /// root itself went away are not reported gone).
    pub fn tick(&mut self) -> Health {
        let follow = self.cfg.follow_symlinks;
        let (rules, root) = (&self.rules, &self.cfg.path);
        let gone = self.tracker.check(Instant::now(), |p| {
            // A tracked file replaced by a link into the roots is gone from its path: the file
            // it leads to is tracked under its own.
            if follow && is_link(p) && matches!(rules.route(root, p), Ok(Route::Inside { .. })) {
                return None;
            }
            stat(p, follow)
        });
        if !gone.is_empty() {
            let h = self.check_root();
            if h != Health::Ok {
                return h;
            }
            self.tracker.vanished(gone);
        }
        Health::Ok
    }
}

impl Engine {
    /// A link of this root to `real`, inside this root: the observation of the file there,
    /// when it is a regular file its rules let through.
    fn inside_file(&mut self, link: &Path, real: PathBuf) -> Option<Observation> {
        let m = fs::metadata(&real).ok().filter(fs::Metadata::is_file)?;
        let rel = real.strip_prefix(&self.cfg.path).ok()?;
        if self.filter.rejects_file(rel).is_some() {
            return None;
        }
        if let Some(why) = self.rules.refuse_file(&real, &m, true) {
            self.log.skip(link, why);
            return None;
        }
        Some(Observation {
            root: self.cfg.path.clone(),
            path: real,
            identity: identity(&m),
        })
    }

    /// With `follow_symlinks`: why the link at `path` must not be followed, if it is one.
    fn link_refused(&self, path: &Path) -> Option<String> {
        if !self.cfg.follow_symlinks || !is_link(path) {
            return None;
        }
        self.rules.refuse_link(&self.cfg.path, path)
    }
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Whether `path` is a symlink to a directory that contains it (following it loops).
fn link_to_ancestor(path: &Path) -> bool {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return false;
    }
    let (Some(parent), Ok(target)) = (path.parent(), fs::canonicalize(path)) else {
        return false;
    };
    fs::canonicalize(parent).is_ok_and(|p| p.starts_with(&target))
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The identity of a regular file at `p`, or `None` if there is none (any more).
fn stat(p: &Path, follow: bool) -> Option<FileIdentity> {
    let m = if follow {
        fs::metadata(p)
    } else {
        fs::symlink_metadata(p)
    };
    match m {
        Ok(m) if m.is_file() => Some(identity(&m)),
        Ok(_) => None,
        Err(e) => {
            if !is_missing(&e) {
                tracing::warn!(path = %p.shown(), "cannot stat a settling file: {e}");
            }
            None
        }
    }
}

/// Collects a walk's files into batches and adds directory watches.
struct ScanVisitor<'a> {
    root: &'a Path,
    poll_every: std::time::Duration,
    tracker: &'a mut Tracker,
    watcher: &'a mut Option<Watcher>,
    limit_hit: &'a mut bool,
    batch: Vec<Observation>,
    watch_errors: Vec<(PathBuf, String)>,
}

impl Visitor for ScanVisitor<'_> {
    fn dir(&mut self, dir: &Path) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        match w.add(dir) {
            Ok(()) | Err(AddError::Gone) => {}
            Err(AddError::Limit) => {
                let used = w.count();
                // Dropping the watcher frees its watches for other programs.
                *self.watcher = None;
                *self.limit_hit = true;
                log_watch_limit(self.root, used, self.poll_every);
            }
            Err(AddError::Other(e)) => self.watch_errors.push((dir.to_owned(), e)),
        }
    }

    fn file(&mut self, path: PathBuf, id: FileIdentity) {
        self.batch.push(Observation {
            root: self.root.to_owned(),
            path,
            identity: id,
        });
        if self.batch.len() >= BATCH {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.tracker.observed(batch, Instant::now());
        }
    }
}

/// The one log line for `fs.inotify.max_user_watches` exhaustion, with the fix.
fn log_watch_limit(root: &Path, used: usize, poll: std::time::Duration) {
    let limit = fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    tracing::error!(
        root = %root.shown(),
        "inotify watch limit reached (fs.inotify.max_user_watches = {limit}, {used} used by this \
         root): {} now falls back to polling every {}. Raise the limit with \
         `sysctl fs.inotify.max_user_watches=524288` and make it permanent with \
         `echo fs.inotify.max_user_watches=524288 > /etc/sysctl.d/90-ingestd-inotify.conf`, \
         then restart ingestd",
        root.shown(),
        humantime::format_duration(poll)
    );
}
