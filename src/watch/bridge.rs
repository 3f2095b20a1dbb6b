//! notify (inotify) → tokio: one `INotifyWatcher` per root with one non-recursive watch per
//! directory (so excluded and hidden directories cost no watch), translated into path hints on a
//! bounded channel. Nothing is dropped silently: when the channel is full, or inotify itself
//! overflowed (`need_rescan`), the root's overflow flag is raised and the root is rescanned.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, INotifyWatcher, RecursiveMode, Watcher as _};
use tokio::sync::{Notify, mpsc};

/// What an event says may have happened at a path (bit set; the path is re-stat'ed anyway).
pub type HintKind = u8;
/// Content or metadata may have changed.
pub const CHANGED: HintKind = 1;
/// Created or moved in (may be a directory: its subtree is then scanned).
pub const CREATED: HintKind = 2;
/// Deleted or moved away.
pub const REMOVED: HintKind = 4;

/// A path an event mentioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub path: PathBuf,
    pub kind: HintKind,
}

/// Flags shared between a root's task, its watcher thread and the handle; they outlive watchers.
#[derive(Debug, Default)]
pub struct Signals {
    overflow: AtomicBool,
    /// Test hook: discard every event, as if the kernel had lost them.
    pub drop_events: AtomicBool,
    /// Woken when a flag is raised.
    pub wake: Notify,
}

impl Signals {
    /// Events were lost: the root must be rescanned.
    pub fn raise_overflow(&self) {
        self.overflow.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Whether events were lost since the last call.
    pub fn take_overflow(&self) -> bool {
        self.overflow.swap(false, Ordering::SeqCst)
    }
}

/// Why a directory watch could not be added.
#[derive(Debug)]
pub enum AddError {
    /// `fs.inotify.max_user_watches` reached (ENOSPC from inotify_add_watch).
    Limit,
    /// The directory disappeared.
    Gone,
    Other(String),
}

/// The inotify watcher of one root and the directories it watches.
pub struct Watcher {
    inner: INotifyWatcher,
    dirs: HashSet<PathBuf>,
    /// Test hook: behave as if the kernel limit were this many watches.
    max: Option<usize>,
}

impl Watcher {
    /// Number of inotify watches in use.
    pub fn count(&self) -> usize {
        self.dirs.len()
    }

    /// Watches `dir` (not recursively) unless it is already watched.
    pub fn add(&mut self, dir: &Path) -> Result<(), AddError> {
        if self.dirs.contains(dir) {
            return Ok(());
        }
        if self.max.is_some_and(|m| self.dirs.len() >= m) {
            return Err(AddError::Limit);
        }
        match self.inner.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.dirs.insert(dir.to_owned());
                Ok(())
            }
            Err(e) => Err(match e.kind {
                notify::ErrorKind::MaxFilesWatch => AddError::Limit,
                notify::ErrorKind::PathNotFound => AddError::Gone,
                notify::ErrorKind::Io(ref io)
                    if matches!(io.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) =>
                {
                    AddError::Gone
                }
                notify::ErrorKind::Io(ref io) if io.raw_os_error() == Some(libc::ENOSPC) => {
                    AddError::Limit
                }
                _ => AddError::Other(e.to_string()),
            }),
        }
    }

    /// Forgets the watches of `dir` and everything under it (inotify dropped them when the
    /// directory was deleted or moved away). Returns whether `dir` itself was watched.
    pub fn removed_under(&mut self, dir: &Path) -> bool {
        // Parents are watched before their children, so an unwatched path has no watched
        // descendants: deleted files cost one lookup, not a pass over every watch.
        if !self.dirs.contains(dir) {
            return false;
        }
        let gone: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|d| d.starts_with(dir))
            .cloned()
            .collect();
        for d in gone {
            let _ = self.inner.unwatch(&d);
            self.dirs.remove(&d);
        }
        true
    }
}

/// Starts an inotify watcher whose events arrive as hints on a channel of `capacity`.
pub fn start(
    capacity: usize,
    signals: Arc<Signals>,
    max_watches: Option<usize>,
) -> notify::Result<(Watcher, mpsc::Receiver<Hint>)> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let handler = move |res: notify::Result<Event>| match res {
        Ok(ev) => forward(&ev, &tx, &signals),
        Err(e) => {
            // A read error from the inotify descriptor: events may be lost.
            tracing::warn!("inotify error, rescanning: {e}");
            signals.raise_overflow();
        }
    };
    let inner = INotifyWatcher::new(handler, notify::Config::default())?;
    Ok((
        Watcher {
            inner,
            dirs: HashSet::new(),
            max: max_watches,
        },
        rx,
    ))
}

/// Translates one notify event into hints; raises the overflow flag instead of blocking or
/// dropping when the channel is full.
fn forward(ev: &Event, tx: &mpsc::Sender<Hint>, signals: &Signals) {
    if ev.need_rescan() {
        signals.raise_overflow();
    }
    let Some(kind) = kind_of(&ev.kind) else {
        return;
    };
    if signals.drop_events.load(Ordering::Relaxed) {
        return;
    }
    for path in &ev.paths {
        let hint = Hint {
            path: path.clone(),
            kind,
        };
        match tx.try_send(hint) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                signals.raise_overflow();
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The hint an event kind gives, or `None` for events that say nothing about content (opens,
/// reads — our own scans cause those).
fn kind_of(kind: &EventKind) -> Option<HintKind> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(CHANGED),
        EventKind::Access(_) => None,
        EventKind::Create(_) => Some(CREATED),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Some(REMOVED),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Some(CREATED),
        // `Both` repeats the `From` and `To` events already sent.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => None,
        EventKind::Modify(ModifyKind::Name(_)) => Some(CREATED | REMOVED),
        EventKind::Modify(_) => Some(CHANGED),
        EventKind::Remove(_) => Some(REMOVED),
        EventKind::Any | EventKind::Other => Some(CHANGED | CREATED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RemoveKind};

    #[test]
    fn full_channel_raises_overflow() {
        let (tx, mut rx) = mpsc::channel(1);
        let s = Signals::default();
        let ev = Event::new(EventKind::Create(CreateKind::File))
            .add_path("/r/a".into())
            .add_path("/r/b".into());
        forward(&ev, &tx, &s);
        assert_eq!(rx.try_recv().unwrap().path, PathBuf::from("/r/a"));
        assert!(s.take_overflow());
        assert!(!s.take_overflow());
    }

    #[test]
    fn kinds() {
        assert_eq!(
            kind_of(&EventKind::Access(AccessKind::Open(AccessMode::Any))),
            None
        );
        assert_eq!(
            kind_of(&EventKind::Remove(RemoveKind::Folder)),
            Some(REMOVED)
        );
        let s = Signals::default();
        let (tx, _rx) = mpsc::channel(4);
        forward(
            &Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan),
            &tx,
            &s,
        );
        assert!(s.take_overflow());
    }
}
