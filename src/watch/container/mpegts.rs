//! MPEG-TS (`.ts`, `.mts`: 188-byte packets; `.m2ts`: 192-byte packets with a 4-byte time
//! code first): the size must be a whole number of packets and the sync byte 0x47 must sit at
//! the start of the first, middle and last packets. TS has no end marker: a TS that passes is
//! only "not visibly cut", and settle still decides when it is finished.

use super::{Parsed, Reader, Why};

const SYNC: u8 = 0x47;

pub(crate) fn check(r: &mut Reader<'_>) -> Parsed {
    let size = r.size;
    if size == 0 {
        return Ok(Err(Why::Unfinished("the file is empty".into())));
    }
    let layouts: Vec<(u64, u64)> = [(188u64, 0u64), (192, 4)]
        .into_iter()
        .filter(|(p, _)| size % p == 0)
        .collect();
    if layouts.is_empty() {
        return Ok(Err(Why::Unfinished(format!(
            "{size} bytes is not a whole number of 188- or 192-byte packets (the last packet is \
             cut: still being written)"
        ))));
    }
    let mut first_bad = 0;
    for (packet, sync_at) in layouts {
        let n = size / packet;
        let mut ok = true;
        for k in [0, n / 2, n - 1] {
            let at = k * packet + sync_at;
            let mut b = [0u8; 1];
            r.at(at, &mut b)?;
            if b[0] != SYNC {
                first_bad = at;
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(Ok(()));
        }
    }
    Ok(Err(Why::Damaged(format!(
        "no sync byte (0x47) at byte {first_bad}"
    ))))
}
