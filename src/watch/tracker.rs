//! The settle state machine wired to a [`Sink`]: decides which observations to report with
//! `seen`, which files to track, and reports `stable` and `gone` in batches. I/O-free apart from
//! the sink and the stat function the caller passes, so the model test drives it with a fake
//! filesystem and a fake clock. Sink calls block: call these methods from a blocking thread.
//! Sink errors are logged (once per failing spell) and retried at the next check, never fatal.

use crate::escape::Show as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::container::{self, Verdict};
use super::settle::{Settler, Step};
use super::{Sink, SinkError};
use crate::journal::{FileIdentity, Observation};

/// Most observations passed to one sink call (one journal transaction).
pub const BATCH: usize = 1000;

/// The container check a tracker runs on each settled file before reporting it stable.
pub type Checker = Arc<dyn Fn(&Path) -> Verdict + Send + Sync>;

/// A settled file: path, identity, and when its settle clock started.
type Settled = (PathBuf, FileIdentity, Instant);

/// Settle tracking of one watch root.
pub struct Tracker {
    root: PathBuf,
    sink: Arc<dyn Sink>,
    settler: Settler,
    /// `gone` reports whose sink call failed, retried at the next check.
    pending_gone: Vec<PathBuf>,
    sink_failing: bool,
    /// `None`: settle alone decides (`check_container = false`).
    checker: Option<Checker>,
    incomplete_after: std::time::Duration,
}

impl Tracker {
    pub fn new(root: PathBuf, sink: Arc<dyn Sink>, settle: Duration) -> Tracker {
        Tracker {
            root,
            sink,
            settler: Settler::new(settle),
            pending_gone: Vec::new(),
            sink_failing: false,
            checker: None,
            incomplete_after: Duration::MAX,
        }
    }

    /// Checks each settled file's container with `checker` before reporting it stable; an
    /// incomplete one is held until it changes, and reported `expired` once unchanged for
    /// `incomplete_after`.
    pub fn set_checker(&mut self, checker: Checker, incomplete_after: Duration) {
        self.checker = Some(checker);
        self.incomplete_after = incomplete_after;
        self.settler.set_incomplete_after(incomplete_after);
    }

    /// The real check: [`container::check_file`].
    pub fn file_checker() -> Checker {
        Arc::new(|p: &Path| container::check_file(p).verdict)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where reports go.
    pub fn sink(&self) -> &dyn Sink {
        &*self.sink
    }

    pub fn settler(&self) -> &Settler {
        &self.settler
    }

    /// Nothing tracked and no report waiting for a retry.
    pub fn idle(&self) -> bool {
        self.settler.is_empty() && self.pending_gone.is_empty()
    }

    /// Number of files waiting to settle.
    pub fn tracked(&self) -> usize {
        self.settler.len()
    }

    /// Files just stat'ed at `now` by a scan or after an event. Untracked files are reported with
    /// `seen` (in batches) and tracked if the sink accepts them; tracked files that changed are
    /// reported at the next [`Tracker::check`].
    pub fn observed(&mut self, batch: Vec<Observation>, now: Instant) {
        let mut need = Vec::new();
        let mut stable = Vec::new();
        let mut expired = Vec::new();
        for o in batch {
            match self.settler.observe(&o.path, Some(o.identity), now) {
                None => need.push(o),
                // Tracked and changed: the clock restarted; the new identity goes to the sink
                // at the next check, so a file written in many small steps costs one journal
                // transaction per check, not one per event.
                Some((Step::NeedsSeen, ..)) => {}
                Some((Step::Stable, id, since)) => stable.push((o.path, id, since)),
                Some((Step::Expired, id, since)) => expired.push((o.path, id, since)),
                Some((Step::Waiting | Step::Gone, ..)) => {}
            }
        }
        self.seen(need, now);
        let out = self.report_stable(&mut stable);
        self.apply(out);
        self.report_expired(expired);
    }

    /// Reports `stable` (drained) after the container check: an incomplete or unproven file is
    /// held with its reason, a pending one (a long walk goes on) is checked again at the next
    /// check.
    fn report_stable(&mut self, stable: &mut Vec<Settled>) -> Reported {
        let mut held = Vec::new();
        let mut pending = Vec::new();
        if let Some(check) = &self.checker {
            let mut ok = Vec::new();
            for s in std::mem::take(stable) {
                match check(&s.0) {
                    Verdict::Incomplete(why) | Verdict::Unproven(why) => held.push((s, why)),
                    Verdict::Pending(why) => {
                        tracing::debug!(path = %s.0.shown(), "{why}");
                        pending.push(s);
                    }
                    Verdict::Complete | Verdict::Unknown => ok.push(s),
                }
            }
            *stable = ok;
        }
        let mut restore = report_stable(&*self.sink, &self.root, stable, &mut self.sink_failing);
        // With their original clock: stable again at the next check, which walks on.
        restore.extend(pending);
        let mut hold = Vec::new();
        if !held.is_empty() {
            let obs: Vec<(Observation, String)> = held
                .iter()
                .map(|((p, id, _), why)| {
                    (
                        Observation {
                            root: self.root.clone(),
                            path: p.clone(),
                            identity: *id,
                        },
                        why.clone(),
                    )
                })
                .collect();
            match self.sink.incomplete(&obs) {
                Ok(()) => {
                    self.sink_ok();
                    for ((p, id, since), why) in held {
                        tracing::info!(path = %p.shown(), "not queued: {why}; waiting for it to change");
                        hold.push((p, id, since));
                    }
                }
                Err(e) => {
                    self.sink_err("incomplete", &e);
                    restore.extend(held.into_iter().map(|(s, _)| s));
                }
            }
        }
        Reported { restore, hold }
    }

    fn apply(&mut self, out: Reported) {
        for (p, id, since) in out.restore {
            self.settler.restore(p, id, since);
        }
        for (p, id, since) in out.hold {
            self.settler.hold(p, id, since);
        }
    }

    /// Reports files held incomplete for `incomplete_after` as `expired` (failed); puts them
    /// back held when the sink fails, so that the next check reports them again.
    /// An unproven file (a fragmented MP4 without `mfra`) that stayed unchanged that long is
    /// queued instead: its recorder has stopped, the fragments it wrote are the recording.
    fn report_expired(&mut self, expired: Vec<Settled>) {
        if expired.is_empty() {
            return;
        }
        let (expired, mut queue): (Vec<Settled>, Vec<Settled>) = match &self.checker {
            Some(check) => expired
                .into_iter()
                .partition(|s| check(&s.0).is_incomplete()),
            None => (expired, Vec::new()),
        };
        for (p, ..) in &queue {
            tracing::info!(
                path = %p.shown(),
                "unchanged for {} and whole up to its last fragment: queued",
                humantime::format_duration(self.incomplete_after)
            );
        }
        let restore = report_stable(&*self.sink, &self.root, &mut queue, &mut self.sink_failing);
        for (p, id, since) in restore {
            self.settler.hold(p, id, since);
        }
        if expired.is_empty() {
            return;
        }
        let obs: Vec<Observation> = expired
            .iter()
            .map(|(p, id, _)| Observation {
                root: self.root.clone(),
                path: p.clone(),
                identity: *id,
            })
            .collect();
        match self.sink.expired(&obs, self.incomplete_after) {
            Ok(()) => {
                self.sink_ok();
                for (p, ..) in &expired {
                    tracing::warn!(
                        path = %p.shown(),
                        "still incomplete and unchanged after {}: failed ({}); `ingestd retry ID --anyway` uploads it as it is",
                        humantime::format_duration(self.incomplete_after),
                        container::SLUG
                    );
                }
            }
            Err(e) => {
                self.sink_err("expired", &e);
                for (p, id, since) in expired {
                    self.settler.hold(p, id, since);
                }
            }
        }
    }

    /// Calls `seen` for `obs` (stat'ed at `now`) and tracks what the sink accepts. When the sink
    /// fails, the files are tracked unaccepted, so that the next check asks again.
    fn seen(&mut self, obs: Vec<Observation>, now: Instant) {
        for chunk in obs.chunks(BATCH) {
            match call_seen(&*self.sink, chunk) {
                Ok(answers) => {
                    self.sink_ok();
                    for (o, track) in chunk.iter().zip(answers) {
                        if track {
                            self.settler.track(o.path.clone(), o.identity, now, true);
                        } else {
                            self.settler.accepted(&o.path, &o.identity, false);
                        }
                    }
                }
                Err(e) => {
                    self.sink_err("seen", &e);
                    for o in chunk {
                        self.settler.track(o.path.clone(), o.identity, now, false);
                    }
                }
            }
        }
    }

    /// Files that no longer exist: stop tracking them and report them with `gone`.
    pub fn vanished(&mut self, paths: Vec<PathBuf>) {
        for p in &paths {
            self.settler.forget(p);
        }
        self.pending_gone.extend(paths);
        self.flush_gone();
    }

    fn flush_gone(&mut self) {
        while !self.pending_gone.is_empty() {
            let n = self.pending_gone.len().min(BATCH);
            match self.sink.gone(&self.root, &self.pending_gone[..n]) {
                Ok(()) => {
                    self.sink_ok();
                    self.pending_gone.drain(..n);
                }
                Err(e) => {
                    self.sink_err("gone", &e);
                    return;
                }
            }
        }
    }

    /// Stops tracking `path` without reporting it; returns whether it was tracked.
    pub fn forget(&mut self, path: &Path) -> bool {
        self.settler.forget(path)
    }

    /// Stops tracking every file under `dir` (a directory that disappeared); returns their paths
    /// without reporting them.
    pub fn forget_under(&mut self, dir: &Path) -> Vec<PathBuf> {
        self.settler.forget_under(dir)
    }

    /// Stops tracking everything without reporting (the root itself went away).
    pub fn clear(&mut self) {
        self.settler.clear();
    }

    /// The periodic check at `now`: re-stats every tracked file through `stat`, reports changed
    /// files with `seen` and settled ones with `stable`, retries failed reports. Returns the paths
    /// that disappeared, for the caller to confirm (the root may be unmounted) and pass to
    /// [`Tracker::vanished`].
    pub fn check(
        &mut self,
        now: Instant,
        stat: impl FnMut(&Path) -> Option<FileIdentity>,
    ) -> Vec<PathBuf> {
        self.flush_gone();
        let mut need = Vec::new();
        let mut gone = Vec::new();
        let mut stable = Vec::new();
        let mut expired = Vec::new();
        let root = &self.root;
        self.settler
            .restat_all(now, stat, |step, path, id, since| match step {
                Step::NeedsSeen => need.push(Observation {
                    root: root.clone(),
                    path: path.to_owned(),
                    identity: *id,
                }),
                Step::Stable => stable.push((path.to_owned(), *id, since)),
                Step::Expired => expired.push((path.to_owned(), *id, since)),
                Step::Gone => gone.push(path.to_owned()),
                Step::Waiting => {}
            });
        while !stable.is_empty() {
            let rest = stable.split_off(stable.len().min(BATCH));
            let out = self.report_stable(&mut stable);
            self.apply(out);
            stable = rest;
        }
        self.report_expired(expired);
        self.seen(need, now);
        gone
    }

    fn sink_ok(&mut self) {
        if self.sink_failing {
            self.sink_failing = false;
            tracing::info!(root = %self.root.shown(), "the journal accepts reports again");
        }
    }

    fn sink_err(&mut self, call: &str, e: &SinkError) {
        let degraded = self.sink.degraded();
        log_sink_err(&self.root, call, e, &mut self.sink_failing, degraded);
    }
}

/// Logs a failed call once per outage; not at all (debug) when the sink reports its degraded
/// state itself (the journal on a full disk logs that once a minute at most).
fn log_sink_err(root: &Path, call: &str, e: &SinkError, failing: &mut bool, degraded: bool) {
    if degraded {
        tracing::debug!(root = %root.shown(), "journal `{call}` failed (the journal reports why): {e}");
    } else if !*failing {
        *failing = true;
        tracing::warn!(root = %root.shown(), "journal `{call}` failed, will retry: {e}");
    } else {
        tracing::debug!(root = %root.shown(), "journal `{call}` failed again: {e}");
    }
}

fn call_seen(sink: &dyn Sink, chunk: &[Observation]) -> Result<Vec<bool>, SinkError> {
    let answers = sink.seen(chunk)?;
    if answers.len() != chunk.len() {
        return Err(SinkError(format!(
            "seen returned {} answers for {} observations",
            answers.len(),
            chunk.len()
        )));
    }
    Ok(answers)
}

/// What a stable report leaves to the settler: files to restore (the sink failed) and files to
/// hold (incomplete containers).
struct Reported {
    restore: Vec<Settled>,
    hold: Vec<Settled>,
}

/// Reports `stable` (drained) in one call; returns the entries to restore when the sink failed.
fn report_stable(
    sink: &dyn Sink,
    root: &Path,
    stable: &mut Vec<(PathBuf, FileIdentity, Instant)>,
    failing: &mut bool,
) -> Vec<(PathBuf, FileIdentity, Instant)> {
    if stable.is_empty() {
        return Vec::new();
    }
    let obs: Vec<Observation> = stable
        .iter()
        .map(|(p, id, _)| Observation {
            root: root.to_owned(),
            path: p.clone(),
            identity: *id,
        })
        .collect();
    for o in &obs {
        tracing::debug!(path = %o.path.shown(), size = o.identity.size, "stable");
    }
    // Crash window W1: stable, not yet journaled (tests abort here with FAILPOINTS).
    fail::fail_point!("before-stable");
    match sink.stable(&obs) {
        Ok(()) => {
            if *failing {
                *failing = false;
                tracing::info!(root = %root.shown(), "the journal accepts reports again");
            }
            stable.clear();
            Vec::new()
        }
        Err(e) => {
            log_sink_err(root, "stable", &e, failing, sink.degraded());
            std::mem::take(stable)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Calls(Mutex<Vec<String>>);

    impl Sink for Calls {
        fn seen(&self, batch: &[Observation]) -> Result<Vec<bool>, SinkError> {
            let mut c = self.0.lock().unwrap();
            for o in batch {
                c.push(format!("seen {}", o.identity.size));
            }
            Ok(vec![true; batch.len()])
        }
        fn stable(&self, batch: &[Observation]) -> Result<(), SinkError> {
            let mut c = self.0.lock().unwrap();
            for o in batch {
                c.push(format!("stable {}", o.identity.size));
            }
            Ok(())
        }
        fn gone(&self, _: &Path, _: &[PathBuf]) -> Result<(), SinkError> {
            Ok(())
        }
        fn incomplete(&self, batch: &[(Observation, String)]) -> Result<(), SinkError> {
            let mut c = self.0.lock().unwrap();
            for (o, why) in batch {
                c.push(format!("incomplete {} {why}", o.identity.size));
            }
            Ok(())
        }
        fn expired(&self, batch: &[Observation], after: Duration) -> Result<(), SinkError> {
            let mut c = self.0.lock().unwrap();
            for o in batch {
                c.push(format!("expired {} {}s", o.identity.size, after.as_secs()));
            }
            Ok(())
        }
    }

    fn id(size: u64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino: 2,
            size,
            mtime_ns: size as i64,
            ctime_ns: size as i64,
        }
    }

    /// Incomplete at settle → held (reported once, not stable); unchanged for incomplete_after →
    /// expired; a change → checked again, and stable once complete.
    #[test]
    fn incomplete_files_are_held_then_expire_or_settle_again() {
        const S: Duration = Duration::from_secs(10);
        let sink = Arc::new(Calls::default());
        let mut t = Tracker::new("/r".into(), sink.clone(), S);
        // Complete from size 200 on.
        t.set_checker(
            Arc::new(|_: &Path| Verdict::Incomplete("incomplete MP4: no moov".into())),
            S * 6,
        );
        let p = PathBuf::from("/r/a.mp4");
        let obs = |size| Observation {
            root: "/r".into(),
            path: p.clone(),
            identity: id(size),
        };
        let t0 = Instant::now();
        t.observed(vec![obs(100)], t0);
        let size = std::cell::Cell::new(100);
        let stat = |_: &Path| Some(id(size.get()));
        t.check(t0 + S, stat);
        t.check(t0 + S * 3, stat);
        assert_eq!(t.settler().held(), 1);
        t.check(t0 + S * 6, stat);
        assert!(t.idle());
        let calls = sink.0.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                "seen 100",
                "incomplete 100 incomplete MP4: no moov",
                "expired 100 60s"
            ]
        );
        // Held again, then the file changes and the check now passes.
        sink.0.lock().unwrap().clear();
        t.observed(vec![obs(100)], t0);
        t.check(t0 + S, stat);
        t.checker = Some(Arc::new(|_: &Path| Verdict::Complete));
        size.set(200);
        t.check(t0 + S * 2, stat);
        t.check(t0 + S * 3, stat);
        assert_eq!(
            sink.0.lock().unwrap().clone(),
            [
                "seen 100",
                "incomplete 100 incomplete MP4: no moov",
                "seen 200",
                "stable 200"
            ]
        );
    }

    /// Unproven (a fragmented MP4 without mfra) → held with its reason, then queued (not
    /// failed) once unchanged for incomplete_after; Pending → checked again at the next check.
    #[test]
    fn unproven_files_are_queued_after_incomplete_after_and_pending_ones_rechecked() {
        const S: Duration = Duration::from_secs(10);
        let sink = Arc::new(Calls::default());
        let mut t = Tracker::new("/r".into(), sink.clone(), S);
        let checks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n = checks.clone();
        // Pending twice, then unproven.
        t.set_checker(
            Arc::new(
                move |_: &Path| match n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0 | 1 => Verdict::Pending("checking MP4".into()),
                    _ => Verdict::Unproven("unproven MP4: no mfra".into()),
                },
            ),
            S * 6,
        );
        let p = PathBuf::from("/r/f.mp4");
        let t0 = Instant::now();
        t.observed(
            vec![Observation {
                root: "/r".into(),
                path: p.clone(),
                identity: id(100),
            }],
            t0,
        );
        let stat = |_: &Path| Some(id(100));
        t.check(t0 + S, stat);
        t.check(t0 + S + Duration::from_secs(1), stat);
        t.check(t0 + S + Duration::from_secs(2), stat);
        assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(t.settler().held(), 1);
        t.check(t0 + S * 5, stat);
        assert_eq!(t.settler().held(), 1);
        t.check(t0 + S * 6, stat);
        assert!(t.idle());
        assert_eq!(
            sink.0.lock().unwrap().clone(),
            [
                "seen 100",
                "incomplete 100 unproven MP4: no mfra",
                "stable 100"
            ]
        );
    }
}
