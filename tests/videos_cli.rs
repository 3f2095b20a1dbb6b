//! `ingestd videos …` as a user runs it: the real binary against the real local endpoint, with
//! the API key from `APIVIDEO_API_KEY` and no config file. Piped output (as here) is one id per
//! line; `--json` is the API's answer.

mod common;

use std::process::{Command, Output, Stdio};

use common::daemon::{create_video, videos};
use common::{API_KEY, Emulator};
use serde_json::Value;

/// Runs `ingestd --config <missing> videos ARGS… --endpoint URL`, stdin closed.
fn videos_cmd(em: &Emulator, key: Option<&str>, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg("videos")
        .args(args)
        .arg("--endpoint")
        .arg(&em.url)
        .env_remove("INGESTD_CONFIG")
        .env_remove("APIVIDEO_API_KEY")
        .stdin(Stdio::null());
    if let Some(k) = key {
        cmd.env("APIVIDEO_API_KEY", k);
    }
    cmd.output().expect("run ingestd")
}

fn ok(em: &Emulator, args: &[&str]) -> String {
    let out = videos_cmd(em, Some(API_KEY), args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ingestd videos {args:?} failed ({}): {stdout}{stderr}",
        out.status
    );
    assert!(!stdout.contains(API_KEY) && !stderr.contains(API_KEY));
    stdout
}

fn ids(em: &Emulator, args: &[&str]) -> Vec<String> {
    ok(em, args).lines().map(str::to_owned).collect()
}

fn json(em: &Emulator, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(em, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn list_filters_sorts_and_pages() {
    let em = Emulator::start();
    let a = create_video(&em, "beach day", &["holiday", "sea"], &[("camera", "A")]);
    let b = create_video(&em, "beach night", &["holiday"], &[("camera", "B")]);
    let c = create_video(&em, "office", &["work"], &[("camera", "A")]);

    assert_eq!(ids(&em, &["list"]), [a.as_str(), b.as_str(), c.as_str()]);
    assert_eq!(
        ids(&em, &["list", "--title", "beach"]),
        [a.as_str(), b.as_str()]
    );
    assert_eq!(
        ids(&em, &["list", "--tag", "holiday"]),
        [a.as_str(), b.as_str()]
    );
    assert_eq!(
        ids(&em, &["list", "--tag", "holiday", "--tag", "sea"]),
        [a.as_str()]
    );
    assert_eq!(
        ids(&em, &["list", "--metadata", "camera=A"]),
        [a.as_str(), c.as_str()]
    );
    assert_eq!(
        ids(&em, &["list", "--metadata", "camera=A", "--tag", "work"]),
        [c.as_str()]
    );
    assert!(ids(&em, &["list", "--title", "nothing like it"]).is_empty());
    assert_eq!(
        ids(&em, &["list", "--sort-by", "title", "--sort-order", "desc"]),
        [c.as_str(), b.as_str(), a.as_str()]
    );

    let page = json(&em, &["list", "--page-size", "2", "--page", "2"]);
    assert_eq!(page["pagination"]["itemsTotal"], 3);
    assert_eq!(page["pagination"]["pagesTotal"], 2);
    assert_eq!(page["data"][0]["videoId"], c.as_str());
    assert_eq!(
        ids(&em, &["list", "--page-size", "1", "--page", "3"]),
        [c.as_str()]
    );

    // --all follows the pages, whatever their size.
    assert_eq!(
        ids(&em, &["list", "--all", "--page-size", "1"]),
        [a.as_str(), b.as_str(), c.as_str()]
    );
    let every = json(&em, &["list", "--all", "--page-size", "2"]);
    let got: Vec<&str> = every
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["videoId"].as_str().unwrap())
        .collect();
    assert_eq!(got, [a.as_str(), b.as_str(), c.as_str()]);

    // A bad value is refused before any request.
    let bad = videos_cmd(&em, Some(API_KEY), &["list", "--page-size", "101"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = videos_cmd(&em, Some(API_KEY), &["list", "--metadata", "novalue"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn show_update_delete() {
    let em = Emulator::start();
    let id = create_video(&em, "raw", &["x"], &[]);
    let shown = json(&em, &["show", &id]);
    assert_eq!(shown["title"], "raw");
    let text = ok(&em, &["show", &id]);
    assert!(text.contains("title:") && text.contains("raw"), "{text}");
    assert!(
        text.contains("upload:") && text.contains("no source"),
        "{text}"
    );

    let updated = json(
        &em,
        &[
            "update",
            &id,
            "--title",
            "edited",
            "--description",
            "from the seed",
            "--tag",
            "a",
            "--tag",
            "b",
            "--metadata",
            "camera=B",
            "--private",
        ],
    );
    assert_eq!(updated["title"], "edited");
    assert_eq!(updated["description"], "from the seed");
    assert_eq!(updated["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        updated["metadata"],
        serde_json::json!([{"key": "camera", "value": "B"}])
    );
    assert_eq!(updated["public"], false);
    // Only what is named changes.
    let again = json(&em, &["update", &id, "--public"]);
    assert_eq!(again["title"], "edited");
    assert_eq!(again["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(again["public"], true);
    let cleared = json(&em, &["update", &id, "--clear-tags"]);
    assert_eq!(cleared["tags"], serde_json::json!([]));
    assert_eq!(ids(&em, &["list", "--metadata", "camera=B"]), [id.as_str()]);
    // Nothing to change is a usage error.
    let nothing = videos_cmd(&em, Some(API_KEY), &["update", &id]);
    assert_eq!(nothing.status.code(), Some(2));

    // Not a terminal and no --yes: refused, nothing deleted.
    let refused = videos_cmd(&em, Some(API_KEY), &["delete", &id]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(videos(&em).len(), 1);

    let other = create_video(&em, "keep me", &[], &[]);
    let out = ok(&em, &["delete", "--yes", &id]);
    assert!(out.contains(&id), "{out}");
    assert_eq!(ids(&em, &["list"]), [other.as_str()]);
    let missing = videos_cmd(&em, Some(API_KEY), &["show", &id]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("no video") && stderr.contains(&id),
        "{stderr}"
    );
    // One missing id among several: the others are deleted, exit 1.
    let partly = videos_cmd(&em, Some(API_KEY), &["delete", "--yes", &id, &other]);
    assert_eq!(partly.status.code(), Some(1));
    assert!(ids(&em, &["list"]).is_empty());
}

#[test]
fn without_or_with_a_wrong_key() {
    let em = Emulator::start();
    let none = videos_cmd(&em, None, &["list"]);
    assert_eq!(none.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&none.stderr).contains("APIVIDEO_API_KEY"));
    let wrong = videos_cmd(&em, Some("wrongKey123"), &["list"]);
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("rejected the API key"), "{stderr}");
    assert!(!stderr.contains("wrongKey123"));
}
