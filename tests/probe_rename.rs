//! A file renamed inside its watch root while it uploads (session 5 probe): the watcher moves
//! the row to the new path, and the upload goes on there into the same video. It used to be
//! taken for a deletion: the row went `gone` ("the file was deleted during its upload … not
//! retried") and stayed so until a restart or the next full rescan.

mod common;

use std::time::Duration;

use common::Emulator;
use common::daemon::{
    MIB5, Opts, Setup, cap_upload_connections, file_row, sha256_file, video, videos,
};

const T: Duration = Duration::from_secs(90);

#[test]
fn a_file_renamed_during_its_upload_finishes_from_its_new_path() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    std::fs::create_dir(s.inbox.join("sub")).unwrap();
    // Three chunks at 3 MB/s: the rename lands while the second or third is sent.
    cap_upload_connections(&em, 3_000_000);
    let mut d = s.start();
    let old = s.drop_file("take.mp4", 2 * MIB5 + 1_000_000, 3);
    s.wait_for("the first chunk acknowledged", T, |st| {
        file_row(st, &old).is_some_and(|r| r["bytes_uploaded"].as_u64() >= Some(MIB5))
    });
    let new = s.inbox.join("sub/renamed.mp4");
    std::fs::rename(&old, &new).unwrap();
    let st = s.wait_done(1, T);
    let row = file_row(&st, &new).unwrap_or_else(|| panic!("no row at the new path: {st:#}"));
    let v = video(&em, row["video_id"].as_str().unwrap());
    assert_eq!(v["complete"], true, "{v:#}");
    assert_eq!(v["sha256"].as_str(), Some(&*sha256_file(&new)), "{v:#}");
    assert_eq!(videos(&em).len(), 1, "one video, no abandoned one");
    assert!(
        !s.log().contains("deleted during its upload"),
        "a rename is not a deletion:\n{}",
        s.log_tail(30)
    );
    d.signal(libc::SIGTERM);
    d.wait_exit(T);
}

/// The whole watch root renamed away during an upload, then back (session 5 probe: the log said
/// "the file was deleted during its upload … not retried", though the upload resumes): the log
/// says the root disappeared, and the file ends as one video, resumed into the same one.
#[test]
fn a_root_renamed_away_and_back_during_an_upload_is_not_called_a_deletion() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    cap_upload_connections(&em, 3_000_000);
    let mut d = s.start();
    let f = s.drop_file("take.mp4", 2 * MIB5 + 1_000_000, 4);
    s.wait_for("the first chunk acknowledged", T, |st| {
        file_row(st, &f).is_some_and(|r| r["bytes_uploaded"].as_u64() >= Some(MIB5))
    });
    let away = s.dir.join("away");
    std::fs::rename(&s.inbox, &away).unwrap();
    s.wait_log("disappeared during the upload", T);
    std::fs::rename(&away, &s.inbox).unwrap();
    let st = s.wait_done(1, T);
    let row = file_row(&st, &f).unwrap_or_else(|| panic!("no row: {st:#}"));
    let v = video(&em, row["video_id"].as_str().unwrap());
    assert_eq!(v["sha256"].as_str(), Some(&*sha256_file(&f)), "{v:#}");
    assert_eq!(videos(&em).len(), 1, "resumed into the same video");
    assert!(
        !s.log().contains("deleted during its upload"),
        "a root gone is not a deletion:\n{}",
        s.log_tail(30)
    );
    d.signal(libc::SIGTERM);
    d.wait_exit(T);
}
