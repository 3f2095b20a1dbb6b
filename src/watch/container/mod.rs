//! Is a recording finished? A structural completeness check of video containers, read from their
//! headers only (at most [`BUDGET`] bytes per file, never the media data). No HTTP, no SQLite:
//! the watcher asks before it reports a settled file `stable`, the worker asks again right before
//! the first request and after the last chunk.
//!
//! - ISO-BMFF (MP4, MOV, M4V, 3GP, M4A): top-level boxes tile the file, a `moov` exists, no
//!   box is open-ended (size 0) or runs past the end; a fragmented file ends with a whole fragment.
//! - Matroska/WebM: an EBML header, then a Segment of known size that ends exactly at the end of
//!   the file, its top-level elements tiling it (an unknown-size Segment is still recording).
//! - MPEG-TS (`.ts`, `.m2ts`, `.mts`): whole packets with sync bytes at the start, middle and end.
//!   TS has no end marker: a TS that looks complete still relies on settle.
//! - Anything else is [`Verdict::Unknown`]: settle alone decides (the behaviour without a check).
//!
//! A fragmented MP4 without `mfra` is [`Verdict::Unproven`]: it ends with a whole fragment at every
//! pause of its recorder, so nothing in it says it is finished (see docs/RELIABILITY.md).
//!
//! Files: [`isobmff`] (with [`resume`]: a long fragmented file is walked across checks),
//! [`matroska`], [`mpegts`]; [`sample`] writes small valid files (tests, `ingestd demo`).

use crate::escape::Show as _;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub mod isobmff;
pub mod matroska;
pub mod mpegts;
pub mod resume;
pub mod sample;
#[cfg(test)]
mod tests;

/// Most bytes one check reads from a file.
pub const BUDGET: u64 = 64 * 1024;

/// Most reads (system calls) one check makes: each costs about a microsecond, so a check stays
/// well under a millisecond. A file with more top-level boxes or elements than this (a long
/// fragmented recording) is judged by its tail (`mfra`) or its Segment size, else its walk goes
/// on at the next check ([`resume`], [`Verdict::Pending`]).
pub const MAX_READS: u32 = 512;

/// The api.video-independent error slug of a file given up as incomplete.
pub const SLUG: &str = "incomplete-container";

/// What the check says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The container is structurally whole: a finished recording.
    Complete,
    /// Not (yet) a whole file; the reason is for operators, e.g. "incomplete MP4: no moov box
    /// yet (the recorder has not finished the file)".
    Incomplete(String),
    /// Structurally whole, but a whole file and a paused recording look the same: a fragmented
    /// MP4 with no `mfra` at its end. The watcher holds it like an incomplete file and queues it
    /// (instead of failing it) once unchanged for `incomplete_after`; the worker goes on.
    Unproven(String),
    /// A long file whose walk ran out of budget; the next check goes on where this one stopped
    /// ([`resume`]). The watcher checks it again at its next look; the worker goes on.
    Pending(String),
    /// A format the check does not know (or could not read): settle alone decides.
    Unknown,
}

impl Verdict {
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Verdict::Incomplete(_))
    }

    /// The reason of an incomplete, unproven or pending verdict.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Incomplete(r) | Verdict::Unproven(r) | Verdict::Pending(r) => Some(r),
            Verdict::Complete | Verdict::Unknown => None,
        }
    }
}

/// The container formats the check knows, with the name reasons use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ISO-BMFF; `true` for QuickTime (`.mov`, or a `qt  ` brand), named MOV.
    IsoBmff {
        mov: bool,
    },
    /// Matroska; `true` for WebM (`.webm`).
    Matroska {
        webm: bool,
    },
    MpegTs,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::IsoBmff { mov: true } => "MOV",
            Format::IsoBmff { mov: false } => "MP4",
            Format::Matroska { webm: true } => "WebM",
            Format::Matroska { webm: false } => "MKV",
            Format::MpegTs => "MPEG-TS",
        })
    }
}

/// Random access to the bytes of a file of a known size, counting what is read.
pub trait Source {
    /// Reads at most `buf.len()` bytes at `offset`; fewer only at the end of the data.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl Source for File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(self, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

impl Source for &[u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Why a read stopped a parser.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The byte budget is spent.
    Budget,
    Io(io::Error),
}

/// A [`Source`] with a byte budget and a size.
pub(crate) struct Reader<'a> {
    src: &'a dyn Source,
    pub size: u64,
    pub read: u64,
    pub reads: u32,
}

impl Reader<'_> {
    /// Reads up to `buf.len()` bytes at `offset` (fewer at the end of the file); returns how many.
    pub fn at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, Stop> {
        if offset >= self.size {
            return Ok(0);
        }
        // At most `buf.len()`, so it fits in usize.
        let want = usize::try_from((buf.len() as u64).min(self.size - offset)).unwrap_or(buf.len());
        if self.read + want as u64 > BUDGET || self.reads >= MAX_READS {
            return Err(Stop::Budget);
        }
        self.read += want as u64;
        self.reads += 1;
        let n = self
            .src
            .read_at(offset, &mut buf[..want])
            .map_err(Stop::Io)?;
        Ok(n)
    }
}

/// The result of one check, with its cost (for logs and the bench).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    pub format: Option<Format>,
    /// Bytes read from the file.
    pub bytes_read: u64,
}

/// The format `path`'s extension names, if any.
pub fn format_by_extension(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" | "3gp" | "m4a" => Format::IsoBmff { mov: false },
        "mov" => Format::IsoBmff { mov: true },
        "mkv" => Format::Matroska { webm: false },
        "webm" => Format::Matroska { webm: true },
        "ts" | "m2ts" | "mts" => Format::MpegTs,
        _ => return None,
    })
}

/// The format the first bytes show: an ISO-BMFF box (`ftyp`, `moov`, `free`, `wide`, `mdat`) or
/// an EBML header.
pub fn format_by_content(head: &[u8]) -> Option<Format> {
    if head.len() >= 8 && matches!(&head[4..8], b"ftyp" | b"moov" | b"free" | b"wide" | b"mdat") {
        let mov = head.len() >= 12 && &head[4..8] == b"ftyp" && &head[8..12] == b"qt  ";
        return Some(Format::IsoBmff { mov });
    }
    if head.len() >= 4 && head[..4] == matroska::EBML_ID {
        return Some(Format::Matroska { webm: false });
    }
    None
}

/// Checks the file at `path`. An unreadable file is [`Verdict::Unknown`] (the upload reports
/// the read error itself).
pub fn check_file(path: &Path) -> Report {
    let unknown = Report {
        verdict: Verdict::Unknown,
        format: None,
        bytes_read: 0,
    };
    let Ok(f) = File::open(path) else {
        return unknown;
    };
    let Ok(meta) = f.metadata() else {
        return unknown;
    };
    use std::os::unix::fs::MetadataExt;
    check_keyed(path, &f, meta.len(), Some((meta.dev(), meta.ino())))
}

/// Checks `size` bytes of `src`, named `path` (its extension counts).
pub fn check(path: &Path, src: &dyn Source, size: u64) -> Report {
    check_keyed(path, src, size, None)
}

/// [`check`] of the file `key` (device, inode): a long fragmented MP4 is walked on from where
/// the last check of that file stopped ([`resume`]).
pub fn check_keyed(path: &Path, src: &dyn Source, size: u64, key: Option<resume::Key>) -> Report {
    let mut r = Reader {
        src,
        size,
        read: 0,
        reads: 0,
    };
    let by_ext = format_by_extension(path);
    let mut head = [0u8; 12];
    let n = match r.at(0, &mut head) {
        Ok(n) => n,
        Err(_) => {
            return Report {
                verdict: Verdict::Unknown,
                format: by_ext,
                bytes_read: r.read,
            };
        }
    };
    let by_content = format_by_content(&head[..n]);
    let format = match (by_content, by_ext) {
        // The content decides between ISO-BMFF and Matroska; the extension names it.
        (Some(Format::IsoBmff { mov }), Some(Format::IsoBmff { mov: m })) => {
            Format::IsoBmff { mov: mov || m }
        }
        (Some(Format::Matroska { .. }), Some(e @ Format::Matroska { .. })) => e,
        (Some(c), _) => c,
        (None, Some(e)) => e,
        (None, None) => {
            return Report {
                verdict: Verdict::Unknown,
                format: None,
                bytes_read: r.read,
            };
        }
    };
    let result = match format {
        Format::IsoBmff { .. } => isobmff::check(&mut r, key),
        Format::Matroska { .. } => matroska::check(&mut r),
        Format::MpegTs => mpegts::check(&mut r),
    };
    let verdict = match result {
        Ok(Ok(())) => Verdict::Complete,
        Ok(Err(why @ Why::Unproven(_))) => {
            Verdict::Unproven(format!("{}{format}: {why}", why.prefix()))
        }
        Ok(Err(why @ Why::Pending(_))) => {
            Verdict::Pending(format!("{}{format}: {why}", why.prefix()))
        }
        Ok(Err(why)) => Verdict::Incomplete(format!("{}{format}: {why}", why.prefix())),
        Err(Stop::Budget) => Verdict::Unknown,
        Err(Stop::Io(e)) => {
            tracing::debug!(path = %path.shown(), "container check could not read: {e}");
            Verdict::Unknown
        }
    };
    Report {
        verdict,
        format: Some(format),
        bytes_read: r.read,
    }
}

/// Why a parser says a file is not whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// Still being written (or the writer died): "incomplete FORMAT: …".
    Unfinished(String),
    /// Structurally impossible: "damaged FORMAT: …".
    Damaged(String),
    /// Whole as far as the structure can tell, not provably finished: "unproven FORMAT: …".
    Unproven(String),
    /// The walk ran out of budget and goes on at the next check: "checking FORMAT: …".
    Pending(String),
}

impl Why {
    fn prefix(&self) -> &'static str {
        match self {
            Why::Unfinished(_) => "incomplete ",
            Why::Damaged(_) => "damaged ",
            Why::Unproven(_) => "unproven ",
            Why::Pending(_) => "checking ",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Unfinished(s) | Why::Damaged(s) | Why::Unproven(s) | Why::Pending(s) => {
                f.write_str(s)
            }
        }
    }
}

/// A parser's answer: `Ok(Ok(()))` whole, `Ok(Err(why))` not whole, `Err` could not tell.
pub(crate) type Parsed = Result<Result<(), Why>, Stop>;
