//! The upload side's transitions. Each method is one transaction and returns the row as it is
//! afterwards.
//!
//! A worker's life with a row:
//! 1. at process start, [`Journal::reclaim_interrupted`] (claims of dead processes → `queued`);
//! 2. [`Journal::claim_next`] (or [`Journal::claim`] for `ingestd upload`) → `uploading`,
//!    claimed by this process;
//! 3. check the file's identity against `row.identity`; changed →
//!    [`Journal::reset_for_new_video`] and move on;
//! 4. [`Journal::start_upload`] fixes the chunk size (kept if already set: resume);
//! 5. without a `videoId`: [`Journal::mark_first_chunk_in_flight`] before sending the first
//!    request, [`Journal::commit_video_id`] after its 2xx (or after `POST /videos`);
//! 6. [`Journal::commit_offset`] after each chunk's 2xx, before reading the next;
//! 7. [`Journal::mark_done`] after the last chunk and the re-stat; then
//!    [`Journal::record_after_upload`];
//! 8. on errors: [`Journal::schedule_retry`], [`Journal::mark_failed`], [`Journal::mark_gone`]
//!    (file vanished), or [`Journal::requeue`] on shutdown; [`Journal::set_token_state`] on a 401.
//!
//! Progress commits require the row to be `uploading` and claimed by this process. If the watcher
//! moved it back to `settling` (the file changed) they fail with [`JournalError::WrongState`]:
//! the worker must drop the file (the journal already recorded the abandoned `videoId`).

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::ingest::{abandon, note_gone_video, reset_to_settling};
use super::row::{FileRow, add_note, file_columns, from_unix_ms, get_row, now_ms, to_unix_ms};
use super::{FileIdentity, FileState, Journal, JournalError, owner};

/// Which files `ingestd retry` puts back in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrySelection {
    /// These ids; an unknown id is an error and nothing changes.
    Ids(Vec<i64>),
    /// Every failed file.
    AllFailed,
}

/// What [`Journal::retry_failed`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryOutcome {
    /// Rows now `queued` (failed ones, and queued ones whose retry wait was cleared).
    pub requeued: Vec<FileRow>,
    /// Ids left alone, with their state (not failed, nor waiting for a retry).
    pub skipped: Vec<(i64, FileState)>,
}

impl Journal {
    /// Runs `f` on row `id` in one IMMEDIATE transaction; returns the row afterwards.
    pub(super) fn transition<F>(&self, id: i64, f: F) -> Result<FileRow, JournalError>
    where
        F: FnOnce(&Connection, &FileRow, i64) -> Result<(), JournalError>,
    {
        let row = self.immediate(|tx, now| {
            let row = self.row_in(tx, id)?;
            f(tx, &row, now)?;
            self.row_in(tx, id)
        })?;
        if row.state == FileState::Queued {
            // Requeued, or a retry scheduled: idle workers recompute when to look again.
            self.work_changed();
        }
        Ok(row)
    }

    /// Runs `f` in one IMMEDIATE transaction, with the current time (Unix ms), and commits it.
    pub(super) fn immediate<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>, i64) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let out = f(&tx, now_ms())?;
        tx.commit().map_err(|e| self.err(e))?;
        self.note_write_ok();
        Ok(out)
    }

    /// Row `id` as `c` sees it; [`JournalError::NotFound`] if there is none.
    pub(super) fn row_in(&self, c: &Connection, id: i64) -> Result<FileRow, JournalError> {
        get_row(c, id)
            .map_err(|e| self.err(e))?
            .ok_or(JournalError::NotFound { id })
    }

    /// Runs one UPDATE inside a transition.
    pub(super) fn exec(
        &self,
        c: &Connection,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<(), JournalError> {
        c.prepare_cached(sql)
            .and_then(|mut st| st.execute(p))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The row must be `uploading` and claimed by this process.
    pub(super) fn require_claimed(&self, row: &FileRow) -> Result<(), JournalError> {
        if row.state == FileState::Uploading
            && row.claimed_by.as_deref() == Some(self.inner.owner.as_str())
        {
            Ok(())
        } else {
            Err(JournalError::WrongState {
                id: row.id,
                state: row.state,
                expected: "uploading (claimed by this process)",
            })
        }
    }

    /// [`Self::require_claimed`], and no `videoId` yet (`why` says what a `videoId` forbids).
    pub(super) fn require_claimed_without_video(
        &self,
        row: &FileRow,
        why: &str,
    ) -> Result<(), JournalError> {
        self.require_claimed(row)?;
        match row.video_id {
            Some(_) => Err(JournalError::Invalid {
                id: row.id,
                message: why.into(),
            }),
            None => Ok(()),
        }
    }

    /// Claims the next file to upload: the `queued` row first queued whose `next_attempt_at` is
    /// unset or `<= now`, → `uploading`, claimed by this process. `None` if nothing is due. Does
    /// not look at the token state: a worker checks [`Journal::token_state`] itself.
    pub fn claim_next(&self, now: SystemTime) -> Result<Option<FileRow>, JournalError> {
        // An explicit transaction, never autocommit: an `UPDATE … RETURNING` read with one step
        // commits only when the statement is reset, and an error there (a full disk) is lost.
        // The worker would then upload a row the journal never recorded as claimed, and every
        // later commit would find it `queued` ("the file changed while it was uploading").
        let row = self.immediate(|tx, ms| {
            tx.prepare_cached(concat!(
                "UPDATE files SET state = 'uploading', claimed_by = ?1, updated_at = ?2
                 WHERE id = (SELECT id FROM files
                             WHERE state = 'queued'
                               AND (next_attempt_at IS NULL OR next_attempt_at <= ?3)
                             ORDER BY queued_at, id LIMIT 1)
                 RETURNING ",
                file_columns!()
            ))
            .and_then(|mut st| {
                st.query_row(
                    params![self.inner.owner, ms, to_unix_ms(now)],
                    FileRow::from_sql,
                )
                .optional()
            })
            .map_err(|e| self.err(e))
        })?;
        Ok(row)
    }

    /// When the next `queued` row becomes due: the earliest `next_attempt_at` (a row without one
    /// is due at once, reported as the Unix epoch). `None` when nothing is queued. Idle workers
    /// sleep until then (or until [`Journal::work_signal`] / another process wakes them).
    pub fn next_due(&self) -> Result<Option<SystemTime>, JournalError> {
        let conn = self.conn();
        conn.prepare_cached(
            "SELECT min(coalesce(next_attempt_at, 0)) FROM files WHERE state = 'queued'",
        )
        .and_then(|mut st| st.query_row([], |r| r.get::<_, Option<i64>>(0)))
        .map(|ms| ms.map(from_unix_ms))
        .map_err(|e| self.err(e))
    }

    /// Claims one given `queued` row now, ignoring its retry wait (`ingestd upload FILE`).
    pub fn claim(&self, id: i64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            if row.state != FileState::Queued {
                return Err(JournalError::WrongState {
                    id,
                    state: row.state,
                    expected: "queued",
                });
            }
            self.exec(
                c,
                "UPDATE files SET state = 'uploading', claimed_by = ?1, updated_at = ?2 WHERE id = ?3",
                params![self.inner.owner, now, id],
            )
        })
    }

    /// At process start: rows left `uploading` by a process that is no longer running become
    /// `queued` again, keeping `video_id`, `chunk_size` and `bytes_uploaded` (they resume). A row
    /// whose first chunk was in flight without a committed `videoId` gets a possible-orphan note
    /// and starts over. Claims of live processes (e.g. `ingestd run` while `ingestd upload`
    /// starts) are left alone. Returns the reclaimed rows.
    pub fn reclaim_interrupted(&self) -> Result<Vec<FileRow>, JournalError> {
        let out = self.immediate(|tx, now| {
            let stale: Vec<FileRow> = tx
                .prepare(concat!(
                    "SELECT ",
                    file_columns!(),
                    " FROM files WHERE state = 'uploading'"
                ))
                .and_then(|mut st| {
                    st.query_map([], FileRow::from_sql)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| self.err(e))?
                .into_iter()
                .filter(|r| !r.claimed_by.as_deref().is_some_and(owner::is_alive))
                .collect();
            let mut out = Vec::with_capacity(stale.len());
            for row in stale {
                if row.possible_orphan() {
                    abandon(tx, &row, "the process stopped", now).map_err(|e| self.err(e))?;
                }
                self.exec(
                    tx,
                    "UPDATE files SET state = 'queued', claimed_by = NULL, first_chunk_in_flight = 0, first_body_sent = 0,
                        updated_at = ?1 WHERE id = ?2",
                    params![now, row.id],
                )?;
                out.push(self.row_in(tx, row.id)?);
            }
            Ok(out)
        })?;
        if !out.is_empty() {
            self.work_changed();
        }
        Ok(out)
    }

    /// Fixes the chunk size for this upload. If one is already stored (a resumed upload) it is
    /// kept and the argument ignored: use the returned `row.chunk_size`.
    pub fn start_upload(&self, id: i64, chunk_size: u64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            self.exec(
                c,
                "UPDATE files SET chunk_size = coalesce(chunk_size, ?1), updated_at = ?2 WHERE id = ?3",
                params![chunk_size as i64, now, id],
            )
        })
    }

    /// Before sending the first request of an upload without a `videoId`: if the process dies
    /// before [`Journal::commit_video_id`], the video it may have created is reported as a
    /// possible orphan.
    pub fn mark_first_chunk_in_flight(&self, id: i64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed_without_video(
                row,
                "already has a videoId; every later request must carry it",
            )?;
            self.exec(
                c,
                "UPDATE files SET first_chunk_in_flight = 1, first_body_sent = 0, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// Just before the last piece of the first request's body is handed to the connection: from
    /// now on the endpoint may complete it, so a missing answer means a possible orphan.
    pub fn mark_first_body_sent(&self, id: i64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            if !row.first_chunk_in_flight || row.video_id.is_some() {
                return Err(JournalError::Invalid {
                    id,
                    message: "no first request in flight".into(),
                });
            }
            self.exec(
                c,
                "UPDATE files SET first_body_sent = 1, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// The first request failed before reaching the endpoint (DNS, connection refused): it cannot
    /// have created a video, so the first-chunk-in-flight mark is cleared (no false orphan).
    pub fn clear_first_chunk_in_flight(&self, id: i64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            self.exec(
                c,
                "UPDATE files SET first_chunk_in_flight = 0, first_body_sent = 0, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// Commits the `videoId` (from the first chunk's response or `POST /videos`) and clears the
    /// first-chunk-in-flight mark. Committing a different id than the stored one is refused.
    pub fn commit_video_id(&self, id: i64, video_id: &str) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            if let Some(old) = row.video_id.as_deref().filter(|old| *old != video_id) {
                return Err(JournalError::Invalid {
                    id,
                    message: format!("already has videoId {old}, refusing {video_id}"),
                });
            }
            // Ranges of an earlier video of this file are stale (lanes, `acked_ranges`).
            self.exec(
                c,
                "DELETE FROM acked_ranges WHERE file_id = ?1 AND video_id != ?2",
                params![id, video_id],
            )?;
            self.exec(
                c,
                "UPDATE files SET video_id = ?1, first_chunk_in_flight = 0, first_body_sent = 0, updated_at = ?2 WHERE id = ?3",
                params![video_id, now, id],
            )
        })
    }

    /// Commits the acknowledged offset (bytes the service has). Progress: also resets
    /// `attempts`, `next_attempt_at` and the last error. The offset never goes backwards nor
    /// past the file size.
    pub fn commit_offset(&self, id: i64, offset: u64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            if offset < row.bytes_uploaded || offset > row.identity.size {
                return Err(JournalError::Invalid {
                    id,
                    message: format!(
                        "offset {offset} outside {}..={}",
                        row.bytes_uploaded, row.identity.size
                    ),
                });
            }
            self.exec(
                c,
                "UPDATE files SET bytes_uploaded = ?1, attempts = 0, next_attempt_at = NULL,
                    last_error = NULL, last_error_slug = NULL, updated_at = ?2 WHERE id = ?3",
                params![offset as i64, now, id],
            )
        })
    }

    /// Notes a possible orphan video (no id known) left by this file, e.g. a first request
    /// whose response was lost, and clears the first-chunk-in-flight mark: the note now stands
    /// for that request, so an attempt that ends before its own request is not noted again.
    pub fn record_orphan(&self, id: i64, note: &str) -> Result<FileRow, JournalError> {
        self.transition(id, |c, _, now| {
            add_note(c, id, "orphan", None, note, now).map_err(|e| self.err(e))?;
            self.exec(
                c,
                "UPDATE files SET first_chunk_in_flight = 0, first_body_sent = 0, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// Notes a video this file gave up on (e.g. deleted on the service, or the file changed).
    pub fn record_abandoned(
        &self,
        id: i64,
        video_id: &str,
        reason: &str,
    ) -> Result<FileRow, JournalError> {
        self.note_video(id, "abandoned", video_id, reason)
    }

    /// Adds a note of `kind` about `video_id` to the file's notes, in one transaction.
    pub(super) fn note_video(
        &self,
        id: i64,
        kind: &'static str,
        video_id: &str,
        reason: &str,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, _, now| {
            add_note(c, id, kind, Some(video_id), reason, now).map_err(|e| self.err(e))
        })
    }

    /// The file changed since its upload started (seen on resume or at the re-stat): its video is
    /// recorded as abandoned and the row goes back to `settling` with `identity` (the watcher
    /// queues it again once it is stable; `ingestd upload` calls [`Journal::enqueue`]).
    pub fn reset_for_new_video(
        &self,
        id: i64,
        identity: &FileIdentity,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            if matches!(row.state, FileState::Done | FileState::Gone) {
                return Err(JournalError::WrongState {
                    id,
                    state: row.state,
                    expected: "settling, queued, uploading or failed",
                });
            }
            reset_to_settling(
                c,
                row,
                identity,
                "the file changed since its upload started",
                now,
            )
            .map_err(|e| self.err(e))
        })
    }

    /// Starts the upload over as a new video with the same file (e.g. the service lost the
    /// video): the old `videoId` is recorded as abandoned with `reason`, progress is cleared,
    /// the row stays `uploading` with this process.
    pub fn restart_upload(&self, id: i64, reason: &str) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            abandon(c, row, reason, now).map_err(|e| self.err(e))?;
            self.exec(
                c,
                "UPDATE files SET video_id = NULL, chunk_size = NULL, bytes_uploaded = 0,
                    first_chunk_in_flight = 0, first_body_sent = 0, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// The upload is complete and the re-stat matched: `done`, with the receipt (content hash
    /// `ALGORITHM:HEX`, `videoId`, `bytes_uploaded = size`, `done_at`).
    pub fn mark_done(
        &self,
        id: i64,
        content_hash: &str,
        video_id: &str,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            if let Some(old) = row.video_id.as_deref().filter(|old| *old != video_id) {
                return Err(JournalError::Invalid {
                    id,
                    message: format!("has videoId {old}, not {video_id}"),
                });
            }
            self.exec(
                c,
                "UPDATE files SET state = 'done', content_hash = ?1, video_id = ?2, bytes_uploaded = size,
                    first_chunk_in_flight = 0, first_body_sent = 0, claimed_by = NULL, next_attempt_at = NULL,
                    last_error = NULL, last_error_slug = NULL, done_at = ?3, updated_at = ?3
                 WHERE id = ?4",
                params![content_hash, video_id, now, id],
            )
        })
    }

    /// A retryable error: back to `queued` (same place in the queue), not claimable before
    /// `next_attempt_at`, with the attempt count and the error shown by `status`. Progress
    /// (`video_id`, `bytes_uploaded`) is kept.
    pub fn schedule_retry(
        &self,
        id: i64,
        next_attempt_at: SystemTime,
        attempts: u32,
        error: &str,
        slug: Option<&str>,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            self.exec(
                c,
                "UPDATE files SET state = 'queued', claimed_by = NULL, next_attempt_at = ?1,
                    attempts = ?2, last_error = ?3, last_error_slug = ?4, updated_at = ?5
                 WHERE id = ?6",
                params![to_unix_ms(next_attempt_at), attempts, error, slug, now, id],
            )
        })
    }

    /// Resets the attempt counter (progress was made) without other changes.
    pub fn reset_attempts(&self, id: i64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, _, now| {
            self.exec(
                c,
                "UPDATE files SET attempts = 0, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// A permanent error (a 4xx other than 401/429): `failed` with the message and the
    /// api.video `type` slug; `ingestd retry` puts it back. Progress is kept.
    pub fn mark_failed(
        &self,
        id: i64,
        error: &str,
        slug: Option<&str>,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            if row.state != FileState::Queued {
                self.require_claimed(row)?;
            }
            self.exec(
                c,
                "UPDATE files SET state = 'failed', claimed_by = NULL, next_attempt_at = NULL,
                    last_error = ?1, last_error_slug = ?2, updated_at = ?3 WHERE id = ?4",
                params![error, slug, now, id],
            )
        })
    }

    /// The file vanished (found missing when opened or re-stat'ed): `gone`, claim released,
    /// `reason` kept as the last error. A started video is recorded as abandoned (`status`
    /// reports it). Progress is kept: if the same content reappears (same path, or renamed) the
    /// row comes back `queued`, the note is withdrawn and the upload resumes.
    pub fn mark_gone(&self, id: i64, reason: &str) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            if row.state != FileState::Queued {
                self.require_claimed(row)?;
            }
            note_gone_video(c, row, now).map_err(|e| self.err(e))?;
            self.exec(
                c,
                "UPDATE files SET state = 'gone', gone_from = 'queued', claimed_by = NULL,
                    last_error = ?1, last_error_slug = NULL, updated_at = ?2 WHERE id = ?3",
                params![reason, now, id],
            )
        })
    }

    /// Releases a claim (shutdown, token pause): back to `queued` at its place, progress kept.
    pub fn requeue(&self, id: i64) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            self.exec(
                c,
                "UPDATE files SET state = 'queued', claimed_by = NULL, updated_at = ?1 WHERE id = ?2",
                params![now, id],
            )
        })
    }

    /// The shutdown deadline stopped a request: back to `queued` with `why` as the last error
    /// (`status` shows it). Unless `body_sent` (a first request whose last body byte left), the
    /// first-request marks are cleared: a request aborted before its last byte (its connection
    /// closes with a RST) cannot have created a video. With `body_sent` they stay and the next
    /// attempt reports the possible orphan.
    pub fn requeue_stopped(
        &self,
        id: i64,
        why: &str,
        body_sent: bool,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            self.require_claimed(row)?;
            let clear = if body_sent {
                ""
            } else {
                "first_chunk_in_flight = 0, first_body_sent = 0,"
            };
            self.exec(
                c,
                &format!(
                    "UPDATE files SET state = 'queued', claimed_by = NULL, {clear} last_error = ?1,
                        last_error_slug = NULL, updated_at = ?2 WHERE id = ?3"
                ),
                params![why, now, id],
            )
        })
    }

    /// Records the outcome of the post-upload action (`kept`, `deleted`, `moved to …`, or an
    /// error) on a `done` row.
    /// `failed`: the delete or move failed (`status` lists the row until it is fixed).
    pub fn record_after_upload(
        &self,
        id: i64,
        outcome: &str,
        failed: bool,
    ) -> Result<FileRow, JournalError> {
        self.transition(id, |c, row, now| {
            if row.state != FileState::Done {
                return Err(JournalError::WrongState {
                    id,
                    state: row.state,
                    expected: "done",
                });
            }
            self.exec(
                c,
                "UPDATE files SET after_upload = ?1, after_upload_failed = ?2, updated_at = ?3
                 WHERE id = ?4",
                params![outcome, failed, now, id],
            )
        })
    }

    /// `ingestd retry`: failed rows → `queued` (at the back, attempts and error cleared,
    /// progress kept); queued rows waiting for a retry become due now. Other states are skipped.
    /// An unknown id fails the whole call ([`JournalError::NotFound`]) and changes nothing.
    pub fn retry_failed(&self, selection: &RetrySelection) -> Result<RetryOutcome, JournalError> {
        self.retry_failed_with(selection, false)
    }

    /// [`Journal::retry_failed`]; with `anyway`, the container check is waived for the retried
    /// rows' current content (`ingestd retry --anyway`: upload an incomplete file as it is).
    pub fn retry_failed_with(
        &self,
        selection: &RetrySelection,
        anyway: bool,
    ) -> Result<RetryOutcome, JournalError> {
        let out = self.immediate(|tx, now| {
            let ids: Vec<i64> = match selection {
                RetrySelection::Ids(ids) => ids.clone(),
                RetrySelection::AllFailed => tx
                    .prepare("SELECT id FROM files WHERE state = 'failed' ORDER BY id")
                    .and_then(|mut st| {
                        st.query_map([], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<i64>>>()
                    })
                    .map_err(|e| self.err(e))?,
            };
            let mut out = RetryOutcome::default();
            for id in ids {
                let row = self.row_in(tx, id)?;
                let waiting = row.state == FileState::Queued && row.next_attempt_at.is_some();
                if row.state == FileState::Failed {
                    self.exec(
                        tx,
                        "UPDATE files SET state = 'queued', queued_at = ?1, attempts = 0,
                            next_attempt_at = NULL, last_error = NULL, last_error_slug = NULL,
                            container_waived = max(container_waived, ?3),
                            updated_at = ?1 WHERE id = ?2",
                        params![now, id, anyway],
                    )?;
                } else if waiting {
                    self.exec(
                        tx,
                        "UPDATE files SET next_attempt_at = NULL, attempts = 0, updated_at = ?1 WHERE id = ?2",
                        params![now, id],
                    )?;
                } else {
                    out.skipped.push((id, row.state));
                    continue;
                }
                out.requeued.push(self.row_in(tx, id)?);
            }
            Ok(out)
        })?;
        if !out.requeued.is_empty() {
            self.work_changed();
        }
        Ok(out)
    }

    /// The row with this id.
    pub fn get(&self, id: i64) -> Result<Option<FileRow>, JournalError> {
        get_row(&self.conn(), id).map_err(|e| self.err(e))
    }
}
