//! Bad input (issue 5 §6) beyond `tests/config_cli.rs`: each case with the exact message.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn config(dir: &Path, endpoint: &str, journal: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
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
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "ingestd: {}: journal schema version 999 is newer than this ingestd understands (up to 2); install the newer ingestd that wrote it (the journal was left untouched)",
            j.display()
        )
    );
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let c = config(t.path(), "http://example.com", &t.path().join("j.sqlite"));
    let o = ingestd(&["check-config"], &c);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).trim().ends_with(
            "c.toml:2:12: `endpoint` in [api] uses plain http:// to `example.com`, which is not this machine, so the upload token would travel unencrypted; use https://, or set `allow_insecure_http = true` in [api] if that is really meant"
        ),
        "{}",
        stderr(&o)
    );
}
