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
mod emulator;
mod generate;
mod journal_cmds;
mod log_writer;
mod run;
mod token;
mod upload;

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
    /// Say why a file is not uploaded (yet).
    Explain(ExplainArgs),
    /// Upload files now, in the foreground, through the same journal and code path as `run`; exit 1 if any is not uploaded.
    Upload(UploadArgs),
    /// Manage delegated upload tokens with the API key.
    #[command(subcommand)]
    Token(TokenCommand),
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
pub struct ExplainArgs {
    /// The file to explain.
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files to upload.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Options shared by the `token` commands.
#[derive(Debug, Args)]
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

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    // Crash-window tests (issue 5): `FAILPOINTS=name=panic` aborts the whole process at that point.
    #[cfg(feature = "failpoints")]
    let _failpoints = failpoints_setup();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ingestd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(err) => {
            if let Some(exit) = err.downcast_ref::<Exit>() {
                eprintln!("{}", exit.message);
                return ExitCode::from(exit.code);
            }
            eprintln!("ingestd: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Reads `FAILPOINTS` and makes a failpoint's `panic` action abort the process (a kill at an
/// exact point), instead of a panic that the async runtime would catch in one task.
#[cfg(feature = "failpoints")]
fn failpoints_setup() -> fail::FailScenario<'static> {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failpoint ") {
            eprintln!("ingestd: {msg}: aborting the process (FAILPOINTS)");
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
        Command::Upload(args) => upload::run(&cli, args).await,
        Command::Token(cmd) => token::run(&cli, cmd).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Generate(args) => generate::run(args),
    }
}

/// Human logs by default, JSON with `--log-format json`; no ANSI colours under systemd
/// (`JOURNAL_STREAM` set) or when stderr is not a terminal. `RUST_LOG` overrides the level.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::env::var_os("JOURNAL_STREAM").is_none() && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer::Stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
