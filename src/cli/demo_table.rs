//! The table of `ingestd demo`: every file of the journal with its state, bytes, rate and
//! `videoId`, followed as it changes.
//!
//! On a terminal the table is drawn in place (one line per file, redrawn as bytes and states
//! change; indicatif keeps it at the bottom and writes notes such as "wrote demo-large.mp4"
//! above it). Anything else (a pipe, a file, a test) gets one line per change of a file, an
//! `uploading` line at most every [`PROGRESS_EVERY`]. States and `videoId`s come from the
//! journal, live bytes and rates from the daemon's `/status.json`.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::stdout::{OutputError, outln};
use crate::journal::{FileRow, FileState, Journal};
use crate::metrics::format::size as human_size;

/// How often an `uploading` row is printed again with new bytes (line mode).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How often the journal and the status page are read.
const TICK: Duration = Duration::from_millis(200);

/// Live figures of an upload in flight, from the daemon's `/status.json`.
#[derive(Debug, Clone, Copy)]
struct Live {
    sent: u64,
    rate: f64,
}

/// Where the table goes.
enum Screen {
    /// Not a terminal: one line per change.
    Lines {
        /// Per file id: the last line printed and when.
        last: HashMap<i64, (String, Instant)>,
        header: bool,
    },
    /// A terminal: one bar (a line of text) per file, redrawn in place.
    Live {
        multi: MultiProgress,
        style: ProgressStyle,
        /// The header line, once a file is shown.
        header: Option<ProgressBar>,
        /// By file id, in id order (the journal's order).
        rows: BTreeMap<i64, ProgressBar>,
    },
}

pub struct Table {
    journal: PathBuf,
    status_url: String,
    http: Option<reqwest::Client>,
    screen: Screen,
    /// Notes from other tasks (the sample writer), shown above the table.
    notes: mpsc::UnboundedReceiver<String>,
}

impl Table {
    /// A table on stdout: drawn in place when stdout is a terminal. `notes` are printed above it.
    pub fn new(journal: &Path, status_port: u16, notes: mpsc::UnboundedReceiver<String>) -> Table {
        let screen = if std::io::stdout().is_terminal() {
            Screen::Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                // `wide_msg` cuts a line to the terminal's width: a wrapped line would break the
                // redraw.
                style: ProgressStyle::with_template("{wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                header: None,
                rows: BTreeMap::new(),
            }
        } else {
            Screen::Lines {
                last: HashMap::new(),
                header: false,
            }
        };
        Table {
            journal: journal.to_owned(),
            status_url: format!("http://127.0.0.1:{status_port}/status.json"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .ok(),
            screen,
            notes,
        }
    }

    /// Prints `text` above the table (as a plain line when not on a terminal).
    pub fn note(&self, text: &str) -> Result<(), OutputError> {
        match &self.screen {
            Screen::Live { multi, .. } if multi.println(text).is_ok() => Ok(()),
            _ => outln!("{text}"),
        }
    }

    /// Leaves the table on screen as it is: what is printed next goes below it.
    pub fn finish(&mut self) {
        if let Screen::Live { header, rows, .. } = &mut self.screen {
            for bar in header.iter().chain(rows.values()) {
                bar.finish();
            }
            header.take();
            rows.clear();
        }
    }

    /// Follows changes until every one of `samples` is done or failed (None: until Ctrl-C).
    pub async fn follow(
        &mut self,
        shutdown: &CancellationToken,
        samples: Option<&[PathBuf]>,
    ) -> Result<(), OutputError> {
        loop {
            while let Ok(text) = self.notes.try_recv() {
                self.note(&text)?;
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let live = self.live().await;
            let journal = self.journal.clone();
            let rows = tokio::task::spawn_blocking(move || {
                Journal::open_read_only(&journal)
                    .and_then(|j| j.list(true))
                    .unwrap_or_default()
            })
            .await
            .unwrap_or_default();
            let mut finished = 0;
            for row in &rows {
                self.show(row, live.get(&row.id).copied())?;
                let sample = samples.is_some_and(|s| s.contains(&row.path));
                if sample && matches!(row.state, FileState::Done | FileState::Failed) {
                    finished += 1;
                }
            }
            if samples.is_some_and(|s| finished == s.len()) {
                while let Ok(text) = self.notes.try_recv() {
                    self.note(&text)?;
                }
                return Ok(());
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Bytes and rate of the uploads in flight, by file id (empty if the page does not answer).
    async fn live(&self) -> HashMap<i64, Live> {
        let Some(http) = &self.http else {
            return HashMap::new();
        };
        let Ok(resp) = http.get(&self.status_url).send().await else {
            return HashMap::new();
        };
        let Ok(v) = resp.json::<serde_json::Value>().await else {
            return HashMap::new();
        };
        v["uploading"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| {
                        Some((
                            u["id"].as_i64()?,
                            Live {
                                sent: u["sent"].as_u64()?,
                                rate: u["rate_bytes_per_sec"].as_f64().unwrap_or(0.0),
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn show(&mut self, row: &FileRow, live: Option<Live>) -> Result<(), OutputError> {
        let (state, line) = line(row, live);
        match &mut self.screen {
            Screen::Lines { last, header } => {
                let now = Instant::now();
                if let Some((prev, at)) = last.get(&row.id) {
                    let same_state = prev.contains(&format!(" {state} "));
                    if *prev == line
                        || (row.state == FileState::Uploading
                            && same_state
                            && now - *at < PROGRESS_EVERY)
                    {
                        return Ok(());
                    }
                }
                if !*header {
                    outln!("{}", header_line())?;
                    *header = true;
                }
                outln!("{line}")?;
                last.insert(row.id, (line, now));
            }
            Screen::Live {
                multi,
                style,
                header,
                rows,
            } => {
                if header.is_none() {
                    let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                    bar.set_message(header_line());
                    *header = Some(bar);
                }
                let bar = rows.entry(row.id).or_insert_with(|| {
                    // Rows arrive in id order; one that is older than a row shown goes above it.
                    multi.add(ProgressBar::new(0).with_style(style.clone()))
                });
                bar.set_message(line);
            }
        }
        Ok(())
    }
}

fn header_line() -> String {
    format!(
        "  {:<16} {:<9}  {:<24} {:<12} VIDEO",
        "FILE", "STATE", "BYTES", "RATE"
    )
}

/// The state's name and the table line of `row`.
fn line(row: &FileRow, live: Option<Live>) -> (&'static str, String) {
    let size = row.identity.size;
    let (state, bytes, rate) = match row.state {
        FileState::Uploading => {
            let sent = live.map_or(row.bytes_uploaded, |l| l.sent.max(row.bytes_uploaded));
            let pct = sent * 100 / size.max(1);
            let rate = live
                .filter(|l| l.rate > 0.0)
                .map(|l| {
                    // Display only: `as` saturates a rate too large for u64.
                    #[allow(clippy::cast_possible_truncation)]
                    let rate = l.rate as u64;
                    format!("{}/s", human_size(rate))
                })
                .unwrap_or_default();
            (
                "uploading",
                format!("{} / {} {pct:>3}%", human_size(sent), human_size(size)),
                rate,
            )
        }
        FileState::Done => ("done", human_size(size), String::new()),
        FileState::Failed => (
            "failed",
            human_size(size),
            row.last_error
                .as_deref()
                .map(crate::escape::human)
                .unwrap_or_default(),
        ),
        other => (other.as_str(), human_size(size), String::new()),
    };
    let name = row
        .path
        .file_name()
        .map(|n| crate::escape::human(&n.to_string_lossy()))
        .unwrap_or_default();
    let video = row
        .video_id
        .as_deref()
        .map(|v| format!("videoId {v}"))
        .unwrap_or_default();
    let line = format!("  {name:<16} {state:<9}  {bytes:<24} {rate:<12} {video}");
    (state, line.trim_end().to_owned())
}
