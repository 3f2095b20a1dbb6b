//! What a first-time operator runs from the docs, with the real binary and the real local
//! endpoint: each test pins a place where the program disagreed with README.md,
//! docs/OPERATIONS.md or its own help (a daemon started from a shell is shown by `status`,
//! `ingestd upload` of a failed file, a failed post-upload action shown by `status`, …).
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, count, delete_token, file_row, set_faults, videos};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

use common::{ingestd_with as ingestd, output_text as text};

/// The standard error of `out`, after checking that it exited with `code`.
fn stderr_of(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ingestd run` from a shell (no systemd watchdog): `status` names the running daemon; it said
/// "no heartbeat recorded" because only the watchdog wrote the heartbeat.
#[test]
fn status_names_a_daemon_started_from_a_shell() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let d = setup.start();
    let pid = u64::from(d.child.id());
    setup.wait_for("the daemon's heartbeat", T, |s| {
        s["daemon"]["running"] == true && s["daemon"]["pid"].as_u64() == Some(pid)
    });
    let out = ingestd(&["status"], &setup.config);
    assert!(
        text(&out).contains(&format!("daemon: running (pid {pid}")),
        "{}",
        text(&out)
    );
}

/// `ingestd upload FILE` of a file that failed before tries it again (it said "file N is
/// failed, not queued"); a failure names the error without Rust debug output.
#[test]
fn upload_retries_a_failed_file_and_says_why_it_failed() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let f = setup.dir.join("outside").join("f.mp4");
    common::daemon::write_file(&f, 100_000, 3);
    set_faults(
        &em,
        json!([{"path": "/upload", "count": 1, "action": "fail", "status": 400}]),
    );
    let first = ingestd(&["upload", f.to_str().unwrap()], &setup.config);
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    assert!(
        out.contains("failed: ") && out.contains("fault-injected") && !out.contains("(Failed)"),
        "{out}"
    );
    assert_eq!(count(&setup.status(), "failed"), 1);

    let again = ingestd(&["upload", f.to_str().unwrap()], &setup.config);
    let out = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{}", text(&again));
    assert!(out.contains("trying again"), "{out}");
    let vid = videos(&em)
        .iter()
        .find(|v| v["complete"] == true)
        .map(|v| v["videoId"].as_str().unwrap().to_owned())
        .expect("a complete video");
    assert!(out.contains(&vid), "{out}");
    let s = setup.status();
    assert_eq!(file_row(&s, &f).unwrap()["state"], "done");
}

/// `ingestd upload` with a rejected token says so and what to do (it printed "(TokenPaused)"
/// and no reason), and exits 1.
#[test]
fn upload_with_a_rejected_token_says_what_to_do() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    delete_token(&em, &setup.token);
    let f = setup.dir.join("outside").join("g.mp4");
    common::daemon::write_file(&f, 1000, 4);
    let out = ingestd(&["upload", f.to_str().unwrap()], &setup.config);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout.contains("rejected the upload token")
            && stdout.contains("authentication-invalid-upload-token")
            && stdout.contains("write a new token"),
        "{stdout}"
    );
    assert!(!stdout.contains("TokenPaused"), "{stdout}");

    // `status` and `explain` say what to do for this config's token source (a token file: it is
    // re-read; "send SIGHUP" was said for every source, and does nothing for a credential).
    let advice = format!(
        "write a new token into {} (ingestd re-reads it within 2 s)",
        setup.token_file.display()
    );
    let status = ingestd(&["status"], &setup.config);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("token: REJECTED") && status.contains(&advice),
        "{status}"
    );
    let explain = ingestd(&["explain", f.to_str().unwrap()], &setup.config);
    let explain = String::from_utf8_lossy(&explain.stdout).into_owned();
    assert!(explain.contains(&advice), "{explain}");
}

/// `ingestd run` with no `[[watch]]` section exits 78 saying what to add (it ran and sat idle).
#[test]
fn run_without_a_watch_root_exits_78() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let text_no_roots = setup.config_text();
    let cut = text_no_roots.find("[[watch]]").unwrap();
    std::fs::write(&setup.config, &text_no_roots[..cut]).unwrap();
    let out = ingestd(&["run"], &setup.config);
    let err = stderr_of(&out, 78);
    assert!(
        err.contains("no [[watch]] section") && err.contains("path = \"/srv/recordings\""),
        "{err}"
    );
}

/// A done file whose move failed is listed by plain `status` (OPERATIONS.md: "reported by
/// `ingestd status` and `ingestd explain FILE`"); it was shown only with `--all`.
#[test]
fn status_lists_a_file_whose_move_failed() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            after_upload: "move",
            ..Opts::default()
        },
    );
    // `moved/cam1` is a file: the move of `inbox/cam1/a.mp4` cannot create its directory.
    std::fs::write(setup.moved.join("cam1"), b"in the way").unwrap();
    let _d = setup.start();
    let f = setup.drop_file("cam1/a.mp4", 1000, 9);
    setup.wait_for("the move to fail", T, |s| {
        file_row(s, &f).is_some_and(|r| {
            r["after_upload"]
                .as_str()
                .is_some_and(|a| a.starts_with("move failed"))
        })
    });
    let out = ingestd(&["status", "--json"], &setup.config);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        file_row(&s, &f).map(|r| r["state"].clone()),
        Some(json!("done")),
        "{s:#}"
    );
    let table = ingestd(&["status"], &setup.config);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("move failed"), "{table}");
    assert!(f.exists(), "left in place");
}

/// `ingestd demo` (README's first command): the three samples end `done` with a videoId, each
/// seen `uploading` with bytes first (the table never showed it); no log line on the terminal
/// (they go to demo.log); the `status` command it prints works as printed (it said `cargo run
/// --release -- status` also for an installed binary); Ctrl-C (SIGINT) stops it with exit 0.
/// Then `demo --once` in the same directory keeps the samples (same videoIds, nothing uploaded
/// again) and ends with the next steps; `demo --help` does not offer `--config`. A file dropped
/// into the inbox while it watches shows in the table.
#[test]
fn demo_uploads_the_samples_prints_a_working_status_command_and_stops_on_sigint() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = Command::new(common::bin())
        .args(["demo", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while lines.last().is_none_or(|l: &String| l != "Ctrl-C to stop.") {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("demo output stopped ({e}):\n{}", lines.join("\n"));
            }
        }
    }
    let all = lines.join("\n");
    let done: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" done ") && l.contains("videoId vi"))
        .collect();
    assert_eq!(done.len(), 3, "{all}");
    for name in ["demo-small.mp4", "demo-clip.mov", "demo-large.mp4"] {
        let row = |state: &str| {
            lines
                .iter()
                .position(|l| l.split_whitespace().take(2).eq([name, state]))
        };
        let uploading =
            row("uploading").unwrap_or_else(|| panic!("{name} never uploading:\n{all}"));
        let finished = row("done").unwrap_or_else(|| panic!("{name} never done:\n{all}"));
        assert!(uploading < finished, "{all}");
        assert!(
            lines[uploading].contains(" / ") && lines[uploading].contains('%'),
            "bytes shown: {all}"
        );
    }
    assert!(!all.contains(" INFO "), "log lines on the terminal:\n{all}");
    assert!(dir.join("demo.log").exists());
    let hint = lines
        .iter()
        .find_map(|l| l.strip_prefix("In another terminal: "))
        .unwrap_or_else(|| panic!("no status hint:\n{all}"));
    let words: Vec<&str> = hint.split(' ').collect();
    assert_eq!(words[0], common::bin().to_str().unwrap(), "{hint}");
    let out = Command::new(words[0]).args(&words[1..]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 done"),
        "{}",
        text(&out)
    );

    // A file the user drops in shows in the table until it is done (`.avi`: no container
    // check, finished once stable).
    std::fs::write(dir.join("inbox/mine.avi"), vec![7u8; 300_000]).unwrap();
    let mut mine = Vec::new();
    while !mine
        .last()
        .is_some_and(|l: &String| l.split_whitespace().take(2).eq(["mine.avi", "done"]))
    {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => mine.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "the dropped file is not shown done ({e}):\n{}",
                    mine.join("\n")
                );
            }
        }
    }

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !stderr.contains(" INFO "),
        "log lines on the terminal:\n{stderr}"
    );

    // Again in the same directory: the samples are kept, not uploaded as new videos.
    let again = Command::new(common::bin())
        .args(["demo", "--once", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(out.matches("\nkept ").count(), 3, "{out}");
    assert!(!out.contains(" uploading "), "{out}");
    for line in &done {
        let video = line.split_whitespace().last().unwrap();
        assert!(out.contains(video), "{video} not kept:\n{out}");
    }
    assert!(out.contains("The samples are uploaded. Next:"), "{out}");
    assert!(out.contains(" status --all --config "), "{out}");

    let help = Command::new(common::bin())
        .args(["demo", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(help.contains("--once"), "{help}");
    assert!(!help.contains("--config <"), "{help}");
}

/// `ingestd demo --once` on a terminal (a pty from `script`): the table is redrawn in place
/// (cursor up, erase line) instead of printing a line per change, each sample is shown
/// `uploading` with its bytes before `done`, no log line reaches the terminal, and `--once` ends
/// with its next steps, not the "drop files here" ones.
#[test]
fn demo_on_a_terminal_redraws_its_table_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let cmd = format!(
        "'{}' demo --once --dir '{}'",
        common::bin().display(),
        dir.display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .output()
        .expect("script(1) from util-linux (Debian: bsdutils)");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(screen.contains("\x1b[2K"), "no line erased:\n{screen:?}");
    assert!(
        screen.contains("\x1b[1A") || screen.contains("\x1b[2A") || screen.contains("\x1b[3A"),
        "no cursor up:\n{screen:?}"
    );
    for name in ["demo-small.mp4", "demo-clip.mov", "demo-large.mp4"] {
        let shown = |state: &str| {
            screen.match_indices(name).find_map(|(at, _)| {
                let rest = &screen[at + name.len()..];
                rest.trim_start().starts_with(state).then_some(at)
            })
        };
        let uploading = shown("uploading").unwrap_or_else(|| panic!("{name} never uploading"));
        let done = shown("done").unwrap_or_else(|| panic!("{name} never done"));
        assert!(uploading < done, "{name}");
    }
    assert!(screen.contains('%'), "no progress:\n{screen:?}");
    assert!(!screen.contains(" INFO "), "log lines on the terminal");
    assert!(screen.contains("The samples are uploaded. Next:"));
    assert!(!screen.contains("Drop video files"));
    assert!(!screen.contains("Ctrl-C to stop"));
}

/// `explain` of a file under a root that is not mounted says so (README: a missing root "is
/// reported"); it said only "does not exist".
#[test]
fn explain_names_a_missing_watch_root() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    std::fs::remove_dir(&setup.inbox).unwrap();
    let out = ingestd(
        &["explain", setup.inbox.join("a.mp4").to_str().unwrap()],
        &setup.config,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains(&format!(
            "its watch root {} does not exist (not created or not mounted?)",
            setup.inbox.display()
        )),
        "{stdout}"
    );
}

/// SIGHUP with a new `[[watch]]` root: the log names the roots now watched (as at start; a
/// reload said only "configuration reloaded"), and a file in the new root is uploaded.
#[test]
fn sighup_logs_the_roots_now_watched() {
    let em = Emulator::start();
    let mut setup = Setup::new(&em, Opts::default());
    let d = setup.start();
    setup.wait_log("ingestd is running", T);
    setup.opts.extra_roots = vec!["second"];
    setup.write_config();
    d.signal(libc::SIGHUP);
    let second = setup.dir.join("second");
    setup.wait_log(&format!("watching root={}", second.display()), T);
    let f = second.join("late.mp4");
    common::daemon::write_file_atomic(&f, 1000, 5);
    setup.wait_for("the file in the new root", T, |s| {
        file_row(s, &f).is_some_and(|r| r["state"] == "done")
    });
}

/// A token file that holds something else (the API key, a note) is refused by `check-config`
/// (exit 78, session 6: it was a warning) saying what belongs there; a real token passes. Its
/// content is never printed (`tests/credential_files.rs` has every kind of garbage).
#[test]
fn check_config_refuses_a_token_file_that_holds_no_token() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let out = ingestd(&["check-config"], &setup.config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("not an upload token"),
        "{}",
        text(&out)
    );
    common::daemon::write_token(&setup.token_file, common::API_KEY);
    let out = ingestd(&["check-config"], &setup.config);
    let stderr = stderr_of(&out, 78);
    assert!(
        stderr.contains(&format!(
            "`upload_token_file` names `{}`, which does not start with `to`, so it is not an upload token",
            setup.token_file.display()
        )) && stderr.contains("ingestd token create"),
        "{stderr}"
    );
    assert!(!text(&out).contains(common::API_KEY));
}

/// A second `ingestd run` on the same journal (say, a shell next to the service) warns once,
/// naming the first one's pid.
#[test]
fn a_second_daemon_on_the_same_journal_warns() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let first = setup.start();
    let pid = u64::from(first.child.id());
    setup.wait_for("the first daemon's heartbeat", T, |s| {
        s["daemon"]["pid"].as_u64() == Some(pid)
    });
    let log = setup.dir.join("second.log");
    let _second = common::daemon::Daemon::start(&setup.config, &log);
    let want = format!("another `ingestd run` (pid {pid}) uses this journal");
    common::daemon::wait_text(&log, &want, T);
}

/// `ingestd upload` of files in a watch root while the daemon runs: the daemon may claim some
/// first; `upload` reports their result (it said "file N is uploading, not queued", exit 1).
#[test]
fn upload_next_to_the_daemon_reports_what_the_daemon_uploaded() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            settle: "30s",
            ..Opts::default()
        },
    );
    let _d = setup.start();
    setup.wait_log("ingestd is running", T);
    let files: Vec<_> = (0..8)
        .map(|i| setup.drop_file(&format!("race{i}.mp4"), 300_000, i))
        .collect();
    // About a second per file: the daemon's workers find the queued rows meanwhile.
    set_faults(
        &em,
        json!([{"path": "/upload", "count": 100, "action": "throttle", "bytes_per_sec": 300_000}]),
    );
    let mut cmd = Command::new(common::bin());
    cmd.args(["upload", "--config"])
        .arg(&setup.config)
        .args(&files);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    for f in &files {
        assert!(
            stdout.contains(&format!("{}: uploaded, videoId vi", f.display())),
            "{stdout}"
        );
    }
    assert_eq!(videos(&em).len(), files.len(), "one video per file");
}

/// `retry` with an id the journal does not have says where the ids are and that nothing changed.
#[test]
fn retry_of_an_unknown_id_says_where_the_ids_are() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let f = setup.dir.join("outside").join("r.mp4");
    common::daemon::write_file(&f, 1000, 8);
    assert!(
        ingestd(&["upload", f.to_str().unwrap()], &setup.config)
            .status
            .success()
    );
    let out = ingestd(&["retry", "999"], &setup.config);
    let err = stderr_of(&out, 1);
    assert!(
        err.contains("no file #999") && err.contains("ingestd status --all"),
        "{err}"
    );
}

/// `ingestd run` without an upload token: one line, exit 78 (a "will refuse to start" warning
/// was logged before the error saying the same).
#[test]
fn run_without_a_token_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = \"{}/j.sqlite\"\n\n[[watch]]\npath = \"{}\"\n",
            tmp.path().display(),
            root.display()
        ),
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let err = stderr_of(&out, 78);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no upload token configured"), "{err}");
}

/// An empty `LoadCredential=` token with no token key: `check-config` (the unit's ExecStartPre)
/// fails with what to do, as `run` would (it said "ok" and `run` then exited 78).
#[test]
fn check_config_refuses_an_empty_credential() {
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("upload-token"), "\n").unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[journal]\npath = \"{}/j.sqlite\"\n", tmp.path().display()),
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    let err = stderr_of(&out, 78);
    assert!(
        err.contains("credential `upload-token`")
            && err.contains("is empty")
            && err.contains("systemctl restart ingestd"),
        "{err}"
    );
}

/// `after_upload = "delete"` is about the watch roots: `ingestd upload` of a file from elsewhere
/// keeps it (it was deleted, and the result line did not say so); a file in a root is deleted
/// and the line says `deleted`.
#[test]
fn upload_keeps_a_file_from_outside_the_roots_and_says_what_it_did() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            after_upload: "delete",
            ..Opts::default()
        },
    );
    let outside = setup.dir.join("outside").join("mine.mp4");
    common::daemon::write_file(&outside, 1000, 11);
    let inside = setup.inbox.join("cam.mp4");
    common::daemon::write_file(&inside, 1000, 12);
    let out = Command::new(common::bin())
        .args(["upload", "--config"])
        .arg(&setup.config)
        .arg(&outside)
        .arg(&inside)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(outside.exists(), "a file from outside the roots is kept");
    assert!(!inside.exists(), "after_upload applies in a root");
    assert!(
        stdout.contains(&format!("{}: uploaded, videoId vi", outside.display())),
        "{stdout}"
    );
    let inside_line = stdout
        .lines()
        .find(|l| l.starts_with(&inside.display().to_string()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(inside_line.ends_with("; deleted"), "{inside_line}");
}

/// `ingestd upload` of a file from outside the roots, stopped between `done` and its
/// post-upload action (W6): the daemon's restart recovery keeps it too (it would have applied
/// `after_upload = "delete"` to it).
#[test]
fn recovery_of_an_interrupted_upload_keeps_a_file_from_outside_the_roots() {
    let em = Emulator::start();
    let setup = Setup::new(
        &em,
        Opts {
            after_upload: "delete",
            ..Opts::default()
        },
    );
    let outside = setup.dir.join("outside").join("mine.mp4");
    common::daemon::write_file(&outside, 1000, 13);
    let out = Command::new(common::bin())
        .args(["upload", "--config"])
        .arg(&setup.config)
        .arg(&outside)
        .env("FAILPOINTS", "before-after-upload=panic")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the failpoint stops it: {}",
        text(&out)
    );
    let s = setup.status();
    assert_eq!(file_row(&s, &outside).unwrap()["state"], "done", "{s:#}");
    let _d = setup.start();
    let s = setup.wait_for("the interrupted action to be recorded", T, |s| {
        file_row(s, &outside).is_some_and(|r| r["after_upload"].is_string())
    });
    assert_eq!(file_row(&s, &outside).unwrap()["after_upload"], "kept");
    assert!(outside.exists());
}

/// `ingestd emulator` on a taken address: exit 1 with one line naming the cause once (it printed
/// the cause twice).
#[test]
fn emulator_on_a_taken_port_says_so_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["emulator", "--listen", &addr, "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = stderr_of(&out, 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "ingestd: cannot start the emulator: cannot listen on {addr}: Address already in use (os error 98)"
        )
    );
}

/// `ingestd upload` with a rejected token (another token file) next to a daemon whose token
/// works: `status` comes back to the daemon's `ok` (it showed `rejected` until the daemon's own
/// token state changed).
#[test]
fn status_shows_the_daemons_token_verdict_after_another_process_wrote_one() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let _d = setup.start();
    let a = setup.drop_file("a.mp4", 1000, 1);
    // A heartbeat after the upload: the daemon's status tick has recorded its own `ok`.
    let at = |v: &serde_json::Value| {
        v.as_str().map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
        })
    };
    setup.wait_for("a tick of the daemon after the upload", T, |s| {
        let done = file_row(s, &a).and_then(|r| at(&r["done_at"]));
        let beat = at(&s["daemon"]["heartbeat_at"]);
        s["token"] == "ok" && done.is_some() && beat > done
    });
    let bad_token = setup.dir.join("bad-token");
    common::daemon::write_token(&bad_token, "to0000000000000000000000");
    let other = setup.dir.join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&setup.config).unwrap().replace(
            setup.token_file.to_str().unwrap(),
            bad_token.to_str().unwrap(),
        ),
    )
    .unwrap();
    let f = setup.dir.join("outside").join("b.mp4");
    common::daemon::write_file(&f, 1000, 2);
    let out = ingestd(&["upload", f.to_str().unwrap()], &other);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    setup.wait_for("the daemon's verdict again", T, |s| s["token"] == "ok");
}
