//! Helpers for the journal's unit tests: a fresh journal and real files with real identities.

use std::path::{Path, PathBuf};

use super::{FileIdentity, Journal, Observation};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub journal: Journal,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("state/journal.sqlite")).unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Fixture { dir, journal }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// Writes (replaces) a file and returns its observation.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Observation {
        std::fs::write(self.path(name), bytes).unwrap();
        self.observe(name)
    }

    /// Appends to a file and returns its new observation.
    pub fn append(&self, name: &str, bytes: &[u8]) -> Observation {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(name))
            .unwrap();
        f.write_all(bytes).unwrap();
        drop(f);
        self.observe(name)
    }

    pub fn observe(&self, name: &str) -> Observation {
        observe(&self.root(), &self.path(name))
    }

    pub fn rename(&self, from: &str, to: &str) -> Observation {
        std::fs::rename(self.path(from), self.path(to)).unwrap();
        self.observe(to)
    }

    /// Settles a new file all the way to `queued`; returns its id.
    pub fn queued(&self, name: &str, bytes: &[u8]) -> i64 {
        let obs = self.write(name, bytes);
        assert_eq!(
            self.journal.seen_batch(std::slice::from_ref(&obs)).unwrap(),
            [true]
        );
        assert_eq!(
            self.journal
                .stable_batch(std::slice::from_ref(&obs))
                .unwrap(),
            1
        );
        self.journal.find_by_path(&obs.path).unwrap().unwrap().id
    }

    /// A queued file claimed and part-uploaded: chunk size `chunk` (if any) started, `video_id`
    /// committed, then `offset`; returns its id.
    pub fn uploading(
        &self,
        name: &str,
        bytes: &[u8],
        chunk: Option<u64>,
        video_id: &str,
        offset: u64,
    ) -> i64 {
        let id = self.queued(name, bytes);
        self.journal.claim(id).unwrap();
        if let Some(chunk) = chunk {
            self.journal.start_upload(id, chunk).unwrap();
        }
        self.journal.commit_video_id(id, video_id).unwrap();
        self.journal.commit_offset(id, offset).unwrap();
        id
    }

    /// A queued file claimed and uploaded to `done` with `video_id`.
    pub fn done(&self, name: &str, bytes: &[u8], video_id: &str) -> i64 {
        let id = self.queued(name, bytes);
        let row = self.journal.claim(id).unwrap();
        self.journal.commit_video_id(row.id, video_id).unwrap();
        self.journal.mark_done(row.id, "ab12", video_id).unwrap();
        id
    }

    /// Runs raw SQL (to simulate other processes or old states).
    pub fn sql(&self, sql: &str) {
        self.journal.conn().execute_batch(sql).unwrap();
    }
}

pub fn observe(root: &Path, path: &Path) -> Observation {
    let meta = std::fs::symlink_metadata(path).unwrap();
    Observation {
        root: root.to_owned(),
        path: path.to_owned(),
        identity: FileIdentity::from_metadata(&meta),
    }
}
