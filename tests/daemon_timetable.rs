//! `[upload] max_rate` as an rclone timetable in the real daemon: `status --json` (and the table)
//! show the rate in force and its next change, SIGUSR2 lifts the limit and brings it back, and a
//! SIGHUP with a flat rate replaces the timetable at once. Independent of the machine's time
//! zone: the timetable has two rates 12 hours apart, so one of them is always in force and the
//! other comes within 12 hours. And the switch itself: a daemon with a `TZ` whose offset has
//! seconds, so that the next local minute (the change) is a few seconds away.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use common::Emulator;
use common::daemon::{Daemon, Opts, Setup};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const K: u64 = 1024;

fn with_rate(setup: &Setup, rate: &str) {
    let text = setup
        .config_text()
        .replace("[upload]\n", &format!("[upload]\nmax_rate = \"{rate}\"\n"));
    std::fs::write(&setup.config, text).unwrap();
}

fn rate(s: &Value) -> &Value {
    &s["rate"]
}

fn unix(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"));
    t.unix_timestamp()
}

#[test]
fn status_shows_the_rate_in_force_and_sigusr2_toggles_it() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    with_rate(&setup, "00:00,64k 12:00,128k");
    let d = setup.start();

    let s = setup.wait_for("the daemon's rate record", T, |s| {
        rate(s)["source"] == "daemon"
    });
    let r = rate(&s);
    let now = r["bytes_per_second"].as_u64().unwrap();
    let next = r["next_bytes_per_second"].as_u64().unwrap();
    assert!(
        (now, next) == (64 * K, 128 * K) || (now, next) == (128 * K, 64 * K),
        "{r}"
    );
    assert_eq!(r["limited"], true);
    assert_eq!(r["bypassed"], false);
    assert_eq!(r["timetable"], "00:00,64k 12:00,128k");
    let secs_to_change = unix(r["next_change_at"].as_str().unwrap())
        - SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
    assert!(
        (0..=12 * 3600 + 5).contains(&secs_to_change),
        "next change in {secs_to_change} s: {r}"
    );
    let table = Command::new(env!("CARGO_BIN_EXE_ingestd"))
        .args(["status", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("rate: 64 KiB/s until ") || table.contains("rate: 128 KiB/s until "),
        "{table}"
    );

    d.signal(libc::SIGUSR2);
    let s = setup.wait_for("SIGUSR2 lifting the limit", T, |s| {
        rate(s)["bypassed"] == true
    });
    assert_eq!(rate(&s)["limited"], false);
    assert_eq!(
        rate(&s)["bytes_per_second"],
        now,
        "the timetable is still followed underneath"
    );
    setup.wait_log("SIGUSR2: bandwidth limit off until the next SIGUSR2", T);

    d.signal(libc::SIGUSR2);
    setup.wait_for("SIGUSR2 bringing the limit back", T, |s| {
        rate(s)["bypassed"] == false && rate(s)["limited"] == true
    });
    setup.wait_log("SIGUSR2: bandwidth limit back on", T);

    // A reload with a flat rate: no timetable, no next change.
    with_rate(&setup, "3 MiB");
    d.signal(libc::SIGHUP);
    let s = setup.wait_for("the reloaded flat rate", T, |s| {
        rate(s)["bytes_per_second"] == 3 * 1024 * K
    });
    assert_eq!(rate(&s)["timetable"], Value::Null);
    assert_eq!(rate(&s)["next_change_at"], Value::Null);
    drop(d);
}

#[test]
fn without_a_daemon_status_computes_the_rate_from_the_configuration() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    with_rate(&setup, "Sun-00:00,1M");
    let s = setup.status();
    assert_eq!(rate(&s)["source"], "config");
    assert_eq!(rate(&s)["bytes_per_second"], 1024 * K);
    assert_eq!(rate(&s)["next_change_at"], Value::Null);
}

#[test]
fn the_rate_changes_at_the_local_minute_the_timetable_says() {
    let em = Emulator::start();
    let setup = Setup::new(&em, Opts::default());
    // Local time = UTC + offset, with the local second at 45 now: the change is 15 s away.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let offset = (45 + 120 - now % 60) % 60;
    let local = now + offset;
    let hhmm = |t: u64| format!("{:02}:{:02}", t / 3600 % 24, t / 60 % 60);
    let (t0, t1) = (hhmm(local), hhmm(local + 60));
    with_rate(&setup, &format!("{t0},64k {t1},128k"));
    let log = std::fs::File::create(setup.dir.join("daemon.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ingestd"))
        .args(["run", "--config"])
        .arg(&setup.config)
        // POSIX TZ offsets are west-positive: "-0:00:SS" is SS seconds east of UTC.
        .env("TZ", format!("TST-0:00:{offset:02}"))
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _d = Daemon { child };

    let s = setup.wait_for("the first rate", T, |s| rate(s)["source"] == "daemon");
    assert_eq!(rate(&s)["bytes_per_second"], 64 * K, "{s}");
    assert_eq!(rate(&s)["next_bytes_per_second"], 128 * K);
    let change = unix(rate(&s)["next_change_at"].as_str().unwrap());
    assert_eq!(
        change as u64,
        now + 15,
        "the start of local minute {t1}: {s}"
    );
    setup.wait_for("the timetable's change", T, |s| {
        rate(s)["bytes_per_second"] == 128 * K
    });
    setup.wait_log("upload rate now 128 KiB/s (max_rate timetable)", T);
}
