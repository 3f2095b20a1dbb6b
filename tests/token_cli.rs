//! `ingestd token …` as a user runs it: the real binary against the real local endpoint
//! (`ingestd emulator`), with the API key from `APIVIDEO_API_KEY` and no config file.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{API_KEY, Emulator};
use serde_json::Value;

/// A config path that does not exist: `token …` must then work from `--endpoint` and env alone.
fn missing_config() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-config.toml");
    (dir, path)
}

/// Runs `ingestd --config <missing> token ARGS… [--endpoint URL]` with `key` in `APIVIDEO_API_KEY`.
fn token_cmd(endpoint: Option<&str>, key: Option<&str>, args: &[&str]) -> Output {
    let (_dir, config) = missing_config();
    let mut cmd = Command::new(common::bin());
    cmd.arg("--config").arg(&config).arg("token").args(args);
    if let Some(url) = endpoint {
        cmd.arg("--endpoint").arg(url);
    }
    cmd.env_remove("INGESTD_CONFIG")
        .env_remove("APIVIDEO_API_KEY");
    if let Some(k) = key {
        cmd.env("APIVIDEO_API_KEY", k);
    }
    cmd.output().expect("run ingestd")
}

fn ok(em: &Emulator, args: &[&str]) -> String {
    let out = token_cmd(Some(&em.url), Some(API_KEY), args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ingestd token {args:?} failed ({}): {stdout}{stderr}",
        out.status
    );
    assert!(
        !stdout.contains(API_KEY) && !stderr.contains(API_KEY),
        "API key printed"
    );
    stdout
}

fn ok_json(em: &Emulator, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(em, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn create(em: &Emulator, ttl: u64) -> Value {
    ok_json(em, &["create", "--ttl", &ttl.to_string()])
}

#[test]
fn create_show_delete() {
    let em = Emulator::start();
    let t = create(&em, 3600);
    let id = t["token"].as_str().unwrap().to_owned();
    assert!(id.starts_with("to") && id.len() == 24, "{id}");
    assert_eq!(t["ttl"], 3600);
    assert!(t["expiresAt"].is_string(), "{t}");
    assert!(t["createdAt"].is_string(), "{t}");

    let forever = create(&em, 0);
    assert_eq!(forever["ttl"], 0);
    assert!(forever["expiresAt"].is_null(), "{forever}");

    let shown = ok_json(&em, &["show", &id]);
    assert_eq!(shown["token"], t["token"]);
    assert_eq!(shown["expiresAt"], t["expiresAt"]);

    let table = ok(&em, &["show", &id]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("TOKEN") && lines[0].contains("EXPIRES"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("1h"),
        "{table}"
    );

    let deleted = ok(&em, &["delete", &id]);
    assert!(deleted.contains(&id), "{deleted}");
    let gone = token_cmd(Some(&em.url), Some(API_KEY), &["show", &id]);
    assert_eq!(gone.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(
        stderr.contains("no upload token") && stderr.contains(&id),
        "{stderr}"
    );
    let again = token_cmd(Some(&em.url), Some(API_KEY), &["delete", &id]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn list_pages_and_sorts() {
    let em = Emulator::start();
    let before = ok_json(&em, &["list"])["pagination"]["itemsTotal"]
        .as_u64()
        .unwrap();
    for ttl in [300, 100, 500, 200, 400] {
        create(&em, ttl);
    }
    let total = before + 5;

    let page1 = ok_json(&em, &["list", "--page-size", "2"]);
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    assert_eq!(page1["pagination"]["itemsTotal"], total);
    assert_eq!(page1["pagination"]["pagesTotal"], total.div_ceil(2));
    assert_eq!(page1["pagination"]["currentPage"], 1);
    let last_page = total.div_ceil(2);
    let last = ok_json(
        &em,
        &["list", "--page-size", "2", "--page", &last_page.to_string()],
    );
    assert_eq!(
        last["data"].as_array().unwrap().len() as u64,
        total - 2 * (last_page - 1)
    );

    let ttls = |v: &Value| -> Vec<u64> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["ttl"].as_u64().unwrap())
            .filter(|ttl| *ttl > 0)
            .collect()
    };
    let asc = ok_json(
        &em,
        &[
            "list",
            "--sort-by",
            "ttl",
            "--sort-order",
            "asc",
            "--page-size",
            "100",
        ],
    );
    assert_eq!(ttls(&asc), [100, 200, 300, 400, 500]);
    let desc = ok_json(
        &em,
        &[
            "list",
            "--sort-by",
            "ttl",
            "--sort-order",
            "desc",
            "--page-size",
            "100",
        ],
    );
    assert_eq!(ttls(&desc), [500, 400, 300, 200, 100]);

    let created: Vec<String> = ok_json(
        &em,
        &["list", "--sort-by", "createdAt", "--sort-order", "desc"],
    )["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["createdAt"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted);

    // The table: header, one row per token, and the footer.
    let table = ok(&em, &["list", "--page-size", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TOKEN"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert_eq!(
        *lines.last().unwrap(),
        format!("page 1 of {}, {total} tokens", total.div_ceil(2)),
        "{table}"
    );
}

#[test]
fn wrong_api_key_is_one_clear_line() {
    let em = Emulator::start();
    let wrong = "wrongKeyWrongKeyWrongKey1234";
    let out = token_cmd(Some(&em.url), Some(wrong), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("api.video rejected the API key (authentication-invalid-api-key)"),
        "{stderr}"
    );
    assert!(lines[0].contains("APIVIDEO_API_KEY"), "{stderr}");
    assert!(!stderr.contains(wrong) && out.stdout.is_empty());
}

#[test]
fn no_api_key_says_where_to_put_one() {
    // No endpoint is contacted: the key is checked first.
    let out = token_cmd(Some("http://127.0.0.1:9"), None, &["list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("APIVIDEO_API_KEY") && stderr.contains("api.api_key_file"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn insecure_endpoint_is_refused() {
    let out = token_cmd(Some("http://example.com"), Some(API_KEY), &["list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain http"), "{stderr}");
}

#[test]
fn an_existing_invalid_config_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[api\nendpoint = 3\n").unwrap();
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&config)
        .args(["token", "list", "--endpoint", "http://127.0.0.1:9"])
        .env("APIVIDEO_API_KEY", API_KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(config.to_str().unwrap()),
        "config error should name the file: {stderr}"
    );
}

/// A page past the last one says which pages exist (it printed an empty table and
/// "page 9 of 3").
#[test]
fn a_page_past_the_end_says_which_pages_exist() {
    let em = Emulator::start();
    for _ in 0..3 {
        create(&em, 0);
    }
    let text = ok(&em, &["list", "--page-size", "2", "--page", "9"]);
    assert_eq!(
        text,
        "no upload tokens on page 9: there are 2 pages of 2 (3 tokens); try --page 2\n"
    );
}

/// An endpoint that refuses connections: one line naming it and `--endpoint`, without the
/// daemon's "[api] … the upload is retried" hint.
#[test]
fn an_unreachable_endpoint_is_one_line_naming_it() {
    let out = token_cmd(Some("http://127.0.0.1:9"), Some(API_KEY), &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cannot reach http://127.0.0.1:9/")
            && stderr.contains("check --endpoint")
            && !stderr.contains("retried"),
        "{stderr}"
    );
}

/// `ingestd token create > FILE` (output redirected) writes the token alone, a valid
/// `upload_token_file` (it wrote the table, which no upload could use).
#[test]
fn create_redirected_prints_the_token_alone() {
    let em = Emulator::start();
    let out = ok(&em, &["create"]);
    let token = out.trim_end();
    assert!(
        token.starts_with("to") && !token.contains(char::is_whitespace),
        "{out:?}"
    );
    assert_eq!(out, format!("{token}\n"));
    let shown = ok_json(&em, &["show", token]);
    assert_eq!(shown["token"], token);
}
