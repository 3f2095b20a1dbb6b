//! Integration tests of `ingestd emulator` as a real process: a table of malformed and invalid
//! requests with their exact status and `type` slug, the stateful range rules, happy paths for
//! both `Content-Range` forms, the no-`videoId` quirk, restart persistence, token expiry, the
//! upload limit, and every fault action.

mod common;

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;
const BOUNDARY: &str = "ingestdTestBoundary7MA4YWxkTrZu0gW";

/// One multipart part.
enum P<'a> {
    File(&'a str, &'a str, &'a [u8]),
    Text(&'a str, &'a str),
}

fn form(parts: &[P<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            P::File(name, filename, data) => {
                b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                );
                b.extend_from_slice(data);
            }
            P::Text(name, value) => {
                b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}")
                        .as_bytes(),
                );
            }
        }
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Deterministic test data.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            u32::try_from(i)
                .unwrap()
                .wrapping_mul(2_654_435_761)
                .to_le_bytes()[i % 4]
                ^ seed
        })
        .collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Value,
    text: String,
}

struct Api {
    c: reqwest::Client,
    url: String,
}

impl Api {
    fn new(em: &common::Emulator) -> Api {
        Api {
            c: reqwest::Client::new(),
            url: em.url.clone(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    fn key(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        rb.basic_auth(common::API_KEY, Some(""))
    }

    async fn token(&self, ttl: u64) -> String {
        let r = self
            .send(
                self.key(self.c.post(format!("{}/upload-tokens", self.url)))
                    .json(&json!({ "ttl": ttl })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// A `POST /upload?token=` request of the multipart form of `parts`, not sent yet.
    fn upload_request(&self, token: &str, parts: &[P<'_>]) -> reqwest::RequestBuilder {
        self.c
            .post(format!("{}/upload?token={token}", self.url))
            .header("content-type", content_type())
            .body(form(parts))
    }

    async fn upload(&self, token: &str, range: Option<&str>, parts: &[P<'_>]) -> Resp {
        let mut rb = self.upload_request(token, parts);
        if let Some(r) = range {
            rb = rb.header("content-range", r);
        }
        self.send(rb).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(self.key(self.c.get(format!("{}{path}", self.url))))
            .await
    }

    /// POST `body` as JSON to `path`, without credentials.
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.c.post(format!("{}{path}", self.url)).json(&body))
            .await
    }

    /// GET `path` with a Bearer access token.
    async fn get_bearer(&self, path: &str, access: &str) -> Resp {
        self.send(
            self.c
                .get(format!("{}{path}", self.url))
                .bearer_auth(access),
        )
        .await
    }

    async fn emu_video(&self, id: &str) -> Value {
        let r = self.get(&format!("/_emulator/videos/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    async fn emu_videos(&self) -> Vec<Value> {
        self.get("/_emulator/videos").await.body["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn faults(&self, rules: Value) {
        let r = self.post("/_emulator/faults", rules).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

fn slug(r: &Resp) -> String {
    r.body["type"]
        .as_str()
        .unwrap_or("<none>")
        .trim_start_matches("https://docs.api.video/reference/")
        .to_owned()
}

fn assert_rate_headers(r: &Resp, what: &str) {
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-retry-after",
    ] {
        assert!(r.headers.contains_key(h), "{what}: missing {h}");
    }
}

fn assert_problem(r: &Resp, status: u16, expected: &str, what: &str) {
    assert_eq!(
        (r.status, slug(r).as_str()),
        (status, expected),
        "{what}: {}",
        r.text
    );
    assert_eq!(r.body["status"], status, "{what}");
    assert!(r.body["title"].is_string(), "{what}: title");
    assert!(r.body["name"].is_string(), "{what}: name");
    assert_eq!(
        r.headers["content-type"], "application/json",
        "{what}: content type"
    );
    assert_rate_headers(r, what);
}

#[tokio::test]
async fn malformed_requests_table() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let small = data(1000, 1);
    let u = &api.url;
    let c = &api.c;
    let up = |range: &'static str| {
        c.post(format!("{u}/upload?token={token}"))
            .header("content-type", content_type())
            .header("content-range", range)
            .body(form(&[P::File("file", "a.mp4", &small)]))
    };
    let multipart = |parts: &[P<'_>]| {
        c.post(format!("{u}/upload?token={token}"))
            .header("content-type", content_type())
            .body(form(parts))
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no token",
            c.post(format!("{u}/upload"))
                .header("content-type", content_type())
                .body(form(&[P::File("file", "a", &small)])),
            401,
            "authentication-missing-upload-token",
        ),
        (
            "empty token",
            c.post(format!("{u}/upload?token="))
                .header("content-type", content_type())
                .body(form(&[P::File("file", "a", &small)])),
            401,
            "authentication-missing-upload-token",
        ),
        (
            "unknown token, with an API key in Authorization (ignored)",
            api.key(c.post(format!("{u}/upload?token=toAAAAAAAAAAAAAAAAAAAAAA")))
                .header("content-type", content_type())
                .body(form(&[P::File("file", "a", &small)])),
            401,
            "authentication-invalid-upload-token",
        ),
        ("url-encoded range", up("part%201%2F3"), 400, "video-content-range-malformed"),
        ("unknown unit", up("chunks 1/3"), 400, "video-content-range-malformed"),
        ("bytes without total", up("bytes 0-999"), 400, "video-content-range-malformed"),
        ("bytes star total", up("bytes 0-999/*"), 400, "video-content-range-malformed"),
        ("negative", up("bytes -1-999/1000"), 400, "video-content-range-malformed"),
        ("from > to", up("bytes 10-5/100"), 400, "video-content-range-by-bytes-from-byte-too-high"),
        ("to >= total", up("bytes 0-999/999"), 400, "video-content-range-by-bytes-to-byte-too-high-total"),
        ("total zero", up("bytes 0-0/0"), 400, "video-content-range-by-bytes-total-bytes-zero"),
        ("total too high", up("bytes 0-999/52428800001"), 400, "video-content-range-by-bytes-total-bytes-too-high"),
        ("non-last range < 5 MiB", up("bytes 0-999/10485760"), 400, "video-content-range-by-bytes-range-too-small"),
        ("range > 200 MiB", up("bytes 0-209715200/300000000"), 400, "video-content-range-by-bytes-range-too-large"),
        ("body != range", up("bytes 0-1999/2000"), 400, "video-content-range-by-bytes-range-mismatch"),
        ("part zero", up("part 0/3"), 400, "video-content-range-by-part-part-zero"),
        ("total parts zero", up("part 1/0"), 400, "video-content-range-by-part-total-parts-zero"),
        ("part > total", up("part 4/3"), 400, "video-content-range-by-part-part-too-high-total"),
        ("part > 10000", up("part 10001/*"), 400, "video-content-range-by-part-part-too-high-allowed"),
        ("total parts > 10000", up("part 1/10001"), 400, "video-content-range-by-part-total-parts-too-high"),
        ("non-last part < 5 MiB", up("part 1/3"), 400, "video-content-range-by-part-uploaded-file-too-small"),
        ("progressive part < 5 MiB", up("part 1/*"), 400, "video-content-range-by-part-uploaded-file-too-small"),
        (
            "not multipart",
            c.post(format!("{u}/upload?token={token}"))
                .header("content-type", "application/octet-stream")
                .body(small.clone()),
            400,
            "uploaded-file-no-file",
        ),
        ("no file part", multipart(&[P::Text("videoId", "vi123")]), 400, "uploaded-file-no-file"),
        (
            "file part without filename",
            multipart(&[P::Text("file", "not a file")]),
            400,
            "uploaded-file-no-file",
        ),
        (
            "two files",
            multipart(&[P::File("file", "a", &small), P::File("other", "b", &small)]),
            400,
            "uploaded-file-multiple-files",
        ),
        ("empty file", multipart(&[P::File("file", "a", b"")]), 400, "uploaded-file-empty"),
        (
            "unknown videoId",
            multipart(&[P::Text("videoId", "viAAAAAAAAAAAAAAAAAAAAAA"), P::File("file", "a", &small)]),
            404,
            "resource-not-found",
        ),
        (
            "truncated multipart",
            c.post(format!("{u}/upload?token={token}"))
                .header("content-type", content_type())
                .body(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc")),
            400,
            "invalid-payload",
        ),
        (
            "no Authorization",
            c.get(format!("{u}/upload-tokens")),
            401,
            "authentication-missing-authorization-header",
        ),
        (
            "wrong API key",
            c.get(format!("{u}/upload-tokens")).basic_auth("wrongKey", Some("")),
            401,
            "authentication-invalid-api-key",
        ),
        (
            "garbage Basic",
            c.get(format!("{u}/upload-tokens")).header("authorization", "Basic !!!notbase64"),
            401,
            "authentication-invalid-authorization-header-value",
        ),
        (
            "unknown Bearer",
            c.get(format!("{u}/upload-tokens")).bearer_auth("nope"),
            401,
            "authentication-invalid-access-token",
        ),
        (
            "wrong key on /auth/api-key",
            c.post(format!("{u}/auth/api-key")).json(&json!({"apiKey": "wrong"})),
            400,
            "authentication-invalid-user-credentials",
        ),
        (
            "unknown refresh token",
            c.post(format!("{u}/auth/refresh")).json(&json!({"refreshToken": "def502nope"})),
            400,
            "authentication-invalid-user-credentials",
        ),
        (
            "video without title",
            api.key(c.post(format!("{u}/videos"))).json(&json!({"description": "x"})),
            400,
            "attribute-required",
        ),
        (
            "JSON body over 1 MiB",
            api.key(c.post(format!("{u}/videos")))
                .header("content-type", "application/json")
                .body(format!("{{\"title\": \"{}\"}}", "x".repeat(2 * MIB))),
            400,
            "invalid-payload",
        ),
        (
            "video with empty title",
            api.key(c.post(format!("{u}/videos")))
                .json(&json!({"title": ""})),
            400,
            "invalid-attribute",
        ),
        (
            "patch with tags not a list",
            api.key(c.patch(format!("{u}/videos/viAAAAAAAAAAAAAAAAAAAAAA")))
                .json(&json!({"tags": "x"})),
            404,
            "resource-not-found",
        ),
        (
            "video with non-JSON body",
            api.key(c.post(format!("{u}/videos"))).body("{not json"),
            400,
            "invalid-payload",
        ),
        (
            "token with negative ttl",
            api.key(c.post(format!("{u}/upload-tokens"))).json(&json!({"ttl": -1})),
            400,
            "invalid-attribute",
        ),
        (
            "pageSize 101",
            api.key(c.get(format!("{u}/upload-tokens?pageSize=101"))),
            400,
            "invalid-query-parameter",
        ),
        (
            "bad sortBy",
            api.key(c.get(format!("{u}/upload-tokens?sortBy=name"))),
            400,
            "invalid-query-parameter",
        ),
        (
            "unknown token id",
            api.key(c.get(format!("{u}/upload-tokens/toAAAAAAAAAAAAAAAAAAAAAA"))),
            404,
            "resource-not-found",
        ),
        (
            "undecodable video id",
            api.key(c.get(format!("{u}/videos/%FF%FE"))),
            404,
            "resource-not-found",
        ),
        (
            "unknown video",
            api.key(c.get(format!("{u}/videos/viAAAAAAAAAAAAAAAAAAAAAA"))),
            404,
            "resource-not-found",
        ),
        (
            "source upload to unknown video",
            api.key(c.post(format!("{u}/videos/viAAAAAAAAAAAAAAAAAAAAAA/source")))
                .header("content-type", content_type())
                .body(form(&[P::File("file", "a", &small)])),
            404,
            "resource-not-found",
        ),
        ("unknown route", c.get(format!("{u}/v2/whatever")), 404, "unrecognized-request-url"),
        ("wrong method", c.delete(format!("{u}/upload")), 405, "method-not-allowed"),
    ];
    assert!(cases.len() >= 15);
    for (what, rb, status, expected) in cases {
        let r = api.send(rb).await;
        assert_problem(&r, status, expected, what);
    }
    // None of the rejected uploads created a video.
    assert!(api.emu_videos().await.is_empty());
}

#[tokio::test]
async fn raw_http_malformed_requests() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    // A Content-Range that is not valid UTF-8, sent byte for byte.
    let body = form(&[P::File("file", "a", b"hello")]);
    let mut req = format!(
        "POST /upload?token={token} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nContent-Range: part \u{0}",
        content_type(),
        body.len()
    )
    .into_bytes();
    req.pop();
    req.extend_from_slice(b"\xff\xfe/2\r\n\r\n");
    req.extend_from_slice(&body);
    let mut s = tokio::net::TcpStream::connect(em.addr()).await.unwrap();
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("video-content-range-malformed"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-ratelimit-remaining"),
        "{text}"
    );
}

/// Uploads `content` with the token in byte ranges of `chunk` bytes, copying `videoId`.
async fn upload_bytes(
    api: &Api,
    token: &str,
    name: &str,
    content: &[u8],
    chunk: usize,
) -> (String, Vec<Value>) {
    let total = content.len();
    let mut video_id: Option<String> = None;
    let mut bodies = Vec::new();
    let mut from = 0;
    while from < total {
        let to = (from + chunk).min(total) - 1;
        let range = format!("bytes {from}-{to}/{total}");
        let mut parts = Vec::new();
        if let Some(id) = &video_id {
            parts.push(P::Text("videoId", id));
        }
        parts.push(P::File("file", name, &content[from..=to]));
        let r = api.upload(token, Some(&range), &parts).await;
        assert_eq!(r.status, 201, "{range}: {}", r.text);
        assert_eq!(r.headers["content-type"], "application/json");
        video_id = Some(r.body["videoId"].as_str().unwrap().to_owned());
        bodies.push(r.body);
        from = to + 1;
    }
    (video_id.unwrap(), bodies)
}

#[tokio::test]
async fn happy_paths_both_range_forms_and_whole() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;

    // An (empty or foreign) Authorization header is ignored on /upload.
    let r = api
        .send(
            api.upload_request(&token, &[P::File("file", "auth.mp4", b"abc")])
                .header("authorization", ""),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .send(
            api.upload_request(&token, &[P::File("file", "auth.mp4", b"abc")])
                .basic_auth("wrong-key", Some("")),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // bytes form, two chunks, videoId copied.
    let content = data(5 * MIB + 12_345, 7);
    let (id, bodies) = upload_bytes(&api, &token, "movie.mp4", &content, 5 * MIB).await;
    assert_eq!(
        bodies[0],
        json!({ "videoId": id }),
        "intermediate body is only the id"
    );
    assert_eq!(bodies[1]["title"], "movie.mp4");
    assert_eq!(bodies[1]["source"]["uri"], format!("/videos/{id}/source"));
    assert!(id.starts_with("vi") && id.len() == 24);
    let v = api.emu_video(&id).await;
    assert_eq!(v["complete"], true);
    assert_eq!(v["size"], content.len());
    assert_eq!(v["sha256"], sha(&content));
    assert_eq!(v["chunkCount"], 2);
    assert_eq!(v["chunks"][0]["withVideoId"], false);
    assert_eq!(v["chunks"][1]["withVideoId"], true);
    assert_eq!(
        v["chunks"][1]["contentRange"],
        format!("bytes {}-{}/{}", 5 * MIB, content.len() - 1, content.len())
    );
    let st = api.get(&format!("/videos/{id}/status")).await;
    assert_eq!(st.body["ingest"]["status"], "uploaded");
    assert_eq!(
        st.body["ingest"]["receivedBytes"].as_array().unwrap().len(),
        2
    );

    // part form, progressive: part 1/*, part 2/2, out of order is fine too; videoId field first.
    let content = data(5 * MIB + 3, 9);
    let r = api
        .upload(
            &token,
            Some("part 1/*"),
            &[P::File("blob", "prog.mov", &content[..5 * MIB])],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["videoId"].as_str().unwrap().to_owned();
    let st = api.get(&format!("/videos/{id}/status")).await;
    assert_eq!(st.body["ingest"]["status"], "uploading");
    assert_eq!(
        st.body["ingest"]["receivedParts"],
        json!({"parts": [1], "total": null})
    );
    let r = api
        .upload(
            &token,
            Some("part 2/2"),
            &[
                P::Text("videoId", &id),
                P::File("blob", "prog.mov", &content[5 * MIB..]),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["title"], "prog.mov");
    assert_eq!(api.emu_video(&id).await["sha256"], sha(&content));

    // Whole file without Content-Range, file part after… or before videoId of a pre-created video.
    let created = api
        .send(api.key(api.c.post(format!("{}/videos", api.url))).json(
            &json!({"title": "container", "tags": ["a"], "metadata": [{"key": "k", "value": "v"}]}),
        ))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let cid = created.body["videoId"].as_str().unwrap().to_owned();
    let small = data(1234, 3);
    let r = api
        .upload(
            &token,
            None,
            &[
                P::File("file", "ignored.bin", &small),
                P::Text("videoId", &cid),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["title"], "container");
    assert_eq!(r.body["tags"], json!(["a"]));
    // Upload to a complete video.
    let r = api
        .upload(
            &token,
            None,
            &[P::Text("videoId", &cid), P::File("file", "x", &small)],
        )
        .await;
    assert_problem(&r, 400, "video-source-already-uploaded", "complete video");
    // Listing by title (substring) and metadata.
    let l = api.get("/videos?title=contain").await;
    assert_eq!(l.body["data"].as_array().unwrap().len(), 1);
    let l = api.get("/videos?metadata%5Bk%5D=v").await;
    assert_eq!(l.body["data"][0]["videoId"], cid.as_str());
    // API-key source upload with part N/TOTAL into a created container.
    let created = api
        .send(
            api.key(api.c.post(format!("{}/videos", api.url)))
                .json(&json!({"title": "src"})),
        )
        .await;
    let sid = created.body["videoId"].as_str().unwrap().to_owned();
    let content = data(5 * MIB + 10, 5);
    for (range, piece) in [
        ("part 2/2", &content[5 * MIB..]),
        ("part 1/2", &content[..5 * MIB]),
    ] {
        let r = api
            .send(
                api.key(api.c.post(format!("{}/videos/{sid}/source", api.url)))
                    .header("content-type", content_type())
                    .header("content-range", range)
                    .body(form(&[P::File("file", "f", piece)])),
            )
            .await;
        assert_eq!(r.status, 201, "{range}: {}", r.text);
    }
    assert_eq!(api.emu_video(&sid).await["sha256"], sha(&content));
    // PATCH sets metadata after a token upload.
    let p = api
        .send(
            api.key(api.c.patch(format!("{}/videos/{cid}", api.url)))
                .json(&json!({"title": "renamed", "metadata": [{"key": "sha", "value": "x"}]})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["title"], "renamed");
    assert_eq!(p.body["tags"], json!(["a"]));
    let p = api
        .send(
            api.key(api.c.patch(format!("{}/videos/{cid}", api.url)))
                .json(&json!({"tags": "x"})),
        )
        .await;
    assert_problem(&p, 400, "invalid-attribute", "patch tags");
    // Delete → 404.
    let d = api
        .send(api.key(api.c.delete(format!("{}/videos/{sid}", api.url))))
        .await;
    assert_eq!(d.status, 204);
    assert_rate_headers(&d, "delete");
    assert_eq!(api.get(&format!("/videos/{sid}")).await.status, 404);
}

#[tokio::test]
async fn stateful_range_rules() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let content = data(5 * MIB + 100, 2);
    let total = content.len();
    let first = &content[..5 * MIB];
    let r = api
        .upload(
            &token,
            Some(&format!("bytes 0-{}/{total}", 5 * MIB - 1)),
            &[P::File("file", "f", first)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["videoId"].as_str().unwrap().to_owned();
    let last = &content[5 * MIB..];
    let cases: Vec<(String, Vec<P<'_>>, &str)> = vec![
        (
            format!("bytes 0-{}/{total}", 5 * MIB - 1),
            vec![P::Text("videoId", &id), P::File("file", "f", first)],
            "video-content-range-by-bytes-range-overlap",
        ),
        (
            format!("bytes {}-{}/{}", 5 * MIB, total, total + 1),
            vec![
                P::Text("videoId", &id),
                P::File("file", "f", &content[5 * MIB - 1..]),
            ],
            "video-content-range-by-bytes-different-total-bytes",
        ),
        (
            "part 2/2".to_owned(),
            vec![P::Text("videoId", &id), P::File("file", "f", last)],
            "video-content-range-started-with-bytes",
        ),
    ];
    for (range, parts, expected) in &cases {
        let r = api.upload(&token, Some(range), parts).await;
        assert_problem(&r, 400, expected, range);
    }
    let r = api
        .upload(
            &token,
            None,
            &[P::Text("videoId", &id), P::File("file", "f", last)],
        )
        .await;
    assert_problem(
        &r,
        400,
        "video-content-range-already-initiated",
        "no range after ranges",
    );
    let r = api
        .upload(
            &token,
            Some(&format!("bytes {}-{}/{total}", 5 * MIB, total - 1)),
            &[P::Text("videoId", &id), P::File("file", "f", last)],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .upload(
            &token,
            Some(&format!("bytes {}-{}/{total}", 5 * MIB, total - 1)),
            &[P::Text("videoId", &id), P::File("file", "f", last)],
        )
        .await;
    assert_problem(&r, 400, "video-source-already-uploaded", "complete");
    // The rejected requests are recorded on the video.
    let v = api.emu_video(&id).await;
    let errors: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert_eq!(errors.len(), 5, "{v}");

    // part mode
    let big = data(5 * MIB, 4);
    let r = api
        .upload(&token, Some("part 1/3"), &[P::File("file", "p", &big)])
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let pid = r.body["videoId"].as_str().unwrap().to_owned();
    for (range, body, expected) in [
        (
            "part 1/3",
            &big[..],
            "video-content-range-by-part-part-already-sent",
        ),
        (
            "part 2/4",
            &big[..],
            "video-content-range-by-part-different-total-parts",
        ),
        (
            "bytes 0-99/100",
            &big[..100],
            "video-content-range-started-with-part",
        ),
    ] {
        let r = api
            .upload(
                &token,
                Some(range),
                &[P::Text("videoId", &pid), P::File("file", "p", body)],
            )
            .await;
        assert_problem(&r, 400, expected, range);
    }
    let r = api
        .upload(&token, Some("part 3/*"), &[P::File("file", "q", &big)])
        .await;
    let qid = r.body["videoId"].as_str().unwrap().to_owned();
    let r = api
        .upload(
            &token,
            Some("part 2/2"),
            &[P::Text("videoId", &qid), P::File("file", "q", b"x")],
        )
        .await;
    assert_problem(
        &r,
        400,
        "video-content-range-by-part-total-parts-too-low",
        "total below a sent part",
    );
    // A gap: part 3/3 without part 2 does not complete.
    let r = api
        .upload(
            &token,
            Some("part 3/3"),
            &[P::Text("videoId", &pid), P::File("file", "p", b"end")],
        )
        .await;
    assert_eq!(r.body, json!({"videoId": pid}));
    assert_eq!(api.emu_video(&pid).await["complete"], false);
}

#[tokio::test]
async fn no_video_id_creates_one_video_per_chunk() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let content = data(10 * MIB + 7, 11);
    let mut ids = Vec::new();
    for (i, range) in [(0usize, "part 1/3"), (1, "part 2/3"), (2, "part 3/3")] {
        let piece = &content[i * 5 * MIB..((i + 1) * 5 * MIB).min(content.len())];
        let r = api
            .upload(
                &token,
                Some(range),
                &[P::File("file", &format!("clip.mp4.part.{i}"), piece)],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["videoId"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "one video per chunk");
    let all = api.emu_videos().await;
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|v| v["complete"] == false));
    assert_eq!(all[0]["title"], "clip.mp4.part.0");
}

#[tokio::test]
async fn state_survives_restart_mid_upload() {
    let mut em = common::Emulator::start();
    let data_dir = em.data_dir.clone();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let content = data(5 * MIB + 999, 13);
    let total = content.len();
    let r = api
        .upload(
            &token,
            Some(&format!("bytes 0-{}/{total}", 5 * MIB - 1)),
            &[P::File("file", "r.mp4", &content[..5 * MIB])],
        )
        .await;
    let id = r.body["videoId"].as_str().unwrap().to_owned();
    em.kill();
    let em2 = common::Emulator::start_in(&data_dir, &[]);
    let api = Api::new(&em2);
    let st = api.get(&format!("/videos/{id}/status")).await;
    assert_eq!(
        st.body["ingest"]["receivedBytes"][0],
        json!({"from": 0, "to": 5 * MIB - 1, "total": total})
    );
    let r = api
        .upload(
            &token,
            Some(&format!("bytes {}-{}/{total}", 5 * MIB, total - 1)),
            &[
                P::Text("videoId", &id),
                P::File("file", "r.mp4", &content[5 * MIB..]),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["title"], "r.mp4");
    assert_eq!(api.emu_video(&id).await["sha256"], sha(&content));
    let list = api.get("/upload-tokens").await;
    assert_eq!(list.body["data"][0]["token"], token.as_str());
}

#[tokio::test]
async fn token_ttl_expiry_and_crud() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let long = api.token(3600).await;
    let forever = api.token(0).await;
    let t = api.get(&format!("/upload-tokens/{long}")).await;
    assert_eq!(t.body["ttl"], 3600);
    assert!(t.body["expiresAt"].is_string());
    let t = api.get(&format!("/upload-tokens/{forever}")).await;
    assert!(t.body.get("expiresAt").is_none(), "{}", t.text);
    // Paging and sorting.
    let l = api
        .get("/upload-tokens?sortBy=ttl&sortOrder=desc&pageSize=1&currentPage=1")
        .await;
    assert_eq!(l.body["data"][0]["token"], long.as_str());
    assert_eq!(l.body["pagination"]["itemsTotal"], 2);
    let rels: Vec<&str> = l.body["pagination"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rel"].as_str().unwrap())
        .collect();
    assert!(rels.contains(&"next"), "{rels:?}");
    let first = |l: &Resp| l.body["data"][0]["token"].as_str().unwrap().to_owned();
    let asc = api
        .get("/upload-tokens?sortBy=createdAt&sortOrder=asc")
        .await;
    assert_eq!(first(&asc), long);
    let desc = api
        .get("/upload-tokens?sortBy=createdAt&sortOrder=desc")
        .await;
    assert_eq!(first(&desc), forever);
    let ttl_asc = api.get("/upload-tokens?sortBy=ttl&sortOrder=asc").await;
    assert_eq!(first(&ttl_asc), forever);
    let page2 = api.get("/upload-tokens?pageSize=1&currentPage=2").await;
    assert_eq!(first(&page2), forever);
    assert_eq!(page2.body["pagination"]["currentPageItems"], 1);
    // Expiry: poll until the short token is refused.
    let short = api.token(1).await;
    let small = data(100, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = api
            .upload(&short, None, &[P::File("file", "e", &small)])
            .await;
        if r.status == 401 {
            assert_problem(&r, 401, "authentication-invalid-upload-token", "expired");
            break;
        }
        assert_eq!(r.status, 201);
        assert!(Instant::now() < deadline, "token never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let l = api.get("/upload-tokens").await;
    let tokens: Vec<&str> = l.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["token"].as_str().unwrap())
        .collect();
    assert!(!tokens.contains(&short.as_str()));
    assert_eq!(
        api.get(&format!("/upload-tokens/{short}")).await.status,
        404
    );
    // Delete then show → 404, upload → 401.
    let d = api
        .send(api.key(api.c.delete(format!("{}/upload-tokens/{forever}", api.url))))
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(
        api.get(&format!("/upload-tokens/{forever}")).await.status,
        404
    );
    let r = api
        .upload(&forever, None, &[P::File("file", "e", &small)])
        .await;
    assert_problem(&r, 401, "authentication-invalid-upload-token", "deleted");
}

#[tokio::test]
async fn bearer_auth_and_refresh() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let r = api
        .post("/auth/api-key", json!({"apiKey": common::API_KEY}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    let l = api.get_bearer("/upload-tokens", &access).await;
    assert_eq!(l.status, 200);
    let r = api
        .post("/auth/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .post("/auth/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_problem(
        &r,
        400,
        "authentication-invalid-user-credentials",
        "refresh reused",
    );

    // Short-lived access tokens (set through /_emulator/auth) expire; refreshing gives a new one.
    let r = api
        .post("/_emulator/auth", json!({"accessTokenTtl": 1}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .post("/auth/api-key", json!({"apiKey": common::API_KEY}))
        .await;
    assert_eq!(r.body["expires_in"], 1);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = api.get_bearer("/upload-tokens", &access).await;
        if l.status == 401 {
            assert_problem(
                &l,
                401,
                "authentication-invalid-access-token",
                "expired access token",
            );
            break;
        }
        assert_eq!(l.status, 200);
        assert!(Instant::now() < deadline, "access token never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = api
        .post("/auth/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn upload_limit_answers_429() {
    let em = common::Emulator::start_with(&["--upload-limit-per-minute", "2"]);
    let api = Api::new(&em);
    let token = api.token(0).await;
    let small = data(100, 1);
    for i in 0..2 {
        let r = api
            .upload(&token, None, &[P::File("file", "a", &small)])
            .await;
        assert_eq!(r.status, 201, "{i}");
        assert_eq!(r.headers["x-ratelimit-limit"], "2");
        assert_eq!(
            r.headers["x-ratelimit-remaining"],
            (1 - i).to_string().as_str()
        );
    }
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_problem(&r, 429, "too-many-requests", "over the limit");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    let after: u64 = r.headers["x-ratelimit-retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after));
    assert!(r.headers.contains_key("retry-after"));
    // Reads are not limited.
    assert_eq!(api.get("/upload-tokens").await.status, 200);
    // Lift the limit at run time.
    let r = api
        .post("/_emulator/limits", json!({"uploadsPerMinute": 0}))
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(api.emu_videos().await.len(), 3);
}

#[tokio::test]
async fn fault_fail_and_garbage() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let small = data(100, 1);
    api.faults(json!([
        {"path": "/upload", "count": 2, "action": "fail", "status": 502, "body": "<html><body>502 Bad Gateway</body></html>", "retry_after": 3},
        {"path": "/upload", "action": "fail", "status": 429, "retry_after": 7},
        {"path": "/upload", "action": "garbage"},
        {"path": "/upload", "action": "garbage", "body": "<html>portal</html>", "store": true},
        {"path": "/upload", "action": "fail", "status": 503, "store": true},
    ]))
    .await;
    for _ in 0..2 {
        let r = api
            .upload(&token, None, &[P::File("file", "a", &small)])
            .await;
        assert_eq!(r.status, 502);
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(r.text.contains("Bad Gateway"));
        assert_eq!(r.headers["retry-after"], "3");
        assert_rate_headers(&r, "fault");
    }
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_problem(&r, 429, "too-many-requests", "fault 429");
    assert_eq!(r.headers["x-ratelimit-retry-after"], "7");
    assert_eq!(r.headers["retry-after"], "7");
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "{\"videoId\":\"vi");
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    assert!(api.emu_videos().await.is_empty(), "nothing stored so far");
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, "<html>portal</html>"));
    assert_eq!(
        api.emu_videos().await.len(),
        1,
        "store: true keeps the chunk"
    );
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_problem(&r, 503, "internal-server-error", "store then 503");
    assert_eq!(api.emu_videos().await.len(), 2);
    let plan = api.get("/_emulator/faults").await;
    assert_eq!(plan.body["fired"], 6);
    // Plan exhausted: normal again.
    let r = api
        .upload(&token, None, &[P::File("file", "a", &small)])
        .await;
    assert_eq!(r.status, 201);
    // skip + method, and DELETE clears.
    api.faults(json!({"rules": [{"path": "/upload-tokens", "method": "GET", "skip": 1, "action": "fail", "status": 500}]})).await;
    assert_eq!(api.get("/upload-tokens").await.status, 200);
    assert_eq!(api.get("/upload-tokens").await.status, 500);
    api.faults(json!([{"path": "/", "action": "fail", "status": 500, "count": 100}]))
        .await;
    let d = api
        .send(api.c.delete(format!("{}/_emulator/faults", api.url)))
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(api.get("/upload-tokens").await.status, 200);
    let bad = api
        .post(
            "/_emulator/faults",
            json!([{"path": "/", "action": "explode"}]),
        )
        .await;
    assert_problem(&bad, 400, "invalid-payload", "bad plan");
}

#[tokio::test]
async fn fault_reset_sends_rst_and_stores_nothing() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    api.faults(json!([{"path": "/upload", "action": "reset", "after_bytes": 1000}]))
        .await;
    let content = data(2 * MIB, 3);
    let body = form(&[P::File("file", "a", &content)]);
    let head = format!(
        "POST /upload?token={token} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        content_type(),
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(em.addr()).await.unwrap();
    let mut err = None;
    if let Err(e) = s.write_all(head.as_bytes()).await {
        err = Some(e);
    }
    if err.is_none()
        && let Err(e) = s.write_all(&body).await
    {
        err = Some(e);
    }
    if err.is_none() {
        let mut buf = vec![0u8; 1024];
        match s.read(&mut buf).await {
            Err(e) => err = Some(e),
            Ok(n) => panic!(
                "expected a reset, read {n} bytes: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
    }
    let err = err.expect("an error");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    assert!(api.emu_videos().await.is_empty());
    // The stats saw at least the bytes before the reset.
    let stats = api.get("/_emulator/stats").await;
    assert!(stats.body["uploadBodyBytes"].as_u64().unwrap() >= 1000);
    assert_eq!(stats.body["requests"]["POST /upload"], 1);
    // The next upload works.
    let r = api
        .upload(&token, None, &[P::File("file", "a", &content)])
        .await;
    assert_eq!(r.status, 201);

    // A body shorter than after_bytes is read completely, then the connection is reset (RST, not
    // the FIN a plain close of a fully read socket would give).
    api.faults(json!([{"path": "/upload", "action": "reset", "after_bytes": 100_000_000}]))
        .await;
    let body = form(&[P::File("file", "short", b"tiny")]);
    let mut s = tokio::net::TcpStream::connect(em.addr()).await.unwrap();
    s.write_all(
        format!(
            "POST /upload?token={token} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            content_type(),
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&body).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let read = s.read(&mut buf).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert_eq!(
        api.emu_videos().await.len(),
        1,
        "nothing stored by the reset"
    );
}

#[tokio::test]
async fn fault_drop_delay_throttle_blackhole() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let small = data(100_000, 5);

    // drop: stored, but no answer.
    api.faults(json!([{"path": "/upload", "action": "drop"}]))
        .await;
    let err = api
        .upload_request(&token, &[P::File("file", "dropped", &small)])
        .send()
        .await
        .expect_err("dropped connection");
    assert!(!err.is_timeout(), "{err:?}");
    let all = api.emu_videos().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["title"], "dropped");
    assert_eq!(all[0]["sha256"], sha(&small));

    // delay: stored, answered late (the client gives up first).
    api.faults(json!([{"path": "/upload", "action": "delay", "ms": 3000}]))
        .await;
    let err = api
        .upload_request(&token, &[P::File("file", "delayed", &small)])
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("timeout");
    assert!(err.is_timeout(), "{err:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.emu_videos().await.len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // throttle: 100 kB at 200 kB/s takes at least ~0.3 s (a lower bound only).
    api.faults(json!([{"path": "/upload", "action": "throttle", "bytes_per_sec": 200000}]))
        .await;
    let started = Instant::now();
    let r = api
        .upload(&token, None, &[P::File("file", "slow", &small)])
        .await;
    assert_eq!(r.status, 201);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // blackhole: never answers, nothing stored.
    api.faults(json!([{"path": "/upload", "action": "blackhole"}]))
        .await;
    let err = api
        .upload_request(&token, &[P::File("file", "hole", &small)])
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .expect_err("timeout");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(api.emu_videos().await.len(), 3);
    let stats = api.get("/_emulator/stats").await;
    assert_eq!(stats.body["requests"]["POST /upload"], 4);
}

#[tokio::test]
async fn conn_rate_bps_caps_the_connection_read_rate() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let body = data(600_000, 9);
    api.faults(json!([{"path": "/upload", "action": "conn_rate_bps", "bytes_per_sec": 400000}]))
        .await;
    // 600 kB at 400 kB/s: at least ~1.4 s (a lower bound only; the burst is 10 ms).
    let started = Instant::now();
    let r = api
        .upload(&token, None, &[P::File("file", "capped", &body)])
        .await;
    assert_eq!(r.status, 201);
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
    let all = api.emu_videos().await;
    assert_eq!(all[0]["sha256"], sha(&body), "served normally, all bytes");
    let faults = api.get("/_emulator/faults").await;
    assert_eq!(faults.body["fired"], 1);
}

#[tokio::test]
async fn prints_the_real_port_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args(["emulator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix("listening on http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let port: u16 = addr.parse().unwrap();
    assert_ne!(port, 0);
    // Without --api-key any non-empty key works.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/upload-tokens"))
        .basic_auth("anything", Some(""))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn concurrent_copies_of_one_part_store_it_once() {
    let em = common::Emulator::start();
    let api = Api::new(&em);
    let token = api.token(0).await;
    let first = data(5 * MIB, 21);
    let r = api
        .upload(&token, Some("part 1/3"), &[P::File("file", "c", &first)])
        .await;
    let id = r.body["videoId"].as_str().unwrap().to_owned();
    let second = data(5 * MIB, 22);
    let parts = [P::Text("videoId", &id), P::File("file", "c", &second)];
    let (a, b) = tokio::join!(
        api.upload(&token, Some("part 2/3"), &parts),
        api.upload(&token, Some("part 2/3"), &parts)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 400]);
    let rejected = if a.status == 400 { &a } else { &b };
    assert_problem(
        rejected,
        400,
        "video-content-range-by-part-part-already-sent",
        "concurrent copy",
    );
    let v = api.emu_video(&id).await;
    assert_eq!(v["chunkCount"], 2);
    assert_eq!(v["complete"], false);
    // Once complete, a resent last part is "already uploaded".
    let last = data(10, 23);
    let parts = [P::Text("videoId", &id), P::File("file", "c", &last)];
    let r = api.upload(&token, Some("part 3/3"), &parts).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        api.emu_video(&id).await["sha256"],
        sha(&[first.as_slice(), second.as_slice(), last.as_slice()].concat())
    );
    let r = api.upload(&token, Some("part 3/3"), &parts).await;
    assert_problem(&r, 400, "video-source-already-uploaded", "resent last part");
}
