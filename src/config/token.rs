//! Where the upload token comes from, the checks on secret files at load time, and reading the
//! token at run time.
//!
//! Order: `upload_token` (inline) → `upload_token_file` → `$CREDENTIALS_DIRECTORY/upload-token`
//! (systemd `LoadCredential=`) when neither key is set → none. Setting both keys is an error.
//! At load (with [`LoadOptions::check_files`](super::LoadOptions)) a configured token file must
//! exist, be readable and not be empty; a mode wider than 0600 is a warning.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{ApiConfig, ConfigError, TokenSource};
use crate::secret::Secret;

/// The credential name ingestd reads under `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_NAME: &str = "upload-token";

/// Checks that a secret file exists, is a readable regular file and (if `must_not_be_empty`) has
/// content; pushes a warning if group or others have any access to it.
pub fn check_secret_file(
    path: &Path,
    key: &str,
    must_not_be_empty: bool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let shown = path.display();
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
    let mut content = String::new();
    if let Err(e) = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut content)) {
        return Err(format!(
            "`{key}` names `{shown}`, which cannot be read: {e}; make it readable by the user ingestd runs as"
        ));
    }
    let empty = content.trim().is_empty();
    let token_like = looks_like_upload_token(content.trim());
    // The content is dropped here; it is read again when needed.
    drop(Secret::new(content));
    if must_not_be_empty && empty {
        return Err(format!(
            "`{key}` names `{shown}`, which is empty; write the upload token (it starts with `to`) into it"
        ));
    }
    if must_not_be_empty && !empty && !token_like {
        warnings.push(format!(
            "{shown} ({key}) does not hold one upload token (one word starting with `to`); if it is the account's API key, create an upload token with `ingestd token create` and write that instead"
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

/// A delegated upload token is one word starting with `to` (`to1tcmSFHeYY5KzyhOqVKMVb`).
fn looks_like_upload_token(text: &str) -> bool {
    text.starts_with("to") && !text.contains(char::is_whitespace)
}

/// The credential file, when `$CREDENTIALS_DIRECTORY` is set and holds `upload-token`.
pub fn credential(dir: Option<&Path>) -> Option<PathBuf> {
    let path = dir?.join(CREDENTIAL_NAME);
    path.is_file().then_some(path)
}

impl ApiConfig {
    /// Reads the upload token now (token files are re-read on SIGHUP and when they change).
    ///
    /// Inline tokens are returned as they are; files are read whole and trimmed. A missing,
    /// unreadable or empty file, or no token source at all, is an error naming the file.
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read the upload token: {e}")))?;
        let secret = Secret::new(text);
        if secret.is_empty() {
            return Err(err(
                "the upload token file is empty; write the upload token (it starts with `to`) into it".into(),
            ));
        }
        Ok(secret)
    }

    /// Short description of the token source for summaries (never the token itself).
    pub fn token_source_label(&self) -> String {
        match &self.token {
            TokenSource::Inline(_) => "inline upload_token".into(),
            TokenSource::File(p) => format!("file {}", p.display()),
            TokenSource::Credential(p) => format!("systemd credential {}", p.display()),
            TokenSource::None => "none".into(),
        }
    }
}
