//! One task per watch root: brings the root up (or waits for it to appear), picks events or
//! polling, runs the initial scan, then multiplexes event hints, the settle check, periodic
//! reconcile scans, overflow rescans and `rescan_now` until shutdown. Filesystem and sink work
//! runs on blocking threads, one operation at a time per root.

use crate::escape::Show as _;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::bridge::{self, Hint, HintKind, Signals};
use super::engine::Engine;
use super::filter::Filter;
use super::fstype::{self, FsKind};
use super::rules::Rules;
use super::{Health, Mode, RootStatus, Sink, SpawnOptions};
use crate::config::{WatchConfig, WatchMode};

/// Most hints handled in one blocking batch.
const MAX_HINTS: usize = 8192;

/// Decrements the count of roots whose initial scan is pending, once, when dropped.
pub struct InitialGuard(pub Arc<watch::Sender<usize>>);

impl Drop for InitialGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Everything a root task needs.
pub struct RootTask {
    pub cfg: WatchConfig,
    pub sink: Arc<dyn Sink>,
    pub shutdown: CancellationToken,
    pub signals: Arc<Signals>,
    pub rescan: Arc<Notify>,
    pub status: Arc<Mutex<RootStatus>>,
    pub initial: Option<InitialGuard>,
    pub opts: SpawnOptions,
    pub rules: Arc<Rules>,
}

/// Why the "up" loop ended.
enum Exit {
    Shutdown,
    Down(Health),
}

impl RootTask {
    pub async fn run(mut self) {
        // A root task that ends on its own: the daemon must stop (issue 14; test builds).
        fail::fail_point!("watch-exit", |_| ());
        let filter = match Filter::new(&self.cfg) {
            Ok(f) => f,
            Err(e) => {
                let msg = format!("invalid include/exclude pattern: {e}");
                tracing::error!(root = %self.cfg.path.shown(), "{msg}");
                self.set_health(Health::Error(msg));
                self.initial.take();
                self.shutdown.cancelled().await;
                return;
            }
        };
        let engine = Arc::new(Mutex::new(Engine::new(
            self.cfg.clone(),
            filter,
            self.sink.clone(),
            self.rules.clone(),
            self.shutdown.child_token(),
        )));
        let mut limit_hit = false;
        loop {
            let health = blocking(&engine, |e| e.check_root())
                .await
                .unwrap_or_else(|| Health::Error("internal error".into()));
            if health != Health::Ok {
                self.set_health(health);
                self.initial.take();
                if self.wait(self.cfg.poll_interval).await {
                    return;
                }
                continue;
            }
            let mode = if limit_hit {
                Mode::Poll
            } else {
                self.choose_mode().await
            };
            match self.up(&engine, mode).await {
                (Exit::Shutdown, _) => return,
                (Exit::Down(h), hit) => {
                    limit_hit |= hit;
                    let _ = blocking(&engine, |e| e.down()).await;
                    self.set_health(h);
                    self.initial.take();
                    if self.wait(self.cfg.poll_interval).await {
                        return;
                    }
                }
            }
        }
    }

    /// The root exists: watch (or poll) and scan it until it goes away or shutdown.
    async fn up(&mut self, engine: &Arc<Mutex<Engine>>, mut mode: Mode) -> (Exit, bool) {
        self.set_health(Health::Ok);
        let mut events: Option<mpsc::Receiver<Hint>> = None;
        if mode == Mode::Events {
            match bridge::start(
                self.opts.event_capacity,
                self.signals.clone(),
                self.opts.max_watches,
            ) {
                Ok((w, rx)) => {
                    let _ = blocking(engine, move |e| e.set_watcher(Some(w))).await;
                    events = Some(rx);
                }
                Err(e) => {
                    tracing::warn!(root = %self.cfg.path.shown(),
                        "cannot start inotify ({e}); polling every {}",
                        humantime::format_duration(self.cfg.poll_interval));
                    mode = Mode::Poll;
                }
            }
        }
        self.update(|s| {
            s.mode = mode;
        });
        // Events lost before the initial scan are covered by it.
        self.signals.take_overflow();
        let h = self.op(engine, |e| e.full_scan()).await;
        let mut hit = false;
        let mut due = None;
        if let Some(x) = self.after(engine, h, &mut mode, &mut events, &mut hit, &mut due) {
            return (x, hit);
        }
        // Ready only once the scan's reports and the status are in.
        self.initial.take();

        let tick_every = (self.cfg.settle / 4)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_scan = Instant::now() + self.scan_every(mode);
        loop {
            let h = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return (Exit::Shutdown, hit),
                _ = self.signals.wake.notified() => {
                    if self.signals.take_overflow() {
                        tracing::warn!(root = %self.cfg.path.shown(),
                            "file events were lost (inotify queue overflow or event backlog): \
                             rescanning the root");
                        self.op(engine, |e| e.full_scan()).await
                    } else {
                        Health::Ok
                    }
                }
                _ = self.rescan.notified() => {
                    tracing::info!(root = %self.cfg.path.shown(), "rescan requested");
                    self.op(engine, |e| e.full_scan()).await
                }
                hint = recv(&mut events) => match hint {
                    Some(first) => {
                        let hints = drain(first, events.as_mut());
                        self.op(engine, move |e| e.hints(hints)).await
                    }
                    None => {
                        events = None;
                        Health::Ok
                    }
                },
                _ = tokio::time::sleep_until(next_scan) => {
                    next_scan = Instant::now() + self.scan_every(mode);
                    tracing::debug!(root = %self.cfg.path.shown(), "periodic scan");
                    self.op(engine, |e| e.full_scan()).await
                }
                // The earliest instant a file may settle: checked then, not at the next tick.
                _ = at(due) => self.op(engine, |e| e.tick()).await,
                _ = tick.tick() => {
                    let idle = engine.lock().unwrap_or_else(PoisonError::into_inner).idle();
                    if idle {
                        continue;
                    }
                    self.op(engine, |e| e.tick()).await
                }
            };
            if let Some(x) = self.after(engine, h, &mut mode, &mut events, &mut hit, &mut due) {
                return (x, hit);
            }
        }
    }

    /// Bookkeeping after each operation: health, watch-limit fallback, status.
    fn after(
        &mut self,
        engine: &Arc<Mutex<Engine>>,
        h: Health,
        mode: &mut Mode,
        events: &mut Option<mpsc::Receiver<Hint>>,
        hit: &mut bool,
        due: &mut Option<Instant>,
    ) -> Option<Exit> {
        if h != Health::Ok {
            return Some(Exit::Down(h));
        }
        // Uncontended: blocking operations of this root are awaited one at a time.
        let (limit, watches, tracked, next) = {
            let e = engine.lock().unwrap_or_else(PoisonError::into_inner);
            (e.limit_hit(), e.watches(), e.tracked(), e.next_due())
        };
        // A due instant already past belongs to a report the sink refused: leave it to the
        // ticks rather than spin.
        *due = next.filter(|d| *d > Instant::now());
        if limit && *mode == Mode::Events {
            *mode = Mode::Poll;
            *events = None;
            *hit = true;
        }
        let m = *mode;
        self.update(|s| {
            s.mode = m;
            s.health = Health::Ok;
            s.watches = watches;
            s.settling = tracked;
        });
        None
    }

    /// Runs one engine operation on a blocking thread; a panic becomes an error health.
    async fn op(
        &self,
        engine: &Arc<Mutex<Engine>>,
        f: impl FnOnce(&mut Engine) -> Health + Send + 'static,
    ) -> Health {
        blocking(engine, f)
            .await
            .unwrap_or_else(|| Health::Error("internal error in the watcher (see log)".into()))
    }

    fn scan_every(&self, mode: Mode) -> Duration {
        match mode {
            Mode::Events => self.cfg.rescan_interval,
            Mode::Poll => self.cfg.poll_interval.min(self.cfg.rescan_interval),
        }
        .max(Duration::from_millis(10))
    }

    async fn choose_mode(&self) -> Mode {
        match self.cfg.mode {
            WatchMode::Events => Mode::Events,
            WatchMode::Poll => Mode::Poll,
            WatchMode::Auto => {
                let path = self.cfg.path.clone();
                let kind = tokio::task::spawn_blocking(move || fstype::kind(&path)).await;
                match kind {
                    Ok(Ok(FsKind::Remote(name))) => {
                        tracing::info!(root = %self.cfg.path.shown(),
                            "on a {name} filesystem, where inotify misses remote changes: \
                             polling every {}",
                            humantime::format_duration(self.cfg.poll_interval));
                        Mode::Poll
                    }
                    _ => Mode::Events,
                }
            }
        }
    }

    /// Waits `d`, or less if a rescan is requested. Returns true on shutdown.
    async fn wait(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
            _ = self.rescan.notified() => false,
        }
    }

    fn update(&self, f: impl FnOnce(&mut RootStatus)) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut s);
    }

    /// Records a health change, logging transitions only (a missing root is logged once, not at
    /// every re-check).
    fn set_health(&self, h: Health) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if s.health == h {
            return;
        }
        let root = self.cfg.path.shown();
        let every = humantime::format_duration(self.cfg.poll_interval);
        match &h {
            Health::Ok => tracing::info!(root = %root, "watch root is available again"),
            Health::Missing => tracing::warn!(root = %root,
                "watch root does not exist (not created or not mounted?); checking again every {every}"),
            Health::Error(e) => tracing::warn!(root = %root,
                "watch root unusable: {e}; checking again every {every}"),
        }
        s.health = h;
        s.watches = 0;
        s.settling = 0;
    }
}

async fn blocking<T: Send + 'static>(
    engine: &Arc<Mutex<Engine>>,
    f: impl FnOnce(&mut Engine) -> T + Send + 'static,
) -> Option<T> {
    let e = engine.clone();
    match tokio::task::spawn_blocking(move || {
        let mut g = e.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    })
    .await
    {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!("watcher operation failed: {e}");
            None
        }
    }
}

/// Resolves at `due`, or never.
async fn at(due: Option<Instant>) {
    match due {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The next hint, or never when events are not in use.
async fn recv(rx: &mut Option<mpsc::Receiver<Hint>>) -> Option<Hint> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// `first` and whatever else is already queued, merged per path.
fn drain(first: Hint, rx: Option<&mut mpsc::Receiver<Hint>>) -> HashMap<PathBuf, HintKind> {
    let mut map: HashMap<PathBuf, HintKind> = HashMap::new();
    *map.entry(first.path).or_default() |= first.kind;
    if let Some(rx) = rx {
        while map.len() < MAX_HINTS {
            match rx.try_recv() {
                Ok(h) => *map.entry(h.path).or_default() |= h.kind,
                Err(_) => break,
            }
        }
    }
    map
}
