//! A token file that holds no upload token (session 6, RELIABILITY "Known gaps"): refused at
//! start and on SIGHUP with the file and what is wrong, never its content; overwritten under the
//! running daemon it keeps the token read before. The journal commands (`status`, `explain`,
//! `retry`) need no token: a token file problem is a warning there, said in their output.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;

use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, file_row, videos};

const T: Duration = Duration::from_secs(30);

use common::{ingestd_with as ingestd, output_text as text};

/// What an operator may find in a token file by mistake, a piece of it that must never be
/// printed, and what the refusal says.
fn garbage(token: &str) -> Vec<(&'static str, Vec<u8>, String, &'static str)> {
    let json = format!("{{\"token\":\"{token}\",\"ttl\":0,\"createdAt\":\"2026-12-04\"}}\n");
    vec![
        (
            "whitespace inside",
            format!("{token} {token}\n").into_bytes(),
            token.to_owned(),
            "holds several words (whitespace inside), not one upload token",
        ),
        (
            "two lines",
            format!("# the token\n{token}\n").into_bytes(),
            token.to_owned(),
            "holds 2 lines, not one upload token",
        ),
        (
            "binary",
            b"\x7fELFsecretQ\x00\xff\xfe".to_vec(),
            "ELFsecretQ".into(),
            "holds binary data (not UTF-8 text), not an upload token",
        ),
        (
            "JSON",
            json.into_bytes(),
            token.to_owned(),
            "holds JSON, not an upload token",
        ),
        (
            "the API key",
            format!("{}\n", common::API_KEY).into_bytes(),
            common::API_KEY.to_owned(),
            "does not start with `to`, so it is not an upload token (the account's API key?",
        ),
        (
            "punctuation",
            format!("{token}!;\n").into_bytes(),
            token.to_owned(),
            "holds characters other than letters and digits, not an upload token",
        ),
    ]
}

/// `check-config` and `run` refuse each kind of garbage (exit 78) naming the file and what is
/// wrong; nothing of the content is printed. A real token (of any length) is taken.
#[test]
fn a_token_file_holding_no_token_is_refused_at_start_naming_the_file() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let file = setup.token_file.display().to_string();
    for (what, content, secret, says) in garbage(&setup.token) {
        std::fs::write(&setup.token_file, &content).unwrap();
        for cmd in ["check-config", "run"] {
            let out = ingestd(&[cmd], &setup.config);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(78), "{cmd} with {what}: {all}");
            assert!(
                all.contains(&format!("`upload_token_file` names `{file}`, which {says}")),
                "{cmd} with {what}: {all}"
            );
            assert!(
                !all.contains(&secret),
                "{cmd} with {what} printed it: {all}"
            );
        }
    }
    // Nothing was uploaded, no journal made by a refused `run`.
    assert!(!setup.dir.join("journal.sqlite").exists());
    // Shorter and longer tokens than today's 24 characters are the service's business.
    for token in ["to1", "to1tcmSFHeYY5KzyhOqVKMVbAAAAAAAAAAAAAAAAA"] {
        common::daemon::write_token(&setup.token_file, token);
        let out = ingestd(&["check-config"], &setup.config);
        assert!(out.status.success(), "{token}: {}", text(&out));
    }
}

/// Garbage written over the token file of a running daemon: said once, the token read before
/// goes on uploading; SIGHUP keeps the running configuration; `status` shows the problem; a
/// real token fixes it.
#[test]
fn garbage_over_the_token_file_keeps_the_token_read_before() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let d = setup.start();
    setup.drop_file("one.mp4", 300_000, 1);
    setup.wait_done(1, T);
    let json = format!("{{\"token\":\"{}\",\"ttl\":0}}\n", setup.token);
    std::fs::write(&setup.token_file, &json).unwrap();
    let says = format!(
        "{}: the upload token file holds JSON, not an upload token",
        setup.token_file.display()
    );
    setup.wait_log(&says, T);
    d.signal(libc::SIGHUP);
    setup.wait_log("reload failed, keeping the running configuration", T);
    setup.drop_file("two.mp4", 300_000, 2);
    setup.wait_done(2, T);
    // `status` reads the journal and says what `run` would refuse.
    let out = ingestd(&["status"], &setup.config);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("config: ")
            && all.contains("holds JSON, not an upload token"),
        "{all}"
    );
    common::daemon::write_token(&setup.token_file, &setup.token);
    setup.wait_log("the upload token file is readable again", T);
    let log = setup.log();
    assert_eq!(
        log.matches(&says).count(),
        1,
        "said once per reason:\n{log}"
    );
    assert!(!log.contains(&setup.token), "the token is never logged");
    assert_eq!(videos(&em).len(), 2);
}

/// `status`, `explain` and `retry` run with an empty token file (they used to exit 78): the
/// problem is a warning on stderr and a `config:` line (`config_problem` in JSON). `run`
/// still refuses, and a real configuration error still stops `status`.
#[test]
fn status_explain_and_retry_need_no_token() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let clip = setup.drop_file("clip.mp4", 300_000, 1);
    let up = ingestd(&["upload", clip.to_str().unwrap()], &setup.config);
    assert!(up.status.success(), "{}", text(&up));
    std::fs::write(&setup.token_file, "").unwrap();
    let says = format!(
        "`upload_token_file` names `{}`, which is empty",
        setup.token_file.display()
    );

    // The human output names the problem on a `config: ` line.
    let names_it = |stdout: &str| {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("config: ") && l.contains(&says)),
            "{stdout}"
        );
    };

    let out = ingestd(&["status", "--all"], &setup.config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("1 done"), "{stdout}");
    names_it(&stdout);
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("this command reads only the journal"),
        "{stderr}"
    );

    let s = common::daemon::status(&setup.config);
    assert!(
        s["config_problem"]
            .as_str()
            .is_some_and(|p| p.contains(&says)),
        "{s:#}"
    );
    assert_eq!(file_row(&s, &clip).unwrap()["state"], "done");

    let out = ingestd(&["explain", clip.to_str().unwrap()], &setup.config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("videoId"), "{stdout}");
    names_it(&stdout);

    let out = ingestd(&["retry", "--failed"], &setup.config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no failed files"),
        "{}",
        text(&out)
    );

    let out = ingestd(&["run"], &setup.config);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains(&says), "{}", text(&out));

    // A token that works: no `config:` line, `config_problem` null.
    common::daemon::write_token(&setup.token_file, &setup.token);
    let out = ingestd(&["status"], &setup.config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("config: "), "{}", text(&out));
    assert!(common::daemon::status(&setup.config)["config_problem"].is_null());

    // Anything else wrong in the configuration still stops `status` (exit 78).
    let bad = setup.dir.join("bad.toml");
    std::fs::write(
        &bad,
        setup
            .config_text()
            .replace("[upload]\n", "[upload]\nchunksize = 1\n"),
    )
    .unwrap();
    let out = ingestd(&["status"], &bad);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
}

/// An inline `upload_token` that is no token is refused by `run` with its position, and is a
/// warning for `status` (which never uses it).
#[test]
fn an_inline_token_that_is_no_token_stops_run_not_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let config = tmp.path().join("c.toml");
    std::fs::create_dir(tmp.path().join("inbox")).unwrap();
    std::fs::write(
        &config,
        format!(
            "[api]\nendpoint = \"http://127.0.0.1:9\"\nupload_token = \"to1tcm SFHeYY5KzyhOqVKMVb\"\n\n[journal]\npath = \"{dir}/j.sqlite\"\n\n[[watch]]\npath = \"{dir}/inbox\"\n"
        ),
    )
    .unwrap();
    let says = "3:16: `upload_token` in [api] holds several words (whitespace inside), not one upload token";
    let out = ingestd(&["run"], &config);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains(says), "{}", text(&out));
    assert!(!text(&out).contains("SFHeYY5"), "{}", text(&out));
    let out = ingestd(&["status"], &config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(says),
        "{}",
        text(&out)
    );
}
