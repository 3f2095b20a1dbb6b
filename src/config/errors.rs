//! Turns toml and serde errors into `FILE:LINE:COL: what is wrong and what to write instead`:
//! unknown keys name the keys that were probably meant, wrong types say what is expected with an
//! example, missing keys say what to add.

use std::ops::Range;
use std::path::Path;

use super::ConfigError;
use super::keys::{self, Key};
use super::position::{Step, line_col, path_at};

/// Error context: the file and its text, to turn spans into positions.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Ctx<'_> {
    /// An error at `span` (the start of the span is reported).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            position: Some(line_col(self.text, span.start)),
            message: message.into(),
        }
    }

    /// The file offset of byte `offset` of the string `value` whose TOML value spans `span`:
    /// exact for a string written without escapes, else the start of the value.
    pub fn inside_string(&self, span: Range<usize>, value: &str, offset: usize) -> usize {
        let written = self.text.get(span.clone()).unwrap_or_default();
        let quote = written.chars().next().unwrap_or('"');
        let opening = if written.starts_with("\"\"\"") || written.starts_with("'''") {
            3
        } else {
            1
        };
        let body = written.get(opening..).unwrap_or_default();
        if (quote == '"' || quote == '\'') && body.starts_with(value) && !value.contains('\\') {
            span.start + opening + offset.min(value.len())
        } else {
            span.start
        }
    }

    /// An error without a position (e.g. about a default value).
    pub fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            position: None,
            message: message.into(),
        }
    }

    /// `line N` of a byte offset, for messages that point at a second place.
    pub fn line_of(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// Converts a toml/serde error into a [`ConfigError`] with a helpful message.
    pub fn from_toml(&self, err: &toml::de::Error) -> ConfigError {
        let raw = err.message().trim();
        let span = err.span();
        let path = span
            .clone()
            .map(|s| path_at(self.text, s.start))
            .unwrap_or_default();
        let message = if let Some(rest) = raw.strip_prefix("unknown field `") {
            unknown_key(rest, &path)
        } else if let Some(rest) = raw.strip_prefix("invalid type: ") {
            wrong_type(rest, &path).unwrap_or_else(|| format!("{raw} (at `{}`)", dotted(&path)))
        } else if let Some(rest) = raw.strip_prefix("missing field `") {
            missing_key(rest.trim_end_matches('`'), &path)
        } else if raw.starts_with("duplicate key") {
            let key = span
                .clone()
                .and_then(|s| self.text.get(s))
                .map(|k| k.trim().trim_matches('"').to_owned())
                .unwrap_or_default();
            let line_start = span
                .clone()
                .and_then(|s| self.text.get(..s.start))
                .and_then(|t| t.rfind('\n'))
                .map_or(0, |i| i + 1);
            let before = span
                .clone()
                .and_then(|s| self.text.get(line_start..s.start))
                .unwrap_or("");
            if before.trim() == "[" {
                format!("the section [{key}] appears twice; merge the two into one")
            } else {
                format!("the key `{key}` is set twice; keep only one")
            }
        } else {
            format!("invalid TOML: {}", one_line(raw))
        };
        ConfigError {
            file: self.file.to_owned(),
            position: span.map(|s| line_col(self.text, s.start)),
            message,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn dotted(path: &[Step]) -> String {
    super::position::render_path(path)
}

/// `[upload]`, `[[watch]]`, or "the top level".
fn section_label(section: &str) -> String {
    match section {
        "" => "the top level".into(),
        "watch" => "[[watch]]".into(),
        s => format!("[{s}]"),
    }
}

/// The section a key path is in (the first key), `""` at the top level.
fn section_of(path: &[Step]) -> &str {
    match path {
        [Step::Key(first), _, ..] => first,
        _ => "",
    }
}

fn last_key(path: &[Step]) -> Option<&str> {
    path.iter().rev().find_map(|s| match s {
        Step::Key(k) => Some(k.as_str()),
        Step::Index(_) => None,
    })
}

fn list(keys: &[Key], section: &str) -> String {
    keys.iter()
        .map(|k| {
            if section.is_empty() {
                section_label(k.name)
            } else {
                k.name.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key(rest: &str, path: &[Step]) -> String {
    let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
    // The section: from the document tree, or else from serde's list of expected fields.
    let mut section = section_of(path).to_owned();
    if path.is_empty() || keys::section(&section).is_none() {
        let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        section = keys::section_with_keys(&names).unwrap_or("").to_owned();
    }
    let Some(valid) = keys::section(&section) else {
        return format!("unknown key `{name}`");
    };
    if section.is_empty() {
        // A key written above every section header, e.g. `workers = 2` before `[upload]`.
        let home = ["api", "journal", "upload", "watch", "metrics"]
            .into_iter()
            .find(|s| keys::find(s, name).is_some());
        if let Some(home) = home {
            return format!(
                "the key `{name}` belongs in {}: move it below a `{}` line",
                section_label(home),
                section_label(home)
            );
        }
    }
    let suggestions = keys::suggestions(name, valid);
    let mut msg = if section.is_empty() {
        format!("unknown section `{name}`")
    } else {
        format!("unknown key `{name}` in {}", section_label(&section))
    };
    if let Some(first) = suggestions.first() {
        let shown = if section.is_empty() {
            section_label(first)
        } else {
            format!("`{first}`")
        };
        msg.push_str(&format!("; did you mean {shown}?"));
    }
    let what = if section.is_empty() {
        "sections"
    } else {
        "keys"
    };
    let sep = if msg.ends_with('?') { " " } else { ". " };
    msg.push_str(&format!("{sep}Valid {what}: {}", list(valid, &section)));
    msg
}

fn wrong_type(rest: &str, path: &[Step]) -> Option<String> {
    let (found, _) = rest.split_once(", expected")?;
    let found = match found {
        "map" => "a table",
        "sequence" => "an array",
        other => other,
    };
    let key = last_key(path)?;
    if path.len() == 1 {
        // A whole section has the wrong shape, e.g. `[watch]` instead of `[[watch]]`.
        let info = keys::find("", key)?;
        return Some(format!(
            "`{key}` must be {}, not {found}: write `{}` on a line of its own and the keys below it",
            info.expects, info.example
        ));
    }
    let section = section_of(path);
    let parent_is_metadata = matches!(path, [.., Step::Key(p), Step::Key(_)] if p == "metadata");
    if parent_is_metadata && path.len() > 3 {
        return Some(format!(
            "metadata value `{key}` in {} must be a string, not {found}; write for example `{key} = \"studio-a\"`",
            section_label(section)
        ));
    }
    let info = keys::find(section, key)?;
    let element = matches!(path.last(), Some(Step::Index(_)));
    let found_what = if element {
        format!("an element is {found}")
    } else {
        format!("found {found}")
    };
    Some(format!(
        "`{key}` in {} must be {} ({found_what}); write for example `{}`",
        section_label(section),
        info.expects,
        info.example
    ))
}

fn missing_key(name: &str, path: &[Step]) -> String {
    let section = match path.first() {
        Some(Step::Key(s)) => s.as_str(),
        _ => "",
    };
    let example = keys::find(section, name).map(|k| k.example).unwrap_or("");
    let which = match path.get(1) {
        Some(Step::Index(i)) if section == "watch" => format!("[[watch]] number {}", i + 1),
        _ => section_label(section),
    };
    if example.is_empty() {
        format!("{which} is missing the key `{name}`")
    } else {
        format!("{which} is missing the key `{name}`; add for example `{example}`")
    }
}
