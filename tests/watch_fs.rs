//! The watcher on a real filesystem (tempdir, the real inotify backend, settle 300 ms) with a fake
//! sink recording calls. Every wait polls a condition with a timeout; no fixed sleeps decide a
//! result.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod watch_support;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingestd::config::{DEFAULT_EXCLUDE, DEFAULT_INCLUDE, WatchConfig, WatchMode};
use ingestd::watch::{self, Health, Mode, SpawnOptions, WatchHandle};
use tokio_util::sync::CancellationToken;
use watch_support::{FakeSink, wait_until};

const SETTLE: Duration = Duration::from_millis(300);
const T: Duration = Duration::from_secs(20);

fn cfg(root: &Path, mode: WatchMode) -> WatchConfig {
    WatchConfig {
        path: root.to_owned(),
        recursive: true,
        include: DEFAULT_INCLUDE.iter().map(|s| s.to_string()).collect(),
        exclude: DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect(),
        settle: SETTLE,
        mode,
        poll_interval: Duration::from_millis(200),
        // Long: tests that rely on a rescan trigger it themselves.
        rescan_interval: Duration::from_secs(3600),
        follow_symlinks: false,
        follow_symlinks_outside: false,
        // Off on purpose: these tests write pseudo-random bytes and are about events, scans and
        // settle; the container check has its own tests (tests/container.rs).
        check_container: false,
        incomplete_after: Duration::from_secs(3600),
        tags: vec![],
        metadata: vec![],
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sink: Arc<FakeSink>,
    handle: WatchHandle,
    stop: CancellationToken,
}

impl Rig {
    /// A watcher over `<tempdir>/root` after `prepare` ran on that path.
    async fn start(
        mode: WatchMode,
        opts: SpawnOptions,
        tune: impl FnOnce(&mut WatchConfig),
        prepare: impl FnOnce(&Path),
    ) -> Rig {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("ingestd=debug")
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        prepare(&root);
        let mut c = cfg(&root, mode);
        tune(&mut c);
        let sink = Arc::new(FakeSink::default());
        let stop = CancellationToken::new();
        let handle = watch::spawn_with(vec![c], sink.clone(), stop.clone(), opts);
        tokio::time::timeout(T, handle.initial_scan_done())
            .await
            .expect("initial scan");
        Rig {
            _dir: dir,
            root,
            sink,
            handle,
            stop,
        }
    }

    async fn events(prepare: impl FnOnce(&Path)) -> Rig {
        Rig::start(WatchMode::Events, SpawnOptions::default(), |_| {}, prepare).await
    }

    async fn queued(&self, p: &Path) {
        let sink = self.sink.clone();
        wait_until(T, &format!("{} queued", p.display()), || {
            sink.queued_at(p).is_some()
        })
        .await;
    }

    async fn health(&self, want: Health) {
        let h = &self.handle;
        wait_until(T, &format!("health {want}"), || {
            h.status()[0].health == want
        })
        .await;
    }

    async fn finish(self) {
        self.stop.cancel();
        tokio::time::timeout(T, self.handle.join())
            .await
            .expect("join after shutdown");
    }
}

fn write(p: &Path, data: &[u8]) {
    fs::write(p, data).unwrap();
}

fn mkroot(p: &Path) {
    fs::create_dir_all(p).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_file_is_seen_then_stable_after_settle() {
    let rig = Rig::events(mkroot).await;
    assert_eq!(rig.handle.status()[0].mode, Mode::Events);
    let p = rig.root.join("clip.mp4");
    let written = Instant::now();
    write(&p, b"video");
    rig.queued(&p).await;
    let at = rig.sink.queued_at(&p).unwrap();
    assert!(at >= written + SETTLE, "stable before settle elapsed");
    assert!(rig.sink.was_seen(&p));
    // Not an included name, and a hidden directory: never reported.
    write(&rig.root.join("notes.txt"), b"x");
    fs::create_dir(rig.root.join(".hidden")).unwrap();
    write(&rig.root.join(".hidden/secret.mp4"), b"x");
    let q = rig.root.join("second.mov");
    write(&q, b"more");
    rig.queued(&q).await;
    assert!(!rig.sink.was_seen(&rig.root.join("notes.txt")));
    assert!(!rig.sink.was_seen(&rig.root.join(".hidden/secret.mp4")));
    assert_eq!(rig.sink.queued_count(&p), 1);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appending_writer_is_not_stable_until_it_stops() {
    let rig = Rig::events(mkroot).await;
    let p = rig.root.join("growing.mkv");
    let mut f = fs::File::create(&p).unwrap();
    // Instants taken just before each write: the change happened after them.
    let mut writes = Vec::new();
    for _ in 0..20 {
        writes.push(Instant::now());
        f.write_all(&[7u8; 1000]).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(f);
    let sink = rig.sink.clone();
    wait_until(T, "final size queued", || {
        sink.with(|l| {
            l.queued
                .iter()
                .any(|(o, _)| o.path == p && o.identity.size == 20_000)
        })
    })
    .await;
    // Every stable report (a stalled writer may legitimately produce an early one) came at
    // least `settle` after the write that produced the reported size.
    for (o, at) in rig.sink.with(|l| l.queued.clone()) {
        let k = (o.identity.size / 1000) as usize;
        assert!(k >= 1, "an empty file was reported stable");
        assert!(
            at >= writes[k - 1] + SETTLE,
            "stable {:?} after the write of size {}",
            at - writes[k - 1],
            o.identity.size
        );
    }
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_scan_finds_files_created_before_start() {
    let rig = Rig::events(|root| {
        mkroot(&root.join("a/b"));
        write(&root.join("top.mp4"), b"1");
        write(&root.join("a/mid.mov"), b"2");
        write(&root.join("a/b/deep.MKV"), b"3");
        write(&root.join("a/b/skip.part"), b"4");
    })
    .await;
    // Reported by the time initial_scan_done resolved.
    for f in ["top.mp4", "a/mid.mov", "a/b/deep.MKV"] {
        assert!(rig.sink.was_seen(&rig.root.join(f)), "{f} not seen");
    }
    assert!(!rig.sink.was_seen(&rig.root.join("a/b/skip.part")));
    for f in ["top.mp4", "a/mid.mov", "a/b/deep.MKV"] {
        rig.queued(&rig.root.join(f)).await;
    }
    assert_eq!(rig.handle.status()[0].watches, 3);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_file_waits_until_written() {
    let rig = Rig::events(mkroot).await;
    let p = rig.root.join("empty.mp4");
    write(&p, b"");
    let sink = rig.sink.clone();
    wait_until(T, "empty file seen", || sink.was_seen(&p)).await;
    // Several settle periods pass (observed through the status) without a stable report.
    let h = &rig.handle;
    let until = Instant::now() + 4 * SETTLE;
    wait_until(T, "time passes", || Instant::now() > until).await;
    assert_eq!(h.status()[0].settling, 1);
    assert!(rig.sink.queued_at(&p).is_none());
    write(&p, b"now some data");
    rig.queued(&p).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_mode_finds_files_without_events() {
    let rig = Rig::start(WatchMode::Poll, SpawnOptions::default(), |_| {}, mkroot).await;
    let st = &rig.handle.status()[0];
    assert_eq!((st.mode, st.watches), (Mode::Poll, 0));
    fs::create_dir(rig.root.join("sub")).unwrap();
    let p = rig.root.join("sub/polled.mp4");
    write(&p, b"data");
    rig.queued(&p).await;
    // A deleted settling file is reported gone by the settle check.
    let q = rig.root.join("short-lived.mp4");
    write(&q, b"");
    let sink = rig.sink.clone();
    wait_until(T, "empty file seen", || sink.was_seen(&q)).await;
    fs::remove_file(&q).unwrap();
    wait_until(T, "gone reported", || sink.with(|l| l.gone.contains(&q))).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_rescan_finds_files_whose_events_were_lost() {
    let rig = Rig::events(mkroot).await;
    rig.handle.set_drop_events(true);
    fs::create_dir(rig.root.join("lost")).unwrap();
    let p = rig.root.join("lost/a.mp4");
    let q = rig.root.join("b.mp4");
    write(&p, b"a");
    write(&q, b"b");
    // The overflow path: the flag the bridge raises when its channel is full.
    rig.handle.simulate_overflow();
    rig.queued(&p).await;
    rig.queued(&q).await;
    // The new directory got its watch during the rescan: events work there again.
    rig.handle.set_drop_events(false);
    let r = rig.root.join("lost/c.mp4");
    write(&r, b"c");
    rig.queued(&r).await;
    // rescan_now (SIGHUP) does the same.
    rig.handle.set_drop_events(true);
    let s = rig.root.join("d.mp4");
    write(&s, b"d");
    rig.handle.rescan_now();
    rig.queued(&s).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_event_channel_triggers_a_rescan() {
    let opts = SpawnOptions {
        event_capacity: 1,
        ..SpawnOptions::default()
    };
    let rig = Rig::start(WatchMode::Events, opts, |_| {}, mkroot).await;
    let paths: Vec<PathBuf> = (0..300)
        .map(|i| rig.root.join(format!("burst-{i}.mp4")))
        .collect();
    for p in &paths {
        write(p, b"x");
    }
    let sink = rig.sink.clone();
    wait_until(T, "every burst file queued", || {
        paths.iter().all(|p| sink.queued_at(p).is_some())
    })
    .await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_p_then_file_is_found() {
    let rig = Rig::events(mkroot).await;
    let mut want = Vec::new();
    for i in 0..20 {
        let d = rig.root.join(format!("n{i}/a/b/c"));
        fs::create_dir_all(&d).unwrap();
        let p = d.join("x.mp4");
        write(&p, b"x");
        want.push(p);
    }
    let sink = rig.sink.clone();
    wait_until(T, "every nested file queued", || {
        want.iter().all(|p| sink.queued_at(p).is_some())
    })
    .await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_delete() {
    let rig = Rig::events(mkroot).await;
    let p = rig.root.join("before.mp4");
    write(&p, b"content");
    rig.queued(&p).await;
    let q = rig.root.join("after.mp4");
    fs::rename(&p, &q).unwrap();
    let sink = rig.sink.clone();
    wait_until(T, "row follows the rename", || sink.row(&q).is_some()).await;
    // Settle time passes: no second stable report for the same file.
    fs::create_dir(rig.root.join("moved-dir")).unwrap();
    let marker = rig.root.join("moved-dir/marker.mp4");
    write(&marker, b"m");
    rig.queued(&marker).await;
    assert_eq!(rig.sink.with(|l| l.queued.len()), 2);
    // A directory moved in is scanned.
    let outside = rig._dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    write(&outside.join("in.mp4"), b"in");
    fs::rename(&outside, rig.root.join("arrived")).unwrap();
    rig.queued(&rig.root.join("arrived/in.mp4")).await;
    // Deleting a queued file reports it gone.
    fs::remove_file(&q).unwrap();
    wait_until(T, "gone", || sink.with(|l| l.gone.contains(&q))).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_limit_falls_back_to_polling() {
    let opts = SpawnOptions {
        max_watches: Some(2),
        ..SpawnOptions::default()
    };
    let rig = Rig::start(
        WatchMode::Events,
        opts,
        |_| {},
        |root| {
            for d in ["a", "b", "c", "d"] {
                mkroot(&root.join(d));
            }
            write(&root.join("d/old.mp4"), b"x");
        },
    )
    .await;
    let st = rig.handle.status()[0].clone();
    assert_eq!((st.mode, st.watches), (Mode::Poll, 0));
    rig.queued(&rig.root.join("d/old.mp4")).await;
    let p = rig.root.join("c/new.mp4");
    write(&p, b"y");
    rig.queued(&p).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_skipped_and_others_go_on() {
    let rig = Rig::start(
        WatchMode::Events,
        SpawnOptions::default(),
        |c| c.follow_symlinks = true,
        |root| {
            mkroot(&root.join("sub"));
            // A name that is not UTF-8: a file like any other (queued below).
            let bad = root.join(std::ffi::OsStr::from_bytes(b"bad-\xff.mp4"));
            write(&bad, b"x");
            // A FIFO named like a video (reading it would block forever).
            let fifo =
                std::ffi::CString::new(root.join("pipe.mp4").as_os_str().as_bytes()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
            // A symlink loop to an ancestor and a self-referencing symlink.
            std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
            std::os::unix::fs::symlink("self.mp4", root.join("self.mp4")).unwrap();
            // A symlink to a real file elsewhere in the tree.
            write(&root.join("sub/real.mp4"), b"r");
            std::os::unix::fs::symlink(root.join("sub/real.mp4"), root.join("link.mp4")).unwrap();
            write(&root.join("good.mp4"), b"g");
            // Unreadable directories: `unreadable_directory_is_skipped` (as `nobody` under root).
        },
    )
    .await;
    rig.queued(&rig.root.join("good.mp4")).await;
    rig.queued(&rig.root.join("sub/real.mp4")).await;
    // The link is another name for sub/real.mp4, inside the root: reported under the real path
    // only, so the journal keeps one row and the file is queued once.
    assert!(!rig.sink.was_seen(&rig.root.join("link.mp4")));
    rig.queued(&rig.root.join(std::ffi::OsStr::from_bytes(b"bad-\xff.mp4")))
        .await;
    assert_eq!(rig.sink.with(|l| l.queued.len()), 3);
    assert!(!rig.sink.was_seen(&rig.root.join("pipe.mp4")));
    assert!(!rig.sink.was_seen(&rig.root.join("self.mp4")));
    // Nothing was visited through the loop.
    assert!(!rig.sink.was_seen(&rig.root.join("sub/loop/good.mp4")));
    // New bad entries after start are skipped too, a new name that is not UTF-8 is queued, and
    // good files still flow.
    let fifo = std::ffi::CString::new(rig.root.join("pipe2.mp4").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let bad2 = rig.root.join(std::ffi::OsStr::from_bytes(b"bad2-\xfe.mp4"));
    write(&bad2, b"x");
    rig.queued(&bad2).await;
    std::os::unix::fs::symlink(&rig.root, rig.root.join("sub/loop2")).unwrap();
    let later = rig.root.join("later.mp4");
    write(&later, b"l");
    rig.queued(&later).await;
    assert!(!rig.sink.was_seen(&rig.root.join("sub/loop2/good.mp4")));
    assert_eq!(rig.handle.status()[0].health, Health::Ok);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_missing_at_start_then_created() {
    // No prepare: the root does not exist; initial_scan_done still resolves.
    let rig = Rig::events(|_| {}).await;
    rig.health(Health::Missing).await;
    mkroot(&rig.root);
    let p = rig.root.join("first.mp4");
    write(&p, b"1");
    rig.queued(&p).await;
    rig.health(Health::Ok).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_removed_or_replaced_by_a_file() {
    let rig = Rig::events(mkroot).await;
    let p = rig.root.join("a.mp4");
    write(&p, b"1");
    rig.queued(&p).await;
    fs::remove_dir_all(&rig.root).unwrap();
    rig.health(Health::Missing).await;
    write(&rig.root, b"not a directory");
    rig.health(Health::Error("the watch root is not a directory".into()))
        .await;
    fs::remove_file(&rig.root).unwrap();
    mkroot(&rig.root);
    let q = rig.root.join("b.mp4");
    write(&q, b"2");
    rig.queued(&q).await;
    rig.health(Health::Ok).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_errors_are_retried() {
    let rig = Rig::events(mkroot).await;
    *rig.sink.fail.lock().unwrap() = true;
    let p = rig.root.join("retry.mp4");
    write(&p, b"1");
    let until = Instant::now() + 3 * SETTLE;
    wait_until(T, "time passes", || Instant::now() > until).await;
    assert!(rig.sink.queued_at(&p).is_none());
    *rig.sink.fail.lock().unwrap() = false;
    rig.queued(&p).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_recursive_root_ignores_subdirectories() {
    let rig = Rig::start(
        WatchMode::Events,
        SpawnOptions::default(),
        |c| c.recursive = false,
        |root| {
            mkroot(&root.join("sub"));
            write(&root.join("sub/old.mp4"), b"x");
        },
    )
    .await;
    assert_eq!(rig.handle.status()[0].watches, 1);
    write(&rig.root.join("sub/new.mp4"), b"x");
    let p = rig.root.join("top.mp4");
    write(&p, b"x");
    rig.queued(&p).await;
    assert!(!rig.sink.was_seen(&rig.root.join("sub/old.mp4")));
    assert!(!rig.sink.was_seen(&rig.root.join("sub/new.mp4")));
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_directory_is_skipped() {
    // Permission bits do not stop root, and CI runs as root: then this test runs itself again
    // as `nobody` (a separate process of this test binary, through `setpriv`), which they stop.
    if unsafe { libc::geteuid() } == 0 {
        tokio::task::spawn_blocking(|| rerun_as_nobody("unreadable_directory_is_skipped"))
            .await
            .unwrap();
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let rig = Rig::events(|root| {
        mkroot(&root.join("locked"));
        write(&root.join("locked/hidden.mp4"), b"x");
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        write(&root.join("open.mp4"), b"x");
    })
    .await;
    // Really unreadable for this process (not root, not a capability): else the test proves
    // nothing.
    assert!(
        fs::read_dir(rig.root.join("locked")).is_err(),
        "the locked directory is readable: the test runs with privileges"
    );
    rig.queued(&rig.root.join("open.mp4")).await;
    assert!(!rig.sink.was_seen(&rig.root.join("locked/hidden.mp4")));
    assert_eq!(rig.handle.status()[0].health, Health::Ok);
    // New files elsewhere still flow after the failed directory.
    write(&rig.root.join("later.mp4"), b"y");
    rig.queued(&rig.root.join("later.mp4")).await;
    assert!(!rig.sink.was_seen(&rig.root.join("locked/hidden.mp4")));
    fs::set_permissions(rig.root.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    rig.finish().await;
}

/// Runs the test `name` of this test binary again as `nobody` (uid/gid 65534, no supplementary
/// groups) and fails if it fails. The binary is copied to a world-readable directory first when
/// `nobody` cannot reach it where it is.
fn rerun_as_nobody(name: &str) {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: &str = "65534";
    let exe = std::env::current_exe().unwrap();
    let run = |exe: &Path| {
        std::process::Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .arg(exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env("TMPDIR", "/tmp")
            .output()
            .expect("setpriv (util-linux) is needed to run this test as nobody")
    };
    let reachable = |exe: &Path| {
        std::process::Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .arg(exe)
            .arg("--list")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let copy_dir = tempfile::tempdir().unwrap();
    let exe = if reachable(&exe) {
        exe
    } else {
        fs::set_permissions(copy_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let copy = copy_dir.path().join("watch_fs");
        fs::copy(&exe, &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        copy
    };
    let out = run(&exe);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as nobody: {text}");
    // The child really ran the test (a filter matching nothing also succeeds).
    assert!(
        text.contains("1 passed"),
        "as nobody, the test did not run: {text}"
    );
}
