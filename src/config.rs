//! Configuration: TOML text → [`RawConfig`] (serde, unknown keys rejected) → validated [`Config`].
//!
//! Validation happens once, here; the rest of the program only ever sees a [`Config`] whose values
//! are in range. Every error names the file, line, column and key, and says what to write instead
//! (`F:LINE:COL: …`). `ingestd check-config` prints these and exits 78 (EX_CONFIG).
//!
//! OWNER NOTE (skeleton): the validated types below are the interface the other modules build on.
//! Parsing and validation are filled in by the config work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

/// Default config path when neither `--config` nor `INGESTD_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/ingestd/config.toml";

/// Exit status for configuration errors (sysexits EX_CONFIG); systemd's `RestartPreventExitStatus=78`.
pub const EXIT_CONFIG: u8 = 78;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (for messages and relative lookups).
    pub source: PathBuf,
    pub api: ApiConfig,
    pub journal: JournalConfig,
    pub upload: UploadConfig,
    /// `[[watch]]` roots; may be empty (only `run` needs them).
    pub watch: Vec<WatchConfig>,
    /// Non-fatal findings (e.g. a token file readable by others), printed by `check-config` and logged by `run`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL, e.g. `https://ws.api.video` (no trailing slash).
    pub endpoint: reqwest::Url,
    pub token: TokenSource,
    /// API key file, for `token …` commands and for creating videos first (optional).
    pub api_key_file: Option<PathBuf>,
    /// Allow `http://` to a non-loopback host (default false).
    pub allow_insecure_http: bool,
    /// Extra CA certificate (PEM) to trust, e.g. for a TLS-intercepting proxy.
    pub ca_file: Option<PathBuf>,
    /// TCP+TLS connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Slowest upload rate still considered alive, used to scale per-request timeouts with the
    /// request's length (default 64 KiB/s): timeout = 30 s + len / min_rate.
    pub min_rate: u64,
}

/// Where the delegated upload token comes from. It is read again on SIGHUP and when the file changes.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// `upload_token = "to…"` inline.
    Inline(Secret),
    /// `upload_token_file = "/etc/ingestd/upload-token"`.
    File(PathBuf),
    /// systemd `LoadCredential=upload-token:…` → `$CREDENTIALS_DIRECTORY/upload-token`.
    Credential(PathBuf),
    /// No token configured (fine for `token …` and `emulator`; `run` and `upload` refuse).
    None,
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// SQLite journal path (default `/var/lib/ingestd/journal.sqlite`).
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUploadKind {
    Keep,
    Delete,
    Move,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterUpload {
    Keep,
    Delete,
    /// Move under this directory, keeping the path relative to the watch root.
    Move(PathBuf),
}

#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Concurrent uploads (default 2, 1..=32).
    pub workers: usize,
    /// Chunk size in bytes (default 64 MiB, 5 MiB..=128 MiB). Files up to this size go in one request.
    pub chunk_size: u64,
    /// Total bytes per second across workers; 0 = unlimited (default).
    pub max_rate: u64,
    pub after_upload: AfterUpload,
    /// Cap of the exponential backoff (default 10 min).
    pub retry_max: Duration,
    /// How long SIGTERM waits for an in-flight chunk before aborting it (default 30 s).
    pub shutdown_timeout: Duration,
    /// Video title template when an API key creates the video first; `{stem}`, `{name}`, `{relpath}` (default `{stem}`).
    pub title_template: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// inotify, except on network/FUSE filesystems, which are polled.
    Auto,
    Events,
    Poll,
}

#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Absolute, existing-or-not root directory.
    pub path: PathBuf,
    pub recursive: bool,
    /// Case-insensitive globs matched against the file name.
    pub include: Vec<String>,
    /// Case-insensitive globs matched against file and directory names.
    pub exclude: Vec<String>,
    /// How long (size, mtime, ctime, inode) must stay unchanged (default 10 s).
    pub settle: Duration,
    pub mode: WatchMode,
    /// Poll interval in poll mode (default 30 s).
    pub poll_interval: Duration,
    /// Full reconcile scan interval (default 10 min).
    pub rescan_interval: Duration,
    pub follow_symlinks: bool,
    /// Tags and metadata for videos created with the API key (optional).
    pub tags: Vec<String>,
    pub metadata: Vec<(String, String)>,
}

/// Default include globs (DESIGN §5).
pub const DEFAULT_INCLUDE: &[&str] = &[
    "*.mp4", "*.mov", "*.m4v", "*.mkv", "*.mxf", "*.ts", "*.m2ts", "*.avi", "*.webm",
];
/// Default exclude globs (DESIGN §5).
pub const DEFAULT_EXCLUDE: &[&str] = &[".*", "~*", "*.tmp", "*.part", "*.partial", "*.crdownload"];

/// A configuration error: `file:line:col: message` when the position is known.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the error points into the file.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        match self.position {
            Some((line, col)) => format!("{}:{line}:{col}: {}", self.file.display(), self.message),
            None => format!("{}: {}", self.file.display(), self.message),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, reporting errors against `path`.
    pub fn parse(_text: &str, path: &Path) -> Result<Config, ConfigError> {
        Err(ConfigError {
            file: path.to_owned(),
            position: None,
            message: "configuration parsing is not implemented yet".into(),
        })
    }
}

impl ApiConfig {
    /// Reads the upload token now (token files are re-read on SIGHUP and when they change).
    pub fn read_upload_token(&self) -> Result<Secret, ConfigError> {
        Err(ConfigError {
            file: PathBuf::new(),
            position: None,
            message: "not implemented yet".into(),
        })
    }
}
