//! Bad input (issue 5 §6), the catalogue: every case runs the real binary on real files (and the
//! real endpoint where a request is involved) and asserts the exact message the user sees, which
//! always says what to do. Config errors exit 78 (`EX_CONFIG`); see also `tests/config_cli.rs`.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod bad_input_support;
mod common;
#[path = "common/tls_proxy.rs"]
mod tls;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bad_input_support::{Runner, Tmpfs};
use common::Emulator;
use common::daemon::{
    Daemon, Opts, Setup, assert_uploaded_once, file_row, integrity, write_file_atomic,
};
use serde_json::Value;

fn config(dir: &Path, endpoint: &str, journal: &Path) -> std::path::PathBuf {
    let tok = dir.join("tok");
    std::fs::write(&tok, "to1234567890abcdef").unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let c = dir.join("c.toml");
    std::fs::write(
        &c,
        format!(
            "[api]\nendpoint = \"{endpoint}\"\nupload_token_file = \"{}\"\n[journal]\npath = \"{}\"\n[[watch]]\npath = \"{}\"\n",
            tok.display(),
            journal.display(),
            dir.join("in").display()
        ),
    )
    .unwrap();
    c
}

fn ingestd(args: &[&str], config: &Path) -> Output {
    Command::new(common::bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("INGESTD_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A configuration case: its name, the config (`{dir}` is the test dir, holding `root/`,
/// `token` (0600), `empty-token` (0600, empty), `open-token` (0644) and `not-a-cert.pem`), the
/// exit code, and the exact stderr (`{cfg}` is the config path).
struct ConfigCase {
    name: &'static str,
    config: &'static str,
    exit: i32,
    stderr: &'static str,
}

const fn case(name: &'static str, config: &'static str, stderr: &'static str) -> ConfigCase {
    ConfigCase {
        name,
        config,
        exit: 78,
        stderr,
    }
}

const CONFIG_CASES: &[ConfigCase] = &[
    case(
        "unknown key",
        "[upload]\nchunksize = \"64 MiB\"\n",
        "{cfg}:2:1: unknown key `chunksize` in [upload]; did you mean `chunk_size`? Valid keys: workers, chunk_size, max_rate, after_upload, move_to, retry_max, shutdown_timeout, title_template, hash, lanes_per_file, max_connections",
    ),
    case(
        "unknown section",
        "[uplod]\nworkers = 2\n",
        "{cfg}:1:2: unknown section `uplod`; did you mean [upload]? Valid sections: [api], [journal], [upload], [[watch]], [metrics]",
    ),
    case(
        "wrong type",
        "[upload]\nworkers = \"two\"\n",
        "{cfg}:2:11: `workers` in [upload] must be an integer (found string \"two\"); write for example `workers = 2`",
    ),
    case(
        "workers = 0",
        "[upload]\nworkers = 0\n",
        "{cfg}:2:11: `workers` in [upload] is 0; write a number from 1 to 32, such as `workers = 2`",
    ),
    case(
        "chunk size below the range",
        "[upload]\nchunk_size = \"1 MiB\"\n",
        "{cfg}:2:14: `chunk_size` in [upload] is 1 MiB; write a size from 5 MiB to 128 MiB, such as \"64 MiB\" (api.video needs every chunk but the last to be at least 5 MiB and accepts at most 200 MiB per request; 128 MiB is the official clients' maximum)",
    ),
    case(
        "chunk size above the range",
        "[upload]\nchunk_size = \"200 MiB\"\n",
        "{cfg}:2:14: `chunk_size` in [upload] is 200 MiB; write a size from 5 MiB to 128 MiB, such as \"64 MiB\" (api.video needs every chunk but the last to be at least 5 MiB and accepts at most 200 MiB per request; 128 MiB is the official clients' maximum)",
    ),
    case(
        "relative journal path",
        "[journal]\npath = \"journal.sqlite\"\n",
        "{cfg}:2:8: `path` in [journal] is the relative path \"journal.sqlite\"; write an absolute path such as \"/var/lib/ingestd/journal.sqlite\"",
    ),
    case(
        "relative watch root (~ not expanded)",
        "[[watch]]\npath = \"~/videos\"\n",
        "{cfg}:2:8: `path` in [[watch]] is the relative path \"~/videos\" (`~` is not expanded); write an absolute path such as \"/srv/recordings\"",
    ),
    case(
        "watch roots overlap",
        "[[watch]]\npath = \"{dir}/root\"\n[[watch]]\npath = \"{dir}/root/sub\"\n",
        "{cfg}:4:8: watch root \"{dir}/root/sub\" is inside the watch root \"{dir}/root\" (line 2); roots must not overlap: remove one, or use recursive = false and exclude patterns",
    ),
    case(
        "journal inside a watch root",
        "[journal]\npath = \"{dir}/root/j.sqlite\"\n[[watch]]\npath = \"{dir}/root\"\n",
        "{cfg}:2:8: the journal \"{dir}/root/j.sqlite\" is inside the watch root \"{dir}/root\" (line 4); put it outside every root, such as path = \"/var/lib/ingestd/journal.sqlite\" in [journal]",
    ),
    case(
        "move_to inside a watch root",
        "[upload]\nafter_upload = \"move\"\nmove_to = \"{dir}/root/done\"\n[[watch]]\npath = \"{dir}/root\"\n",
        "{cfg}:3:11: `move_to` \"{dir}/root/done\" is inside the watch root \"{dir}/root\" (line 5), so moved files would be found again; choose a directory outside every root, such as \"/srv/uploaded\"",
    ),
    case(
        "after_upload = move without move_to",
        "[upload]\nafter_upload = \"move\"\n",
        "{cfg}:2:16: `after_upload = \"move\"` needs `move_to`, the directory uploaded files are moved into; add for example `move_to = \"/srv/uploaded\"` to [upload]",
    ),
    case(
        "missing token file",
        "[api]\nupload_token_file = \"{dir}/no-such-token\"\n",
        "{cfg}:2:21: `upload_token_file` names `{dir}/no-such-token`, which does not exist; create it (one line, mode 0600) or remove `upload_token_file`",
    ),
    case(
        "empty token file",
        "[api]\nupload_token_file = \"{dir}/empty-token\"\n",
        "{cfg}:2:21: `upload_token_file` names `{dir}/empty-token`, which is empty; write the upload token (it starts with `to`) into it",
    ),
    ConfigCase {
        name: "token file world-readable (a warning: the daemon still starts)",
        config: "[api]\nupload_token_file = \"{dir}/open-token\"\n",
        exit: 0,
        stderr: "warning: {dir}/open-token (upload_token_file) can be accessed by other users (mode 0644); run `chmod 600 {dir}/open-token`",
    },
    case(
        "token inline and in a file",
        "[api]\nupload_token = \"to1234567890abcdef\"\nupload_token_file = \"{dir}/token\"\n",
        "{cfg}:3:21: both `upload_token` and `upload_token_file` are set in [api]; keep only one (the file keeps the token out of the configuration)",
    ),
    case(
        "endpoint URL with the wrong scheme",
        "[api]\nendpoint = \"ftp://ws.api.video\"\n",
        "{cfg}:2:12: `endpoint` in [api] has the scheme `ftp:`; it must be https:// (or http:// to this machine); write for example endpoint = \"https://ws.api.video\" (sandbox: \"https://sandbox.api.video\")",
    ),
    case(
        "endpoint URL with a query",
        "[api]\nendpoint = \"https://ws.api.video/?x=1\"\n",
        "{cfg}:2:12: `endpoint` in [api] must be a base URL without user, query or fragment; write for example endpoint = \"https://ws.api.video\" (sandbox: \"https://sandbox.api.video\")",
    ),
    case(
        "plain http:// to a non-loopback host",
        "[api]\nendpoint = \"http://example.com\"\n",
        "{cfg}:2:12: `endpoint` in [api] uses plain http:// to `example.com`, which is not this machine, so the upload token would travel unencrypted; use https://, or set `allow_insecure_http = true` in [api] if that is really meant",
    ),
    case(
        "ca_file missing",
        "[api]\nca_file = \"{dir}/no-such-ca.pem\"\n",
        "{cfg}:2:11: `ca_file` names `{dir}/no-such-ca.pem`, which cannot be read: No such file or directory (os error 2); point it at a PEM certificate file",
    ),
    case(
        "ca_file not a PEM certificate",
        "[api]\nca_file = \"{dir}/not-a-cert.pem\"\n",
        "{cfg}:2:11: `ca_file` names `{dir}/not-a-cert.pem`, which holds no PEM certificate (no `-----BEGIN CERTIFICATE-----` line); point it at the CA certificate in PEM form (convert a DER one with `openssl x509 -inform der -in ca.der -out ca.pem`)",
    ),
    case(
        "bad upload.hash",
        "[upload]\nhash = \"md5\"\n",
        "{cfg}:2:8: `hash` in [upload] is \"md5\", which is not one of \"blake3\", \"sha256\"; write one of them, for example `hash = \"blake3\"`",
    ),
    case(
        "bad metrics listen address",
        "[metrics]\nlisten = \"localhost:9184\"\n",
        "{cfg}:2:10: `listen` in [metrics] is \"localhost:9184\", which is not an IP address and port; write for example listen = \"127.0.0.1:9184\"",
    ),
    case(
        "watch root is a file",
        "[[watch]]\npath = \"{dir}/token\"\n",
        "{cfg}:2:8: `path` in [[watch]] names `{dir}/token`, which is not a directory; point it at the folder to watch",
    ),
    case(
        "settle below the minimum",
        "[[watch]]\npath = \"/srv/a\"\nsettle = \"0s\"\n",
        "{cfg}:3:10: `settle` in [[watch]] is 0s, below the minimum of 1s; write for example `settle = \"10s\"`",
    ),
    case(
        "key set twice",
        "[upload]\nworkers = 2\nworkers = 3\n",
        "{cfg}:3:1: the key `workers` is set twice; keep only one",
    ),
];

#[test]
fn config_errors_exit_78_with_the_exact_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("root")).unwrap();
    for (name, content, mode) in [
        ("token", "to1234567890abcdef", 0o600),
        ("empty-token", "", 0o600),
        ("open-token", "to1234567890abcdef", 0o644),
        ("not-a-cert.pem", "this is not a certificate\n", 0o644),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let cfg = dir.join("c.toml");
    let mut failures = Vec::new();
    for c in CONFIG_CASES {
        std::fs::write(&cfg, c.config.replace("{dir}", &dir.display().to_string())).unwrap();
        let out = ingestd(&["check-config"], &cfg);
        let expected = c
            .stderr
            .replace("{dir}", &dir.display().to_string())
            .replace("{cfg}", &cfg.display().to_string());
        let got = stderr(&out);
        if out.status.code() != Some(c.exit) || got.trim_end() != expected {
            failures.push(format!(
                "case `{}`: exit {:?} (want {})\n  want: {expected}\n  got:  {}",
                c.name,
                out.status.code(),
                c.exit,
                got.trim_end()
            ));
        }
        assert!(
            !got.contains("to1234567890abcdef"),
            "{}: token leaked",
            c.name
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} config cases failed:\n{}",
        failures.len(),
        CONFIG_CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn missing_config_file_exits_78() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("absent.toml");
    let o = ingestd(&["check-config"], &c);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "{}: cannot read the configuration file: No such file or directory (os error 2); pass the right one with --config or INGESTD_CONFIG (config.example.toml documents every key)",
            c.display()
        )
    );
}

#[test]
fn status_with_no_journal_yet() {
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("none.sqlite");
    let c = config(t.path(), "http://127.0.0.1:9", &j);
    let o = ingestd(&["status"], &c);
    assert!(o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "no journal at {} yet: ingestd has not run with this config",
            j.display()
        )
    );
    assert!(!j.exists(), "status creates no journal");
}

#[test]
fn journal_corrupt() {
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("bad.sqlite");
    std::fs::write(&j, "garbage garbage garbage garbage").unwrap();
    let c = config(t.path(), "http://127.0.0.1:9", &j);
    let o = ingestd(&["status"], &c);
    assert_eq!(o.status.code(), Some(1));
    let p = j.display();
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "ingestd: {p}: not an ingestd journal, or corrupt (file is not a database); nothing was changed. Move it aside (`mv {p} {p}.broken`) to start a new journal — files already uploaded would then be uploaded again — or restore it from a backup"
        )
    );
    assert_eq!(
        std::fs::read_to_string(&j).unwrap(),
        "garbage garbage garbage garbage"
    );
}

#[test]
fn journal_from_a_future_schema() {
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("fut.sqlite");
    rusqlite::Connection::open(&j)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let c = config(t.path(), "http://127.0.0.1:9", &j);
    let o = ingestd(&["status"], &c);
    assert_eq!(o.status.code(), Some(1));
    // The version this build understands grows with every migration: only its place is fixed.
    let err = stderr(&o);
    let err = err.trim();
    let head = format!(
        "ingestd: {}: journal schema version 999 is newer than this ingestd understands (up to ",
        j.display()
    );
    let tail = "); install the newer ingestd that wrote it (the journal was left untouched)";
    assert!(err.starts_with(&head) && err.ends_with(tail), "{err}");
    let n = &err[head.len()..err.len() - tail.len()];
    assert!(n.parse::<u32>().is_ok_and(|n| n >= 3), "{err}");
}

// ------------------------------------------------------------------------------------- runtime

const WAIT: Duration = Duration::from_secs(60);

/// `ingestd run` through `r` (as `nobody` when root), logging to `daemon.log`.
fn start_as(r: &Runner, s: &Setup) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.dir.join("daemon.log"))
        .unwrap();
    let child = r
        .command()
        .args(["run", "--config"])
        .arg(&s.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon { child }
}

/// `status --all --json` through `r`, polled until `pred` holds.
fn wait_as(r: &Runner, s: &Setup, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let out = r
            .command()
            .args(["status", "--all", "--json", "--config"])
            .arg(&s.config)
            .output()
            .unwrap();
        assert!(out.status.success(), "status: {}", stderr(&out));
        let st: Value = serde_json::from_slice(&out.stdout).unwrap();
        if pred(&st) {
            return st;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}\nstatus: {st:#}\nlog:\n{}",
            s.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn row<'a>(st: &'a Value, path: &Path) -> &'a Value {
    file_row(st, path).unwrap_or_else(|| panic!("no row for {}: {st:#}", path.display()))
}

fn is_done(st: &Value, path: &Path) -> bool {
    file_row(st, path).is_some_and(|r| r["state"] == "done")
}

fn no_orphans(st: &Value) {
    for f in st["files"].as_array().unwrap() {
        assert_eq!(
            f["possible_orphans"],
            serde_json::json!([]),
            "no possible orphan: {f:#}"
        );
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn run_with_no_upload_token_exits_78() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("c.toml");
    std::fs::write(
        &c,
        format!(
            "[journal]\npath = \"{}\"\n",
            t.path().join("j.sqlite").display()
        ),
    )
    .unwrap();
    let o = ingestd(&["run"], &c);
    assert_eq!(o.status.code(), Some(78));
    let err = stderr(&o);
    assert_eq!(
        err.lines().last().unwrap(),
        format!(
            "ingestd: {}: no upload token configured: set `upload_token_file` (or `upload_token`) in [api], or give systemd's LoadCredential=upload-token:…",
            c.display()
        ),
        "{err}"
    );
    assert!(!t.path().join("j.sqlite").exists(), "nothing created");
}

/// The endpoint's host does not resolve: the error says so and what to check, the file stays
/// queued (retried, never failed), no possible orphan is recorded (the first request never
/// left), and once the endpoint is fixed the file uploads exactly once.
#[test]
fn unresolvable_host_retries_without_a_false_orphan() {
    let em = Emulator::start();
    let mut s = Setup::new(
        &em,
        Opts {
            retry_max: "1s",
            ..Opts::default()
        },
    );
    s.endpoint = "https://no-such-host.invalid".into();
    s.write_config();
    let f = s.drop_file("a.mp4", 1000, 7);
    let mut d = s.start();
    let st = s.wait_for("three failed attempts", WAIT, |st| {
        file_row(st, &f).is_some_and(|r| r["attempts"].as_u64() >= Some(3))
    });
    let r = row(&st, &f);
    assert!(
        matches!(r["state"].as_str(), Some("queued" | "uploading")),
        "{r:#}"
    );
    let err = r["last_error"].as_str().unwrap();
    let (head, tail) = (
        "single request: POST /upload: error sending request: client error (Connect): dns error: ",
        "; the host name of `endpoint` in [api] does not resolve: check the name and this machine's DNS (the upload is retried)",
    );
    assert!(err.starts_with(head) && err.ends_with(tail), "{err}");
    no_orphans(&st);
    assert!(s.log().contains(tail), "{}", s.log_tail(20));
    assert!(!s.log().contains("orphan"), "{}", s.log_tail(20));

    d.kill9();
    s.endpoint = em.url.clone();
    s.write_config();
    let _d = s.start();
    let st = s.wait_done(1, WAIT);
    no_orphans(&st);
    let vid = row(&st, &f)["video_id"].as_str().unwrap().to_owned();
    assert_uploaded_once(&em, &f, &vid);
}

/// A file ingestd may not read (mode 000) stays queued with the reason and what to do, and
/// uploads once readable; an unreadable directory is reported in the log; the other files
/// upload meanwhile. ingestd runs as `nobody` when the test is root.
#[test]
fn unreadable_file_and_directory_are_reported_never_lost() {
    let em = Emulator::start();
    let r = Runner::new();
    let s = Setup::new(
        &em,
        Opts {
            retry_max: "1s",
            ..Opts::default()
        },
    );
    let ok = s.drop_file("ok.mp4", 1000, 1);
    let locked = s.drop_file("locked.mp4", 1000, 2);
    let sub = s.inbox.join("sub");
    let inner = sub.join("inner.mp4");
    write_file_atomic(&inner, 1000, 3);
    r.give(s.tmp.path());
    chmod(s.tmp.path(), 0o755);
    chmod(&locked, 0o000);
    chmod(&sub, 0o000);

    let mut d = start_as(&r, &s);
    let st = wait_as(&r, &s, "ok done, locked retried", |st| {
        is_done(st, &ok) && file_row(st, &locked).is_some_and(|r| r["attempts"].as_u64() >= Some(2))
    });
    let l = row(&st, &locked);
    assert!(
        matches!(l["state"].as_str(), Some("queued" | "uploading")),
        "{l:#}"
    );
    assert_eq!(
        l["last_error"].as_str().unwrap(),
        format!(
            "cannot read {}: Permission denied (os error 13); make it readable by the user ingestd runs as (retried until then)",
            locked.display()
        )
    );
    no_orphans(&st);
    assert!(
        file_row(&st, &inner).is_none(),
        "an unreadable directory hides its files"
    );
    let skipped = format!(
        "skipped: cannot read directory: Permission denied (os error 13); its files are not uploaded until it is readable by the user ingestd runs as (the next rescan finds them) path={}",
        sub.display()
    );
    assert!(s.log().contains(&skipped), "{}", s.log_tail(30));
    assert!(!s.log().contains("orphan"), "{}", s.log_tail(30));

    chmod(&locked, 0o644);
    chmod(&sub, 0o755);
    wait_as(&r, &s, "locked done once readable", |st| {
        is_done(st, &locked)
    });
    d.kill9();
    let _d = start_as(&r, &s);
    let st = wait_as(&r, &s, "all three done", |st| {
        [&ok, &locked, &inner].iter().all(|p| is_done(st, p))
    });
    no_orphans(&st);
    for p in [&ok, &locked, &inner] {
        assert_uploaded_once(&em, p, row(&st, p)["video_id"].as_str().unwrap());
    }
}

/// A journal ingestd may not write: `run` refuses to start, naming the file and what to do,
/// and leaves it intact; writable again, it runs on.
#[test]
fn read_only_journal_is_refused_then_works_again() {
    let em = Emulator::start();
    let r = Runner::new();
    let s = Setup::new(&em, Opts::default());
    let a = s.drop_file("a.mp4", 1000, 1);
    r.give(s.tmp.path());
    chmod(s.tmp.path(), 0o755);
    let mut d = start_as(&r, &s);
    wait_as(&r, &s, "a done", |st| is_done(st, &a));
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).is_some_and(|st| st.success()));

    let journal = s.dir.join("journal.sqlite");
    chmod(&journal, 0o444);
    let out = r
        .command()
        .args(["run", "--config"])
        .arg(&s.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().last().unwrap(),
        format!(
            "ingestd: {}: cannot write the journal: the file or its filesystem is read-only (the file is not writable); make the file, its `-wal` and `-shm` files if present, and its directory writable by the user running ingestd",
            journal.display()
        )
    );
    // Checked on a copy: opening it here would create `-wal`/`-shm` files as read-only as it.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&journal, copy.path().join("j.sqlite")).unwrap();
    assert_eq!(integrity(&copy.path().join("j.sqlite")), "ok");

    chmod(&journal, 0o644);
    let b = s.drop_file("b.mp4", 1000, 2);
    r.give(&b);
    let _d = start_as(&r, &s);
    let st = wait_as(&r, &s, "a and b done", |st| {
        is_done(st, &a) && is_done(st, &b)
    });
    assert_uploaded_once(&em, &b, row(&st, &b)["video_id"].as_str().unwrap());
}

/// The journal's file system fills up while files arrive: a clear error naming the journal and
/// what to do, the daemon keeps running, nothing is lost or corrupt, and everything uploads once
/// space is back. Needs root (mount).
#[test]
fn journal_on_a_full_disk_recovers_when_space_is_back() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let Some(fs) = Tmpfs::mount(&s.dir.join("jfs"), "1m") else {
        return;
    };
    let journal = fs.path.join("journal.sqlite");
    let text = s.config_text().replace(
        &s.dir.join("journal.sqlite").display().to_string(),
        &journal.display().to_string(),
    );
    std::fs::write(&s.config, text).unwrap();
    let first = s.drop_file("first.mp4", 1000, 1);
    let mut d = s.start();
    s.wait_done(1, WAIT);

    let filler = fs.fill();
    let more: Vec<_> = (0..3)
        .map(|i| s.drop_file(&format!("n{i}.mp4"), 1000, 10 + i))
        .collect();
    let msg = format!(
        "{}: the disk holding the journal is full (database or disk is full); free some space — the last change was not recorded and will be redone",
        journal.display()
    );
    s.wait_log(&msg, WAIT);
    assert!(
        d.running(),
        "the daemon keeps running on a full journal disk"
    );

    std::fs::remove_file(&filler).unwrap();
    let st = s.wait_done(4, WAIT);
    d.kill9();
    assert_eq!(integrity(&journal), "ok");
    no_orphans(&st);
    for p in std::iter::once(&first).chain(&more) {
        assert_uploaded_once(&em, p, row(&st, p)["video_id"].as_str().unwrap());
    }
}

/// `move_to` on a full file system: the file is uploaded (`done`), stays where it was, and the
/// failure is in `status --json` (`after_upload`) and the log; no partial copy is left.
#[test]
fn move_to_on_a_full_disk_keeps_the_file_done_in_place() {
    let em = Emulator::start();
    let s = Setup::new(
        &em,
        Opts {
            after_upload: "move",
            ..Opts::default()
        },
    );
    let Some(fs) = Tmpfs::mount(&s.moved, "64k") else {
        return;
    };
    let filler = fs.fill();
    let f = s.drop_file("a.mp4", 300_000, 5);
    let d = s.start();
    let st = s.wait_for("after_upload recorded", WAIT, |st| {
        file_row(st, &f).is_some_and(|r| !r["after_upload"].is_null())
    });
    let r = row(&st, &f);
    assert_eq!(r["state"], "done");
    let temp = s.moved.join(format!(".a.mp4.ingestd-tmp-{}", d.pid()));
    let msg = format!(
        "move failed: copying to {}: No space left on device (os error 28); the file is uploaded (done) and was left in place: fix the cause (space, permissions of move_to), then move it by hand",
        temp.display()
    );
    assert_eq!(r["after_upload"].as_str().unwrap(), msg);
    assert!(s.log().contains(&msg), "{}", s.log_tail(20));
    assert!(f.exists(), "the file stays in the watch root");
    let left: Vec<_> = std::fs::read_dir(&fs.path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, [filler], "no partial copy left in move_to");
    assert_uploaded_once(&em, &f, r["video_id"].as_str().unwrap());
}

/// A TLS endpoint whose certificate is signed by a private CA (a TLS-inspecting proxy): refused,
/// with an error naming `ca_file` in [api]; accepted once `ca_file` points at the CA, and the file
/// then uploads through TLS end to end, exactly once.
#[test]
fn self_signed_endpoint_is_refused_then_accepted_with_ca_file() {
    let em = Emulator::start();
    let proxy = tls::TlsProxy::start(&em.addr());
    let mut s = Setup::new(
        &em,
        Opts {
            retry_max: "1s",
            ..Opts::default()
        },
    );
    s.endpoint = proxy.url.clone();
    s.write_config();
    let f = s.drop_file("a.mp4", 6 * 1024 * 1024, 9);
    let mut d = s.start();
    let st = s.wait_for("two refused attempts", WAIT, |st| {
        file_row(st, &f).is_some_and(|r| r["attempts"].as_u64() >= Some(2))
    });
    let r = row(&st, &f);
    assert!(
        matches!(r["state"].as_str(), Some("queued" | "uploading")),
        "{r:#}"
    );
    let err = r["last_error"].as_str().unwrap();
    assert_eq!(
        err,
        "bytes 0-5242879/6291456: POST /upload: error sending request: client error (Connect): invalid peer certificate: UnknownIssuer; the endpoint's certificate is signed by a CA this machine does not trust: if that is your own CA (e.g. a TLS-inspecting proxy), set [api] ca_file to its PEM file"
    );
    no_orphans(&st);
    assert!(s.log().contains(err), "{}", s.log_tail(20));
    assert!(videos_count(&em) == 0, "nothing reached the endpoint");

    d.kill9();
    let ca = s.dir.join("proxy-ca.pem");
    std::fs::write(&ca, &proxy.ca_pem).unwrap();
    let text = s.config_text().replacen(
        "[api]\n",
        &format!("[api]\nca_file = \"{}\"\n", ca.display()),
        1,
    );
    std::fs::write(&s.config, text).unwrap();
    let _d = s.start();
    let st = s.wait_done(1, WAIT);
    no_orphans(&st);
    assert_uploaded_once(&em, &f, row(&st, &f)["video_id"].as_str().unwrap());
}

fn videos_count(em: &Emulator) -> usize {
    common::daemon::videos(em).len()
}
