//! Finished recordings only (issue 13), with `ingestd run` against the real local endpoint and
//! files with real container structure (`ingestd::watch::container::sample`, and the ffmpeg-made
//! files in `tests/data/`):
//! - writers that pause 5× longer than settle in the middle of an MP4, a MOV and an MKV (the way
//!   a muxer writes: an open `mdat` / an unknown-size Segment, patched when it finishes) end as
//!   exactly one video of the whole file, and `status` says why each waited;
//! - an MP4 without `moov` and one with an open `mdat` are never uploaded: they wait with the
//!   reason, fail with `incomplete-container` after `incomplete_after`, and
//!   `ingestd retry ID --anyway` uploads them as they are;
//! - real ffmpeg files written in two parts with a pause of 5× settle, fragmented ones cut at a
//!   fragment boundary (a whole-looking prefix), end as one video of the whole file;
//! - complete MP4 (moov first and last), MOV, MKV, WebM, TS and M2TS files are uploaded once;
//! - `ingestd upload FILE` checks files outside the roots too (`--no-check-container` does not).
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, assert_uploaded_once, file_row, video_id, videos};
use ingestd::watch::container::sample;

const T: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(1);

/// A setup watching every container extension, with `incomplete_after`.
fn setup(em: &Emulator, incomplete_after: &str) -> Setup {
    let setup = Setup::new(em, Opts::default());
    let text = setup.config_text().replace(
        "include = [\"*.mp4\"]",
        &format!(
            "include = [\"*.mp4\", \"*.mov\", \"*.mkv\", \"*.webm\", \"*.ts\", \"*.m2ts\"]\n\
             incomplete_after = \"{incomplete_after}\""
        ),
    );
    std::fs::write(&setup.config, text).unwrap();
    setup
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| i.to_le_bytes()[0].wrapping_mul(31) ^ seed)
        .collect()
}

/// The reason `status` gives for `path` while it waits, if it waits as incomplete.
fn waiting_reason(s: &serde_json::Value, path: &Path) -> Option<String> {
    let row = file_row(s, path)?;
    (row["state"] == "settling" && row["last_error_slug"] == "incomplete-container")
        .then(|| row["last_error"].as_str().unwrap_or_default().to_owned())
}

/// A recorder writing an MP4/MOV the way ffmpeg does: `ftyp`, an open `mdat` (size 0), media
/// data; on finish the `mdat` size is patched and the `moov` appended.
struct Mp4Writer {
    f: std::fs::File,
    mdat_at: u64,
    written: u64,
}

impl Mp4Writer {
    fn create(path: &Path, mov: bool) -> Mp4Writer {
        let mut f = std::fs::File::create(path).unwrap();
        let ftyp = sample::ftyp(if mov { b"qt  " } else { b"isom" });
        f.write_all(&ftyp).unwrap();
        f.write_all(&[0, 0, 0, 0, b'm', b'd', b'a', b't']).unwrap();
        Mp4Writer {
            f,
            mdat_at: ftyp.len() as u64,
            written: 0,
        }
    }
    fn media(&mut self, b: &[u8]) {
        self.f.write_all(b).unwrap();
        self.written += b.len() as u64;
    }
    fn finish(mut self) {
        let size = u32::try_from(self.written + 8).unwrap();
        self.f.seek(SeekFrom::Start(self.mdat_at)).unwrap();
        self.f.write_all(&size.to_be_bytes()).unwrap();
        self.f.seek(SeekFrom::End(0)).unwrap();
        let off = u32::try_from(self.mdat_at + 8).unwrap();
        self.f.write_all(&sample::moov(1000, Some(off))).unwrap();
    }
}

/// A recorder writing a Matroska file: the Segment size is unknown while recording and patched
/// when it finishes (as mkvmerge and ffmpeg do on a seekable output).
struct MkvWriter {
    f: std::fs::File,
    size_at: u64,
    written: u64,
}

impl MkvWriter {
    fn create(path: &Path) -> MkvWriter {
        let mut f = std::fs::File::create(path).unwrap();
        let head = sample::ebml_header("matroska");
        f.write_all(&head).unwrap();
        f.write_all(&[0x18, 0x53, 0x80, 0x67]).unwrap();
        f.write_all(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            .unwrap();
        MkvWriter {
            f,
            size_at: head.len() as u64 + 4,
            written: 0,
        }
    }
    fn cluster(&mut self, b: &[u8]) {
        let mut block = vec![0x81, 0, 0, 0x80];
        block.extend_from_slice(b);
        let mut body = sample::ebml_element(0xE7, &[0]);
        body.extend(sample::ebml_element(0xA3, &block));
        let c = sample::ebml_element(0x1F43_B675, &body);
        self.f.write_all(&c).unwrap();
        self.written += c.len() as u64;
    }
    fn finish(mut self) {
        let cues = sample::ebml_element(0x1C53_BB6B, &[]);
        self.f.write_all(&cues).unwrap();
        let size = self.written + cues.len() as u64;
        let mut v = size.to_be_bytes();
        v[0] = 0x01;
        self.f.seek(SeekFrom::Start(self.size_at)).unwrap();
        self.f.write_all(&v).unwrap();
    }
}

/// The goal: a writer pausing 5× longer than settle in the middle of an MP4, a MOV and an MKV
/// → exactly one video of each, of the whole file; while paused, `status` says why it waits.
#[test]
fn writers_pausing_longer_than_settle_make_one_whole_video() {
    let em = Emulator::start();
    let setup = setup(&em, "1h");
    let _d = setup.start();
    let (mp4, mov, mkv) = (
        setup.inbox.join("cam.mp4"),
        setup.inbox.join("cam.mov"),
        setup.inbox.join("cam.mkv"),
    );
    let mut w1 = Mp4Writer::create(&mp4, false);
    let mut w2 = Mp4Writer::create(&mov, true);
    let mut w3 = MkvWriter::create(&mkv);
    w1.media(&payload(300_000, 1));
    w2.media(&payload(200_000, 2));
    w3.cluster(&payload(250_000, 3));
    for f in [&w1.f, &w2.f, &w3.f] {
        f.sync_all().unwrap();
    }
    let s = setup.wait_for("the three files held as incomplete", T, |s| {
        [&mp4, &mov, &mkv]
            .iter()
            .all(|p| waiting_reason(s, p).is_some())
    });
    // Held by the watcher (never queued), not sent back by a worker.
    setup.wait_log("not queued: incomplete MP4", T);
    let r = waiting_reason(&s, &mp4).unwrap();
    assert!(
        r.starts_with("incomplete MP4: the mdat box at byte 20 is open (size 0)"),
        "{r}"
    );
    assert!(
        waiting_reason(&s, &mov)
            .unwrap()
            .starts_with("incomplete MOV:")
    );
    assert!(
        waiting_reason(&s, &mkv)
            .unwrap()
            .contains("the Segment has an unknown size")
    );
    // The scenario itself: the writers stay paused for 5 × settle.
    std::thread::sleep(SETTLE * 5);
    assert!(videos(&em).is_empty(), "nothing uploaded while paused");
    w1.media(&payload(300_000, 4));
    w1.finish();
    w2.media(&payload(100_000, 5));
    w2.finish();
    w3.cluster(&payload(100_000, 6));
    w3.finish();
    setup.wait_done(3, T);
    let s = setup.status();
    for p in [&mp4, &mov, &mkv] {
        assert_uploaded_once(&em, p, &video_id(&s, p));
    }
    assert_eq!(videos(&em).len(), 3, "{:#?}", videos(&em));
}

/// Where to cut a real muxer's file for a pause: for a fragmented MP4 the nastiest point, the
/// end of its middle fragment (a whole-looking file); for anything else the middle.
fn pause_point(bytes: &[u8], fragmented: bool) -> usize {
    if !fragmented {
        return bytes.len() / 2;
    }
    let mut ends = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(len >= 8, "ffmpeg's fragmented files use 32-bit sizes");
        if &bytes[pos + 4..pos + 8] == b"mdat" {
            ends.push(pos + len);
        }
        pos += len;
    }
    ends[ends.len() / 2]
}

/// The goal with real muxer output (ffmpeg files from `tests/data/`): each is written in two
/// parts with a pause of 5 × settle between them, the fragmented ones paused exactly at a
/// fragment boundary. Each ends as exactly one video of the whole file; while paused `status`
/// says why each waits. A fragmented MP4 from a muxer that writes no `mfra` (`skip_trailer`,
/// so it looks paused forever) is uploaded whole once unchanged for `incomplete_after`.
#[test]
fn real_muxer_files_paused_at_their_worst_point_make_one_whole_video() {
    let em = Emulator::start();
    let setup = setup(&em, "30s");
    let _d = setup.start();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let names = [
        ("moov-last.mp4", false),
        ("faststart.mp4", false),
        ("fragmented.mp4", true),
        ("long-fragmented.mp4", true),
        ("unproven/long-fragmented-no-mfra.mp4", true),
        ("clip.mov", false),
        ("clip.mkv", false),
        ("clip.webm", false),
    ];
    let mut writers = Vec::new();
    for (name, fragmented) in names {
        let bytes = std::fs::read(data.join(name)).unwrap();
        let cut = pause_point(&bytes, fragmented);
        let p = setup
            .inbox
            .join(format!("paused-{}", name.replace('/', "-")));
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&bytes[..cut]).unwrap();
        f.sync_all().unwrap();
        writers.push((p, f, bytes, cut));
    }
    let s = setup.wait_for("every paused file held with its reason", T, |s| {
        writers.iter().all(|(p, ..)| waiting_reason(s, p).is_some())
    });
    for (p, ..) in &writers {
        let r = waiting_reason(&s, p).unwrap();
        let fragmented = p.to_string_lossy().contains("fragmented");
        assert!(
            r.starts_with(if fragmented {
                "unproven MP4: a fragmented file"
            } else {
                "incomplete "
            }),
            "{}: {r}",
            p.display()
        );
    }
    // `explain` says what happens to a fragmented file that stays like this.
    let explain = Command::new(common::bin())
        .arg("--config")
        .arg(&setup.config)
        .arg("explain")
        .arg(&writers[2].0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("is uploaded as it is if it stays like this for incomplete_after (30s)"),
        "{text}"
    );
    // The scenario itself: the writers stay paused for 5 × settle.
    std::thread::sleep(SETTLE * 5);
    assert!(videos(&em).is_empty(), "nothing uploaded while paused");
    for (_, f, bytes, cut) in &mut writers {
        f.write_all(&bytes[*cut..]).unwrap();
        f.sync_all().unwrap();
    }
    setup.wait_done(writers.len(), T);
    let s = setup.status();
    for (p, ..) in &writers {
        assert_uploaded_once(&em, p, &video_id(&s, p));
    }
    assert_eq!(videos(&em).len(), writers.len(), "{:#?}", videos(&em));
}

fn retry_anyway(setup: &Setup, id: u64) -> String {
    let out = Command::new(common::bin())
        .args(["--config"])
        .arg(&setup.config)
        .args(["retry", &id.to_string(), "--anyway"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The goal: an MP4 without `moov` (its recorder died) and one with an open `mdat` (ffmpeg
/// killed early) are never uploaded; they fail with `incomplete-container` after
/// `incomplete_after`, and `retry --anyway` uploads each as it is.
#[test]
fn broken_mp4s_are_never_uploaded_until_retry_anyway() {
    let em = Emulator::start();
    let setup = setup(&em, "3s");
    let _d = setup.start();
    let no_moov = setup.inbox.join("died.mp4");
    let mut f = sample::ftyp(b"isom");
    f.extend(sample::mp4_box(b"mdat", &payload(400_000, 7)));
    std::fs::write(&no_moov, &f).unwrap();
    let open = setup.inbox.join("killed.mp4");
    let mut w = Mp4Writer::create(&open, false);
    w.media(&payload(100_000, 8));
    drop(w);
    let s = setup.wait_for("both failed as incomplete", T, |s| {
        [&no_moov, &open].iter().all(|p| {
            file_row(s, p).is_some_and(|r| {
                r["state"] == "failed" && r["last_error_slug"] == "incomplete-container"
            })
        })
    });
    let row = file_row(&s, &no_moov).unwrap();
    let why = row["last_error"].as_str().unwrap();
    assert!(
        why.starts_with(
            "incomplete MP4: no moov box yet (the recorder has not finished the file) — unchanged for 3s"
        ),
        "{why}"
    );
    assert!(videos(&em).is_empty(), "never uploaded: {:#?}", videos(&em));
    // `explain` says what to do.
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&setup.config)
        .arg("explain")
        .arg(&no_moov)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--anyway"), "{text}");

    for p in [&no_moov, &open] {
        let id = file_row(&setup.status(), p).unwrap()["id"]
            .as_u64()
            .unwrap();
        let said = retry_anyway(&setup, id);
        assert!(said.contains("uploaded as it is"), "{said}");
    }
    setup.wait_done(2, T);
    let s = setup.status();
    for p in [&no_moov, &open] {
        assert_uploaded_once(&em, p, &video_id(&s, p));
    }
}

fn data_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "md"))
        .collect();
    v.sort();
    v
}

/// The goal: complete files of every checked format (real muxer output from `tests/data/`, and
/// the sample writer's) are uploaded once each; none waits as incomplete.
#[test]
fn complete_files_of_every_format_are_uploaded_once() {
    let em = Emulator::start();
    let setup = setup(&em, "1h");
    let _d = setup.start();
    let p = payload(150_000, 9);
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        ("first.mp4".into(), sample::mp4(&p, true, false)),
        ("last.mp4".into(), sample::mp4(&p, false, false)),
        ("clip.mov".into(), sample::mp4(&p, false, true)),
        ("frag.mp4".into(), sample::fragmented_mp4(&[&p, &p], true)),
        ("clip.mkv".into(), sample::mkv(&[&p, &p], false, false)),
        ("clip.webm".into(), sample::mkv(&[&p], true, false)),
        ("clip.ts".into(), sample::ts(800, false, 0x11)),
        ("clip.m2ts".into(), sample::ts(800, true, 0x22)),
    ];
    for d in data_files() {
        let name = format!("ffmpeg-{}", d.file_name().unwrap().to_string_lossy());
        files.push((name.into(), std::fs::read(&d).unwrap()));
    }
    let mut paths = Vec::new();
    for (name, bytes) in &files {
        let tmp = setup.inbox.join(format!(".{}.tmp", name.display()));
        std::fs::write(&tmp, bytes).unwrap();
        let p = setup.inbox.join(name);
        std::fs::rename(&tmp, &p).unwrap();
        paths.push(p);
    }
    setup.wait_done(paths.len(), T);
    let s = setup.status();
    for p in &paths {
        assert_uploaded_once(&em, p, &video_id(&s, p));
    }
    assert!(
        !setup.log().contains("not queued: "),
        "{}",
        setup.log_tail(40)
    );
}

/// `ingestd upload` of an unfinished MP4 inside a checked root does not upload it and says why.
#[test]
fn upload_command_refuses_an_unfinished_mp4_with_the_reason() {
    let em = Emulator::start();
    let setup = setup(&em, "1h");
    let p = setup.inbox.join("died.mp4");
    let mut f = sample::ftyp(b"isom");
    f.extend(sample::mp4_box(b"mdat", &payload(50_000, 3)));
    std::fs::write(&p, &f).unwrap();
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&setup.config)
        .arg("upload")
        .arg(&p)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not uploaded: incomplete MP4: no moov box yet"),
        "{text}"
    );
    assert!(videos(&em).is_empty(), "{:#?}", videos(&em));
}

/// `ingestd upload FILE` of a file outside every watch root is checked as the daemon checks
/// (it was never checked): an MP4 whose recorder died is not uploaded, with the daemon's reason;
/// `--no-check-container` uploads it as it is.
#[test]
fn upload_command_checks_a_file_outside_the_roots_unless_told_not_to() {
    let em = Emulator::start();
    let setup = setup(&em, "1h");
    let elsewhere = setup.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let p = elsewhere.join("died.mp4");
    let mut f = sample::ftyp(b"isom");
    f.extend(sample::mp4_box(b"mdat", &payload(50_000, 4)));
    std::fs::write(&p, &f).unwrap();
    let upload = |extra: &[&str]| {
        let out = Command::new(common::bin())
            .arg("--config")
            .arg(&setup.config)
            .arg("upload")
            .args(extra)
            .arg(&p)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = upload(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("not uploaded: incomplete MP4: no moov box yet"),
        "{text}"
    );
    assert!(text.contains("--no-check-container"), "{text}");
    assert!(videos(&em).is_empty(), "{:#?}", videos(&em));
    let (code, text) = upload(&["--no-check-container"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("uploaded, videoId"), "{text}");
    assert_eq!(videos(&em).len(), 1, "{:#?}", videos(&em));
}
