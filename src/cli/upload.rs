//! `ingestd upload FILE…`: uploads now, in the foreground, with a progress bar per file (bytes,
//! rate, ETA), through the same journal and worker code as `run`. Ctrl-C stops at once (the
//! request in flight is dropped); running the same command again resumes at the committed offset.
//! A file outside every watch root is kept whatever `after_upload` says (the action is for the
//! roots); the result line names what happened to a file in a root (`deleted`, `moved to …`).
//! Exits 1 if any file failed.

use crate::cli::stdout::{errln, outln};
use crate::escape::Show as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::{Cli, Exit, UploadArgs};
use crate::config::Config;
use crate::daemon::services::{open_journal, read_token, worker_context};
use crate::journal::{
    FileIdentity, FileRow, FileState, Journal, JournalError, Observation, RetrySelection,
};
use crate::upload::board::Board;
use crate::upload::rate::RateLimit;
use crate::upload::schedule::Schedule;
use crate::upload::token::TokenGate;
use crate::upload::worker::{Outcome, WorkerContext, upload_file};

pub async fn run(cli: &Cli, args: &UploadArgs) -> anyhow::Result<ExitCode> {
    let mut config = super::load_config(&cli.config)?;
    // Ctrl-C drops the request in flight at once; the journal keeps the committed offset.
    config.upload.shutdown_timeout = Duration::ZERO;
    let to_exit = |e: crate::daemon::DaemonError| -> anyhow::Error {
        Exit {
            code: e.exit_code(),
            message: format!("ingestd: {e}"),
        }
        .into()
    };
    let token = read_token(&config).map_err(to_exit)?;
    let journal = open_journal(&config).await.map_err(to_exit)?;
    {
        let j = journal.clone();
        tokio::task::spawn_blocking(move || j.reclaim_interrupted()).await??;
    }

    let mut ids = Vec::new();
    let mut failed = 0;
    let mut out_err = None;
    for file in &args.files {
        match enqueue(&journal, &config, file).await {
            Ok(Some(id)) => ids.push((id, file.clone())),
            Ok(None) => {}
            // The file is queued or done; only its line could not be printed.
            Err(e) if e.is::<crate::cli::stdout::OutputError>() => {
                if let Ok(e) = e.downcast::<crate::cli::stdout::OutputError>() {
                    out_err.get_or_insert(e);
                }
            }
            Err(e) => {
                errln!(
                    "{}",
                    crate::escape::Human(format_args!("{}: {e:#}", file.shown()))
                );
                failed += 1;
            }
        }
    }

    let board = Board::default();
    let gate = TokenGate::new(token);
    let limit = RateLimit::unlimited();
    // The timetable applies to a one-shot upload too (not recorded: `status` is the daemon's).
    let schedule = Schedule::new(config.upload.max_rate.clone(), limit.clone());
    let rate = Arc::new(RwLock::new(limit));
    let mut ctx =
        worker_context(&config, journal.clone(), gate, board.clone(), rate).map_err(to_exit)?;
    ctx.container_roots = Arc::new(checked_roots(&config, &ids, args.no_check_container));

    let shutdown = CancellationToken::new();
    schedule.spawn(None, shutdown.child_token());
    {
        let s = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                s.cancel();
            }
        });
    }

    let bars = MultiProgress::new();
    // Log lines (retries, warnings) are written above the bars, not through them.
    let _bars_shown = super::log_writer::show_bars(&bars);
    let style = ProgressStyle::with_template(
        "{prefix:24!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut file_bars = Vec::new();
    for (id, path) in &ids {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = bars.add(ProgressBar::new(size));
        bar.set_style(style.clone());
        bar.set_prefix(crate::escape::human(
            &path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ));
        file_bars.push((*id, bar));
    }
    let ticker = {
        let board = board.clone();
        let bars: Vec<(i64, ProgressBar)> = file_bars.clone();
        let stop = shutdown.child_token();
        let handle_stop = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                for f in board.snapshot() {
                    if let Some((_, bar)) = bars.iter().find(|(id, _)| *id == f.id) {
                        bar.set_position(f.done);
                        if f.lanes > 1 {
                            bar.set_message(format!("{} lanes", f.lanes));
                        } else {
                            bar.set_message("");
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        (task, handle_stop)
    };

    let workers = config.upload.workers.max(1);
    let results: Vec<(i64, Result<Outcome, String>)> =
        futures_util::stream::iter(ids.iter().map(|(id, _)| {
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            let id = *id;
            async move { (id, upload_one(&ctx, id, &shutdown).await) }
        }))
        .buffer_unordered(workers)
        .collect()
        .await;
    ticker.1.cancel();
    let _ = ticker.0.await;

    for (id, result) in results {
        let bar = file_bars.iter().find(|(i, _)| *i == id).map(|(_, b)| b);
        let row = {
            let j = journal.clone();
            tokio::task::spawn_blocking(move || j.get(id)).await??
        };
        let name = row
            .as_ref()
            .map(|r| r.path.shown().to_string())
            .unwrap_or_default();
        let line = match result {
            Ok(Outcome::Done { video_id }) => {
                if let Some(b) = bar {
                    b.finish();
                }
                // What happened to the file (`deleted`, `moved to …`, a failure); not `kept`.
                let after = row
                    .as_ref()
                    .and_then(|r| r.after_upload.as_deref())
                    .filter(|a| *a != "kept")
                    .map(|a| format!("; {a}"))
                    .unwrap_or_default();
                format!("{name}: uploaded, videoId {video_id}{after}")
            }
            Ok(other) => {
                failed += 1;
                if let Some(b) = bar {
                    b.abandon();
                }
                let token = if matches!(other, Outcome::TokenPaused) {
                    let j = journal.clone();
                    tokio::task::spawn_blocking(move || j.token_state())
                        .await??
                        .reason
                } else {
                    None
                };
                let advice = super::journal_cmds::token_advice(&config, token.as_deref());
                format!(
                    "{name}: {}",
                    not_uploaded(&other, row.as_ref(), token, &advice)
                )
            }
            Err(e) => {
                failed += 1;
                format!("{name}: {e}")
            }
        };
        // Above the progress bars when they are drawn (printing through both would show the
        // line twice on a terminal), on stdout either way.
        // A reader that went away or a full stdout never stops the uploads: the journal has
        // every result (`ingestd status`); the failure is reported once they are done.
        if let Err(e) = bars.suspend(|| outln!("{}", crate::escape::Human(&line))) {
            out_err.get_or_insert(e);
        }
    }
    if shutdown.is_cancelled() {
        errln!("interrupted: run the same command again to resume where it stopped");
    }
    if let Some(e) = out_err
        && failed == 0
    {
        return Err(e.into());
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Why a file is not uploaded, and what to do about it.
/// `advice`: what to do about a rejected token, for its source ([`super::journal_cmds::token_advice`]).
fn not_uploaded(
    outcome: &Outcome,
    row: Option<&FileRow>,
    token_reason: Option<String>,
    advice: &str,
) -> String {
    let error = row.and_then(|r| r.last_error.clone());
    match outcome {
        Outcome::TokenPaused => format!(
            "not uploaded: api.video rejected the upload token ({}); {advice} (`ingestd token create` makes one), then run the same command again",
            token_reason.or(error).unwrap_or_else(|| "no reason given".into())
        ),
        Outcome::Failed => format!(
            "failed: {}; fix the cause, then run the same command again",
            error.unwrap_or_else(|| "no reason recorded".into())
        ),
        Outcome::Done { video_id } => format!("uploaded, videoId {video_id}"),
        Outcome::Retry | Outcome::Released => match row {
            Some(r) if r.state == FileState::Gone => format!(
                "not uploaded: the file disappeared ({})",
                error.unwrap_or_else(|| "no reason recorded".into())
            ),
            Some(r)
                if r.state == FileState::Settling
                    && r.last_error_slug.as_deref() == Some(crate::watch::container::SLUG) =>
            {
                format!(
                    "not uploaded: {}; run the same command again once the recorder has finished it (`--no-check-container` uploads it as it is)",
                    error.unwrap_or_default()
                )
            }
            Some(r) if r.state == FileState::Settling => {
                "not uploaded: the file changed during its upload; run the same command again once it is finished".into()
            }
            Some(r) => format!(
                "not uploaded: stopped at {} of {}; run the same command again to resume",
                super::journal_cmds::human_size(r.bytes_uploaded),
                super::journal_cmds::human_size(r.identity.size)
            ),
            None => "not uploaded".into(),
        },
    }
}

/// The roots whose files the worker checks before the first request and after the last chunk:
/// the configured roots with `check_container = true`, and the folder of each file outside
/// every root (its journal root), so that a file given by hand gets the daemon's check and
/// messages. None with `--no-check-container`.
fn checked_roots(config: &Config, ids: &[(i64, PathBuf)], no_check: bool) -> Vec<PathBuf> {
    if no_check {
        return Vec::new();
    }
    let mut roots = crate::upload::container::roots(&config.watch);
    for (_, file) in ids {
        // As `enqueue` recorded it: canonical, its folder the journal root.
        let Ok(path) = std::fs::canonicalize(file) else {
            continue;
        };
        let outside = !config.watch.iter().any(|w| path.starts_with(&w.path));
        if let Some(dir) = path.parent().filter(|_| outside)
            && !roots.iter().any(|r| r == dir)
        {
            roots.push(dir.to_path_buf());
        }
    }
    roots
}

/// Records the file in the journal and queues it now: its id. `None` when there is nothing to do (already uploaded with this content).
async fn enqueue(journal: &Journal, config: &Config, file: &Path) -> anyhow::Result<Option<i64>> {
    let path = std::fs::canonicalize(file).context("cannot open it")?;
    let meta = std::fs::metadata(&path).context("cannot stat it")?;
    if !meta.is_file() {
        anyhow::bail!("not a regular file");
    }
    if meta.len() == 0 {
        anyhow::bail!("empty file: api.video refuses empty files");
    }
    let watched = config.watch.iter().find(|w| path.starts_with(&w.path));
    let root: PathBuf = watched
        .map(|w| w.path.clone())
        .or_else(|| path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let obs = Observation {
        root,
        path: path.clone(),
        identity: FileIdentity::from_metadata(&meta),
    };
    let j = journal.clone();
    let row = tokio::task::spawn_blocking(move || j.enqueue(&obs)).await??;
    match row.state {
        FileState::Done => {
            outln!(
                "{}: already uploaded, videoId {}",
                crate::escape::Human(path.shown()),
                row.video_id.as_deref().unwrap_or("?")
            )?;
            Ok(None)
        }
        FileState::Uploading => {
            anyhow::bail!("being uploaded by another ingestd process (see `ingestd status`)")
        }
        // Asked for explicitly: a failed file is tried again, a retry wait is cut short.
        FileState::Failed | FileState::Queued
            if row.state == FileState::Failed || row.next_attempt_at.is_some() =>
        {
            let id = row.id;
            let j = journal.clone();
            tokio::task::spawn_blocking(move || j.retry_failed(&RetrySelection::Ids(vec![id])))
                .await??;
            if let Some(e) = &row.last_error {
                outln!(
                    "{}",
                    crate::escape::Human(format_args!(
                        "{}: trying again (last error: {e})",
                        path.shown()
                    ))
                )?;
            }
            Ok(Some(id))
        }
        _ => Ok(Some(row.id)),
    }
}

/// Waits while another process (the daemon) uploads row `id`. `None` when it went back to the
/// queue (claim it again), else the outcome it reached.
async fn wait_for_other(
    ctx: &WorkerContext,
    id: i64,
    shutdown: &CancellationToken,
) -> Result<Option<Outcome>, String> {
    for poll in 0u64.. {
        let j = ctx.journal.clone();
        let row = tokio::task::spawn_blocking(move || j.get(id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("file {id} left the journal"))?;
        match row.state {
            // A claim whose process died (killed daemon) goes back to the queue; checked every
            // 5 s by reading the row, so waiting writes nothing while the daemon is alive.
            FileState::Uploading if poll % 25 == 24 && row.claim_is_stale() => {
                let j = ctx.journal.clone();
                tokio::task::spawn_blocking(move || j.reclaim_interrupted())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            FileState::Uploading => {}
            FileState::Queued => return Ok(None),
            FileState::Done => {
                return Ok(Some(Outcome::Done {
                    video_id: row.video_id.unwrap_or_default(),
                }));
            }
            FileState::Failed => return Ok(Some(Outcome::Failed)),
            FileState::Settling | FileState::Gone => return Ok(Some(Outcome::Released)),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(Some(Outcome::Released)),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    Ok(None)
}

/// Uploads one row to the end, waiting out retries in the foreground.
async fn upload_one(
    ctx: &WorkerContext,
    id: i64,
    shutdown: &CancellationToken,
) -> Result<Outcome, String> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(Outcome::Released);
        }
        let j = ctx.journal.clone();
        let claimed = tokio::task::spawn_blocking(move || j.claim(id))
            .await
            .map_err(|e| e.to_string())?;
        let row = match claimed {
            Ok(row) => row,
            // The running daemon claimed it first (a file in a watch root): wait for its
            // result, or take the one it already reached.
            Err(JournalError::WrongState { .. }) => {
                match wait_for_other(ctx, id, shutdown).await? {
                    Some(outcome) => return Ok(outcome),
                    None => continue,
                }
            }
            Err(e) => return Err(e.to_string()),
        };
        match upload_file(ctx, row, shutdown)
            .await
            .map_err(|e| e.to_string())?
        {
            Outcome::Retry => {
                let j = ctx.journal.clone();
                let row = tokio::task::spawn_blocking(move || j.get(id))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let wait = row
                    .as_ref()
                    .and_then(|r| r.next_attempt_at)
                    .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    .unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(Outcome::Released),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            other => return Ok(other),
        }
    }
}
