//! Chunk planning: which byte ranges of a file go in which request.
//!
//! Ranges are self-describing file offsets (`Content-Range: bytes FROM-TO/TOTAL`, inclusive), so a
//! resumed upload needs only the committed offset: [`chunk_at`] gives the chunk that starts there.
//! Every chunk is exactly `chunk_size` bytes except the last, which is shorter or equal.

use std::fmt;

/// One chunk of a file: `len` bytes starting at `offset` of a `total`-byte file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRange {
    pub offset: u64,
    pub len: u64,
    pub total: u64,
}

impl ChunkRange {
    /// First byte after the chunk (`offset + len`).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// Whether this chunk completes the file.
    pub fn is_last(&self) -> bool {
        self.end() >= self.total
    }

    /// The `Content-Range` header value: `bytes FROM-TO/TOTAL`, `TO` inclusive.
    pub fn content_range(&self) -> String {
        let last = self.end().saturating_sub(1);
        format!("bytes {}-{}/{}", self.offset, last, self.total)
    }
}

impl fmt::Display for ChunkRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.content_range())
    }
}

/// The chunk starting at `offset` (a committed offset when resuming): `min(chunk_size, total - offset)`
/// bytes. A `chunk_size` of 0 is treated as 1 so that planning always terminates.
pub fn chunk_at(offset: u64, total: u64, chunk_size: u64) -> ChunkRange {
    let chunk_size = chunk_size.max(1);
    ChunkRange {
        offset,
        len: chunk_size.min(total.saturating_sub(offset)),
        total,
    }
}

/// All chunks of a `total`-byte file, in order, covering `[0, total)` without gaps or overlap.
/// An empty file has no chunks.
pub fn plan_chunks(total: u64, chunk_size: u64) -> impl Iterator<Item = ChunkRange> {
    let mut next = 0u64;
    std::iter::from_fn(move || {
        if next >= total {
            return None;
        }
        let chunk = chunk_at(next, total, chunk_size);
        next = chunk.end();
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_is_inclusive() {
        let c = ChunkRange {
            offset: 0,
            len: 104_857_600,
            total: 281_905_832,
        };
        assert_eq!(c.content_range(), "bytes 0-104857599/281905832");
        let last = chunk_at(209_715_200, 281_905_832, 104_857_600);
        assert_eq!(last.content_range(), "bytes 209715200-281905831/281905832");
        assert!(last.is_last());
        assert!(!c.is_last());
    }

    #[test]
    fn exact_multiple_and_empty() {
        let v: Vec<_> = plan_chunks(10, 5).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1],
            ChunkRange {
                offset: 5,
                len: 5,
                total: 10
            }
        );
        assert_eq!(plan_chunks(0, 5).count(), 0);
        assert_eq!(plan_chunks(3, 0).count(), 3);
    }

    proptest! {
        #[test]
        fn plan_is_contiguous_and_covers(total in 0u64..5_000_000, chunk_size in 1u64..700_000) {
            let chunks: Vec<_> = plan_chunks(total, chunk_size).collect();
            let mut expect = 0u64;
            for (i, c) in chunks.iter().enumerate() {
                prop_assert_eq!(c.offset, expect);
                prop_assert_eq!(c.total, total);
                prop_assert!(c.len > 0);
                if i + 1 < chunks.len() {
                    prop_assert_eq!(c.len, chunk_size);
                    prop_assert!(!c.is_last());
                } else {
                    prop_assert!(c.len <= chunk_size);
                    prop_assert!(c.is_last());
                }
                expect = c.end();
            }
            prop_assert_eq!(expect, total);
            prop_assert_eq!(chunks.len() as u64, total.div_ceil(chunk_size));
        }

        #[test]
        fn chunk_at_agrees_with_plan(total in 1u64..5_000_000, chunk_size in 1u64..700_000, pick in any::<prop::sample::Index>()) {
            let chunks: Vec<_> = plan_chunks(total, chunk_size).collect();
            let c = chunks[pick.index(chunks.len())];
            prop_assert_eq!(chunk_at(c.offset, total, chunk_size), c);
            // Resuming from any chunk's start replans exactly the remaining chunks.
            let rest: Vec<_> = std::iter::successors(Some(chunk_at(c.offset, total, chunk_size)), |p| {
                (!p.is_last()).then(|| chunk_at(p.end(), total, chunk_size))
            }).collect();
            prop_assert_eq!(&rest[..], &chunks[pick.index(chunks.len())..]);
        }

        #[test]
        fn huge_files_do_not_overflow(total in (u64::MAX - 1_000_000)..u64::MAX, chunk_size in 1u64..200_000_000) {
            let c = chunk_at(total - 1, total, chunk_size);
            prop_assert_eq!(c.len, 1);
            prop_assert!(c.is_last());
        }
    }
}
