//! The daemon's own secrets and symlinks (issue 14 §5, §6): a hard link to the token file, the
//! API key file, the config or the journal inside a root is never uploaded (one warning naming
//! the path); with `follow_symlinks = true` a link to a secret or to outside every root is not
//! followed; a queued file replaced by a symlink, or whose directory was replaced by one while
//! the daemon was stopped, goes `gone` with the reason instead of settling forever. A file
//! reached through a symlink inside a root (a file link, or a directory link) is one row under
//! its real path and one video, with the inotify watcher and the polling one.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Emulator;
use common::daemon::{
    Opts, Setup, assert_uploaded_once, clear_faults, file_row, set_faults, video_id, videos,
};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn with_api_key(s: &Setup) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = s.dir.join("api-key");
    std::fs::write(&key, common::API_KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

/// A setup whose watch root follows symlinks.
fn following_links(em: &Emulator) -> Setup {
    let s = Setup::new(em, Opts::default());
    write_config(&s, None, "follow_symlinks = true\n");
    s
}

fn write_config(s: &Setup, key: Option<&Path>, watch_extra: &str) {
    let mut text = s.config_text();
    if let Some(key) = key {
        text = text.replacen(
            "[api]\n",
            &format!("[api]\napi_key_file = \"{}\"\n", key.display()),
            1,
        );
    }
    text = text.replace(
        "include = [\"*.mp4\"]\n",
        &format!("include = [\"*.mp4\"]\n{watch_extra}"),
    );
    std::fs::write(&s.config, text).unwrap();
}

fn state<'a>(st: &'a Value, p: &Path) -> Option<&'a str> {
    file_row(st, p).and_then(|r| r["state"].as_str())
}

#[test]
fn hard_links_to_the_daemons_secrets_are_never_uploaded() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let key = with_api_key(&s);
    write_config(&s, Some(&key), "");
    let links = [
        (s.token_file.clone(), s.inbox.join("token.mp4")),
        (key.clone(), s.inbox.join("key.mp4")),
        (s.config.clone(), s.inbox.join("config.mp4")),
    ];
    for (target, link) in &links {
        std::fs::hard_link(target, link).unwrap();
    }
    let _d = s.start();
    // The journal exists once the daemon runs: link it (and its WAL) too.
    s.wait_log("ingestd is running", T);
    std::fs::hard_link(s.dir.join("journal.sqlite"), s.inbox.join("journal.mp4")).unwrap();
    std::fs::hard_link(s.dir.join("journal.sqlite-wal"), s.inbox.join("wal.mp4")).unwrap();
    let barrier = s.drop_file("real.mp4", 100_000, 1);
    s.wait_for("the real file done", T, |st| {
        state(st, &barrier) == Some("done")
    });
    let barrier2 = s.drop_file("real2.mp4", 100_000, 2);
    let st = s.wait_for("the second real file done", T, |st| {
        state(st, &barrier2) == Some("done")
    });
    let log = s.log();
    for name in [
        "token.mp4",
        "key.mp4",
        "config.mp4",
        "journal.mp4",
        "wal.mp4",
    ] {
        let p = s.inbox.join(name);
        assert!(
            file_row(&st, &p).is_none(),
            "{name} reached the journal: {st:#}"
        );
        let warnings = log
            .lines()
            .filter(|l| l.contains(&*p.to_string_lossy()) && l.contains("ingestd's own"))
            .count();
        assert_eq!(warnings, 1, "one warning for {name}:\n{log}");
    }
    assert_eq!(
        videos(&em).len(),
        2,
        "only the two real files: {:#?}",
        videos(&em)
    );
}

#[test]
fn followed_links_stay_inside_the_roots_and_never_reach_a_secret() {
    let em = Emulator::start();
    let s = following_links(&em);
    let outside = outside_with(&s, "private.mp4", 100_000, 3);
    symlink(&s.token_file, s.inbox.join("tok.mp4")).unwrap();
    symlink(outside.join("private.mp4"), s.inbox.join("private.mp4")).unwrap();
    symlink(&outside, s.inbox.join("outdir")).unwrap();
    let inner = s.inbox.join("real");
    std::fs::create_dir_all(&inner).unwrap();
    let _d = s.start();
    let barrier = s.drop_file("real/clip.mp4", 100_000, 4);
    symlink(&s.token_file, s.inbox.join("later-tok.mp4")).unwrap();
    let st = s.wait_for("the real file done", T, |st| {
        state(st, &barrier) == Some("done")
    });
    s.wait_log("later-tok.mp4", T);
    for name in [
        "tok.mp4",
        "private.mp4",
        "outdir/private.mp4",
        "later-tok.mp4",
    ] {
        assert!(
            file_row(&st, &s.inbox.join(name)).is_none(),
            "{name}: {st:#}"
        );
    }
    let log = s.log();
    assert!(log.contains("outside every watch root"), "{log}");
    assert!(log.contains("ingestd's own upload token file"), "{log}");
    assert_eq!(videos(&em).len(), 1, "{:#?}", videos(&em));
}

/// Makes every upload fail (503) so that files wait `queued` for a retry.
fn hold_uploads(em: &Emulator) {
    set_faults(
        em,
        json!([{"path": "/upload", "count": 1_000_000, "action": "fail", "status": 503, "body": "busy"}]),
    );
}

fn replace_with_symlink(target: &Path, at: &Path) {
    let tmp = at.with_file_name(".swap.tmp");
    symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, at).unwrap();
}

#[test]
fn a_queued_file_replaced_by_a_symlink_goes_gone_with_the_reason() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let outside = outside_with(&s, "other.mp4", 77_777, 9);
    hold_uploads(&em);
    let _d = s.start();
    let f = s.drop_file("clip.mp4", 100_000, 5);
    s.wait_for("a failed attempt", T, |st| {
        file_row(st, &f).is_some_and(|r| r["attempts"].as_u64() >= Some(1))
    });
    replace_with_symlink(&outside.join("other.mp4"), &f);
    clear_faults(&em);
    gone_because(&s, &f, "now a symlink");
    assert!(
        videos(&em).iter().all(|v| v["complete"] != true),
        "nothing uploaded"
    );
}

#[test]
fn a_directory_replaced_by_a_symlink_while_stopped_makes_its_rows_gone() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let outside = outside_with(&s, "clip.mp4", 55_555, 8);
    hold_uploads(&em);
    let sub = s.inbox.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let mut d = s.start();
    let f = s.drop_file("sub/clip.mp4", 100_000, 6);
    s.wait_for("a failed attempt", T, |st| {
        file_row(st, &f).is_some_and(|r| r["attempts"].as_u64() >= Some(1))
    });
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(T).is_some(), "the daemon stops");
    std::fs::rename(&sub, s.dir.join("old-sub")).unwrap();
    symlink(&outside, &sub).unwrap();
    clear_faults(&em);
    let _d = s.start();
    gone_because(&s, &f, "its directory");
    assert!(
        videos(&em).iter().all(|v| v["complete"] != true),
        "nothing uploaded"
    );
}

/// A `settling` row whose file became a symlink while the daemon was stopped (as rows left
/// stuck by earlier versions are): no scan reports the path any more, and the check after the
/// start's full scan ends the row `gone` with the reason.
#[test]
fn a_settling_row_whose_path_became_a_symlink_does_not_stay_settling() {
    let em = Emulator::start();
    let s = settling_for_an_hour(&em);
    let outside = outside_with(&s, "other.mp4", 12_345, 4);
    let mut d = s.start();
    let f = s.drop_file("clip.mp4", 100_000, 7);
    s.wait_for("the row settling", T, |st| {
        state(st, &f) == Some("settling")
    });
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(T).is_some(), "the daemon stops");
    replace_with_symlink(&outside.join("other.mp4"), &f);
    let _d = s.start();
    gone_because(&s, &f, "now a symlink");
}

/// A setup whose files stay `settling` (settle = 1 h) while a test changes what their paths are.
fn settling_for_an_hour(em: &Emulator) -> Setup {
    Setup::new(
        em,
        Opts {
            settle: "1h",
            ..Opts::default()
        },
    )
}

/// `outside/` beside the inbox (outside every root) holding `name`: the directory.
fn outside_with(s: &Setup, name: &str, len: u64, seed: u64) -> PathBuf {
    let outside = s.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    common::daemon::write_file(&outside.join(name), len, seed);
    outside
}

/// Waits until the row of `f` is `gone`, its `last_error` saying `why`; the status then.
fn gone_because(s: &Setup, f: &Path, why: &str) -> Value {
    let st = s.wait_for("the row gone", T, |st| state(st, f) == Some("gone"));
    let row = file_row(&st, f).unwrap();
    let error = row["last_error"].as_str().unwrap_or("");
    assert!(error.contains(why), "{row:#}");
    st
}

/// No row of `st` has a path under any of `names` (files or directories of the inbox).
fn no_rows_under(s: &Setup, st: &Value, names: &[&str]) {
    for f in st["files"].as_array().into_iter().flatten() {
        let p = Path::new(f["path"].as_str().unwrap_or(""));
        for n in names {
            assert!(
                !p.starts_with(s.inbox.join(n)),
                "a row under the link {n}: {f:#}\n{st:#}"
            );
        }
    }
}

/// Every file of `files` uploaded exactly once (content equal), and nothing else uploaded.
fn one_video_each(em: &Emulator, st: &Value, files: &[&Path]) {
    for f in files {
        assert_uploaded_once(em, f, &video_id(st, f));
    }
    assert_eq!(
        videos(em).len(),
        files.len(),
        "one video per file: {:#?}",
        videos(em)
    );
}

/// Links to a file of the root, made before the start and after its upload (absolute,
/// relative, from a subdirectory): the file is uploaded once, under its own path; the target
/// replaced by new content is one more video, still under its own path.
fn file_links_inside_the_root_are_one_video(watch_extra: &str) {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    write_config(&s, None, &format!("follow_symlinks = true\n{watch_extra}"));
    let clip = s.inbox.join("clip.mp4");
    common::daemon::write_file(&clip, 300_000, 11);
    symlink(&clip, s.inbox.join("alias.mp4")).unwrap();
    symlink("clip.mp4", s.inbox.join("rel.mp4")).unwrap();
    let _d = s.start();
    s.wait_for("clip.mp4 done", T, |st| state(st, &clip) == Some("done"));
    // Links made after the upload: no second upload.
    std::fs::create_dir_all(s.inbox.join("sub")).unwrap();
    symlink("../clip.mp4", s.inbox.join("sub/deep.mp4")).unwrap();
    symlink(&clip, s.inbox.join("late.mp4")).unwrap();
    let barrier = s.drop_file("barrier.mp4", 100_000, 12);
    let st = s.wait_for("the barrier done", T, |st| {
        state(st, &barrier) == Some("done")
    });
    no_rows_under(&s, &st, &["alias.mp4", "rel.mp4", "late.mp4", "sub"]);
    one_video_each(&em, &st, &[&clip, &barrier]);
    // `explain` on a link names the real path and what happened to it.
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&s.config)
        .arg("explain")
        .arg(s.inbox.join("late.mp4"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("its real path {}", clip.display()))
            && text.contains("uploaded: videoId"),
        "{text}"
    );
    // The target replaced by new content (atomic rename): one more video, of the new content,
    // still under the real path only.
    let first = video_id(&st, &clip);
    s.drop_file("clip.mp4", 250_000, 13);
    // The path's newest row (the first upload's row stays, superseded).
    let newest = |st: &Value| {
        st["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["path"].as_str() == Some(&*clip.to_string_lossy()))
            .find(|r| r["video_id"].as_str() != Some(&*first))
            .cloned()
    };
    let st = s.wait_for("the new clip.mp4 done", T, |st| {
        newest(st).is_some_and(|r| r["state"] == "done")
    });
    no_rows_under(&s, &st, &["alias.mp4", "rel.mp4", "late.mp4", "sub"]);
    let new_id = newest(&st).unwrap()["video_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new = common::daemon::video(&em, &new_id);
    assert_eq!(
        new["sha256"].as_str(),
        Some(&*common::daemon::sha256_file(&clip)),
        "{new:#}"
    );
    assert_eq!(videos(&em).len(), 3, "{:#?}", videos(&em));
}

#[test]
fn a_file_linked_inside_its_root_is_one_video() {
    file_links_inside_the_root_are_one_video("");
}

#[test]
fn a_file_linked_inside_its_root_is_one_video_when_polling() {
    file_links_inside_the_root_are_one_video("mode = \"poll\"\npoll_interval = \"1s\"\n");
}

/// A directory link inside the root made before the start, two made while it runs (absolute
/// and relative), and a file added to the real directory once they exist: each file is
/// uploaded once, under its real path.
#[test]
fn a_directory_linked_inside_its_root_uploads_each_file_once() {
    let em = Emulator::start();
    let s = following_links(&em);
    let real = s.inbox.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let (a, b) = (real.join("a.mp4"), real.join("b.mp4"));
    common::daemon::write_file(&a, 200_000, 21);
    common::daemon::write_file(&b, 150_000, 22);
    symlink(&real, s.inbox.join("before")).unwrap();
    let _d = s.start();
    s.wait_for("a and b done under their real paths", T, |st| {
        state(st, &a) == Some("done") && state(st, &b) == Some("done")
    });
    symlink(&real, s.inbox.join("after")).unwrap();
    symlink("real", s.inbox.join("again")).unwrap();
    let c = s.drop_file("real/c.mp4", 120_000, 23);
    let barrier = s.drop_file("barrier.mp4", 100_000, 24);
    let st = s.wait_for("c and the barrier done", T, |st| {
        state(st, &c) == Some("done") && state(st, &barrier) == Some("done")
    });
    no_rows_under(&s, &st, &["before", "after", "again"]);
    one_video_each(&em, &st, &[&a, &b, &c, &barrier]);
}

/// A queued file replaced by a link to another file of the same root (atomic `rename`, during a
/// retry wait): its row goes `gone` with the reason, and the other file is uploaded once, under
/// its own path (before: the link's row uploaded the other file's bytes a second time).
#[test]
fn a_queued_file_replaced_by_a_link_into_its_root_is_not_a_second_copy() {
    let em = Emulator::start();
    let s = following_links(&em);
    hold_uploads(&em);
    let _d = s.start();
    let f = s.drop_file("clip.mp4", 100_000, 31);
    let other = s.drop_file("other.mp4", 90_000, 32);
    s.wait_for("failed attempts", T, |st| {
        [&f, &other]
            .iter()
            .all(|p| file_row(st, p).is_some_and(|r| r["attempts"].as_u64() >= Some(1)))
    });
    replace_with_symlink(&other, &f);
    clear_faults(&em);
    let st = s.wait_for("the row gone, the other file done", T, |st| {
        state(st, &f) == Some("gone") && state(st, &other) == Some("done")
    });
    let row = file_row(&st, &f).unwrap();
    assert!(
        row["last_error"].as_str().unwrap_or("").contains("symlink"),
        "{row:#}"
    );
    // A late retry of the link's row would be a second video of other.mp4: wait until nothing
    // is left to do before counting.
    let st = s.wait_for("nothing pending", T, |st| {
        st["files"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| matches!(r["state"].as_str(), Some("done" | "gone")))
    });
    let complete: Vec<Value> = videos(&em)
        .into_iter()
        .filter(|v| v["complete"] == true)
        .collect();
    assert_eq!(complete.len(), 1, "only other.mp4: {complete:#?}");
    assert_uploaded_once(&em, &other, &video_id(&st, &other));
}

/// A `settling` row whose file became a link to another file of its root while the daemon was
/// stopped (as an earlier version could leave one under a link's path): after the start's full
/// scan it ends `gone` with the reason, and only the real path stays.
#[test]
fn a_settling_row_whose_path_became_a_link_into_its_root_goes_gone() {
    let em = Emulator::start();
    let s = settling_for_an_hour(&em);
    write_config(&s, None, "follow_symlinks = true\n");
    let mut d = s.start();
    let f = s.drop_file("clip.mp4", 100_000, 41);
    let other = s.drop_file("other.mp4", 80_000, 42);
    s.wait_for("both settling", T, |st| {
        state(st, &f) == Some("settling") && state(st, &other) == Some("settling")
    });
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(T).is_some(), "the daemon stops");
    replace_with_symlink(&other, &f);
    let _d = s.start();
    let st = gone_because(&s, &f, &other.to_string_lossy());
    assert_eq!(state(&st, &other), Some("settling"), "{st:#}");
}

/// A link in one root to a file of another root: the file is that root's, uploaded once under
/// its real path.
#[test]
fn a_link_into_another_root_leaves_the_file_to_that_root() {
    let em = Emulator::start();
    let s = Setup::new(
        &em,
        Opts {
            extra_roots: vec!["other"],
            ..Opts::default()
        },
    );
    write_config(&s, None, "follow_symlinks = true\n");
    let other = s.dir.join("other");
    std::fs::create_dir_all(other.join("sub")).unwrap();
    let clip = other.join("sub/clip.mp4");
    common::daemon::write_file(&clip, 200_000, 51);
    symlink(&clip, s.inbox.join("clip.mp4")).unwrap();
    symlink(other.join("sub"), s.inbox.join("dir")).unwrap();
    let _d = s.start();
    s.wait_for("clip.mp4 done", T, |st| state(st, &clip) == Some("done"));
    let barrier = s.drop_file("barrier.mp4", 100_000, 52);
    let st = s.wait_for("the barrier done", T, |st| {
        state(st, &barrier) == Some("done")
    });
    no_rows_under(&s, &st, &["clip.mp4", "dir"]);
    one_video_each(&em, &st, &[&clip, &barrier]);
}
