//! The request-body wrapper installed by the middleware: counts bytes, resets the connection
//! after K bytes, throttles reading; one handle goes to the handler, another drains what is left.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, BodyDataStream, Bytes};
use futures_util::{Stream, StreamExt};

use super::conn::ConnCtl;
use super::state::lock;

/// Wraps the request body: counts bytes, resets the connection after K bytes, throttles.
struct Tap {
    inner: BodyDataStream,
    counter: Option<Arc<AtomicU64>>,
    seen: u64,
    reset_after: Option<u64>,
    ctl: Option<Arc<ConnCtl>>,
    bytes_per_sec: Option<u64>,
    started: Option<Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: bool,
}

impl Tap {
    fn stall_with_reset(&mut self) -> Poll<Option<Result<Bytes, axum::Error>>> {
        self.stalled = true;
        if let Some(ctl) = &self.ctl {
            ctl.abort(true);
        }
        Poll::Pending
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, axum::Error>>> {
        if self.stalled {
            return Poll::Pending;
        }
        if let Some(s) = &mut self.sleep {
            ready!(s.as_mut().poll(cx));
            self.sleep = None;
        }
        if let Some(k) = self.reset_after
            && self.seen >= k
        {
            return self.stall_with_reset();
        }
        match ready!(self.inner.poll_next_unpin(cx)) {
            Some(Ok(mut bytes)) => {
                if let Some(k) = self.reset_after {
                    let left = usize::try_from(k - self.seen).unwrap_or(usize::MAX);
                    bytes.truncate(left);
                }
                let n = bytes.len() as u64;
                self.seen += n;
                if let Some(c) = &self.counter {
                    c.fetch_add(n, Ordering::Relaxed);
                }
                if let Some(rate) = self.bytes_per_sec {
                    let started = *self.started.get_or_insert_with(Instant::now);
                    let due =
                        started + Duration::from_secs_f64(self.seen as f64 / rate.max(1) as f64);
                    if due > Instant::now() {
                        self.sleep = Some(Box::pin(tokio::time::sleep_until(due.into())));
                    }
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None if self.reset_after.is_some() => self.stall_with_reset(),
            None => Poll::Ready(None),
        }
    }
}

/// A shared handle on the tapped body: one goes to the handler, one stays here to drain.
#[derive(Clone)]
pub struct TapHandle(Arc<Mutex<Tap>>);

impl Stream for TapHandle {
    type Item = Result<Bytes, axum::Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.0).poll_next(cx)
    }
}

pub async fn drain(handle: &mut TapHandle) {
    while let Some(item) = handle.next().await {
        if item.is_err() {
            break;
        }
    }
}

impl TapHandle {
    /// Wraps `body`: `counter` receives the byte count, `reset_after` aborts the connection `ctl`
    /// with a reset after that many bytes, `bytes_per_sec` throttles.
    pub fn new(
        body: Body,
        counter: Option<Arc<AtomicU64>>,
        reset_after: Option<u64>,
        ctl: Option<Arc<ConnCtl>>,
        bytes_per_sec: Option<u64>,
    ) -> TapHandle {
        TapHandle(Arc::new(Mutex::new(Tap {
            inner: body.into_data_stream(),
            counter,
            seen: 0,
            reset_after,
            ctl,
            bytes_per_sec,
            started: None,
            sleep: None,
            stalled: false,
        })))
    }

    /// A body for the handler that reads through this tap.
    pub fn body(&self) -> Body {
        Body::from_stream(self.clone())
    }
}
