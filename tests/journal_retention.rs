//! Retention (issue 12): `ingestd prune --done-before` forgets uploaded files; one still in place
//! keeps a tombstone, so the next daemon's scan finds it done instead of uploading it again; a
//! deleted file leaves nothing.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, count, videos};

const WAIT: Duration = Duration::from_secs(60);

fn prune(setup: &Setup, done_before: &str) -> String {
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&setup.config)
        .args(["prune", "--done-before", done_before])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn pruned_files_still_in_place_are_not_uploaded_again() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    setup.drop_file("a.mp4", 300_000, 1);
    let b = setup.drop_file("b.mp4", 200_000, 2);
    let mut d = setup.start();
    setup.wait_done(2, WAIT);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());

    // Nothing was uploaded a day ago.
    assert!(prune(&setup, "1d").starts_with("pruned 0 done files"));
    std::fs::remove_file(&b).unwrap();
    let text = prune(&setup, "0s");
    assert!(
        text.starts_with("pruned 2 done files") && text.contains("(1 tombstone for"),
        "{text}"
    );
    let st = setup.status();
    assert_eq!(st["files"].as_array().unwrap().len(), 0, "{st:#}");

    // b.mp4 comes back with other content: a new file. a.mp4 is still there: done, not again.
    setup.drop_file("b.mp4", 100_000, 3);
    let mut d = setup.start();
    let st = setup.wait_done(2, WAIT);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());
    assert_eq!(count(&st, "done"), 2);
    assert_eq!(
        videos(&em).len(),
        3,
        "a.mp4 once, b.mp4 twice (two contents)"
    );
}

/// `[journal] keep_done` is re-read on SIGHUP: set on a running daemon that started without it,
/// it prunes at once (then hourly) the done rows older than it.
#[test]
fn keep_done_set_by_a_reload_prunes_at_once() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    setup.drop_file("a.mp4", 300_000, 1);
    let mut d = setup.start();
    setup.wait_done(1, WAIT);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());
    // Uploaded two hours ago, as far as the journal knows.
    rusqlite::Connection::open(setup.dir.join("journal.sqlite"))
        .unwrap()
        .execute("UPDATE files SET done_at = done_at - 7200000", [])
        .unwrap();

    let mut d = setup.start();
    // The log keeps the first run: wait for the second one's signal handlers.
    let start = std::time::Instant::now();
    while setup.log().matches("ingestd is running").count() < 2 {
        assert!(start.elapsed() < WAIT, "{}", setup.log_tail(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = setup
        .config_text()
        .replacen("[journal]\n", "[journal]\nkeep_done = \"1h\"\n", 1);
    std::fs::write(&setup.config, text).unwrap();
    d.signal(libc::SIGHUP);
    setup.wait_log("pruned done files from the journal", WAIT);
    let st = setup.status();
    assert_eq!(st["files"].as_array().unwrap().len(), 0, "{st:#}");
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());
    assert_eq!(videos(&em).len(), 1);
}
