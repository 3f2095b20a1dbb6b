//! Configuration: TOML text → [`RawConfig`] (serde, unknown keys rejected) → validated [`Config`].
//!
//! Validation happens once, here; the rest of the program only ever sees a [`Config`] whose values
//! are in range. Every error names the file, line, column and key, and says what to write instead
//! (`F:LINE:COL: …`). `ingestd check-config` prints these and exits 78 (EX_CONFIG).
//!
//! Layout: [`raw`] (serde types) → `validate` (ranges, paths, overlaps, token source), with
//! [`units`] (sizes, rates, durations), [`keys`] (every key, for suggestions), [`errors`] (toml
//! errors → helpful messages), [`position`] (offset → line:col), [`paths`] and [`token`].
//!
//! Loading checks that a configured `upload_token_file`/`api_key_file` exists and is readable (and
//! that the token file is not empty) unless [`LoadOptions::check_files`] is false; a secret file
//! with a mode wider than 0600 gives a warning in [`Config::warnings`].

use crate::escape::Show as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

pub mod errors;
pub mod keys;
pub mod paths;
pub mod position;
pub mod raw;
pub mod timetable;
pub mod token;
pub mod units;
mod validate;

pub use raw::RawConfig;

/// Default values of keys that are left out.
pub mod defaults {
    use std::time::Duration;

    pub const ENDPOINT: &str = "https://ws.api.video";
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MIN_RATE: u64 = 64 * 1024;
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const JOURNAL_PATH: &str = "/var/lib/ingestd/journal.sqlite";
    pub const WORKERS: usize = 2;
    /// Chunks of one file in flight at once (after its first request).
    pub const LANES_PER_FILE: usize = 1;
    /// Upload connections at once: workers × lanes is capped by it.
    pub const MAX_CONNECTIONS: usize = 8;
    pub const CHUNK_SIZE: u64 = 64 << 20;
    /// api.video: every chunk but the last must be at least 5 MiB.
    pub const MIN_CHUNK: u64 = 5 << 20;
    /// The official clients' maximum (api.video accepts up to 200 MiB per request).
    pub const MAX_CHUNK: u64 = 128 << 20;
    pub const RETRY_MAX: Duration = Duration::from_secs(600);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const TITLE_TEMPLATE: &str = "{stem}";
    pub const SETTLE: Duration = Duration::from_secs(10);
    pub const POLL_INTERVAL: Duration = Duration::from_secs(30);
    pub const RESCAN_INTERVAL: Duration = Duration::from_secs(600);
    pub const INCOMPLETE_AFTER: Duration = Duration::from_secs(3600);
}

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
    /// `[metrics]`: the Prometheus `/metrics` and status page listener (optional).
    pub metrics: Option<MetricsConfig>,
    /// Non-fatal findings (e.g. a token file readable by others), printed by `check-config` and logged by `run`.
    pub warnings: Vec<String>,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `listen = "127.0.0.1:9184"`.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL, e.g. `https://ws.api.video`. Its path always ends with `/` (`https://ws.api.video/`),
    /// so `endpoint.join("upload")` works with a path prefix too; no query, fragment or user.
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
    /// request's length (default 64 KiB/s): timeout = request_timeout + len / min_rate.
    pub min_rate: u64,
    /// Fixed part of every request timeout (default 30 s): how long an endpoint that accepted a
    /// connection may stay silent before the request is abandoned and retried.
    pub request_timeout: Duration,
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
    /// Done rows older than this are pruned (hourly); `None` (the default) keeps them forever.
    pub keep_done: Option<Duration>,
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

/// The content hash kept as each file's receipt (`upload.hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    /// BLAKE3 (default): about 5× cheaper than SHA-256; checked with `b3sum`.
    #[default]
    Blake3,
    /// SHA-256: checked with `sha256sum`; the local endpoint reports it too.
    Sha256,
}

impl HashAlgorithm {
    /// The name used in config, receipts (`blake3:HEX`) and `status --json` keys.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Blake3 => "blake3",
            HashAlgorithm::Sha256 => "sha256",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Concurrent uploads (default 2, 1..=32).
    pub workers: usize,
    /// Chunks of one file in flight at once on separate connections, once its `videoId` is
    /// known (default 1, 1..=16); see [`UploadConfig::lanes`].
    pub lanes_per_file: usize,
    /// Upload connections at once (default 8, 1..=64): workers × lanes is capped by it.
    pub max_connections: usize,
    /// Chunk size in bytes (default 64 MiB, 5 MiB..=128 MiB). Files up to this size go in one request.
    pub chunk_size: u64,
    /// Total bytes per second across workers, flat or a weekly timetable (rclone's `--bwlimit`
    /// syntax); a flat 0 = unlimited (default).
    pub max_rate: timetable::RateTable,
    pub after_upload: AfterUpload,
    /// Cap of the exponential backoff (default 10 min).
    pub retry_max: Duration,
    /// How long SIGTERM waits for an in-flight chunk before aborting it (default 30 s).
    pub shutdown_timeout: Duration,
    /// Video title template when an API key creates the video first; `{stem}`, `{name}`, `{relpath}` (default `{stem}`).
    pub title_template: String,
    /// The content hash of the receipt (default BLAKE3).
    pub hash: HashAlgorithm,
}

impl UploadConfig {
    /// Lanes per file in effect: `lanes_per_file`, capped so that workers × lanes stays within
    /// `max_connections` (at least 1).
    pub fn lanes(&self) -> usize {
        let per_worker = (self.max_connections / self.workers.max(1)).max(1);
        self.lanes_per_file.clamp(1, per_worker)
    }
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
    /// With `follow_symlinks`, also follow links whose target is outside every watch root
    /// (default false: such links are skipped, so a link cannot expose any file the daemon can
    /// read).
    pub follow_symlinks_outside: bool,
    /// Check MP4/MOV, MKV/WebM and MPEG-TS structure before queueing a settled file (default
    /// true; false = settle only).
    pub check_container: bool,
    /// A file still incomplete and unchanged this long becomes `failed` (default 1 h).
    pub incomplete_after: Duration,
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
            Some((line, col)) => format!("{}:{line}:{col}: {}", self.file.shown(), self.message),
            None => format!("{}: {}", self.file.shown(), self.message),
        }
    }
}

fn endpoint_host(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// How [`Config::load_with`] treats the environment and secret files.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`); its `upload-token` is the token when
    /// neither `upload_token` nor `upload_token_file` is set.
    pub credentials_directory: Option<PathBuf>,
    /// Check that `upload_token_file` exists, is readable and not empty, that `api_key_file`
    /// and `ca_file` exist and are readable. True for `check-config`, `run` and `upload`; the
    /// `token …` commands may turn it off (the token file may not exist before `token create`).
    pub check_files: bool,
}

impl LoadOptions {
    /// From the process environment, checking files.
    pub fn from_env() -> LoadOptions {
        LoadOptions {
            credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            check_files: true,
        }
    }
}

impl Config {
    /// Reads and validates the file at `path` ([`LoadOptions::from_env`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &LoadOptions::from_env())
    }

    /// Like [`Config::load`] but without checking that token, API key and CA files exist: for the
    /// `token …` commands, which may run before the upload token file is created
    /// (`ingestd token create > /etc/ingestd/upload-token` truncates it before ingestd starts).
    pub fn load_lenient(path: &Path) -> Result<Config, ConfigError> {
        let opts = LoadOptions {
            check_files: false,
            ..LoadOptions::from_env()
        };
        Self::load_with(path, &opts)
    }

    /// For the commands that only read the journal (`status`, `explain`, `retry`): like
    /// [`Config::load`], but a problem with a file the configuration names and these commands
    /// never read (the upload token file empty, unreadable or holding no token; the API key or
    /// CA file missing) does not stop them: the configuration is loaded without checking those
    /// files, and the problem comes back beside it, for the command to show as a warning. An
    /// operator debugging an emptied or revoked token needs `status` most.
    pub fn load_for_journal(path: &Path) -> Result<(Config, Option<ConfigError>), ConfigError> {
        match Self::load(path) {
            Ok(config) => Ok((config, None)),
            // Everything but those files is valid: the strict error is about one of them.
            Err(problem) => Self::load_lenient(path).map(|config| (config, Some(problem))),
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            message: match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "cannot read the configuration file: {e}; pass the right one with --config or INGESTD_CONFIG (config.example.toml documents every key)"
                ),
                _ => format!(
                    "cannot read the configuration file: {e}; make it readable by the user ingestd runs as"
                ),
            },
        })?;
        Self::parse_with(&text, path, opts)
    }

    /// Parses and validates `text`, reporting errors against `path` ([`LoadOptions::from_env`]).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, &LoadOptions::from_env())
    }

    /// Parses and validates `text`, reporting errors against `path`.
    pub fn parse_with(text: &str, path: &Path, opts: &LoadOptions) -> Result<Config, ConfigError> {
        let cx = errors::Ctx { file: path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| cx.from_toml(&e))?;
        validate::validate(raw, cx, opts)
    }

    /// One line for `check-config`: roots, workers, chunk size, endpoint host, token source.
    pub fn summary(&self) -> String {
        let roots = match self.watch.len() {
            1 => "1 watch root".to_owned(),
            n => format!("{n} watch roots"),
        };
        let rate = if self.upload.max_rate == 0 {
            String::new()
        } else {
            format!(", max_rate {}", self.upload.max_rate)
        };
        format!(
            "{roots}, {} workers, chunk size {}{rate}, endpoint {}, token: {}",
            self.upload.workers,
            units::format_size(self.upload.chunk_size),
            endpoint_host(&self.api.endpoint),
            self.api.token_source_label()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> LoadOptions {
        LoadOptions {
            credentials_directory: None,
            check_files: false,
        }
    }

    /// Any error's position lies inside the text (line ≤ number of lines + 1).
    fn check(text: &str) -> Result<(), TestCaseError> {
        if let Err(e) = Config::parse_with(text, Path::new("p.toml"), &opts()) {
            if let Some((line, col)) = e.position {
                prop_assert!(line >= 1 && col >= 1);
                prop_assert!(line <= text.lines().count() + 1, "{e} for {text:?}");
            }
            prop_assert!(!e.message.is_empty());
        }
        Ok(())
    }

    fn line() -> impl Strategy<Value = String> {
        let sections = prop::sample::select(vec![
            "[api]",
            "[journal]",
            "[upload]",
            "[[watch]]",
            "[metrics]",
            "[x]",
            "",
        ]);
        let mut names: Vec<&str> = keys::SECTIONS
            .iter()
            .chain(keys::API)
            .chain(keys::UPLOAD)
            .chain(keys::WATCH)
            .chain(keys::METRICS)
            .map(|k| k.name)
            .collect();
        names.extend(["chunksize", "path", "zz", "\"quoted\"", "a.b"]);
        let keys = prop::sample::select(names);
        let values = prop::sample::select(vec![
            "\"64 MiB\"",
            "\"1 MiB\"",
            "5",
            "-1",
            "0",
            "true",
            "\"/srv/a\"",
            "\"/srv/a/b\"",
            "\"rel\"",
            "\"\"",
            "[]",
            "[\"*.mp4\"]",
            "[\"[\"]",
            "[1, 2]",
            "{}",
            "{ a = 1 }",
            "{ a = \"b\" }",
            "1.5",
            "\"http://h\"",
            "\"https://h\"",
            "\"10s\"",
            "\"0s\"",
            "\"move\"",
            "\"poll\"",
            "1979-05-27",
            "\"127.0.0.1:1\"",
            "\"{stem}\"",
            "\"{x\"",
        ]);
        (sections, keys, values).prop_map(|(s, k, v)| format!("{s}\n{k} = {v}"))
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,120}") {
            check(&text)?;
        }

        #[test]
        fn config_like_text_never_panics(lines in prop::collection::vec(line(), 0..10)) {
            check(&lines.join("\n"))?;
        }
    }
}
