//! The status page in a real browser: headless Chromium (Debian's `chromium`) loads `/` from
//! the real `ingestd run` while a throttled upload (emulator fault plan, 1 MiB/s) is in flight,
//! and the rendered DOM must show the file with a progress bar that has moved; after the upload
//! the page shows its `videoId`. The page never contains the upload token. The screenshot is
//! kept as an artifact: `target/status-page.png`.
//!
//! Chromium is required: CI installs it (`apt-get install chromium`); without it this test fails.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;
mod metrics_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Emulator;
use metrics_support::{Daemon, name, request, wait_for};

const MIB: usize = 1024 * 1024;
const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> PathBuf {
    let path = std::env::var_os("INGESTD_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMIUM));
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium package (apt-get install chromium), or set \
         INGESTD_TEST_CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=…`); returns stdout.
fn browse(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `value` attribute of `<progress id="progress-{id}" …>` in `dom`.
fn progress_value(dom: &str, id: i64) -> Option<u64> {
    let tag = &dom[dom.find(&format!("<progress id=\"progress-{id}\""))?..];
    let tag = &tag[..tag.find('>')?];
    let v = &tag[tag.find("value=\"")? + 7..];
    v[..v.find('"')?].parse().ok()
}

fn artifact() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png")
}

#[test]
fn chromium_shows_an_upload_in_progress_then_its_video_id() {
    let em = Emulator::start();
    let d = Daemon::start(&em);
    let url = format!("http://{}/", d.addr);
    let r = request(
        &em.addr(),
        "POST",
        "/_emulator/faults",
        Some(r#"[{"path":"/upload","count":100,"action":"throttle","bytes_per_sec":1048576}]"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let file = d.drop_file("clip-under-test.mp4", 12 * MIB);
    let file_name = name(&file);
    let id = wait_for("the upload to start and make progress", || {
        let s = d.status();
        let u = s["uploading"].as_array()?.first()?.clone();
        (u["sent"].as_u64()? > 0).then(|| u["id"].as_i64())?
    });

    let dom = browse(&url, &["--dump-dom"]);
    assert!(dom.contains(&file_name), "file not on the page:\n{dom}");
    let value =
        progress_value(&dom, id).unwrap_or_else(|| panic!("no progress bar for #{id}:\n{dom}"));
    assert!(
        value > 0 && value < (12 * MIB) as u64,
        "progress {value} of {}",
        12 * MIB
    );
    assert!(dom.contains(&format!("max=\"{}\"", 12 * MIB)), "{dom}");
    assert!(dom.contains("/s</td>"), "no rate:\n{dom}");
    assert!(dom.contains(&d.inbox.display().to_string()), "root missing");
    // The token is `unknown` until the first response accepts it, then `ok`.
    assert!(
        dom.contains("Upload token: <span class=\"badge unknown\" data-state=\"unknown\">")
            || dom.contains("Upload token: <span class=\"badge ok\" data-state=\"ok\">"),
        "token state missing:\n{dom}"
    );
    assert!(!dom.contains(&d.token), "the upload token is on the page");

    let png = artifact();
    let _ = std::fs::remove_file(&png);
    browse(
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,900",
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");

    // Let it finish: the page lists it with its videoId.
    let r = request(&em.addr(), "DELETE", "/_emulator/faults", None);
    assert_eq!(r.status, 204, "{}", r.body);
    let video_id = wait_for("the upload to finish", || {
        let s = d.status();
        s["recent"].as_array()?.first()?["video_id"]
            .as_str()
            .map(str::to_owned)
    });
    let dom = browse(&url, &["--dump-dom"]);
    assert!(
        dom.contains(&format!("<td class=\"video-id\">{video_id}</td>")),
        "no videoId {video_id}:\n{dom}"
    );
    assert!(dom.contains("Nothing is uploading."), "{dom}");
    assert!(dom.contains("data-state=\"ok\""), "token accepted:\n{dom}");
    assert!(!dom.contains(&d.token), "the upload token is on the page");
}
