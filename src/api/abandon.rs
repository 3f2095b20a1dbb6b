//! How an upload request is given up (the shutdown deadline, the file changed, its timeout): its
//! body ends with an error, so hyper drops the connection at once — a RST, with
//! [`super::linger`] — and never shuts it down gracefully.
//!
//! Why: hyper handles a *cancelled* request (its answer future dropped) as a clean end: it calls
//! `shutdown(SHUT_WR)`, a FIN queued behind the body bytes still buffered, then closes. A server
//! reading meanwhile takes those bytes and the FIN, and sees an orderly end before the RST comes.
//! A body that fails instead makes hyper drop the connection without that shutdown.
//!
//! How: the request body reads through a [`Gate`]; [`Sending`] wraps the request's future, and
//! when it is dropped before the answer it closes the gate and keeps the request going on a task
//! of its own ([`DETACHED_FOR`] at most), so hyper meets the closed gate at the body's next piece
//! instead of a cancelled answer. If the endpoint reads nothing in that time, the request is
//! dropped as before: its FIN cannot leave behind unsent bytes, and the close discards both.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long an abandoned request may still run to meet its closed gate.
pub const DETACHED_FOR: Duration = Duration::from_secs(10);

/// Lets the body go on only while the request is live: closed when the request is answered or
/// given up, and checked under the same lock by whatever reads the body. It holds what the body
/// may use only while it is open (the upload's observer): closing drops it at once, whatever
/// the connection still does with the body.
#[derive(Debug)]
pub struct Gate<T = ()>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Gate<T> {
    fn clone(&self) -> Self {
        Gate(self.0.clone())
    }
}

impl Default for Gate<()> {
    fn default() -> Self {
        Gate::open(())
    }
}

impl<T> Gate<T> {
    /// An open gate holding `value`.
    pub fn open(value: T) -> Self {
        Gate(Arc::new(Mutex::new(Some(value))))
    }

    /// Runs `f` on the value unless the gate is closed; `None` if it was closed.
    pub fn run<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        open.as_ref().map(f)
    }

    /// Closes the gate and drops its value.
    pub fn close(&self) {
        let value = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(value);
    }

    pub fn is_closed(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

/// A request in flight whose body reads through `gate`. Dropped before it is done, it closes the
/// gate and hands the request to a task of its own (see the module doc); done or dropped, the
/// gate is closed afterwards.
pub struct Sending<F: Future + Send + 'static, T> {
    inner: Option<Pin<Box<F>>>,
    gate: Gate<T>,
}

impl<F: Future + Send + 'static, T> Sending<F, T> {
    pub fn new(request: F, gate: Gate<T>) -> Self {
        Sending {
            inner: Some(Box::pin(request)),
            gate,
        }
    }
}

impl<F: Future + Send + 'static, T> Future for Sending<F, T> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(inner) = self.inner.as_mut() else {
            // Polled after it was done: a caller's bug; never ready again.
            return Poll::Pending;
        };
        let out = std::task::ready!(inner.as_mut().poll(cx));
        self.inner = None;
        Poll::Ready(out)
    }
}

impl<F: Future + Send + 'static, T> Drop for Sending<F, T> {
    fn drop(&mut self) {
        self.gate.close();
        let Some(inner) = self.inner.take() else {
            return;
        };
        // Outside a runtime (its shutdown) the request is simply dropped, its connection with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(DETACHED_FOR, inner).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_runs_until_closed_and_drops_its_value_then() {
        let value = Arc::new(7);
        let gate = Gate::open(value.clone());
        assert_eq!(gate.run(|v| **v + 1), Some(8));
        assert_eq!(Arc::strong_count(&value), 2);
        gate.clone().close();
        assert_eq!(gate.run(|v| **v), None);
        assert!(gate.is_closed());
        assert_eq!(Arc::strong_count(&value), 1, "closing dropped the value");
    }

    /// Dropped before the answer: the gate closes and the request still runs to its end.
    #[tokio::test]
    async fn a_dropped_request_closes_its_gate_and_runs_on() {
        let gate = Gate::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let sending = Sending::new(
            async move {
                let _ = rx.await;
                let _ = done_tx.send(());
            },
            gate.clone(),
        );
        drop(sending);
        assert!(gate.is_closed());
        tx.send(()).unwrap();
        done_rx.await.expect("the detached request ran to its end");
    }

    #[tokio::test]
    async fn a_finished_request_closes_its_gate_too() {
        let gate = Gate::default();
        let out = Sending::new(async { 7 }, gate.clone()).await;
        assert_eq!(out, 7);
        assert!(gate.is_closed());
    }
}
