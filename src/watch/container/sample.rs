//! Small, structurally valid container files (no codec data: boxes and elements with real
//! sizes around arbitrary payload bytes), for tests, benches and `ingestd demo`.
//!
//! [`wrap`] splits a file of a given total size into a header, a payload length and a trailer,
//! so a caller can stream pseudo-random payload between them and keep the total size it asked for.

use super::Format;
use super::matroska::{SEGMENT_ID, VOID_ID};

/// An ISO-BMFF box: 32-bit size, or 64-bit when it does not fit.
pub fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = box_header(kind, body.len() as u64);
    b.extend_from_slice(body);
    b
}

/// The header of a box whose body is `body_len` bytes.
pub fn box_header(kind: &[u8; 4], body_len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    match u32::try_from(body_len + 8) {
        Ok(n) => b.extend_from_slice(&n.to_be_bytes()),
        Err(_) => b.extend_from_slice(&1u32.to_be_bytes()),
    }
    b.extend_from_slice(kind);
    if u32::try_from(body_len + 8).is_err() {
        b.extend_from_slice(&(body_len + 16).to_be_bytes());
    }
    b
}

/// `ftyp` with `brand` as major and compatible brand.
pub fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
    let mut body = brand.to_vec();
    body.extend_from_slice(&0x200u32.to_be_bytes());
    body.extend_from_slice(brand);
    mp4_box(b"ftyp", &body)
}

/// A `moov` holding an `mvhd` (version 0, timescale 1000, `duration_ms`) and, with
/// `chunk_offset`, one track whose one chunk starts at that byte (`trak/mdia/minf/stbl/stco`).
pub fn moov(duration_ms: u32, chunk_offset: Option<u32>) -> Vec<u8> {
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
    mvhd[16..20].copy_from_slice(&duration_ms.to_be_bytes());
    mvhd[20..24].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    mvhd[24..26].copy_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    mvhd[96..100].copy_from_slice(&2u32.to_be_bytes()); // next track id
    let mut body = mp4_box(b"mvhd", &mvhd);
    if let Some(off) = chunk_offset {
        let stco = [&[0u8; 4][..], &1u32.to_be_bytes(), &off.to_be_bytes()].concat();
        let stbl = mp4_box(b"stbl", &mp4_box(b"stco", &stco));
        let trak = mp4_box(b"trak", &mp4_box(b"mdia", &mp4_box(b"minf", &stbl)));
        body.extend(trak);
    }
    mp4_box(b"moov", &body)
}

/// The size of [`moov`] with a chunk offset.
fn moov_len() -> usize {
    moov(0, Some(0)).len()
}

/// A whole MP4 (or MOV with `mov`): `ftyp`, then `moov` and `mdat` (moov first or last); the
/// moov's one track points at the start of the mdat's payload.
pub fn mp4(payload: &[u8], moov_first: bool, mov: bool) -> Vec<u8> {
    let mut f = ftyp(if mov { b"qt  " } else { b"isom" });
    let d = mp4_box(b"mdat", payload);
    if moov_first {
        let off = u32::try_from(f.len() + moov_len() + 8).unwrap_or(u32::MAX);
        f.extend(moov(1000, Some(off)));
        f.extend(d);
    } else {
        let off = u32::try_from(f.len() + 8).unwrap_or(u32::MAX);
        f.extend(d);
        f.extend(moov(1000, Some(off)));
    }
    f
}

/// A fragmented MP4: `ftyp`, `moov` (with `mvex`), one `moof`+`mdat` pair per payload, and an `mfra` ending
/// with its `mfro` when `mfra`.
// Sequence numbers and time codes in sample data wrap on purpose.
#[allow(clippy::cast_possible_truncation)]
pub fn fragmented_mp4(fragments: &[&[u8]], mfra: bool) -> Vec<u8> {
    let mut f = ftyp(b"iso6");
    // The moov announces fragments: `mvex` with one `trex` (track 1).
    let trex = [&[0u8; 4][..], &1u32.to_be_bytes(), &[0u8; 16]].concat();
    let mut body = moov(1000, None)[8..].to_vec();
    body.extend(mp4_box(b"mvex", &mp4_box(b"trex", &trex)));
    f.extend(mp4_box(b"moov", &body));
    for (i, p) in fragments.iter().enumerate() {
        let mfhd = mp4_box(
            b"mfhd",
            &[&[0u8; 4][..], &(i as u32 + 1).to_be_bytes()].concat(),
        );
        f.extend(mp4_box(b"moof", &mfhd));
        f.extend(mp4_box(b"mdat", p));
    }
    if mfra {
        let mut mfro = vec![0u8; 4];
        // mfra = header 8 + mfro 16.
        mfro.extend_from_slice(&24u32.to_be_bytes());
        f.extend(mp4_box(b"mfra", &mp4_box(b"mfro", &mfro)));
    }
    f
}

/// An EBML variable-size integer of `width` bytes holding `v`.
fn vint(v: u64, width: usize) -> Vec<u8> {
    let mut out = v.to_be_bytes()[8 - width..].to_vec();
    out[0] |= 0x80 >> (width - 1);
    out
}

/// The smallest vint width that can hold `v` (never all ones).
fn vint_width(v: u64) -> usize {
    (1..=8).find(|&w| v < (1u64 << (7 * w)) - 1).unwrap_or(8)
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(3);
    b[skip..].to_vec()
}

/// A Matroska element with `body`.
pub fn ebml_element(id: u32, body: &[u8]) -> Vec<u8> {
    let mut e = id_bytes(id);
    e.extend(vint(body.len() as u64, vint_width(body.len() as u64)));
    e.extend_from_slice(body);
    e
}

/// The EBML header naming `doctype` (`matroska` or `webm`).
pub fn ebml_header(doctype: &str) -> Vec<u8> {
    let mut body = ebml_element(0x4286, &[1]); // EBMLVersion
    body.extend(ebml_element(0x4282, doctype.as_bytes())); // DocType
    body.extend(ebml_element(0x4287, &[4])); // DocTypeVersion
    ebml_element(0x1A45_DFA3, &body)
}

/// A whole Matroska file: Info, Tracks, one Cluster per payload (as a SimpleBlock), Cues. With
/// `live`, the Segment has an unknown size (what a recorder leaves until it finishes).
// Cluster time codes in sample data wrap on purpose.
#[allow(clippy::cast_possible_truncation)]
pub fn mkv(payloads: &[&[u8]], webm: bool, live: bool) -> Vec<u8> {
    let mut seg = ebml_element(0x1549_A966, &ebml_element(0x2AD7B1, &[0x0F, 0x42, 0x40]));
    seg.extend(ebml_element(
        0x1654_AE6B,
        &ebml_element(0xAE, &ebml_element(0xD7, &[1])),
    ));
    for (i, p) in payloads.iter().enumerate() {
        let mut cluster = ebml_element(0xE7, &[i as u8]); // Timecode
        let mut block = vec![0x81, 0, 0, 0x80];
        block.extend_from_slice(p);
        cluster.extend(ebml_element(0xA3, &block));
        seg.extend(ebml_element(0x1F43_B675, &cluster));
    }
    seg.extend(ebml_element(0x1C53_BB6B, &[]));
    let mut f = ebml_header(if webm { "webm" } else { "matroska" });
    f.extend(id_bytes(SEGMENT_ID));
    if live {
        f.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    } else {
        f.extend(vint(seg.len() as u64, 8));
    }
    f.extend(seg);
    f
}

/// `packets` MPEG-TS packets of 188 bytes (192 with the M2TS time code when `m2ts`), payload
/// bytes from `fill`.
// Sequence numbers and time codes in sample data wrap on purpose.
#[allow(clippy::cast_possible_truncation)]
pub fn ts(packets: usize, m2ts: bool, fill: u8) -> Vec<u8> {
    let mut f = Vec::new();
    for i in 0..packets {
        if m2ts {
            f.extend_from_slice(&(i as u32).to_be_bytes());
        }
        f.extend_from_slice(&[0x47, 0x01, 0x00, 0x10 | (i as u8 & 0x0F)]);
        f.extend(std::iter::repeat_n(fill, 184));
    }
    f
}

/// A valid file of `total` bytes split as header, payload length, trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrap {
    pub head: Vec<u8>,
    pub payload: u64,
    pub tail: Vec<u8>,
}

/// How to make a valid `format` file of exactly `total` bytes around `payload` arbitrary bytes.
/// ISO-BMFF: `ftyp`, `mdat` (the payload), `moov`; or one `moov` holding the payload when
/// `total` is too small. Matroska: EBML header, Segment holding one Void element (the payload).
/// `None` for MPEG-TS (packets cannot hold arbitrary bytes) and for sizes too small.
pub fn wrap(format: Format, total: u64) -> Option<Wrap> {
    match format {
        Format::IsoBmff { mov } => {
            let f = ftyp(if mov { b"qt  " } else { b"isom" });
            let f_len = f.len() as u64;
            let m = moov(1000, Some(u32::try_from(f_len + 8).unwrap_or(0)));
            let fixed = (f.len() + m.len() + 16) as u64;
            if total >= fixed + 8 {
                // mdat header: 8 bytes, or 16 for a 64-bit size.
                let body = total - f.len() as u64 - m.len() as u64 - 8;
                let mut head = f;
                if body + 8 > u64::from(u32::MAX) {
                    // 64-bit size: 16 header bytes, so the body is 8 bytes shorter.
                    head.extend_from_slice(&1u32.to_be_bytes());
                    head.extend_from_slice(b"mdat");
                    head.extend_from_slice(&(body + 8).to_be_bytes());
                } else {
                    head.extend(box_header(b"mdat", body));
                }
                Some(Wrap {
                    payload: total - head.len() as u64 - m.len() as u64,
                    head,
                    tail: m,
                })
            } else if total >= 8 {
                Some(Wrap {
                    head: box_header(b"moov", total - 8),
                    payload: total - 8,
                    tail: Vec::new(),
                })
            } else {
                None
            }
        }
        Format::Matroska { webm } => {
            let mut head = ebml_header(if webm { "webm" } else { "matroska" });
            let fixed = head.len() as u64 + 4 + 8 + 1 + 8;
            let payload = total.checked_sub(fixed)?;
            head.extend(id_bytes(SEGMENT_ID));
            head.extend(vint(payload + 9, 8));
            head.extend(id_bytes(VOID_ID));
            head.extend(vint(payload, 8));
            Some(Wrap {
                head,
                payload,
                tail: Vec::new(),
            })
        }
        Format::MpegTs => None,
    }
}
