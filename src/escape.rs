//! Text shown to a person (log lines, `status`, `explain`, `upload`'s progress bars) passes
//! through [`Human`]: control characters and bidirectional overrides are shown as escapes, so
//! a file name cannot forge a log line (`\n`), drive the terminal (`ESC`: window title, clear
//! screen) or reorder what is shown (U+202E). JSON output is never escaped this way: JSON has
//! its own escapes and stays exact.
//!
//! Paths are shown through [`Show::shown`] rather than `Path::display`: bytes of a name that are
//! not UTF-8 (a Latin-1 camera or SMB share) appear as `\xe9` instead of U+FFFD, so two names
//! that differ only there do not look the same.

use std::ffi::OsStr;
use std::fmt::{self, Display, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether `c` must not reach a terminal or a log line as is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `c` as a visible escape: `\n`, `\r`, `\t`, `\x1b`, `\u{202e}`.
fn push_escaped(out: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// Shows a value with its unsafe characters escaped.
pub struct Human<T>(pub T);

impl<T: Display> Display for Human<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = Escaper(f);
        write!(w, "{}", self.0)
    }
}

/// `s` with its unsafe characters escaped.
pub fn human(s: &str) -> String {
    if !s.chars().any(is_unsafe) {
        return s.to_owned();
    }
    Human(s).to_string()
}

/// A path or name as shown to a person: its UTF-8 as is, each byte that is not UTF-8 as `\xNN`.
/// Control characters are left to [`Human`] and the log formatter, like any other text.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(&'a [u8]);

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// `.shown()` for paths and names: what [`Shown`] shows.
pub trait Show {
    fn shown(&self) -> Shown<'_>;
}

impl Show for Path {
    fn shown(&self) -> Shown<'_> {
        Shown(self.as_os_str().as_bytes())
    }
}

impl Show for OsStr {
    fn shown(&self) -> Shown<'_> {
        Shown(self.as_bytes())
    }
}

/// A `fmt::Write` that escapes what passes through it.
pub struct Escaper<W>(pub W);

impl<W: Write> Write for Escaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(is_unsafe) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or(' ');
            push_escaped(&mut self.0, c)?;
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // `Human` over `Path::display`, as a caller might
    fn controls_and_bidi_overrides_are_escaped() {
        assert_eq!(human("plain name.mp4"), "plain name.mp4");
        assert_eq!(human("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(human("\u{1b}]0;owned\u{7}"), "\\x1b]0;owned\\x07");
        assert_eq!(human("x\u{202e}4pm.exe"), "x\\u{202e}4pm.exe");
        assert_eq!(human("\u{2066}\u{2069}\u{9b}"), "\\u{2066}\\u{2069}\\u{9b}");
        assert_eq!(human("été 映画.mp4"), "été 映画.mp4");
        assert_eq!(
            format!("[{}]", Human(std::path::Path::new("/in/a\nb").display())),
            "[/in/a\\nb]"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex_escapes() {
        use std::os::unix::ffi::OsStrExt;
        let p = |b: &[u8]| Path::new(OsStr::from_bytes(b)).shown().to_string();
        assert_eq!(p(b"/in/caf\xe9.mp4"), "/in/caf\\xe9.mp4");
        assert_eq!(
            p(b"/in/caf\xc3.mp4"),
            "/in/caf\\xc3.mp4",
            "a sequence cut short"
        );
        assert_eq!(p(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(p(b"\xe9t\xc3\xa9 \xe6\x98\xa0"), "\\xe9t\u{e9} \u{6620}");
        assert_ne!(p(b"a\xe9"), p(b"a\xe8"), "two names stay apart");
        assert_eq!(OsStr::new("plain.mp4").shown().to_string(), "plain.mp4");
        assert_eq!(
            human(&p(b"a\n\xe9")),
            "a\\n\\xe9",
            "control characters are still escaped by Human"
        );
    }
}
