//! The BLAKE3 of a file whose chunks are hashed out of order (parallel lanes), from the
//! chaining values of its subtrees (`blake3::hazmat`), equal to what the sequential hasher gives.
//!
//! BLAKE3 is a binary tree over 1 KiB chunks whose left subtrees are complete powers of two. A
//! byte range `[a, b)` of the file decomposes into subtrees of that tree: from a position `p` on
//! a 1 KiB boundary, the largest power of two of chunks that `p` is a multiple of and that fits
//! before `b` (or the file's last, partial chunk). [`RangeHasher`] hashes a range streamed in
//! order into those subtrees ([`Leaf`]: offset, length, chaining value); bytes before the first
//! 1 KiB boundary of the range and after its last one are not hashed (they belong to a chunk
//! shared with the neighbouring range). [`Tree`] collects the leaves of a file, names the
//! [`Tree::gaps`] no leaf covers (those edges, chunks hashed before a restart), and merges the
//! leaves in tree order into the root ([`Tree::root`]).
//!
//! Only a few leaves per range (at most two per power of two), 32 bytes each: a 30 GiB file in
//! 64 MiB chunks keeps a few tens of KiB.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, max_subtree_len, merge_subtrees_non_root,
    merge_subtrees_root,
};

use super::hash::HashError;

/// Read buffer for [`Tree::fill_gaps`].
const BUF_SIZE: usize = 256 * 1024;

/// BLAKE3's chunk: subtrees start on multiples of it.
pub const CHUNK: u64 = blake3::CHUNK_LEN as u64;

/// One subtree of the file's BLAKE3 tree: bytes `[offset, offset + len)` and their chaining value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    pub offset: u64,
    pub len: u64,
    pub cv: ChainingValue,
}

/// The length of the subtree that starts at `p` (a multiple of [`CHUNK`]) in a range ending at
/// `end` (a multiple of [`CHUNK`], or the file's end `total`).
fn subtree_len(p: u64, end: u64, total: u64) -> u64 {
    let rest = end - p;
    if rest < CHUNK {
        return rest; // the file's last chunk, partial
    }
    let chunks = rest / CHUNK;
    let mut len = CHUNK << (u64::BITS - 1 - chunks.leading_zeros());
    if let Some(max) = max_subtree_len(p) {
        len = len.min(max);
    }
    if p == 0 && len == total {
        len /= 2; // the whole file is the root, not a subtree
    }
    len
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(CHUNK) * CHUNK
}

/// Hashes the bytes of `[start, end)` of a file of `total` bytes, streamed in order, into
/// subtree leaves. Bytes outside `[round_up(start), round_down(end))` (or up to `total` when
/// `end` is the file's end) are skipped: they are left as a gap for [`Tree`].
pub struct RangeHasher {
    /// Offset of the next byte fed.
    pos: u64,
    /// Hashed part: `[lo, hi)`.
    lo: u64,
    hi: u64,
    total: u64,
    /// The subtree being hashed: its offset, end and hasher.
    piece: Option<(u64, u64, Box<blake3::Hasher>)>,
    leaves: Vec<Leaf>,
}

impl std::fmt::Debug for RangeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeHasher")
            .field("pos", &self.pos)
            .field("lo", &self.lo)
            .field("hi", &self.hi)
            .field("leaves", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

impl RangeHasher {
    pub fn new(start: u64, end: u64, total: u64) -> RangeHasher {
        let end = end.min(total);
        let lo = round_up(start);
        let hi = if end == total {
            end
        } else {
            end / CHUNK * CHUNK
        };
        RangeHasher {
            pos: start,
            lo,
            hi: hi.max(lo),
            total,
            piece: None,
            leaves: Vec::new(),
        }
    }

    /// The next bytes of the range, in order.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.pos < self.lo || self.pos >= self.hi {
                let skip = if self.pos < self.lo {
                    (self.lo - self.pos).min(data.len() as u64)
                } else {
                    data.len() as u64
                };
                self.pos += skip;
                data = &data[usize::try_from(skip).unwrap_or(data.len())..];
                continue;
            }
            let (start, end, hasher) = self.piece.get_or_insert_with(|| {
                let p = self.pos;
                let mut h = Box::new(blake3::Hasher::new());
                if p > 0 {
                    h.set_input_offset(p);
                }
                (p, p + subtree_len(p, self.hi, self.total), h)
            });
            let n = usize::try_from(*end - self.pos).map_or(data.len(), |n| n.min(data.len()));
            hasher.update(&data[..n]);
            self.pos += n as u64;
            data = &data[n..];
            if self.pos == *end {
                let leaf = Leaf {
                    offset: *start,
                    len: *end - *start,
                    cv: hasher.finalize_non_root(),
                };
                self.leaves.push(leaf);
                self.piece = None;
            }
        }
    }

    /// The subtrees hashed completely (a subtree cut short by the end of the stream is dropped).
    pub fn finish(self) -> Vec<Leaf> {
        self.leaves
    }
}

/// The leaves of one file's BLAKE3 tree, merged into the root once they cover the file.
#[derive(Debug, Clone)]
pub struct Tree {
    total: u64,
    leaves: BTreeMap<u64, (u64, ChainingValue)>,
}

impl Tree {
    /// A tree for a file of `total` bytes; `None` for a file of one chunk (no subtrees).
    pub fn new(total: u64) -> Option<Tree> {
        (total > CHUNK).then(|| Tree {
            total,
            leaves: BTreeMap::new(),
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn insert(&mut self, leaves: impl IntoIterator<Item = Leaf>) {
        for l in leaves {
            if l.len > 0 && l.offset + l.len <= self.total {
                self.leaves.insert(l.offset, (l.len, l.cv));
            }
        }
    }

    /// The ranges of the file no leaf covers, in order (each starts on a chunk boundary and
    /// ends on one or at the file's end, so [`RangeHasher`] hashes it whole).
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        for (&offset, &(len, _)) in &self.leaves {
            if offset > at {
                out.push((at, offset));
            }
            at = at.max(offset + len);
        }
        if at < self.total {
            out.push((at, self.total));
        }
        out
    }

    /// Bytes no leaf covers.
    pub fn missing_bytes(&self) -> u64 {
        self.gaps().iter().map(|(a, b)| b - a).sum()
    }

    /// Hashes every gap from disk (positioned reads through `file`, a fixed buffer; `path` only
    /// names the file in errors); returns the bytes read.
    pub fn fill_gaps(&mut self, file: &File, path: &Path) -> Result<u64, HashError> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; BUF_SIZE];
        let mut read = 0;
        for (start, end) in self.gaps() {
            let mut h = RangeHasher::new(start, end, self.total);
            let mut at = start;
            while at < end {
                let want = usize::try_from(end - at).map_or(BUF_SIZE, |w| w.min(BUF_SIZE));
                let n = match file.read_at(&mut buf[..want], at) {
                    Ok(0) => {
                        return Err(HashError::Truncated {
                            path: path.to_owned(),
                            expected: end,
                            found: at,
                        });
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(HashError::Io {
                            path: path.to_owned(),
                            source,
                        });
                    }
                };
                h.update(&buf[..n]);
                at += n as u64;
                read += n as u64;
            }
            self.insert(h.finish());
        }
        Ok(read)
    }

    /// The root hash: `None` while a subtree is missing (or leaves do not fit the tree).
    pub fn root(&self) -> Option<blake3::Hash> {
        let mid = left_subtree_len(self.total);
        let left = self.node(0, mid)?;
        let right = self.node(mid, self.total)?;
        Some(merge_subtrees_root(&left, &right, Mode::Hash))
    }

    /// The chaining value of the non-root node `[lo, hi)`.
    fn node(&self, lo: u64, hi: u64) -> Option<ChainingValue> {
        if let Some(&(len, cv)) = self.leaves.get(&lo)
            && len == hi - lo
        {
            return Some(cv);
        }
        if hi - lo <= CHUNK {
            return None;
        }
        let mid = lo + left_subtree_len(hi - lo);
        let left = self.node(lo, mid)?;
        let right = self.node(mid, hi)?;
        Some(merge_subtrees_non_root(&left, &right, Mode::Hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> usize {
        usize::try_from(n).unwrap()
    }
    use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        StdRng::seed_from_u64(seed).fill(&mut v[..]);
        v
    }

    /// Hashes `ranges` of `data` in the given order, each streamed in pieces of `step` bytes,
    /// then the gaps, and returns the root.
    fn tree_hash(data: &[u8], ranges: &[(u64, u64)], step: usize) -> Option<blake3::Hash> {
        let total = data.len() as u64;
        let mut tree = Tree::new(total)?;
        for &(a, b) in ranges {
            let mut h = RangeHasher::new(a, b, total);
            for piece in data[us(a)..us(b)].chunks(step.max(1)) {
                h.update(piece);
            }
            tree.insert(h.finish());
        }
        for (a, b) in tree.gaps() {
            let mut h = RangeHasher::new(a, b, total);
            h.update(&data[us(a)..us(b)]);
            tree.insert(h.finish());
        }
        assert_eq!(tree.missing_bytes(), 0);
        tree.root()
    }

    /// A grid of `chunk` bytes from 0, its last one split off at `tail` bytes from the end
    /// (as lanes plan it), shuffled.
    fn grid(total: u64, first: u64, chunk: u64, tail: u64, rng: &mut StdRng) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        let mut at = 0;
        let mut len = first;
        while at < total {
            let end = (at + len).min(total);
            v.push((at, end));
            at = end;
            len = chunk;
        }
        if let Some(last) = v.pop() {
            let split = total.saturating_sub(tail).max(last.0);
            if split > last.0 {
                v.push((last.0, split));
            }
            v.push((split, last.1));
        }
        v.shuffle(rng);
        v
    }

    #[test]
    fn random_lengths_and_chunk_sizes_in_any_order_equal_the_sequential_hash() {
        let mut rng = StdRng::seed_from_u64(16);
        for round in 0..300 {
            let total = match round % 4 {
                0 => rng.random_range(1025..20_000u64),
                1 => rng.random_range(2..64u64) * CHUNK, // whole chunks
                _ => rng.random_range(1025..400_000u64),
            };
            let chunk = match round % 3 {
                0 => rng.random_range(1..40u64) * CHUNK, // chunk boundaries on 1 KiB
                _ => rng.random_range(100..70_000u64),   // arbitrary
            };
            let first = rng.random_range(1..=chunk);
            let tail = rng.random_range(0..5_000u64);
            let bytes = data(us(total), round);
            let ranges = grid(total, first, chunk, tail, &mut rng);
            let step = rng.random_range(1..100_000usize);
            assert_eq!(
                tree_hash(&bytes, &ranges, step),
                Some(blake3::hash(&bytes)),
                "total {total} first {first} chunk {chunk} tail {tail} step {step}"
            );
        }
    }

    #[test]
    fn one_chunk_powers_of_two_and_a_partial_last_chunk() {
        let mut rng = StdRng::seed_from_u64(7);
        for total in [
            1025,
            2 * CHUNK,
            2 * CHUNK + 1,
            4 * CHUNK,
            64 * CHUNK,
            64 * CHUNK - 1,
            64 * CHUNK + 1,
            1 << 20,
            (1 << 20) + 17,
        ] {
            let bytes = data(us(total), total);
            let want = Some(blake3::hash(&bytes));
            // The file in one range, in power-of-two ranges, and in 3 KiB ranges.
            assert_eq!(tree_hash(&bytes, &[(0, total)], 4096), want, "{total}");
            for chunk in [CHUNK, 8 * CHUNK, 3 * CHUNK, 5000] {
                let ranges = grid(total, chunk, chunk, 0, &mut rng);
                assert_eq!(tree_hash(&bytes, &ranges, 999), want, "{total}/{chunk}");
            }
            // Nothing streamed: every byte comes from the gaps.
            assert_eq!(tree_hash(&bytes, &[], 1), want, "{total}");
        }
        assert!(Tree::new(CHUNK).is_none(), "one chunk has no subtrees");
    }

    #[test]
    fn a_missing_or_cut_short_subtree_gives_no_root() {
        let total = 10 * CHUNK + 5;
        let bytes = data(us(total), 1);
        let mut tree = Tree::new(total).unwrap();
        let mut h = RangeHasher::new(0, 8 * CHUNK, total);
        h.update(&bytes[..us(8 * CHUNK)]);
        tree.insert(h.finish());
        let mut cut = RangeHasher::new(8 * CHUNK, total, total);
        cut.update(&bytes[us(8 * CHUNK)..us(9 * CHUNK) + 3]);
        let leaves = cut.finish();
        assert!(
            leaves.is_empty(),
            "the subtree [8, 10) chunks cut short is dropped"
        );
        tree.insert(leaves);
        assert_eq!(tree.gaps(), vec![(8 * CHUNK, total)]);
        assert_eq!(tree.root(), None);
        // A range's edges off a chunk boundary are left as gaps.
        let h = RangeHasher::new(100, 3 * CHUNK + 7, total);
        let mut t = Tree::new(total).unwrap();
        let mut h2 = h;
        h2.update(&bytes[100..us(3 * CHUNK) + 7]);
        t.insert(h2.finish());
        assert_eq!(t.gaps(), vec![(0, CHUNK), (3 * CHUNK, total)]);
    }

    #[test]
    fn gaps_are_filled_from_the_file() {
        use std::io::Write;
        let bytes = data(200_000, 3);
        let total = bytes.len() as u64;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let mut tree = Tree::new(total).unwrap();
        let mut h = RangeHasher::new(5000, 150_000, total);
        h.update(&bytes[5000..150_000]);
        tree.insert(h.finish());
        let missing = tree.missing_bytes();
        assert!(missing < 60_000, "{missing}");
        assert_eq!(tree.fill_gaps(f.as_file(), f.path()).unwrap(), missing);
        assert_eq!(tree.root(), Some(blake3::hash(&bytes)));
        let mut short = Tree::new(total + 5000).unwrap();
        assert!(matches!(
            short.fill_gaps(f.as_file(), f.path()),
            Err(HashError::Truncated { .. })
        ));
    }

    #[test]
    fn leaves_stay_few() {
        let total = 30 << 30;
        let chunk = 64 << 20;
        let mut at = 5 << 20;
        let mut most = 0;
        while at < total {
            let end = (at + chunk).min(total);
            let (mut p, mut n) = (at, 0);
            while p < end {
                p += subtree_len(p, end, total);
                n += 1;
            }
            most = most.max(n);
            at = end;
        }
        assert!(most <= 2 * 27, "{most} leaves for one chunk");
    }
}
