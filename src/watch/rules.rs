//! Which paths may be uploaded at all, beyond include/exclude: never one of the daemon's own
//! secrets (the upload token file, the API key file, the config, the journal and its `-wal` and
//! `-shm`), recognised by (dev, inode) so a hard link or a symlink to them is refused too; with
//! `follow_symlinks = false` never a path that goes through a symlink below its root; with
//! `follow_symlinks = true` only targets inside a watch root unless `follow_symlinks_outside`.
//! A link whose target is inside a watch root is only another name for a file ingestd watches
//! anyway: it leads to the target's real path ([`Route::Inside`]), so one file reached under
//! several paths is one journal row and one video; only links to outside the roots keep their
//! own path.
//! The scan, the event hints and the settle check apply these rules, and the worker checks them
//! once more before it opens a file, so a row whose path broke them goes `gone` with the reason.

use crate::escape::Show as _;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::{Config, TokenSource, WatchConfig};

/// The daemon's own files, by path; stat'ed afresh at each check (the WAL comes and goes).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    files: Vec<(PathBuf, &'static str)>,
}

impl Secrets {
    /// The token file, the API key file, the config and the journal of `config`.
    pub fn from_config(config: &Config) -> Secrets {
        let mut files = vec![(config.source.clone(), "configuration file")];
        match &config.api.token {
            TokenSource::File(p) | TokenSource::Credential(p) => {
                files.push((p.clone(), "upload token file"));
            }
            TokenSource::Inline(_) | TokenSource::None => {}
        }
        if let Some(p) = &config.api.api_key_file {
            files.push((p.clone(), "API key file"));
        }
        let j = &config.journal.path;
        files.push((j.clone(), "journal"));
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = j.clone().into_os_string();
            p.push(suffix);
            files.push((PathBuf::from(p), "journal"));
        }
        Secrets { files }
    }

    /// Which secret the file of `m` is, if any.
    pub fn which(&self, m: &Metadata) -> Option<(&Path, &'static str)> {
        self.files.iter().find_map(|(p, what)| {
            let s = fs::metadata(p).ok()?;
            (s.dev() == m.dev() && s.ino() == m.ino()).then_some((p.as_path(), *what))
        })
    }
}

/// One root's symlink rules.
#[derive(Debug, Clone)]
struct RootRule {
    path: PathBuf,
    follow: bool,
    outside: bool,
}

/// The rules of every root plus the secrets.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    roots: Vec<RootRule>,
    secrets: Secrets,
}

/// Where a followed symlink leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Its target is in the watch root `root`, at `real` (its canonical path spelled from the
    /// root as configured): the file is recorded under `real`, never under the link's path.
    Inside { root: PathBuf, real: PathBuf },
    /// Its target is outside every root, and `follow_symlinks_outside = true`: the file is
    /// recorded under the link's own path.
    Outside,
}

/// Why a path is not uploaded.
#[derive(Debug)]
pub enum Refusal {
    /// Nothing there (any more).
    Missing(io::Error),
    /// It cannot be told now (a directory on the way is unreadable): decided later.
    Unknown(io::Error),
    /// Something there that the rules refuse; the text says what and why.
    Refused(String),
}

impl Rules {
    pub fn new(roots: &[WatchConfig], secrets: Secrets) -> Rules {
        Rules {
            roots: roots
                .iter()
                .map(|w| RootRule {
                    path: w.path.clone(),
                    follow: w.follow_symlinks,
                    outside: w.follow_symlinks_outside,
                })
                .collect(),
            secrets,
        }
    }

    /// The rules of one root and no secrets (unit tests of the walk).
    #[cfg(test)]
    pub(crate) fn one_root(root: &Path, follow: bool, outside: bool) -> Rules {
        Rules {
            roots: vec![RootRule {
                path: root.to_owned(),
                follow,
                outside,
            }],
            secrets: Secrets::default(),
        }
    }

    /// The rules for `config`'s roots and secrets.
    pub fn from_config(config: &Config) -> Rules {
        Rules::new(&config.watch, Secrets::from_config(config))
    }

    /// The watch root that holds `target` (canonical) and `target` spelled from that root as
    /// configured (a root reached through a symlink keeps its configured spelling, which is the
    /// one its own walk reports).
    pub fn locate(&self, target: &Path) -> Option<(PathBuf, PathBuf)> {
        self.roots.iter().find_map(|r| {
            let spelled = |rel: &Path| {
                if rel.as_os_str().is_empty() {
                    r.path.clone()
                } else {
                    r.path.join(rel)
                }
            };
            if let Ok(c) = fs::canonicalize(&r.path)
                && let Ok(rel) = target.strip_prefix(&c)
            {
                return Some((r.path.clone(), spelled(rel)));
            }
            let rel = target.strip_prefix(&r.path).ok()?;
            Some((r.path.clone(), spelled(rel)))
        })
    }

    /// Where the link at `link` (in the root `root`, `follow_symlinks = true`) leads, or why it
    /// must not be followed.
    pub fn route(&self, root: &Path, link: &Path) -> Result<Route, String> {
        if let Ok(m) = fs::metadata(link)
            && let Some((secret, what)) = self.secrets.which(&m)
        {
            return Err(format!(
                "a symlink to ingestd's own {what} ({}), never uploaded",
                secret.shown()
            ));
        }
        let target =
            fs::canonicalize(link).map_err(|e| format!("broken symlink or symlink loop: {e}"))?;
        if let Some((root, real)) = self.locate(&target) {
            return Ok(Route::Inside { root, real });
        }
        let outside = self
            .roots
            .iter()
            .find(|r| r.path == root)
            .is_none_or(|r| r.outside);
        if outside {
            Ok(Route::Outside)
        } else {
            Err(format!(
                "a symlink to {}, outside every watch root: not followed (set follow_symlinks_outside = true in [[watch]] to follow it)",
                target.shown()
            ))
        }
    }

    /// For a link the walk is about to follow (`follow_symlinks = true` in the root of `root`):
    /// why it must not be, if so.
    pub fn refuse_link(&self, root: &Path, link: &Path) -> Option<String> {
        self.route(root, link).err()
    }

    /// For a regular file found at `path` (`m`: its metadata, through a link when `via_link`):
    /// why it must not be uploaded, if so. The secrets are looked up only for a file with more
    /// than one link or reached through a symlink (the only ways a secret can be in a root).
    pub fn refuse_file(&self, path: &Path, m: &Metadata, via_link: bool) -> Option<String> {
        if m.nlink() <= 1 && !via_link {
            return None;
        }
        let (secret, what) = self.secrets.which(m)?;
        let _ = path;
        Some(format!(
            "it is ingestd's own {what} ({}), never uploaded",
            secret.shown()
        ))
    }

    /// The full check of the file of a row (`root`, `path`) before it is uploaded, or when a
    /// settling row is no longer seen: its metadata, or why not.
    pub fn check(&self, root: &Path, path: &Path) -> Result<Metadata, Refusal> {
        let rule = self.roots.iter().find(|r| r.path == root);
        let follow = rule.is_none_or(|r| r.follow);
        if !follow {
            let below = link_below(root, path).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => Refusal::Missing(e),
                _ => Refusal::Unknown(e),
            })?;
            if let Some(link) = below {
                return Err(Refusal::Refused(if link == path {
                    "it is now a symlink, and follow_symlinks = false".to_owned()
                } else {
                    format!(
                        "its directory {} is now a symlink, and follow_symlinks = false",
                        link.shown()
                    )
                }));
            }
        }
        let m = fs::metadata(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => Refusal::Missing(e),
            _ => Refusal::Unknown(e),
        })?;
        if !m.is_file() {
            return Err(Refusal::Refused(
                "it is no longer a regular file".to_owned(),
            ));
        }
        let via_link = follow && fs::canonicalize(path).is_ok_and(|c| c != path);
        if via_link && rule.is_some() {
            match self.route(root, path) {
                Err(why) => return Err(Refusal::Refused(why)),
                Ok(Route::Inside { real, .. }) if real != path => {
                    return Err(Refusal::Refused(format!(
                        "it is reached through a symlink, and its real path {} is inside a watch root: the file is uploaded under that path only",
                        real.shown()
                    )));
                }
                Ok(_) => {}
            }
        }
        match self.refuse_file(path, &m, true) {
            Some(why) => Err(Refusal::Refused(why)),
            None => Ok(m),
        }
    }
}

/// The first symlink among the components of `path` below `root` (the file itself included).
fn link_below(root: &Path, path: &Path) -> io::Result<Option<PathBuf>> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(None);
    };
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Ok(Some(p)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rules(root: &Path, follow: bool, secret: &Path) -> Rules {
        Rules {
            roots: vec![RootRule {
                path: root.to_owned(),
                follow,
                outside: false,
            }],
            secrets: Secrets {
                files: vec![(secret.to_owned(), "upload token file")],
            },
        }
    }

    fn refused(r: Result<Metadata, Refusal>) -> String {
        match r {
            Err(Refusal::Refused(s)) => s,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn symlinks_below_the_root_and_secrets_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("in");
        let out = d.path().join("out");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(&out).unwrap();
        let token = d.path().join("token");
        fs::write(&token, "to123").unwrap();
        fs::write(root.join("sub/a.mp4"), "a").unwrap();
        fs::write(out.join("b.mp4"), "b").unwrap();
        symlink(out.join("b.mp4"), root.join("link.mp4")).unwrap();
        symlink(&out, root.join("dirlink")).unwrap();
        fs::hard_link(&token, root.join("hard.mp4")).unwrap();

        let strict = rules(&root, false, &token);
        assert!(strict.check(&root, &root.join("sub/a.mp4")).is_ok());
        assert!(refused(strict.check(&root, &root.join("link.mp4"))).contains("now a symlink"));
        assert!(
            refused(strict.check(&root, &root.join("dirlink/b.mp4"))).contains("its directory")
        );
        assert!(refused(strict.check(&root, &root.join("hard.mp4"))).contains("upload token file"));
        assert!(matches!(
            strict.check(&root, &root.join("nope.mp4")),
            Err(Refusal::Missing(_))
        ));

        let follow = rules(&root, true, &token);
        assert!(
            refused(follow.check(&root, &root.join("link.mp4")))
                .contains("outside every watch root")
        );
        symlink(&token, root.join("tok.mp4")).unwrap();
        assert!(refused(follow.check(&root, &root.join("tok.mp4"))).contains("token"));
        fs::write(root.join("c.mp4"), "c").unwrap();
        symlink(root.join("c.mp4"), root.join("inside.mp4")).unwrap();
        assert!(follow.check(&root, &root.join("c.mp4")).is_ok());
        // A link inside the root is another name for c.mp4: its row would be a second video.
        assert!(
            refused(follow.check(&root, &root.join("inside.mp4")))
                .contains(&*root.join("c.mp4").to_string_lossy())
        );
    }

    #[test]
    fn links_inside_the_roots_lead_to_the_real_path_spelled_from_the_root() {
        let d = tempfile::tempdir().unwrap();
        let real_root = d.path().join("real-in");
        fs::create_dir_all(real_root.join("sub")).unwrap();
        // The root as configured goes through a symlink: real paths keep its spelling.
        let root = d.path().join("in");
        symlink(&real_root, &root).unwrap();
        let token = d.path().join("token");
        fs::write(&token, "to123").unwrap();
        fs::write(root.join("sub/a.mp4"), "a").unwrap();
        symlink(root.join("sub/a.mp4"), root.join("a-link.mp4")).unwrap();
        symlink("sub", root.join("dirlink")).unwrap();
        symlink(&root, root.join("sub/up")).unwrap();
        let r = rules(&root, true, &token);
        let inside = |real: PathBuf| {
            Ok(Route::Inside {
                root: root.clone(),
                real,
            })
        };
        assert_eq!(
            r.route(&root, &root.join("a-link.mp4")),
            inside(root.join("sub/a.mp4"))
        );
        assert_eq!(
            r.route(&root, &root.join("dirlink")),
            inside(root.join("sub"))
        );
        assert_eq!(
            r.route(&root, &root.join("dirlink/a.mp4")),
            inside(root.join("sub/a.mp4"))
        );
        assert_eq!(r.route(&root, &root.join("sub/up")), inside(root.clone()));
        // The real path itself passes the worker's check; the other names do not.
        assert!(r.check(&root, &root.join("sub/a.mp4")).is_ok());
        assert!(refused(r.check(&root, &root.join("dirlink/a.mp4"))).contains("real path"));
        assert!(refused(r.check(&root, &root.join("a-link.mp4"))).contains("real path"));

        // Outside every root: refused, or followed under its own path when asked.
        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        symlink(&out, root.join("outlink")).unwrap();
        assert!(r.route(&root, &root.join("outlink")).is_err());
        let mut open = r.clone();
        open.roots[0].outside = true;
        assert_eq!(open.route(&root, &root.join("outlink")), Ok(Route::Outside));
    }
}
