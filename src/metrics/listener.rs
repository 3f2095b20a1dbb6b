//! The accept loop of `[metrics] listen`, built so that no client can starve the daemon: at most
//! [`MAX_CONNECTIONS`] connections at once (one more is accepted and closed at once), a request's
//! headers must arrive within [`HEADER_TIMEOUT`] of the connection opening (an idle connection is
//! closed then), one request per connection, and a whole connection lives at most
//! [`CONNECTION_TIMEOUT`]. A connection whose descriptor lands within the reserve of the
//! process's descriptor limit ([`fd_reserve`]: a quarter of the limit, at most
//! [`FD_RESERVE_MAX`]) is closed at once too, so the watcher, the journal and the uploads always
//! keep descriptors of their own, while the listener keeps places even under a small limit.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Connections served at once; the status page and a scraper need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has, from the connection opening, to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection (one request and its answer) may live.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most descriptors kept free for everything but the listener (reached from a limit of 1024).
pub const FD_RESERVE_MAX: u64 = 256;
/// Descriptors the listener may always use below a tiny limit, whatever the reserve says.
const LISTENER_MIN: u64 = 8;

/// Descriptors kept free for everything but the listener under the soft limit `limit`: a quarter
/// of it, at most [`FD_RESERVE_MAX`], and never so many that the listener is left fewer than
/// `LISTENER_MIN` places. A fixed reserve of 256 refused every connection under a limit of 256
/// and left ~44 places under 300.
pub fn fd_reserve(limit: u64) -> u64 {
    (limit / 4)
        .min(FD_RESERVE_MAX)
        .min(limit.saturating_sub(LISTENER_MIN))
}

/// The soft `RLIMIT_NOFILE` now (`u64::MAX` when unlimited or unknown).
pub fn fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return u64::MAX;
    }
    rlim(r.rlim_cur)
}

/// `rlim_t` is 32-bit on armhf and i386, 64-bit elsewhere (where this is the identity).
#[allow(clippy::useless_conversion)]
fn rlim(v: libc::rlim_t) -> u64 {
    u64::from(v)
}

/// Whether a connection on descriptor `fd` would eat into the reserve under `limit`. Descriptors
/// are allocated lowest first, so the number tells how many are open.
pub fn in_reserve(fd: u64, limit: u64) -> bool {
    fd.saturating_add(fd_reserve(limit)) >= limit
}

/// Accepts connections until `shutdown`; requests in progress then get a second to finish.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut refused = Refusals::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE/ENFILE and friends: wait instead of spinning; the backlog keeps the rest.
                refused.note(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let fd = u64::try_from(stream.as_raw_fd()).unwrap_or(u64::MAX);
        if in_reserve(fd, fd_limit()) {
            refused.note("too few file descriptors left: connection closed");
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.note(&format!(
                "{MAX_CONNECTIONS} connections already open: connection closed"
            ));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut router = router.clone();
            tower_service::Service::call(&mut router, req.map(Body::new))
        });
        conns.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Err(e)) => tracing::debug!("metrics connection ended: {e}"),
                Ok(Ok(())) => {}
                Err(_) => tracing::debug!("metrics connection closed after {CONNECTION_TIMEOUT:?}"),
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.shutdown().await;
}

/// Refused connections, logged at most once a minute with how many there were.
#[derive(Default)]
struct Refusals {
    last: Option<Instant>,
    since: u64,
}

impl Refusals {
    fn note(&mut self, why: &str) {
        self.since += 1;
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        tracing::warn!(
            "metrics listener: {why} ({} refused since the last such line)",
            self.since
        );
        self.last = Some(Instant::now());
        self.since = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_below_the_limit() {
        assert!(!in_reserve(10, 1024));
        assert!(!in_reserve(1024 - FD_RESERVE_MAX - 1, 1024));
        assert!(in_reserve(1024 - FD_RESERVE_MAX, 1024));
        assert!(in_reserve(2000, 1024));
        assert!(!in_reserve(5000, u64::MAX));
    }

    #[test]
    fn the_reserve_scales_with_the_limit_and_leaves_the_listener_places() {
        assert_eq!(fd_reserve(u64::MAX), FD_RESERVE_MAX);
        assert_eq!(fd_reserve(65_536), FD_RESERVE_MAX);
        assert_eq!(fd_reserve(1024), 256);
        assert_eq!(fd_reserve(300), 75);
        assert_eq!(fd_reserve(256), 64);
        assert_eq!(fd_reserve(20), 5);
        assert_eq!(fd_reserve(10), 2);
        assert_eq!(fd_reserve(4), 0);
        assert_eq!(fd_reserve(0), 0);
        // Under small limits the listener still has places: a limit of 256 with ~30 descriptors
        // in use serves connections (a fixed reserve of 256 refused them all).
        for limit in [16, 64, 128, 256, 300, 512] {
            let free = limit - fd_reserve(limit);
            assert!(free >= limit * 3 / 4, "{limit}: {free} places");
            assert!(!in_reserve(limit / 2, limit), "{limit}");
            assert!(in_reserve(limit - 1, limit), "{limit}");
        }
    }
}
