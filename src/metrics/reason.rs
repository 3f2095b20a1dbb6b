//! The one-line reason the status page gives for an unfinished file: the short form of what
//! `ingestd explain` says (state, last error, next attempt, resume offset, token pause).

use std::time::SystemTime;

use super::format::{attempt_suffix, last_error, rfc3339, size};
use crate::journal::{FileRow, FileState};

/// Why `row` is not uploaded (yet). `paused`: the upload token was rejected.
pub fn reason(row: &FileRow, paused: bool, now: SystemTime) -> String {
    let error = last_error(row);
    let mut text = match row.state {
        FileState::Settling => match row
            .last_error
            .as_deref()
            .filter(|_| row.last_error_slug.as_deref() == Some(crate::watch::container::SLUG))
        {
            Some(why) => format!("settling: {why}; checked again when the file changes"),
            None => "settling: waiting until the file stops changing (settle time)".to_owned(),
        },
        FileState::Queued => match row.next_attempt_at.filter(|t| *t > now) {
            Some(t) => format!(
                "waiting for retry at {}{}{}",
                rfc3339(t),
                attempt_suffix(row.attempts),
                error
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
            None => "queued: waiting for a free worker".to_owned(),
        },
        FileState::Uploading => format!(
            "uploading: {} of {} acknowledged",
            size(row.bytes_uploaded),
            size(row.identity.size)
        ),
        FileState::Failed => format!(
            "failed: {}; fix the cause, then run `ingestd retry {}`",
            error.unwrap_or_else(|| "no error recorded".into()),
            row.id
        ),
        FileState::Done => "uploaded".to_owned(),
        FileState::Gone => "disappeared".to_owned(),
    };
    if row.state == FileState::Queued && row.bytes_uploaded > 0 {
        text.push_str(&format!(
            "; resumes at {} of {}",
            size(row.bytes_uploaded),
            size(row.identity.size)
        ));
    }
    if let Some(v) = &row.video_id
        && matches!(row.state, FileState::Queued | FileState::Uploading)
    {
        text.push_str(&format!(" (videoId {v})"));
    }
    if paused {
        text.push_str("; uploads are paused: the upload token was rejected");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::journal::FileIdentity;

    fn row(state: FileState) -> FileRow {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        FileRow {
            id: 7,
            path: "/r/a.mp4".into(),
            root: "/r".into(),
            identity: FileIdentity {
                dev: 1,
                ino: 2,
                size: 2048,
                mtime_ns: 0,
                ctime_ns: 0,
            },
            state,
            changed_at: t,
            queued_at: Some(t),
            video_id: None,
            chunk_size: None,
            bytes_uploaded: 0,
            first_chunk_in_flight: false,
            first_body_sent: false,
            content_hash: None,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            last_error_slug: None,
            created_at: t,
            updated_at: t,
            done_at: None,
            after_upload: None,
            claimed_by: None,
            adopted_at: None,
        }
    }

    #[test]
    fn settling_incomplete_says_why() {
        let mut r = row(FileState::Settling);
        r.last_error = Some("incomplete MP4: no moov box yet".into());
        r.last_error_slug = Some(crate::watch::container::SLUG.into());
        assert_eq!(
            reason(&r, false, SystemTime::now()),
            "settling: incomplete MP4: no moov box yet; checked again when the file changes"
        );
    }

    #[test]
    fn failed_names_the_error_and_the_fix() {
        let mut r = row(FileState::Failed);
        r.last_error = Some("400 Bad Request".into());
        r.last_error_slug = Some("invalid-file".into());
        let text = reason(&r, false, SystemTime::now());
        assert_eq!(
            text,
            "failed: invalid-file: 400 Bad Request; fix the cause, then run `ingestd retry 7`"
        );
    }

    #[test]
    fn waiting_for_retry_shows_when_and_why_and_the_pause() {
        let mut r = row(FileState::Queued);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        r.next_attempt_at = Some(now + Duration::from_secs(60));
        r.attempts = 3;
        r.last_error = Some("503".into());
        r.bytes_uploaded = 1024;
        r.video_id = Some("vi1".into());
        let text = reason(&r, true, now);
        assert!(
            text.starts_with(
                "waiting for retry at 2027-01-15T08:01:00Z (attempt 3); last error: 503"
            ),
            "{text}"
        );
        assert!(
            text.contains("resumes at 1.0 KiB of 2.0 KiB (videoId vi1)"),
            "{text}"
        );
        assert!(text.ends_with("the upload token was rejected"), "{text}");
    }

    #[test]
    fn queued_and_settling() {
        let now = SystemTime::now();
        assert_eq!(
            reason(&row(FileState::Queued), false, now),
            "queued: waiting for a free worker"
        );
        assert!(reason(&row(FileState::Settling), false, now).starts_with("settling"));
    }
}
