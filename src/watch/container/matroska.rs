//! Matroska and WebM: an EBML header, then a Segment whose size is known and ends exactly at the
//! end of the file, its top-level elements (SeekHead, Info, Tracks, Clusters, Cues, …) tiling
//! it. A muxer writes the Segment's size when it finishes, so an unknown-size Segment (all size
//! bits set) is a recording still in progress.

use super::{Parsed, Reader, Stop, Why};

pub const EBML_ID: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
pub const SEGMENT_ID: u32 = 0x1853_8067;
pub const VOID_ID: u32 = 0xEC;

/// One element header: its ID, its data size (`None` = unknown) and the header's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u32,
    pub size: Option<u64>,
    pub len: u64,
}

/// Parses an element header from `b` (up to 12 bytes). `None`: not a valid header.
pub(crate) fn parse_header(b: &[u8]) -> Option<Header> {
    let first = *b.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 || b.len() < id_len + 1 {
        return None;
    }
    let id = b[..id_len]
        .iter()
        .fold(0u32, |a, &x| (a << 8) | u32::from(x));
    let s0 = b[id_len];
    let size_len = s0.leading_zeros() as usize + 1;
    if size_len > 8 || b.len() < id_len + size_len {
        return None;
    }
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let mut v = u64::from(s0 & mask);
    for &x in &b[id_len + 1..id_len + size_len] {
        v = (v << 8) | u64::from(x);
    }
    let all_ones = (1u64 << (7 * size_len)) - 1;
    Some(Header {
        id,
        size: (v != all_ones).then_some(v),
        len: (id_len + size_len) as u64,
    })
}

fn name(id: u32) -> String {
    match id {
        0x1A45_DFA3 => "EBML header".into(),
        SEGMENT_ID => "Segment".into(),
        0x114D_9B74 => "SeekHead".into(),
        0x1549_A966 => "Info".into(),
        0x1654_AE6B => "Tracks".into(),
        0x1F43_B675 => "Cluster".into(),
        0x1C53_BB6B => "Cues".into(),
        0x1043_A770 => "Chapters".into(),
        0x1254_C367 => "Tags".into(),
        0x1941_A469 => "Attachments".into(),
        VOID_ID => "Void".into(),
        0xBF => "CRC-32".into(),
        other => format!("element 0x{other:X}"),
    }
}

/// Reads the element header at `pos`; `Ok(Err)` when the file ends inside it or it is invalid.
fn header_at(r: &mut Reader<'_>, pos: u64, end: u64) -> Result<Result<Header, Why>, Stop> {
    let mut b = [0u8; 12];
    let want = (end - pos).min(12) as usize;
    let n = r.at(pos, &mut b[..want])?;
    match parse_header(&b[..n]) {
        Some(h) => Ok(Ok(h)),
        None if n < 12 && b.first().is_some_and(|&x| x != 0) => Ok(Err(Why::Unfinished(format!(
            "the file ends inside an element header at byte {pos} (still being written)"
        )))),
        None => Ok(Err(Why::Damaged(format!(
            "byte {pos} does not start a valid element"
        )))),
    }
}

pub(crate) fn check(r: &mut Reader<'_>) -> Parsed {
    let size = r.size;
    let ebml = match header_at(r, 0, size)? {
        Ok(h) => h,
        Err(w) => return Ok(Err(w)),
    };
    if ebml.id.to_be_bytes() != EBML_ID {
        return Ok(Err(Why::Damaged("no EBML header at the start".into())));
    }
    let Some(ebml_size) = ebml.size else {
        return Ok(Err(Why::Damaged(
            "the EBML header has an unknown size".into(),
        )));
    };
    let mut pos = match ebml.len.checked_add(ebml_size) {
        Some(p) if p <= size => p,
        _ => {
            return Ok(Err(Why::Unfinished(
                "the file ends inside the EBML header (still being written)".into(),
            )));
        }
    };
    // Void elements may sit between the EBML header and the Segment.
    let seg = loop {
        if pos >= size {
            return Ok(Err(Why::Unfinished(
                "no Segment yet (the recorder has not written its first data)".into(),
            )));
        }
        let h = match header_at(r, pos, size)? {
            Ok(h) => h,
            Err(w) => return Ok(Err(w)),
        };
        match (h.id, h.size) {
            (SEGMENT_ID, _) => break h,
            (VOID_ID, Some(s)) if pos + h.len + s <= size => pos += h.len + s,
            (id, _) => {
                return Ok(Err(Why::Damaged(format!(
                    "expected a Segment at byte {pos}, found the {}",
                    name(id)
                ))));
            }
        }
    };
    let Some(seg_size) = seg.size else {
        return Ok(Err(Why::Unfinished(
            "the Segment has an unknown size: the recorder is still writing (it writes the size \
             when it finishes the file)"
                .into(),
        )));
    };
    let start = pos + seg.len;
    let seg_end = match start.checked_add(seg_size) {
        Some(e) => e,
        None => return Ok(Err(Why::Damaged("the Segment size is impossible".into()))),
    };
    if seg_end > size {
        return Ok(Err(Why::Unfinished(format!(
            "the Segment needs {seg_size} bytes but the file ends {} bytes into it (still being \
             written)",
            size.saturating_sub(start)
        ))));
    }
    if seg_end < size {
        return Ok(Err(Why::Damaged(format!(
            "{} bytes follow the end of the Segment",
            size - seg_end
        ))));
    }
    // The Segment's size is written last: once it matches, running out of budget among many
    // Clusters is no doubt about completeness.
    match tile(r, start, seg_end) {
        Err(Stop::Budget) => Ok(Ok(())),
        other => other,
    }
}

/// The Segment's top-level elements must tile `start..end`.
fn tile(r: &mut Reader<'_>, start: u64, end: u64) -> Parsed {
    let mut pos = start;
    while pos < end {
        let h = match header_at(r, pos, end)? {
            Ok(h) => h,
            Err(Why::Unfinished(_)) => {
                return Ok(Err(Why::Damaged(format!(
                    "the Segment ends inside an element header at byte {pos}"
                ))));
            }
            Err(w) => return Ok(Err(w)),
        };
        let Some(s) = h.size else {
            // A live muxer's unknown-size Cluster: the Segment's known size already says the
            // file is finished.
            return Ok(Ok(()));
        };
        match pos.checked_add(h.len).and_then(|p| p.checked_add(s)) {
            Some(next) if next <= end => pos = next,
            _ => {
                return Ok(Err(Why::Damaged(format!(
                    "the {} at byte {pos} runs past the end of the Segment",
                    name(h.id)
                ))));
            }
        }
    }
    Ok(Ok(()))
}
