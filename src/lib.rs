//! ingestd watches folders and uploads every finished video file to api.video with a delegated
//! upload token, exactly once, resuming after crashes. See `ARCHITECTURE.md` for the map.
//!
//! # Layout
//! - [`cli`]: clap definitions and one file per command (the binary's edge; `anyhow` lives here only).
//! - [`config`]: TOML → validated [`config::Config`]; every error names file:line:col and key.
//! - [`secret`]: redaction of upload tokens and API keys; [`escape`]: control characters and bidi
//!   overrides made visible in human output.
//! - [`api`]: the api.video client (auth, upload tokens, videos, token uploads), shared by daemon and CLI.
//! - [`emulator`]: the local api.video-compatible endpoint for offline use and tests.
//! - [`journal`]: the SQLite journal, the only owner of the database; the truth about every file.
//! - [`watch`]: notify bridge, scans, settle check; feeds the journal.
//! - [`upload`]: worker pool, chunk planning, retry classes, rate limit.
//! - [`metrics`]: Prometheus `/metrics` and the status page on `[metrics] listen`.
//! - [`daemon`]: wiring of watcher, workers, signals and sd_notify under one cancellation token.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod emulator;
pub mod escape;
pub mod journal;
pub mod metrics;
pub mod secret;
pub mod upload;
pub mod watch;
