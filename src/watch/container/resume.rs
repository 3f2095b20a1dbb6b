//! Where the walk of a long fragmented MP4 stopped, per file (device, inode), so that the next
//! check goes on from the last whole box instead of starting again: a recording of thousands of
//! fragments is walked a budget at a time across checks, each check still within [`BUDGET`]
//! bytes and [`MAX_READS`] reads.
//!
//! A saved walk is trusted only while the file still starts with the same 16 bytes, the box
//! before the saved position still has the same header, and the file has not shrunk below it;
//! otherwise the walk starts again from byte 0. Only fragmented files are remembered, at most
//! [`CAPACITY`] of them (the oldest entries go first).
//!
//! [`BUDGET`]: super::BUDGET
//! [`MAX_READS`]: super::MAX_READS

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Reader, Stop};

/// Files remembered at most.
pub const CAPACITY: usize = 1024;

/// Which file: (device, inode).
pub type Key = (u64, u64);

/// The state of an ISO-BMFF top-level walk at a box boundary: everything before `pos` tiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Walk {
    /// The next box starts here.
    pub pos: u64,
    /// The last `moov` seen: (offset, length).
    pub moov: Option<(u64, u64)>,
    /// A `moof` not yet followed by its `mdat`.
    pub open_fragment: Option<u64>,
    /// The last `moof` seen.
    pub last_moof: Option<u64>,
    /// `moof` boxes seen.
    pub fragments: u64,
    /// The type of the last box (e.g. `mfra`).
    pub last_type: [u8; 4],
    /// Where the last box starts, and its first 8 bytes.
    pub last_at: u64,
    pub last_header: [u8; 8],
    /// The first 16 bytes of the file.
    pub head: [u8; 16],
}

struct Saved {
    walk: Walk,
    /// Insertion order, for eviction.
    stamp: u64,
}

static CACHE: Mutex<Option<(HashMap<Key, Saved>, u64)>> = Mutex::new(None);

/// The saved walk of `key` if it still fits the file behind `r` (two small reads), else a walk
/// from the start. A new walk reads its 16 head bytes.
pub(crate) fn load(key: Option<Key>, r: &mut Reader<'_>) -> Result<Walk, Stop> {
    let mut head = [0u8; 16];
    r.at(0, &mut head)?;
    let fresh = Walk {
        head,
        ..Walk::default()
    };
    let Some(key) = key else {
        return Ok(fresh);
    };
    let saved = {
        let guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .and_then(|(m, _)| m.get(&key))
            .map(|s| s.walk.clone())
    };
    let Some(w) = saved else {
        return Ok(fresh);
    };
    if w.pos == 0 || w.pos > r.size || w.head != head {
        return Ok(fresh);
    }
    let mut h = [0u8; 8];
    r.at(w.last_at, &mut h)?;
    Ok(if h == w.last_header { w } else { fresh })
}

/// Remembers `walk` for `key` (fragmented files only).
pub(crate) fn store(key: Option<Key>, walk: &Walk) {
    let Some(key) = key else {
        return;
    };
    if walk.fragments == 0 {
        return;
    }
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let (map, clock) = guard.get_or_insert_with(|| (HashMap::new(), 0));
    *clock += 1;
    if map.len() >= CAPACITY && !map.contains_key(&key) {
        // The oldest quarter goes: eviction stays rare and cheap.
        let mut stamps: Vec<u64> = map.values().map(|s| s.stamp).collect();
        stamps.sort_unstable();
        let cut = stamps[CAPACITY / 4];
        map.retain(|_, s| s.stamp > cut);
    }
    map.insert(
        key,
        Saved {
            walk: walk.clone(),
            stamp: *clock,
        },
    );
}

/// Forgets `key` (tests).
#[cfg(test)]
pub(crate) fn forget(key: Key) {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((m, _)) = guard.as_mut() {
        m.remove(&key);
    }
}
