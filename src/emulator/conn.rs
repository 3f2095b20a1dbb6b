//! The accept loop: one hyper HTTP/1.1 connection task per TCP connection, each with a
//! [`ConnCtl`] that request handlers use to abort their own connection (a real RST via
//! `SO_LINGER 0`, or a plain close without answering), or to cap how fast the socket is read
//! (the `conn_rate_bps` fault: a per-stream ceiling; TCP flow control makes the sender wait).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Per-connection control, inserted into every request's extensions.
#[derive(Debug, Default)]
pub struct ConnCtl {
    abort: Notify,
    reset: AtomicBool,
    /// Bytes per second this connection is read at, at most; 0 = as fast as it comes.
    read_rate: AtomicU64,
}

impl ConnCtl {
    /// Reads this connection at most at `bytes_per_sec` from now on (0 = no cap).
    pub fn cap_read_rate(&self, bytes_per_sec: u64) {
        self.read_rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Drops the connection without answering; with `reset`, the peer gets a TCP RST.
    pub fn abort(&self, reset: bool) {
        if reset {
            self.reset.store(true, Ordering::SeqCst);
        }
        self.abort.notify_one();
    }
}

/// The request extension carrying the connection's control.
#[derive(Debug, Clone)]
pub struct ConnHandle(pub Arc<ConnCtl>);

/// A TCP stream that sets `SO_LINGER 0` when dropped after [`ConnCtl::abort`] with `reset`,
/// and paces its reads at [`ConnCtl::cap_read_rate`].
struct FaultIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
    pace: Option<Pace>,
}

/// Read pacing: `read` bytes since `start` at `rate` bytes/s (plus a 10 ms burst).
struct Pace {
    rate: u64,
    start: tokio::time::Instant,
    read: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Pace {
    fn new(rate: u64) -> Pace {
        Pace {
            rate,
            start: tokio::time::Instant::now(),
            read: 0,
            sleep: None,
        }
    }

    fn burst(&self) -> u64 {
        (self.rate / 100).max(4096)
    }

    /// Bytes that may be read now; 0 = wait (a sleep is armed).
    fn allowance(&mut self) -> u64 {
        let elapsed = self.start.elapsed().as_secs_f64();
        // `as` saturates: an allowance past u64::MAX is unlimited anyway.
        #[allow(clippy::cast_possible_truncation)]
        let earned = (self.rate as f64 * elapsed) as u64 + self.burst();
        let left = earned.saturating_sub(self.read);
        if left == 0 {
            // At `read / rate` one more burst's worth (1/100 s) is earned.
            let at = self.start + Duration::from_secs_f64(self.read as f64 / self.rate as f64);
            self.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
        }
        left
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::SeqCst) {
            // Closing with a zero linger makes the kernel send RST instead of FIN.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rate = self.ctl.read_rate.load(Ordering::SeqCst);
        if rate == 0 {
            self.pace = None;
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if self.pace.as_ref().is_none_or(|p| p.rate != rate) {
            self.pace = Some(Pace::new(rate));
        }
        let this = &mut *self;
        let Some(pace) = this.pace.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if let Some(s) = &mut pace.sleep {
                ready!(s.as_mut().poll(cx));
                pace.sleep = None;
            }
            let allowed = pace.allowance();
            if allowed == 0 {
                continue;
            }
            // Read at most `allowed` bytes through a bounded buffer (a copy; test endpoint only).
            let n = usize::try_from(allowed)
                .unwrap_or(usize::MAX)
                .min(buf.remaining())
                .min(64 * 1024);
            let mut chunk = vec![0u8; n];
            let mut limited = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
            let got = limited.filled();
            pace.read += got.len() as u64;
            buf.put_slice(got);
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts connections until `shutdown`, then drops every open connection.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctl = Arc::new(ConnCtl::default());
        let io = TokioIo::new(FaultIo {
            inner: stream,
            ctl: ctl.clone(),
            pace: None,
        });
        let router = router.clone();
        let svc_ctl = ctl.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnHandle(svc_ctl.clone()));
            let mut router = router.clone();
            // The handler runs on the connection's task (one that ran on a task of its own, so
            // that a request whose body arrived whole is processed even if its client then reset
            // the connection, let the emulator's peak RSS grow from 26 to 99 MiB on a 1 GiB
            // chunked upload: tests/emulator_memory.rs). A client that closes its sending side
            // (FIN) still has its complete request processed (`half_close` below).
            tower_service::Service::call(&mut router, req)
        });
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                // A client that shuts down its sending side (or dies: the kernel sends a FIN
                // after the buffered bytes) still has its complete request read and processed.
                .half_close(true)
                .serve_connection(io, service);
            tokio::select! {
                res = conn => {
                    if let Err(e) = res {
                        tracing::debug!("connection ended: {e}");
                    }
                }
                () = ctl.abort.notified() => tracing::debug!("connection aborted by a fault"),
                () = shutdown.cancelled() => {}
            }
        });
    }
    conns.shutdown().await;
}
