//! Directory walk of a root or subtree: include/exclude filtering, hidden directories skipped
//! (by the default exclude `.*`), symlinks followed only when asked (loops caught by the
//! (dev, inode) of visited directories), and everything odd — unreadable entries, FIFOs, sockets,
//! devices — logged once and skipped (names that are not UTF-8 are files like any other). Files are handed to a callback as
//! they are found, never collected, so memory does not grow with the tree.

use crate::escape::Show as _;
use std::collections::HashSet;
use std::fmt::Display;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::filter::Filter;
use super::rules::{Route, Rules};
use crate::journal::FileIdentity;

/// The identity of a file from its metadata.
pub fn identity(m: &Metadata) -> FileIdentity {
    FileIdentity {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
        ctime_ns: m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
    }
}

/// What an `EOVERFLOW` from stat means: a 32-bit platform without `statx` cannot represent the
/// file's size or times (an mtime after 2038). The file is skipped and logged once, never retried
/// in a loop.
pub fn overflow_hint(e: &io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::EOVERFLOW) {
        " (this platform cannot represent the file's size or times, such as an mtime after \
         2038 on a 32-bit system without statx: the file is not uploaded)"
    } else {
        ""
    }
}

/// Warnings about a path, each logged once (bounded memory).
#[derive(Debug, Default)]
pub struct LogOnce {
    seen: HashSet<PathBuf>,
}

/// What to do about a directory that cannot be read (logged with the error).
pub const UNREADABLE_DIR_HINT: &str = "its files are not uploaded until it is readable by the user ingestd runs as (the next rescan finds them)";

/// How many distinct paths [`LogOnce`] remembers; past that it logs at debug level only.
const LOG_ONCE_CAP: usize = 10_000;

impl LogOnce {
    /// Logs `skipped <path>: <reason>` unless already logged for this path.
    pub fn skip(&mut self, path: &Path, reason: impl Display) {
        if self.seen.contains(path) {
            return;
        }
        if self.seen.len() >= LOG_ONCE_CAP {
            tracing::debug!(path = ?path, "skipped: {reason}");
            return;
        }
        self.seen.insert(path.to_owned());
        if path.to_str().is_some() {
            tracing::warn!(path = %path.shown(), "skipped: {reason}");
        } else {
            // Debug formatting shows the invalid bytes as escapes.
            tracing::warn!(path = ?path, "skipped: {reason}");
        }
    }

    /// Whether a warning was logged for `path`.
    pub fn logged(&self, path: &Path) -> bool {
        self.seen.contains(path)
    }
}

/// What a walk needs to know about its root.
pub struct Walk<'a> {
    pub root: &'a Path,
    pub filter: &'a Filter,
    pub follow_symlinks: bool,
    /// Links to outside the roots, the daemon's secrets.
    pub rules: &'a Rules,
    pub cancel: &'a CancellationToken,
}

/// What a walk does with what it finds.
pub trait Visitor {
    /// A directory about to be read (add its watch now, before listing: the `mkdir -p` race).
    fn dir(&mut self, dir: &Path);
    /// A candidate regular file.
    fn file(&mut self, path: PathBuf, id: FileIdentity);
}

impl Walk<'_> {
    /// Walks `start` (the root or a directory under it). Errors only when `start` itself cannot
    /// be read; everything below is logged through `log` and skipped.
    pub fn run(&self, start: &Path, log: &mut LogOnce, v: &mut impl Visitor) -> io::Result<()> {
        let mut visited: HashSet<(u64, u64)> = HashSet::new();
        if self.follow_symlinks {
            let m = fs::metadata(start)?;
            visited.insert((m.dev(), m.ino()));
        }
        let mut stack = vec![start.to_owned()];
        while let Some(dir) = stack.pop() {
            if self.cancel.is_cancelled() {
                return Ok(());
            }
            v.dir(&dir);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if dir == start => return Err(e),
                Err(e) => {
                    log.skip(
                        &dir,
                        format_args!("cannot read directory: {e}; {UNREADABLE_DIR_HINT}"),
                    );
                    continue;
                }
            };
            for entry in entries {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        log.skip(&dir, format_args!("cannot list directory: {e}"));
                        break;
                    }
                };
                self.entry(&entry, log, &mut visited, &mut stack, v);
            }
        }
        Ok(())
    }

    fn entry(
        &self,
        entry: &fs::DirEntry,
        log: &mut LogOnce,
        visited: &mut HashSet<(u64, u64)>,
        stack: &mut Vec<PathBuf>,
        v: &mut impl Visitor,
    ) {
        // A name that is not UTF-8 (a Latin-1 SMB share, an old camera) is a file like any
        // other: the journal keeps paths as bytes, the globs match bytes, and every human
        // output escapes what is not printable.
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(self.root) else {
            return;
        };
        let mut ft = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                log.skip(&path, format_args!("cannot stat: {e}"));
                return;
            }
        };
        let mut meta = None;
        if ft.is_symlink() {
            if !self.follow_symlinks {
                tracing::trace!(path = %path.shown(), "symlink not followed");
                return;
            }
            match self.rules.route(self.root, &path) {
                Err(why) => {
                    log.skip(&path, why);
                    return;
                }
                Ok(Route::Inside { root, real }) => {
                    self.inside_link(&path, &root, real, log, v);
                    return;
                }
                Ok(Route::Outside) => {}
            }
            match fs::metadata(&path) {
                Ok(m) => {
                    ft = m.file_type();
                    meta = Some(m);
                }
                Err(e) => {
                    log.skip(&path, format_args!("broken symlink or symlink loop: {e}"));
                    return;
                }
            }
        }
        if ft.is_dir() {
            if self.filter.rejects_dir(rel).is_some() {
                return;
            }
            if self.follow_symlinks {
                let m = match meta
                    .as_ref()
                    .map_or_else(|| fs::metadata(&path), |m| Ok(m.clone()))
                {
                    Ok(m) => m,
                    Err(e) => {
                        log.skip(&path, format_args!("cannot stat directory: {e}"));
                        return;
                    }
                };
                if !visited.insert((m.dev(), m.ino())) {
                    // Links inside the roots are never walked, so only a link to outside them
                    // can lead to a directory seen before: a loop, or a second such link.
                    if meta.is_some() {
                        log.skip(
                            &path,
                            "symlink loop (or a second link to one directory): already visited in this scan",
                        );
                    }
                    return;
                }
            }
            stack.push(path);
        } else if ft.is_file() {
            if self.filter.rejects_file(rel).is_some() {
                return;
            }
            let via_link = meta.is_some();
            match meta.map_or_else(|| entry.metadata(), Ok) {
                Ok(m) => match self.rules.refuse_file(&path, &m, via_link) {
                    Some(why) => log.skip(&path, why),
                    None => v.file(path, identity(&m)),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log.skip(&path, format_args!("cannot stat: {e}{}", overflow_hint(&e))),
            }
        } else if self.filter.rejects_file(rel).is_none() {
            log.skip(
                &path,
                "not a regular file (FIFO, socket or device): nothing to upload",
            );
        }
    }

    /// A followed link at `link` whose target is inside the root `root`, at `real`: another
    /// name for a file the roots' own walks find. A file in this root is reported under its
    /// real path (when that path is included); a directory is not walked through the link (its
    /// own path is, once); a target in another root is that root's.
    fn inside_link(
        &self,
        link: &Path,
        root: &Path,
        real: PathBuf,
        log: &mut LogOnce,
        v: &mut impl Visitor,
    ) {
        if root != self.root {
            tracing::debug!(path = %link.shown(), real = %real.shown(), "a symlink into another watch root: that root uploads the file");
            return;
        }
        let m = match fs::metadata(&real) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                log.skip(link, format_args!("cannot stat: {e}{}", overflow_hint(&e)));
                return;
            }
        };
        if !m.is_file() {
            tracing::trace!(path = %link.shown(), real = %real.shown(), "a symlink to a directory of the root: walked under its real path");
            return;
        }
        let Ok(rel) = real.strip_prefix(self.root) else {
            return;
        };
        if let Some(why) = self.filter.rejects_file(rel) {
            tracing::debug!(path = %link.shown(), real = %real.shown(), "a symlink to a file of the root that is not uploaded: {why}");
            return;
        }
        match self.rules.refuse_file(&real, &m, true) {
            Some(why) => log.skip(link, why),
            None => v.file(real, identity(&m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;

    #[derive(Default)]
    struct Found(Vec<PathBuf>);

    impl Visitor for Found {
        fn dir(&mut self, _: &Path) {}
        fn file(&mut self, path: PathBuf, _: FileIdentity) {
            self.0.push(path);
        }
    }

    #[test]
    fn links_inside_the_root_report_real_paths_and_are_never_walked() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("in");
        let real = root.join("real");
        fs::create_dir_all(&real).unwrap();
        fs::create_dir_all(root.join(".hidden")).unwrap();
        fs::write(real.join("a.mp4"), "a").unwrap();
        fs::write(root.join(".hidden/h.mp4"), "h").unwrap();
        symlink(&real, root.join("view")).unwrap();
        symlink("real", root.join("zview")).unwrap();
        symlink(real.join("a.mp4"), root.join("alias.mp4")).unwrap();
        symlink(".hidden/h.mp4", root.join("peek.mp4")).unwrap();
        symlink(&root, real.join("up")).unwrap();
        let filter =
            Filter::from_patterns(&["*.mp4".to_owned()], &[".*".to_owned()], true).unwrap();
        let rules = Rules::one_root(&root, true, false);
        let cancel = CancellationToken::new();
        let walk = Walk {
            root: &root,
            filter: &filter,
            follow_symlinks: true,
            rules: &rules,
            cancel: &cancel,
        };
        let mut log = LogOnce::default();
        let mut found = Found::default();
        walk.run(&root, &mut log, &mut found).unwrap();
        let paths: BTreeSet<PathBuf> = found.0.into_iter().collect();
        // One file under its real path, whatever the routes; the excluded file stays excluded.
        assert_eq!(paths, BTreeSet::from([real.join("a.mp4")]));
        // No warning about a "second link" for the real directory reached first by a link.
        for p in [
            &real,
            &root.join("view"),
            &root.join("zview"),
            &real.join("up"),
        ] {
            assert!(!log.logged(p), "{}", p.shown());
        }
    }

    #[test]
    fn eoverflow_says_what_the_platform_cannot_represent() {
        let e = io::Error::from_raw_os_error(libc::EOVERFLOW);
        assert!(overflow_hint(&e).contains("2038"));
        assert_eq!(
            overflow_hint(&io::Error::from_raw_os_error(libc::EACCES)),
            ""
        );
    }
}
