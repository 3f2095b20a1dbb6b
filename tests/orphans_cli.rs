//! `ingestd orphans` after a real W3 crash (first chunk stored at the endpoint, its `videoId` not
//! committed): listed without a key (with the command to run), resolved to the orphan video with
//! the key, and `--delete --yes` deletes exactly that video and marks the note resolved.
#![cfg(feature = "failpoints")]
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;
mod hostile_support;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::daemon::create_video;
use common::{API_KEY, Emulator};
use hostile_support::*;
use serde_json::Value;

fn orphans(setup: &Setup, key: bool, args: &[&str]) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.arg("--config")
        .arg(&setup.config)
        .arg("orphans")
        .args(args)
        .env_remove("APIVIDEO_API_KEY")
        .stdin(Stdio::null());
    if key {
        cmd.env("APIVIDEO_API_KEY", API_KEY);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ids(em: &Emulator) -> Vec<String> {
    let mut v: Vec<String> = videos(em)
        .iter()
        .map(|v| v["videoId"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn w3_orphan_is_listed_resolved_and_deleted_alone() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let clip = setup.inbox.join("clip.mp4");
    write_file(&clip, 12 * MIB, 3);
    let mut d = setup.start("after-first-chunk-before-commit=panic");
    assert!(!d.wait_exit(Duration::from_secs(90)).success());
    drop(d);
    let mut d = setup.start("");
    let st = setup.wait_settled(1, Duration::from_secs(120));
    d.stop();
    let final_id = st["files"][0]["video_id"].as_str().unwrap().to_owned();
    // Videos that are not the orphan: a title that only contains the file's name, another file.
    let similar = create_video(&em, "clip.mp4 (edited)", &[], &[]);
    let unrelated = create_video(&em, "other.mp4", &[], &[]);
    let before = ids(&em);
    assert_eq!(before.len(), 4, "orphan, final, two others");
    let orphan_id = before
        .iter()
        .find(|v| ![&final_id, &similar, &unrelated].contains(v))
        .unwrap()
        .clone();

    // Without a key: the note, and exactly what to run.
    let out = orphans(&setup, false, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("clip.mp4") && t.contains("possible orphan"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "APIVIDEO_API_KEY=<the account's API key> ingestd --config {} orphans",
            setup.config.display()
        )),
        "{t}"
    );
    let refused = orphans(&setup, false, &["--delete", "--yes"]);
    assert_eq!(refused.status.code(), Some(78), "{}", text(&refused));
    assert_eq!(ids(&em), before);

    // With the key: resolved to the one orphan video, with its upload state.
    let out = orphans(&setup, true, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v["orphans"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v:#}");
    let found: Vec<&str> = list[0]["videos"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["owner_file_id"].is_null())
        .map(|c| c["video_id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [orphan_id.as_str()], "{v:#}");
    assert!(
        list[0]["videos"][0]["upload"]
            .as_str()
            .unwrap()
            .starts_with("uploading"),
        "{v:#}"
    );

    // Off a terminal --delete needs --yes.
    let asked = orphans(&setup, true, &["--delete"]);
    assert_eq!(asked.status.code(), Some(2), "{}", text(&asked));
    assert_eq!(ids(&em), before);

    let out = orphans(&setup, true, &["--delete", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains(&orphan_id) && t.contains("deleted"), "{t}");
    let mut after: Vec<String> = before.into_iter().filter(|v| *v != orphan_id).collect();
    after.sort();
    assert_eq!(ids(&em), after, "only the orphan is deleted");

    // Resolved: no longer listed, nor in status.
    let out = orphans(&setup, true, &[]);
    assert!(text(&out).contains("no orphans"), "{}", text(&out));
    let st = setup.status();
    assert_eq!(
        st["files"][0]["possible_orphans"].as_array().unwrap().len(),
        0,
        "{st:#}"
    );
}
