//! Reused buffers for the pieces of upload bodies. A piece is read into a [`PieceBuf`], handed to
//! the connection as [`Bytes`], and its buffer comes back to a small process-wide spare list
//! when the connection drops those bytes. Allocating 512 KiB per piece made the allocator give
//! pages back and fault them in again once several lanes allocate and free pieces on different
//! threads (4 lanes: 11× the page faults of one lane, docs/BENCHMARKS.md). At most
//! [`SPARE_MAX`] buffers wait in the list; more are freed.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse at most (4 MiB of 512 KiB pieces: two pieces for each of the 8
/// connections `[upload] max_connections` allows by default would be 8 MiB; half of them is
/// plenty since a piece is back as soon as the socket took it).
const SPARE_MAX: usize = 8;

static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A piece's buffer; back to the spare list when dropped (also once shared as [`Bytes`]).
pub(super) struct PieceBuf {
    buf: Vec<u8>,
    capacity: usize,
}

impl PieceBuf {
    /// An empty buffer of `capacity` bytes: a spare one of that size, else a new one.
    pub(super) fn take(capacity: usize) -> PieceBuf {
        let spare = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let buf = match spare {
            Some(b) if b.capacity() == capacity => b,
            _ => Vec::with_capacity(capacity),
        };
        PieceBuf { buf, capacity }
    }

    pub(super) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The bytes, shared without a copy; the buffer comes back when the last clone is dropped.
    pub(super) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PieceBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PieceBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() != self.capacity {
            return;
        }
        buf.clear();
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_piece_is_reused_and_the_list_stays_small() {
        const CAP: usize = 4096;
        let mut p = PieceBuf::take(CAP);
        p.vec().extend_from_slice(b"piece");
        let at = p.as_ref().as_ptr();
        let bytes = p.into_bytes();
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(
            &clone[..],
            b"piece",
            "shared bytes stay until the last clone"
        );
        drop(clone);
        let mut again = PieceBuf::take(CAP);
        assert!(again.vec().is_empty());
        assert_eq!(again.vec().as_ptr(), at, "the same buffer, reused");
        drop(again);
        let many: Vec<PieceBuf> = (0..SPARE_MAX + 5).map(|_| PieceBuf::take(CAP)).collect();
        drop(many);
        assert!(SPARE.lock().unwrap().len() <= SPARE_MAX);
    }
}
