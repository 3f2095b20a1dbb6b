//! Signals: SIGTERM/SIGINT cancel the daemon's [`CancellationToken`]; SIGHUP asks for a reload;
//! SIGUSR2 toggles the upload bandwidth limit off and back on (as in rclone), through a `Notify`.
//!
//! Reload requests are coalesced: several SIGHUPs while a reload is pending make one reload.

use std::io;

use futures_util::StreamExt;
use std::sync::Arc;

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use tokio::sync::Notify;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The receiving side of reload requests (SIGHUP, or [`ReloadTrigger::request`] in tests).
#[derive(Debug)]
pub struct ReloadRequests {
    tx: mpsc::Sender<()>,
    rx: mpsc::Receiver<()>,
}

/// Asks for a reload; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReloadTrigger {
    tx: mpsc::Sender<()>,
}

impl ReloadRequests {
    pub fn new() -> ReloadRequests {
        let (tx, rx) = mpsc::channel(1);
        ReloadRequests { tx, rx }
    }

    /// A trigger feeding this receiver.
    pub fn trigger(&self) -> ReloadTrigger {
        ReloadTrigger {
            tx: self.tx.clone(),
        }
    }

    /// Waits for the next reload request. Never returns `None` while `self` lives (it holds a
    /// sender itself), so it can sit in a `select!` loop.
    pub async fn recv(&mut self) -> Option<()> {
        self.rx.recv().await
    }
}

impl Default for ReloadRequests {
    fn default() -> Self {
        ReloadRequests::new()
    }
}

impl ReloadTrigger {
    /// Requests a reload; a no-op if one is already pending.
    pub fn request(&self) {
        let _ = self.tx.try_send(());
    }
}

/// The installed handlers; dropping this stops listening (the process then ignores these
/// signals rather than dying of them, which is what a shutting-down daemon wants).
#[derive(Debug)]
pub struct SignalHandler {
    handle: signal_hook_tokio::Handle,
    task: JoinHandle<()>,
}

/// Installs handlers for SIGTERM, SIGINT, SIGHUP and SIGUSR2 (which wakes `toggle`). Must be
/// called inside a tokio runtime.
pub fn install(
    shutdown: CancellationToken,
    reload: ReloadTrigger,
    toggle: Arc<Notify>,
) -> io::Result<SignalHandler> {
    let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])?;
    let handle = signals.handle();
    let task = tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            let name = match signal {
                SIGHUP => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    reload.request();
                    continue;
                }
                SIGUSR2 => {
                    toggle.notify_one();
                    continue;
                }
                SIGINT => "SIGINT",
                _ => "SIGTERM",
            };
            if shutdown.is_cancelled() {
                tracing::info!("{name}: already shutting down");
            } else {
                tracing::info!("{name}: shutting down");
                shutdown.cancel();
            }
        }
    });
    Ok(SignalHandler { handle, task })
}

impl Drop for SignalHandler {
    fn drop(&mut self) {
        self.handle.close();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reload_requests_coalesce() {
        let mut reloads = ReloadRequests::new();
        let trigger = reloads.trigger();
        trigger.request();
        trigger.request();
        trigger.clone().request();
        assert_eq!(reloads.recv().await, Some(()));
        assert!(
            reloads.rx.try_recv().is_err(),
            "three requests made one reload"
        );
    }

    /// Raises real signals at this process (handlers are installed first, so it survives).
    #[tokio::test]
    async fn sighup_reloads_and_sigterm_cancels() {
        let shutdown = CancellationToken::new();
        let mut reloads = ReloadRequests::new();
        let handler =
            install(shutdown.clone(), reloads.trigger(), Arc::new(Notify::new())).unwrap();
        let limit = Duration::from_secs(30);

        signal_hook::low_level::raise(SIGHUP).unwrap();
        tokio::time::timeout(limit, reloads.recv()).await.unwrap();
        assert!(!shutdown.is_cancelled());

        signal_hook::low_level::raise(SIGTERM).unwrap();
        tokio::time::timeout(limit, shutdown.cancelled())
            .await
            .unwrap();
        drop(handler);
    }
}
