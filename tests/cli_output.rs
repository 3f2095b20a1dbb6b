//! A hostile standard output never makes a command panic (issue 13 follow-up, CLI hardening):
//! every command writes through one helper (`cli::stdout`). With the real binary: a reader that
//! closed the pipe before the first write (`… | head -1` that has read enough) ends the command
//! with exit 0 and nothing on stderr; `> /dev/full` is a clear error with exit 1; a closed
//! stdout (`>&-`) is `/dev/null` to the command (Rust reopens it there): exit 0. Files land in a journal that `explain`, `status` and `retry` read.

mod common;

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Emulator;
use common::daemon::{Opts, Setup};

/// The stdouts a command meets in the wild.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A pipe whose reader is gone: every write fails with EPIPE.
    ClosedPipe,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// `>&-`: no fd 1 at all.
    Closed,
}

fn run(args: &[&str], config: &Path, how: Hostile) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.args(args).arg("--config").arg(config);
    run_cmd(cmd, how)
}

/// Runs `cmd` with the hostile stdout `how` (stderr captured).
fn run_cmd(mut cmd: Command, how: Hostile) -> Output {
    cmd.stderr(Stdio::piped()).stdin(Stdio::null());
    match how {
        Hostile::ClosedPipe => {
            let mut fds = [0i32; 2];
            // SAFETY: pipe fills two fresh descriptors, owned right after.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: both are open and ours; the reader is closed at once.
            let (reader, writer) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            drop(reader);
            cmd.stdout(Stdio::from(writer));
        }
        Hostile::Full => {
            cmd.stdout(Stdio::from(
                File::options().write(true).open("/dev/full").unwrap(),
            ));
        }
        Hostile::Closed => {
            cmd.stdout(Stdio::null());
            // SAFETY: close is async-signal-safe; it runs in the child after the stdio setup,
            // right before exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::close(1);
                    Ok(())
                });
            }
        }
    }
    cmd.output().unwrap()
}

/// Every command that prints, with each hostile stdout.
#[test]
fn every_command_survives_a_hostile_stdout() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    let clip = setup.inbox.join("clip.mp4");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/faststart.mp4"),
        &clip,
    )
    .unwrap();
    // One uploaded file, so that `explain` and `status --all` have lines to print.
    let up = Command::new(common::bin())
        .args(["upload"])
        .arg(&clip)
        .arg("--config")
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let clip = clip.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["check-config"],
        vec!["explain", clip],
        vec!["status"],
        vec!["status", "--all"],
        vec!["status", "--json"],
        vec!["retry", "--failed"],
        vec!["prune", "--done-before", "90d"],
        vec!["upload", clip],
    ];
    for args in &commands {
        for how in [Hostile::ClosedPipe, Hostile::Full, Hostile::Closed] {
            let out = run(args, &setup.config, how);
            let err = String::from_utf8_lossy(&out.stderr);
            let what = format!("{args:?} with {how:?}: {:?}\n{err}", out.status);
            assert!(!err.contains("panicked"), "{what}");
            match how {
                Hostile::ClosedPipe => {
                    assert_eq!(out.status.code(), Some(0), "{what}");
                    assert!(!err.contains("standard output"), "{what}");
                }
                Hostile::Full => {
                    assert_eq!(out.status.code(), Some(1), "{what}");
                    assert!(err.contains("cannot write to standard output"), "{what}");
                }
                Hostile::Closed => {
                    assert_eq!(out.status.code(), Some(0), "{what}");
                    assert!(!err.contains("standard output"), "{what}");
                }
            }
        }
    }
}

/// clap's own output (`--help`, `--version`, `help CMD`) follows the same rules (session 6): it
/// used to exit 0 on `/dev/full`, clap ignoring the failed write.
#[test]
fn help_and_version_survive_a_hostile_stdout() {
    let commands: [&[&str]; 5] = [
        &["--help"],
        &["--version"],
        &["help", "status"],
        &["status", "--help"],
        &["-h"],
    ];
    for args in commands {
        let mut plain = Command::new(common::bin());
        plain.args(args);
        let out = plain.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
        for how in [Hostile::ClosedPipe, Hostile::Full, Hostile::Closed] {
            let mut cmd = Command::new(common::bin());
            cmd.args(args);
            let out = run_cmd(cmd, how);
            let err = String::from_utf8_lossy(&out.stderr);
            let what = format!("{args:?} with {how:?}: {:?}\n{err}", out.status);
            assert!(!err.contains("panicked"), "{what}");
            match how {
                Hostile::Full => {
                    assert_eq!(out.status.code(), Some(1), "{what}");
                    assert_eq!(
                        err.trim_end(),
                        "ingestd: cannot write to standard output: No space left on device (os error 28)",
                        "{what}"
                    );
                }
                Hostile::ClosedPipe | Hostile::Closed => {
                    assert_eq!(out.status.code(), Some(0), "{what}");
                    assert!(err.is_empty(), "{what}");
                }
            }
        }
    }
    // A usage error stays clap's: its message on stderr, exit 2.
    let out = Command::new(common::bin())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}
