//! Opening the journal: pragmas, sanity checks, migrations on `PRAGMA user_version`.
//!
//! `synchronous = FULL`: every commit (a claim, a `videoId`, a chunk's offset) is on disk before
//! the next request goes out. With NORMAL a power cut could roll back a committed `videoId`, and
//! the next attempt would create a second video — the one thing ingestd must not do. Commits
//! happen once per chunk (megabytes), so the extra fsync costs nothing visible there.
//!
//! The watcher's batches ([`Journal::scan_tx`]) run with `synchronous = NORMAL` instead: losing
//! the last scan batch to a power cut is harmless (the next scan redoes it: a lost `queued`
//! settles again), and in WAL mode the next FULL commit syncs the log up to and including them,
//! so the order of durable changes is kept. On a slow disk this halves the time of an initial
//! scan of 100 000 files.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::schema::{APPLICATION_ID, CURRENT_VERSION, MIGRATIONS};
use super::{Inner, Journal, JournalError, owner};

/// How long a statement waits for another process's write transaction before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite page cache of a read-write connection, in KiB (`PRAGMA cache_size` takes a negative
/// number for KiB): 16 MiB instead of SQLite's 2 MiB. A 100k-row journal is ~45 MiB; its indexes
/// then stay cached while the watcher queues rows and the workers claim them. Memory is taken
/// only as pages are read, so a small journal costs no more than before.
///
/// On 32-bit targets (armhf and i386 boards, 1 GiB of RAM or less) it is 4 MiB: with 100k rows
/// the 16 MiB cache fills and was a third of the daemon's peak RSS (issue 15, BENCHMARKS.md
/// "32-bit peak RSS"); queueing 100k rows is slower there, uploading is not.
pub const CACHE_KIB: i64 = if cfg!(target_pointer_width = "32") {
    4 * 1024
} else {
    16 * 1024
};

impl Journal {
    /// Opens the journal for the daemon or `upload`, creating the file (and its directory) if
    /// missing and migrating it to the current schema. Refuses a journal from a newer ingestd, a
    /// foreign or corrupt file, and a read-only file, without changing it.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
                path: path.to_owned(),
                dir: dir.to_owned(),
                source,
            })?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.len() == 0 => Err(JournalError::NotAJournal {
                path: path.to_owned(),
                detail: "the file is empty (0 bytes)".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create_new(path),
            _ => Self::open_read_write(path, false),
        }
    }

    /// Creates a new journal atomically: built and migrated under a temporary name, then linked
    /// into place. So the journal's path never holds a file without ingestd's schema (which
    /// [`Journal::open`] refuses), even while another process opens it at the same moment; if
    /// another process links its new journal first, that one is used.
    fn create_new(path: &Path) -> Result<Journal, JournalError> {
        let name = path
            .file_name()
            .map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.new-{}", std::process::id()));
        let remove_tmp = || {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = tmp.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        };
        remove_tmp();
        // A new journal may follow a lost one: files already there may be on api.video
        // (looked up by their content hash before their first request, `upload::adopt`).
        let fresh = Self::open_read_write(&tmp, true).inspect_err(|_| remove_tmp())?;
        fresh
            .raise_adopt_horizon(std::time::SystemTime::now())
            .inspect_err(|_| remove_tmp())?;
        // Closing the only connection checkpoints the WAL into the file and removes it.
        drop(fresh);
        // A `-wal` or `-shm` left at the path without its database (a journal deleted after a
        // kill, or under a daemon that then stopped) belongs to no database: SQLite would replay
        // that old log into the new journal. Nothing can use them any more.
        if !path.exists() {
            for suffix in ["-wal", "-shm"] {
                let mut p = path.to_path_buf().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        let linked = match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // A filesystem without hard links: rename (no other process is expected there).
            Err(_) => std::fs::rename(&tmp, path),
        };
        remove_tmp();
        linked.map_err(|e| JournalError::CannotOpen {
            path: path.to_owned(),
            detail: format!("cannot put the new journal in place: {e}"),
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Self::open_read_write(path, false)
    }

    /// Opens an existing journal read-write (for `retry`): [`JournalError::Missing`] if there is
    /// none yet. Migrates like [`Journal::open`].
    pub fn open_existing(path: &Path) -> Result<Journal, JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing {
                path: path.to_owned(),
            });
        }
        Self::open_read_write(path, false)
    }

    /// Opens an existing journal read-only (for `status`, `explain`): works while `ingestd run`
    /// holds it open and writes to it (WAL readers never wait for the writer). Never migrates:
    /// an older schema is reported as [`JournalError::TooOld`].
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        if !path.exists() {
            return Err(JournalError::Missing {
                path: path.to_owned(),
            });
        }
        let err = |e| JournalError::from_sqlite(path, e);
        let conn = open_ro(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let version = check_header(&conn, path)?;
        if version == 0 {
            // New journals are linked into place whole (`create_new`): version 0 at the path is
            // a journal emptied or replaced, not one being created.
            return Err(no_schema(path));
        }
        if version < CURRENT_VERSION {
            return Err(JournalError::TooOld {
                path: path.to_owned(),
                found: version,
                known: CURRENT_VERSION,
            });
        }
        Ok(Self::wrap(conn, path))
    }

    fn open_read_write(path: &Path, create: bool) -> Result<Journal, JournalError> {
        let err = |e| JournalError::from_sqlite(path, e);
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // SQLite silently falls back to read-only when the file is not writable: refuse instead.
        if conn.is_readonly("main").map_err(err)? {
            return Err(JournalError::ReadOnly {
                path: path.to_owned(),
                detail: "the file is not writable".into(),
            });
        }
        if check_header(&conn, path)? == 0 {
            if !create {
                return Err(no_schema(path));
            }
            // Before the first table: pruning can give pages back (`incremental_vacuum`).
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(err)?;
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::CannotOpen {
                path: path.to_owned(),
                detail: format!(
                    "cannot switch to WAL mode (got {mode}); is it on a network filesystem?"
                ),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(err)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(err)?;
        if check != "ok" {
            return Err(JournalError::Corrupt {
                path: path.to_owned(),
                detail: format!("integrity check: {check}"),
            });
        }
        migrate(&mut conn, path)?;
        Ok(Self::wrap(conn, path))
    }

    fn wrap(conn: Connection, path: &Path) -> Journal {
        Journal {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path: path.to_owned(),
                owner: owner::current(),
                work: Arc::new(tokio::sync::Notify::new()),
                health: Mutex::default(),
                file_id: super::presence::file_id(path),
            }),
        }
    }
}

/// The refusal of an existing file at version 0: emptied (0 bytes) or an empty SQLite database.
fn no_schema(path: &Path) -> JournalError {
    let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
    JournalError::NotAJournal {
        path: path.to_owned(),
        detail: if empty {
            "the file is empty (0 bytes)".into()
        } else {
            "the file has no ingestd schema (an empty SQLite database)".into()
        },
    }
}

/// A read-only connection (`mode=ro`). In WAL mode a reader needs the `-shm` file, which it
/// cannot create in a directory it may not write (a read-only mount, a backup copy, a
/// directory of another user): there the file is opened `immutable` (nothing else can be
/// writing it, and the `-wal` of a cleanly stopped daemon is empty).
fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let uri = |extra: &str| {
        let mut u = String::from("file:");
        for b in path.as_os_str().as_encoded_bytes() {
            match b {
                b'%' | b'?' | b'#' => u.push_str(&format!("%{b:02X}")),
                _ if b.is_ascii() && !b.is_ascii_control() => u.push(char::from(*b)),
                _ => u.push_str(&format!("%{b:02X}")),
            }
        }
        u.push_str("?mode=ro");
        u.push_str(extra);
        u
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir_writable(dir) {
        Connection::open_with_flags(uri(""), flags)
    } else {
        Connection::open_with_flags(uri("&immutable=1"), flags)
    }
}

/// Whether this process may create files in `dir` (access(2) with W_OK: also false on a
/// read-only mount).
fn dir_writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// `user_version`, refused when it is newer than this build knows.
fn known_version(conn: &Connection, path: &Path) -> Result<i64, JournalError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| JournalError::from_sqlite(path, e))?;
    if version > CURRENT_VERSION {
        return Err(JournalError::TooNew {
            path: path.to_owned(),
            found: version,
            known: CURRENT_VERSION,
        });
    }
    Ok(version)
}

/// Reads `user_version` and `application_id` (the first read: a garbage file fails here) and
/// refuses foreign files and newer schemas. Returns the schema version.
fn check_header(conn: &Connection, path: &Path) -> Result<i64, JournalError> {
    let err = |e| JournalError::from_sqlite(path, e);
    let version = known_version(conn, path)?;
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if objects > 0 {
            return Err(JournalError::NotAJournal {
                path: path.to_owned(),
                detail: "a SQLite database of another program (it has tables but no ingestd schema version)".into(),
            });
        }
    } else if app_id != APPLICATION_ID {
        return Err(JournalError::NotAJournal {
            path: path.to_owned(),
            detail: format!("a SQLite database of another program (application_id {app_id:#x})"),
        });
    }
    Ok(version)
}

/// Applies every missing migration step in ONE transaction, then sets `user_version`: another
/// process opening the journal meanwhile sees either the old version or the current one, never
/// a half-migrated schema (a read-only `status` during a fresh daemon's first start must not see
/// version 1 of 2).
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let err = |e| JournalError::from_sqlite(path, e);
    // IMMEDIATE: two processes opening a fresh journal at once migrate one after the other.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let version = known_version(&tx, path)?;
    if version == CURRENT_VERSION {
        return Ok(());
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", CURRENT_VERSION)
        .map_err(err)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(err)?;
    tx.commit().map_err(err)
}

impl Journal {
    /// `PRAGMA data_version` of this handle's connection: it changes when another connection
    /// (another process: `ingestd retry`, `ingestd upload`) committed a change since the last
    /// call, and never for this connection's own commits. One cheap read of the WAL index; the
    /// upload pool polls it to notice work queued by other processes.
    pub fn data_version(&self) -> Result<i64, JournalError> {
        self.conn()
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Runs `f` in one IMMEDIATE transaction with `synchronous = NORMAL` (see the module docs),
    /// then restores FULL. `f` gets the transaction and the current time (Unix ms).
    pub(super) fn scan_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx, super::row::now_ms())?;
            tx.commit()?;
            Ok(out)
        })();
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        let out = result.map_err(|e| self.err(e))?;
        restored.map_err(|e| self.err(e))?;
        self.note_write_ok();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escape::Show as _;

    #[test]
    fn fresh_journal_is_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/journal.sqlite");
        let j = Journal::open(&path).unwrap();
        let (version, mode, sync, fk, cache): (i64, String, i64, i64, i64) = {
            let c = j.conn();
            (
                c.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap(),
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .unwrap(),
                c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap(),
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                    .unwrap(),
                c.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap(),
            )
        };
        assert_eq!(cache, -CACHE_KIB, "page cache");
        assert_eq!(
            CACHE_KIB,
            if cfg!(target_pointer_width = "32") {
                4096
            } else {
                16384
            }
        );
        assert_eq!(version, CURRENT_VERSION);
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(fk, 1);
        drop(j);
        Journal::open(&path).unwrap();
        Journal::open_read_only(&path).unwrap();
        Journal::open_existing(&path).unwrap();
    }

    #[test]
    fn missing_journal_is_reported_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let e = Journal::open_read_only(&path).unwrap_err();
        assert!(matches!(e, JournalError::Missing { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("ingestd has not run with this config")
        );
        let e = Journal::open_existing(&path).unwrap_err();
        assert!(matches!(e, JournalError::Missing { .. }), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn v1_receipts_become_sha256_receipts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            c.execute(
                "INSERT INTO files (path, root, dev, ino, size, mtime_ns, ctime_ns, state,
                     changed_at, created_at, updated_at, sha256)
                 VALUES (x'2f612e6d7034', x'2f', 1, 2, 3, 4, 5, 'done', 6, 6, 6, 'abc123')",
                [],
            )
            .unwrap();
        }
        let e = Journal::open_read_only(&path).unwrap_err();
        assert!(matches!(e, JournalError::TooOld { .. }), "{e}");
        let j = Journal::open(&path).unwrap();
        let hash: String = j
            .conn()
            .query_row("SELECT content_hash FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(hash, "sha256:abc123");
    }

    #[test]
    fn newer_schema_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        drop(Journal::open(&path).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", CURRENT_VERSION + 5)
                .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        for e in [
            Journal::open(&path).unwrap_err(),
            Journal::open_read_only(&path).unwrap_err(),
        ] {
            assert!(matches!(e, JournalError::TooNew { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&path.shown().to_string()), "{msg}");
            assert!(msg.contains("newer"), "{msg}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn garbage_file_is_reported_as_corrupt_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let garbage: Vec<u8> = (0..8192u32)
            .map(|i| (i * 7 + 13).to_le_bytes()[0])
            .collect();
        std::fs::write(&path, &garbage).unwrap();
        for e in [
            Journal::open(&path).unwrap_err(),
            Journal::open_read_only(&path).unwrap_err(),
        ] {
            assert!(matches!(e, JournalError::Corrupt { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&path.shown().to_string()), "{msg}");
            assert!(msg.contains(".broken"), "{msg}");
        }
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }

    #[test]
    fn foreign_sqlite_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        let e = Journal::open(&path).unwrap_err();
        assert!(matches!(e, JournalError::NotAJournal { .. }), "{e}");
        assert!(e.to_string().contains("another program"), "{e}");
    }

    #[test]
    fn emptied_or_schemaless_journal_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        drop(Journal::open(&path).unwrap());
        std::fs::write(&path, b"").unwrap();
        for e in [
            Journal::open(&path).unwrap_err(),
            Journal::open_existing(&path).unwrap_err(),
            Journal::open_read_only(&path).unwrap_err(),
        ] {
            assert!(matches!(e, JournalError::NotAJournal { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("0 bytes") && msg.contains("rm "), "{msg}");
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        // An empty SQLite database (e.g. `sqlite3 FILE VACUUM`) has no ingestd schema either.
        std::fs::remove_file(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 0; VACUUM;")
            .unwrap();
        let e = Journal::open(&path).unwrap_err();
        assert!(matches!(e, JournalError::NotAJournal { .. }), "{e}");
        // Removed on purpose: a new journal, created whole under another name then linked.
        std::fs::remove_file(&path).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.counts().unwrap().iter().map(|(_, n)| n).sum::<u64>(), 0);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".new-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn read_only_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        drop(Journal::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
            // Running as root: permissions do not stop writes. Check the same refusal through a
            // connection opened read-only the way SQLite falls back to it.
            let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            assert!(c.is_readonly("main").unwrap());
            let e = JournalError::from_sqlite(&path, c.execute("DELETE FROM kv", []).unwrap_err());
            assert!(matches!(e, JournalError::ReadOnly { .. }), "{e}");
            return;
        }
        let e = Journal::open(&path).unwrap_err();
        assert!(matches!(e, JournalError::ReadOnly { .. }), "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
        // status still works on a read-only journal.
        Journal::open_read_only(&path).unwrap();
    }
}
