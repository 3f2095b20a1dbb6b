//! Positions in the configuration text: byte offsets → 1-based `line:col`, and the dotted key
//! path (`upload.workers`, `watch[1].settle`) at an offset, found in toml's spanned document tree.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in text.bytes().enumerate().take(offset) {
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    // Count characters, not bytes; back off to a char boundary if the offset is mid-character.
    let mut end = offset;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let col = text[line_start..end].chars().count() + 1;
    (line, col)
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The key path whose key or value contains `offset` (innermost), e.g. `[Key("watch"), Index(0),
/// Key("settle")]`. Empty when the offset is outside every key (top level).
pub fn path_at(text: &str, offset: usize) -> Vec<Step> {
    let mut out = Vec::new();
    // Recoverable: a document with a duplicate key still yields the tree around it.
    let (doc, _errors) = DeTable::parse_recoverable(text);
    if !walk_table(doc.get_ref(), offset, &mut out) {
        out.clear();
    }
    out
}

fn contains(span: Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Searches every key and value (table spans may cover only their header, so children are always
/// searched); returns true when `offset` was found, with the steps pushed onto `out`.
fn walk_table(table: &DeTable<'_>, offset: usize, out: &mut Vec<Step>) -> bool {
    for (key, value) in table {
        out.push(Step::Key(key.get_ref().to_string()));
        if contains(key.span(), offset) || walk_value(value, offset, out) {
            return true;
        }
        out.pop();
    }
    false
}

fn walk_value(value: &Spanned<DeValue<'_>>, offset: usize, out: &mut Vec<Step>) -> bool {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, offset, out) || contains(value.span(), offset),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                out.push(Step::Index(i));
                if walk_value(item, offset, out) {
                    return true;
                }
                out.pop();
            }
            contains(value.span(), offset)
        }
        _ => contains(value.span(), offset),
    }
}

/// `watch[1].settle`, `upload.workers`.
pub fn render_path(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_chars() {
        let text = "a = 1\nbé = 2\n\nc = 3";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        // `=` after "bé " is byte 10 but character 4 of the line.
        assert_eq!(&text[10..11], "=");
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 14), (3, 1));
        assert_eq!(line_col(text, 15), (4, 1));
        assert_eq!(line_col(text, 1000), (4, 6));
    }

    #[test]
    fn finds_key_paths() {
        let text = "[upload]\nworkers = \"two\"\n\n[[watch]]\npath = \"/a\"\n\n[[watch]]\npath = \"/b\"\ninclude = [\n  \"*.mp4\",\n  5,\n]\n";
        let at = |needle: &str| render_path(&path_at(text, text.find(needle).unwrap()));
        assert_eq!(at("\"two\""), "upload.workers");
        assert_eq!(at("workers"), "upload.workers");
        assert_eq!(at("\"/b\""), "watch[1].path");
        assert_eq!(at("5,"), "watch[1].include[1]");
    }
}
