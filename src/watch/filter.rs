//! Which paths under a watch root are candidates: include/exclude globs (case-insensitive, matched
//! against each path component's name), hidden directories skipped.
//!
//! Used by the scanner, the event bridge and `ingestd explain`, so all three give the same verdict.

use std::fmt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::WatchConfig;

/// Why a path is not a candidate for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A file or directory name matched an `exclude` pattern.
    Excluded { pattern: String, component: String },
    /// The file name matched no `include` pattern.
    NotIncluded { name: String },
    /// The file is below the root but `recursive = false`.
    NotRecursive,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Excluded { pattern, component } => {
                write!(
                    f,
                    "excluded: `{component}` matches exclude pattern `{pattern}`"
                )
            }
            Rejection::NotIncluded { name } => write!(
                f,
                "not included: `{name}` matches none of the include patterns"
            ),
            Rejection::NotRecursive => {
                write!(f, "in a subdirectory, and this root has recursive = false")
            }
        }
    }
}

/// Compiled include/exclude patterns of one watch root.
#[derive(Debug, Clone)]
pub struct Filter {
    include: GlobSet,
    include_patterns: Vec<String>,
    exclude: GlobSet,
    exclude_patterns: Vec<String>,
    recursive: bool,
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(true)
        .build()
}

fn set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p)?);
    }
    b.build()
}

impl Filter {
    pub fn new(cfg: &WatchConfig) -> Result<Filter, globset::Error> {
        Self::from_patterns(&cfg.include, &cfg.exclude, cfg.recursive)
    }

    pub fn from_patterns(
        include: &[String],
        exclude: &[String],
        recursive: bool,
    ) -> Result<Filter, globset::Error> {
        Ok(Filter {
            include: set(include)?,
            include_patterns: include.to_vec(),
            exclude: set(exclude)?,
            exclude_patterns: exclude.to_vec(),
            recursive,
        })
    }

    /// Whether a directory (path relative to the root) should be descended into.
    pub fn rejects_dir(&self, relative: &Path) -> Option<Rejection> {
        if !self.recursive && !relative.as_os_str().is_empty() {
            return Some(Rejection::NotRecursive);
        }
        self.excluded_component(relative)
    }

    /// Why a file (path relative to the root) is not a candidate; `None` means it is one.
    pub fn rejects_file(&self, relative: &Path) -> Option<Rejection> {
        if !self.recursive && relative.components().count() > 1 {
            return Some(Rejection::NotRecursive);
        }
        if let Some(r) = self.excluded_component(relative) {
            return Some(r);
        }
        let name = relative.file_name().unwrap_or(relative.as_os_str());
        if self.include.is_match(Path::new(name)) {
            None
        } else {
            Some(Rejection::NotIncluded {
                name: name.to_string_lossy().into_owned(),
            })
        }
    }

    /// The first component (directory or file name) that matches an exclude pattern.
    fn excluded_component(&self, relative: &Path) -> Option<Rejection> {
        for comp in relative.components() {
            let name = Path::new(comp.as_os_str());
            if let Some(&i) = self.exclude.matches(name).first() {
                return Some(Rejection::Excluded {
                    pattern: self.exclude_patterns[i].clone(),
                    component: name.to_string_lossy().into_owned(),
                });
            }
        }
        None
    }

    pub fn include_patterns(&self) -> &[String] {
        &self.include_patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE};

    fn default_filter() -> Filter {
        let inc: Vec<String> = DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect();
        let exc: Vec<String> = DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect();
        Filter::from_patterns(&inc, &exc, true).unwrap()
    }

    #[test]
    fn defaults() {
        let f = default_filter();
        assert_eq!(f.rejects_file(Path::new("a/b/CLIP.MP4")), None);
        assert_eq!(f.rejects_file(Path::new("clip.mov")), None);
        assert!(matches!(
            f.rejects_file(Path::new("clip.mp4.part")),
            Some(Rejection::Excluded { .. })
        ));
        assert!(matches!(
            f.rejects_file(Path::new(".hidden/clip.mp4")),
            Some(Rejection::Excluded { ref pattern, .. }) if pattern == ".*"
        ));
        assert!(matches!(
            f.rejects_file(Path::new("notes.txt")),
            Some(Rejection::NotIncluded { .. })
        ));
        assert!(matches!(
            f.rejects_file(Path::new("~lock.mp4")),
            Some(Rejection::Excluded { .. })
        ));
        assert_eq!(f.rejects_dir(Path::new("day1")), None);
    }

    #[test]
    fn not_recursive() {
        let f = Filter::from_patterns(&["*".into()], &[], false).unwrap();
        assert_eq!(f.rejects_file(Path::new("a.mp4")), None);
        assert_eq!(
            f.rejects_file(Path::new("sub/a.mp4")),
            Some(Rejection::NotRecursive)
        );
    }
}
