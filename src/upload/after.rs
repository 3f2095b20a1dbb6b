//! `after_upload`: keep, delete or move a file once its upload is complete and re-stat'ed.
//!
//! A failure here never undoes the upload: the file stays `done` and the [`AfterOutcome`]'s
//! message ("moved to …", "delete failed: …") goes to the journal and the log.
//!
//! `move` keeps the path relative to the watch root under `move_to`, creates directories,
//! and never overwrites: the name gets a suffix (`clip (1).mp4`, `clip (2).mp4`, …). The final
//! rename is `renameat2(RENAME_NOREPLACE)`, so even a file appearing concurrently at the target
//! is not overwritten (on filesystems without it: check, then rename). Across filesystems
//! (`EXDEV`) the file is copied to a hidden temporary name in the destination directory,
//! fsync'ed, renamed into place, the directory fsync'ed, and only then is the source removed.
//! A crash mid-copy leaves at most a `.…ingestd-tmp…` file in the destination, never a
//! half-written file under the real name; a crash after the copy was renamed into place leaves a
//! whole copy, which the next attempt recognises (same size, mtime and bytes) and keeps instead
//! of making a second one.
//!
//! These are blocking filesystem calls: from async code use [`apply_async`].

use crate::escape::Show as _;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::config::AfterUpload;

/// How many suffixes (`name (1)` … `name (N)`) are tried before giving up.
const MAX_SUFFIX: u32 = 9_999;

/// What the post-upload action did.
#[derive(Debug)]
pub enum AfterOutcome {
    Kept,
    Deleted,
    /// Moved to `to`; `copied` is true when it crossed filesystems.
    Moved {
        to: PathBuf,
        copied: bool,
    },
    DeleteFailed(AfterError),
    MoveFailed(AfterError),
}

impl AfterOutcome {
    /// False when the action failed (the upload itself is still complete).
    pub fn is_success(&self) -> bool {
        !matches!(
            self,
            AfterOutcome::DeleteFailed(_) | AfterOutcome::MoveFailed(_)
        )
    }

    /// The one-line message for the journal and the log.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// The journal's `after_upload` text (`status` picks failed actions by a column, not by it).
impl fmt::Display for AfterOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AfterOutcome::Kept => write!(f, "kept"),
            AfterOutcome::Deleted => write!(f, "deleted"),
            AfterOutcome::Moved { to, copied: false } => write!(f, "moved to {}", to.shown()),
            AfterOutcome::Moved { to, copied: true } => {
                write!(f, "moved to {} (copied across filesystems)", to.shown())
            }
            AfterOutcome::DeleteFailed(e) => write!(
                f,
                "delete failed: {e}; the file is uploaded (done) and was left in place: delete it by hand"
            ),
            AfterOutcome::MoveFailed(e) => write!(
                f,
                "move failed: {e}; the file is uploaded (done) and was left in place: fix the cause (space, permissions of move_to), then move it by hand"
            ),
        }
    }
}

/// Why a delete or move failed.
#[derive(Debug, thiserror::Error)]
pub enum AfterError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is not under its watch root {root}")]
    NotUnderRoot { path: PathBuf, root: PathBuf },
    #[error("no free name for {0} (tried {MAX_SUFFIX} suffixes)")]
    NoFreeName(PathBuf),
    #[error("copied to {to} but could not remove the original {from}: {source}")]
    SourceNotRemoved {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AfterError {
    let path = path.to_owned();
    move |source| AfterError::Io { op, path, source }
}

/// Runs `action` on `path`, found under the watch root `root`.
/// The action for a file recorded under `root`: the configured one when `root` is one of the
/// watch roots, else `keep`. `after_upload` is about the watch roots; a file given to
/// `ingestd upload` from elsewhere is never deleted or moved, by whichever process uploads it.
pub fn action_for(configured: &AfterUpload, watch_roots: &[PathBuf], root: &Path) -> AfterUpload {
    if watch_roots.iter().any(|r| r == root) {
        configured.clone()
    } else {
        AfterUpload::Keep
    }
}

pub fn apply(action: &AfterUpload, root: &Path, path: &Path) -> AfterOutcome {
    match action {
        AfterUpload::Keep => AfterOutcome::Kept,
        AfterUpload::Delete => match fs::remove_file(path) {
            Ok(()) => AfterOutcome::Deleted,
            Err(e) => AfterOutcome::DeleteFailed(io_err("removing", path)(e)),
        },
        AfterUpload::Move(dest_root) => {
            match move_under(root, path, dest_root, &rename_noreplace) {
                Ok((to, copied)) => AfterOutcome::Moved { to, copied },
                Err(e) => AfterOutcome::MoveFailed(e),
            }
        }
    }
}

/// [`apply`] on tokio's blocking pool.
pub async fn apply_async(action: AfterUpload, root: PathBuf, path: PathBuf) -> AfterOutcome {
    let shown = path.clone();
    tokio::task::spawn_blocking(move || apply(&action, &root, &path))
        .await
        .unwrap_or_else(|e| {
            AfterOutcome::MoveFailed(AfterError::Io {
                op: "post-upload action on",
                path: shown,
                source: io::Error::other(e.to_string()),
            })
        })
}

type RenameFn<'a> = dyn Fn(&Path, &Path) -> io::Result<()> + 'a;

/// Moves `path` to `dest_root/<path relative to root>`, with a suffix if taken.
/// Returns the final path and whether it was copied across filesystems.
fn move_under(
    root: &Path,
    path: &Path,
    dest_root: &Path,
    rename: &RenameFn<'_>,
) -> Result<(PathBuf, bool), AfterError> {
    let rel = path
        .strip_prefix(root)
        .ok()
        .filter(|r| r.file_name().is_some())
        .ok_or_else(|| AfterError::NotUnderRoot {
            path: path.to_owned(),
            root: root.to_owned(),
        })?;
    let target = dest_root.join(rel);
    let dir = target.parent().unwrap_or(dest_root);
    fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;

    match place(path, &target, rename) {
        Ok(to) => Ok((to, false)),
        Err(Placed::CrossDevice) => copy_across(path, &target, dir, rename).map(|to| (to, true)),
        Err(Placed::Failed(e)) => Err(e),
    }
}

enum Placed {
    CrossDevice,
    Failed(AfterError),
}

/// Renames `from` to `target` or the first free suffixed variant of it.
fn place(from: &Path, target: &Path, rename: &RenameFn<'_>) -> Result<PathBuf, Placed> {
    for n in 0..=MAX_SUFFIX {
        let candidate = suffixed(target, n);
        match rename(from, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => return Err(Placed::CrossDevice),
            Err(e) => return Err(Placed::Failed(io_err("moving", from)(e))),
        }
    }
    Err(Placed::Failed(AfterError::NoFreeName(target.to_owned())))
}

/// The EXDEV path: copy into a temp file beside the target, fsync, rename into place, fsync the
/// directory, then remove the source. If a previous attempt already put a whole copy in place
/// (a crash between the rename and removing the source), that copy is used, not duplicated.
fn copy_across(
    from: &Path,
    target: &Path,
    dir: &Path,
    rename: &RenameFn<'_>,
) -> Result<PathBuf, AfterError> {
    if let Some(to) = existing_copy(from, target)? {
        fs::remove_file(from).map_err(|source| AfterError::SourceNotRemoved {
            from: from.to_owned(),
            to: to.clone(),
            source,
        })?;
        return Ok(to);
    }
    let temp = temp_name(dir, target);
    let result = copy_to_temp(from, &temp).and_then(|()| match place(&temp, target, rename) {
        Ok(to) => Ok(to),
        Err(Placed::Failed(e)) => Err(e),
        // The temp file is in the target's directory: this cannot cross devices.
        Err(Placed::CrossDevice) => Err(AfterError::Io {
            op: "renaming",
            path: temp.clone(),
            source: io::Error::from(io::ErrorKind::CrossesDevices),
        }),
    });
    let to = match result {
        Ok(to) => to,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))?;
    fail::fail_point!("after-upload-copied"); // W6: the copy is in place, the source not removed
    fs::remove_file(from).map_err(|source| AfterError::SourceNotRemoved {
        from: from.to_owned(),
        to: to.clone(),
        source,
    })?;
    Ok(to)
}

/// The first of `target`, `target (1)`, … (up to the first free name) that is already a copy of
/// `from`: same size, same modification time (the copy keeps it) and the same bytes.
fn existing_copy(from: &Path, target: &Path) -> Result<Option<PathBuf>, AfterError> {
    let src = fs::metadata(from).map_err(io_err("reading metadata of", from))?;
    for n in 0..=MAX_SUFFIX {
        let candidate = suffixed(target, n);
        let Ok(meta) = fs::symlink_metadata(&candidate) else {
            return Ok(None); // the first free name: no copy beyond it
        };
        let same_mtime = match (meta.modified(), src.modified()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if meta.is_file()
            && meta.len() == src.len()
            && same_mtime
            && same_bytes(from, &candidate).map_err(io_err("comparing with", &candidate))?
        {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Whether two files of equal length hold the same bytes (streamed, fixed buffers).
fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    use std::io::Read;
    const BUF: usize = 128 * 1024;
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; BUF], vec![0u8; BUF]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            let mut probe = [0u8; 1];
            return Ok(fb.read(&mut probe)? == 0);
        }
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

fn copy_to_temp(from: &Path, temp: &Path) -> Result<(), AfterError> {
    let mut src = File::open(from).map_err(io_err("opening", from))?;
    let meta = src
        .metadata()
        .map_err(io_err("reading metadata of", from))?;
    let mut dst = File::create_new(temp).map_err(io_err("creating", temp))?;
    // std's copy uses copy_file_range/sendfile on Linux: streamed, no userspace buffer.
    io::copy(&mut src, &mut dst).map_err(io_err("copying to", temp))?;
    dst.set_permissions(meta.permissions())
        .map_err(io_err("setting permissions of", temp))?;
    if let Ok(mtime) = meta.modified() {
        dst.set_modified(mtime)
            .map_err(io_err("setting the modification time of", temp))?;
    }
    dst.sync_all().map_err(io_err("syncing", temp))
}

fn temp_name(dir: &Path, target: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(".ingestd-tmp-{}", std::process::id()));
    dir.join(name)
}

/// `clip.mp4` → `clip (n).mp4` (n = 0: unchanged).
fn suffixed(target: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return target.to_owned();
    }
    let stem = target.file_stem().unwrap_or_default();
    let mut name = stem.to_owned();
    name.push(format!(" ({n})"));
    if let Some(ext) = target.extension() {
        name.push(".");
        name.push(ext);
    }
    target.with_file_name(name)
}

/// `rename` that fails with `AlreadyExists` instead of replacing an existing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c_from = CString::new(from.as_os_str().as_bytes())?;
        let c_to = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_from.as_ptr(),
                libc::AT_FDCWD,
                c_to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // EINVAL/ENOSYS: the filesystem or kernel lacks RENAME_NOREPLACE; fall back below.
        if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
            return Err(err);
        }
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    fs::rename(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_applies_only_under_a_watch_root() {
        let roots = vec![PathBuf::from("/srv/in")];
        let delete = AfterUpload::Delete;
        assert_eq!(action_for(&delete, &roots, Path::new("/srv/in")), delete);
        for outside in ["/home/me", "/srv/in/sub", "/srv"] {
            assert_eq!(
                action_for(&delete, &roots, Path::new(outside)),
                AfterUpload::Keep,
                "{outside}"
            );
        }
        assert_eq!(
            action_for(&delete, &[], Path::new("/srv/in")),
            AfterUpload::Keep
        );
    }
    use std::cell::Cell;

    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        dest: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("inbox");
        let dest = tmp.path().join("uploaded");
        fs::create_dir_all(root.join("cam1/day2")).unwrap();
        Tree {
            _tmp: tmp,
            root,
            dest,
        }
    }

    fn write(path: &Path, data: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    #[test]
    fn keep_does_nothing() {
        let t = tree();
        let f = t.root.join("a.mp4");
        write(&f, b"x");
        let out = apply(&AfterUpload::Keep, &t.root, &f);
        assert!(out.is_success());
        assert_eq!(out.message(), "kept");
        assert!(f.exists());
    }

    #[test]
    fn delete_removes_and_reports_failure() {
        let t = tree();
        let f = t.root.join("a.mp4");
        write(&f, b"x");
        let out = apply(&AfterUpload::Delete, &t.root, &f);
        assert_eq!(out.message(), "deleted");
        assert!(!f.exists());
        let again = apply(&AfterUpload::Delete, &t.root, &f);
        assert!(!again.is_success());
        let msg = again.message();
        assert!(msg.starts_with("delete failed: removing "), "{msg}");
        assert!(msg.contains("a.mp4"), "{msg}");
    }

    #[test]
    fn move_keeps_relative_path_and_never_overwrites() {
        let t = tree();
        let action = AfterUpload::Move(t.dest.clone());
        let rel = Path::new("cam1/day2/clip.mp4");
        for (i, content) in [b"one", b"two", b"333"].iter().enumerate() {
            let f = t.root.join(rel);
            write(&f, *content);
            let out = apply(&action, &t.root, &f);
            let expected = match i {
                0 => t.dest.join("cam1/day2/clip.mp4"),
                n => t.dest.join(format!("cam1/day2/clip ({n}).mp4")),
            };
            match &out {
                AfterOutcome::Moved { to, copied: false } => assert_eq!(to, &expected),
                other => panic!("{other:?}"),
            }
            assert_eq!(out.message(), format!("moved to {}", expected.shown()));
            assert!(!f.exists());
            assert_eq!(fs::read(&expected).unwrap(), *content);
        }
        assert_eq!(fs::read(t.dest.join("cam1/day2/clip.mp4")).unwrap(), b"one");
    }

    #[test]
    fn move_of_a_file_outside_the_root_fails_clearly() {
        let t = tree();
        let out = apply(
            &AfterUpload::Move(t.dest.clone()),
            &t.root,
            Path::new("/elsewhere/x.mp4"),
        );
        assert!(!out.is_success());
        assert!(
            out.message().contains("is not under its watch root"),
            "{}",
            out.message()
        );
    }

    #[test]
    fn suffixes() {
        assert_eq!(
            suffixed(Path::new("/d/clip.mp4"), 2),
            Path::new("/d/clip (2).mp4")
        );
        assert_eq!(suffixed(Path::new("/d/clip"), 1), Path::new("/d/clip (1)"));
        assert_eq!(
            suffixed(Path::new("/d/a.b.mxf"), 1),
            Path::new("/d/a.b (1).mxf")
        );
        assert_eq!(
            suffixed(Path::new("/d/clip.mp4"), 0),
            Path::new("/d/clip.mp4")
        );
    }

    #[test]
    fn cross_device_move_copies_syncs_and_removes_the_source() {
        let t = tree();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let f = t.root.join("cam1/big.mov");
        write(&f, &data);
        // An existing file at the target forces the suffix on the copy path too.
        write(&t.dest.join("cam1/big.mov"), b"older");
        let first_call = Cell::new(true);
        // Test hook: the first rename (source → target) fails as across filesystems.
        let hook = |from: &Path, to: &Path| {
            if first_call.replace(false) {
                assert_eq!(from, f.as_path());
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            rename_noreplace(from, to)
        };
        let (to, copied) = move_under(&t.root, &f, &t.dest, &hook).unwrap();
        assert!(copied);
        assert_eq!(to, t.dest.join("cam1/big (1).mov"));
        assert_eq!(fs::read(&to).unwrap(), data);
        assert_eq!(fs::read(t.dest.join("cam1/big.mov")).unwrap(), b"older");
        assert!(!f.exists());
        let leftovers: Vec<_> = fs::read_dir(t.dest.join("cam1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("ingestd-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn cross_device_move_reuses_a_whole_copy_left_by_a_crash() {
        let t = tree();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let f = t.root.join("cam1/clip.mp4");
        write(&f, &data);
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        // `clip.mp4`: same size and mtime, other bytes (not ours); `clip (1).mp4`: our copy.
        let mut other = data.clone();
        other[150_000] ^= 0xff;
        for (name, bytes) in [("clip.mp4", &other), ("clip (1).mp4", &data)] {
            let p = t.dest.join("cam1").join(name);
            write(&p, bytes);
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
        let exdev = |_: &Path, _: &Path| -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EXDEV))
        };
        let (to, copied) = move_under(&t.root, &f, &t.dest, &exdev).unwrap();
        assert!(copied);
        assert_eq!(to, t.dest.join("cam1/clip (1).mp4"));
        assert!(!f.exists(), "the source is removed");
        assert_eq!(
            fs::read_dir(t.dest.join("cam1")).unwrap().count(),
            2,
            "no third copy"
        );
        assert_eq!(fs::read(t.dest.join("cam1/clip.mp4")).unwrap(), other);
    }

    #[test]
    fn cross_device_copy_failure_leaves_source_and_no_temp() {
        let t = tree();
        let f = t.root.join("x.mp4");
        write(&f, b"data");
        let hook = |_: &Path, _: &Path| -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EXDEV))
        };
        let err = move_under(&t.root, &f, &t.dest, &hook).unwrap_err();
        assert!(err.to_string().contains("renaming"), "{err}");
        assert!(f.exists());
        assert_eq!(fs::read_dir(&t.dest).unwrap().count(), 0);
    }

    /// The real thing, when /dev/shm is another filesystem than the temp dir.
    #[test]
    fn real_cross_filesystem_move_when_available() {
        use std::os::unix::fs::MetadataExt;
        let shm = Path::new("/dev/shm");
        let t = tree();
        let (Ok(a), Ok(b)) = (fs::metadata(&t.root), fs::metadata(shm)) else {
            return;
        };
        if a.dev() == b.dev() {
            return;
        }
        let Ok(dest) = tempfile::tempdir_in(shm) else {
            return;
        };
        let f = t.root.join("cam1/day2/real.mp4");
        write(&f, b"across");
        let out = apply(&AfterUpload::Move(dest.path().to_owned()), &t.root, &f);
        let expected = dest.path().join("cam1/day2/real.mp4");
        match &out {
            AfterOutcome::Moved { to, copied: true } => assert_eq!(to, &expected),
            other => panic!("{other:?}"),
        }
        assert!(out.message().ends_with("(copied across filesystems)"));
        assert_eq!(fs::read(&expected).unwrap(), b"across");
        assert!(!f.exists());
    }
}
