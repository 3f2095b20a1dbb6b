//! `ingestd status`, `retry`, `explain`: read and edit the journal (works while `run` holds it).
//!
//! - [`status`](status()) prints counts, the token verdict and one row per unfinished file, as
//!   a table or as the JSON object of DESIGN §5 (`status.rs`);
//! - [`retry`] puts failed files back in the queue;
//! - [`explain`](mod@explain) says why a file is not uploaded yet (`explain.rs`).

use crate::cli::stdout::outln;
use crate::escape::Show as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::{Cli, RetryArgs, load_config_for_journal};
use crate::config::{Config, TokenSource};
use crate::journal::{Journal, JournalError, RetrySelection};

mod explain;
mod prune;
mod status;

pub use explain::explain;
pub use prune::prune;
pub use status::status;

/// `ingestd retry ID…|--failed`.
pub fn retry(cli: &Cli, args: &RetryArgs) -> anyhow::Result<ExitCode> {
    // `retry` needs the journal only: a token file problem is a warning (on stderr), and the
    // daemon takes the retried files once its token works.
    let (config, _problem) = load_config_for_journal(&cli.config)?;
    let path = &config.journal.path;
    let journal = match Journal::open_existing(path) {
        Err(e @ JournalError::Missing { .. }) if args.failed => {
            outln!("{e}; nothing to retry")?;
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    let selection = if args.failed {
        RetrySelection::AllFailed
    } else {
        RetrySelection::Ids(args.ids.clone())
    };
    let before: Vec<_> = match &selection {
        RetrySelection::Ids(ids) => ids
            .iter()
            .filter_map(|id| journal.get(*id).transpose())
            .collect::<Result<_, _>>()?,
        RetrySelection::AllFailed => {
            let mut failed = Vec::new();
            journal.for_each_file(false, |r| {
                if r.state == crate::journal::FileState::Failed {
                    failed.push(r);
                }
                true
            })?;
            failed
        }
    };
    let outcome = match journal.retry_failed_with(&selection, args.anyway) {
        Err(JournalError::NotFound { id }) => {
            return Err(super::Exit {
                code: 1,
                message: format!(
                    "no file #{id} in {}: `ingestd status --all` lists the ids; nothing was changed",
                    path.shown()
                ),
            }
            .into());
        }
        other => other.with_context(|| format!("retry in {}", path.shown()))?,
    };
    for row in &outcome.requeued {
        let was = before.iter().find(|b| b.id == row.id);
        let why = was
            .and_then(|b| b.last_error.as_deref())
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        let anyway = if args.anyway {
            " — uploaded as it is (container check waived)"
        } else if was.and_then(|b| b.last_error_slug.as_deref())
            == Some(crate::watch::container::SLUG)
        {
            " — its container is re-checked before upload; `--anyway` uploads it as it is"
        } else {
            ""
        };
        outln!(
            "#{} queued again: {}{anyway}",
            row.id,
            crate::escape::Human(format_args!("{}{why}", row.path.shown()))
        )?;
    }
    for (id, state) in &outcome.skipped {
        outln!("#{id} is {state}: nothing to retry")?;
    }
    if outcome.requeued.is_empty() && outcome.skipped.is_empty() {
        outln!("no failed files")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339 UTC, e.g. `2026-11-28T04:47:06.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// `3m 12s`-style duration, rounded to seconds.
pub(crate) fn human_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// What to do about a rejected token (or API key), for the way this configuration holds it.
pub(crate) fn token_advice(config: &Config, reason: Option<&str>) -> String {
    if reason.is_some_and(|r| r.starts_with("API key rejected")) {
        return "fix api.api_key_file, then `systemctl reload ingestd` (SIGHUP)".into();
    }
    match &config.api.token {
        TokenSource::File(path) => format!(
            "write a new token into {} (ingestd re-reads it within 2 s)",
            path.shown()
        ),
        TokenSource::Inline(_) => format!(
            "set a new upload_token in {}, then `systemctl reload ingestd` (SIGHUP)",
            config.source.shown()
        ),
        // The systemd credential: copied only when the service starts.
        TokenSource::Credential(_) | TokenSource::None => {
            "write a new token into /etc/ingestd/upload-token (the unit's LoadCredential= file), then `systemctl restart ingestd`".into()
        }
    }
}

pub(crate) use crate::metrics::format::{attempt_suffix, last_error};

/// `1.5 GiB`-style size (the status page's format).
pub(crate) use crate::metrics::format::size as human_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_duration(Duration::from_millis(192_700)), "3m 12s");
        assert_eq!(attempt_suffix(0), "");
        assert_eq!(attempt_suffix(3), " (attempt 3)");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)),
            "1970-01-01T00:00:01.5Z"
        );
    }
}
