//! `ingestd orphans [--json] [--delete [--yes]]`: the videos files left behind, found and cleaned.
//!
//! The journal notes two kinds (`file_notes`): *abandoned* (a started upload given up; its
//! `videoId` is known) and *possible orphans* (a first request was in flight when the process
//! stopped or its answer was lost: a video titled after the file may exist, id unknown). With an
//! API key each note is resolved to real videos: the known id, or the videos titled exactly
//! after the file and created between the file's first sighting (less [`SKEW`]) and the note.
//! A video that is some file's `video_id` (its final or current video) is never a candidate.
//! `--delete` deletes the candidates and marks the note resolved in the journal.

use crate::cli::stdout::{out, outln};
use crate::escape::Human;
use crate::escape::Show as _;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::keyed::{self, KeySource, api_failure};
use super::{Cli, Exit, OrphansArgs, load_config, table};
use crate::api::{ApiError, Client, Video, VideoListQuery};
use crate::journal::{FileNote, FileRow, Journal, NoteKind};
use crate::metrics::format;

/// Clock difference allowed between this box and api.video at the start of an attempt's window
/// (api.video's `createdAt` has whole seconds). The end is the note's own time: the orphan's
/// request was sent before the note was written. The file was first seen at least its `settle`
/// time before the request, so the margin does not reach back before the file existed.
const SKEW: Duration = Duration::from_secs(5);
/// Title matches looked at per possible orphan (api.video matches titles by substring).
const MAX_TITLE_PAGES: u32 = 20;

/// One video a note stands for, and what to do with it.
struct Candidate {
    video: Video,
    /// `uploaded 5.0 MiB`, `uploading 1.0 MiB of 9.0 MiB`, `no source`, or `?`.
    upload: String,
    /// `Some(file id)`: it is that file's video, so it is kept.
    owner: Option<i64>,
    /// Set by `--delete`: `deleted`, or the error.
    outcome: Option<String>,
}

/// One note with its file and, with an API key, its videos.
struct Entry {
    note: FileNote,
    file: Option<FileRow>,
    /// `None` without an API key.
    candidates: Option<Vec<Candidate>>,
    resolution: Option<String>,
}

pub async fn run(cli: &Cli, args: &OrphansArgs) -> anyhow::Result<ExitCode> {
    let config = match keyed::lenient_config(&cli.config)? {
        Some(c) => c,
        None => load_config(&cli.config)?,
    };
    let path = &config.journal.path;
    let journal = if args.delete {
        Journal::open_existing(path)?
    } else {
        match Journal::open_read_only(path) {
            Ok(j) => j,
            Err(crate::journal::JournalError::Missing { .. }) => {
                outln!("no journal at {} yet: no orphans", Human(path.shown()))?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e.into()),
        }
    };
    let keyed = keyed::connect_with(Some(&config), args.common.endpoint.as_deref())?;
    let mut entries = Vec::new();
    for note in journal.notes(None)? {
        let file = journal.get(note.file_id)?;
        entries.push(Entry {
            note,
            file,
            candidates: None,
            resolution: None,
        });
    }
    let Some(keyed::Keyed { client, source }) = keyed else {
        let how = format!(
            "APIVIDEO_API_KEY=<the account's API key> ingestd --config {} orphans{}",
            cli.config.shown(),
            if args.delete { " --delete" } else { "" }
        );
        if args.delete {
            return Err(Exit {
                code: crate::config::EXIT_CONFIG,
                message: format!(
                    "orphans --delete needs the API key (api.api_key_file or APIVIDEO_API_KEY); run: {how}"
                ),
            }
            .into());
        }
        print_entries(&entries, args.json, Some(&how))?;
        return Ok(ExitCode::SUCCESS);
    };
    for entry in &mut entries {
        entry.candidates = Some(candidates(&client, &source, &journal, entry).await?);
    }
    if args.delete {
        let doomed: usize = entries
            .iter()
            .flat_map(|e| e.candidates.iter().flatten())
            .filter(|c| c.owner.is_none())
            .count();
        if doomed > 0 && !args.yes {
            if !std::io::stdin().is_terminal() {
                return Err(Exit {
                    code: 2,
                    message: "orphans --delete: standard input is not a terminal, so it cannot ask; add --yes to delete without asking".into(),
                }
                .into());
            }
            print_entries(&entries, false, None)?;
            let q = format!(
                "Delete {doomed} video{}? This cannot be undone. [y/N] ",
                if doomed == 1 { "" } else { "s" }
            );
            if !super::videos::confirm(&q)? {
                outln!("nothing deleted")?;
                return Ok(ExitCode::from(1));
            }
        }
        let mut failed = false;
        for entry in &mut entries {
            failed |= !delete_entry(&client, &source, &journal, entry).await?;
        }
        print_entries(&entries, args.json, None)?;
        return Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    print_entries(&entries, args.json, None)?;
    Ok(ExitCode::SUCCESS)
}

/// The videos a note stands for.
async fn candidates(
    client: &Client,
    source: &KeySource,
    journal: &Journal,
    entry: &Entry,
) -> anyhow::Result<Vec<Candidate>> {
    let mut videos: Vec<Video> = Vec::new();
    if let Some(id) = &entry.note.video_id {
        match client.get_video(id).await {
            Ok(v) => videos.push(v),
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(api_failure(e, source)),
        }
    } else if let Some(file) = &entry.file {
        let title = file_title(&file.path);
        let from = file.created_at.checked_sub(SKEW).unwrap_or(file.created_at);
        let to = entry.note.at;
        let mut query = VideoListQuery {
            title: Some(title.clone()),
            page_size: Some(100),
            ..Default::default()
        };
        for number in 1..=MAX_TITLE_PAGES {
            query.current_page = Some(number);
            let page = client
                .list_videos(&query)
                .await
                .map_err(|e| api_failure(e, source))?;
            let last = page.data.is_empty() || u64::from(number) >= page.pagination.pages_total;
            videos.extend(
                page.data
                    .into_iter()
                    .filter(|v| in_window(v, &title, from, to)),
            );
            if last {
                break;
            }
        }
    }
    let mut out = Vec::new();
    for video in videos {
        let upload = match client.video_status(&video.video_id).await {
            Ok(s) => super::videos::upload_state(&s),
            Err(_) => "?".to_owned(),
        };
        let owner = journal.video_owner(&video.video_id)?;
        out.push(Candidate {
            video,
            upload,
            owner,
            outcome: None,
        });
    }
    Ok(out)
}

/// Deletes the note's videos that no file owns and resolves the note if all went; false if a
/// deletion failed.
async fn delete_entry(
    client: &Client,
    source: &KeySource,
    journal: &Journal,
    entry: &mut Entry,
) -> anyhow::Result<bool> {
    let Some(candidates) = entry.candidates.as_mut() else {
        return Ok(true);
    };
    let mut deleted = Vec::new();
    let mut ok = true;
    for c in candidates.iter_mut().filter(|c| c.owner.is_none()) {
        // Checked again right before deleting: a daemon may have committed it meanwhile.
        if let Some(owner) = journal.video_owner(&c.video.video_id)? {
            c.owner = Some(owner);
            continue;
        }
        match client.delete_video(&c.video.video_id).await {
            Ok(()) => {
                c.outcome = Some("deleted".into());
                deleted.push(c.video.video_id.clone());
            }
            Err(e) if e.status() == Some(404) => {
                c.outcome = Some("already gone".into());
            }
            Err(e) if is_fatal(&e) => return Err(api_failure(e, source)),
            Err(e) => {
                c.outcome = Some(format!("not deleted: {e}"));
                ok = false;
            }
        }
    }
    if ok {
        let kept: Vec<String> = candidates
            .iter()
            .filter_map(|c| c.owner.map(|o| format!("{} (file #{o})", c.video.video_id)))
            .collect();
        let mut resolution = if deleted.is_empty() {
            "no orphan video found".to_owned()
        } else {
            format!("deleted {}", deleted.join(", "))
        };
        if !kept.is_empty() {
            resolution.push_str(&format!("; kept {}", kept.join(", ")));
        }
        journal.resolve_note(entry.note.id, &resolution)?;
        entry.resolution = Some(resolution);
    }
    Ok(ok)
}

/// A rejected key or an unreachable endpoint: every other request would fail the same way.
fn is_fatal(e: &ApiError) -> bool {
    e.class() == crate::api::ErrorClass::ApiKeyRejected
        || matches!(e, ApiError::Network { connect: true, .. })
}

/// The title api.video gives a video uploaded with a token and no `videoId`: the file name.
fn file_title(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".to_owned())
}

/// A video titled exactly `title` and created between `from` and `to`.
fn in_window(v: &Video, title: &str, from: SystemTime, to: SystemTime) -> bool {
    v.title.as_deref() == Some(title)
        && v.created_at
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|t| t >= from && t <= to)
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    let ns = u64::try_from(ns).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))
}

fn print_entries(entries: &[Entry], json: bool, how: Option<&str>) -> anyhow::Result<()> {
    if json {
        let list: Vec<Value> = entries.iter().map(entry_json).collect();
        let mut out = json!({ "orphans": list, "api_key": how.is_none() });
        if let (Some(how), Some(obj)) = (how, out.as_object_mut()) {
            obj.insert("run_with_key".into(), how.into());
        }
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    if entries.is_empty() {
        outln!("no orphans: every upload the journal knows of ended in its file's video")?;
        return Ok(());
    }
    let mut rows = vec![vec![
        "FILE".to_owned(),
        "NOTED".to_owned(),
        "KIND".to_owned(),
        "VIDEO".to_owned(),
        "REASON".to_owned(),
    ]];
    for e in entries {
        rows.push(vec![
            e.file.as_ref().map_or_else(
                || format!("#{}", e.note.file_id),
                |f| format!("#{} {}", f.id, Human(f.path.shown())),
            ),
            format::rfc3339(e.note.at),
            kind_text(e.note.kind).to_owned(),
            e.note.video_id.clone().unwrap_or_else(|| "?".into()),
            Human(&e.note.reason).to_string(),
        ]);
    }
    out!("{}", table::render(&rows))?;
    let mut lines = String::new();
    for e in entries {
        let Some(candidates) = &e.candidates else {
            continue;
        };
        let name = e.file.as_ref().map_or_else(
            || format!("#{}", e.note.file_id),
            |f| Human(f.path.shown()).to_string(),
        );
        if candidates.is_empty() {
            lines.push_str(&format!("{name}: no video found on api.video\n"));
        }
        for c in candidates {
            let verdict = match (&c.outcome, c.owner) {
                (Some(o), _) => o.clone(),
                (None, Some(owner)) => format!("kept: the video of file #{owner}"),
                (None, None) => "orphan".to_owned(),
            };
            lines.push_str(&format!(
                "{name}: {} created {} ({}): {verdict}\n",
                c.video.video_id,
                c.video.created_at.as_deref().unwrap_or("-"),
                c.upload
            ));
        }
        if let Some(r) = &e.resolution {
            lines.push_str(&format!("{name}: resolved ({r})\n"));
        }
    }
    out!("{lines}")?;
    if let Some(how) = how {
        outln!(
            "no API key: to find these videos on api.video (and delete them with --delete), run:\n  {how}"
        )?;
    }
    Ok(())
}

fn kind_text(kind: NoteKind) -> &'static str {
    match kind {
        NoteKind::Abandoned => "abandoned",
        NoteKind::Orphan => "possible orphan",
    }
}

fn entry_json(e: &Entry) -> Value {
    let mut v = json!({
        "note_id": e.note.id,
        "file_id": e.note.file_id,
        "path": e.file.as_ref().map(|f| f.path.to_string_lossy().into_owned()),
        "kind": e.note.kind.as_str(),
        "video_id": e.note.video_id,
        "reason": e.note.reason,
        "at": format::rfc3339(e.note.at),
    });
    if let (Some(candidates), Some(obj)) = (&e.candidates, v.as_object_mut()) {
        let list: Vec<Value> = candidates
            .iter()
            .map(|c| {
                json!({
                    "video_id": c.video.video_id,
                    "title": c.video.title,
                    "created_at": c.video.created_at,
                    "upload": c.upload,
                    "owner_file_id": c.owner,
                    "outcome": c.outcome,
                })
            })
            .collect();
        obj.insert("videos".into(), list.into());
        obj.insert("resolution".into(), e.resolution.clone().into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339() {
        let t = parse_time("2020-12-02T10:13:19+00:00").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_606_903_999
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn window_takes_the_exact_title_between_the_bounds() {
        let at = |s: &str| parse_time(s).unwrap();
        let video = |title: &str, created: &str| Video {
            video_id: "vi1".into(),
            title: Some(title.into()),
            created_at: Some(created.into()),
            ..Default::default()
        };
        let (from, to) = (
            at("2026-01-01T10:00:00+00:00"),
            at("2026-01-01T10:05:00+00:00"),
        );
        assert!(in_window(
            &video("a.mp4", "2026-01-01T10:01:00+00:00"),
            "a.mp4",
            from,
            to
        ));
        assert!(in_window(
            &video("a.mp4", "2026-01-01T10:05:00+00:00"),
            "a.mp4",
            from,
            to
        ));
        assert!(!in_window(
            &video("a.mp4 (2)", "2026-01-01T10:01:00+00:00"),
            "a.mp4",
            from,
            to
        ));
        assert!(!in_window(
            &video("a.mp4", "2026-01-01T09:59:59+00:00"),
            "a.mp4",
            from,
            to
        ));
        assert!(!in_window(
            &video("a.mp4", "2026-01-01T10:05:01+00:00"),
            "a.mp4",
            from,
            to
        ));
        assert!(!in_window(&video("a.mp4", "garbage"), "a.mp4", from, to));
    }
}
