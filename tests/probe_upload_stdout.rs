//! `ingestd upload` whose stdout cannot be written (`/dev/full`, a pipe whose reader left; session
//! 5 probe): it used to panic in `println!` after the first upload and abort (exit 134, the other
//! files killed mid-upload). The uploads are unaffected: a reader that left is exit 0, a full
//! device is reported once at the end (exit 1, as every command does: `cli::stdout`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::{Opts, Setup, file_row, sha256_file, video, videos};
use common::{Emulator, bin};

const T: Duration = Duration::from_secs(60);

#[test]
fn upload_with_stdout_on_dev_full_uploads_every_file_and_says_so_at_the_end() {
    let em = Emulator::start();
    let s = Setup::new(&em, Opts::default());
    let files: Vec<_> = (0..3)
        .map(|i| s.drop_file(&format!("f{i}.mp4"), 200_000 + i, i))
        .collect();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(bin())
        .args(["upload", "--config"])
        .arg(&s.config)
        .args(&files)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot write to standard output: No space left on device"),
        "{stderr}"
    );
    let st = s.wait_done(files.len(), T);
    for f in &files {
        let row = file_row(&st, f).unwrap();
        let v = video(&em, row["video_id"].as_str().unwrap());
        assert_eq!(v["sha256"].as_str(), Some(&*sha256_file(f)), "{v:#}");
    }
    assert_eq!(videos(&em).len(), files.len());
}
