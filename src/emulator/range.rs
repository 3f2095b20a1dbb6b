//! `Content-Range` parsing and every 400 rule of PROTOCOL.md §1.6–1.7, as pure functions over a
//! video's [`UploadState`].
//!
//! Checks happen in three steps: [`parse`] and [`check_header`] before the body is read,
//! [`check_upload`] once the body's length and the target video are known, then [`apply`].

use super::errors::ApiError;
use super::model::{Chunk, Mode, UploadState};

pub const MIB: u64 = 1024 * 1024;
/// Largest request body: regular upload, byte range (and, UNCONFIRMED, a part).
pub const MAX_REQUEST: u64 = 200 * MIB;
/// Smallest chunk except the completing one.
pub const MIN_CHUNK: u64 = 5 * MIB;
pub const MAX_PARTS: u64 = 10_000;
pub const MAX_TOTAL_BYTES: u64 = 52_428_800_000;
pub const MAX_TO_BYTE: u64 = 52_428_799_999;

/// A parsed `Content-Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes FROM-TO/TOTAL`, inclusive.
    Bytes { from: u64, to: u64, total: u64 },
    /// `part N/TOTAL` or `part N/*` (`total: None`).
    Part { part: u64, total: Option<u64> },
}

impl ContentRange {
    /// Whether the header itself says this is the last chunk (range ends at `TOTAL-1`, or
    /// `part N/N`). UNCONFIRMED (PROTOCOL §1.6): "last" is taken from the header, not from time.
    pub fn is_last(&self) -> bool {
        match *self {
            ContentRange::Bytes { to, total, .. } => to + 1 == total,
            ContentRange::Part { part, total } => total == Some(part),
        }
    }
}

fn cr_err(slug: &'static str, title: &'static str) -> ApiError {
    ApiError::bad(slug, title).name("Content-Range")
}

/// 400 `video-content-range-malformed`.
pub fn malformed() -> ApiError {
    cr_err(
        "video-content-range-malformed",
        "The value of the \"Content-Range\" header is malformed, the expected format is \"bytes <from_byte>-<to_byte>/<total_bytes>\" or \"part <part>/<total_parts>\".",
    )
}

fn number(s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    s.parse().map_err(|_| malformed())
}

/// Parses `bytes F-T/TOTAL`, `part N/TOTAL` or `part N/*`.
/// `bytes F-T/*` is rejected as malformed (UNCONFIRMED, PROTOCOL §1.2: the SPEC regex allows it,
/// no client sends it, and without a total the upload could never complete).
pub fn parse(header: &str) -> Result<ContentRange, ApiError> {
    let h = header.trim();
    if let Some(rest) = h.strip_prefix("bytes ") {
        let (range, total) = rest.split_once('/').ok_or_else(malformed)?;
        let (from, to) = range.split_once('-').ok_or_else(malformed)?;
        Ok(ContentRange::Bytes {
            from: number(from)?,
            to: number(to)?,
            total: number(total)?,
        })
    } else if let Some(rest) = h.strip_prefix("part ") {
        let (part, total) = rest.split_once('/').ok_or_else(malformed)?;
        let total = if total == "*" {
            None
        } else {
            Some(number(total)?)
        };
        Ok(ContentRange::Part {
            part: number(part)?,
            total,
        })
    } else {
        Err(malformed())
    }
}

/// Rules that need only the header (checked before reading the body).
pub fn check_header(cr: &ContentRange) -> Result<(), ApiError> {
    match *cr {
        ContentRange::Bytes { from, to, total } => {
            if from > to {
                return Err(cr_err(
                    "video-content-range-by-bytes-from-byte-too-high",
                    "The \"from_byte\" value in the \"Content-Range\" header is higher than the \"to_byte\" value.",
                ));
            }
            if total == 0 {
                return Err(cr_err(
                    "video-content-range-by-bytes-total-bytes-zero",
                    "The \"total_bytes\" value in the \"Content-Range\" header must be greater than 0.",
                ));
            }
            if total > MAX_TOTAL_BYTES {
                return Err(cr_err(
                    "video-content-range-by-bytes-total-bytes-too-high",
                    "The \"total_bytes\" value in the \"Content-Range\" header is higher than the maximum allowed (52428800000).",
                ));
            }
            if to > MAX_TO_BYTE {
                return Err(cr_err(
                    "video-content-range-by-bytes-to-byte-too-high-allowed",
                    "The \"to_byte\" value in the \"Content-Range\" header is higher than the maximum allowed (52428799999).",
                ));
            }
            if to >= total {
                return Err(cr_err(
                    "video-content-range-by-bytes-to-byte-too-high-total",
                    "The \"to_byte\" value in the \"Content-Range\" header is higher than the \"total_bytes\" value.",
                )
                .detail(format!("to_byte {to} must be lower than total_bytes {total}.")));
            }
            let len = to - from + 1;
            if len > MAX_REQUEST {
                return Err(cr_err(
                    "video-content-range-by-bytes-range-too-large",
                    "The range in the \"Content-Range\" header is too large.",
                )
                .detail(format!("A range can be at most {MAX_REQUEST} bytes.")));
            }
            if len < MIN_CHUNK && !cr.is_last() {
                return Err(cr_err(
                    "video-content-range-by-bytes-range-too-small",
                    "The range in the \"Content-Range\" header is too small.",
                )
                .detail(format!(
                    "Every range except the last one must be at least {MIN_CHUNK} bytes."
                )));
            }
            Ok(())
        }
        ContentRange::Part { part, total } => {
            if part == 0 {
                return Err(cr_err(
                    "video-content-range-by-part-part-zero",
                    "The \"part\" value in the \"Content-Range\" header must be greater than 0.",
                ));
            }
            if total == Some(0) {
                return Err(cr_err(
                    "video-content-range-by-part-total-parts-zero",
                    "The \"total_parts\" value in the \"Content-Range\" header must be greater than 0.",
                ));
            }
            if part > MAX_PARTS {
                return Err(cr_err(
                    "video-content-range-by-part-part-too-high-allowed",
                    "The \"part\" value in the \"Content-Range\" header is higher than the maximum number of parts allowed (10000).",
                ));
            }
            if total.is_some_and(|t| t > MAX_PARTS) {
                return Err(cr_err(
                    "video-content-range-by-part-total-parts-too-high",
                    "The \"total_parts\" value in the \"Content-Range\" header is higher than the maximum number of parts allowed (10000).",
                ));
            }
            if let Some(t) = total
                && part > t
            {
                return Err(part_too_high_total(part, t));
            }
            Ok(())
        }
    }
}

fn part_too_high_total(part: u64, total: u64) -> ApiError {
    cr_err(
        "video-content-range-by-part-part-too-high-total",
        "The \"part\" value in the \"Content-Range\" header is higher than the \"total_parts\" value you set.",
    )
    .detail(format!("Part {part} is higher than total_parts {total}."))
}

/// The most body bytes worth writing to disk for this header (more is an error anyway).
pub fn body_cap(cr: Option<&ContentRange>) -> u64 {
    match cr {
        Some(ContentRange::Bytes { from, to, .. }) => to - from + 1,
        _ => MAX_REQUEST,
    }
}

fn already_uploaded() -> ApiError {
    ApiError::bad(
        "video-source-already-uploaded",
        "This video source has already been uploaded.",
    )
    .name("file")
}

/// Rules that need the video's state and the body length (`len` > 0, already checked).
pub fn check_upload(
    state: &UploadState,
    cr: Option<&ContentRange>,
    len: u64,
) -> Result<(), ApiError> {
    if state.complete {
        return Err(already_uploaded());
    }
    let Some(cr) = cr else {
        if state.mode.is_some() {
            return Err(cr_err(
                "video-content-range-already-initiated",
                "This video source has already been initiated with a \"Content-Range\" upload.",
            ));
        }
        if len > MAX_REQUEST {
            return Err(too_large());
        }
        return Ok(());
    };
    match *cr {
        ContentRange::Bytes { from, to, total } => {
            if state.mode == Some(Mode::Part) {
                return Err(cr_err(
                    "video-content-range-started-with-part",
                    "This \"Content-Range\" upload has been started with \"part\", you cannot continue it with \"bytes\".",
                ));
            }
            if let Some(known) = state.total
                && known != total
            {
                let max_to = state.chunks.iter().filter_map(|c| c.to).max().unwrap_or(0);
                if total <= max_to {
                    return Err(cr_err(
                        "video-content-range-by-bytes-total-bytes-too-low",
                        "The \"total_bytes\" value in the \"Content-Range\" header is lower than or equal to the upper bound of a range you already sent.",
                    ));
                }
                return Err(cr_err(
                    "video-content-range-by-bytes-different-total-bytes",
                    "The \"total_bytes\" value in the \"Content-Range\" header must be the same than the one you already set for this video.",
                )
                .detail(format!("total_bytes was set to {known}, got {total}.")));
            }
            if let Some(c) = state
                .chunks
                .iter()
                .find(|c| matches!((c.from, c.to), (Some(f), Some(t)) if from <= t && f <= to))
            {
                return Err(cr_err(
                    "video-content-range-by-bytes-range-overlap",
                    "The range in the \"Content-Range\" header overlaps with a previous one you already sent for this video.",
                )
                .detail(format!(
                    "bytes {from}-{to} overlaps bytes {}-{} already received.",
                    c.from.unwrap_or(0),
                    c.to.unwrap_or(0)
                )));
            }
            if len != to - from + 1 {
                return Err(cr_err(
                    "video-content-range-by-bytes-range-mismatch",
                    "The size of the file you sent is different than the range length you set in the \"Content-Range\" header.",
                )
                .detail(format!(
                    "The range is {} bytes, the file is {len} bytes.",
                    to - from + 1
                )));
            }
            Ok(())
        }
        ContentRange::Part { part, total } => {
            if state.mode == Some(Mode::Bytes) {
                return Err(cr_err(
                    "video-content-range-started-with-bytes",
                    "This \"Content-Range\" upload has been started with \"bytes\", you cannot continue it with \"part\".",
                ));
            }
            let max_sent = state
                .chunks
                .iter()
                .filter_map(|c| c.part)
                .max()
                .unwrap_or(0);
            match (state.total, total) {
                (Some(known), Some(t)) if known != t => {
                    return Err(cr_err(
                        "video-content-range-by-part-different-total-parts",
                        "The \"total_parts\" value in the \"Content-Range\" header must be the same than the one you already set for this video.",
                    )
                    .detail(format!("total_parts was set to {known}, got {t}.")));
                }
                (Some(known), None) if part > known => {
                    return Err(part_too_high_total(part, known));
                }
                (None, Some(t)) if u64::from(max_sent) > t => {
                    return Err(cr_err(
                        "video-content-range-by-part-total-parts-too-low",
                        "The \"total_parts\" value in the \"Content-Range\" header is lower than or equal to a part number you already sent.",
                    )
                    .detail(format!("Part {max_sent} was already sent.")));
                }
                _ => {}
            }
            if state
                .chunks
                .iter()
                .any(|c| c.part.map(u64::from) == Some(part))
            {
                return Err(cr_err(
                    "video-content-range-by-part-part-already-sent",
                    "The \"part\" value in the \"Content-Range\" header collides with a previous one you already sent for this video.",
                )
                .detail(format!("The part number {part} has already been sent.")));
            }
            // UNCONFIRMED (PROTOCOL §1.6): the maximum part size; we apply the 200 MiB request limit.
            if len > MAX_REQUEST {
                return Err(too_large());
            }
            if len < MIN_CHUNK && !cr.is_last() {
                return Err(cr_err(
                    "video-content-range-by-part-uploaded-file-too-small",
                    "The uploaded file is too small.",
                )
                .detail(format!(
                    "Every part except the last one must be at least {MIN_CHUNK} bytes."
                )));
            }
            Ok(())
        }
    }
}

/// 400 `uploaded-file-too-large`.
pub fn too_large() -> ApiError {
    ApiError::bad("uploaded-file-too-large", "The uploaded file is too large.")
        .name("file")
        .detail(format!("A request can carry at most {MAX_REQUEST} bytes."))
}

/// The chunk file name for an accepted request.
pub fn chunk_file(cr: Option<&ContentRange>) -> String {
    match cr {
        None => "whole".to_owned(),
        Some(ContentRange::Bytes { from, .. }) => format!("b{from:020}"),
        Some(ContentRange::Part { part, .. }) => format!("p{part:05}"),
    }
}

/// Records an accepted chunk (after [`check_upload`]) and returns whether the source is complete.
pub fn apply(state: &mut UploadState, cr: Option<&ContentRange>, mut chunk: Chunk) -> bool {
    match cr {
        None => {
            state.mode = Some(Mode::Whole);
            state.total = Some(chunk.length);
        }
        Some(&ContentRange::Bytes { from, to, total }) => {
            state.mode = Some(Mode::Bytes);
            state.total = Some(total);
            chunk.from = Some(from);
            chunk.to = Some(to);
        }
        Some(&ContentRange::Part { part, total }) => {
            state.mode = Some(Mode::Part);
            if total.is_some() {
                state.total = total;
            }
            chunk.part = u32::try_from(part).ok();
        }
    }
    state.chunks.push(chunk);
    state.complete = match state.mode {
        Some(Mode::Whole) => true,
        Some(Mode::Bytes) => state.total == Some(state.received_bytes()),
        Some(Mode::Part) => state.total == Some(state.chunks.len() as u64),
        None => false,
    };
    state.complete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(len: u64) -> Chunk {
        Chunk {
            file: String::new(),
            content_range: None,
            from: None,
            to: None,
            part: None,
            length: len,
            with_video_id: false,
            received_ms: 0,
        }
    }

    fn slug(r: Result<(), ApiError>) -> &'static str {
        r.err().map(|e| e.slug).unwrap_or("ok")
    }

    #[test]
    fn parses_both_forms() {
        assert_eq!(
            parse("bytes 0-9/20").unwrap(),
            ContentRange::Bytes {
                from: 0,
                to: 9,
                total: 20
            }
        );
        assert_eq!(
            parse("part 2/*").unwrap(),
            ContentRange::Part {
                part: 2,
                total: None
            }
        );
        assert_eq!(
            parse("part 3/3").unwrap(),
            ContentRange::Part {
                part: 3,
                total: Some(3)
            }
        );
        for bad in [
            "",
            "bytes",
            "bytes 0-9",
            "bytes 0-9/*",
            "part%201%2F3",
            "part 1",
            "part a/2",
            "bytes -1-2/3",
            "part 1/2/3",
            "bytes 0-99999999999999999999999/1",
            "parts 1/2",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().slug,
                "video-content-range-malformed",
                "{bad}"
            );
        }
    }

    #[test]
    fn header_rules() {
        let c = |h: &str| slug(check_header(&parse(h).unwrap()));
        assert_eq!(
            c("bytes 5-4/10"),
            "video-content-range-by-bytes-from-byte-too-high"
        );
        assert_eq!(
            c("bytes 0-0/0"),
            "video-content-range-by-bytes-total-bytes-zero"
        );
        assert_eq!(
            c("bytes 0-9/9"),
            "video-content-range-by-bytes-to-byte-too-high-total"
        );
        assert_eq!(
            c("bytes 0-9/20"),
            "video-content-range-by-bytes-range-too-small"
        );
        assert_eq!(c("bytes 10-19/20"), "ok");
        assert_eq!(
            c("bytes 0-209715200/300000000"),
            "video-content-range-by-bytes-range-too-large"
        );
        assert_eq!(c("part 0/2"), "video-content-range-by-part-part-zero");
        assert_eq!(
            c("part 1/0"),
            "video-content-range-by-part-total-parts-zero"
        );
        assert_eq!(
            c("part 3/2"),
            "video-content-range-by-part-part-too-high-total"
        );
        assert_eq!(
            c("part 10001/*"),
            "video-content-range-by-part-part-too-high-allowed"
        );
        assert_eq!(
            c("part 1/10001"),
            "video-content-range-by-part-total-parts-too-high"
        );
    }

    #[test]
    fn bytes_upload_completes_out_of_order_and_rejects_overlap() {
        let mut st = UploadState::default();
        let total = 12 * MIB;
        let second = parse(&format!("bytes {}-{}/{total}", 6 * MIB, total - 1)).unwrap();
        assert_eq!(slug(check_upload(&st, Some(&second), 6 * MIB)), "ok");
        assert!(!apply(&mut st, Some(&second), chunk(6 * MIB)));
        let first = parse(&format!("bytes 0-{}/{total}", 6 * MIB - 1)).unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&first), 6 * MIB - 1)),
            "video-content-range-by-bytes-range-mismatch"
        );
        let overlap = parse(&format!("bytes 0-{}/{total}", 6 * MIB)).unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&overlap), 6 * MIB + 1)),
            "video-content-range-by-bytes-range-overlap"
        );
        let other_total = parse(&format!("bytes 0-{}/{}", 6 * MIB - 1, total + 1)).unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&other_total), 6 * MIB)),
            "video-content-range-by-bytes-different-total-bytes"
        );
        let part = parse("part 1/2").unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&part), 6 * MIB)),
            "video-content-range-started-with-bytes"
        );
        assert_eq!(
            slug(check_upload(&st, None, 6 * MIB)),
            "video-content-range-already-initiated"
        );
        assert!(apply(&mut st, Some(&first), chunk(6 * MIB)));
        assert_eq!(
            slug(check_upload(&st, Some(&first), 6 * MIB)),
            "video-source-already-uploaded"
        );
    }

    #[test]
    fn part_upload_rules() {
        let mut st = UploadState::default();
        let p1 = parse("part 1/*").unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&p1), MIB)),
            "video-content-range-by-part-uploaded-file-too-small"
        );
        assert!(!apply(&mut st, Some(&p1), chunk(5 * MIB)));
        assert_eq!(
            slug(check_upload(&st, Some(&p1), 5 * MIB)),
            "video-content-range-by-part-part-already-sent"
        );
        let b = parse("bytes 0-9/10").unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&b), 10)),
            "video-content-range-started-with-part"
        );
        let p3 = parse("part 3/3").unwrap();
        assert_eq!(slug(check_upload(&st, Some(&p3), 1)), "ok");
        assert!(!apply(&mut st, Some(&p3), chunk(1)));
        let p2_other = parse("part 2/4").unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&p2_other), 5 * MIB)),
            "video-content-range-by-part-different-total-parts"
        );
        let p4 = parse("part 4/*").unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&p4), 5 * MIB)),
            "video-content-range-by-part-part-too-high-total"
        );
        let p2 = parse("part 2/*").unwrap();
        assert!(apply(&mut st, Some(&p2), chunk(5 * MIB)));
        assert_eq!(st.received_bytes(), 10 * MIB + 1);
    }

    #[test]
    fn total_parts_too_low() {
        let mut st = UploadState::default();
        let p3 = parse("part 3/*").unwrap();
        apply(&mut st, Some(&p3), chunk(5 * MIB));
        let p1 = parse("part 2/2").unwrap();
        assert_eq!(
            slug(check_upload(&st, Some(&p1), 1)),
            "video-content-range-by-part-total-parts-too-low"
        );
    }
}
