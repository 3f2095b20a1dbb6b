//! Unit tests of one upload attempt against endpoints that cannot be reached or turn the request
//! down: a first request that never left, or got a 4xx, records no possible orphan (a 5xx keeps
//! the mark); an unreadable file is reported before any request.

use crate::escape::Show as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::board::Board;
use super::token::TokenGate;
use super::worker::{Outcome, VideoMeta, WorkerContext, upload_file};
use super::{RateLimit, RetryPolicy};
use crate::api::{Client, ClientOptions};
use crate::config::{Config, LoadOptions};
use crate::journal::testutil::Fixture;
use crate::journal::{FileState, NoteKind};
use crate::secret::Secret;

fn context(f: &Fixture, endpoint: &str) -> WorkerContext {
    let opts = LoadOptions {
        credentials_directory: None,
        check_files: false,
    };
    let config = Config::parse_with("", std::path::Path::new("t.toml"), &opts).unwrap();
    WorkerContext {
        journal: f.journal.clone(),
        client: Client::new(ClientOptions::new(endpoint.parse().unwrap())).unwrap(),
        api_key_client: None,
        token: TokenGate::new(Secret::new("to1234567890abcdef".to_owned())),
        config: Arc::new(config.upload),
        rate: Arc::new(RwLock::new(RateLimit::new(0))),
        board: Board::default(),
        policy: Arc::new(RetryPolicy::new(Duration::from_secs(1))),
        video_meta: Arc::new(|_| VideoMeta::default()),
        metrics: Arc::new(super::NoEvents),
        watch_roots: Arc::default(),
        rules: Arc::default(),
        container_roots: Arc::default(),
    }
}

/// The "possible orphan" notes of row `id`.
fn orphan_notes(f: &Fixture, id: i64) -> Vec<crate::journal::FileNote> {
    f.journal
        .notes(Some(id))
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == NoteKind::Orphan)
        .collect()
}

/// Two attempts of `id`; returns the row's last error.
async fn attempt_twice(f: &Fixture, ctx: &WorkerContext, id: i64) -> String {
    for _ in 0..2 {
        let row = f.journal.claim(id).unwrap();
        let out = upload_file(ctx, row, &CancellationToken::new())
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Retry), "{out:?}");
    }
    let row = f.journal.get(id).unwrap().unwrap();
    assert_eq!(row.state, FileState::Queued);
    assert!(!row.first_chunk_in_flight);
    let orphans = orphan_notes(f, id);
    assert!(orphans.is_empty(), "no possible orphan: {orphans:?}");
    row.last_error.unwrap_or_default()
}

#[tokio::test]
async fn a_refused_first_request_records_no_orphan() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = attempt_twice(&f, &context(&f, &url), id).await;
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        err.ends_with("that the service listens there (the upload is retried)"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreadable_file_is_reported_before_any_request() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return; // root reads anything; tests/hostile_bad_input.rs runs this case as nobody
    }
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    let path = f.path("a.mp4");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = attempt_twice(&f, &context(&f, "http://127.0.0.1:9"), id).await;
    assert_eq!(
        err,
        format!(
            "cannot read {}: Permission denied (os error 13); make it readable by the user ingestd runs as (retried until then)",
            path.shown()
        )
    );
}

#[tokio::test]
async fn a_real_possible_orphan_is_noted_once() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    // A first request was in flight when the process stopped.
    f.journal.claim(id).unwrap();
    f.journal.mark_first_chunk_in_flight(id).unwrap();
    f.journal.mark_first_body_sent(id).unwrap();
    f.journal.requeue(id).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let ctx = context(&f, &url);
    for _ in 0..3 {
        let row = f.journal.claim(id).unwrap();
        upload_file(&ctx, row, &CancellationToken::new())
            .await
            .unwrap();
    }
    assert_eq!(
        orphan_notes(&f, id).len(),
        1,
        "noted once, not at every attempt"
    );
}

#[test]
fn idle_workers_sleep_until_the_next_due_row_at_most_idle_max() {
    use super::worker::{IDLE_MAX, idle_nap};
    use std::time::SystemTime;
    let now = SystemTime::now();
    assert_eq!(idle_nap(None, now), IDLE_MAX, "nothing queued");
    assert_eq!(
        idle_nap(Some(now + Duration::from_secs(7)), now),
        Duration::from_secs(7)
    );
    assert_eq!(idle_nap(Some(now + 3 * IDLE_MAX), now), IDLE_MAX);
    assert_eq!(
        idle_nap(Some(SystemTime::UNIX_EPOCH), now),
        Duration::ZERO,
        "due already"
    );
}

/// A loopback server answering every request with `status` and an api.video problem body.
fn answering(status: u16, slug: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = format!(
        r#"{{"type":"https://docs.api.video/reference/{slug}","title":"turned down","status":{status}}}"#
    );
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            // Read the head and whatever body arrives, then answer and close.
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 65536];
            while let Ok(n) = std::io::Read::read(&mut s, &mut buf) {
                if n == 0 {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut s, answer.as_bytes());
        }
    });
    url
}

/// One first attempt of a new file against a server answering `status`; returns whether the
/// row is still marked "first chunk in flight" (a possible orphan at the next attempt).
async fn first_attempt_against(status: u16, slug: &str) -> bool {
    let f = Fixture::new();
    let id = f.queued("a.mp4", b"0123456789");
    let ctx = context(&f, &answering(status, slug));
    let row = f.journal.claim(id).unwrap();
    upload_file(&ctx, row, &CancellationToken::new())
        .await
        .unwrap();
    f.journal.get(id).unwrap().unwrap().first_chunk_in_flight
}

#[tokio::test]
async fn a_first_request_turned_down_leaves_no_orphan_mark() {
    for (status, slug) in [(400, "invalid-attribute"), (401, "unauthorized")] {
        assert!(
            !first_attempt_against(status, slug).await,
            "{status}: a turned-down first request created no video"
        );
    }
}

#[tokio::test]
async fn a_first_request_answered_503_keeps_the_orphan_mark() {
    assert!(
        first_attempt_against(503, "service-unavailable").await,
        "a 5xx may come after the video was stored"
    );
}

/// A loopback server that reads the first bytes of each request, then resets the connection.
fn resetting_after_a_few_bytes() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    });
    url
}

/// A first request cut off before its last body byte left (the endpoint reset the connection)
/// cannot have created a video: no possible-orphan mark stays, none is noted next time.
#[tokio::test]
async fn a_first_request_cut_before_its_last_byte_leaves_no_orphan_mark() {
    let f = Fixture::new();
    let id = f.queued("a.mp4", &vec![5u8; 4 << 20]);
    let ctx = context(&f, &resetting_after_a_few_bytes());
    for _ in 0..2 {
        let row = f.journal.claim(id).unwrap();
        let out = upload_file(&ctx, row, &CancellationToken::new())
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Retry), "{out:?}");
        let row = f.journal.get(id).unwrap().unwrap();
        assert!(
            !row.first_chunk_in_flight && !row.first_body_sent,
            "{row:?}"
        );
    }
    assert!(orphan_notes(&f, id).is_empty());
}
