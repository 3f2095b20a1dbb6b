//! `config.example.toml` can never drift from the code: every key of every section is documented
//! in it (with its default), and it loads, as shipped and with every optional key switched on,
//! once its absolute paths point into a temp dir. `check-config` accepts it as a real process.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ingestd::config::{AfterUpload, Config, LoadOptions, TokenSource, keys};

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
        .unwrap()
}

/// The example with `/srv/`, `/var/lib/ingestd/` and `/etc/ingestd/` moved under `dir`.
fn rewritten(text: &str, dir: &Path) -> String {
    let d = dir.display();
    text.replace("\"/srv/", &format!("\"{d}/srv/"))
        .replace("\"/var/lib/ingestd/", &format!("\"{d}/var/"))
        .replace("\"/etc/ingestd/", &format!("\"{d}/etc/"))
}

fn secret(path: PathBuf, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn opts() -> LoadOptions {
    LoadOptions {
        credentials_directory: None,
        check_files: true,
    }
}

#[test]
fn every_key_is_documented_in_its_section() {
    let text = example();
    let mut section = String::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let l = line.trim().trim_start_matches('#').trim();
        if l.starts_with('[') && !l.contains('=') && l.ends_with(']') {
            section = l.trim_matches(|c| c == '[' || c == ']').to_owned();
            seen.push((String::new(), section.clone()));
        } else if let Some((key, _)) = l.split_once(" = ") {
            seen.push((section.clone(), key.trim().to_owned()));
        }
    }
    for section in ["", "api", "journal", "upload", "watch", "metrics"] {
        for key in keys::section(section).unwrap() {
            assert!(
                seen.iter().any(|(s, k)| s == section && k == key.name),
                "config.example.toml does not document `{}` in section `{section}`",
                key.name
            );
        }
    }
}

#[test]
fn example_loads_as_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let text = rewritten(&example(), tmp.path());
    let c = Config::parse_with(&text, &tmp.path().join("config.toml"), &opts()).unwrap();
    assert_eq!(c.watch.len(), 1);
    assert_eq!(c.watch[0].path, tmp.path().join("srv/recordings"));
    assert_eq!(c.journal.path, tmp.path().join("var/journal.sqlite"));
    assert_eq!(c.api.endpoint.as_str(), "https://ws.api.video/");
    assert!(matches!(c.api.token, TokenSource::None));
    assert!(c.metrics.is_none());
    // The shipped values are the defaults: the example must agree with an empty file.
    let d = Config::parse_with(
        &format!("[[watch]]\npath = \"{}/srv/recordings\"\n[journal]\npath = \"{}/var/journal.sqlite\"\n", tmp.path().display(), tmp.path().display()),
        Path::new("d.toml"),
        &opts(),
    )
    .unwrap();
    assert_eq!(format!("{:?}", c.api), format!("{:?}", d.api));
    assert_eq!(format!("{:?}", c.upload), format!("{:?}", d.upload));
    assert_eq!(format!("{:?}", c.watch), format!("{:?}", d.watch));
}

#[test]
fn example_loads_with_every_optional_key_switched_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = rewritten(&example(), tmp.path());
    for (from, to) in [
        ("# upload_token_file = ", "upload_token_file = "),
        ("# api_key_file = ", "api_key_file = "),
        ("# ca_file = ", "ca_file = "),
        ("# move_to = ", "move_to = "),
        ("after_upload = \"keep\"", "after_upload = \"move\""),
        ("tags = []\n", ""),
        ("metadata = {}\n", ""),
        ("# tags = ", "tags = "),
        ("# metadata = ", "metadata = "),
        ("# [metrics]", "[metrics]"),
        ("# listen = ", "listen = "),
    ] {
        assert!(
            text.contains(from),
            "the example no longer contains `{from}`"
        );
        text = text.replacen(from, to, 1);
    }
    secret(
        tmp.path().join("etc/upload-token"),
        "to1tcmSFHeYY5KzyhOqVKMVb\n",
    );
    secret(tmp.path().join("etc/api-key"), "key\n");
    secret(
        tmp.path().join("etc/proxy-ca.pem"),
        "-----BEGIN CERTIFICATE-----\n",
    );
    std::fs::create_dir_all(tmp.path().join("srv/recordings")).unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, &text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    let c = Config::load_with(&config, &opts()).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(
        matches!(&c.api.token, TokenSource::File(p) if *p == tmp.path().join("etc/upload-token"))
    );
    assert_eq!(c.api.api_key_file, Some(tmp.path().join("etc/api-key")));
    assert_eq!(c.api.ca_file, Some(tmp.path().join("etc/proxy-ca.pem")));
    assert_eq!(
        c.upload.after_upload,
        AfterUpload::Move(tmp.path().join("srv/uploaded"))
    );
    assert_eq!(c.watch[0].tags, ["camera-1", "studio-a"]);
    assert_eq!(c.watch[0].metadata.len(), 2);
    assert_eq!(c.metrics.unwrap().listen.port(), 9184);

    // And the real binary agrees.
    let out = Command::new(env!("CARGO_BIN_EXE_ingestd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(
        ": ok\n1 watch root, 2 workers, chunk size 64 MiB, endpoint ws.api.video, token: file "
    ));
}
