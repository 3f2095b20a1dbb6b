//! The schema as a list of migrations; migration `i` (0-based) brings `user_version` to `i + 1`.
//!
//! Never edit a released step: append a new one. Times are Unix milliseconds (UTC wall clock,
//! for display and for `next_attempt_at`); paths are the raw bytes of the OS path.

/// `PRAGMA application_id` of an ingestd journal ("ingd"), to refuse foreign SQLite files.
pub const APPLICATION_ID: i64 = 0x696e_6764;

/// Migration steps, in order.
pub const MIGRATIONS: &[&str] = &[
    V1,
    V2,
    V3_ISSUE_12,
    V4_CONTAINER,
    V5_FIRST_BODY_SENT,
    V6_ADOPTED,
    V7_LANES,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

const V1: &str = r#"
CREATE TABLE files (
    id                    INTEGER PRIMARY KEY,
    path                  BLOB    NOT NULL,
    root                  BLOB    NOT NULL,
    dev                   INTEGER NOT NULL,
    ino                   INTEGER NOT NULL,
    size                  INTEGER NOT NULL,
    mtime_ns              INTEGER NOT NULL,
    ctime_ns              INTEGER NOT NULL,
    state                 TEXT    NOT NULL CHECK (state IN
                              ('settling', 'queued', 'uploading', 'done', 'failed', 'gone')),
    changed_at            INTEGER NOT NULL,
    queued_at             INTEGER,
    claimed_by            TEXT,
    video_id              TEXT,
    chunk_size            INTEGER,
    bytes_uploaded        INTEGER NOT NULL DEFAULT 0,
    first_chunk_in_flight INTEGER NOT NULL DEFAULT 0,
    sha256                TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0,
    next_attempt_at       INTEGER,
    last_error            TEXT,
    last_error_slug       TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    done_at               INTEGER,
    after_upload          TEXT,
    -- The state a `gone` row had, restored when its file reappears (same path or renamed).
    gone_from             TEXT,
    -- 1 when another row has since taken this row's path (rename onto it): the row stays as
    -- history but no longer describes the file at that path.
    superseded            INTEGER NOT NULL DEFAULT 0
);
-- At most one live row per path; done and gone rows are history.
CREATE UNIQUE INDEX files_live_path ON files (path) WHERE state NOT IN ('done', 'gone');
CREATE INDEX files_path ON files (path, id);
-- Claim order and per-state counts/listing.
CREATE INDEX files_state ON files (state, queued_at, id);
-- Rename detection.
CREATE INDEX files_inode ON files (ino, dev);

-- videoIds a file left behind: `abandoned` (a started upload given up, e.g. the file changed)
-- and `orphan` (the first chunk was in flight when the process stopped: a video may exist).
CREATE TABLE file_notes (
    id       INTEGER PRIMARY KEY,
    file_id  INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    kind     TEXT    NOT NULL CHECK (kind IN ('abandoned', 'orphan')),
    video_id TEXT,
    reason   TEXT    NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX file_notes_file ON file_notes (file_id);

-- Daemon-wide state shared with other processes (e.g. `token_state`).
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT    NOT NULL,
    at    INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// The receipt names its algorithm (`blake3:HEX`, `sha256:HEX`; v1 stored bare SHA-256 hex),
/// and the startup check for interrupted `after_upload` actions gets a partial index.
const V2: &str = r#"
ALTER TABLE files RENAME COLUMN sha256 TO content_hash;
UPDATE files SET content_hash = 'sha256:' || content_hash
 WHERE content_hash IS NOT NULL AND instr(content_hash, ':') = 0;
CREATE INDEX files_done_no_action ON files (id) WHERE state = 'done' AND after_upload IS NULL;
"#;

/// Issue 12: `ingestd orphans --delete` marks a note resolved (when, and what was done) instead of
/// deleting it, so the history stays and `status` stops listing it; `ingestd prune` leaves a
/// tombstone for a pruned file still on disk, so it is not uploaded again.
const V3_ISSUE_12: &str = r#"
ALTER TABLE file_notes ADD COLUMN resolved_at INTEGER;
ALTER TABLE file_notes ADD COLUMN resolution TEXT;
CREATE TABLE tombstones (
    path         BLOB    PRIMARY KEY,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT,
    video_id     TEXT,
    done_at      INTEGER
) WITHOUT ROWID;
"#;

/// Issue 13: `ingestd retry ID --anyway` waives the container check for the row's current
/// content (cleared when the file changes). The reason a file waits as incomplete lives in
/// `last_error` with `last_error_slug = 'incomplete-container'`.
const V4_CONTAINER: &str = r#"
ALTER TABLE files ADD COLUMN container_waived INTEGER NOT NULL DEFAULT 0;
"#;

/// Issue 11: "the first request's body was fully handed to the socket", next to "in flight". Only
/// a first request whose last body byte left the process can have created a video (an aborted
/// connection closes with a RST), so only such a row is a possible orphan. And whether the
/// post-upload action failed, as a column (decisions on types, not on message text).
const V5_FIRST_BODY_SENT: &str = r#"
ALTER TABLE files ADD COLUMN first_body_sent INTEGER NOT NULL DEFAULT 0;
-- `status` lists done files whose delete or move failed by this column, not by message text.
ALTER TABLE files ADD COLUMN after_upload_failed INTEGER NOT NULL DEFAULT 0;
UPDATE files SET after_upload_failed = 1
 WHERE after_upload LIKE 'delete failed:%' OR after_upload LIKE 'move failed:%';
CREATE INDEX files_after_upload_failed ON files (id) WHERE after_upload_failed = 1;
"#;

/// Issue 12 item 4: when a file with no history was found on api.video by its content hash
/// (`ingestd-blake3`/`ingestd-sha256` metadata) and marked `done` without a second upload.
const V6_ADOPTED: &str = r#"
ALTER TABLE files ADD COLUMN adopted_at INTEGER;
"#;

/// Issue 16: chunks of one file sent in parallel lanes are acknowledged out of order. Each
/// acknowledged byte range `[start, end)` beyond the contiguous prefix (`files.bytes_uploaded`)
/// is kept here, per video, until the prefix reaches it; resume sends exactly what no range
/// covers. Ranges of another video than the row's current one are stale (ignored, then deleted).
const V7_LANES: &str = r#"
CREATE TABLE acked_ranges (
    file_id  INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    video_id TEXT    NOT NULL,
    start    INTEGER NOT NULL,
    end      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (file_id, video_id, start)
) WITHOUT ROWID;
"#;
