//! The official api.video Python client (`api-video==1.4.7`), unchanged, drives a real
//! `ingestd emulator` through tests/python/referee.py: API-key auth, token CRUD with paging and
//! both sorts, token uploads (single, progressive `part N/*`), the one-video-per-chunk quirk, an
//! API-key chunked upload into a created container, listing by title and deletion.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn official_python_client_works_unchanged() {
    let em = common::Emulator::start();
    let work = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/referee.py");
    let out = Command::new(common::python())
        .arg(&script)
        .arg(&em.url)
        .arg(common::API_KEY)
        .arg(work.path())
        .output()
        .expect("run the Python referee");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "referee failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("referee: OK"), "{stdout}\n{stderr}");
}
