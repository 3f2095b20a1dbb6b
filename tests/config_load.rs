//! `Config::parse_with` / `load_with` as a library: defaults, token sources and
//! `ApiConfig::read_upload_token`, the lenient mode for `token …` commands, metrics, endpoint form.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ingestd::config::{
    AfterUpload, Config, DEFAULT_EXCLUDE, DEFAULT_INCLUDE, LoadOptions, TokenSource, WatchMode,
};

const TOKEN: &str = "to1tcmSFHeYY5KzyhOqVKMVb";

fn opts(creds: Option<&Path>) -> LoadOptions {
    LoadOptions {
        credentials_directory: creds.map(Path::to_path_buf),
        check_files: true,
    }
}

fn parse(text: &str) -> Config {
    Config::parse_with(text, Path::new("t.toml"), &opts(None)).unwrap()
}

fn parse_err(text: &str) -> String {
    Config::parse_with(text, Path::new("t.toml"), &opts(None))
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_file_takes_every_default() {
    let c = parse("");
    assert_eq!(c.api.endpoint.as_str(), "https://ws.api.video/");
    assert!(matches!(c.api.token, TokenSource::None));
    assert_eq!(c.api.api_key_file, None);
    assert!(!c.api.allow_insecure_http);
    assert_eq!(c.api.ca_file, None);
    assert_eq!(c.api.connect_timeout, Duration::from_secs(10));
    assert_eq!(c.api.min_rate, 64 * 1024);
    assert_eq!(c.api.request_timeout, Duration::from_secs(30));
    assert_eq!(
        c.journal.path,
        PathBuf::from("/var/lib/ingestd/journal.sqlite")
    );
    assert_eq!(c.upload.workers, 2);
    assert_eq!(c.upload.chunk_size, 64 << 20);
    assert_eq!(c.upload.max_rate, 0);
    assert_eq!(c.upload.after_upload, AfterUpload::Keep);
    assert_eq!(c.upload.retry_max, Duration::from_secs(600));
    assert_eq!(c.upload.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(c.upload.title_template, "{stem}");
    assert!(c.watch.is_empty());
    assert!(c.metrics.is_none());
    assert_eq!(c.source, PathBuf::from("t.toml"));
}

#[test]
fn watch_defaults_and_values() {
    let c = parse(
        "[[watch]]\npath = \"/srv/a\"\n\n[[watch]]\npath = \"/srv/b\"\nrecursive = false\ninclude = [\"*.MP4\"]\nexclude = []\nsettle = \"2 min\"\nmode = \"poll\"\npoll_interval = \"5s\"\nrescan_interval = \"1h\"\nfollow_symlinks = true\ntags = [\"cam\"]\nmetadata = { site = \"a\", room = \"b\" }\n",
    );
    let a = &c.watch[0];
    assert_eq!(a.path, PathBuf::from("/srv/a"));
    assert!(a.recursive);
    assert_eq!(a.include, DEFAULT_INCLUDE);
    assert_eq!(a.exclude, DEFAULT_EXCLUDE);
    assert_eq!(a.settle, Duration::from_secs(10));
    assert_eq!(a.mode, WatchMode::Auto);
    assert_eq!(a.poll_interval, Duration::from_secs(30));
    assert_eq!(a.rescan_interval, Duration::from_secs(600));
    assert!(!a.follow_symlinks);
    assert!(a.tags.is_empty() && a.metadata.is_empty());
    let b = &c.watch[1];
    assert!(!b.recursive);
    assert_eq!(b.include, ["*.MP4"]);
    assert!(b.exclude.is_empty());
    assert_eq!(b.settle, Duration::from_secs(120));
    assert_eq!(b.mode, WatchMode::Poll);
    assert_eq!(b.poll_interval, Duration::from_secs(5));
    assert_eq!(b.rescan_interval, Duration::from_secs(3600));
    assert!(b.follow_symlinks);
    assert_eq!(b.tags, ["cam"]);
    assert_eq!(
        b.metadata,
        [
            ("room".to_owned(), "b".to_owned()),
            ("site".to_owned(), "a".to_owned())
        ]
    );
}

#[test]
fn upload_values_sizes_and_move() {
    let c = parse(
        "[upload]\nworkers = 32\nchunk_size = 5242880\nmax_rate = \"10 MiB/s\"\nafter_upload = \"move\"\nmove_to = \"/srv/done/\"\nretry_max = \"1h\"\nshutdown_timeout = \"0s\"\ntitle_template = \"{relpath} ({name})\"\n",
    );
    assert_eq!(c.upload.workers, 32);
    assert_eq!(c.upload.chunk_size, 5 << 20);
    assert_eq!(c.upload.max_rate, 10 << 20);
    assert_eq!(
        c.upload.after_upload,
        AfterUpload::Move(PathBuf::from("/srv/done"))
    );
    assert_eq!(c.upload.shutdown_timeout, Duration::ZERO);
    assert_eq!(
        parse("[upload]\nchunk_size = \"128 MiB\"\n")
            .upload
            .chunk_size,
        128 << 20
    );
    assert_eq!(
        parse("[upload]\nchunk_size = \"12.5 MiB\"\n")
            .upload
            .chunk_size,
        25 << 19
    );
    assert!(
        parse_err("[upload]\nchunk_size = \"1.5 GiB\"\n").starts_with(
            "t.toml:2:14: `chunk_size` in [upload] is 1.5 GiB; write a size from 5 MiB to 128 MiB"
        )
    );
}

#[test]
fn endpoint_forms() {
    let c = parse("[api]\nendpoint = \"https://sandbox.api.video\"\n");
    assert_eq!(c.api.endpoint.as_str(), "https://sandbox.api.video/");
    let c = parse("[api]\nendpoint = \"http://[::1]:8089/prefix\"\n");
    assert_eq!(
        c.api.endpoint.join("upload").unwrap().as_str(),
        "http://[::1]:8089/prefix/upload"
    );
    let c = parse("[api]\nendpoint = \"http://localhost:8089\"\n");
    assert_eq!(c.api.endpoint.as_str(), "http://localhost:8089/");
    let c = parse("[api]\nendpoint = \"http://10.0.0.5\"\nallow_insecure_http = true\n");
    assert!(c.warnings.iter().any(|w| w.contains("unencrypted")));
    assert!(
        parse_err("[api]\nendpoint = \"https://ws.api.video/?x=1\"\n").contains(
            "t.toml:2:12: `endpoint` in [api] must be a base URL without user, query or fragment"
        )
    );
}

#[test]
fn metrics_listen() {
    let c = parse("[metrics]\nlisten = \"127.0.0.1:9184\"\n");
    assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9184".parse().unwrap());
    let c = parse("[metrics]\nlisten = \"0.0.0.0:9184\"\n");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("reachable from other machines"))
    );
}

#[test]
fn token_file_is_read_trimmed_and_reread() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("token");
    std::fs::write(&file, format!("  {TOKEN}\n\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = parse(&format!(
        "[api]\nupload_token_file = \"{}\"\n",
        file.display()
    ));
    assert!(matches!(&c.api.token, TokenSource::File(p) if *p == file));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.api.read_upload_token().unwrap().expose(), TOKEN);

    // Rotated: the new content is read.
    std::fs::write(&file, "to2NEWTOKENxxxxxxxxxxxxx\n").unwrap();
    assert_eq!(
        c.api.read_upload_token().unwrap().expose(),
        "to2NEWTOKENxxxxxxxxxxxxx"
    );

    // Emptied or removed: an error naming the file.
    std::fs::write(&file, "\n").unwrap();
    let e = c.api.read_upload_token().unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: the upload token file is empty; write the upload token (it starts with `to`) into it",
            file.display()
        )
    );
    std::fs::remove_file(&file).unwrap();
    let e = c.api.read_upload_token().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: cannot read the upload token:",
            file.display()
        )),
        "{e}"
    );
}

#[test]
fn inline_credential_and_none() {
    let c = parse(&format!("[api]\nupload_token = \"{TOKEN}\"\n"));
    assert_eq!(c.api.read_upload_token().unwrap().expose(), TOKEN);
    assert!(!format!("{c:?}").contains(TOKEN), "Debug must redact");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("upload-token"), TOKEN).unwrap();
    let c = Config::parse_with("", Path::new("t.toml"), &opts(Some(tmp.path()))).unwrap();
    assert!(
        matches!(&c.api.token, TokenSource::Credential(p) if *p == tmp.path().join("upload-token"))
    );
    assert_eq!(c.api.read_upload_token().unwrap().expose(), TOKEN);

    let c = parse("");
    let e = c.api.read_upload_token().unwrap_err().to_string();
    assert!(e.contains("no upload token is configured"), "{e}");
    assert!(
        parse_err("[api]\nupload_token = \"  \"\n")
            .contains("t.toml:2:16: `upload_token` in [api] is empty")
    );
}

#[test]
fn lenient_mode_does_not_require_the_token_file() {
    let lenient = LoadOptions {
        credentials_directory: None,
        check_files: false,
    };
    let text = "[api]\nupload_token_file = \"/nonexistent/upload-token\"\napi_key_file = \"/nonexistent/key\"\n";
    let c = Config::parse_with(text, Path::new("t.toml"), &lenient).unwrap();
    assert!(matches!(c.api.token, TokenSource::File(_)));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, text).unwrap();
    assert!(Config::load_lenient(&file).is_ok());
    assert!(Config::load(&file).is_err());
    assert!(parse_err(text).contains(
        "t.toml:2:21: `upload_token_file` names `/nonexistent/upload-token`, which does not exist"
    ));
}

#[test]
fn api_key_file_mode_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("api-key");
    std::fs::write(&key, "secretkey").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = parse(&format!("[api]\napi_key_file = \"{}\"\n", key.display()));
    assert_eq!(c.api.api_key_file.as_deref(), Some(key.as_path()));
    let k = key.display();
    assert_eq!(
        c.warnings,
        [
            "no upload token is configured (upload_token_file, upload_token or the systemd credential `upload-token`): `run` and `upload` will refuse to start".to_owned(),
            format!("{k} (api_key_file) can be accessed by other users (mode 0640); run `chmod 600 {k}`"),
        ]
    );
}

#[test]
fn journal_inside_root_through_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
    let e = parse_err(&format!(
        "[journal]\npath = \"{0}/link/j.sqlite\"\n[[watch]]\npath = \"{0}/real\"\n",
        tmp.path().display()
    ));
    assert!(e.starts_with("t.toml:2:8: the journal"), "{e}");
}

#[test]
fn request_timeout_is_read_and_has_a_minimum() {
    let c = parse("[api]\nrequest_timeout = \"2s\"\n");
    assert_eq!(c.api.request_timeout, Duration::from_secs(2));
    let e = parse_err("[api]\nrequest_timeout = \"500ms\"\n");
    assert!(
        e.contains("`request_timeout` in [api] is 500ms, below the minimum of 1s"),
        "{e}"
    );
}

#[test]
fn max_rate_takes_an_rclone_timetable_or_off() {
    let c = parse("[upload]\nmax_rate = \"Mon-08:00,512k 08:00,2M; 23:00,off\"\n");
    let t = &c.upload.max_rate;
    assert_eq!(t.text(), Some("Mon-08:00,512k 08:00,2M; 23:00,off"));
    // Monday 09:00 (Sunday = day 0): `08:00,2M` is listed after `Mon-08:00,512k`, so it wins.
    assert_eq!(t.at(24 * 60 + 9 * 60).rate, 2 << 20);
    assert_eq!(t.at(2 * 24 * 60 + 23 * 60 + 5).rate, 0);
    assert!(!t.is_flat());
    assert_eq!(parse("[upload]\nmax_rate = \"off\"\n").upload.max_rate, 0);
}

#[test]
fn lanes_are_capped_by_max_connections_and_warn_past_the_request_limit() {
    let c = parse("[upload]\n");
    assert_eq!((c.upload.lanes_per_file, c.upload.max_connections), (1, 8));
    assert_eq!(c.upload.lanes(), 1);
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("lanes") || w.contains("requests a minute")),
        "{:?}",
        c.warnings
    );
    // 4 workers × 4 lanes > 8 connections: 2 lanes each, said at check-config.
    let c = parse("[upload]\nworkers = 4\nlanes_per_file = 4\nmax_rate = \"10 MiB\"\n");
    assert_eq!(c.upload.lanes(), 2);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("max_connections") && w.contains("2 lanes")),
        "{:?}",
        c.warnings
    );
    // 200 MiB/s in 64 MiB chunks is 187 requests a minute: above api.video's 100.
    let c = parse("[upload]\nlanes_per_file = 4\nmax_rate = \"200 MiB\"\n");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("100") && w.contains("chunk_size")),
        "{:?}",
        c.warnings
    );
    let c = parse("[upload]\nlanes_per_file = 4\nmax_rate = \"50 MiB\"\n");
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("lanes") || w.contains("requests a minute")),
        "{:?}",
        c.warnings
    );
    assert!(parse_err("[upload]\nlanes_per_file = 0\n").contains("t.toml:2:18: `lanes_per_file`"));
}
