//! Hostile file names (issue 14 §4): names holding CR, LF, ESC or a bidi override upload like any
//! other (the multipart `filename` has them replaced; with an API key the title keeps the real
//! name), and no human output shows them raw — not the log, not `status` — while `status
//! --json` keeps the exact path.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::{MIB5, Opts, Setup, file_row, sha256_file, video, videos};
use common::{Emulator, bin};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// Names that break a careless log line, terminal or multipart header.
const NAMES: &[&str] = &[
    "cr\r.mp4",
    "lf\n2026-01-01T00:00:00Z  INFO forged line.mp4",
    "esc\u{1b}]0;owned\u{7}\u{1b}[2J.mp4",
    "bidi\u{202e}4pm.mp4",
];

fn drop_all(s: &Setup) -> Vec<PathBuf> {
    NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // One of them chunked (every chunk carries the file name).
            let len = if i == 1 {
                MIB5 + 4096
            } else {
                200_000 + i as u64
            };
            s.drop_file(n, len, i as u64)
        })
        .collect()
}

/// The video of `path`, checked complete with the file's content.
fn uploaded(em: &Emulator, st: &Value, path: &std::path::Path) -> Value {
    let row = file_row(st, path).unwrap_or_else(|| panic!("no exact row for {path:?}: {st:#}"));
    assert_eq!(row["state"], "done", "{row:#}");
    let v = video(em, row["video_id"].as_str().unwrap());
    assert_eq!(v["complete"], true, "{v:#}");
    assert_eq!(v["sha256"].as_str(), Some(&*sha256_file(path)), "{v:#}");
    v
}

fn no_raw_controls(what: &str, text: &str) {
    for c in ['\u{1b}', '\r', '\u{7}', '\u{202e}'] {
        assert!(!text.contains(c), "{what} shows {c:?} raw:\n{text}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "{what} has a forged line:\n{text}"
    );
}

/// What `ingestd ARGS --config CONFIG [PATH]` printed on stdout.
fn stdout_of(s: &Setup, args: &[&str], path: Option<&Path>) -> String {
    let out = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(&s.config)
        .args(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn names_with_control_characters_upload_and_are_shown_escaped() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let mut d = s.start();
    let paths = drop_all(&s);
    let st = s.wait_done(NAMES.len(), T);
    for p in &paths {
        let v = uploaded(&em, &st, p);
        let title = v["title"].as_str().unwrap();
        assert!(
            !title.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "multipart filename (the title on the token path) without controls: {title:?}"
        );
    }
    assert_eq!(videos(&em).len(), NAMES.len(), "no other video");

    let human = stdout_of(&s, &["status", "--all"], None);
    no_raw_controls("status", &human);
    assert!(human.contains("lf\\n2026-01-01T00:00:00Z"), "{human}");
    assert!(human.contains("esc\\x1b]0;owned\\x07"), "{human}");
    assert!(human.contains("bidi\\u{202e}4pm"), "{human}");
    let explain = stdout_of(&s, &["explain"], Some(&paths[2]));
    no_raw_controls("explain", &explain);

    d.signal(libc::SIGTERM);
    d.wait_exit(T);
    no_raw_controls("the log", &s.log());
}

#[test]
fn with_an_api_key_the_title_keeps_the_real_name() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    s.use_api_key();
    let _d = s.start();
    let paths = drop_all(&s);
    let st = s.wait_done(NAMES.len(), T);
    for (p, name) in paths.iter().zip(NAMES) {
        let v = uploaded(&em, &st, p);
        let stem = name.strip_suffix(".mp4").unwrap();
        assert_eq!(v["title"].as_str(), Some(stem), "{v:#}");
    }
    assert_eq!(videos(&em).len(), NAMES.len(), "no empty video left behind");
}

/// A name that is not UTF-8 (Latin-1 from an old camera or an SMB share: `café` as `caf\xE9`) is
/// a file like any other: it used to be skipped with one warning and never uploaded.
#[test]
fn a_name_that_is_not_utf8_is_uploaded() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let _d = s.start();
    let path = s.inbox.join(OsStr::from_bytes(b"caf\xe9 \xff\xfe.mp4"));
    common::daemon::write_file_atomic(&path, 300_000, 7);
    let st = s.wait_done(1, T);
    uploaded(&em, &st, &path);
    assert_eq!(videos(&em).len(), 1, "one video");
    assert!(!s.log().contains("not valid UTF-8"), "{}", s.log());

    // Shown with its bytes as `\xNN` (what bash's `$'…'` takes back), not as U+FFFD: two names
    // that differ only in such bytes must not look the same.
    let shown = "caf\\xe9 \\xff\\xfe.mp4";
    let status = stdout_of(&s, &["status", "--all"], None);
    assert!(status.contains(shown), "status: {status}");
    assert!(!status.contains('\u{fffd}'), "status: {status}");
    let explain = stdout_of(&s, &["explain"], Some(&path));
    assert!(explain.contains(shown), "explain: {explain}");
    assert!(s.log().contains(shown), "the log: {}", s.log());
    assert!(!s.log().contains('\u{fffd}'), "the log: {}", s.log());
}

/// Names a multipart header must quote or escape: quotes, a backslash, `;` and `=`, `%`,
/// non-ASCII letters, spaces at the ends. Each uploads once, content equal, and with the token
/// alone its title (the multipart `filename`) is the name as it is on disk, a backslash as `_`.
#[test]
fn names_that_need_quoting_in_the_multipart_header_upload() {
    let names = [
        "a \"quoted\" name.mp4",
        "back\\slash.mp4",
        "semi;colon=x.mp4",
        "per%20cent.mp4",
        "été 映画.mp4",
        " spaced .mp4",
        "it's.mp4",
    ];
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let _d = s.start();
    let paths: Vec<PathBuf> = names
        .iter()
        .enumerate()
        .map(|(i, n)| s.drop_file(n, 100_000 + i as u64, 20 + i as u64))
        .collect();
    let st = s.wait_done(names.len(), T);
    for (p, n) in paths.iter().zip(names) {
        let v = uploaded(&em, &st, p);
        // A backslash goes as `_`: reqwest escapes it, and a server reading the header as
        // browsers write it (the emulator's multer, PHP) would keep it doubled.
        let sent = n.replace('\\', "_");
        assert_eq!(v["title"].as_str(), Some(&*sent), "{v:#}");
    }
    assert_eq!(videos(&em).len(), names.len(), "no other video");
}

/// `orphans` lists a partial video left by a file with such a name (deleted during its upload)
/// with the name escaped, as `status` shows it (session 6 audit: it printed the path raw).
#[test]
fn orphans_shows_such_a_name_escaped() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    common::daemon::throttle_uploads(&em, 4 * 1024 * 1024);
    let _d = s.start();
    let name = NAMES[2];
    let p = s.drop_file(name, 3 * MIB5, 9);
    s.wait_for("the first chunk committed", T, |st| {
        file_row(st, &p).is_some_and(|r| r["bytes_uploaded"].as_u64() >= Some(MIB5))
    });
    std::fs::remove_file(&p).unwrap();
    s.wait_for("the deleted file gone", T, |st| {
        file_row(st, &p).is_some_and(|r| r["state"] == "gone")
    });
    let out = Command::new(bin())
        .args(["orphans", "--config"])
        .arg(&s.config)
        .env_remove("APIVIDEO_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("abandoned"), "{stdout}");
    assert!(
        stdout.contains("esc\\x1b]0;owned\\x07\\x1b[2J.mp4"),
        "{stdout}"
    );
    no_raw_controls("orphans", &stdout);
}
