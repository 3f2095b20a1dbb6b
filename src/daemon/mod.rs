//! The daemon (`ingestd run`): wiring, shutdown, SIGHUP reload, sd_notify.
//!
//! [`run`] is the entry point; tests drive [`run_with`] in-process with their own
//! [`CancellationToken`], notify socket and reload trigger (no signals, no environment).
//!
//! - [`signals`]: SIGTERM/SIGINT → cancel; SIGHUP → [`ReloadRequests`]; SIGUSR2 → toggle the
//!   upload bandwidth limit (`upload::schedule`).
//! - [`notify`]: `READY=1`, `STATUS=`, `RELOADING=1`, `WATCHDOG=1` (only while the journal
//!   round-trips), `STOPPING=1`.
//! - [`mod@status_line`]: the `STATUS=` text.
//! - [`limits`]: the descriptor limit raised at start.
//!
//! Shutdown order: cancel → stop claiming and scanning → in-flight chunks finish or are dropped
//! within `upload.shutdown_timeout` → `STOPPING=1` → return `Ok(())` (exit 0).

use crate::escape::Show as _;

pub mod fatal;
pub mod limits;
pub mod notify;
pub mod prune;
pub mod services;
pub mod signals;
pub mod status_line;
pub mod watcher_slot;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, EXIT_CONFIG};
pub use notify::Notifier;
pub use services::Services;
pub use signals::{ReloadRequests, ReloadTrigger};
pub use status_line::{StatusCounts, status_line};

/// How often `STATUS=` is refreshed (only sent when the text changed).
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// How often the daemon checks that its workers and watcher still run.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);

/// How often a token file is re-read (a rewritten token resumes a paused pool).
const TOKEN_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot set up the api.video client: {0}")]
    Api(crate::api::ApiError),
    #[error(
        "cannot listen on {addr} for metrics and the status page (`listen` in [metrics] of {}): {source}",
        file.shown()
    )]
    Metrics {
        addr: std::net::SocketAddr,
        file: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl DaemonError {
    /// The process exit status: 78 (EX_CONFIG) for configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => EXIT_CONFIG,
            DaemonError::Journal(crate::journal::JournalError::NotAJournal { .. }) => EXIT_CONFIG,
            _ => 1,
        }
    }
}

/// How [`run_with`] talks to its environment.
#[derive(Debug)]
pub struct RunOptions {
    /// Install SIGTERM/SIGINT/SIGHUP handlers (true for `ingestd run`, false in tests).
    pub handle_signals: bool,
    pub notifier: Notifier,
    /// Send `WATCHDOG=1` this often (half of `WATCHDOG_USEC`); `None` = no watchdog.
    pub watchdog_interval: Option<Duration>,
    /// Reload requests; SIGHUP feeds these when `handle_signals` is set.
    pub reloads: ReloadRequests,
}

impl RunOptions {
    /// Signals on, notifications and watchdog from the environment (systemd).
    pub fn from_env() -> RunOptions {
        RunOptions {
            handle_signals: true,
            notifier: Notifier::from_env(),
            watchdog_interval: notify::watchdog_interval_from_env(),
            reloads: ReloadRequests::new(),
        }
    }

    /// No signals, no watchdog, notifications to `notifier`.
    pub fn quiet(notifier: Notifier) -> RunOptions {
        RunOptions {
            handle_signals: false,
            notifier,
            watchdog_interval: None,
            reloads: ReloadRequests::new(),
        }
    }
}

/// `ingestd run`: runs until `shutdown` is cancelled (by SIGTERM/SIGINT or the caller).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with(config, shutdown, RunOptions::from_env()).await
}

/// [`run`] with explicit signal, notification and reload plumbing.
pub async fn run_with(
    mut config: Config,
    shutdown: CancellationToken,
    opts: RunOptions,
) -> Result<(), DaemonError> {
    let RunOptions {
        handle_signals,
        notifier,
        watchdog_interval,
        mut reloads,
    } = opts;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // SIGUSR2 → toggle the bandwidth limit; a signal before the services run waits for them.
    let rate_toggle = std::sync::Arc::new(tokio::sync::Notify::new());
    limits::raise_fd_limit();
    let _signals = if handle_signals {
        Some(
            signals::install(shutdown.clone(), reloads.trigger(), rate_toggle.clone())
                .map_err(DaemonError::Signals)?,
        )
    } else {
        None
    };
    // Children of `shutdown` stop with it; `tasks` stops the helpers once the workers are done.
    let tasks = shutdown.child_token();

    // Journal (reclaiming interrupted uploads), token, clients, watcher (initial scan journaled
    // before READY=1), then the worker pool.
    let Some(mut services) = Services::start(&config, &shutdown).await? else {
        return Ok(());
    };

    warn_if_another_daemon(&services.journal).await;
    send(&notifier, notifier.ready(), "READY=1");
    tracing::info!(
        roots = config.watch.len(),
        workers = config.upload.workers,
        endpoint = %config.api.endpoint,
        "ingestd is running"
    );
    for root in services.roots() {
        tracing::info!(root = %root.path.shown(), mode = %root.mode, health = %root.health, "watching");
    }

    let liveness = services.liveness();
    let mut watchdog = None;
    if let Some(interval) = watchdog_interval {
        // WATCHDOG=1 only while every part runs and the journal answers.
        let journal = services.journal.clone();
        let alive = liveness.clone();
        let healthy = move || {
            let (journal, alive) = (journal.clone(), alive.clone());
            async move { alive.failure().is_none() && Services::healthy(journal).await }
        };
        watchdog = Some(tokio::spawn(notify::watchdog_loop(
            notifier.clone(),
            interval,
            healthy,
            tasks.clone(),
        )));
    }

    // `[journal] keep_done`, re-read on SIGHUP (the loop idles while it is not set).
    let (keep_done, keep_rx) = tokio::sync::watch::channel(config.journal.keep_done);
    tokio::spawn(prune::run_loop(
        services.journal.clone(),
        keep_rx,
        tasks.clone(),
    ));

    let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut token_tick = tokio::time::interval(TOKEN_POLL_INTERVAL);
    token_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = String::new();
    let mut alive_tick = tokio::time::interval(LIVENESS_INTERVAL);
    alive_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = alive_tick.tick() => {
                let why = match liveness.failure() {
                    Some(why) => Some(why),
                    None => journal_lost(&services.journal).await.inspect(|_| {
                        // Never close it: closing checkpoints the WAL into whatever file is at
                        // the path now (an emptied journal would no longer look emptied) and
                        // deletes the `-wal` by name. The process exits; the OS closes it.
                        std::mem::forget(services.journal.clone());
                    }),
                };
                if let Some(why) = why {
                    // Never a daemon without its workers or watcher: stop, and let systemd's
                    // Restart= start a whole one. No more heartbeats or watchdog pings.
                    tracing::error!("{why}: stopping so that the service manager restarts ingestd");
                    fatal::tell_systemd(&why, 1);
                    tasks.cancel();
                    return Err(DaemonError::Internal(why));
                }
            }
            Some(()) = reloads.recv() => {
                if reload(&mut config, &notifier) {
                    services.apply(&config).await;
                    prune::set_keep_done(&keep_done, config.journal.keep_done);
                    // As at start: which roots are watched now, and how.
                    for root in services.roots() {
                        tracing::info!(root = %root.path.shown(), mode = %root.mode, health = %root.health, "watching");
                    }
                }
                send(&notifier, notifier.ready(), "READY=1");
            }
            () = rate_toggle.notified() => {
                services.schedule.toggle();
            }
            _ = token_tick.tick() => services.poll_credential_files(&config),
            _ = status_tick.tick() => {
                match services.tick().await {
                    Ok(counts) => {
                        let line = status_line(&counts);
                        if line != last_status {
                            send(&notifier, notifier.status(&line), "STATUS");
                            last_status = line;
                        }
                    }
                    Err(e) => tracing::error!("{e}"),
                }
            }
        }
    }

    send(&notifier, notifier.stopping(), "STOPPING=1");
    tracing::info!(
        deadline_s = config.upload.shutdown_timeout.as_secs(),
        "shutting down: no new uploads; requests in flight finish or are dropped at the deadline"
    );
    services.stop().await;
    tasks.cancel();
    if let Some(task) = watchdog {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Why the journal can no longer be trusted (deleted, replaced or emptied under this process:
/// `journal::presence`); `None` while it is in place. The daemon then stops like one that lost
/// a part (exit 1): restarted, it starts from what is on disk (a deleted journal is created
/// anew and, with an API key, files already uploaded are adopted, not uploaded again).
async fn journal_lost(journal: &crate::journal::Journal) -> Option<String> {
    let j = journal.clone();
    match tokio::task::spawn_blocking(move || j.still_in_place()).await {
        Ok(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

/// A second `ingestd run` on the same journal (a shell next to the service) is safe, since
/// claims keep the two apart, but rarely meant: say so once, before this one's first heartbeat.
async fn warn_if_another_daemon(journal: &crate::journal::Journal) {
    let j = journal.clone();
    let Ok(Ok(Some(other))) = tokio::task::spawn_blocking(move || j.daemon_info()).await else {
        return;
    };
    if other.running && other.pid != std::process::id() {
        tracing::warn!(
            pid = other.pid,
            journal = %journal.path().shown(),
            "another `ingestd run` (pid {}) uses this journal: both upload from it; stop one of them (`systemctl status ingestd`)",
            other.pid
        );
    }
}

/// Why `config` cannot run a daemon although it is valid for `upload` and `token`: no
/// `[[watch]]` (the daemon would sit idle). Checked at start (`ingestd run`) and on SIGHUP.
pub fn not_runnable(config: &Config) -> Option<String> {
    config.watch.is_empty().then(|| {
        format!(
            "{}: no [[watch]] section: `ingestd run` has nothing to watch; add one, such as\n\n[[watch]]\npath = \"/srv/recordings\"",
            config.source.shown()
        )
    })
}

/// SIGHUP: re-read and validate the configuration; on error keep the old one and say why.
/// Returns true when a new configuration was loaded.
fn reload(config: &mut Config, notifier: &Notifier) -> bool {
    send(notifier, notifier.reloading(), "RELOADING=1");
    match Config::load(&config.source) {
        Ok(new) => {
            if let Some(why) = not_runnable(&new) {
                tracing::error!("reload failed, keeping the running configuration: {why}");
                return false;
            }
            for warning in &new.warnings {
                tracing::warn!("{warning}");
            }
            if new.journal.path != config.journal.path {
                tracing::warn!(
                    "[journal] path changed to {}: it takes effect when ingestd restarts; until then the daemon keeps using {} (and `ingestd status` reads the new path)",
                    new.journal.path.shown(),
                    config.journal.path.shown()
                );
            }
            // The caller applies it: roots, workers, the workers' context, rate, token
            // (`Services::apply`).
            *config = new;
            tracing::info!("configuration reloaded from {}", config.source.shown());
            true
        }
        Err(e) => {
            tracing::error!("reload failed, keeping the running configuration: {e}");
            false
        }
    }
}

fn send(notifier: &Notifier, result: std::io::Result<()>, what: &str) {
    if let Err(e) = result {
        tracing::warn!(
            notifier = ?notifier,
            "cannot send {what} to the service manager: {e}"
        );
    }
}

#[cfg(test)]
mod tests;
