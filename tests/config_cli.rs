//! `ingestd check-config` as a real process: a table of malformed configurations, each with the
//! exact `FILE:LINE:COL: message` expected and exit 78; valid ones exit 0 with a summary;
//! `INGESTD_CONFIG`, token-file warnings and `$CREDENTIALS_DIRECTORY` are honoured.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const TOKEN: &str = "to1tcmSFHeYY5KzyhOqVKMVb";

fn ingestd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ingestd"));
    c.env_remove("INGESTD_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG");
    c
}

fn check(config: &Path) -> Output {
    ingestd()
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// `check-config` with `$CREDENTIALS_DIRECTORY` set to `creds`.
fn check_with_credentials(config: &Path, creds: &Path) -> Output {
    ingestd()
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .env("CREDENTIALS_DIRECTORY", creds)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `body` (with `{dir}` replaced by the temp dir) to `DIR/c.toml`.
fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(&path, body.replace("{dir}", &dir.display().to_string())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// (config, expected message after `DIR/c.toml:`). `{dir}` is the test's temp dir, which holds
/// `token` (mode 0600, a token), `empty-token` (mode 0600, empty) and the directory `root`.
const CASES: &[(&str, &str)] = &[
    (
        "[upload]\nchunksize = \"64 MiB\"\n",
        "2:1: unknown key `chunksize` in [upload]; did you mean `chunk_size`? Valid keys: workers, chunk_size, max_rate, after_upload, move_to, retry_max, shutdown_timeout, title_template",
    ),
    (
        "[uplod]\nworkers = 2\n",
        "1:2: unknown section `uplod`; did you mean [upload]? Valid sections: [api], [journal], [upload], [[watch]], [metrics]",
    ),
    (
        "workers = 2\n",
        "1:1: the key `workers` belongs in [upload]: move it below a `[upload]` line",
    ),
    (
        "[upload]\nworkers = \"two\"\n",
        "2:11: `workers` in [upload] must be an integer (found string \"two\"); write for example `workers = 2`",
    ),
    (
        "[upload]\nworkers = 0\n",
        "2:11: `workers` in [upload] is 0; write a number from 1 to 32, such as `workers = 2`",
    ),
    (
        "[upload]\nworkers = 2\nchunk_size = \"1 MiB\"\n",
        "3:14: `chunk_size` in [upload] is 1 MiB; write a size from 5 MiB to 128 MiB, such as \"64 MiB\" (api.video needs every chunk but the last to be at least 5 MiB and accepts at most 200 MiB per request; 128 MiB is the official clients' maximum)",
    ),
    (
        "[upload]\nchunk_size = \"200 MiB\"\n",
        "2:14: `chunk_size` in [upload] is 200 MiB; write a size from 5 MiB to 128 MiB",
    ),
    (
        "[upload]\nchunk_size = \"lots\"\n",
        "2:14: `chunk_size` in [upload]: `lots` does not start with a number; write a size such as \"64 MiB\"",
    ),
    (
        "[upload]\nmax_rate = -5\n",
        "2:12: `max_rate` in [upload] is negative; write a size such as \"10 MiB\"",
    ),
    (
        // A timetable (rclone's --bwlimit syntax): the column of the bad entry's part.
        "[upload]\nmax_rate = \"08:00,2M 18:00,20M 24:00,off\"\n",
        "2:32: `max_rate` in [upload]: `24:00` is not a time; write HH:MM from 00:00 to 23:59",
    ),
    (
        "[upload]\nmax_rate = \"Mon-08:00,512k Fri-18:00,fast\"\n",
        "2:38: `max_rate` in [upload]: `fast` is not a rate",
    ),
    (
        "[upload]\nmax_rate = \"08:00,2M Funday-08:00,1M\"\n",
        "2:22: `max_rate` in [upload]: `Funday` is not a day of the week",
    ),
    (
        "[upload]\nretry_max = \"soon\"\n",
        "2:13: `retry_max` in [upload]: `soon` is not a duration",
    ),
    (
        "[journal]\npath = \"journal.sqlite\"\n",
        "2:8: `path` in [journal] is the relative path \"journal.sqlite\"; write an absolute path such as \"/var/lib/ingestd/journal.sqlite\"",
    ),
    (
        "[journal]\npath = \"{dir}/root\"\n",
        "2:8: `path` in [journal] names the directory \"{dir}/root\"; write the path of the journal file, such as \"{dir}/root/journal.sqlite\"",
    ),
    (
        "[[watch]]\npath = \"~/videos\"\n",
        "2:8: `path` in [[watch]] is the relative path \"~/videos\" (`~` is not expanded); write an absolute path such as \"/srv/recordings\"",
    ),
    (
        "[api]\nupload_token_file = \"etc/token\"\n",
        "2:21: `upload_token_file` in [api] is the relative path \"etc/token\"; write an absolute path such as \"/etc/ingestd/upload-token\"",
    ),
    (
        "[api]\napi_key_file = \"key\"\n",
        "2:16: `api_key_file` in [api] is the relative path \"key\"; write an absolute path such as \"/etc/ingestd/api-key\"",
    ),
    (
        "[api]\nca_file = \"ca.pem\"\n",
        "2:11: `ca_file` in [api] is the relative path \"ca.pem\"; write an absolute path such as",
    ),
    (
        "[upload]\nafter_upload = \"move\"\nmove_to = \"uploaded\"\n",
        "3:11: `move_to` in [upload] is the relative path \"uploaded\"; write an absolute path such as \"/srv/uploaded\"",
    ),
    (
        "[[watch]]\npath = \"{dir}/root\"\n\n[[watch]]\npath = \"{dir}/root/sub\"\n",
        "5:8: watch root \"{dir}/root/sub\" is inside the watch root \"{dir}/root\" (line 2); roots must not overlap",
    ),
    (
        "[[watch]]\npath = \"{dir}/root/sub\"\n\n[[watch]]\npath = \"{dir}/root\"\n",
        "5:8: watch root \"{dir}/root\" contains the watch root \"{dir}/root/sub\" (line 2); roots must not overlap",
    ),
    (
        "[[watch]]\npath = \"{dir}/root\"\n\n[[watch]]\npath = \"{dir}/./root/\"\n",
        "5:8: `path` \"{dir}/root\" is already watched by the [[watch]] at line 2; remove one of the two [[watch]] sections",
    ),
    (
        "[journal]\npath = \"{dir}/root/journal.sqlite\"\n\n[[watch]]\npath = \"{dir}/root\"\n",
        "2:8: the journal \"{dir}/root/journal.sqlite\" is inside the watch root \"{dir}/root\" (line 5); put it outside every root, such as path = \"/var/lib/ingestd/journal.sqlite\" in [journal]",
    ),
    (
        "[upload]\nafter_upload = \"move\"\nmove_to = \"{dir}/root/done\"\n\n[[watch]]\npath = \"{dir}/root\"\n",
        "3:11: `move_to` \"{dir}/root/done\" is inside the watch root \"{dir}/root\" (line 6), so moved files would be found again",
    ),
    (
        "[upload]\nafter_upload = \"move\"\nmove_to = \"{dir}\"\n\n[[watch]]\npath = \"{dir}/root\"\n",
        "3:11: `move_to` \"{dir}\" contains the watch root \"{dir}/root\" (line 6)",
    ),
    (
        "[upload]\nafter_upload = \"move\"\nmove_to = \"{dir}/token\"\n",
        "3:11: `move_to` in [upload] is \"{dir}/token\", which is not a directory; name the directory uploaded files are moved into",
    ),
    (
        "[upload]\nafter_upload = \"move\"\n",
        "2:16: `after_upload = \"move\"` needs `move_to`, the directory uploaded files are moved into; add for example `move_to = \"/srv/uploaded\"` to [upload]",
    ),
    (
        "[upload]\nafter_upload = \"mvoe\"\n",
        "2:16: `after_upload` in [upload] is \"mvoe\", which is not one of \"keep\", \"delete\", \"move\"; did you mean \"move\"?",
    ),
    (
        "[api]\nupload_token = \"to1tcmSFHeYY5KzyhOqVKMVb\"\nupload_token_file = \"{dir}/token\"\n",
        "3:21: both `upload_token` and `upload_token_file` are set in [api]; keep only one",
    ),
    (
        "[api]\nupload_token_file = \"{dir}/no-such-token\"\n",
        "2:21: `upload_token_file` names `{dir}/no-such-token`, which does not exist; create it (one line, mode 0600) or remove `upload_token_file`",
    ),
    (
        "[api]\nupload_token_file = \"{dir}/empty-token\"\n",
        "2:21: `upload_token_file` names `{dir}/empty-token`, which is empty; write the upload token (it starts with `to`) into it",
    ),
    (
        "[api]\napi_key_file = \"{dir}/no-such-key\"\n",
        "2:16: `api_key_file` names `{dir}/no-such-key`, which does not exist",
    ),
    (
        "[api]\nca_file = \"{dir}/no-such-ca.pem\"\n",
        "2:11: `ca_file` names `{dir}/no-such-ca.pem`, which cannot be read: No such file or directory (os error 2); point it at a PEM certificate file",
    ),
    (
        "[[watch]]\npath = \"{dir}/token\"\n",
        "2:8: `path` in [[watch]] names `{dir}/token`, which is not a directory; point it at the folder to watch",
    ),
    (
        "[api]\nendpoint = \"ftp://ws.api.video\"\n",
        "2:12: `endpoint` in [api] has the scheme `ftp:`; it must be https:// (or http:// to this machine)",
    ),
    (
        "[api]\nendpoint = \"ws.api.video\"\n",
        "2:12: `endpoint` in [api] is \"ws.api.video\", which is not a URL",
    ),
    (
        "[api]\nendpoint = \"http://ws.api.video\"\n",
        "2:12: `endpoint` in [api] uses plain http:// to `ws.api.video`, which is not this machine, so the upload token would travel unencrypted; use https://, or set `allow_insecure_http = true` in [api]",
    ),
    (
        "[api]\nallow_insecure_http = \"yes\"\n",
        "2:23: `allow_insecure_http` in [api] must be true or false (found string \"yes\"); write for example `allow_insecure_http = false`",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\ninclude = []\n",
        "3:11: `include = []` in [[watch]] matches no file; list patterns such as [\"*.mp4\", \"*.mov\"], or remove the key to use the defaults",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\nexclude = [\"*.tmp\", \"[abc\"]\n",
        "3:21: `exclude` pattern \"[abc\" in [[watch]] is not a valid glob",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\ninclude = [\n  \"*.mp4\",\n  5,\n]\n",
        "5:3: `include` in [[watch]] must be an array of glob strings (an element is integer `5`)",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\nsettle = \"0s\"\n",
        "3:10: `settle` in [[watch]] is 0s, below the minimum of 1s; write for example `settle = \"10s\"`",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\nsettle = 10\n",
        "3:10: `settle` in [[watch]] must be a duration (a string with a unit) (found integer `10`); write for example `settle = \"10s\"`",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\nmode = \"inotify\"\n",
        "3:8: `mode` in [[watch]] is \"inotify\", which is not one of \"auto\", \"events\", \"poll\"",
    ),
    (
        "[watch]\npath = \"/srv/a\"\n",
        "1:1: `watch` must be an array of tables, not a table: write `[[watch]]` on a line of its own",
    ),
    (
        "[[watch]]\nrecursive = false\n",
        "1:1: [[watch]] number 1 is missing the key `path`; add for example `path = \"/srv/recordings\"`",
    ),
    (
        "[[watch]]\npath = \"/srv/a\"\nmetadata = { site = 1 }\n",
        "3:21: metadata value `site` in [[watch]] must be a string, not integer `1`",
    ),
    (
        "[upload]\ntitle_template = \"{title}\"\n",
        "2:18: `title_template` in [upload] uses the unknown placeholder {title}; use {stem}, {name} or {relpath}",
    ),
    (
        "[metrics]\nlisten = \"localhost:9184\"\n",
        "2:10: `listen` in [metrics] is \"localhost:9184\", which is not an IP address and port; write for example listen = \"127.0.0.1:9184\"",
    ),
    (
        "[upload\nworkers = 2\n",
        "1:8: invalid TOML: unclosed table, expected `]`",
    ),
    (
        "[upload]\nworkers = 2\nworkers = 3\n",
        "3:1: the key `workers` is set twice; keep only one",
    ),
    (
        "[upload]\nworkers = 2\n[upload]\nchunk_size = \"8 MiB\"\n",
        "3:2: the section [upload] appears twice; merge the two into one",
    ),
];

#[test]
fn malformed_configs_exit_78_with_position_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("root")).unwrap();
    for (name, content) in [("token", TOKEN), ("empty-token", "\n")] {
        std::fs::write(dir.join(name), content).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let shown_dir = dir.display().to_string();
    let mut failures = Vec::new();
    for (config, expected) in CASES {
        let path = write_config(dir, config);
        let out = check(&path);
        let stderr = text(&out.stderr);
        let expected = format!(
            "{}:{}",
            path.display(),
            expected.replace("{dir}", &shown_dir)
        );
        if out.status.code() != Some(78) || !stderr.contains(&expected) {
            failures.push(format!(
                "config:\n{config}\nexit: {:?}\nexpected: {expected}\nstderr:   {stderr}",
                out.status.code()
            ));
        }
        assert!(!stderr.contains(TOKEN), "token leaked: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[test]
fn valid_config_exits_0_with_summary_and_never_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let path = write_config(
        tmp.path(),
        "[api]\nendpoint = \"http://127.0.0.1:8089\"\nupload_token = \"to1tcmSFHeYY5KzyhOqVKMVb\"\n\n[journal]\npath = \"{dir}/journal.sqlite\"\n\n[upload]\nworkers = 3\nchunk_size = \"8 MiB\"\n\n[[watch]]\npath = \"{dir}/root\"\n",
    );
    let out = check(&path);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        stdout,
        format!(
            "{}: ok\n1 watch root, 3 workers, chunk size 8 MiB, endpoint 127.0.0.1:8089, token: inline upload_token\n\
             {}/root: check_container = true: settled MP4/MOV, MKV/WebM and MPEG-TS files are \
             queued only once their structure is complete (a file still incomplete and unchanged \
             after incomplete_after = 1h fails with `incomplete-container`, a fragmented MP4 \
             without mfra is uploaded then); other formats use settle (10s) alone\n",
            path.display(),
            tmp.path().display()
        )
    );
    assert!(!stdout.contains(TOKEN) && !text(&out.stderr).contains(TOKEN));
}

#[test]
fn missing_config_file_exits_78() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("absent.toml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains(&format!(
            "{}: cannot read the configuration file",
            path.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ingestd_config_env_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write_config(tmp.path(), "[upload]\nworkers = 4\n");
    let out = ingestd()
        .arg("check-config")
        .env("INGESTD_CONFIG", &good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("{}: ok\n0 watch roots, 4 workers", good.display()))
    );

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[upload]\nworkers = 99\n").unwrap();
    let out = ingestd()
        .arg("check-config")
        .env("INGESTD_CONFIG", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains(&format!(
            "{}:2:11: `workers` in [upload] is 99",
            bad.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn world_readable_token_file_warns_but_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("upload-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = write_config(
        tmp.path(),
        "[api]\nupload_token_file = \"{dir}/upload-token\"\n",
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let t = token.display();
    assert!(
        stderr.contains(&format!(
            "warning: {t} (upload_token_file) can be accessed by other users (mode 0644); run `chmod 600 {t}`"
        )),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains(&format!("token: file {t}")));
    assert!(!stderr.contains(TOKEN) && !text(&out.stdout).contains(TOKEN));

    // With mode 0600 the warning goes away.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !text(&out.stderr).contains("chmod"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn credentials_directory_supplies_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let path = write_config(tmp.path(), "[upload]\nworkers = 1\n");

    // No credential file yet: no token, a warning, still exit 0.
    let out = check_with_credentials(&path, &creds);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("token: none"));
    assert!(text(&out.stderr).contains("warning: no upload token is configured"));

    std::fs::write(creds.join("upload-token"), TOKEN).unwrap();
    let out = check_with_credentials(&path, &creds);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "token: systemd credential {}",
            creds.join("upload-token").display()
        )),
        "{}",
        text(&out.stdout)
    );

    // An explicit upload_token_file wins over the credential.
    let token = tmp.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = write_config(tmp.path(), "[api]\nupload_token_file = \"{dir}/token\"\n");
    let out = check_with_credentials(&path, &creds);
    assert!(text(&out.stdout).contains(&format!("token: file {}", token.display())));
}

#[test]
fn check_config_summary_names_the_timetable() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("root")).unwrap();
    let path = write_config(
        tmp.path(),
        "[api]\nendpoint = \"http://127.0.0.1:8089\"\nupload_token = \"to1tcmSFHeYY5KzyhOqVKMVb\"\n\n[journal]\npath = \"{dir}/journal.sqlite\"\n\n[upload]\nmax_rate = \"08:00,512k 23:00,off\"\n\n[[watch]]\npath = \"{dir}/root\"\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(", max_rate 08:00,512k 23:00,off, endpoint"),
        "{}",
        text(&out.stdout)
    );
}
