//! [`FileRow`]: one file's row as the rest of the program sees it, and the conversions between
//! Rust values and the columns (paths as raw bytes, times as Unix milliseconds).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{FileIdentity, FileState};

/// One file in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub path: PathBuf,
    /// The watch root it was found under (for a file given to `ingestd upload` outside every
    /// root: its directory).
    pub root: PathBuf,
    /// The identity the row was last seen with; the upload resumes only if the file still has it.
    pub identity: FileIdentity,
    pub state: FileState,
    /// Wall clock of the last identity change (display only; settling uses the monotonic clock).
    pub changed_at: SystemTime,
    /// When it became `queued` (claim order).
    pub queued_at: Option<SystemTime>,
    /// Set once the first chunk's response (or `POST /videos`) gave it.
    pub video_id: Option<String>,
    /// Chunk size fixed at the start of the upload; never changes mid-upload.
    pub chunk_size: Option<u64>,
    /// Bytes acknowledged by the service (the resume offset).
    pub bytes_uploaded: u64,
    /// The first chunk was sent without a committed `videoId` (orphan window W3).
    pub first_chunk_in_flight: bool,
    /// The first request's body was fully handed to the connection (committed just before its
    /// last piece): only then can a first request without an answer have created a video.
    pub first_body_sent: bool,
    /// The content hash, `ALGORITHM:HEX` (`blake3:…`, `sha256:…`), set when done (the receipt).
    pub content_hash: Option<String>,
    /// Failed attempts since the last progress.
    pub attempts: u32,
    /// Not claimable before this time (retry backoff).
    pub next_attempt_at: Option<SystemTime>,
    pub last_error: Option<String>,
    /// The api.video error `type` slug (e.g. `authentication-invalid-upload-token`), if any.
    pub last_error_slug: Option<String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub done_at: Option<SystemTime>,
    /// Outcome of the post-upload action (`kept`, `deleted`, `moved to …`, or the error).
    pub after_upload: Option<String>,
    /// The process holding an `uploading` row (`boot_id:pid:starttime`).
    pub claimed_by: Option<String>,
    /// When the file was adopted: found complete on api.video by its content hash (a journal
    /// lost or pruned past it) and marked `done` without a second upload (`upload::adopt`).
    pub adopted_at: Option<SystemTime>,
}

/// The SELECT list that `FileRow::from_sql` reads, in order (a macro so `concat!` can use it).
impl FileRow {
    /// Claimed by a process that is no longer running (killed daemon): a reclaim would requeue it.
    pub fn claim_is_stale(&self) -> bool {
        self.claimed_by
            .as_deref()
            .is_some_and(|owner| !super::owner::is_alive(owner))
    }

    /// A first request left without an answer after its whole body was sent: api.video may
    /// hold a video this row cannot name (window W3).
    pub fn possible_orphan(&self) -> bool {
        self.video_id.is_none() && self.first_chunk_in_flight && self.first_body_sent
    }

    /// The receipt's hex digest if it was made with `algorithm` (`"blake3"`, `"sha256"`).
    pub fn receipt_hex(&self, algorithm: &str) -> Option<&str> {
        let (algo, hex) = self.content_hash.as_deref()?.split_once(':')?;
        (algo == algorithm).then_some(hex)
    }
}

macro_rules! file_columns {
    () => {
        "id, path, root, dev, ino, size, mtime_ns, ctime_ns, state, changed_at, queued_at, \
         video_id, chunk_size, bytes_uploaded, first_chunk_in_flight, content_hash, attempts, \
         next_attempt_at, last_error, last_error_slug, created_at, updated_at, done_at, after_upload, \
         claimed_by, first_body_sent, adopted_at"
    };
}
pub(crate) use file_columns;

impl FileRow {
    pub(crate) fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
        let state: String = r.get(8)?;
        let state = FileState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("unknown state {state:?}").into(),
            )
        })?;
        Ok(FileRow {
            id: r.get(0)?,
            path: bytes_to_path(r.get_ref(1)?.as_blob()?),
            root: bytes_to_path(r.get_ref(2)?.as_blob()?),
            identity: FileIdentity {
                dev: r.get::<_, i64>(3)? as u64,
                ino: r.get::<_, i64>(4)? as u64,
                size: r.get::<_, i64>(5)? as u64,
                mtime_ns: r.get(6)?,
                ctime_ns: r.get(7)?,
            },
            state,
            changed_at: from_unix_ms(r.get(9)?),
            queued_at: r.get::<_, Option<i64>>(10)?.map(from_unix_ms),
            video_id: r.get(11)?,
            chunk_size: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
            bytes_uploaded: r.get::<_, i64>(13)? as u64,
            first_chunk_in_flight: r.get(14)?,
            content_hash: r.get(15)?,
            attempts: u32::try_from(r.get::<_, i64>(16)?.max(0)).unwrap_or(u32::MAX),
            next_attempt_at: r.get::<_, Option<i64>>(17)?.map(from_unix_ms),
            last_error: r.get(18)?,
            last_error_slug: r.get(19)?,
            created_at: from_unix_ms(r.get(20)?),
            updated_at: from_unix_ms(r.get(21)?),
            done_at: r.get::<_, Option<i64>>(22)?.map(from_unix_ms),
            after_upload: r.get(23)?,
            claimed_by: r.get(24)?,
            first_body_sent: r.get(25)?,
            adopted_at: r.get::<_, Option<i64>>(26)?.map(from_unix_ms),
        })
    }
}

/// Raw bytes of a path, as stored (invalid UTF-8 survives).
pub(crate) fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

pub(crate) fn bytes_to_path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// A time as Unix milliseconds (negative before 1970).
pub fn to_unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`to_unix_ms`].
pub fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(crate) fn now_ms() -> i64 {
    to_unix_ms(SystemTime::now())
}

/// The row with this id, if any.
pub(crate) fn get_row(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<FileRow>> {
    use rusqlite::OptionalExtension;
    c.prepare_cached(concat!(
        "SELECT ",
        file_columns!(),
        " FROM files WHERE id = ?1"
    ))?
    .query_row([id], FileRow::from_sql)
    .optional()
}

/// Records a `videoId` (or the possibility of one) that a file left behind.
pub(crate) fn add_note(
    c: &rusqlite::Connection,
    file_id: i64,
    kind: &str,
    video_id: Option<&str>,
    reason: &str,
    now: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO file_notes (file_id, kind, video_id, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(rusqlite::params![file_id, kind, video_id, reason, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_ms_round_trip() {
        for ms in [0, 1, 1_700_000_000_123, -5_000] {
            assert_eq!(to_unix_ms(from_unix_ms(ms)), ms);
        }
    }

    #[test]
    fn non_utf8_path_round_trip() {
        let p = bytes_to_path(b"/r/\xff\xfe.mp4");
        assert_eq!(path_bytes(&p), b"/r/\xff\xfe.mp4");
    }
}
