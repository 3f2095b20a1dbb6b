//! `ingestd videos list|show|update|delete`: the videos of the account, with the API key.
//!
//! `list` prints a table on a terminal (id, title, created, upload state) and one id per line
//! when piped (`ingestd videos list --title X | xargs ingestd videos delete --yes`); `--json`
//! prints the API's page (with `--all`, an array of every video). `delete` asks on a terminal;
//! off a terminal it needs `--yes`.

use crate::cli::stdout::{errln, out, outln};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use futures_util::StreamExt;

use super::keyed::{self, KeySource, api_failure, not_found};
use super::{Cli, Exit, VideosCommand, table};
use crate::api::{
    ApiError, Client, Metadata, Page, SortOrder, Video, VideoListQuery, VideoSortBy, VideoStatus,
    VideoUpdate,
};
use crate::metrics::format;

/// Status requests in flight at once for the `list` table.
const STATUS_CONCURRENCY: usize = 8;
/// Pages `--all` follows at most (100 × 10 000 videos), against a server that never ends.
const MAX_PAGES: u32 = 10_000;

pub async fn run(cli: &Cli, cmd: &VideosCommand) -> anyhow::Result<ExitCode> {
    let common = match cmd {
        VideosCommand::List { common, .. }
        | VideosCommand::Show { common, .. }
        | VideosCommand::Update { common, .. }
        | VideosCommand::Delete { common, .. } => common,
    };
    let keyed::Keyed { client, source } = keyed::connect(&cli.config, common.endpoint.as_deref())?;
    match cmd {
        VideosCommand::List {
            title,
            tags,
            metadata,
            sort_by,
            sort_order,
            page,
            page_size,
            all,
            json,
            ..
        } => {
            let query = VideoListQuery {
                title: title.clone(),
                tags: tags.clone(),
                metadata: metadata.clone(),
                sort_by: sort_by.map(|s| match s {
                    super::VideoSortBy::Title => VideoSortBy::Title,
                    super::VideoSortBy::CreatedAt => VideoSortBy::CreatedAt,
                    super::VideoSortBy::PublishedAt => VideoSortBy::PublishedAt,
                    super::VideoSortBy::UpdatedAt => VideoSortBy::UpdatedAt,
                }),
                sort_order: sort_order.map(|o| match o {
                    super::SortOrder::Asc => SortOrder::Asc,
                    super::SortOrder::Desc => SortOrder::Desc,
                }),
                current_page: *page,
                page_size: *page_size,
            };
            list(&client, &source, query, *all, *json).await?;
        }
        VideosCommand::Show { id, json, .. } => {
            let video = client
                .get_video(id)
                .await
                .map_err(|e| missing(e, id, &source))?;
            if *json {
                outln!("{}", serde_json::to_string_pretty(&video)?)?;
            } else {
                let status = client.video_status(id).await.ok();
                out!("{}", details(&video, status.as_ref()))?;
            }
        }
        VideosCommand::Update {
            id,
            title,
            description,
            tags,
            clear_tags,
            metadata,
            clear_metadata,
            public,
            private,
            json,
            ..
        } => {
            let update = VideoUpdate {
                title: title.clone(),
                description: description.clone(),
                tags: (*clear_tags || !tags.is_empty()).then(|| tags.clone()),
                metadata: (*clear_metadata || !metadata.is_empty()).then(|| {
                    metadata
                        .iter()
                        .map(|(key, value)| Metadata {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .collect()
                }),
                public: if *public {
                    Some(true)
                } else if *private {
                    Some(false)
                } else {
                    None
                },
            };
            let video = client
                .update_video(id, &update)
                .await
                .map_err(|e| missing(e, id, &source))?;
            if *json {
                outln!("{}", serde_json::to_string_pretty(&video)?)?;
            } else {
                out!("{}", details(&video, None))?;
            }
        }
        VideosCommand::Delete { ids, yes, .. } => return delete(&client, &source, ids, *yes).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// A 404 names the video.
fn missing(e: ApiError, id: &str, source: &KeySource) -> anyhow::Error {
    not_found(
        e,
        source,
        format!("no video {id}"),
        "deleted or never created; `ingestd videos list` shows the account's videos",
    )
}

async fn list(
    client: &Client,
    source: &KeySource,
    mut query: VideoListQuery,
    all: bool,
    json: bool,
) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    if !all {
        let page = client
            .list_videos(&query)
            .await
            .map_err(|e| api_failure(e, source))?;
        if json {
            outln!("{}", serde_json::to_string_pretty(&page)?)?;
        } else if terminal {
            out!("{}", page_table(client, &page).await)?;
        } else {
            print_ids(&page.data)?;
        }
        return Ok(());
    }
    query.page_size = query.page_size.or(Some(100));
    let mut videos: Vec<Video> = Vec::new();
    for number in 1..=MAX_PAGES {
        query.current_page = Some(number);
        let page = client
            .list_videos(&query)
            .await
            .map_err(|e| api_failure(e, source))?;
        let last = page.data.is_empty() || u64::from(number) >= page.pagination.pages_total;
        if !json && !terminal {
            // Piped: ids as they come, so a long listing streams.
            print_ids(&page.data)?;
        } else {
            videos.extend(page.data);
        }
        if last {
            break;
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&videos)?)?;
    } else if terminal {
        if videos.is_empty() {
            outln!("no videos")?;
        } else {
            let states = states(client, &videos).await;
            let n = videos.len();
            outln!(
                "{}{n} video{}",
                table::render(&rows(&videos, &states)),
                if n == 1 { "" } else { "s" }
            )?;
        }
    }
    Ok(())
}

fn print_ids(videos: &[Video]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(crate::cli::stdout::Stdout);
    let written = videos
        .iter()
        .try_for_each(|v| writeln!(out, "{}", v.video_id))
        .and_then(|()| out.flush());
    written.map_err(|e| crate::cli::stdout::OutputError::from(e).into())
}

/// One page as a table with its footer.
async fn page_table(client: &Client, page: &Page<Video>) -> String {
    let states = states(client, &page.data).await;
    table::page(
        &rows(&page.data, &states),
        &page.pagination,
        "videos",
        "video",
        "videos",
    )
}

/// The upload state of each video (`GET /videos/{id}/status`, a few at a time); `?` when the
/// status cannot be read.
async fn states(client: &Client, videos: &[Video]) -> Vec<String> {
    futures_util::stream::iter(videos.iter().map(|v| {
        let client = client.clone();
        let id = v.video_id.clone();
        async move {
            match client.video_status(&id).await {
                Ok(status) => upload_state(&status),
                Err(_) => "?".to_owned(),
            }
        }
    }))
    .buffered(STATUS_CONCURRENCY)
    .collect()
    .await
}

/// `uploaded 12.0 MiB`, `uploading 5.0 MiB of 12.0 MiB`, `no source`.
pub(super) fn upload_state(status: &VideoStatus) -> String {
    let ingest = status.ingest.as_ref();
    let received = status.received();
    let word = ingest
        .and_then(|i| i.status.as_deref())
        .unwrap_or("uploading");
    if status.is_complete() {
        return format!("{word} {}", format::size(received));
    }
    if received == 0 {
        return "no source".to_owned();
    }
    match ingest.and_then(|i| i.filesize) {
        Some(total) => format!(
            "{word} {} of {}",
            format::size(received),
            format::size(total)
        ),
        None => format!("{word} {}", format::size(received)),
    }
}

/// `ID  TITLE  CREATED  UPLOAD`, header first.
fn rows(videos: &[Video], states: &[String]) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "ID".into(),
        "TITLE".into(),
        "CREATED".into(),
        "UPLOAD".into(),
    ]];
    for (v, state) in videos.iter().zip(states) {
        rows.push(vec![
            v.video_id.clone(),
            printable(v.title.as_deref().unwrap_or("")),
            v.created_at.clone().unwrap_or_else(|| "-".into()),
            state.clone(),
        ]);
    }
    rows
}

/// A title or description on one line: control characters escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `key: value` lines of one video.
fn details(v: &Video, status: Option<&VideoStatus>) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut add = |k: &str, val: String| rows.push(vec![format!("{k}:"), val]);
    add("id", v.video_id.clone());
    add("title", printable(v.title.as_deref().unwrap_or("")));
    if let Some(d) = v.description.as_deref().filter(|d| !d.is_empty()) {
        add("description", printable(d));
    }
    if let Some(c) = &v.created_at {
        add("created", c.clone());
    }
    if let Some(u) = &v.updated_at {
        add("updated", u.clone());
    }
    if let Some(p) = v.public {
        add("public", if p { "yes" } else { "no" }.into());
    }
    if !v.tags.is_empty() {
        add("tags", printable(&v.tags.join(", ")));
    }
    for m in &v.metadata {
        add("metadata", printable(&format!("{}={}", m.key, m.value)));
    }
    if let Some(s) = status {
        add("upload", upload_state(s));
    }
    if let Some(player) = v.assets.as_ref().and_then(|a| a.player.clone()) {
        add("player", player);
    }
    table::render(&rows)
}

/// Deletes `ids` after one question on a terminal; exit 1 if any could not be deleted.
async fn delete(
    client: &Client,
    source: &KeySource,
    ids: &[String],
    yes: bool,
) -> anyhow::Result<ExitCode> {
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Exit {
                code: 2,
                message: "videos delete: standard input is not a terminal, so it cannot ask; add --yes to delete without asking".into(),
            }
            .into());
        }
        let what = if ids.len() == 1 {
            format!("video {}", ids[0])
        } else {
            format!("{} videos ({})", ids.len(), ids.join(", "))
        };
        if !confirm(&format!("Delete {what}? This cannot be undone. [y/N] "))? {
            outln!("nothing deleted")?;
            return Ok(ExitCode::from(1));
        }
    }
    let mut failed = 0;
    for id in ids {
        match client.delete_video(id).await {
            Ok(()) => outln!("deleted video {id}")?,
            Err(e) => {
                let e = missing(e, id, source);
                // A rejected key or an unreachable endpoint fails every one: stop at the first.
                if e.downcast_ref::<Exit>().is_none() || !e.to_string().starts_with("no video") {
                    return Err(e);
                }
                errln!("{e}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Asks on the terminal; true for `y` or `yes`.
pub(super) fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question}")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BytesRange, Ingest};

    fn status(word: &str, size: Option<u64>, ranges: &[(u64, u64)]) -> VideoStatus {
        VideoStatus {
            ingest: Some(Ingest {
                status: Some(word.into()),
                filesize: size,
                received_bytes: ranges
                    .iter()
                    .map(|&(from, to)| BytesRange {
                        from,
                        to,
                        total: size.unwrap_or(0),
                    })
                    .collect(),
                received_parts: None,
            }),
            encoding: None,
        }
    }

    #[test]
    fn upload_states() {
        assert_eq!(
            upload_state(&status("uploaded", Some(2048), &[(0, 2047)])),
            "uploaded 2.0 KiB"
        );
        assert_eq!(
            upload_state(&status("uploading", Some(4096), &[(0, 1023)])),
            "uploading 1.0 KiB of 4.0 KiB"
        );
        assert_eq!(upload_state(&status("uploading", None, &[])), "no source");
        assert_eq!(upload_state(&VideoStatus::default()), "no source");
    }

    #[test]
    fn table_escapes_control_characters() {
        let v = Video {
            video_id: "vi1".into(),
            title: Some("a\nb".into()),
            created_at: Some("2026-01-01T00:00:00+00:00".into()),
            ..Default::default()
        };
        let text = table::render(&rows(&[v], &["no source".into()]));
        assert_eq!(
            text,
            "ID   TITLE  CREATED                    UPLOAD\nvi1  a\\nb   2026-01-01T00:00:00+00:00  no source\n"
        );
    }
}
