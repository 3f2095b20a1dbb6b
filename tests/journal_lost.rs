//! A lost journal must not mean a second upload (issue 12): a journal emptied to 0 bytes, or
//! replaced by a file without ingestd's schema, is refused by `run`, `upload` and `status`
//! (exit 78, the file untouched) with the way to start afresh on purpose; removed on purpose,
//! a new journal is created.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, videos};

const WAIT: Duration = Duration::from_secs(60);

fn ingestd(setup: &Setup, args: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .env_remove("APIVIDEO_API_KEY")
        .output()
        .unwrap()
}

#[test]
fn emptied_journal_is_refused_with_exit_78_and_no_second_upload() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let clip = setup.drop_file("clip.mp4", 1024 * 1024, 1);
    let mut d = setup.start();
    setup.wait_done(1, WAIT);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());
    assert_eq!(videos(&em).len(), 1);

    let journal = setup.dir.join("journal.sqlite");
    std::fs::write(&journal, b"").unwrap();
    for args in [
        &["run"][..],
        &["status"],
        &["upload", clip.to_str().unwrap()],
    ] {
        let out = ingestd(&setup, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {stderr}");
        assert!(
            stderr.contains("empty (0 bytes)") && stderr.contains("To start afresh on purpose"),
            "{args:?}: {stderr}"
        );
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0, "{args:?}");
    }
    // A SQLite database without ingestd's schema is refused the same way.
    std::fs::remove_file(&journal).unwrap();
    empty_sqlite_database(&journal);
    let out = ingestd(&setup, &["run"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ingestd schema"));
    assert_eq!(videos(&em).len(), 1, "nothing uploaded again");

    // Removed on purpose: a new journal (here, without an API key, the file is uploaded again).
    std::fs::remove_file(&journal).unwrap();
    let mut d = setup.start();
    setup.wait_done(1, WAIT);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(WAIT).unwrap().success());
}

/// An empty SQLite database (what `sqlite3 FILE 'VACUUM'` leaves): a valid header, no schema.
fn empty_sqlite_database(path: &std::path::Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0; VACUUM;")
        .unwrap();
    assert!(std::fs::metadata(path).unwrap().len() > 0);
}
