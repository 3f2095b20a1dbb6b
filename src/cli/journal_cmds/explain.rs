//! `ingestd explain PATH`: why a file is not uploaded (yet), from the configuration (roots,
//! include/exclude patterns, settle time) and the journal (state, progress, errors, token).

use crate::cli::stdout::outln;
use crate::escape::Show as _;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use super::{human_duration, human_size, last_error, rfc3339};
use crate::cli::{Cli, ExplainArgs, load_config_for_journal};
use crate::config::{Config, WatchConfig, WatchMode};
use crate::journal::{FileIdentity, FileRow, FileState, Journal, JournalError, TokenState};
use crate::watch::filter::Filter;
use crate::watch::rules::{Route, Rules};

pub fn explain(cli: &Cli, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    // A token file emptied or garbled does not stop `explain`: it is said, in the output too.
    let (config, config_problem) = load_config_for_journal(&cli.config)?;
    let journal = match Journal::open_read_only(&config.journal.path) {
        Ok(j) => Ok(j),
        Err(e @ JournalError::Missing { .. }) => Err(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let mut path = std::path::absolute(&args.path)?;
    if let Some(real) = real_path_of_link(&config, &path) {
        outln!(
            "{}",
            crate::escape::Human(&format!(
                "{}: reached through a symlink; its real path {} is inside a watch root, and the file is uploaded under that path only (one row, one video):",
                path.shown(),
                real.shown()
            ))
        )?;
        path = real;
    }
    for line in explain_path(&config, journal.as_ref(), &path, SystemTime::now())? {
        // One sentence a line: a name holding a newline or ESC is shown escaped.
        outln!("{}", crate::escape::Human(&line))?;
    }
    if let Some(p) = &config_problem {
        outln!("config: {}", crate::escape::Human(p))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The explanation, one line per sentence. `journal` is `Err(message)` when there is none yet.
fn explain_path(
    config: &Config,
    journal: Result<&Journal, &String>,
    path: &Path,
    now: SystemTime,
) -> anyhow::Result<Vec<String>> {
    let mut out = vec![format!("{}:", path.shown())];
    let watch = root_of(config, path);
    let follow = watch.as_ref().is_some_and(|(w, _)| w.follow_symlinks);
    let meta = if follow {
        std::fs::metadata(path).ok()
    } else {
        std::fs::symlink_metadata(path).ok()
    };
    let identity = meta.as_ref().map(FileIdentity::from_metadata);
    let row = match journal {
        Ok(j) => j.find_by_path(path)?,
        Err(_) => None,
    };

    // Already uploaded?
    let mut row = row;
    if let Some(r) = row.as_ref().filter(|r| r.state == FileState::Done) {
        let receipt = format!(
            "videoId {} on {} ({}, {})",
            r.video_id.as_deref().unwrap_or("?"),
            r.done_at.map(rfc3339).unwrap_or_default(),
            human_size(r.identity.size),
            r.content_hash.as_deref().unwrap_or("no hash recorded"),
        );
        match identity {
            Some(id) if !id.same_content(&r.identity) => {
                out.push(format!(
                    "an earlier file at this path was uploaded as {receipt}; this one is different"
                ));
                row = None;
            }
            _ => {
                out.push(format!("uploaded: {receipt}"));
                if let Some(at) = r.adopted_at {
                    out.push(format!(
                        "adopted on {}: api.video already held this file, complete (found by its content hash after the journal was lost or pruned); it was not uploaded again",
                        rfc3339(at)
                    ));
                }
                if let Some(a) = &r.after_upload {
                    out.push(format!("after the upload: {a}"));
                }
                return Ok(out);
            }
        }
    }

    let Some(meta) = meta else {
        out.push("does not exist".into());
        if let Some((w, _)) = watch.as_ref().filter(|(w, _)| !w.path.is_dir()) {
            out.push(format!(
                "its watch root {} does not exist (not created or not mounted?); the daemon checks it again every {} and scans it when it appears",
                w.path.shown(),
                human_duration(w.poll_interval)
            ));
        }
        if let Some(r) = &row {
            out.push(format!(
                "the journal's last record of it: #{} {}",
                r.id, r.state
            ));
        }
        return Ok(out);
    };
    if let Some(kind) = not_a_regular_file(&meta) {
        out.push(format!("{kind}: only regular files are uploaded"));
        return Ok(out);
    }

    match (&watch, &row) {
        (None, None) => {
            let roots: Vec<String> = config
                .watch
                .iter()
                .map(|w| w.path.shown().to_string())
                .collect();
            out.push(if roots.is_empty() {
                "not under any watch root: the configuration has no [[watch]] section".into()
            } else {
                format!("not under any watch root (roots: {})", roots.join(", "))
            });
            return Ok(out);
        }
        (Some((w, rel)), _) => {
            let filter = Filter::new(w)?;
            if let Some(rejection) = filter.rejects_file(rel) {
                out.push(format!("{rejection} (watch root {})", w.path.shown()));
                if row.is_none() {
                    return Ok(out);
                }
            }
        }
        (None, Some(_)) => out.push("not under a watch root; given to `ingestd upload`".into()),
    }

    let journal = match journal {
        Ok(j) => j,
        Err(message) => {
            out.push(message.clone());
            return Ok(out);
        }
    };
    let Some(row) = row else {
        let mut line = "not seen yet: the watcher has not recorded it yet".to_owned();
        if let Some((w, _)) = &watch {
            line.push_str(&format!(
                "; a rescan runs every {}",
                human_duration(w.rescan_interval)
            ));
            if w.mode == WatchMode::Poll {
                line.push_str(&format!(
                    " and a poll every {}",
                    human_duration(w.poll_interval)
                ));
            }
        }
        line.push_str(" (is `ingestd run` running?)");
        out.push(line);
        return Ok(out);
    };

    out.extend(describe_row(
        config,
        journal,
        &row,
        identity,
        watch.map(|(w, _)| w),
        now,
    )?);
    Ok(out)
}

fn describe_row(
    config: &Config,
    journal: &Journal,
    row: &FileRow,
    identity: Option<FileIdentity>,
    watch: Option<&WatchConfig>,
    now: SystemTime,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let id = row.id;
    let changed = identity.is_some_and(|i| i != row.identity);
    let token = journal.token_state()?;
    let paused = (token.state == TokenState::Rejected).then(|| {
        format!(
            "uploads are paused: the upload token was rejected{}{}; {}",
            token
                .since
                .map(|t| format!(" at {}", rfc3339(t)))
                .unwrap_or_default(),
            token
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            super::token_advice(config, token.reason.as_deref()),
        )
    });
    let error = || last_error(row);
    match row.state {
        FileState::Settling => {
            let age = now.duration_since(row.changed_at).unwrap_or_default();
            let settle = watch
                .map(|w| human_duration(w.settle))
                .unwrap_or("?".into());
            out.push(format!(
                "#{id} settling: unchanged for {} of {settle} (indicative: the daemon measures \
                 on its monotonic clock from the last change it saw)",
                human_duration(age)
            ));
            if row.identity.size == 0 {
                out.push("the file is empty: an empty file waits until it has content".into());
            }
            if let Some(why) = row
                .last_error
                .as_deref()
                .filter(|_| row.last_error_slug.as_deref() == Some(crate::watch::container::SLUG))
            {
                let after = watch
                    .map(|w| human_duration(w.incomplete_after))
                    .unwrap_or("?".into());
                // An unproven file (a fragmented MP4 without mfra) is queued then, not failed.
                let then = if why.starts_with("unproven ") {
                    "is uploaded as it is".to_owned()
                } else {
                    format!("fails with `{}`", crate::watch::container::SLUG)
                };
                out.push(format!(
                    "not queued: {why}; it is checked again whenever the file changes, and {then} \
                     if it stays like this for incomplete_after ({after})"
                ));
            }
        }
        FileState::Queued => {
            if let Some(t) = row.next_attempt_at.filter(|t| *t > now) {
                out.push(format!(
                    "#{id} waiting for retry at {}{}{}",
                    rfc3339(t),
                    super::attempt_suffix(row.attempts),
                    error()
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                ));
                out.push(format!("`ingestd retry {id}` makes it due now"));
            } else {
                let pos = journal.queue_position(id, now)?;
                out.push(match pos {
                    Some((k, n)) => format!("#{id} queued: position {k} of {n}"),
                    None => format!("#{id} queued"),
                });
            }
            if row.bytes_uploaded > 0 {
                out.push(format!(
                    "it resumes at {} of {} (videoId {})",
                    human_size(row.bytes_uploaded),
                    human_size(row.identity.size),
                    row.video_id.as_deref().unwrap_or("?")
                ));
            }
            out.extend(lanes_line(config, journal, row)?);
            out.extend(paused);
        }
        FileState::Uploading => {
            let acked = journal.acked_bytes(row)?;
            let pct = acked as f64 * 100.0 / row.identity.size.max(1) as f64;
            out.push(format!(
                "#{id} uploading: {} of {} acknowledged ({pct:.1}%), videoId {}",
                human_size(acked),
                human_size(row.identity.size),
                row.video_id.as_deref().unwrap_or("not assigned yet")
            ));
            out.extend(lanes_line(config, journal, row)?);
            out.extend(paused);
        }
        FileState::Failed => {
            out.push(format!(
                "#{id} failed: {}",
                error().unwrap_or_else(|| "no error recorded".into())
            ));
            if row.last_error_slug.as_deref() == Some(crate::watch::container::SLUG) {
                out.push(format!(
                    "the recorder never finished the file; if it will not, `ingestd retry {id} \
                     --anyway` uploads it as it is (to salvage what was recorded)"
                ));
            } else {
                out.push(format!("fix the cause, then run `ingestd retry {id}`"));
            }
        }
        FileState::Gone => out.push(format!(
            "#{id}: the watcher saw it disappear; it is back and will be picked up by the next scan"
        )),
        FileState::Done => out.push(format!("#{id} uploaded")),
    }
    if changed && row.state != FileState::Settling {
        out.push(
            "the file changed since the journal recorded it: the watcher will make it settle again"
                .into(),
        );
    }
    for n in journal.notes(Some(id))? {
        out.push(format!(
            "note: {} video {}: {}",
            n.kind.as_str(),
            n.video_id.as_deref().unwrap_or("(id unknown)"),
            n.reason
        ));
    }
    Ok(out)
}

/// With `follow_symlinks = true` in its root, the real path of a `path` reached through a
/// symlink whose target is inside a watch root (the path the daemon records it under).
fn real_path_of_link(config: &Config, path: &Path) -> Option<PathBuf> {
    let (w, _) = root_of(config, path)?;
    if !w.follow_symlinks || path.canonicalize().ok()? == path {
        return None;
    }
    match Rules::from_config(config).route(&w.path, path) {
        Ok(Route::Inside { real, .. }) if real != path => Some(real),
        _ => None,
    }
}

/// The watch root containing `path` (the deepest one) and the path relative to it; the
/// canonical forms are tried too (roots or paths through symlinks).
fn root_of<'a>(config: &'a Config, path: &Path) -> Option<(&'a WatchConfig, PathBuf)> {
    let direct = |p: &Path, canonical: bool| {
        config
            .watch
            .iter()
            .filter_map(|w| {
                let root = if canonical {
                    w.path.canonicalize().ok()?
                } else {
                    w.path.clone()
                };
                let rel = p.strip_prefix(&root).ok()?;
                Some((root.components().count(), w, rel.to_owned()))
            })
            .max_by_key(|(depth, _, _)| *depth)
            .map(|(_, w, rel)| (w, rel))
    };
    direct(path, false).or_else(|| direct(&path.canonicalize().ok()?, true))
}

fn not_a_regular_file(meta: &Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_symlink() {
        Some("a symbolic link (followed only with follow_symlinks = true)")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

/// With lanes, what the journal holds beyond the resume point and how many lanes the file uses.
fn lanes_line(config: &Config, journal: &Journal, row: &FileRow) -> anyhow::Result<Option<String>> {
    let ranges = journal.acked_ranges(row.id)?;
    let lanes = config.upload.lanes();
    if ranges.is_empty() && lanes <= 1 {
        return Ok(None);
    }
    let beyond: u64 = ranges
        .iter()
        .map(|(s, e)| e - (*s).max(row.bytes_uploaded))
        .sum();
    // What the running daemon last recorded (its status tick, every 5 s).
    let now = match journal.daemon_info()? {
        Some(d) if d.running && row.state == FileState::Uploading => journal
            .lanes_in_flight()?
            .get(&row.id)
            .map(|n| format!("{n} in flight now; "))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Ok(Some(format!(
        "lanes: up to {lanes} chunks in flight at once once the videoId is known; {now}{} chunks ({}) acknowledged beyond the resume point at {}, never sent again; the completing chunk goes last",
        ranges.len(),
        human_size(beyond),
        human_size(row.bytes_uploaded)
    )))
}
