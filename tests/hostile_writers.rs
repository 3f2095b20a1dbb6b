//! Odd writers (issue 5 §4) into a watched folder with `settle = 1s`: each file must be uploaded
//! once, whole, and never as a prefix of what was still being written ("no partial upload").

mod common;
mod hostile_support;

use std::io::Write;
use std::time::Duration;

use common::Emulator;
use hostile_support::*;

const WAIT: Duration = Duration::from_secs(120);

/// No complete video is a strict prefix of a final file (compared by size and SHA-256 of the
/// file's first `size` bytes).
fn assert_no_partial(em: &Emulator, files: &[(std::path::PathBuf, String)]) {
    for v in videos(em) {
        if v["complete"] != true {
            continue;
        }
        let size = v["size"].as_u64().unwrap();
        for (p, sha) in files {
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            if size < len {
                use sha2::Digest;
                let data = std::fs::read(p).unwrap();
                let prefix = hex::encode(sha2::Sha256::digest(&data[..size as usize]));
                assert_ne!(
                    v["sha256"].as_str(),
                    Some(prefix.as_str()),
                    "partial upload of {}",
                    p.display()
                );
            }
            let _ = sha;
        }
    }
}

/// A slow writer: 8 pieces of 256 KiB with 400 ms pauses (shorter than settle), then close.
/// One upload of the whole file.
#[test]
fn slow_writer_with_pauses_shorter_than_settle() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let _d = setup.start("");
    let p = setup.inbox.join("slow.mp4");
    let mut f = std::fs::File::create(&p).unwrap();
    for i in 0..8u8 {
        f.write_all(&vec![i.wrapping_mul(37); 256 * 1024]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(f);
    let files = vec![(p.clone(), sha256_file(&p))];
    setup.wait_settled(1, WAIT);
    check_invariants(&setup, &em, &files);
    assert_no_partial(&em, &files);
    assert_eq!(videos(&em).len(), 1);
}

/// Written as `name.part` (excluded), then renamed to `name.mp4`: uploaded once, as `name.mp4`.
#[test]
fn part_file_renamed_when_finished() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let _d = setup.start("");
    let part = setup.inbox.join("rec.mp4.part");
    write_file(&part, 2 * MIB, 3);
    std::thread::sleep(Duration::from_millis(1500)); // longer than settle: .part must stay ignored
    let p = setup.inbox.join("rec.mp4");
    std::fs::rename(&part, &p).unwrap();
    let files = vec![(p.clone(), sha256_file(&p))];
    setup.wait_settled(1, WAIT);
    check_invariants(&setup, &em, &files);
    let vids = videos(&em);
    assert_eq!(vids.len(), 1);
    assert_eq!(vids[0]["title"], "rec.mp4");
}

/// `cp -p` keeps an old mtime (a camera clock in 2001): the settle is measured on the monotonic
/// clock, so the copy is uploaded once, after it is complete.
#[test]
fn cp_preserving_old_mtime() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let src = tmp.path().join("orig.mp4");
    write_file(&src, 7 * MIB, 5);
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let _d = setup.start("");
    let p = setup.inbox.join("orig.mp4");
    let st = std::process::Command::new("cp")
        .arg("-p")
        .arg(&src)
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    let files = vec![(p.clone(), sha256_file(&p))];
    setup.wait_settled(1, WAIT);
    check_invariants(&setup, &em, &files);
    assert_no_partial(&em, &files);
}

/// Preallocated to its full size (as Samba does), then filled: the upload holds the filled
/// content, not the zeros.
#[test]
fn preallocate_then_fill() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let _d = setup.start("");
    let p = setup.inbox.join("samba.mp4");
    let mut f = std::fs::File::create(&p).unwrap();
    f.set_len(2 * MIB).unwrap();
    for i in 0..8u8 {
        f.write_all(&vec![i + 1; 256 * 1024]).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(f);
    let files = vec![(p.clone(), sha256_file(&p))];
    setup.wait_settled(1, WAIT);
    check_invariants(&setup, &em, &files);
    assert_eq!(videos(&em).len(), 1);
}

/// MP4 "faststart": written, closed, then rewritten whole through a temp file and a rename. The
/// final content is uploaded; a video of the first version may exist only if it was complete
/// before the rewrite (it is then a whole file, never a prefix).
#[test]
fn faststart_rewrite_via_temp_and_rename() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let _d = setup.start("");
    let p = setup.inbox.join("fast.mp4");
    write_file(&p, 3 * MIB, 11);
    let t = setup.inbox.join(".fast.mp4.tmp");
    write_file(&t, 3 * MIB, 12);
    std::fs::rename(&t, &p).unwrap();
    let files = vec![(p.clone(), sha256_file(&p))];
    let st = setup.wait_settled(1, WAIT);
    let done = st["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["state"] == "done" && f["sha256"].as_str() == Some(files[0].1.as_str()));
    assert!(done, "the final content is uploaded: {st:#}");
    assert_no_partial(&em, &files);
    check_logs(&setup);
}

/// The same name written again after its upload: a new video; the old one stays untouched.
#[test]
fn same_name_written_again_after_upload() {
    let em = Emulator::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(tmp.path(), &em, &Opts::default());
    let _d = setup.start("");
    let p = setup.inbox.join("again.mp4");
    write_file(&p, MIB, 21);
    let first = sha256_file(&p);
    setup.wait_settled(1, WAIT);
    let before = videos(&em);
    assert_eq!(before.len(), 1);
    std::fs::remove_file(&p).unwrap();
    write_file(&p, MIB + 5, 22);
    let second = sha256_file(&p);
    let until = std::time::Instant::now() + WAIT;
    loop {
        let vids = videos(&em);
        if vids
            .iter()
            .any(|v| v["sha256"].as_str() == Some(second.as_str()))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "second version not uploaded: {vids:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let vids = videos(&em);
    assert_eq!(vids.len(), 2, "{vids:#?}");
    assert_eq!(vids[0]["videoId"], before[0]["videoId"]);
    assert_eq!(
        vids[0]["sha256"].as_str(),
        Some(first.as_str()),
        "the old video is untouched"
    );
    check_logs(&setup);
}
