//! `ingestd status [--json] [--all]`: the JSON object of DESIGN §5, or a table.
//!
//! JSON: `{"counts": {state: n, …all six…}, "token": "ok"|"rejected"|"unknown", "paused": null|"upload token rejected"|"API key rejected", "files": [...]}`
//! where each file has at least `id`, `path`, `state`, `size`, `bytes_uploaded`, `video_id`,
//! `attempts`, `last_error`, `next_attempt_at` (RFC 3339 or null) and DESIGN's `sha256_or_blake3`
//! as two keys, `blake3` and `sha256`: the receipt's hex under the key of the algorithm it was
//! made with (`upload.hash`), the other null; `content_hash` is the same as `ALGORITHM:HEX`.
//! Extra keys: `token_reason`, `token_since`, `journal`, `journal_problem` (`journal: cannot
//! write (…)` or null), `config_problem` (a token, API key or CA file `run` would refuse, which
//! `status` does not need, or null), `daemon` (`{"pid", "running", "heartbeat_at"}` or null), `rate` (`{"bytes_per_second" (0 =
//! unlimited), "limited", "bypassed" (SIGUSR2), "timetable", "next_change_at",
//! "next_bytes_per_second", "source": "daemon"|"config"}`), and per
//! file `bytes_acked` (bytes acknowledged, chunks sent in lanes beyond the resume point
//! included), `lanes` (chunk requests in flight now, as the running daemon last recorded them
//! every 5 s; null when no daemon runs or the file is not uploading), `root`, `last_error_slug`, `chunk_size`, `first_chunk_in_flight`, `changed_at`,
//! `queued_at`, `created_at`, `updated_at`, `done_at`, `after_upload`, `adopted_at` (when the file
//! was found on api.video by its content hash instead of uploaded, or null), `abandoned_video_ids`,
//! `possible_orphans`. Without `--all`: settling, queued, uploading and failed files, and done
//! files whose delete or move failed; with it, every file (done receipts and gone ones too).

use crate::cli::stdout::errln;
use crate::escape::Show as _;
use std::collections::HashMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::escape::Human;

use super::{human_duration, human_size, last_error, rfc3339};
use crate::cli::{Cli, StatusArgs, load_config_for_journal};
use crate::config::timetable::format_rate;
use crate::journal::{
    Counts, DaemonInfo, FileNote, FileRow, FileState, Journal, JournalError, NoteKind, RateInForce,
    TokenState, TokenStatus,
};
use crate::upload::{RateLimit, Schedule, localtime};

/// Everything `status` shows except the files, which are streamed from the journal one row at
/// a time (a journal with 100 000 queued files must not need 100 000 rows in memory).
struct Report {
    journal: std::path::PathBuf,
    counts: Counts,
    token: TokenStatus,
    daemon: Option<DaemonInfo>,
    /// The upload rate in force: the running daemon's record, else what the configuration
    /// says now.
    rate: RateInForce,
    /// Whether `rate` comes from the running daemon (else from the configuration).
    rate_from_daemon: bool,
    /// `journal: cannot write (…)` when the journal's file system is full or read-only.
    journal_problem: Option<String>,
    notes: HashMap<i64, Vec<FileNote>>,
    /// Bytes acknowledged beyond each file's resume point (chunks sent in lanes), by file id.
    acked_beyond: HashMap<i64, u64>,
    /// Chunk requests in flight per uploading file (lanes), as the running daemon last recorded
    /// them (its status tick, every 5 s); empty when no daemon runs.
    lanes: HashMap<i64, usize>,
    /// What to do when the token is rejected, for this configuration's token source.
    token_advice: String,
    /// A token, API key or CA file that `run` would refuse (`status` does not need them).
    config_problem: Option<String>,
}

pub fn status(cli: &Cli, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    // A token file emptied or garbled does not stop `status`: it is said, in the output too.
    let (config, config_problem) = load_config_for_journal(&cli.config)?;
    let path = &config.journal.path;
    let journal = match Journal::open_read_only(path) {
        Ok(journal) => Some(journal),
        Err(e @ JournalError::Missing { .. }) => {
            // Not an error: nothing has happened yet. Scripts still get the documented shape.
            errln!("{e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = match &journal {
        Some(j) => read(j)?,
        None => Report {
            journal: path.clone(),
            counts: Counts::default(),
            token: TokenStatus {
                state: TokenState::Unknown,
                reason: None,
                since: None,
            },
            daemon: None,
            rate: RateInForce {
                rate: 0,
                bypassed: false,
                timetable: None,
                next_change_at: None,
                next_rate: None,
            },
            rate_from_daemon: false,
            journal_problem: None,
            notes: HashMap::new(),
            acked_beyond: HashMap::new(),
            lanes: HashMap::new(),
            token_advice: String::new(),
            config_problem: None,
        },
    };
    if !report.rate_from_daemon {
        let now = SystemTime::now();
        report.rate = Schedule::new(config.upload.max_rate.clone(), RateLimit::unlimited())
            .evaluate(now, localtime::at(now));
    }
    report.token_advice = super::token_advice(&config, report.token.reason.as_deref());
    report.config_problem = config_problem;
    if journal.is_some() {
        // What the daemon sees when it writes, seen from here (this process never writes).
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        report.journal_problem = crate::journal::health::probe_dir(dir, JOURNAL_MIN_FREE)
            .map(|reason| format!("journal: cannot write ({reason})"));
    }
    let mut out = io::BufWriter::new(crate::cli::stdout::Stdout);
    let written = if args.json {
        write_json(&mut out, &report, journal.as_ref(), args.all)
    } else {
        write_table(
            &mut out,
            &report,
            journal.as_ref(),
            args.all,
            SystemTime::now(),
        )
    };
    match written.and_then(|()| out.flush().map_err(Into::into)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `ingestd status | head`: the reader has seen enough.
        Err(Failure::Io(e)) => Err(crate::cli::stdout::OutputError::from(e).into()),
        Err(Failure::Journal(e)) => Err(e.into()),
    }
}

/// Less free space than this on the journal's file system: the daemon cannot commit (a WAL
/// frame is a page; a few are needed per transaction).
const JOURNAL_MIN_FREE: u64 = 64 * 1024;

/// Why writing the report stopped.
#[derive(Debug)]
enum Failure {
    Io(io::Error),
    Journal(JournalError),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn read(journal: &Journal) -> Result<Report, JournalError> {
    let mut notes: HashMap<i64, Vec<FileNote>> = HashMap::new();
    for n in journal.notes(None)? {
        notes.entry(n.file_id).or_default().push(n);
    }
    let daemon = journal.daemon_info()?;
    let running = daemon.as_ref().is_some_and(|d| d.running);
    let recorded = if running {
        journal.rate_in_force()?
    } else {
        None
    };
    let lanes = if running {
        journal.lanes_in_flight()?
    } else {
        HashMap::new()
    };
    Ok(Report {
        journal: journal.path().to_owned(),
        counts: journal.counts()?,
        token: journal.token_state()?,
        daemon,
        rate_from_daemon: recorded.is_some(),
        rate: recorded.unwrap_or(RateInForce {
            rate: 0,
            bypassed: false,
            timetable: None,
            next_change_at: None,
            next_rate: None,
        }),
        journal_problem: None,
        notes,
        acked_beyond: journal.acked_beyond_prefix()?,
        lanes,
        token_advice: String::new(),
        config_problem: None,
    })
}

/// Calls `f` for every file `status` shows, in id order; nothing without a journal.
fn each_file(
    journal: Option<&Journal>,
    all: bool,
    mut f: impl FnMut(&FileRow) -> io::Result<()>,
) -> Result<(), Failure> {
    let Some(journal) = journal else {
        return Ok(());
    };
    let mut io_error = None;
    journal
        .for_each_file(all, |row| match f(&row) {
            Ok(()) => true,
            Err(e) => {
                io_error = Some(e);
                false
            }
        })
        .map_err(Failure::Journal)?;
    match io_error {
        Some(e) => Err(Failure::Io(e)),
        None => Ok(()),
    }
}

fn time(t: Option<SystemTime>) -> Value {
    t.map(rfc3339).map(Value::String).unwrap_or(Value::Null)
}

/// One line of JSON: the header keys, then `"files": [...]` written row by row.
fn write_json(
    out: &mut impl Write,
    r: &Report,
    journal: Option<&Journal>,
    all: bool,
) -> Result<(), Failure> {
    let mut head = serde_json::to_string(&header_json(r)).map_err(io::Error::other)?;
    head.pop(); // the closing brace: "files" comes last
    write!(out, "{head},\"files\":[")?;
    let mut first = true;
    each_file(journal, all, |f| {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, &file_json(r, f)).map_err(io::Error::other)
    })?;
    writeln!(out, "]}}")?;
    Ok(())
}

fn header_json(r: &Report) -> Value {
    let counts: serde_json::Map<String, Value> = r
        .counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    json!({
        "journal": r.journal.to_string_lossy(),
        "counts": counts,
        "token": r.token.state.token_str(),
        "paused": r.token.state.pause(),
        "token_reason": r.token.reason,
        "token_since": time(r.token.since),
        "journal_problem": r.journal_problem,
        "config_problem": r.config_problem,
        "daemon": r.daemon.as_ref().map(|d| json!({
            "pid": d.pid,
            "running": d.running,
            "heartbeat_at": rfc3339(d.heartbeat_at),
        })),
        "rate": {
            "bytes_per_second": r.rate.rate,
            "limited": r.rate.rate != 0 && !r.rate.bypassed,
            "bypassed": r.rate.bypassed,
            "timetable": r.rate.timetable,
            "next_change_at": time(r.rate.next_change_at),
            "next_bytes_per_second": r.rate.next_rate,
            "source": if r.rate_from_daemon { "daemon" } else { "config" },
        },
    })
}

/// `rate: 2 MiB/s until 2026-…Z, then 20 MiB/s (timetable "…")`.
fn rate_line(r: &Report) -> String {
    let f = &r.rate;
    let mut line = if f.bypassed {
        format!(
            "rate: unlimited (SIGUSR2 lifted the limit of {} until the next SIGUSR2)",
            format_rate(f.rate)
        )
    } else {
        format!("rate: {}", format_rate(f.rate))
    };
    if let (Some(at), Some(next)) = (f.next_change_at, f.next_rate) {
        line += &format!(" until {}, then {}", rfc3339(at), format_rate(next));
    }
    if let Some(t) = &f.timetable {
        line += &format!(" (timetable \"{t}\")");
    }
    if !r.rate_from_daemon {
        line += " [from the configuration; no daemon running]";
    }
    line
}

fn file_json(r: &Report, f: &FileRow) -> Value {
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
        "bytes_acked": f.bytes_uploaded + r.acked_beyond.get(&f.id).copied().unwrap_or(0),
        "lanes": lanes_of(r, f),
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
        "adopted_at": time(f.adopted_at),
        "abandoned_video_ids": of_kind(NoteKind::Abandoned),
        "possible_orphans": of_kind(NoteKind::Orphan),
    })
}

/// Chunk requests of `f` in flight now (lanes), per the running daemon; `None` for a file it is
/// not uploading.
fn lanes_of(r: &Report, f: &FileRow) -> Option<usize> {
    (f.state == FileState::Uploading)
        .then(|| r.lanes.get(&f.id).copied())
        .flatten()
}

fn write_table(
    out: &mut impl Write,
    r: &Report,
    journal: Option<&Journal>,
    all: bool,
    now: SystemTime,
) -> Result<(), Failure> {
    let counts: Vec<String> = r
        .counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    writeln!(out, "{}", counts.join(", "))?;
    match r.token.state {
        TokenState::Rejected => writeln!(
            out,
            "token: REJECTED{}{} — uploads are paused; {}",
            r.token
                .since
                .map(|t| format!(" since {}", rfc3339(t)))
                .unwrap_or_default(),
            r.token
                .reason
                .as_deref()
                .map(|x| format!(" ({})", Human(x)))
                .unwrap_or_default(),
            r.token_advice,
        )?,
        TokenState::ApiKeyRejected => writeln!(
            out,
            "API key rejected{}{} — uploads are paused until the daemon re-reads the key: fix api.api_key_file (or APIVIDEO_API_KEY) and send SIGHUP (systemctl reload ingestd)",
            r.token
                .since
                .map(|t| format!(" since {}", rfc3339(t)))
                .unwrap_or_default(),
            r.token
                .reason
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default(),
        )?,
        state => writeln!(out, "token: {}", state.as_str())?,
    }
    if let Some(p) = &r.config_problem {
        writeln!(out, "config: {}", Human(p))?;
    }
    if let Some(p) = &r.journal_problem {
        writeln!(
            out,
            "{p} — uploads and scans wait, and resume on their own once it can"
        )?;
    }
    match &r.daemon {
        Some(d) if d.running => writeln!(
            out,
            "daemon: running (pid {}, last heartbeat {})",
            d.pid,
            rfc3339(d.heartbeat_at)
        )?,
        Some(d) => writeln!(
            out,
            "daemon: not running (pid {} last seen {})",
            d.pid,
            rfc3339(d.heartbeat_at)
        )?,
        None => writeln!(out, "daemon: no heartbeat recorded")?,
    }
    writeln!(out, "{}", rate_line(r))?;
    let mut shown = 0u64;
    // Notes of the files shown, printed after the table (few: only files with notes).
    let mut noted: Vec<i64> = Vec::new();
    each_file(journal, all, |f| {
        if shown == 0 {
            // Fixed-width columns first (a videoId is 24 characters), the path and the note
            // last: they have any length.
            writeln!(
                out,
                "{:>6}  {:<9}  {:>6}  {:>10}  {:<24}  PATH  NOTE",
                "ID", "STATE", "SENT", "SIZE", "VIDEO ID"
            )?;
        }
        shown += 1;
        if r.notes.contains_key(&f.id) {
            noted.push(f.id);
        }
        let pct = match f.identity.size {
            0 => 100.0,
            size => {
                let acked = f.bytes_uploaded + r.acked_beyond.get(&f.id).copied().unwrap_or(0);
                acked as f64 * 100.0 / size as f64
            }
        };
        writeln!(
            out,
            "{:>6}  {:<9}  {:>5.1}%  {:>10}  {:<24}  {}  {}",
            f.id,
            f.state.as_str(),
            pct,
            human_size(f.identity.size),
            f.video_id.as_deref().unwrap_or("-"),
            Human(f.path.shown()),
            Human(note(f, lanes_of(r, f), now)),
        )
    })?;
    if shown == 0 {
        writeln!(
            out,
            "no files to show{}",
            if r.counts.get(FileState::Done) > 0 {
                " (--all shows done files)"
            } else {
                ""
            }
        )?;
        return Ok(());
    }
    for id in noted {
        for n in r.notes.get(&id).map(Vec::as_slice).unwrap_or_default() {
            let what = match (&n.kind, &n.video_id) {
                (NoteKind::Abandoned, Some(v)) => format!("abandoned video {v}"),
                (NoteKind::Orphan, _) | (NoteKind::Abandoned, None) => {
                    "possible orphan video".to_owned()
                }
            };
            writeln!(
                out,
                "#{id}: {what}: {} ({})",
                Human(&n.reason),
                rfc3339(n.at)
            )?;
        }
    }
    Ok(())
}

fn note(f: &FileRow, lanes: Option<usize>, now: SystemTime) -> String {
    let error = || last_error(f).unwrap_or_default();
    match f.state {
        FileState::Settling => {
            let age = now.duration_since(f.changed_at).unwrap_or_default();
            match f
                .last_error
                .as_deref()
                .filter(|_| f.last_error_slug.as_deref() == Some(crate::watch::container::SLUG))
            {
                Some(why) => format!("unchanged for {}; {why}", human_duration(age)),
                None => format!("unchanged for {}", human_duration(age)),
            }
        }
        FileState::Queued => match f.next_attempt_at.filter(|t| *t > now) {
            Some(t) => format!(
                "retry at {}{}: {}",
                rfc3339(t),
                super::attempt_suffix(f.attempts),
                error()
            ),
            None => "waiting for a worker".into(),
        },
        FileState::Uploading => match lanes.filter(|&n| n > 1) {
            Some(n) if error().is_empty() => format!("{n} lanes in flight"),
            Some(n) => format!("{n} lanes in flight; {}", error()),
            None => error(),
        },
        FileState::Failed => format!("{} — `ingestd retry {}`", error(), f.id),
        FileState::Done => {
            let mut when = f.done_at.map(rfc3339).unwrap_or_default();
            if f.adopted_at.is_some() {
                when.push_str(" (adopted: found on api.video by its content hash)");
            }
            match &f.after_upload {
                Some(a) => format!("done {when}, {a}"),
                None => format!("done {when}"),
            }
        }
        FileState::Gone => "the file disappeared".into(),
    }
}
