//! `ingestd status [--json] [--all]`: the JSON object of DESIGN §5, or a table.
//!
//! JSON: `{"counts": {state: n, …all six…}, "token": "ok"|"rejected"|"unknown", "files": [...]}`
//! where each file has at least `id`, `path`, `state`, `size`, `bytes_uploaded`, `video_id`,
//! `attempts`, `last_error`, `next_attempt_at` (RFC 3339 or null) and DESIGN's `sha256_or_blake3`
//! as two keys, `blake3` and `sha256`: the receipt's hex under the key of the algorithm it was
//! made with (`upload.hash`), the other null; `content_hash` is the same as `ALGORITHM:HEX`. Extra keys: `token_reason`, `token_since`, `journal`, `daemon`
//! (`{"pid", "running", "heartbeat_at"}` or null), and per
//! file `root`, `last_error_slug`, `chunk_size`, `first_chunk_in_flight`, `changed_at`,
//! `queued_at`, `created_at`, `updated_at`, `done_at`, `after_upload`, `abandoned_video_ids`,
//! `possible_orphans`. Without `--all`: settling, queued, uploading and failed files; with it,
//! every file (done receipts and gone ones too).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::{human_duration, human_size, rfc3339};
use crate::cli::{Cli, StatusArgs, load_config};
use crate::journal::{
    Counts, DaemonInfo, FileNote, FileRow, FileState, Journal, JournalError, NoteKind, TokenState,
    TokenStatus,
};

/// Everything `status` shows, read in one go.
struct Report {
    journal: std::path::PathBuf,
    counts: Counts,
    token: TokenStatus,
    daemon: Option<DaemonInfo>,
    files: Vec<FileRow>,
    notes: HashMap<i64, Vec<FileNote>>,
}

pub fn status(cli: &Cli, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&cli.config)?;
    let path = &config.journal.path;
    let report = match Journal::open_read_only(path) {
        Ok(journal) => read(&journal, args.all)?,
        Err(e @ JournalError::Missing { .. }) => {
            // Not an error: nothing has happened yet. Scripts still get the documented shape.
            eprintln!("{e}");
            Report {
                journal: path.clone(),
                counts: Counts::default(),
                token: TokenStatus {
                    state: TokenState::Unknown,
                    reason: None,
                    since: None,
                },
                daemon: None,
                files: Vec::new(),
                notes: HashMap::new(),
            }
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", to_table(&report, SystemTime::now()));
    }
    Ok(ExitCode::SUCCESS)
}

fn read(journal: &Journal, all: bool) -> Result<Report, JournalError> {
    let mut notes: HashMap<i64, Vec<FileNote>> = HashMap::new();
    for n in journal.notes(None)? {
        notes.entry(n.file_id).or_default().push(n);
    }
    Ok(Report {
        journal: journal.path().to_owned(),
        counts: journal.counts()?,
        token: journal.token_state()?,
        daemon: journal.daemon_info()?,
        files: journal.list(all)?,
        notes,
    })
}

fn time(t: Option<SystemTime>) -> Value {
    t.map(rfc3339).map(Value::String).unwrap_or(Value::Null)
}

fn to_json(r: &Report) -> Value {
    let counts: serde_json::Map<String, Value> = r
        .counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    let files: Vec<Value> = r
        .files
        .iter()
        .map(|f| {
            let notes = r.notes.get(&f.id).map(Vec::as_slice).unwrap_or_default();
            let of_kind = |kind: NoteKind| -> Vec<Value> {
                notes
                    .iter()
                    .filter(|n| n.kind == kind)
                    .map(|n| json!({"video_id": n.video_id, "reason": n.reason, "at": rfc3339(n.at)}))
                    .collect()
            };
            json!({
                "id": f.id,
                "path": f.path.to_string_lossy(),
                "root": f.root.to_string_lossy(),
                "state": f.state.as_str(),
                "size": f.identity.size,
                "bytes_uploaded": f.bytes_uploaded,
                "video_id": f.video_id,
                "attempts": f.attempts,
                "last_error": f.last_error,
                "last_error_slug": f.last_error_slug,
                "next_attempt_at": time(f.next_attempt_at),
                "content_hash": f.content_hash,
                "blake3": f.receipt_hex("blake3"),
                "sha256": f.receipt_hex("sha256"),
                "chunk_size": f.chunk_size,
                "first_chunk_in_flight": f.first_chunk_in_flight,
                "changed_at": rfc3339(f.changed_at),
                "queued_at": time(f.queued_at),
                "created_at": rfc3339(f.created_at),
                "updated_at": rfc3339(f.updated_at),
                "done_at": time(f.done_at),
                "after_upload": f.after_upload,
                "abandoned_video_ids": of_kind(NoteKind::Abandoned),
                "possible_orphans": of_kind(NoteKind::Orphan),
            })
        })
        .collect();
    json!({
        "journal": r.journal.to_string_lossy(),
        "counts": counts,
        "token": r.token.state.as_str(),
        "token_reason": r.token.reason,
        "token_since": time(r.token.since),
        "daemon": r.daemon.as_ref().map(|d| json!({
            "pid": d.pid,
            "running": d.running,
            "heartbeat_at": rfc3339(d.heartbeat_at),
        })),
        "files": files,
    })
}

fn to_table(r: &Report, now: SystemTime) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let counts: Vec<String> = r
        .counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let _ = writeln!(out, "{}", counts.join(", "));
    let _ = match r.token.state {
        TokenState::Rejected => writeln!(
            out,
            "token: REJECTED{}{} — uploads are paused; write a new token to the token file or send SIGHUP",
            r.token
                .since
                .map(|t| format!(" since {}", rfc3339(t)))
                .unwrap_or_default(),
            r.token
                .reason
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default(),
        ),
        state => writeln!(out, "token: {}", state.as_str()),
    };
    let _ = match &r.daemon {
        Some(d) if d.running => writeln!(
            out,
            "daemon: running (pid {}, last heartbeat {})",
            d.pid,
            rfc3339(d.heartbeat_at)
        ),
        Some(d) => writeln!(
            out,
            "daemon: not running (pid {} last seen {})",
            d.pid,
            rfc3339(d.heartbeat_at)
        ),
        None => writeln!(out, "daemon: no heartbeat recorded"),
    };
    if r.files.is_empty() {
        let _ = writeln!(
            out,
            "no files to show{}",
            if r.counts.get(FileState::Done) > 0 {
                " (--all shows done files)"
            } else {
                ""
            }
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:>6}  {:>10}  {:<40}  {:<22}  NOTE",
        "ID", "STATE", "SENT", "SIZE", "PATH", "VIDEO ID"
    );
    for f in &r.files {
        let pct = match f.identity.size {
            0 => 100.0,
            size => f.bytes_uploaded as f64 * 100.0 / size as f64,
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:>5.1}%  {:>10}  {:<40}  {:<22}  {}",
            f.id,
            f.state.as_str(),
            pct,
            human_size(f.identity.size),
            f.path.display(),
            f.video_id.as_deref().unwrap_or("-"),
            note(f, now),
        );
    }
    for f in &r.files {
        for n in r.notes.get(&f.id).map(Vec::as_slice).unwrap_or_default() {
            let what = match (&n.kind, &n.video_id) {
                (NoteKind::Abandoned, Some(v)) => format!("abandoned video {v}"),
                (NoteKind::Orphan, _) | (NoteKind::Abandoned, None) => {
                    "possible orphan video".to_owned()
                }
            };
            let _ = writeln!(out, "#{}: {what}: {} ({})", f.id, n.reason, rfc3339(n.at));
        }
    }
    out
}

fn note(f: &FileRow, now: SystemTime) -> String {
    let error = || {
        let slug = f
            .last_error_slug
            .as_deref()
            .map(|s| format!("{s}: "))
            .unwrap_or_default();
        f.last_error
            .as_deref()
            .map(|e| format!("{slug}{e}"))
            .unwrap_or_default()
    };
    match f.state {
        FileState::Settling => {
            let age = now.duration_since(f.changed_at).unwrap_or_default();
            format!("unchanged for {}", human_duration(age))
        }
        FileState::Queued => match f.next_attempt_at.filter(|t| *t > now) {
            Some(t) => format!(
                "retry at {} (attempt {}): {}",
                rfc3339(t),
                f.attempts,
                error()
            ),
            None => "waiting for a worker".into(),
        },
        FileState::Uploading => error(),
        FileState::Failed => format!("{} — `ingestd retry {}`", error(), f.id),
        FileState::Done => {
            let when = f.done_at.map(rfc3339).unwrap_or_default();
            match &f.after_upload {
                Some(a) => format!("done {when}, {a}"),
                None => format!("done {when}"),
            }
        }
        FileState::Gone => "the file disappeared".into(),
    }
}
