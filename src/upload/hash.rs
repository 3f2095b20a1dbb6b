//! The content hash of the uploaded bytes, computed while streaming (the receipt in `status`).
//!
//! - [`ContentHasher`]: an incremental BLAKE3 (default) or SHA-256 (`upload.hash`) that counts
//!   the bytes it has seen. Take a [`HashSnapshot`] before streaming a chunk; if the chunk fails,
//!   [`ContentHasher::restore`] rolls its bytes back, so the hash always covers exactly the
//!   acknowledged prefix.
//! - [`hash_prefix`] / [`ContentHasher::extend_from_file`]: after a restart, rehash `[0, offset)`
//!   of the file from disk (streaming, fixed buffer) to continue at the committed offset.
//!
//! BLAKE3 by default: ~0.2 s of CPU per GiB here against ~1 s for SHA-256 even with the CPU's
//! SHA extensions, which is most of an upload's CPU (docs/BENCHMARKS.md); `b3sum` checks it.
//! `hash = "sha256"` gives receipts that `sha256sum` and the local endpoint can check.
//! A receipt is written `ALGORITHM:HEX` ([`ContentHasher::receipt`]).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use crate::config::HashAlgorithm;

/// Read buffer for [`hash_prefix`].
const BUF_SIZE: usize = 256 * 1024;

#[derive(Clone)]
enum State {
    // Boxed: a BLAKE3 hasher is ~1.9 KB, and snapshots are taken per chunk.
    Blake3(Box<blake3::Hasher>),
    Sha256(Sha256),
    /// A BLAKE3 computed elsewhere (lanes merge subtrees, [`super::tree`]); takes no more bytes.
    Blake3Root(blake3::Hash),
}

/// An incremental content hash that knows how many bytes it has hashed.
#[derive(Clone)]
pub struct ContentHasher {
    state: State,
    bytes: u64,
}

/// A saved state of a [`ContentHasher`].
#[derive(Clone)]
pub struct HashSnapshot(ContentHasher);

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher")
            .field("algorithm", &self.algorithm())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HashSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HashSnapshot").field(&self.0.bytes).finish()
    }
}

impl Default for ContentHasher {
    fn default() -> ContentHasher {
        ContentHasher::new(HashAlgorithm::default())
    }
}

impl ContentHasher {
    pub fn new(algorithm: HashAlgorithm) -> ContentHasher {
        let state = match algorithm {
            HashAlgorithm::Blake3 => State::Blake3(Box::default()),
            HashAlgorithm::Sha256 => State::Sha256(Sha256::new()),
        };
        ContentHasher { state, bytes: 0 }
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        match self.state {
            State::Blake3(_) | State::Blake3Root(_) => HashAlgorithm::Blake3,
            State::Sha256(_) => HashAlgorithm::Sha256,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Blake3(h) => {
                h.update(data);
            }
            State::Sha256(h) => h.update(data),
            State::Blake3Root(_) => {
                debug_assert!(data.is_empty(), "a finished hash takes no more bytes");
                return;
            }
        }
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
        match &self.state {
            State::Blake3(h) => h.finalize().to_hex().to_string(),
            State::Sha256(h) => hex::encode(h.clone().finalize()),
            State::Blake3Root(h) => h.to_hex().to_string(),
        }
    }

    /// The receipt as stored in the journal: `blake3:HEX` or `sha256:HEX`.
    pub fn receipt(&self) -> String {
        format!("{}:{}", self.algorithm().name(), self.hex_so_far())
    }

    /// The lowercase hex digest.
    pub fn finalize_hex(self) -> String {
        self.hex_so_far()
    }

    /// The BLAKE3 of a file of `bytes` bytes merged from its subtrees ([`super::tree::Tree`]).
    pub fn from_blake3(hash: blake3::Hash, bytes: u64) -> ContentHasher {
        ContentHasher {
            state: State::Blake3Root(hash),
            bytes,
        }
    }

    /// With BLAKE3, when the bytes hashed so far are a power of two of 1 KiB chunks: their
    /// subtree, a leaf of the tree of any longer file (lanes go on from there without
    /// hashing these bytes again). Else `None`.
    pub fn blake3_leaf(&self) -> Option<super::tree::Leaf> {
        use blake3::hazmat::HasherExt;
        let State::Blake3(h) = &self.state else {
            return None;
        };
        let chunks = self.bytes / super::tree::CHUNK;
        (self.bytes % super::tree::CHUNK == 0 && chunks.is_power_of_two()).then(|| {
            super::tree::Leaf {
                offset: 0,
                len: self.bytes,
                cv: h.finalize_non_root(),
            }
        })
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
pub fn hash_prefix(
    path: &Path,
    len: u64,
    algorithm: HashAlgorithm,
) -> Result<ContentHasher, HashError> {
    let mut hasher = ContentHasher::new(algorithm);
    hasher.extend_from_file(path, len)?;
    Ok(hasher)
}

impl ContentHasher {
    /// Hashes bytes `[bytes_hashed(), end)` of `path` from disk (blocking, streamed through a
    /// fixed buffer). Used to resume, and to account for a chunk the service already had.
    pub fn extend_from_file(&mut self, path: &Path, end: u64) -> Result<(), HashError> {
        if end <= self.bytes {
            return Ok(());
        }
        let file = File::open(path).map_err(|source| HashError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.extend_from_open(&file, path, end)
    }

    /// Like [`ContentHasher::extend_from_file`], through an already open handle (positioned
    /// reads: the handle's position is not used); `path` only names the file in errors.
    pub fn extend_from_open(
        &mut self,
        file: &File,
        path: &Path,
        end: u64,
    ) -> Result<(), HashError> {
        use std::os::unix::fs::FileExt;
        let io_err = |source| HashError::Io {
            path: path.to_owned(),
            source,
        };
        let mut buf = vec![0u8; BUF_SIZE];
        while self.bytes < end {
            let want = usize::try_from(end - self.bytes).map_or(BUF_SIZE, |w| w.min(BUF_SIZE));
            let n = match file.read_at(&mut buf[..want], self.bytes) {
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
pub async fn hash_prefix_async(
    path: PathBuf,
    len: u64,
    algorithm: HashAlgorithm,
) -> Result<ContentHasher, HashError> {
    tokio::task::spawn_blocking(move || hash_prefix(&path, len, algorithm))
        .await
        .map_err(|e| HashError::Join(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> usize {
        usize::try_from(n).unwrap()
    }
    use std::io::Write;

    /// The SHA-256 tests below check against known digests; BLAKE3 has its own test.
    const A: HashAlgorithm = HashAlgorithm::Sha256;

    #[test]
    fn blake3_is_the_default_and_receipts_name_the_algorithm() {
        let data = sample(300_000);
        let mut h = ContentHasher::default();
        assert_eq!(h.algorithm(), HashAlgorithm::Blake3);
        h.update(&data[..1000]);
        let snap = h.snapshot();
        h.update(b"rolled back");
        h.restore(snap);
        h.update(&data[1000..]);
        let expected = blake3::hash(&data).to_hex().to_string();
        assert_eq!(h.receipt(), format!("blake3:{expected}"));
        let mut s = ContentHasher::new(HashAlgorithm::Sha256);
        s.update(&data);
        assert_eq!(s.receipt(), format!("sha256:{}", sha_hex(&data)));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let mut r = hash_prefix(f.path(), 1234, HashAlgorithm::Blake3).unwrap();
        r.extend_from_file(f.path(), data.len() as u64).unwrap();
        assert_eq!(r.finalize_hex(), expected);
    }

    #[test]
    fn a_power_of_two_prefix_is_a_leaf_of_the_longer_file() {
        use crate::upload::tree::{CHUNK, RangeHasher, Tree};
        let data = sample(300_000);
        let total = data.len() as u64;
        for prefix in [CHUNK, 4 * CHUNK, 128 * CHUNK] {
            let mut h = ContentHasher::default();
            h.update(&data[..us(prefix)]);
            let leaf = h.blake3_leaf().expect("a power of two of chunks");
            let mut tree = Tree::new(total).unwrap();
            tree.insert([leaf]);
            let mut rest = RangeHasher::new(prefix, total, total);
            rest.update(&data[us(prefix)..]);
            tree.insert(rest.finish());
            let root = tree.root().unwrap();
            assert_eq!(root, blake3::hash(&data), "prefix {prefix}");
            let merged = ContentHasher::from_blake3(root, total);
            assert_eq!(merged.receipt(), format!("blake3:{}", root.to_hex()));
            assert_eq!(merged.bytes_hashed(), total);
        }
        let mut odd = ContentHasher::default();
        odd.update(&data[..us(5 * CHUNK)]);
        assert!(odd.blake3_leaf().is_none(), "5 chunks are two subtrees");
        let mut sha = ContentHasher::new(A);
        sha.update(&data[..us(CHUNK)]);
        assert!(sha.blake3_leaf().is_none());
    }

    fn sha_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from(i * 31 % 251).unwrap())
            .collect()
    }

    #[test]
    fn empty_hash_is_the_known_constant() {
        assert_eq!(
            ContentHasher::new(A).finalize_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn snapshot_and_restore_roll_back_a_failed_chunk() {
        let data = sample(10_000);
        let mut h = ContentHasher::new(A);
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
        let at = BUF_SIZE + 7;
        let offset = at as u64;
        let mut h = hash_prefix(f.path(), offset, A).unwrap();
        assert_eq!(h.bytes_hashed(), offset);
        assert_eq!(h.hex_so_far(), sha_hex(&data[..at]));
        h.update(&data[at..]);
        assert_eq!(h.finalize_hex(), sha_hex(&data));
        assert_eq!(
            hash_prefix(f.path(), 0, A).unwrap().finalize_hex(),
            sha_hex(b"")
        );
    }

    #[test]
    fn extend_from_open_reads_the_held_handle_not_the_path() {
        let data = sample(50_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap(); // only the handle is left
        let mut h = ContentHasher::new(A);
        h.extend_from_open(&file, &path, 20_000).unwrap();
        h.extend_from_open(&file, &path, 50_000).unwrap();
        assert_eq!(h.finalize_hex(), sha_hex(&data));
        let mut short = ContentHasher::new(A);
        assert!(matches!(
            short.extend_from_open(&file, &path, 60_000),
            Err(HashError::Truncated { .. })
        ));
    }

    #[test]
    fn extend_from_file_continues_at_the_hashed_offset() {
        let data = sample(50_000);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        let mut h = ContentHasher::new(A);
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
        match hash_prefix(f.path(), 100, A) {
            Err(HashError::Truncated {
                expected: 100,
                found: 5,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            hash_prefix(Path::new("/nonexistent/x"), 1, A),
            Err(HashError::Io { .. })
        ));
    }

    #[tokio::test]
    async fn async_wrapper() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello world").unwrap();
        let h = hash_prefix_async(f.path().to_owned(), 5, A).await.unwrap();
        assert_eq!(h.finalize_hex(), sha_hex(b"hello"));
    }
}
