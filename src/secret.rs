//! Secrets (upload tokens, API keys) that must never reach a log line or an error message.
//!
//! [`Secret`] has no `Display`; its `Debug` prints the redacted form (`to1t…KVMb`). Code that really
//! needs the value (to put it on the wire) calls [`Secret::expose`], which is easy to grep for.

use std::fmt;

/// A string that is redacted whenever it is formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value; surrounding whitespace (a trailing newline in a token file) is removed.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().trim().to_owned())
    }

    /// The raw value, for the wire only. Never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `to1t…KVMb`: first four and last four characters; shorter secrets show only `…`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Redacts any secret-looking string: first four and last four characters, `…` between.
pub fn redact(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_long_and_short() {
        let s = Secret::new("to1tcmSFHeYY5KzyhOqVKMVb\n");
        assert_eq!(s.redacted(), "to1t…KMVb");
        assert_eq!(format!("{s:?}"), "to1t…KMVb");
        assert_eq!(s.expose(), "to1tcmSFHeYY5KzyhOqVKMVb");
        assert_eq!(redact("short"), "…");
    }
}
