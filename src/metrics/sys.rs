//! What the kernel says: free space on a root's filesystem (`statvfs(3)`) and the inotify watch
//! limit (`/proc/sys/fs/inotify/max_user_watches`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the per-user inotify watch limit is.
pub const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// Space on the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes available to an unprivileged user (`f_bavail · f_frsize`).
    pub free: u64,
    /// Size of the filesystem (`f_blocks · f_frsize`).
    pub size: u64,
}

/// `statvfs64(path)`.
pub fn space(path: &Path) -> io::Result<Space> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // statvfs64: on 32-bit targets (armhf, i386) plain statvfs fails with EOVERFLOW on a
    // filesystem of more than 2^32 blocks (16 TiB of 4 KiB blocks, a NAS array).
    // SAFETY: `c` is a valid NUL-terminated string and `buf` a properly sized, writable statvfs64.
    let mut buf: libc::statvfs64 = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs64(c.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field types differ between libc targets.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let (frsize, bavail, blocks) = (
        buf.f_frsize as u64,
        buf.f_bavail as u64,
        buf.f_blocks as u64,
    );
    Ok(Space {
        free: bavail.saturating_mul(frsize),
        size: blocks.saturating_mul(frsize),
    })
}

/// The inotify watch limit, if the kernel exposes it.
pub fn inotify_watch_limit() -> Option<u64> {
    parse_limit(&std::fs::read_to_string(MAX_USER_WATCHES).ok()?)
}

fn parse_limit(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_of_a_real_directory_and_an_error_for_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(dir.path()).unwrap();
        assert!(s.size > 0 && s.free <= s.size, "{s:?}");
        assert!(space(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn limit_parses_the_proc_format() {
        assert_eq!(parse_limit("524288\n"), Some(524288));
        assert_eq!(parse_limit("x"), None);
    }
}
