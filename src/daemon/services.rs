//! The running parts of the daemon, built from a [`Config`]: the journal, the upload token
//! gate, the api clients, the watcher and the worker pool, all under one cancellation token.
//! [`Services::apply`] takes a reloaded configuration (SIGHUP) without a restart.

use crate::escape::Show as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AuthMode, Client, ClientOptions};
use crate::config::{Config, ConfigError, TokenSource, WatchConfig};
use crate::journal::{FileRow, Journal, TokenState};
use crate::secret::Secret;
use crate::upload::backoff::RetryPolicy;
use crate::upload::board::Board;
use crate::upload::pool::Pool;
use crate::upload::rate::RateLimit;
use crate::upload::schedule::Schedule;
use crate::upload::token::{self, TokenGate};
use crate::upload::worker::{VideoMeta, WorkerContext};
use crate::watch::{self, Sink};

use super::DaemonError;
use super::status_line::StatusCounts;
use super::watcher_slot::WatcherSlot;

/// How old the daemon's heartbeat in the journal may get before the status tick writes a new
/// one (`status` shows it; under systemd the watchdog writes it every `WatchdogSec`/2 already).
const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(30);

/// Everything `run` keeps alive.
pub struct Services {
    pub journal: Journal,
    pub gate: TokenGate,
    pub board: Board,
    pub rate: Arc<RwLock<RateLimit>>,
    /// `[upload] max_rate`'s timetable and SIGUSR2, driving `rate`.
    pub schedule: Schedule,
    pool: Pool,
    /// The workers' counters (they see them as `upload::UploadEvents`).
    counters: crate::metrics::Counters,
    watcher: WatcherSlot,
    roots: Vec<WatchConfig>,
    /// The `[metrics]` listener, when configured.
    metrics: Option<MetricsListener>,
    shutdown: CancellationToken,
    /// Token state last written to the journal (so `status` in another process sees it).
    mirrored: Option<TokenState>,
    /// `api.api_key_file`'s key the workers use, to notice the file being rewritten.
    api_key: Option<Secret>,
    /// Why the upload token file last could not be used (emptied, unreadable), logged once per
    /// distinct reason; `None` while it reads fine.
    token_file_error: Option<String>,
    /// Lanes in flight per file last written to the journal (`status` shows them).
    lanes_written: Option<Vec<(i64, usize)>>,
}

/// The key in `api.api_key_file`, if one is configured, readable and not empty.
fn read_api_key(config: &Config) -> Option<Secret> {
    let file = config.api.api_key_file.as_ref()?;
    let key = Secret::new(std::fs::read_to_string(file).ok()?);
    (!key.is_empty()).then_some(key)
}

/// Opens the journal off the async runtime.
pub async fn open_journal(config: &Config) -> Result<Journal, DaemonError> {
    let path = config.journal.path.clone();
    tokio::task::spawn_blocking(move || Journal::open(&path))
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))?
        .map_err(DaemonError::Journal)
}

/// Reads the upload token; `run` and `upload` cannot work without one.
pub fn read_token(config: &Config) -> Result<Secret, DaemonError> {
    if matches!(config.api.token, TokenSource::None) {
        return Err(DaemonError::Config(ConfigError {
            file: config.source.clone(),
            position: None,
            message: "no upload token configured: set `upload_token_file` (or `upload_token`) in [api], or give systemd's LoadCredential=upload-token:…".into(),
        }));
    }
    Ok(config.api.read_upload_token()?)
}

/// The worker context for `config` (shared by `run` and `ingestd upload`).
pub fn worker_context(
    config: &Config,
    journal: Journal,
    gate: TokenGate,
    board: Board,
    rate: Arc<RwLock<RateLimit>>,
) -> Result<WorkerContext, DaemonError> {
    let client = Client::new(ClientOptions::from_config(&config.api))?;
    let api_key_client = match &config.api.api_key_file {
        Some(file) => {
            let key = std::fs::read_to_string(file).map_err(|e| {
                DaemonError::Config(ConfigError {
                    file: file.clone(),
                    position: None,
                    message: format!("cannot read the API key (api.api_key_file): {e}"),
                })
            })?;
            Some(
                client
                    .clone()
                    .with_api_key(Secret::new(key), AuthMode::Basic),
            )
        }
        None => None,
    };
    let watch = config.watch.clone();
    let template = config.upload.title_template.clone();
    let host = crate::upload::adopt::host_name();
    let video_meta = Arc::new(move |row: &FileRow| {
        let mut meta = video_meta(&template, &watch, row);
        if let Some(host) = &host {
            meta.metadata
                .retain(|(k, _)| k != crate::upload::adopt::HOST_KEY);
            meta.metadata
                .push((crate::upload::adopt::HOST_KEY.to_owned(), host.clone()));
        }
        meta
    });
    Ok(WorkerContext {
        journal,
        client,
        api_key_client,
        token: gate,
        config: Arc::new(config.upload.clone()),
        rate,
        board,
        policy: Arc::new(RetryPolicy::new(config.upload.retry_max)),
        video_meta,
        metrics: Arc::new(crate::upload::NoEvents),
        watch_roots: Arc::new(config.watch.iter().map(|w| w.path.clone()).collect()),
        rules: Arc::new(watch::rules::Rules::from_config(config)),
        container_roots: Arc::new(crate::upload::container::roots(&config.watch)),
    })
}

/// Title (from `title_template`), tags and metadata for a video created with the API key.
fn video_meta(template: &str, roots: &[WatchConfig], row: &FileRow) -> VideoMeta {
    let name = row
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = row
        .path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    let relpath = row
        .path
        .strip_prefix(&row.root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| name.clone());
    let title = template
        .replace("{stem}", &stem)
        .replace("{name}", &name)
        .replace("{relpath}", &relpath);
    let root = roots.iter().find(|w| w.path == row.root);
    VideoMeta {
        title,
        tags: root.map(|w| w.tags.clone()).unwrap_or_default(),
        metadata: root.map(|w| w.metadata.clone()).unwrap_or_default(),
    }
}

impl Services {
    /// Opens the journal, reclaims interrupted uploads, starts the watcher and waits for its
    /// initial scan to be journaled, then starts the workers. Returns `None` if `shutdown`
    /// came first.
    pub async fn start(
        config: &Config,
        shutdown: &CancellationToken,
    ) -> Result<Option<Services>, DaemonError> {
        let token = read_token(config)?;
        // Bind first: a taken port fails the start with the key to change.
        let listener = match &config.metrics {
            Some(m) => Some(crate::metrics::server::bind(m.listen).await.map_err(|e| {
                DaemonError::Metrics {
                    addr: m.listen,
                    file: config.source.clone(),
                    source: e,
                }
            })?),
            None => None,
        };
        let journal = open_journal(config).await?;
        let j = journal.clone();
        let reclaimed = tokio::task::spawn_blocking(move || {
            j.set_token_state(TokenState::Unknown, None)?;
            j.reclaim_interrupted()
        })
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))??;
        for row in &reclaimed {
            tracing::info!(path = %row.path.shown(), video_id = row.video_id.as_deref(), offset = row.bytes_uploaded, "resuming an upload interrupted by a stop or crash");
        }
        finish_interrupted_actions(&journal, config).await;
        let gate = TokenGate::new(token);
        let board = Board::default();
        // One limit for the daemon's life: the schedule changes its rate (timetable, reload,
        // SIGUSR2), and uploads already running follow.
        let limit = RateLimit::unlimited();
        let schedule = Schedule::new(config.upload.max_rate.clone(), limit.clone());
        schedule.spawn(Some(journal.clone()), shutdown.child_token());
        let rate = Arc::new(RwLock::new(limit));
        let counters = crate::metrics::Counters::default();
        let mut ctx = worker_context(
            config,
            journal.clone(),
            gate.clone(),
            board.clone(),
            rate.clone(),
        )?;
        ctx.metrics = Arc::new(counters.clone());

        let slot = WatcherSlot::default();
        let metrics = match (listener, &config.metrics) {
            (Some(listener), Some(m)) => {
                let watchers = slot.clone();
                let sources = crate::metrics::Sources {
                    journal: journal.clone(),
                    gate: gate.clone(),
                    board: board.clone(),
                    counters: counters.clone(),
                    roots: Arc::new(move || watchers.status()),
                };
                Some(MetricsListener::spawn(
                    listener, m.listen, sources, shutdown,
                ))
            }
            _ => None,
        };

        let watch_token = shutdown.child_token();
        let handle = spawn_watcher(config, &journal, watch_token.clone());
        tokio::select! {
            _ = handle.initial_scan_done() => {}
            _ = shutdown.cancelled() => {
                handle.join().await;
                if let Some(m) = metrics {
                    m.stop().await;
                }
                return Ok(None);
            }
        }
        slot.put(handle, watch_token);
        let pool = Pool::spawn(ctx, config.upload.workers, shutdown.clone());
        Ok(Some(Services {
            journal,
            gate,
            board,
            rate,
            schedule,
            pool,
            counters,
            watcher: slot,
            roots: config.watch.clone(),
            metrics,
            shutdown: shutdown.clone(),
            mirrored: None,
            api_key: read_api_key(config),
            token_file_error: None,
            lanes_written: None,
        }))
    }

    /// Applies a reloaded, validated configuration: token (always resumes a paused pool),
    /// workers, the workers' context (`[api]`, API key, `[upload]`), the rate (at once, for
    /// uploads in flight too), and roots (the watcher restarts).
    pub async fn apply(&mut self, config: &Config) {
        // [api] and [upload] (endpoint, TLS, API key, chunk size, after_upload, retries, hash)
        // apply to files claimed from now on; set before the token resumes a paused pool.
        if let Err(e) = self.rebuild_context(config) {
            tracing::error!(
                "{e}; uploads keep the previous [api] and [upload] settings until the next reload"
            );
        }
        match read_token(config) {
            Ok(t) => {
                if self.gate.replace(t, true) {
                    tracing::info!("upload token re-read: uploads resume");
                }
            }
            Err(e) => tracing::error!("{e}"),
        }
        self.pool.resize(config.upload.workers);
        self.schedule.set_table(config.upload.max_rate.clone());
        self.apply_metrics(config).await;
        if !same_roots(&self.roots, &config.watch) {
            if let Some((handle, token)) = self.watcher.take() {
                token.cancel();
                handle.join().await;
            }
            let token = self.shutdown.child_token();
            let handle = spawn_watcher(config, &self.journal, token.clone());
            self.watcher.put(handle, token);
            self.roots = config.watch.clone();
            tracing::info!(
                roots = self.roots.len(),
                "watch roots changed: watcher restarted"
            );
        }
    }

    /// Per-root watch status (mode, health), for logs, metrics and the status page.
    pub fn roots(&self) -> Vec<watch::RootStatus> {
        self.watcher.status()
    }

    /// Re-reads the credential files: a changed token resumes a pool paused by the token; while
    /// the API key is rejected, a rewritten `api.api_key_file` is taken (as SIGHUP would) and
    /// resumes the pool.
    pub fn poll_credential_files(&mut self, config: &Config) {
        if !matches!(config.api.token, TokenSource::Inline(_) | TokenSource::None) {
            match config.api.read_upload_token() {
                Ok(t) => {
                    if self.token_file_error.take().is_some() {
                        tracing::info!("the upload token file is readable again");
                    }
                    if self.gate.replace(t, false) {
                        tracing::info!("the upload token changed: uploads resume");
                    }
                }
                // Emptied or unreadable under the running daemon: said once per reason (the
                // file is polled every few seconds), the token read before stays in use.
                Err(e) => {
                    let reason = e.to_string();
                    if self.token_file_error.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(
                            "{reason}; uploads go on with the upload token read before until the file is fixed"
                        );
                        self.token_file_error = Some(reason);
                    }
                }
            }
        }
        if !matches!(self.gate.state(), token::TokenState::ApiKeyRejected { .. }) {
            return;
        }
        let Some(key) = read_api_key(config) else {
            return;
        };
        if self.api_key.as_ref() == Some(&key) {
            return;
        }
        match self.rebuild_context(config) {
            Ok(()) => {
                if self.gate.api_key_replaced() {
                    tracing::info!("the API key file changed: uploads resume");
                }
            }
            Err(e) => tracing::error!("{e}; the API key pause stays until SIGHUP"),
        }
    }

    /// The workers take a new context (client, API key, `[upload]`) with the next file they
    /// claim; the counters stay.
    fn rebuild_context(&mut self, config: &Config) -> Result<(), DaemonError> {
        let mut ctx = worker_context(
            config,
            self.journal.clone(),
            self.gate.clone(),
            self.board.clone(),
            self.rate.clone(),
        )?;
        ctx.metrics = self.pool.context().metrics;
        self.pool.set_context(ctx);
        self.api_key = read_api_key(config);
        Ok(())
    }

    /// Writes the token state to the journal when it changed, the daemon's heartbeat (so
    /// `ingestd status` names a running daemon also without the systemd watchdog) and the lanes
    /// of the uploads in flight when they changed, and returns the STATUS counts.
    pub async fn tick(&mut self) -> Result<StatusCounts, DaemonError> {
        let state = match self.gate.state() {
            token::TokenState::Unknown => TokenState::Unknown,
            token::TokenState::Ok => TokenState::Ok,
            token::TokenState::Rejected { .. } => TokenState::Rejected,
            token::TokenState::ApiKeyRejected { .. } => TokenState::ApiKeyRejected,
        };
        let reason = match self.gate.state() {
            token::TokenState::Rejected { reason }
            | token::TokenState::ApiKeyRejected { reason } => Some(reason),
            _ => None,
        };
        let mirror = self.mirrored != Some(state);
        let lanes: Vec<(i64, usize)> = self
            .board
            .snapshot()
            .iter()
            .map(|f| (f.id, f.lanes))
            .collect();
        let lanes_new = (self.lanes_written.as_ref() != Some(&lanes)).then_some(lanes);
        let j = self.journal.clone();
        let (summary, lanes_new) = tokio::task::spawn_blocking(move || {
            // Another process (`ingestd upload` with another token) may have written its own
            // verdict: once this daemon has one, `status` shows the daemon's.
            let overwritten = || -> Result<bool, crate::journal::JournalError> {
                Ok(state != TokenState::Unknown && j.token_state()?.state != state)
            };
            // A journal that cannot write (full, read-only) is a state of its own, logged by
            // `journal::health` once a minute at most: the tick still reads the counts.
            let tolerate = |r: Result<(), crate::journal::JournalError>| match r {
                Err(e) if crate::journal::health::storage_reason(&e).is_none() => Err(e),
                _ => Ok(()),
            };
            if mirror || overwritten()? {
                tolerate(j.set_token_state(state, reason.as_deref()))?;
            }
            tolerate(j.heartbeat_if_older(HEARTBEAT_MAX_AGE))?;
            // The lanes of the uploads in flight, for `status` (when they changed).
            let lanes_new = match lanes_new {
                Some(l) => match j.set_lanes_in_flight(&l) {
                    Ok(()) => Some(l),
                    Err(e) => tolerate(Err(e)).map(|()| None)?,
                },
                None => None,
            };
            Ok::<_, crate::journal::JournalError>((j.summary()?, lanes_new))
        })
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))??;
        self.mirrored = Some(state);
        if lanes_new.is_some() {
            self.lanes_written = lanes_new;
        }
        let c = &summary.counts;
        use crate::journal::FileState as S;
        Ok(StatusCounts {
            uploading: c.get(S::Uploading),
            queued: c.get(S::Queued),
            settling: c.get(S::Settling),
            failed: c.get(S::Failed),
            oldest: summary
                .oldest_queued_at
                .and_then(|t| SystemTime::now().duration_since(t).ok()),
            token_rejected: state.pause().is_some(),
            journal_problem: self.journal.write_problem().map(|p| p.summary()),
        })
    }

    /// What the liveness check reads: cheap to clone (the watchdog keeps one).
    pub fn liveness(&self) -> Liveness {
        Liveness {
            workers: self.pool.failure(),
            watcher: self.watcher.clone(),
        }
    }

    /// The journal round-trips (for WATCHDOG=1): a heartbeat is written, or, when the storage
    /// refuses writes (full, read-only: the degraded state of `journal::health`), at least a
    /// read works. A hung or unreadable journal is unhealthy.
    pub async fn healthy(journal: Journal) -> bool {
        let check = move || match journal.heartbeat() {
            Ok(()) => true,
            Err(e) if crate::journal::health::storage_reason(&e).is_some() => {
                journal.data_version().is_ok()
            }
            Err(_) => false,
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(check)).await,
            Ok(Ok(true))
        )
    }

    /// Waits for the workers (in-flight chunks finish or are dropped at the shutdown deadline)
    /// and the watcher to end.
    pub async fn stop(self) {
        if let Err(e) = self.pool.join().await {
            tracing::error!("{e}");
        }
        if let Some((handle, token)) = self.watcher.take() {
            token.cancel();
            handle.join().await;
        }
        if let Some(m) = self.metrics {
            m.stop().await;
        }
    }

    /// `[metrics] listen` changed on reload: bind the new address first (on error the old
    /// listener keeps serving), then stop the old one. Removed: stop it.
    async fn apply_metrics(&mut self, config: &Config) {
        let want = config.metrics.as_ref().map(|m| m.listen);
        if want == self.metrics.as_ref().map(|m| m.configured) {
            return;
        }
        let new = match want {
            None => None,
            Some(addr) => match crate::metrics::server::bind(addr).await {
                Ok(listener) => {
                    let watchers = self.watcher.clone();
                    let sources = crate::metrics::Sources {
                        journal: self.journal.clone(),
                        gate: self.gate.clone(),
                        board: self.board.clone(),
                        counters: self.counters.clone(),
                        roots: Arc::new(move || watchers.status()),
                    };
                    Some(MetricsListener::spawn(
                        listener,
                        addr,
                        sources,
                        &self.shutdown,
                    ))
                }
                Err(e) => {
                    tracing::error!(
                        "[metrics] listen = \"{addr}\": cannot listen there ({e}); the metrics stay where they were"
                    );
                    return;
                }
            },
        };
        if let Some(old) = std::mem::replace(&mut self.metrics, new) {
            tracing::info!(listen = %old.configured, "metrics listener stopped");
            old.stop().await;
        }
    }
}

/// Whether every worker and the watcher still run; see [`super::fatal`].
#[derive(Clone)]
pub struct Liveness {
    workers: crate::upload::pool::Failure,
    watcher: WatcherSlot,
}

impl Liveness {
    /// Why the daemon lost a part (`None` while all run).
    pub fn failure(&self) -> Option<String> {
        self.workers.get().or_else(|| self.watcher.failure())
    }
}

/// The `/metrics` and status page server, under its own child of the daemon's token so a
/// reload can move it.
struct MetricsListener {
    task: JoinHandle<()>,
    token: CancellationToken,
    /// The configured `listen` (may be port 0; the log says the real one).
    configured: std::net::SocketAddr,
}

impl MetricsListener {
    fn spawn(
        listener: tokio::net::TcpListener,
        configured: std::net::SocketAddr,
        sources: crate::metrics::Sources,
        shutdown: &CancellationToken,
    ) -> MetricsListener {
        let addr = listener.local_addr().unwrap_or(configured);
        tracing::info!(listen = %addr, "serving /metrics and the status page on http://{addr}/");
        let token = shutdown.child_token();
        let task = crate::metrics::server::spawn(listener, sources, token.clone());
        MetricsListener {
            task,
            token,
            configured,
        }
    }

    /// Stops accepting, waits briefly for requests in progress, then drops what is left (e.g.
    /// idle keep-alive connections).
    async fn stop(self) {
        self.token.cancel();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// The watcher of `config`'s roots, told the daemon's own files (never reported).
fn spawn_watcher(
    config: &Config,
    journal: &Journal,
    token: CancellationToken,
) -> watch::WatchHandle {
    watch::spawn_with(
        config.watch.clone(),
        Arc::new(journal.clone()) as Arc<dyn Sink>,
        token,
        watch::SpawnOptions {
            secrets: watch::rules::Secrets::from_config(config),
            ..Default::default()
        },
    )
}

fn same_roots(a: &[WatchConfig], b: &[WatchConfig]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.path == y.path
                && x.recursive == y.recursive
                && x.include == y.include
                && x.exclude == y.exclude
                && x.settle == y.settle
                && x.mode == y.mode
                && x.poll_interval == y.poll_interval
                && x.rescan_interval == y.rescan_interval
                && x.follow_symlinks == y.follow_symlinks
                && x.follow_symlinks_outside == y.follow_symlinks_outside
                && x.check_container == y.check_container
                && x.incomplete_after == y.incomplete_after
        })
}

impl From<api::ApiError> for DaemonError {
    fn from(e: api::ApiError) -> Self {
        DaemonError::Api(e)
    }
}

/// Runs the `after_upload` action of files that were uploaded just before a crash (done, no
/// recorded outcome: window W6), only if the file on disk is still the one that was uploaded.
async fn finish_interrupted_actions(journal: &Journal, config: &Config) {
    let j = journal.clone();
    let rows = match tokio::task::spawn_blocking(move || j.done_without_after_upload(10_000)).await
    {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::error!("cannot list interrupted post-upload actions: {e}");
            return;
        }
        Err(e) => {
            tracing::error!("cannot list interrupted post-upload actions: {e}");
            return;
        }
    };
    for row in rows {
        let roots: Vec<_> = config.watch.iter().map(|w| w.path.clone()).collect();
        let action =
            crate::upload::after::action_for(&config.upload.after_upload, &roots, &row.root);
        let outcome = match std::fs::metadata(&row.path) {
            Ok(m)
                if crate::journal::FileIdentity::from_metadata(&m).same_content(&row.identity) =>
            {
                let o =
                    crate::upload::after::apply_async(action, row.root.clone(), row.path.clone())
                        .await;
                tracing::info!(path = %row.path.shown(), video_id = row.video_id.as_deref(), "finished a post-upload action interrupted by a stop: {}", o.message());
                (o.message(), !o.is_success())
            }
            Ok(_) => (
                "skipped: the file changed after its upload".to_owned(),
                false,
            ),
            Err(_) => ("skipped: the file is no longer there".to_owned(), false),
        };
        let (outcome, failed) = outcome;
        let (j, id) = (journal.clone(), row.id);
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || j.record_after_upload(id, &outcome, failed)).await
        {
            tracing::error!("{e}");
        }
    }
}
