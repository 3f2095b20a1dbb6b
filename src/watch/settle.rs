//! The settle check as a pure state machine over a monotonic clock: a file is stable once its
//! identity (dev, inode, size, mtime, ctime) has stayed the same for `settle`, it is not empty,
//! and the sink has accepted that identity. No I/O here: callers pass stat results and `now`
//! (`tokio::time::Instant`, so tests can use a fake or paused clock). Wall-clock times in the
//! identity are only compared for equality, never with the current time.
//!
//! A stable file whose container check said "incomplete" is put back *held*: it is not stable
//! again until its identity changes (which restarts the clock, so the check runs again after the
//! next settle), and it expires once unchanged for `incomplete_after`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::journal::FileIdentity;

/// One tracked file.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    id: FileIdentity,
    /// When `id` was first observed (the settle clock starts here).
    since: Instant,
    /// Whether the sink has accepted `id` (`Sink::seen` answered `true` for it).
    journaled: bool,
    /// Settled, but its container is incomplete: waits for a change or for `incomplete_after`.
    held: bool,
}

/// What a fresh stat did to a tracked file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Same identity, not settled yet.
    Waiting,
    /// The identity changed (the settle clock restarted) or was never accepted by the sink: the
    /// caller must report it with `Sink::seen` and then call [`Settler::accepted`].
    NeedsSeen,
    /// Unchanged for `settle`: no longer tracked; report it with `Sink::stable`.
    Stable,
    /// Held as incomplete and unchanged for `incomplete_after`: no longer tracked; report it with
    /// `Sink::expired`.
    Expired,
    /// The file no longer exists: no longer tracked; report it with `Sink::gone`.
    Gone,
}

/// The files waiting to settle, keyed by path.
#[derive(Debug)]
pub struct Settler {
    settle: Duration,
    incomplete_after: Duration,
    files: HashMap<PathBuf, Tracked>,
}

impl Settler {
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            incomplete_after: Duration::MAX,
            files: HashMap::new(),
        }
    }

    /// How long a held (incomplete) file may stay unchanged before it expires.
    pub fn set_incomplete_after(&mut self, d: Duration) {
        self.incomplete_after = d;
    }

    /// Puts back a file that was stable but whose container is incomplete, with its original
    /// clock: it waits for a change or for `incomplete_after`.
    pub fn hold(&mut self, path: PathBuf, id: FileIdentity, since: Instant) {
        self.files.insert(
            path,
            Tracked {
                id,
                since,
                journaled: true,
                held: true,
            },
        );
    }

    /// Files held as incomplete.
    pub fn held(&self) -> usize {
        self.files.values().filter(|t| t.held).count()
    }

    pub fn settle(&self) -> Duration {
        self.settle
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The identity a tracked file had at its last stat.
    pub fn identity(&self, path: &Path) -> Option<FileIdentity> {
        self.files.get(path).map(|t| t.id)
    }

    /// Starts (or continues) tracking `path` with identity `id` observed at `now`. `journaled`
    /// says whether the sink has accepted this identity. A different identity restarts the clock.
    pub fn track(&mut self, path: PathBuf, id: FileIdentity, now: Instant, journaled: bool) {
        match self.files.get_mut(&path) {
            Some(t) if t.id == id => t.journaled |= journaled,
            Some(t) => {
                *t = Tracked {
                    id,
                    since: now,
                    journaled,
                    held: false,
                }
            }
            None => {
                self.files.insert(
                    path,
                    Tracked {
                        id,
                        since: now,
                        journaled,
                        held: false,
                    },
                );
            }
        }
    }

    /// The sink answered `seen` for `path` with identity `id`: `true` marks it accepted, `false`
    /// stops tracking it. Ignored if the file has changed again since.
    pub fn accepted(&mut self, path: &Path, id: &FileIdentity, track: bool) {
        if let Some(t) = self.files.get_mut(path) {
            if t.id == *id {
                if track {
                    t.journaled = true;
                } else {
                    self.files.remove(path);
                }
            }
        }
    }

    /// Puts back a file whose `Sink::stable` call failed, with its original clock, so that it is
    /// reported again at the next check.
    pub fn restore(&mut self, path: PathBuf, id: FileIdentity, since: Instant) {
        self.files.entry(path).or_insert(Tracked {
            id,
            since,
            journaled: true,
            held: false,
        });
    }

    /// Stops tracking `path`; returns whether it was tracked.
    pub fn forget(&mut self, path: &Path) -> bool {
        self.files.remove(path).is_some()
    }

    /// Stops tracking every file under `dir`; returns their paths.
    pub fn forget_under(&mut self, dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        self.files.retain(|p, _| {
            if p.starts_with(dir) {
                out.push(p.clone());
                false
            } else {
                true
            }
        });
        out
    }

    pub fn clear(&mut self) {
        self.files.clear();
        self.files.shrink_to_fit();
    }

    /// Applies a fresh stat (`None` = the file no longer exists) of a tracked file made at `now`.
    /// Returns `None` if `path` is not tracked.
    pub fn observe(
        &mut self,
        path: &Path,
        stat: Option<FileIdentity>,
        now: Instant,
    ) -> Option<(Step, FileIdentity, Instant)> {
        let t = self.files.get_mut(path)?;
        let since = t.since;
        let step = step(t, stat, now, self.settle, self.incomplete_after);
        let id = t.id;
        if matches!(step, Step::Stable | Step::Gone | Step::Expired) {
            self.files.remove(path);
        }
        Some((step, id, since))
    }

    /// Re-stats every tracked file through `stat` at `now` and calls `on` for each one that is
    /// not merely [`Step::Waiting`], with its identity and the instant its clock started.
    /// Stable and gone files are no longer tracked afterwards.
    pub fn restat_all(
        &mut self,
        now: Instant,
        mut stat: impl FnMut(&Path) -> Option<FileIdentity>,
        mut on: impl FnMut(Step, &Path, &FileIdentity, Instant),
    ) {
        let (settle, after) = (self.settle, self.incomplete_after);
        self.files.retain(|path, t| {
            let since = t.since;
            let s = step(t, stat(path), now, settle, after);
            if s != Step::Waiting {
                on(s, path, &t.id, since);
            }
            !matches!(s, Step::Stable | Step::Gone | Step::Expired)
        });
        if self.files.capacity() > 1024 && self.files.capacity() > 4 * self.files.len() {
            self.files.shrink_to_fit();
        }
    }

    /// The earliest instant at which some tracked file may become stable (for timers).
    pub fn next_due(&self) -> Option<Instant> {
        self.files
            .values()
            .filter(|t| t.journaled && t.id.size > 0)
            .filter_map(|t| match t.held {
                false => Some(t.since + self.settle),
                true => t.since.checked_add(self.incomplete_after),
            })
            .min()
    }
}

/// The verdict for one tracked file given a fresh stat.
fn step(
    t: &mut Tracked,
    stat: Option<FileIdentity>,
    now: Instant,
    settle: Duration,
    incomplete_after: Duration,
) -> Step {
    let Some(id) = stat else {
        return Step::Gone;
    };
    if id != t.id {
        *t = Tracked {
            id,
            since: now,
            journaled: false,
            held: false,
        };
        return Step::NeedsSeen;
    }
    if !t.journaled {
        return Step::NeedsSeen;
    }
    if t.held {
        return if now.saturating_duration_since(t.since) >= incomplete_after {
            Step::Expired
        } else {
            Step::Waiting
        };
    }
    // An empty file is never stable: a writer may not have started yet.
    if id.size > 0 && now.saturating_duration_since(t.since) >= settle {
        Step::Stable
    } else {
        Step::Waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(size: u64, mtime: i64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino: 7,
            size,
            mtime_ns: mtime,
            ctime_ns: mtime,
        }
    }

    const S: Duration = Duration::from_secs(10);

    #[test]
    fn stable_after_settle_once() {
        let t0 = Instant::now();
        let mut s = Settler::new(S);
        let p = Path::new("/r/a.mp4");
        s.track(p.into(), id(5, 1), t0, true);
        assert_eq!(
            s.observe(p, Some(id(5, 1)), t0 + S / 2).unwrap().0,
            Step::Waiting
        );
        assert_eq!(
            s.observe(p, Some(id(5, 1)), t0 + S).unwrap().0,
            Step::Stable
        );
        assert!(s.observe(p, Some(id(5, 1)), t0 + S * 2).is_none());
    }

    #[test]
    fn change_restarts_clock_and_needs_seen() {
        let t0 = Instant::now();
        let mut s = Settler::new(S);
        let p = Path::new("/r/a.mp4");
        s.track(p.into(), id(5, 1), t0, true);
        let t1 = t0 + S - Duration::from_millis(1);
        assert_eq!(s.observe(p, Some(id(6, 2)), t1).unwrap().0, Step::NeedsSeen);
        // Not accepted yet: never stable.
        assert_eq!(
            s.observe(p, Some(id(6, 2)), t1 + S).unwrap().0,
            Step::NeedsSeen
        );
        s.accepted(p, &id(6, 2), true);
        assert_eq!(
            s.observe(p, Some(id(6, 2)), t1 + S - Duration::from_millis(1))
                .unwrap()
                .0,
            Step::Waiting
        );
        assert_eq!(
            s.observe(p, Some(id(6, 2)), t1 + S).unwrap().0,
            Step::Stable
        );
    }

    #[test]
    fn empty_file_waits() {
        let t0 = Instant::now();
        let mut s = Settler::new(S);
        let p = Path::new("/r/a.mp4");
        s.track(p.into(), id(0, 1), t0, true);
        assert_eq!(
            s.observe(p, Some(id(0, 1)), t0 + S * 100).unwrap().0,
            Step::Waiting
        );
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn held_waits_for_a_change_or_expires() {
        let t0 = Instant::now();
        let mut s = Settler::new(S);
        s.set_incomplete_after(S * 6);
        let p = Path::new("/r/a.mp4");
        s.track(p.into(), id(5, 1), t0, true);
        assert_eq!(
            s.observe(p, Some(id(5, 1)), t0 + S).unwrap().0,
            Step::Stable
        );
        s.hold(p.into(), id(5, 1), t0);
        assert_eq!(s.held(), 1);
        assert_eq!(s.next_due(), Some(t0 + S * 6));
        assert_eq!(
            s.observe(p, Some(id(5, 1)), t0 + S * 5).unwrap().0,
            Step::Waiting
        );
        assert_eq!(
            s.observe(p, Some(id(5, 1)), t0 + S * 6).unwrap().0,
            Step::Expired
        );
        assert!(s.is_empty());
        // A change releases the hold and restarts the clock: stable (and checked) again.
        s.hold(p.into(), id(5, 1), t0);
        let t1 = t0 + S * 2;
        assert_eq!(s.observe(p, Some(id(9, 2)), t1).unwrap().0, Step::NeedsSeen);
        s.accepted(p, &id(9, 2), true);
        assert_eq!(s.held(), 0);
        assert_eq!(
            s.observe(p, Some(id(9, 2)), t1 + S).unwrap().0,
            Step::Stable
        );
    }

    #[test]
    fn gone_and_rejected() {
        let t0 = Instant::now();
        let mut s = Settler::new(S);
        s.track("/r/a.mp4".into(), id(5, 1), t0, false);
        s.accepted(Path::new("/r/a.mp4"), &id(5, 1), false);
        assert!(s.is_empty());
        s.track("/r/b/c.mp4".into(), id(5, 1), t0, true);
        s.track("/r/b/d.mp4".into(), id(5, 1), t0, true);
        s.track("/r/e.mp4".into(), id(5, 1), t0, true);
        assert_eq!(s.forget_under(Path::new("/r/b")).len(), 2);
        let mut seen = Vec::new();
        s.restat_all(t0, |_| None, |st, p, _, _| seen.push((st, p.to_owned())));
        assert_eq!(seen, vec![(Step::Gone, PathBuf::from("/r/e.mp4"))]);
        assert!(s.is_empty());
    }
}
