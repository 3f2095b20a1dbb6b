//! systemd notifications (`Type=notify`): `READY=1`, `STATUS=…`, `RELOADING=1`, `STOPPING=1`,
//! and `WATCHDOG=1` only while a health check (the journal round-trips) passes.
//!
//! [`Notifier::from_env`] uses `$NOTIFY_SOCKET` through the `sd-notify` crate and is a no-op
//! outside systemd. [`Notifier::to_socket`] sends to an explicit socket path (tests, or a
//! supervisor passing its own socket); `@name` is an abstract socket, as in `NOTIFY_SOCKET`.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Where notifications go.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Disabled,
    Env,
    Socket(PathBuf),
}

impl Notifier {
    /// `$NOTIFY_SOCKET` if set (running under systemd), otherwise disabled.
    pub fn from_env() -> Notifier {
        let target = match std::env::var_os("NOTIFY_SOCKET") {
            Some(_) => Target::Env,
            None => Target::Disabled,
        };
        Notifier { target }
    }

    /// Sends to this datagram socket (a path, or `@name` for an abstract socket).
    pub fn to_socket(path: impl Into<PathBuf>) -> Notifier {
        Notifier {
            target: Target::Socket(path.into()),
        }
    }

    pub fn disabled() -> Notifier {
        Notifier {
            target: Target::Disabled,
        }
    }

    pub fn is_enabled(&self) -> bool {
        !matches!(self.target, Target::Disabled)
    }

    /// Sends `states` in one datagram.
    pub fn send(&self, states: &[NotifyState<'_>]) -> io::Result<()> {
        match &self.target {
            Target::Disabled => Ok(()),
            Target::Env => sd_notify::notify(states),
            Target::Socket(path) => send_to(path, states),
        }
    }

    pub fn ready(&self) -> io::Result<()> {
        self.send(&[NotifyState::Ready])
    }

    /// `STATUS=` (one line; newlines are replaced, they would end the field).
    pub fn status(&self, text: &str) -> io::Result<()> {
        let line = text.replace(['\n', '\r'], " ");
        self.send(&[NotifyState::Status(&line)])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (what `Type=notify-reload` requires; harmless
    /// otherwise). Follow with [`ready`](Self::ready) when the reload is finished.
    pub fn reloading(&self) -> io::Result<()> {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn watchdog(&self) -> io::Result<()> {
        self.send(&[NotifyState::Watchdog])
    }

    pub fn stopping(&self) -> io::Result<()> {
        self.send(&[NotifyState::Stopping])
    }
}

fn send_to(path: &std::path::Path, states: &[NotifyState<'_>]) -> io::Result<()> {
    let mut msg = String::new();
    for state in states {
        let _ = writeln!(msg, "{state}");
    }
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_os_str().as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg.as_bytes(), &addr)?
        }
        _ => sock.send_to(msg.as_bytes(), path)?,
    };
    if sent == msg.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "incomplete notification",
        ))
    }
}

/// Half of `$WATCHDOG_USEC` (when it is meant for this process): how often to send `WATCHDOG=1`.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|usec| usec / 2)
        .filter(|d| !d.is_zero())
}

/// Sends `WATCHDOG=1` every `interval` while `healthy()` returns true, until `shutdown`.
/// A health check that does not answer within `interval` counts as unhealthy, so a hung journal
/// lets systemd's watchdog fire. Logs once per change between healthy and unhealthy.
pub async fn watchdog_loop<F, Fut>(
    notifier: Notifier,
    interval: Duration,
    mut healthy: F,
    shutdown: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_healthy = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let ok = tokio::time::timeout(interval, healthy())
            .await
            .unwrap_or(false);
        if ok {
            if let Err(e) = notifier.watchdog() {
                tracing::warn!("cannot send WATCHDOG=1: {e}");
            }
            if !was_healthy {
                tracing::info!("journal round-trips again; watchdog resumed");
            }
        } else if was_healthy {
            tracing::warn!("journal does not round-trip; withholding WATCHDOG=1");
        }
        was_healthy = ok;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn recv_all(sock: &UnixDatagram) -> Vec<String> {
        sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn explicit_socket_receives_ready_status_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_socket(&path);
        assert!(n.is_enabled());
        n.ready().unwrap();
        n.status("2 uploading,\n14 queued").unwrap();
        n.reloading().unwrap();
        n.stopping().unwrap();
        let got = recv_all(&sock);
        assert_eq!(got[0], "READY=1\n");
        assert_eq!(got[1], "STATUS=2 uploading, 14 queued\n");
        assert!(
            got[2].starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{}",
            got[2]
        );
        assert_eq!(got[3], "STOPPING=1\n");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn abstract_socket() {
        let name = format!("ingestd-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::to_socket(format!("@{name}")).ready().unwrap();
        assert_eq!(recv_all(&sock), ["READY=1\n"]);
    }

    #[test]
    fn disabled_is_a_no_op() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready().unwrap();
    }

    /// `NOTIFY_SOCKET` path (the sd-notify crate): re-run this test binary as a child with the
    /// variable set, so this process's environment is never modified.
    #[test]
    fn env_notify_socket_in_a_child_process() {
        if std::env::var_os("INGESTD_TEST_NOTIFY_CHILD").is_some() {
            let n = Notifier::from_env();
            assert!(n.is_enabled());
            n.ready().unwrap();
            n.status("idle").unwrap();
            assert_eq!(
                watchdog_interval_from_env(),
                Some(Duration::from_millis(1500))
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "daemon::notify::tests::env_notify_socket_in_a_child_process",
            ])
            .env("INGESTD_TEST_NOTIFY_CHILD", "1")
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "3000000")
            .env_remove("WATCHDOG_PID")
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        assert_eq!(recv_all(&sock), ["READY=1\n", "STATUS=idle\n"]);
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_only_while_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let shutdown = CancellationToken::new();
        let h = healthy.clone();
        let task = tokio::spawn(watchdog_loop(
            Notifier::to_socket(&path),
            Duration::from_secs(5),
            move || {
                let ok = h.load(Ordering::SeqCst);
                async move { ok }
            },
            shutdown.clone(),
        ));
        // Ticks at 0, 5, 10 s: three while healthy.
        tokio::time::sleep(Duration::from_millis(10_001)).await;
        assert_eq!(recv_all(&sock), ["WATCHDOG=1\n"; 3]);
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(recv_all(&sock).is_empty(), "no WATCHDOG=1 while unhealthy");
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(recv_all(&sock), ["WATCHDOG=1\n"]);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_health_check_counts_as_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watchdog_loop(
            Notifier::to_socket(&path),
            Duration::from_secs(5),
            std::future::pending::<bool>,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(recv_all(&sock).is_empty());
        shutdown.cancel();
        task.await.unwrap();
    }
}
