//! The api.video client against a canned in-test HTTP server on 127.0.0.1: what goes on the wire
//! (headers, multipart fields, streamed bytes) and how every kind of answer is classified.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use ingestd::api::{
    ApiError, AuthMode, BodyObserver, ChunkRange, Client, ClientOptions, ErrorClass, SortOrder,
    TokenListQuery, TokenSortBy, UploadRequest, VideoCreation, plan_chunks,
};
use ingestd::secret::Secret;
use sha2::{Digest, Sha256};

const TOKEN: &str = "to1tcmSFHeYY5KzyhOqVKMKb";
const KEY: &str = "apiKeyXYZ0123456789secretvalue";

/// One request as the server saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    /// Multipart fields: (name, file name, bytes).
    fields: Vec<(String, Option<String>, Vec<u8>)>,
    /// Raw body when not multipart.
    body: Vec<u8>,
    /// The body could not be read completely (client aborted).
    aborted: bool,
}

type Respond = Arc<dyn Fn(&Seen, usize) -> Response + Send + Sync>;

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn client(&self) -> Client {
        Client::new(ClientOptions::new(self.url.parse().unwrap())).unwrap()
    }
}

/// Starts a server that records every request and answers with `respond(seen, index)`.
async fn serve(respond: impl Fn(&Seen, usize) -> Response + Send + Sync + 'static) -> Server {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let respond: Respond = Arc::new(respond);
    let app = Router::new()
        .fallback({
            let seen = seen.clone();
            move |req: Request| {
                let seen = seen.clone();
                let respond = respond.clone();
                async move { handle(req, seen, respond).await }
            }
        })
        .layer(DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { url, seen }
}

async fn handle(req: Request, seen: Arc<Mutex<Vec<Seen>>>, respond: Respond) -> Response {
    let mut s = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        headers: req.headers().clone(),
        ..Seen::default()
    };
    let is_multipart = s
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        match Multipart::from_request(req, &()).await {
            Ok(mut mp) => loop {
                match mp.next_field().await {
                    Ok(Some(f)) => {
                        let name = f.name().unwrap_or("").to_owned();
                        let file_name = f.file_name().map(str::to_owned);
                        match f.bytes().await {
                            Ok(b) => s.fields.push((name, file_name, b.to_vec())),
                            Err(_) => {
                                s.aborted = true;
                                break;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        s.aborted = true;
                        break;
                    }
                }
            },
            Err(_) => s.aborted = true,
        }
    } else {
        match axum::body::to_bytes(req.into_body(), usize::MAX).await {
            Ok(b) => s.body = b.to_vec(),
            Err(_) => s.aborted = true,
        }
    }
    let index = {
        let mut all = seen.lock().unwrap();
        all.push(s.clone());
        all.len() - 1
    };
    respond(&s, index)
}

fn json(status: u16, body: &str) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), body.to_owned()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn with_headers(mut r: Response, pairs: &[(&'static str, &'static str)]) -> Response {
    for (k, v) in pairs {
        r.headers_mut().insert(*k, HeaderValue::from_static(v));
    }
    r
}

fn problem(status: u16, slug: &str) -> Response {
    json(
        status,
        &format!(
            r#"{{"type":"https://docs.api.video/reference/{slug}","title":"T","status":{status},"name":"file"}}"#
        ),
    )
}

/// A file of `len` pseudo-random bytes.
fn sample_file(len: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let mut x: u32 = 12345;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16).to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&path, &data).unwrap();
    (dir, path, data)
}

fn request(
    path: &std::path::Path,
    range: Option<ChunkRange>,
    video_id: Option<&str>,
) -> UploadRequest {
    UploadRequest {
        path: path.to_owned(),
        file_name: "clip.mp4".into(),
        range,
        whole_len: None,
        video_id: video_id.map(str::to_owned),
        observer: None,
        file: None,
    }
}

fn assert_no_secrets(e: &ApiError) {
    let text = format!("{e} | {e:?}");
    assert!(!text.contains(TOKEN), "token leaked: {text}");
    assert!(!text.contains(KEY), "key leaked: {text}");
}

#[tokio::test]
async fn chunks_carry_video_id_range_origin_and_exact_bytes() {
    let server = serve(|_, i| {
        if i == 2 {
            json(
                201,
                r#"{"videoId":"viAAAAAAAAAAAAAAAAAAAAAA","title":"clip.mp4","tags":[]}"#,
            )
        } else {
            json(201, r#"{"videoId":"viAAAAAAAAAAAAAAAAAAAAAA"}"#)
        }
    })
    .await;
    let (_dir, path, data) = sample_file(700_001);
    let client = server.client();
    let token = Secret::new(TOKEN);
    let mut video_id: Option<String> = None;
    let chunks: Vec<_> = plan_chunks(data.len() as u64, 300_000).collect();
    assert_eq!(chunks.len(), 3);
    for c in &chunks {
        let r = client
            .upload(&token, request(&path, Some(*c), video_id.as_deref()))
            .await
            .unwrap();
        assert_eq!(r.video_id, "viAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(r.video.is_some(), c.is_last());
        video_id = Some(r.video_id);
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for (i, (s, c)) in seen.iter().zip(&chunks).enumerate() {
        assert_eq!((s.method.as_str(), s.path.as_str()), ("POST", "/upload"));
        assert_eq!(s.query.as_deref(), Some(format!("token={TOKEN}").as_str()));
        assert_eq!(
            s.headers["av-origin-client"],
            format!("ingestd:{}", env!("CARGO_PKG_VERSION")).as_str()
        );
        assert_eq!(s.headers["content-range"], c.content_range().as_str());
        assert!(s.headers.get("authorization").is_none());
        assert!(!s.aborted);
        let file_part = s.fields.iter().find(|f| f.0 == "file").unwrap();
        assert_eq!(file_part.1.as_deref(), Some("clip.mp4"));
        let (from, to) = (
            usize::try_from(c.offset).unwrap(),
            usize::try_from(c.end()).unwrap(),
        );
        assert!(file_part.2 == data[from..to], "chunk {i} bytes differ");
        let vid = s.fields.iter().find(|f| f.0 == "videoId");
        if i == 0 {
            assert!(vid.is_none(), "first chunk must not carry videoId");
        } else {
            assert_eq!(vid.unwrap().2, b"viAAAAAAAAAAAAAAAAAAAAAA");
        }
    }
    assert_eq!(seen[0].headers["content-range"], "bytes 0-299999/700001");
    assert_eq!(
        seen[2].headers["content-range"],
        "bytes 600000-700000/700001"
    );
}

#[tokio::test]
async fn whole_file_has_no_content_range_and_returns_the_video() {
    let server = serve(|_, _| {
        json(
            201,
            r#"{"videoId":"viB","title":"clip.mp4","assets":{"player":"https://x/y"}}"#,
        )
    })
    .await;
    let (_dir, path, data) = sample_file(1000);
    let r = server
        .client()
        .upload(&Secret::new(TOKEN), request(&path, None, None))
        .await
        .unwrap();
    assert_eq!(r.video_id, "viB");
    let video = r.video.unwrap();
    assert_eq!(video.title.as_deref(), Some("clip.mp4"));
    let seen = &server.seen()[0];
    assert!(seen.headers.get("content-range").is_none());
    assert_eq!(seen.fields.len(), 1);
    assert_eq!(seen.fields[0].2, data);
}

struct Recorder {
    hasher: Mutex<Sha256>,
    sent: Mutex<usize>,
    permits: Mutex<usize>,
}

impl BodyObserver for Recorder {
    fn before_send(&self, n: usize) -> BoxFuture<'static, ()> {
        *self.permits.lock().unwrap() += n;
        Box::pin(tokio::task::yield_now())
    }
    fn on_bytes(&self, data: &[u8]) {
        self.hasher.lock().unwrap().update(data);
        *self.sent.lock().unwrap() += data.len();
    }
}

#[tokio::test]
async fn observer_sees_every_byte_in_order() {
    let server = serve(|_, _| json(201, r#"{"videoId":"viC"}"#)).await;
    let (_dir, path, data) = sample_file(1_000_000);
    let rec = Arc::new(Recorder {
        hasher: Mutex::new(Sha256::new()),
        sent: Mutex::new(0),
        permits: Mutex::new(0),
    });
    let range = ChunkRange {
        offset: 123_456,
        len: 654_321,
        total: data.len() as u64,
    };
    let mut req = request(&path, Some(range), Some("viC"));
    req.observer = Some(rec.clone());
    server
        .client()
        .upload(&Secret::new(TOKEN), req)
        .await
        .unwrap();
    let slice = &data[123_456..123_456 + 654_321];
    assert_eq!(*rec.sent.lock().unwrap(), slice.len());
    assert_eq!(*rec.permits.lock().unwrap(), slice.len());
    let got = rec.hasher.lock().unwrap().clone().finalize();
    assert_eq!(got, Sha256::digest(slice));
}

/// An observer whose `before_last_piece` (the journal's "body sent" record) says when it is
/// reached, then waits to be released.
struct HoldsTheLastPiece {
    reached: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: Arc<tokio::sync::Notify>,
}

impl BodyObserver for HoldsTheLastPiece {
    fn on_bytes(&self, _: &[u8]) {}
    fn before_last_piece(&self) -> BoxFuture<'static, Result<(), String>> {
        if let Some(tx) = self.reached.lock().unwrap().take() {
            let _ = tx.send(());
        }
        let release = self.release.clone();
        Box::pin(async move {
            release.notified().await;
            Ok(())
        })
    }
}

/// A first request given up (the shutdown deadline, its file changed) while its last piece waits
/// on the observer: the request runs on only to fail its body, so the last piece must never go
/// and the endpoint never reads a complete request (it would create a video nobody knows of).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_given_up_while_its_last_piece_waits_never_completes() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Reads the request; `Ok(head)` once its head and Content-Length bytes are all in.
    let server = std::thread::spawn(move || -> Result<String, String> {
        let (mut conn, _) = listener.accept().unwrap();
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a Content-Length");
                if got.len() >= end + 4 + len {
                    return Ok(head);
                }
            }
            match conn.read(&mut buf) {
                Ok(0) => return Err("EOF".into()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    let client = Client::new(ClientOptions::new(url.parse().unwrap())).unwrap();
    let (_dir, path, _) = sample_file(300_000);
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let mut req = request(&path, None, None);
    req.observer = Some(Arc::new(HoldsTheLastPiece {
        reached: Mutex::new(Some(reached_tx)),
        release: release.clone(),
    }));
    let token = Secret::new(TOKEN);
    tokio::select! {
        r = client.upload(&token, req) => panic!("the upload ended: {r:?}"),
        r = reached_rx => r.unwrap(),
    }
    // The upload is given up (its future dropped) while the last piece waits; then the wait ends.
    release.notify_one();
    let end = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    let why = end.expect_err("the endpoint read the whole body of a request given up");
    assert!(why.contains("reset"), "a reset, not {why}");
}

#[tokio::test]
async fn truncated_file_is_a_local_error_not_a_short_body() {
    let server = serve(|_, _| json(201, r#"{"videoId":"viD"}"#)).await;
    let (_dir, path, _) = sample_file(400_000);
    let range = ChunkRange {
        offset: 0,
        len: 500_000,
        total: 900_000,
    };
    let err = server
        .client()
        .upload(&Secret::new(TOKEN), request(&path, Some(range), None))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Local, "{err}");
    assert!(
        matches!(
            err,
            ApiError::FileTruncated {
                at: 400_000,
                expected_end: 500_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secrets(&err);
    // Whatever the server saw, it never saw a complete 500 000-byte file part.
    for s in server.seen() {
        assert!(s.aborted || s.fields.iter().all(|f| f.2.len() != 500_000));
    }
}

/// A whole-file request sends exactly `whole_len` bytes (the journal's size): a file that grew
/// since is cut at that length, one that shrank fails as truncated.
#[tokio::test]
async fn whole_file_request_sends_the_expected_length_only() {
    let server = serve(|_, _| json(201, r#"{"videoId":"viW"}"#)).await;
    let (_dir, path, data) = sample_file(300_000);
    let mut req = request(&path, None, None);
    req.whole_len = Some(200_000);
    server
        .client()
        .upload(&Secret::new(TOKEN), req.clone())
        .await
        .unwrap();
    let seen = server.seen();
    let part = seen[0].fields.iter().find(|f| f.0 == "file").unwrap();
    assert_eq!(part.2, &data[..200_000]);

    req.whole_len = Some(400_000);
    let err = server
        .client()
        .upload(&Secret::new(TOKEN), req)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::FileTruncated {
                at: 300_000,
                expected_end: 400_000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_file_is_a_local_error() {
    let server = serve(|_, _| json(201, r#"{"videoId":"viD"}"#)).await;
    let err = server
        .client()
        .upload(
            &Secret::new(TOKEN),
            request(std::path::Path::new("/nonexistent/x.mp4"), None, None),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Local);
    assert!(err.to_string().contains("/nonexistent/x.mp4"), "{err}");
    assert!(server.seen().is_empty());
}

/// (answer, expected class, slug, retry_after seconds, text the message must contain)
type Expect = (ErrorClass, Option<&'static str>, Option<u64>, &'static str);

#[tokio::test]
async fn upload_answers_are_classified() {
    let cases: Vec<(Box<dyn Fn() -> Response + Send + Sync>, Expect)> = vec![
        (
            Box::new(|| {
                let mut r = (
                    StatusCode::BAD_GATEWAY,
                    "<html>\n<head><title>502 Bad Gateway</title></head>\n</html>",
                )
                    .into_response();
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static("text/html"));
                r
            }),
            (ErrorClass::Transient, None, None, "<html>"),
        ),
        (
            Box::new(|| {
                with_headers(
                    problem(429, "too-many-requests"),
                    &[
                        ("x-ratelimit-retry-after", "17"),
                        ("x-ratelimit-limit", "100"),
                    ],
                )
            }),
            (
                ErrorClass::RateLimited,
                Some("too-many-requests"),
                Some(17),
                "429",
            ),
        ),
        (
            Box::new(|| {
                with_headers(
                    (StatusCode::TOO_MANY_REQUESTS, "").into_response(),
                    &[("retry-after", "3")],
                )
            }),
            (ErrorClass::RateLimited, None, Some(3), "429"),
        ),
        (
            Box::new(|| {
                with_headers(
                    (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                    &[("retry-after", "8")],
                )
            }),
            (ErrorClass::Transient, None, Some(8), "busy"),
        ),
        (
            Box::new(|| problem(401, "authentication-invalid-upload-token")),
            (
                ErrorClass::TokenRejected,
                Some("authentication-invalid-upload-token"),
                None,
                "401",
            ),
        ),
        (
            Box::new(|| problem(400, "video-content-range-by-bytes-range-overlap")),
            (
                ErrorClass::Permanent,
                Some("video-content-range-by-bytes-range-overlap"),
                None,
                "overlap",
            ),
        ),
        (
            Box::new(|| problem(400, "video-source-already-uploaded")),
            (
                ErrorClass::Permanent,
                Some("video-source-already-uploaded"),
                None,
                "already-uploaded",
            ),
        ),
        (
            Box::new(|| json(201, r#"{"title":"no id"}"#)),
            (ErrorClass::Transient, None, None, "videoId"),
        ),
        (
            Box::new(|| json(200, "this is not json")),
            (ErrorClass::Transient, None, None, "not JSON"),
        ),
        (
            Box::new(|| {
                with_headers(
                    (StatusCode::FOUND, "").into_response(),
                    &[(
                        "location",
                        "http://portal.example/login?u=to1tcmSFHeYY5KzyhOqVKMKb",
                    )],
                )
            }),
            (ErrorClass::Transient, None, None, "portal.example"),
        ),
        (
            Box::new(|| json(500, &format!(r#"{{"title":"echo {TOKEN}","status":500}}"#))),
            (ErrorClass::Transient, None, None, "500"),
        ),
    ];
    let (_dir, path, _) = sample_file(10_000);
    for (i, (answer, (class, slug, retry, text))) in cases.into_iter().enumerate() {
        let server = serve(move |_, _| answer()).await;
        let err = server
            .client()
            .upload(&Secret::new(TOKEN), request(&path, None, None))
            .await
            .unwrap_err();
        assert_eq!(err.class(), class, "case {i}: {err}");
        assert_eq!(err.slug(), slug, "case {i}: {err}");
        assert_eq!(
            err.retry_after(),
            retry.map(Duration::from_secs),
            "case {i}: {err}"
        );
        assert!(err.to_string().contains(text), "case {i}: {err}");
        assert_no_secrets(&err);
        // Redirects are not followed.
        assert_eq!(server.seen().len(), 1, "case {i}");
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    // A listener that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let mut opts = ClientOptions::new(url.parse().unwrap());
    opts.base_timeout = Duration::from_millis(300);
    let client = Client::new(opts).unwrap();
    let (_dir, path, _) = sample_file(1000);
    let err = client
        .upload(&Secret::new(TOKEN), request(&path, None, None))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_no_secrets(&err);
}

#[tokio::test]
async fn connection_refused_is_transient_and_hides_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(ClientOptions::new(url.parse().unwrap()))
        .unwrap()
        .with_api_key(Secret::new(KEY), AuthMode::Basic);
    let (_dir, path, _) = sample_file(1000);
    let err = client
        .upload(&Secret::new(TOKEN), request(&path, None, None))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(matches!(err, ApiError::Network { .. }), "{err:?}");
    assert_no_secrets(&err);
    let err = client.create_upload_token(0).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn basic_auth_token_crud() {
    let server = serve(|s, _| match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/upload-tokens") => json(200, &format!(r#"{{"token":"{TOKEN}","ttl":60,"createdAt":"2020-12-02T10:13:19+00:00","expiresAt":"2020-12-02T10:14:19+00:00"}}"#)),
        ("GET", "/upload-tokens") => json(200, &format!(r#"{{"data":[{{"token":"{TOKEN}","ttl":0,"createdAt":"2020-12-02T10:13:19+00:00"}}],"pagination":{{"currentPage":2,"currentPageItems":1,"pageSize":1,"pagesTotal":3,"itemsTotal":3,"links":[{{"rel":"self","uri":"/upload-tokens?currentPage=2&pageSize=1"}}]}}}}"#)),
        ("GET", _) => json(200, &format!(r#"{{"token":"{TOKEN}","ttl":0}}"#)),
        ("DELETE", _) => StatusCode::NO_CONTENT.into_response(),
        _ => problem(404, "unrecognized-request-url"),
    })
    .await;
    let client = server
        .client()
        .with_api_key(Secret::new(KEY), AuthMode::Basic);
    let created = client.create_upload_token(60).await.unwrap();
    assert_eq!((created.token.as_str(), created.ttl), (TOKEN, 60));
    let page = client
        .list_upload_tokens(&TokenListQuery {
            sort_by: Some(TokenSortBy::Ttl),
            sort_order: Some(SortOrder::Asc),
            current_page: Some(2),
            page_size: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(page.pagination.pages_total, 3);
    assert_eq!(page.data[0].expires_at, None);
    client.get_upload_token(TOKEN).await.unwrap();
    client.delete_upload_token(TOKEN).await.unwrap();
    client
        .list_upload_tokens(&TokenListQuery::default())
        .await
        .unwrap();

    let seen = server.seen();
    let expect_auth = format!("Basic {}", base64_of(&format!("{KEY}:")));
    for s in &seen {
        assert_eq!(s.headers["authorization"], expect_auth.as_str());
        assert!(s.headers.contains_key("av-origin-client"));
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[0].body).unwrap(),
        serde_json::json!({"ttl": 60})
    );
    assert_eq!(
        seen[1].query.as_deref(),
        Some("sortBy=ttl&sortOrder=asc&currentPage=2&pageSize=1")
    );
    assert_eq!(seen[2].path, format!("/upload-tokens/{TOKEN}"));
    assert_eq!(
        (seen[3].method.as_str(), seen[3].path.as_str()),
        ("DELETE", format!("/upload-tokens/{TOKEN}").as_str())
    );
    assert_eq!(seen[4].query, None);
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn wrong_api_key_is_api_key_rejected_without_the_key() {
    let server = serve(|_, _| {
        json(401, &format!(r#"{{"type":"https://docs.api.video/reference/authentication-invalid-api-key","title":"The API key is invalid: {KEY}","status":401}}"#))
    })
    .await;
    let client = server
        .client()
        .with_api_key(Secret::new(KEY), AuthMode::Basic);
    let err = client.create_upload_token(0).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::ApiKeyRejected);
    assert_eq!(err.slug(), Some("authentication-invalid-api-key"));
    assert_no_secrets(&err);
    let no_key = server.client().create_upload_token(0).await.unwrap_err();
    assert!(matches!(no_key, ApiError::NoApiKey));
}

#[tokio::test]
async fn bearer_authenticates_refreshes_and_reauthenticates_after_401() {
    // expires_in 0: the token must be renewed before every use, through /auth/refresh.
    let server = serve(|s, _| match s.path.as_str() {
        "/auth/api-key" => json(200, r#"{"token_type":"Bearer","expires_in":0,"access_token":"access-1-xxxxxxxxxxxx","refresh_token":"refresh-1-xxxxxxxxxxx"}"#),
        "/auth/refresh" => json(200, r#"{"token_type":"Bearer","expires_in":3600,"access_token":"access-2-xxxxxxxxxxxx","refresh_token":"refresh-2-xxxxxxxxxxx"}"#),
        "/videos" if s.headers["authorization"] == "Bearer access-2-xxxxxxxxxxxx" => problem(401, "authentication-invalid-access-token"),
        "/videos" => json(201, r#"{"videoId":"viE","title":"t","tags":["a"]}"#),
        _ => json(200, r#"{"ingest":{"status":"uploading","receivedBytes":[{"from":0,"to":9,"total":20}]}}"#),
    })
    .await;
    let client = server
        .client()
        .with_api_key(Secret::new(KEY), AuthMode::Bearer);
    let status = client.video_status("viE").await.unwrap();
    assert_eq!(status.ingest.unwrap().received_bytes[0].to, 9);
    // Second call: the access token is due, so it is refreshed; then /videos answers 401 to the
    // refreshed token, and the client authenticates again with the key and retries once.
    let v = client
        .create_video(&VideoCreation {
            title: "t".into(),
            tags: vec!["a".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(v.video_id, "viE");
    let paths: Vec<_> = server.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/auth/api-key",
            "/videos/viE/status",
            "/auth/refresh",
            "/videos",
            "/auth/api-key",
            "/videos"
        ]
    );
    let seen = server.seen();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[0].body).unwrap(),
        serde_json::json!({"apiKey": KEY})
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[2].body).unwrap(),
        serde_json::json!({"refreshToken": "refresh-1-xxxxxxxxxxx"})
    );
    assert_eq!(
        seen[1].headers["authorization"],
        "Bearer access-1-xxxxxxxxxxxx"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[3].body).unwrap(),
        serde_json::json!({"title": "t", "tags": ["a"]})
    );
}

#[tokio::test]
async fn bearer_with_a_wrong_key_is_api_key_rejected() {
    let server = serve(|_, _| problem(400, "authentication-invalid-user-credentials")).await;
    let client = server
        .client()
        .with_api_key(Secret::new(KEY), AuthMode::Bearer);
    let err = client
        .list_upload_tokens(&TokenListQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ApiKeyRejected, "{err}");
    assert_no_secrets(&err);
    assert_eq!(server.seen().len(), 1);
    assert_eq!(server.seen()[0].method, Method::POST.as_str());
}

#[tokio::test]
async fn garbage_success_bodies_are_transient_errors() {
    let server = serve(|_, _| json(200, r#"{"data": "nope"}"#)).await;
    let client = server
        .client()
        .with_api_key(Secret::new(KEY), AuthMode::Basic);
    let err = client
        .list_upload_tokens(&TokenListQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(matches!(err, ApiError::InvalidResponse { status: 200, .. }));
}
