//! SHA-256 of the uploaded content, computed while streaming (the receipt in `status`).
//!
//! - [`ContentHasher`]: an incremental hasher that counts the bytes it has seen. Take a
//!   [`HashSnapshot`] before streaming a chunk; if the chunk fails, [`ContentHasher::restore`]
//!   rolls its bytes back, so the hash always covers exactly the acknowledged prefix.
//! - [`hash_prefix`] / [`ContentHasher::extend_from_file`]: after a restart, rehash `[0, offset)`
//!   of the file from disk (streaming, fixed buffer) to continue at the committed offset.
//!
//! SHA-256 (not BLAKE3) because the emulator and users' tools (`sha256sum`) speak it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Read buffer for [`hash_prefix`].
const BUF_SIZE: usize = 256 * 1024;

/// An incremental SHA-256 that knows how many bytes it has hashed.
#[derive(Clone, Default)]
pub struct ContentHasher {
    sha: Sha256,
    bytes: u64,
}

/// A saved state of a [`ContentHasher`] (cheap: ~100 bytes).
#[derive(Clone)]
pub struct HashSnapshot(ContentHasher);

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HashSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HashSnapshot").field(&self.0.bytes).finish()
    }
}

impl ContentHasher {
    pub fn new() -> ContentHasher {
        ContentHasher::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.bytes += data.len() as u64;
    }

    /// Bytes hashed so far (equals the offset the hash covers).
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes
    }

    pub fn snapshot(&self) -> HashSnapshot {
        HashSnapshot(self.clone())
    }

    /// Returns to the state of `snapshot`, forgetting everything hashed since.
    pub fn restore(&mut self, snapshot: HashSnapshot) {
        *self = snapshot.0;
    }

    /// The lowercase hex digest of everything hashed so far, without consuming the hasher.
    pub fn hex_so_far(&self) -> String {
        hex::encode(self.sha.clone().finalize())
    }

    /// The lowercase hex digest.
    pub fn finalize_hex(self) -> String {
        hex::encode(self.sha.finalize())
    }
}

impl HashSnapshot {
    pub fn bytes_hashed(&self) -> u64 {
        self.0.bytes
    }
}

/// Hashing a file prefix failed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is shorter than the {expected} bytes already uploaded (only {found})")]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("hashing task failed: {0}")]
    Join(String),
}

/// Hashes bytes `[0, len)` of `path` (blocking; see [`hash_prefix_async`]).
pub fn hash_prefix(path: &Path, len: u64) -> Result<ContentHasher, HashError> {
    let mut hasher = ContentHasher::new();
    hasher.extend_from_file(path, len)?;
    Ok(hasher)
}

impl ContentHasher {
    /// Hashes bytes `[bytes_hashed(), end)` of `path` from disk (blocking, streamed through a
    /// fixed buffer). Used to resume, and to account for a chunk the service already had.
    pub fn extend_from_file(&mut self, path: &Path, end: u64) -> Result<(), HashError> {
        let io_err = |source| HashError::Io {
            path: path.to_owned(),
            source,
        };
        let start = self.bytes;
        if end <= start {
            return Ok(());
        }
        let mut file = File::open(path).map_err(io_err)?;
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        let mut reader = file.take(end - start);
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            self.update(&buf[..n]);
        }
        if self.bytes < end {
            return Err(HashError::Truncated {
                path: path.to_owned(),
                expected: end,
                found: self.bytes,
            });
        }
        Ok(())
    }
}

/// [`hash_prefix`] on tokio's blocking pool.
pub async fn hash_prefix_async(path: PathBuf, len: u64) -> Result<ContentHasher, HashError> {
    tokio::task::spawn_blocking(move || hash_prefix(&path, len))
        .await
        .map_err(|e| HashError::Join(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn empty_hash_is_the_known_constant() {
        assert_eq!(
            ContentHasher::new().finalize_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn snapshot_and_restore_roll_back_a_failed_chunk() {
        let data = sample(10_000);
        let mut h = ContentHasher::new();
        h.update(&data[..4_000]);
        let snap = h.snapshot();
        assert_eq!(snap.bytes_hashed(), 4_000);
        h.update(b"garbage from a chunk that failed");
        h.restore(snap);
        assert_eq!(h.bytes_hashed(), 4_000);
        h.update(&data[4_000..]);
        assert_eq!(h.hex_so_far(), sha_hex(&data));
        assert_eq!(h.finalize_hex(), sha_hex(&data));
    }

    #[test]
    fn prefix_hash_continues_to_the_full_hash() {
        let data = sample(BUF_SIZE * 2 + 123);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let offset = BUF_SIZE as u64 + 7;
        let mut h = hash_prefix(f.path(), offset).unwrap();
        assert_eq!(h.bytes_hashed(), offset);
        assert_eq!(h.hex_so_far(), sha_hex(&data[..offset as usize]));
        h.update(&data[offset as usize..]);
        assert_eq!(h.finalize_hex(), sha_hex(&data));
        assert_eq!(
            hash_prefix(f.path(), 0).unwrap().finalize_hex(),
            sha_hex(b"")
        );
    }

    #[test]
    fn extend_from_file_continues_at_the_hashed_offset() {
        let data = sample(50_000);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let mut h = ContentHasher::new();
        h.update(&data[..10_000]);
        h.extend_from_file(f.path(), 30_000).unwrap();
        assert_eq!(h.bytes_hashed(), 30_000);
        h.extend_from_file(f.path(), 20_000).unwrap(); // no-op: already past it
        h.extend_from_file(f.path(), 50_000).unwrap();
        assert_eq!(h.finalize_hex(), sha_hex(&data));
    }

    #[test]
    fn prefix_longer_than_the_file_is_an_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"short").unwrap();
        match hash_prefix(f.path(), 100) {
            Err(HashError::Truncated {
                expected: 100,
                found: 5,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            hash_prefix(Path::new("/nonexistent/x"), 1),
            Err(HashError::Io { .. })
        ));
    }

    #[tokio::test]
    async fn async_wrapper() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello world").unwrap();
        let h = hash_prefix_async(f.path().to_owned(), 5).await.unwrap();
        assert_eq!(h.finalize_hex(), sha_hex(b"hello"));
    }
}
