//! Where the upload token comes from, the checks on secret files at load time, and reading the
//! token at run time.
//!
//! Order: `upload_token` (inline) → `upload_token_file` → `$CREDENTIALS_DIRECTORY/upload-token`
//! (systemd `LoadCredential=`) when neither key is set → none. Setting both keys is an error.
//! At load (with [`LoadOptions::check_files`](super::LoadOptions)) a configured token file must
//! exist, be readable and hold one upload token ([`token_shape_problem`]: `to` and letters and
//! digits); a mode wider than 0600 is a warning. The same check runs each time the daemon reads
//! the token, so a file overwritten with garbage keeps the token read before.

use crate::escape::Show as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{ApiConfig, ConfigError, TokenSource};
use crate::secret::Secret;

/// The credential name ingestd reads under `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_NAME: &str = "upload-token";

/// Checks that a secret file exists, is a readable regular file and (if `is_upload_token`)
/// holds one upload token ([`token_shape_problem`]); pushes a warning if group or others have
/// any access to it. The content never appears in a message.
pub fn check_secret_file(
    path: &Path,
    key: &str,
    is_upload_token: bool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let shown = path.shown();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "`{key}` names `{shown}`, which does not exist; create it (one line, mode 0600) or remove `{key}`"
            ));
        }
        Err(e) => {
            return Err(format!(
                "`{key}` names `{shown}`, which cannot be read: {e}"
            ));
        }
    };
    if !meta.is_file() {
        return Err(format!(
            "`{key}` names `{shown}`, which is not a regular file; point it at the file that holds the secret"
        ));
    }
    let mut content = Vec::new();
    if let Err(e) = std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut content)) {
        return Err(format!(
            "`{key}` names `{shown}`, which cannot be read: {e}; make it readable by the user ingestd runs as"
        ));
    }
    let problem = is_upload_token
        .then(|| token_shape_problem(&content))
        .flatten();
    // The content is dropped here (zeroed first); it is read again when needed.
    content.fill(0);
    drop(content);
    if let Some(problem) = problem {
        return Err(format!(
            "`{key}` names `{shown}`, which {problem}; {TOKEN_ADVICE}"
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warnings.push(format!(
            "{shown} ({key}) can be accessed by other users (mode {mode:04o}); run `chmod 600 {shown}`"
        ));
    }
    Ok(())
}

/// What to write into a token file that holds no token.
pub const TOKEN_ADVICE: &str = "write the upload token (it starts with `to`) into it";

/// Longer than this is no upload token (api.video's are 24 characters).
const MAX_TOKEN_LEN: usize = 256;

/// What is wrong with `content` (a token file's bytes, or an inline token) as one delegated
/// upload token, as a phrase after "which" (`is empty`, `holds JSON …`), or `None` when it can be
/// one. api.video issues `to` followed by letters and digits (`to1tcmSFHeYY5KzyhOqVKMVb`, 24
/// characters; docs/PROTOCOL.md §3); any length up to 256 is taken, so a token of another length
/// the service may issue later is not refused. Surrounding whitespace (a final newline) is
/// ignored. The phrase never quotes the content.
pub fn token_shape_problem(content: &[u8]) -> Option<String> {
    let text = content.trim_ascii();
    if text.is_empty() {
        return Some("is empty".into());
    }
    let Ok(text) = std::str::from_utf8(text) else {
        return Some("holds binary data (not UTF-8 text), not an upload token".into());
    };
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Some("holds control characters (binary data?), not an upload token".into());
    }
    if text.starts_with('{') || text.starts_with('[') {
        return Some(
            "holds JSON, not an upload token (`token create --json` output? write only its `token` value)"
                .into(),
        );
    }
    if text.contains(char::is_whitespace) {
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        return Some(if lines > 1 {
            format!("holds {lines} lines, not one upload token")
        } else {
            "holds several words (whitespace inside), not one upload token".into()
        });
    }
    let len = text.chars().count();
    if len > MAX_TOKEN_LEN {
        return Some(format!(
            "holds {len} characters, not an upload token (`to` and about 22 letters and digits)"
        ));
    }
    if text.starts_with('\u{feff}') {
        return Some(
            "starts with a byte order mark (U+FEFF, saved by a Windows editor?); save it without one"
                .into(),
        );
    }
    if !text.starts_with("to") {
        return Some(
            "does not start with `to`, so it is not an upload token (the account's API key? `ingestd token create > FILE` makes a token with it)".into(),
        );
    }
    if !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Some("holds characters other than letters and digits, not an upload token".into());
    }
    None
}

/// The credential file, when `$CREDENTIALS_DIRECTORY` is set and holds `upload-token`.
pub fn credential(dir: Option<&Path>) -> Option<PathBuf> {
    let path = dir?.join(CREDENTIAL_NAME);
    path.is_file().then_some(path)
}

impl ApiConfig {
    /// Reads the upload token now (token files are re-read on SIGHUP and when they change).
    ///
    /// Inline tokens are returned as they are (checked at load); files are read whole and
    /// trimmed. A missing or unreadable file, one that holds no upload token (empty, binary,
    /// JSON, several words, not `to…`), or no token source at all, is an error naming the file
    /// and what is wrong, never its content.
    pub fn read_upload_token(&self) -> Result<Secret, ConfigError> {
        let path = match &self.token {
            TokenSource::Inline(s) => return Ok(s.clone()),
            TokenSource::File(p) | TokenSource::Credential(p) => p,
            TokenSource::None => {
                return Err(ConfigError {
                    file: PathBuf::from("[api]"),
                    position: None,
                    message: "no upload token is configured; set `upload_token_file = \"/etc/ingestd/upload-token\"` in [api] (or pass the systemd credential `upload-token`)".into(),
                });
            }
        };
        let err = |message: String| ConfigError {
            file: path.clone(),
            position: None,
            message,
        };
        let bytes =
            std::fs::read(path).map_err(|e| err(format!("cannot read the upload token: {e}")))?;
        if let Some(problem) = token_shape_problem(&bytes) {
            return Err(err(format!(
                "the upload token file {problem}; {TOKEN_ADVICE}"
            )));
        }
        // Valid UTF-8: checked just above.
        let secret = Secret::new(String::from_utf8_lossy(&bytes).into_owned());
        Ok(secret)
    }

    /// Short description of the token source for summaries (never the token itself).
    pub fn token_source_label(&self) -> String {
        match &self.token {
            TokenSource::Inline(_) => "inline upload_token".into(),
            TokenSource::File(p) => format!("file {}", p.shown()),
            TokenSource::Credential(p) => format!("systemd credential {}", p.shown()),
            TokenSource::None => "none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_token_file_may_hold() {
        for ok in [
            "to1tcmSFHeYY5KzyhOqVKMVb",
            "to1tcmSFHeYY5KzyhOqVKMVb\n",
            "  to1tcmSFHeYY5KzyhOqVKMVb\r\n",
            "to1",
            "toABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnop",
        ] {
            assert_eq!(token_shape_problem(ok.as_bytes()), None, "{ok:?}");
        }
        let cases: [(&[u8], &str); 10] = [
            (
                b"\xef\xbb\xbfto1tcmSFHeYY5KzyhOqVKMVb\r\n",
                "byte order mark",
            ),
            (b"", "is empty"),
            (b" \n\n", "is empty"),
            (b"to1\xff\xfe", "binary data"),
            (b"to1\x1b[2J", "control characters"),
            (b"{\"token\":\"to1tcmSFHeYY5KzyhOqVKMVb\"}", "JSON"),
            (b"to1tcm SFHeYY5", "several words"),
            (b"# token\nto1tcmSFHeYY5KzyhOqVKMVb\n", "2 lines"),
            (
                b"ZYQ9Ll8kx7hCr1bY0DAPTTXE5CF5Fvbz0Cj2XrF9Uv3",
                "does not start with `to`",
            ),
            (b"to1tcmSFHe-YY5.Kz", "other than letters and digits"),
        ];
        for (bad, says) in cases {
            let p = token_shape_problem(bad).unwrap_or_default();
            assert!(p.contains(says), "{bad:?}: {p}");
            assert!(!p.contains("SFHe") && !p.contains("Ll8k"), "quotes it: {p}");
        }
        let long = format!("to{}", "a".repeat(300));
        assert!(token_shape_problem(long.as_bytes()).is_some_and(|p| p.contains("302 characters")));
    }
}
