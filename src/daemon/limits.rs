//! Process limits the daemon sets for itself at start: the soft `RLIMIT_NOFILE` is raised to the
//! hard limit, so that the watcher (inotify, directory listings), the journal (SQLite and its
//! WAL) and the uploads never run short of descriptors because of what the system's default soft
//! limit (often 1024) allows. The metrics listener also keeps a reserve below the limit
//! (`metrics::listener::fd_reserve`: a quarter of it, at most 256). Under systemd, `LimitNOFILE=` in the unit sets both
//! limits (its seccomp filter refuses `setrlimit`, which is fine).

/// Raises the soft descriptor limit to the hard one; returns the soft limit in force after.
pub fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return u64::MAX;
    }
    if r.rlim_cur < r.rlim_max {
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            tracing::debug!(
                from = r.rlim_cur,
                to = r.rlim_max,
                "raised the soft file descriptor limit"
            );
            return rlim(r.rlim_max);
        }
        tracing::debug!(
            "cannot raise the soft file descriptor limit ({}); keeping {}",
            std::io::Error::last_os_error(),
            r.rlim_cur
        );
    }
    rlim(r.rlim_cur)
}

/// `rlim_t` is 32-bit on armhf and i386, 64-bit elsewhere (where this is the identity).
#[allow(clippy::useless_conversion)]
fn rlim(v: libc::rlim_t) -> u64 {
    u64::from(v)
}
