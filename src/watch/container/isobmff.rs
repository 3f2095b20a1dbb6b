//! ISO-BMFF (MP4, MOV, M4V, 3GP, M4A): the top-level boxes (32- or 64-bit sizes) must tile the
//! file exactly, a `moov` must exist, no box may be open-ended (size 0, as a recorder leaves
//! `mdat` while writing) or run past the end of the file, and a fragmented file (`moof`/`mdat`
//! pairs, optional `mfra`; hybrid MP4 alike) must end with a whole fragment.

use super::resume::{self, Key, Walk};
use super::{Parsed, Reader, Stop, Why};

/// Checks the file behind `r`, `key` naming it for [`resume`]. A walk that runs out of budget
/// among many fragments is saved, so that the next check goes on from there; meanwhile a
/// trailing `mfra` (found through its `mfro`) proves the file finished, else the answer is
/// [`Why::Pending`].
pub(crate) fn check(r: &mut Reader<'_>, key: Option<Key>) -> Parsed {
    let mut w = resume::load(key, r)?;
    let result = walk(r, &mut w);
    resume::store(key, &w);
    match result {
        // Past the last box (a moov too large to read within the budget): as before, `Unknown`.
        Err(Stop::Budget) if w.pos >= r.size => tail_mfra(r),
        Err(Stop::Budget) => match tail_mfra(r) {
            Err(Stop::Budget) => Ok(Err(Why::Pending(format!(
                "a long fragmented file: {} fragments checked, up to byte {} of {}; the check \
                 goes on from there",
                w.fragments, w.pos, r.size
            )))),
            other => other,
        },
        other => other,
    }
}

/// Walks the top-level boxes from `w.pos` to the end, `w` following each whole box.
fn walk(r: &mut Reader<'_>, w: &mut Walk) -> Parsed {
    let size = r.size;
    while w.pos < size {
        let pos = w.pos;
        let left = size - pos;
        if left < 8 {
            return Ok(Err(Why::Unfinished(format!(
                "the file ends {left} bytes into a box header at byte {pos} (still being written)"
            ))));
        }
        let mut h = [0u8; 16];
        r.at(pos, &mut h[..8])?;
        let typ: [u8; 4] = [h[4], h[5], h[6], h[7]];
        if !typ.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Ok(Err(Why::Damaged(format!(
                "byte {pos} does not start a box (type bytes {:02x?})",
                typ
            ))));
        }
        let name = String::from_utf8_lossy(&typ).into_owned();
        let small = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let len = match small {
            0 => {
                return Ok(Err(Why::Unfinished(format!(
                    "the {name} box at byte {pos} is open (size 0): the recorder is still \
                     writing it, or stopped before it finished the file"
                ))));
            }
            1 => {
                if left < 16 {
                    return Ok(Err(Why::Unfinished(format!(
                        "the file ends inside the 64-bit size of the {name} box at byte {pos} \
                         (still being written)"
                    ))));
                }
                r.at(pos + 8, &mut h[8..16])?;
                let large =
                    u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
                if large < 16 {
                    return Ok(Err(Why::Damaged(format!(
                        "the {name} box at byte {pos} has an impossible 64-bit size {large}"
                    ))));
                }
                large
            }
            2..=7 => {
                return Ok(Err(Why::Damaged(format!(
                    "the {name} box at byte {pos} has an impossible size {small}"
                ))));
            }
            n => u64::from(n),
        };
        if len > left {
            return Ok(Err(Why::Unfinished(format!(
                "the {name} box at byte {pos} needs {len} bytes but the file ends {left} bytes \
                 into it (still being written)"
            ))));
        }
        match &typ {
            b"moov" => w.moov = Some((pos, len)),
            b"moof" => {
                w.open_fragment = Some(pos);
                w.last_moof = Some(pos);
                w.fragments += 1;
            }
            b"mdat" => w.open_fragment = None,
            _ => {}
        }
        w.last_type = typ;
        w.last_at = pos;
        w.last_header.copy_from_slice(&h[..8]);
        w.pos = pos + len;
    }
    let Some((moov_at, moov_len)) = w.moov else {
        return Ok(Err(Why::Unfinished(
            "no moov box yet (the recorder has not finished the file)".into(),
        )));
    };
    // A moov-first file copied in order (faststart) is whole up to its moov before any media
    // byte is there: the chunk offsets in the moov say where the media must be.
    let end = max_chunk_offset(r, moov_at, moov_len)?;
    if end >= size {
        return Ok(Err(Why::Unfinished(format!(
            "the moov box points at media data at byte {end}, past the end of the file \
             ({size} bytes; still being written)"
        ))));
    }
    // `empty_moov` (fragmented ffmpeg, OBS): a moov announcing fragments (`mvex`) is written
    // first, the media follows in fragments.
    if w.fragments == 0 && has_mvex(r, moov_at, moov_len)? {
        return Ok(Err(Why::Unfinished(
            "the moov box announces fragments (mvex) but none follows it yet (still being \
             written)"
                .into(),
        )));
    }
    if let Some(at) = w.open_fragment {
        return Ok(Err(Why::Unfinished(format!(
            "the last fragment (moof at byte {at}) has no mdat yet (still being written)"
        ))));
    }
    // Fragments after the last moov: a fragmented recording. It ends with a whole fragment at
    // every pause of its recorder; only the `mfra` a muxer writes when it finishes (ffmpeg
    // does unless told `skip_trailer`) proves it finished. A hybrid MP4 ends with a regular
    // moov after its fragments, proved by its chunk offsets above.
    if w.last_moof.is_some_and(|m| m > moov_at) && &w.last_type != b"mfra" {
        return Ok(Err(Why::Unproven(format!(
            "a fragmented file ({} fragments) with no mfra at its end: it ends with a whole \
             fragment, as it does at every pause of its recorder",
            w.fragments
        ))));
    }
    Ok(Ok(()))
}

/// A fragmented file too long to walk within the budget: complete if it ends with an `mfra`
/// whose `mfro` (its last 16 bytes) points back at it. Otherwise the check cannot tell.
fn tail_mfra(r: &mut Reader<'_>) -> Parsed {
    let size = r.size;
    if size < 24 {
        return Err(Stop::Budget);
    }
    // The tail reads get their own small allowance.
    r.read = r.read.min(super::BUDGET - 24);
    r.reads = r.reads.min(super::MAX_READS - 2);
    let mut mfro = [0u8; 16];
    r.at(size - 16, &mut mfro)?;
    if u32::from_be_bytes([mfro[0], mfro[1], mfro[2], mfro[3]]) != 16 || &mfro[4..8] != b"mfro" {
        return Err(Stop::Budget);
    }
    let mfra_len = u64::from(u32::from_be_bytes([mfro[12], mfro[13], mfro[14], mfro[15]]));
    if mfra_len < 24 || mfra_len > size {
        return Err(Stop::Budget);
    }
    let mut h = [0u8; 8];
    r.at(size - mfra_len, &mut h)?;
    if u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]])) == mfra_len && &h[4..8] == b"mfra" {
        Ok(Ok(()))
    } else {
        Err(Stop::Budget)
    }
}

/// The header of the box at `pos` inside a parent ending at `end`: (type, header length, total
/// length). `None` when it does not fit (a damaged moov is judged by its offsets alone).
fn child(r: &mut Reader<'_>, pos: u64, end: u64) -> Result<Option<([u8; 4], u64, u64)>, Stop> {
    if end - pos < 8 {
        return Ok(None);
    }
    let mut h = [0u8; 16];
    r.at(pos, &mut h[..8])?;
    let typ = [h[4], h[5], h[6], h[7]];
    let (hl, len) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
        1 if end - pos >= 16 => {
            r.at(pos + 8, &mut h[8..16])?;
            (
                16,
                u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
            )
        }
        n if n >= 8 => (8, u64::from(n)),
        _ => return Ok(None),
    };
    if len < hl || len > end - pos {
        return Ok(None);
    }
    Ok(Some((typ, hl, len)))
}

/// Whether the moov at `moov_at` holds an `mvex` (movie extends: the media is in fragments).
fn has_mvex(r: &mut Reader<'_>, moov_at: u64, moov_len: u64) -> Result<bool, Stop> {
    let (mut pos, end) = (moov_at + 8, moov_at + moov_len);
    while pos < end {
        let Some((typ, _, len)) = child(r, pos, end)? else {
            return Ok(false);
        };
        if &typ == b"mvex" {
            return Ok(true);
        }
        pos += len;
    }
    Ok(false)
}

/// The largest chunk offset of any track (`trak/mdia/minf/stbl/stco|co64`, last entry), 0 if
/// none: the first byte of media a complete file must hold.
fn max_chunk_offset(r: &mut Reader<'_>, moov_at: u64, moov_len: u64) -> Result<u64, Stop> {
    let mut max = 0u64;
    let mut stack = vec![(moov_at + 8, moov_at + moov_len, 0usize)];
    const PATH: [&[u8; 4]; 4] = [b"trak", b"mdia", b"minf", b"stbl"];
    while let Some((mut pos, end, depth)) = stack.pop() {
        while pos < end {
            let Some((typ, hl, len)) = child(r, pos, end)? else {
                break;
            };
            if depth < PATH.len() && &typ == PATH[depth] {
                stack.push((pos + hl, pos + len, depth + 1));
            } else if depth == PATH.len() && (&typ == b"stco" || &typ == b"co64") {
                let wide = &typ == b"co64";
                let body = pos + hl;
                let mut n = [0u8; 4];
                if len >= hl + 8 {
                    r.at(body + 4, &mut n)?;
                    let count = u64::from(u32::from_be_bytes(n));
                    let w = if wide { 8 } else { 4 };
                    let last = body + 8 + count.saturating_sub(1) * w;
                    if count > 0 && last + w <= pos + len {
                        let mut e = [0u8; 8];
                        r.at(last, &mut e[..if wide { 8 } else { 4 }])?;
                        let off = if wide {
                            u64::from_be_bytes(e)
                        } else {
                            u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
                        };
                        max = max.max(off);
                    }
                }
            }
            pos += len;
        }
    }
    Ok(max)
}
