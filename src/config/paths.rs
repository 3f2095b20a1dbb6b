//! Path rules: absolute paths only, and overlap tests that see through `.`, `..` and symlinks of
//! the parts that already exist.

use std::path::{Component, Path, PathBuf};

/// Removes `.` and resolves `..` lexically.
pub fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The canonical form of the longest existing ancestor, with the rest appended lexically.
pub fn resolve(p: &Path) -> PathBuf {
    let p = lexical(p);
    let mut tail = Vec::new();
    let mut cur = p.as_path();
    loop {
        if let Ok(canon) = std::fs::canonicalize(cur) {
            let mut out = canon;
            for part in tail.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_owned());
                cur = parent;
            }
            _ => return p,
        }
    }
}

/// True when `inner` is `outer` or below it (both resolved).
pub fn is_within(inner: &Path, outer: &Path) -> bool {
    resolve(inner).starts_with(resolve(outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation() {
        assert_eq!(lexical(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
        assert_eq!(lexical(Path::new("/../a")), PathBuf::from("/a"));
    }

    #[test]
    fn within() {
        assert!(is_within(Path::new("/srv/a/b"), Path::new("/srv/a")));
        assert!(is_within(Path::new("/srv/a"), Path::new("/srv/a/")));
        assert!(!is_within(Path::new("/srv/ab"), Path::new("/srv/a")));
        assert!(is_within(Path::new("/srv/x/../a/j"), Path::new("/srv/a")));
    }

    #[test]
    fn within_sees_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(is_within(&link.join("journal.sqlite"), &real));
    }
}
