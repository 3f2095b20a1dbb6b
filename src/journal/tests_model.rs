//! Model test: random create/append/rename/delete/settle/upload sequences on real files, each
//! followed by a full scan (`seen` for every file present, `gone` for the rest), against the
//! journal's invariants.

use std::collections::{BTreeMap, HashSet};
use std::slice::from_ref;

use proptest::prelude::*;

use super::testutil::{Fixture, observe};
use super::{FileState, Observation};
use crate::watch::Sink;

const NAMES: [&str; 4] = ["a.mp4", "b.mp4", "c.mp4", "d.mp4"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Append(usize),
    Rename(usize, usize),
    /// A rename whose old path the watcher reports gone before the new one is seen.
    RenameGoneFirst(usize, usize),
    Delete(usize),
    /// Everything settling becomes stable.
    Settle,
    /// Every queued file is uploaded.
    Upload,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize).prop_map(Op::Create),
        (0..4usize).prop_map(Op::Append),
        (0..4usize, 0..4usize).prop_map(|(a, b)| Op::Rename(a, b)),
        (0..4usize, 0..4usize).prop_map(|(a, b)| Op::RenameGoneFirst(a, b)),
        (0..4usize).prop_map(Op::Delete),
        Just(Op::Settle),
        Just(Op::Upload),
    ]
}

fn scan(f: &Fixture) -> Vec<Observation> {
    let present: Vec<Observation> = NAMES
        .iter()
        .filter(|n| f.path(n).exists())
        .map(|n| observe(&f.root(), &f.path(n)))
        .collect();
    f.journal.seen(&present).unwrap();
    let missing: Vec<_> = NAMES
        .iter()
        .map(|n| f.path(n))
        .filter(|p| !p.exists())
        .collect();
    f.journal.gone(&f.root(), &missing).unwrap();
    present
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn journal_follows_the_files(ops in proptest::collection::vec(op(), 1..25)) {
        let f = Fixture::new();
        // Sizes are unique per write so a recycled inode never looks like a rename.
        let mut serial = 0usize;
        let content = |serial: &mut usize| { *serial += 1; vec![b'x'; *serial] };
        // Rows of files that were uploaded: path → id (follows renames).
        let mut uploaded: BTreeMap<String, i64> = BTreeMap::new();
        for op in ops {
            let rows_before = f.journal.list(true).unwrap().len();
            match &op {
                Op::Create(i) => { f.write(NAMES[*i], &content(&mut serial)); }
                Op::Append(i) => {
                    if f.path(NAMES[*i]).exists() { f.append(NAMES[*i], &content(&mut serial)); }
                }
                Op::Rename(a, b) | Op::RenameGoneFirst(a, b) => {
                    if a != b && f.path(NAMES[*a]).exists() {
                        if let Some(id) = uploaded.remove(NAMES[*a]) {
                            uploaded.insert(NAMES[*b].to_owned(), id);
                        } else {
                            uploaded.remove(NAMES[*b]);
                        }
                        f.rename(NAMES[*a], NAMES[*b]);
                        if let Op::RenameGoneFirst(..) = op {
                            f.journal.gone(&f.root(), &[f.path(NAMES[*a])]).unwrap();
                        }
                    }
                }
                Op::Delete(i) => {
                    if f.path(NAMES[*i]).exists() {
                        std::fs::remove_file(f.path(NAMES[*i])).unwrap();
                        uploaded.remove(NAMES[*i]);
                    }
                }
                Op::Settle => {
                    let present = scan(&f);
                    f.journal.stable(&present).unwrap();
                }
                Op::Upload => {
                    while let Some(row) = f.journal.claim_next(std::time::SystemTime::now()).unwrap() {
                        f.journal.mark_done(row.id, "00", &format!("vi{}", row.id)).unwrap();
                        let name = row.path.file_name().unwrap().to_string_lossy().into_owned();
                        uploaded.insert(name, row.id);
                    }
                }
            }
            if matches!(op, Op::Append(_) | Op::Create(_)) {
                for n in NAMES {
                    if let Some(id) = uploaded.get(n) {
                        let row = f.journal.get(*id).unwrap().unwrap();
                        if !row.identity.same_content(&f.observe(n).identity) {
                            uploaded.remove(n);
                        }
                    }
                }
            }
            let present = scan(&f);
            let rows = f.journal.list(true).unwrap();
            if let Op::Rename(..) | Op::RenameGoneFirst(..) = op {
                prop_assert_eq!(rows.len(), rows_before, "a rename creates no row");
            }
            let mut live_paths = HashSet::new();
            for r in rows.iter().filter(|r| !matches!(r.state, FileState::Done | FileState::Gone)) {
                prop_assert!(live_paths.insert(r.path.clone()), "two live rows at {:?}", r.path);
            }
            for obs in &present {
                let row = f.journal.find_by_path(&obs.path).unwrap().unwrap();
                prop_assert!(row.identity.same_content(&obs.identity), "{:?} vs {:?}", row, obs);
                if matches!(row.state, FileState::Queued | FileState::Uploading) {
                    prop_assert_eq!(row.identity, obs.identity, "queued with a stale identity");
                }
                // Tracked exactly when settling.
                let track = f.journal.seen(from_ref(obs)).unwrap()[0];
                prop_assert_eq!(track, row.state == FileState::Settling);
            }
            for (name, id) in &uploaded {
                let row = f.journal.get(*id).unwrap().unwrap();
                prop_assert_eq!(row.state, FileState::Done, "uploaded {} came back", name);
                prop_assert_eq!(&row.path, &f.path(name));
            }
        }
    }
}
