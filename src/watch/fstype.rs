//! Filesystem type of a watch root, by `statfs(2)` magic: inotify only sees changes made through
//! the local kernel, so roots on network or FUSE filesystems are polled in `mode = "auto"`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What `statfs` says about the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// A local filesystem: inotify sees every change.
    Local,
    /// A network, cluster or FUSE filesystem (named): changes made elsewhere produce no events.
    Remote(&'static str),
}

/// `f_type` magic numbers (linux/magic.h and the filesystems' sources) of filesystems whose
/// changes inotify does not reliably report.
const REMOTE: &[(i64, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x0102_1997, "9p"),
    (0x6573_5546, "fuse"),
    (0x00C3_6400, "ceph"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "kafs"),
    (0x7375_7245, "coda"),
    (0x7461_636F, "ocfs2"),
    (0x0116_1970, "gfs2"),
    (0x0BD0_0BD0, "lustre"),
    (0x564C, "ncp"),
    (0x0187, "autofs"),
    (0x1373, "devfs"),
    (0x0BAD_1DEA, "sshfs"),
    (0x2FC1_2FC1, "zfs-fuse"),
];

/// Classifies an `f_type` magic number.
pub fn classify(magic: i64) -> FsKind {
    REMOTE
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or(FsKind::Local, |(_, name)| FsKind::Remote(name))
}

/// `statfs64(path).f_type`.
pub fn magic(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // statfs64: on 32-bit targets (armhf, i386) plain statfs fails with EOVERFLOW on a
    // filesystem of more than 2^32 blocks (16 TiB of 4 KiB blocks, a NAS array).
    // SAFETY: `c` is a valid NUL-terminated string and `buf` a properly sized, writable statfs64.
    let mut buf: libc::statfs64 = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs64(c.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type's integer type differs between libc targets.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Ok(i64::from(buf.f_type as i64) & 0xFFFF_FFFF)
}

/// The kind of filesystem `path` is on.
pub fn kind(path: &Path) -> io::Result<FsKind> {
    magic(path).map(classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magics() {
        assert_eq!(classify(0x6969), FsKind::Remote("nfs"));
        assert_eq!(classify(0xFF53_4D42), FsKind::Remote("cifs"));
        assert_eq!(classify(0x6573_5546), FsKind::Remote("fuse"));
        assert_eq!(classify(0xEF53), FsKind::Local); // ext4
        assert_eq!(classify(0x0102_1994), FsKind::Local); // tmpfs
    }

    #[test]
    fn statfs_of_tempdir_works() {
        let d = std::env::temp_dir();
        assert!(magic(&d).is_ok());
        assert!(magic(Path::new("/nonexistent/ingestd")).is_err());
    }
}
