//! Files whose container is not finished (issue 13): a settled file the watcher found incomplete
//! stays `settling` with the reason in `last_error` and the slug [`SLUG`]; unchanged for
//! `incomplete_after`, it becomes `failed` with that reason. `ingestd retry --anyway` sets
//! `container_waived`, which the worker honours until the file changes.

use std::time::Duration;

use rusqlite::params;

use super::ingest::reset_to_settling;
use super::row::path_bytes;
use super::{FileRow, FileState, Journal, JournalError, Observation};

/// The slug of a file waiting or failed because its container is incomplete (api.video does not
/// use it; `crate::watch::container::SLUG` is the same string).
pub const SLUG: &str = "incomplete-container";

const MATCH: &str = "path = ?2 AND state = 'settling'
    AND dev = ?3 AND ino = ?4 AND size = ?5 AND mtime_ns = ?6 AND ctime_ns = ?7";

impl Journal {
    /// [`crate::watch::Sink::incomplete`]: records why each settled file is not queued (rows
    /// still `settling` with exactly this identity). Returns how many rows changed.
    pub fn incomplete_batch(&self, batch: &[(Observation, String)]) -> Result<usize, JournalError> {
        self.scan_tx(|tx, now| {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE files SET last_error = ?8, last_error_slug = '{SLUG}', updated_at = ?1
                 WHERE {MATCH}"
            ))?;
            let mut n = 0;
            for (obs, why) in batch {
                n += exec_matching(&mut st, now, obs, why)?;
            }
            Ok(n)
        })
    }

    /// [`crate::watch::Sink::expired`]: held incomplete files unchanged for `after` become
    /// `failed`, keeping the reason. Returns how many rows changed.
    pub fn expired_batch(
        &self,
        batch: &[Observation],
        after: Duration,
    ) -> Result<usize, JournalError> {
        let suffix = format!(
            " — unchanged for {}: given up; `ingestd retry ID --anyway` uploads it as it is",
            humantime::format_duration(after)
        );
        self.scan_tx(|tx, now| {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE files SET state = 'failed', last_error = coalesce(last_error, '') || ?8,
                    updated_at = ?1
                 WHERE {MATCH} AND last_error_slug = '{SLUG}'"
            ))?;
            let mut n = 0;
            for obs in batch {
                n += exec_matching(&mut st, now, obs, &suffix)?;
            }
            Ok(n)
        })
    }

    /// Whether the operator waived the container check for row `id` (`retry --anyway`).
    pub fn container_waived(&self, id: i64) -> Result<bool, JournalError> {
        self.conn()
            .query_row(
                "SELECT container_waived FROM files WHERE id = ?1",
                [id],
                |r| r.get::<_, bool>(0),
            )
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => JournalError::NotFound { id },
                e => self.err(e),
            })
    }

    /// The worker found the claimed (or queued) file's container incomplete: back to `settling`
    /// with the reason, any started video recorded as abandoned. The watcher's next scan tracks it
    /// again.
    pub fn hold_incomplete(&self, id: i64, reason: &str) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            if !matches!(row.state, FileState::Queued | FileState::Uploading) {
                return Err(JournalError::WrongState {
                    id,
                    state: row.state,
                    expected: "queued or uploading",
                });
            }
            reset_to_settling(c, row, &row.identity, reason, now).map_err(|e| self.err(e))?;
            self.exec(
                c,
                &format!(
                    "UPDATE files SET last_error = ?1, last_error_slug = '{SLUG}' WHERE id = ?2"
                ),
                params![reason, id],
            )
        })
    }

    /// Files settled but waiting because their container is incomplete (the metric
    /// `ingestd_files_incomplete`).
    pub fn count_incomplete(&self) -> Result<u64, JournalError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT count(*) FROM files WHERE state = 'settling' AND last_error_slug = '{SLUG}'"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }
}

/// Runs a statement whose `?1` is now, `?2..=?7` the [`MATCH`] identity of `obs`, and `?8` `extra`.
fn exec_matching(
    st: &mut rusqlite::CachedStatement<'_>,
    now: i64,
    obs: &Observation,
    extra: &str,
) -> rusqlite::Result<usize> {
    let i = &obs.identity;
    st.execute(params![
        now,
        path_bytes(&obs.path),
        i.dev as i64,
        i.ino as i64,
        i.size as i64,
        i.mtime_ns,
        i.ctime_ns,
        extra
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::testutil::*;
    use crate::watch::Sink;

    #[test]
    fn incomplete_holds_then_expires_and_retry_anyway_waives() {
        let f = Fixture::new();
        let j = &f.journal;
        let o = f.write("a.mp4", &[1; 100]);
        j.seen(std::slice::from_ref(&o)).unwrap();
        j.incomplete(&[(o.clone(), "incomplete MP4: no moov box yet".into())])
            .unwrap();
        let row = j.get(1).unwrap().unwrap();
        assert_eq!(row.state, FileState::Settling);
        assert_eq!(row.last_error_slug.as_deref(), Some(SLUG));
        assert_eq!(j.count_incomplete().unwrap(), 1);
        // Another identity is not touched.
        let mut other = o.clone();
        other.identity.size = 99;
        assert_eq!(
            j.expired_batch(&[other], Duration::from_secs(3600))
                .unwrap(),
            0
        );
        j.expired(std::slice::from_ref(&o), Duration::from_secs(3600))
            .unwrap();
        let row = j.get(1).unwrap().unwrap();
        assert_eq!(row.state, FileState::Failed);
        assert!(
            row.last_error
                .unwrap()
                .starts_with("incomplete MP4: no moov box yet — unchanged for 1h")
        );
        assert_eq!(j.count_incomplete().unwrap(), 0);
        assert!(!j.container_waived(1).unwrap());
        j.retry_failed_with(&crate::journal::RetrySelection::Ids(vec![1]), true)
            .unwrap();
        assert!(j.container_waived(1).unwrap());
        assert_eq!(j.get(1).unwrap().unwrap().state, FileState::Queued);
        // A change clears the waiver.
        let changed = f.append("a.mp4", &[2; 100]);
        j.seen(&[changed]).unwrap();
        assert!(!j.container_waived(1).unwrap());
    }

    #[test]
    fn stable_clears_the_reason_and_hold_goes_back_to_settling() {
        let f = Fixture::new();
        let j = &f.journal;
        let o = f.write("a.mp4", &[1; 100]);
        j.seen(std::slice::from_ref(&o)).unwrap();
        j.incomplete(&[(o.clone(), "why".into())]).unwrap();
        j.stable(std::slice::from_ref(&o)).unwrap();
        let row = j.get(1).unwrap().unwrap();
        assert_eq!((row.state, row.last_error), (FileState::Queued, None));
        let row = j.hold_incomplete(1, "incomplete MP4: x").unwrap();
        assert_eq!(row.state, FileState::Settling);
        assert_eq!(row.last_error.as_deref(), Some("incomplete MP4: x"));
        assert_eq!(j.count_incomplete().unwrap(), 1);
    }
}
