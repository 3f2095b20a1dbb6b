//! On-disk layout under `--data-dir` and atomic writes (tmp file + fsync + rename + dir fsync).
//!
//! ```text
//! tokens.json                 upload tokens
//! auth.json                   Bearer access/refresh tokens
//! videos/<id>/video.json      the video and its upload state
//! videos/<id>/chunks/<file>   accepted chunk bodies
//! tmp/                        request bodies being received (emptied at start)
//! trash/                      deleted videos on their way out
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EmulatorError;
use super::model::{AccessToken, UploadToken, VideoRec};

/// Paths of one data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Everything loaded from disk at start.
#[derive(Debug, Default)]
pub struct Loaded {
    pub tokens: Vec<UploadToken>,
    pub access: Vec<AccessToken>,
    pub videos: Vec<VideoRec>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Creates the directory layout if needed and empties `tmp/` and `trash/`.
    pub fn open(root: &Path) -> Result<Store, EmulatorError> {
        let store = Store {
            root: root.to_owned(),
        };
        for dir in [store.tmp_dir(), store.trash_dir()] {
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
            }
        }
        for dir in [store.videos_dir(), store.tmp_dir(), store.trash_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(store)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    fn trash_dir(&self) -> PathBuf {
        self.root.join("trash")
    }
    fn videos_dir(&self) -> PathBuf {
        self.root.join("videos")
    }
    pub fn video_dir(&self, id: &str) -> PathBuf {
        self.videos_dir().join(id)
    }
    pub fn chunks_dir(&self, id: &str) -> PathBuf {
        self.video_dir(id).join("chunks")
    }
    fn tokens_file(&self) -> PathBuf {
        self.root.join("tokens.json")
    }
    fn auth_file(&self) -> PathBuf {
        self.root.join("auth.json")
    }

    /// Reads every record. A video directory without a readable `video.json` (a crash during its
    /// creation) is skipped.
    pub fn load(&self) -> Result<Loaded, EmulatorError> {
        let mut loaded = Loaded {
            tokens: read_json(&self.tokens_file())?.unwrap_or_default(),
            access: read_json(&self.auth_file())?.unwrap_or_default(),
            videos: Vec::new(),
        };
        let dir = self.videos_dir();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let file = entry.path().join("video.json");
            match read_json::<VideoRec>(&file) {
                Ok(Some(v)) => loaded.videos.push(v),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping unreadable video record: {e}"),
            }
        }
        Ok(loaded)
    }

    pub fn save_tokens(&self, tokens: &[UploadToken]) -> Result<(), EmulatorError> {
        write_json_atomic(&self.tokens_file(), tokens)
    }

    pub fn save_access(&self, access: &[AccessToken]) -> Result<(), EmulatorError> {
        write_json_atomic(&self.auth_file(), access)
    }

    /// Writes `videos/<id>/video.json` (creating the directories).
    pub fn save_video(&self, video: &VideoRec) -> Result<(), EmulatorError> {
        let chunks = self.chunks_dir(&video.id);
        fs::create_dir_all(&chunks).map_err(io_err(&chunks))?;
        write_json_atomic(&self.video_dir(&video.id).join("video.json"), video)
    }

    /// Moves a video directory to `trash/` (atomic), then removes it.
    pub fn delete_video(&self, id: &str) -> Result<(), EmulatorError> {
        let from = self.video_dir(id);
        let to = self
            .trash_dir()
            .join(format!("{id}-{}", super::util::random_secret(8)));
        match fs::rename(&from, &to) {
            Ok(()) => fs::remove_dir_all(&to).map_err(io_err(&to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&from)(e)),
        }
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, EmulatorError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| EmulatorError::Corrupt {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Serialises `value` and replaces `path` atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<(), EmulatorError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| EmulatorError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// tmp file in the same directory, write, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EmulatorError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", super::util::random_secret(8)));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// fsync a directory so a rename in it is durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_tmp() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.json");
        write_json_atomic(&p, &vec![1, 2]).unwrap();
        write_json_atomic(&p, &vec![3]).unwrap();
        assert_eq!(
            fs::read_to_string(&p)
                .unwrap()
                .replace(char::is_whitespace, ""),
            "[3]"
        );
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn open_empties_tmp_and_load_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        fs::write(store.tmp_dir().join("junk"), b"x").unwrap();
        let v = VideoRec::new("vi1".into(), "t".into(), 0, 1);
        store.save_video(&v).unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        let loaded = store.load().unwrap();
        assert_eq!(loaded.videos.len(), 1);
        store.delete_video("vi1").unwrap();
        assert!(store.load().unwrap().videos.is_empty());
    }
}
