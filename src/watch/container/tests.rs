//! The completeness check against the sample writers: whole files, every prefix, damaged sizes
//! (property tests, see the run counts in `docs/RELIABILITY.md`).

use crate::escape::Show as _;
use std::path::Path;

use proptest::prelude::*;

use super::sample::{self, Wrap};
use super::{Format, Verdict, check};

fn verdict(name: &str, bytes: &[u8]) -> Verdict {
    check(Path::new(name), &bytes, bytes.len() as u64).verdict
}

fn wrapped(format: Format, total: u64) -> Vec<u8> {
    let Wrap {
        mut head,
        payload,
        tail,
    } = sample::wrap(format, total).unwrap();
    head.extend((0..payload).map(|i| (i * 31 % 251) as u8));
    head.extend(tail);
    assert_eq!(head.len() as u64, total);
    head
}

#[test]
fn whole_files_are_complete() {
    let p = vec![7u8; 3000];
    assert_eq!(
        verdict("a.mp4", &sample::mp4(&p, true, false)),
        Verdict::Complete
    );
    assert_eq!(
        verdict("a.mp4", &sample::mp4(&p, false, false)),
        Verdict::Complete
    );
    assert_eq!(
        verdict("a.mov", &sample::mp4(&p, false, true)),
        Verdict::Complete
    );
    assert_eq!(
        verdict("a.mkv", &sample::mkv(&[&p, &p], false, false)),
        Verdict::Complete
    );
    assert_eq!(
        verdict("a.webm", &sample::mkv(&[&p], true, false)),
        Verdict::Complete
    );
    assert_eq!(
        verdict("a.ts", &sample::ts(40, false, 0xFF)),
        Verdict::Complete
    );
    assert_eq!(
        verdict("a.m2ts", &sample::ts(40, true, 0xFF)),
        Verdict::Complete
    );
    let frag = sample::fragmented_mp4(&[&p, &p, &p], true);
    assert_eq!(verdict("a.mp4", &frag), Verdict::Complete);
    assert_eq!(
        verdict("a.mp4", &sample::fragmented_mp4(&[&p], true)),
        Verdict::Complete
    );
    // Content decides: an MP4 named .bin is checked too.
    assert_eq!(
        verdict("a.bin", &sample::mp4(&p, true, false)),
        Verdict::Complete
    );
}

#[test]
fn wrapped_files_keep_their_size_and_are_complete() {
    for total in [8u64, 20, 31, 100, 200, 4096, 1 << 20] {
        let f = wrapped(Format::IsoBmff { mov: false }, total);
        assert_eq!(verdict("w.mp4", &f), Verdict::Complete, "{total}");
    }
    for total in [45u64, 100, 4096, 1 << 20] {
        let f = wrapped(Format::Matroska { webm: false }, total);
        assert_eq!(verdict("w.mkv", &f), Verdict::Complete, "{total}");
    }
    assert!(sample::wrap(Format::IsoBmff { mov: false }, 7).is_none());
}

#[test]
fn reasons_say_what_is_missing() {
    let p = vec![1u8; 500];
    let mut no_moov = sample::ftyp(b"isom");
    no_moov.extend(sample::mp4_box(b"mdat", &p));
    assert_eq!(
        verdict("r.mp4", &no_moov),
        Verdict::Incomplete(
            "incomplete MP4: no moov box yet (the recorder has not finished the file)".into()
        )
    );
    // ffmpeg killed early: mdat of size 0.
    let mut open = sample::ftyp(b"isom");
    open.extend([0, 0, 0, 0]);
    open.extend(b"mdat");
    open.extend(&p);
    let v = verdict("r.mov", &open);
    assert!(
        v.reason()
            .unwrap()
            .starts_with("incomplete MOV: the mdat box at byte 20 is open (size 0)"),
        "{v:?}"
    );
    let live = sample::mkv(&[&p], false, true);
    assert!(
        verdict("r.mkv", &live)
            .reason()
            .unwrap()
            .contains("unknown size")
    );
    let cut = sample::ts(10, false, 0);
    assert!(
        verdict("r.ts", &cut[..cut.len() - 5])
            .reason()
            .unwrap()
            .contains("not a whole number")
    );
    let mut bad = sample::ts(10, false, 0);
    bad[188 * 9] = 0;
    assert!(
        verdict("r.ts", &bad)
            .reason()
            .unwrap()
            .starts_with("damaged MPEG-TS")
    );
    let mut frag = sample::fragmented_mp4(&[&p], false);
    frag.extend(sample::mp4_box(b"moof", &[]));
    assert!(
        verdict("r.mp4", &frag)
            .reason()
            .unwrap()
            .contains("no mdat yet")
    );
}

#[test]
fn other_formats_are_unknown() {
    assert_eq!(verdict("a.avi", b"RIFF....AVI LIST"), Verdict::Unknown);
    assert_eq!(verdict("a.mxf", &[0u8; 100]), Verdict::Unknown);
    assert_eq!(verdict("noext", &[]), Verdict::Unknown);
}

#[test]
fn fragmented_files_without_mfra_are_unproven_at_each_whole_fragment() {
    // A fragmented recording ends with a whole fragment at every pause of its recorder: a cut
    // between fragments is Unproven (held, queued once unchanged for incomplete_after), a cut
    // inside one Incomplete; only the final mfra makes it Complete.
    let p = [3u8; 50];
    let f = sample::fragmented_mp4(&[&p, &p], true);
    let one = sample::fragmented_mp4(&[&p], false);
    let two = sample::fragmented_mp4(&[&p, &p], false);
    assert_eq!(verdict("f.mp4", &f), Verdict::Complete);
    for cut in 0..f.len() {
        let v = verdict("f.mp4", &f[..cut]);
        if cut == one.len() || cut == two.len() {
            assert!(
                matches!(&v, Verdict::Unproven(r) if r.starts_with("unproven MP4: a fragmented file")),
                "{cut}: {v:?}"
            );
        } else {
            assert!(v.is_incomplete(), "{cut}: {v:?}");
        }
    }
}

#[test]
fn hybrid_mp4_is_complete_once_its_final_moov_is_there() {
    // OBS / ffmpeg hybrid: a fragmented file whose final moov is appended when it finishes.
    let p = [5u8; 60];
    let mut f = sample::fragmented_mp4(&[&p, &p], false);
    assert!(matches!(verdict("h.mp4", &f), Verdict::Unproven(_)));
    f.extend(sample::moov(2000, None));
    assert_eq!(verdict("h.mp4", &f), Verdict::Complete);
    let mut cut = sample::fragmented_mp4(&[&p], false);
    cut.extend(sample::mp4_box(b"moof", &[0; 16]));
    assert!(verdict("h.mp4", &cut).is_incomplete());
}

#[test]
fn many_fragments_past_the_budget() {
    let p = [0u8; 4];
    let parts: Vec<&[u8]> = (0..5000).map(|_| &p[..]).collect();
    let with = sample::fragmented_mp4(&parts, true);
    let r = check(Path::new("f.mp4"), &&with[..], with.len() as u64);
    assert_eq!(r.verdict, Verdict::Complete);
    assert!(r.bytes_read <= super::BUDGET);
    let without = sample::fragmented_mp4(&parts, false);
    let r = check(Path::new("f.mp4"), &&without[..], without.len() as u64);
    assert!(matches!(r.verdict, Verdict::Pending(_)), "{:?}", r.verdict);
    assert!(r.bytes_read <= super::BUDGET);
}

/// Checks `bytes` as file `key` until the walk is done; each check within the budget.
fn check_until_done(key: super::resume::Key, name: &str, bytes: &[u8]) -> (Verdict, usize) {
    for n in 1..1000 {
        let r = super::check_keyed(Path::new(name), &bytes, bytes.len() as u64, Some(key));
        assert!(r.bytes_read <= super::BUDGET);
        if !matches!(r.verdict, Verdict::Pending(_)) {
            return (r.verdict, n);
        }
    }
    panic!("{name}: the walk never ends");
}

#[test]
fn a_long_fragmented_file_is_walked_on_across_checks() {
    let key = (0xF2A6, 1);
    super::resume::forget(key);
    let p = [0u8; 4];
    let parts: Vec<&[u8]> = (0..5000).map(|_| &p[..]).collect();
    let whole = sample::fragmented_mp4(&parts, false);
    let (v, checks) = check_until_done(key, "f.mp4", &whole);
    assert!(matches!(v, Verdict::Unproven(_)), "{v:?}");
    assert!((20..=60).contains(&checks), "{checks} checks");
    // Unchanged: the saved walk answers at once.
    assert_eq!(check_until_done(key, "f.mp4", &whole), (v.clone(), 1));
    // Grown by a cut fragment: only the new part is walked, and it is incomplete.
    let mut grown = whole.clone();
    grown.extend(sample::mp4_box(b"moof", &[0; 16]));
    let (g, n) = check_until_done(key, "f.mp4", &grown);
    assert!(g.is_incomplete() && n == 1, "{g:?} after {n}");
    // Shrunk below the saved position, or other bytes at the start: walked again from 0, so
    // a cut inside the first fragments is found.
    let cut = &whole[..whole.len() / 2 + 3];
    let (c, n) = check_until_done(key, "f.mp4", cut);
    assert!(c.is_incomplete() && n > 1, "{c:?} after {n}");
    check_until_done(key, "f.mp4", &whole);
    let mut other = whole.clone();
    other[12] ^= 1;
    // The type of the second moof, far before the saved position.
    let second = sample::fragmented_mp4(&parts[..1], false).len();
    other[second + 4] = 1;
    let (o, n) = check_until_done(key, "f.mp4", &other);
    assert!(
        matches!(o, Verdict::Incomplete(ref r) if r.starts_with("damaged")),
        "{o:?} after {n}"
    );
    super::resume::forget(key);
}

#[test]
fn every_prefix_of_small_files_is_incomplete() {
    let p = [9u8; 40];
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("s.mp4", sample::mp4(&p, true, false)),
        ("s.mp4", sample::mp4(&p, false, false)),
        ("s.mov", sample::mp4(&p, false, true)),
        ("s.mkv", sample::mkv(&[&p, &p], false, false)),
        ("s.webm", sample::mkv(&[&p], true, false)),
    ];
    for (name, f) in &files {
        assert_eq!(verdict(name, f), Verdict::Complete, "{name}");
        for cut in 0..f.len() {
            let v = verdict(name, &f[..cut]);
            assert!(
                v.is_incomplete(),
                "{name} cut at {cut} of {}: {v:?}",
                f.len()
            );
        }
    }
}

fn big_file() -> impl Strategy<Value = (String, Vec<u8>)> {
    (0usize..6, 1usize..6, 1usize..20_000).prop_map(|(kind, n, len)| {
        let p = vec![0xA5u8; len];
        let parts: Vec<&[u8]> = (0..n).map(|_| &p[..]).collect();
        match kind {
            0 => ("b.mp4".into(), sample::mp4(&p, true, false)),
            1 => ("b.mp4".into(), sample::mp4(&p, false, false)),
            2 => ("b.mov".into(), sample::mp4(&p, false, true)),
            3 => ("b.m4v".into(), sample::mp4(&parts.concat(), true, false)),
            4 => ("b.mkv".into(), sample::mkv(&parts, false, false)),
            _ => ("b.webm".into(), sample::mkv(&parts, true, false)),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random cut points of larger files: always incomplete; the whole file complete.
    #[test]
    fn random_prefixes_are_incomplete((name, f) in big_file(), cut in any::<prop::sample::Index>()) {
        prop_assert_eq!(verdict(&name, &f), Verdict::Complete);
        let at = cut.index(f.len());
        let v = verdict(&name, &f[..at]);
        prop_assert!(v.is_incomplete(), "{} cut at {} of {}: {:?}", name, at, f.len(), v);
    }

    /// Damaged sizes: any bytes overwritten anywhere in the first 256 never panic, and a file
    /// whose answer is not Complete says why.
    #[test]
    fn damaged_files_never_panic(
        (name, mut f) in big_file(),
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let n = f.len().min(256);
        for (i, b) in hits {
            f[i.index(n)] = b;
        }
        match verdict(&name, &f) {
            Verdict::Incomplete(r) => prop_assert!(r.starts_with("incomplete ") || r.starts_with("damaged ")),
            Verdict::Unproven(r) => prop_assert!(r.starts_with("unproven ")),
            Verdict::Complete | Verdict::Unknown | Verdict::Pending(_) => {}
        }
    }

    /// A saved walk meeting other bytes under the same key (a file rewritten in place, a reused
    /// inode, cut and damaged bytes): never a panic, never past the budget.
    #[test]
    fn saved_walks_meeting_other_bytes_never_panic(
        n in 300usize..700,
        cut in any::<prop::sample::Index>(),
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let key = (0xF2A7, n as u64);
        let p = [1u8; 3];
        let parts: Vec<&[u8]> = (0..n).map(|_| &p[..]).collect();
        let whole = sample::fragmented_mp4(&parts, false);
        let _ = super::check_keyed(Path::new("k.mp4"), &&whole[..], whole.len() as u64, Some(key));
        let mut other = whole[..cut.index(whole.len())].to_vec();
        for (i, b) in hits {
            if !other.is_empty() {
                let at = i.index(other.len());
                other[at] = b;
            }
        }
        for _ in 0..10 {
            let r = super::check_keyed(Path::new("k.mp4"), &&other[..], other.len() as u64, Some(key));
            prop_assert!(r.bytes_read <= super::BUDGET);
            if !matches!(r.verdict, Verdict::Pending(_)) {
                break;
            }
        }
        super::resume::forget(key);
    }

    /// Arbitrary bytes under every name: never a panic, never past the budget.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), ext in 0usize..5) {
        let name = ["x.mp4", "x.mkv", "x.ts", "x.m2ts", "x.bin"][ext];
        let r = check(Path::new(name), &&bytes[..], bytes.len() as u64);
        prop_assert!(r.bytes_read <= super::BUDGET);
        // Claimed sizes larger than the data are read as a shorter file, never trusted.
        let r = check(Path::new(name), &&bytes[..], bytes.len() as u64 + 1_000_000);
        prop_assert!(r.bytes_read <= super::BUDGET);
    }
}

/// The files in `tests/data/` were made by ffmpeg (see its README): the finished ones are
/// Complete, the ones from a killed ffmpeg under `incomplete/` are Incomplete, the fragmented ones
/// without `mfra` under `unproven/` are Unproven (a long one after a few checks).
#[test]
fn ffmpeg_files_in_tests_data() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut n = 0;
    for sub in ["", "incomplete", "unproven"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if !p.is_file() || p.extension().is_some_and(|x| x == "md") {
                continue;
            }
            let mut r = super::check_file(&p);
            for _ in 0..10 {
                if !matches!(r.verdict, Verdict::Pending(_)) {
                    break;
                }
                assert!(r.bytes_read <= super::BUDGET);
                r = super::check_file(&p);
            }
            assert!(r.bytes_read <= super::BUDGET);
            let ok = match sub {
                "" => r.verdict == Verdict::Complete,
                "incomplete" => r.verdict.is_incomplete(),
                _ => matches!(r.verdict, Verdict::Unproven(_)),
            };
            assert!(ok, "{}: {:?}", p.shown(), r.verdict);
            n += 1;
        }
    }
    assert!(n >= 13, "{n} files");
}
