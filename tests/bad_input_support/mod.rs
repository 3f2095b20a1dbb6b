//! Helpers for `tests/hostile_bad_input.rs`: run ingestd as an unprivileged user (root ignores
//! permission bits, and CI runs as root), a small tmpfs that is unmounted even when a test fails,
//! and a file system filled to the last byte.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::common;

/// The uid/gid ingestd runs as when the test runs as root (`nobody`).
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the ingestd binary as `nobody` (through `setpriv`) when the test runs as root, or as
/// the current user otherwise.
pub struct Runner {
    bin: PathBuf,
    setpriv: bool,
    _copy: Option<tempfile::TempDir>,
}

impl Runner {
    pub fn new() -> Runner {
        if !is_root() {
            return Runner {
                bin: common::bin(),
                setpriv: false,
                _copy: None,
            };
        }
        let reachable = |bin: &Path| {
            setpriv(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let bin = common::bin();
        if reachable(&bin) {
            return Runner {
                bin,
                setpriv: true,
                _copy: None,
            };
        }
        // The build directory sits under a 0700 home: copy the binary somewhere nobody reaches.
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("ingestd");
        std::fs::copy(&bin, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(reachable(&copy), "setpriv cannot run {}", copy.display());
        Runner {
            bin: copy,
            setpriv: true,
            _copy: Some(dir),
        }
    }

    /// `ingestd` (as `nobody` when root), with a clean environment for config lookup.
    pub fn command(&self) -> Command {
        let mut c = if self.setpriv {
            setpriv(&self.bin)
        } else {
            Command::new(&self.bin)
        };
        c.env_remove("INGESTD_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC");
        c
    }

    /// Hands `path` (recursively) to the user ingestd runs as: `chown nobody` when root.
    pub fn give(&self, path: &Path) {
        if !self.setpriv {
            return;
        }
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        if path.is_dir() && !path.is_symlink() {
            for e in std::fs::read_dir(path).unwrap() {
                self.give(&e.unwrap().path());
            }
        }
    }
}

fn setpriv(bin: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        &NOBODY.to_string(),
        "--regid",
        &NOBODY.to_string(),
        "--clear-groups",
    ])
    .arg(bin);
    c
}

/// A tmpfs of `size` mounted on a directory; lazily unmounted on drop (even after a panic).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs on `path` (created). `None` when not root (mounting needs it).
    pub fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("not root: skipping the tmpfs case");
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", path.display());
        Some(Tmpfs {
            path: path.to_owned(),
        })
    }

    /// Fills the file system to the last byte with `filler`; returns its path.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let buf = vec![0u8; 4096];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
        // Smaller writes until not one byte fits.
        while f.write(&[0u8]).is_ok_and(|n| n == 1) {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
