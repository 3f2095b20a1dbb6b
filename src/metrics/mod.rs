//! Prometheus metrics and the status page, served on `[metrics] listen` by `ingestd run`.
//!
//! - [`counters`]: what the upload workers count (bytes, outcomes, retries), via
//!   [`Counters`] in the `WorkerContext`.
//! - [`snapshot`]: one read of the journal, token gate, board, roots and kernel ([`Sources`]).
//! - [`exposition`]: `/metrics` with the official `prometheus-client` crate.
//! - [`page`]: the read-only HTML status page (no external assets, refreshes every 2 s).
//! - [`reason`]: the short `explain`-style reason per unfinished file.
//! - [`server`]: the axum routes; [`listener`]: the accept loop (connection cap, timeouts,
//!   descriptor reserve); [`guard`]: the `Host` check and security headers.
//! - [`sys`]: statvfs and the inotify limit.

pub mod counters;
pub mod exposition;
pub(crate) mod format;
pub mod guard;
pub mod listener;
pub mod page;
pub mod reason;
pub mod server;
pub mod snapshot;
pub mod sys;

pub use counters::{Counters, RetryKind, UploadOutcome};
pub use snapshot::{Snapshot, Sources};
