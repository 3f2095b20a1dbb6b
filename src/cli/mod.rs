//! Command-line interface: clap definitions and dispatch to one file per command group.
//!
//! This is the binary's edge: commands return `anyhow::Result<ExitCode>`; library modules return
//! their own `thiserror` types. A configuration error exits 78 (EX_CONFIG) everywhere.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, ConfigError};

mod check_config;
mod demo;
mod demo_table;
mod emulator;
mod generate;
mod journal_cmds;
mod keyed;
mod log_fields;
mod log_queue;
mod log_writer;
mod orphans;
mod run;
pub(crate) mod stdout;
mod table;
mod token;
mod upload;
mod videos;

/// Watches folders and uploads every finished video file to api.video with a delegated upload token.
#[derive(Debug, Parser)]
#[command(name = "ingestd", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "INGESTD_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd Type=notify).
    Run,
    /// Parse and validate the configuration; exit 0, or 78 with file:line:col and what to change.
    CheckConfig,
    /// Counts per state and one row per unfinished or failed file, or whose delete/move failed (works while `run` is running).
    Status(StatusArgs),
    /// Put failed files back in the queue.
    Retry(RetryArgs),
    /// Forget files uploaded longer ago than DURATION (files still in place keep a tombstone and are not uploaded again).
    Prune(PruneArgs),
    /// Say why a file is not uploaded (yet).
    Explain(ExplainArgs),
    /// Upload files now, in the foreground, through the same journal and code path as `run`; exit 1 if any is not uploaded.
    Upload(UploadArgs),
    /// Manage delegated upload tokens with the API key.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List, show, update and delete videos with the API key.
    #[command(subcommand)]
    Videos(VideosCommand),
    /// Videos that files left behind (abandoned uploads, possible orphans): list, or delete with --delete.
    Orphans(OrphansArgs),
    /// Run the local api.video-compatible endpoint (does not read --config).
    Emulator(EmulatorArgs),
    /// A self-contained tour on the local endpoint: watches ./ingestd-demo/inbox and uploads what lands there (does not read --config).
    Demo(DemoArgs),
    /// Write man pages and shell completions into a directory (used by packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object (the documented contract) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Include done files.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "failed"]))]
pub struct RetryArgs {
    /// Journal ids of the files to retry (see `ingestd status`).
    pub ids: Vec<i64>,
    /// Retry every failed file.
    #[arg(long)]
    pub failed: bool,
    /// Upload as it is, even if its container is incomplete (`incomplete-container`): to
    /// salvage what a recorder that died left behind. The waiver ends if the file changes.
    #[arg(long)]
    pub anyway: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Prune done files uploaded longer ago than this, e.g. 90d, 12h.
    #[arg(long, value_name = "DURATION")]
    pub done_before: String,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The file to explain.
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files to upload.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Upload as they are, without the container check (a file under a root with
    /// `check_container = true`, or outside every root, is otherwise checked as the daemon
    /// does): to salvage what a recorder that died left behind.
    #[arg(long)]
    pub no_check_container: bool,
}

/// Options shared by the API-key commands (`token`, `videos`, `orphans`).
#[derive(Debug, Args)]
// The URLs below are shown as they are by `--help` (clap), not as rustdoc links.
#[allow(rustdoc::bare_urls)]
pub struct TokenCommon {
    /// API base URL (overrides `api.endpoint`): https://ws.api.video or https://sandbox.api.video.
    #[arg(long)]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortBy {
    #[value(name = "createdAt")]
    CreatedAt,
    #[value(name = "ttl")]
    Ttl,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a delegated upload token. Redirected (`> FILE`), prints the token alone.
    Create {
        #[command(flatten)]
        common: TokenCommon,
        /// Lifetime in seconds, up to 2147483647; 0 = never expires.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2_147_483_647))]
        ttl: u64,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// List active upload tokens.
    List {
        #[command(flatten)]
        common: TokenCommon,
        /// Sort by creation time or lifetime (api.video's default: createdAt).
        #[arg(long, value_enum)]
        sort_by: Option<SortBy>,
        /// Sort order (api.video's default: asc).
        #[arg(long, value_enum)]
        sort_order: Option<SortOrder>,
        /// Page number, from 1.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        page: Option<u32>,
        /// Items per page, 1-100.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        page_size: Option<u32>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one upload token.
    Show {
        #[command(flatten)]
        common: TokenCommon,
        /// The token (`to…`, as `token list` shows it).
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an upload token; uploads with it stop working.
    Delete {
        #[command(flatten)]
        common: TokenCommon,
        /// The token (`to…`, as `token list` shows it).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VideoSortBy {
    #[value(name = "title")]
    Title,
    #[value(name = "createdAt")]
    CreatedAt,
    #[value(name = "publishedAt")]
    PublishedAt,
    #[value(name = "updatedAt")]
    UpdatedAt,
}

/// `KEY=VALUE` of `--metadata`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
pub enum VideosCommand {
    /// List videos, newest last; on a terminal a table, piped one id per line.
    List {
        #[command(flatten)]
        common: TokenCommon,
        /// Only videos whose title contains this text.
        #[arg(long)]
        title: Option<String>,
        /// Only videos with this tag (repeat: all of them).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Only videos with this metadata (repeat: all of them).
        #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = key_value)]
        metadata: Vec<(String, String)>,
        /// Sort key (api.video's default: createdAt).
        #[arg(long, value_enum)]
        sort_by: Option<VideoSortBy>,
        /// Sort order (api.video's default: asc).
        #[arg(long, value_enum)]
        sort_order: Option<SortOrder>,
        /// Page number, from 1.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "all")]
        page: Option<u32>,
        /// Items per page, 1-100 (with --all: per request, default 100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        page_size: Option<u32>,
        /// Follow the pages and list every matching video.
        #[arg(long)]
        all: bool,
        /// Print JSON: the API's page, or with --all an array of every video.
        #[arg(long)]
        json: bool,
    },
    /// Show one video and its upload state.
    Show {
        #[command(flatten)]
        common: TokenCommon,
        /// The video id (`vi…`).
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a video's title, description, tags, metadata or visibility (PATCH).
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["title", "description", "tags", "clear_tags", "metadata", "clear_metadata", "public", "private"]))]
    Update {
        #[command(flatten)]
        common: TokenCommon,
        /// The video id (`vi…`).
        id: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Replace the tags with these (repeat for several).
        #[arg(long = "tag", value_name = "TAG", conflicts_with = "clear_tags")]
        tags: Vec<String>,
        /// Remove every tag.
        #[arg(long)]
        clear_tags: bool,
        /// Replace the metadata with these pairs (repeat for several).
        #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = key_value, conflicts_with = "clear_metadata")]
        metadata: Vec<(String, String)>,
        /// Remove every metadata pair.
        #[arg(long)]
        clear_metadata: bool,
        /// Make the video public.
        #[arg(long, conflicts_with = "private")]
        public: bool,
        /// Make the video private.
        #[arg(long)]
        private: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete videos; asks first on a terminal (--yes skips the question).
    Delete {
        #[command(flatten)]
        common: TokenCommon,
        /// Video ids (`vi…`).
        #[arg(required = true)]
        ids: Vec<String>,
        /// Do not ask (required when standard input is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct OrphansArgs {
    #[command(flatten)]
    pub common: TokenCommon,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Delete the orphan videos (never a file's own video) and mark them resolved in the journal.
    #[arg(long)]
    pub delete: bool,
    /// With --delete: do not ask (required when standard input is not a terminal).
    #[arg(long, short = 'y', requires = "delete")]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Where videos, tokens and state are stored (survives restarts).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The API key the endpoint accepts (default: any non-empty key).
    #[arg(long, env = "INGESTD_EMULATOR_API_KEY")]
    pub api_key: Option<String>,
    /// Per-minute upload request limit answered with 429 like the real service (api.video: 100, sandbox 40); 0 = off.
    #[arg(long, default_value_t = 0)]
    pub upload_limit_per_minute: u32,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Demo directory (config, journal, inbox, endpoint data).
    #[arg(long, default_value = "ingestd-demo")]
    pub dir: PathBuf,
    /// Exit once the sample files are uploaded instead of watching until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// The global `--config`, which `demo` does not read (it writes its own): hidden here so
    /// that `demo --help` does not offer it.
    #[arg(long = "config", id = "config", hide = true, global = true, env = "INGESTD_CONFIG", default_value = config::DEFAULT_PATH)]
    pub ignored_config: PathBuf,
}

/// An error that carries its exit status (e.g. 78 for configuration errors).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

/// Loads the configuration, turning errors into exit 78.
pub fn load_config(cli_path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(cli_path).map_err(|e: ConfigError| {
        Exit {
            code: config::EXIT_CONFIG,
            message: e.to_string(),
        }
        .into()
    })
}

/// Loads the configuration for a command that reads only the journal ([`Config::load_for_journal`]):
/// a problem with the token, API key or CA file is said on stderr as a warning and returned as
/// a line for the command's own output; any other configuration error exits 78.
pub fn load_config_for_journal(
    cli_path: &std::path::Path,
) -> anyhow::Result<(Config, Option<String>)> {
    let (config, problem) = Config::load_for_journal(cli_path).map_err(|e: ConfigError| {
        anyhow::Error::from(Exit {
            code: config::EXIT_CONFIG,
            message: e.to_string(),
        })
    })?;
    let problem = problem.map(|e| {
        format!("{e} (this command reads only the journal; `run` and `upload` refuse to start until it is fixed)")
    });
    if let Some(p) = &problem {
        stdout::errln!("warning: {}", crate::escape::Human(p));
    }
    Ok((config, problem))
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    // Crash-window tests (issue 5): `FAILPOINTS=name=panic` aborts the whole process at that point.
    #[cfg(feature = "failpoints")]
    let _failpoints = failpoints_setup();
    // `--help`, `--version`, `help CMD`: clap's own output, which ignores a failed write.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(stdout::clap_exit(&e)),
    };
    // `demo` writes its log to a file (its table owns the terminal): no colour codes there.
    init_tracing(cli.log_format, matches!(cli.command, Command::Demo(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_error(&format!("ingestd: cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let result = runtime
        .block_on(dispatch(cli))
        .and_then(|code| stdout::finish().map(|()| code).map_err(Into::into));
    // Log lines still queued go out before the final message (a bounded wait).
    log_queue::flush(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(err) => {
            // `| head -1` (exit 0, quietly), `> /dev/full` (exit 1): never a panic.
            if let Some((code, message)) = stdout::exit_for(&err) {
                if let Some(m) = message {
                    print_error(&m);
                }
                return ExitCode::from(code);
            }
            if let Some(exit) = err.downcast_ref::<Exit>() {
                print_error(&exit.message);
                return ExitCode::from(exit.code);
            }
            // A journal emptied or replaced under ingestd: the operator decides (exit 78).
            if let Some(e @ crate::journal::JournalError::NotAJournal { .. }) =
                err.downcast_ref::<crate::journal::JournalError>()
            {
                print_error(&format!("ingestd: {e}"));
                return ExitCode::from(config::EXIT_CONFIG);
            }
            print_error(&format!("ingestd: {err:#}"));
            ExitCode::from(1)
        }
    }
}

/// Writes the final error line to stderr; a broken stderr (closed pipe, full disk) cannot
/// turn an orderly exit into a panic (`eprintln!` would).
fn print_error(message: &str) {
    use std::io::Write;
    if writeln!(std::io::stderr().lock(), "{message}").is_err() {
        crate::metrics::counters::log_write_failed();
    }
}

/// Waits briefly for queued log lines: the daemon's panic hook calls it before exiting
/// ([`crate::daemon::fatal::fatal_panics`]), so the panic's log line gets out if stderr takes it.
pub(crate) fn flush_logs() {
    log_queue::flush(std::time::Duration::from_secs(1));
}

/// Reads `FAILPOINTS` and makes a failpoint's `panic` action abort the process (a kill at an
/// exact point), instead of a panic that the async runtime would catch in one task.
#[cfg(feature = "failpoints")]
fn failpoints_setup() -> fail::FailScenario<'static> {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = crate::daemon::fatal::panic_message(info).unwrap_or("");
        if msg.starts_with("failpoint ") {
            // Lines logged before the failpoint still reach the log (tests look for them).
            log_queue::flush(std::time::Duration::from_millis(500));
            print_error(&format!(
                "ingestd: {msg}: aborting the process (FAILPOINTS)"
            ));
            std::process::abort();
        }
        default_hook(info);
    }));
    fail::FailScenario::setup()
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Run => run::run(&cli).await,
        Command::CheckConfig => check_config::run(&cli),
        Command::Status(args) => journal_cmds::status(&cli, args),
        Command::Retry(args) => journal_cmds::retry(&cli, args),
        Command::Explain(args) => journal_cmds::explain(&cli, args),
        Command::Prune(args) => journal_cmds::prune(&cli, args),
        Command::Upload(args) => upload::run(&cli, args).await,
        Command::Token(cmd) => token::run(&cli, cmd).await,
        Command::Videos(cmd) => videos::run(&cli, cmd).await,
        Command::Orphans(args) => orphans::run(&cli, args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Generate(args) => generate::run(args),
    }
}

/// Human logs by default (control characters in fields escaped), JSON with `--log-format json`
/// (exact: JSON escapes them itself); no ANSI colours under systemd
/// (`JOURNAL_STREAM` set) or when stderr is not a terminal. `RUST_LOG` overrides the level.
fn init_tracing(format: LogFormat, to_file: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi =
        !to_file && std::env::var_os("JOURNAL_STREAM").is_none() && std::io::stderr().is_terminal();
    log_queue::start();
    // Never `eprintln!` about a failed write (tracing's default): that panics when stderr is
    // broken. The writer counts failed lines instead.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer::Stderr)
        .log_internal_errors(false)
        .with_ansi(ansi);
    let _ = match format {
        // Every field and message escaped: a file name cannot forge a line or drive a terminal.
        LogFormat::Human => builder.fmt_fields(log_fields::escaped()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
