//! A strict reading of a multipart part's `Content-Disposition` (RFC 7578 §4.2, RFC 9110 §5.6):
//! `form-data` then `; name=value` parameters whose values are tokens or complete quoted
//! strings. multer is lenient: a file name that held a raw line break (reqwest writes `\` + LF)
//! ends the header early, and multer reads the rest of the name as another header and keeps an
//! unterminated `filename="…\`. A strict server refuses such a body, and so does the emulator.

/// Whether `value` is a well-formed `form-data` disposition.
pub fn is_strict(value: &[u8]) -> bool {
    let mut p = Parser { s: value, i: 0 };
    if !p
        .word()
        .is_some_and(|w| w.eq_ignore_ascii_case(b"form-data"))
    {
        return false;
    }
    loop {
        p.ows();
        if p.done() {
            return true;
        }
        if !p.eat(b';') {
            return false;
        }
        p.ows();
        if p.word().is_none() || !p.eat(b'=') {
            return false;
        }
        let ok = if p.peek() == Some(b'"') {
            p.quoted()
        } else {
            p.word().is_some()
        };
        if !ok {
            return false;
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    /// A token (RFC 9110 tchar, plus `%` and `'` of an RFC 8187 `filename*` value).
    fn word(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }
    /// A complete quoted string: qdtext or quoted pairs, no control character but HTAB.
    fn quoted(&mut self) -> bool {
        self.i += 1;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return true,
                b'\\' => match self.peek() {
                    Some(n) if n == b'\t' || (n >= 0x20 && n != 0x7f) => self.i += 1,
                    _ => return false,
                },
                b'\t' => {}
                b if b < 0x20 || b == 0x7f => return false,
                _ => {}
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_dispositions_pass() {
        assert!(is_strict(b"form-data; name=\"file\"; filename=\"a b.mp4\""));
        assert!(is_strict(
            b"form-data; name=\"file\"; filename=\"q\\\"uote\\\\.mp4\""
        ));
        assert!(is_strict(
            "form-data; name=\"file\"; filename=\"été.mp4\"".as_bytes()
        ));
        assert!(is_strict(b"form-data; name=videoId"));
        assert!(is_strict(b"Form-Data;name=\"x\" "));
        assert!(is_strict(b"form-data; name*=utf-8''a%20b"));
    }

    #[test]
    fn malformed_dispositions_fail() {
        // What multer is left with after a name holding `\` + LF (reqwest's encoding).
        assert!(!is_strict(b"form-data; name=\"file\"; filename=\"lf\\"));
        assert!(!is_strict(
            b"form-data; name=\"file\"; filename=\"unterminated"
        ));
        assert!(!is_strict(
            b"form-data; name=\"file\"; filename=\"esc\x1b.mp4\""
        ));
        assert!(!is_strict(
            b"form-data; name=\"file\"; filename=\"bad\\\x01\""
        ));
        assert!(!is_strict(b"attachment; filename=\"a\""));
        assert!(!is_strict(b"form-data; name"));
        assert!(!is_strict(b"form-data name=\"x\""));
        assert!(!is_strict(b"form-data; name=\"x\" junk"));
    }

    /// multer itself accepts the body reqwest builds for a name with a line feed: the check
    /// above is what refuses it.
    #[tokio::test]
    async fn multer_keeps_the_truncated_name_that_the_check_refuses() {
        let body = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"lf\\\n\
                    2026-01-01T00:00:00Z  INFO forged.mp4\"\r\n\
                    Content-Type: application/octet-stream\r\n\r\nDATA\r\n--B--\r\n";
        let stream =
            futures_util::stream::once(
                async move { Ok::<_, std::io::Error>(bytes::Bytes::from(body)) },
            );
        let mut mp = multer::Multipart::new(stream, "B");
        match mp.next_field().await {
            Ok(Some(field)) => {
                let cd = field
                    .headers()
                    .get(axum::http::header::CONTENT_DISPOSITION)
                    .unwrap();
                assert!(!is_strict(cd.as_bytes()), "{cd:?}");
            }
            Ok(None) => panic!("no field"),
            // Refused by multer already: fine as well.
            Err(_) => {}
        }
    }
}
