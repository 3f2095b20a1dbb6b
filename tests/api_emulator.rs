//! ingestd's api.video client against the real local endpoint (`ingestd emulator`, a separate
//! process on 127.0.0.1): token CRUD, chunked and single uploads verified by the endpoint's own
//! SHA-256 of the assembled video, and the error classes callers act on.

mod common;

use std::path::{Path, PathBuf};

use common::daemon::{sha256_file, write_file};
use common::{API_KEY, Emulator};
use ingestd::api::{
    AuthMode, ChunkRange, Client, ClientOptions, ErrorClass, OpenFile, TokenListQuery,
    UploadRequest, UploadResponse, VideoCreation, chunk_at, plan_chunks,
};
use ingestd::secret::Secret;

const MIB: u64 = 1024 * 1024;

fn client(em: &Emulator, mode: AuthMode) -> Client {
    Client::new(ClientOptions::new(em.url.parse().unwrap()))
        .unwrap()
        .with_api_key(Secret::new(API_KEY), mode)
}

/// A file of `len` pseudo-random bytes (so that misplaced chunks change the hash).
fn sample_file(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    write_file(&path, len, len);
    path
}

/// The endpoint's test view of a video: `GET /_emulator/videos/{id}` (see docs/EMULATOR.md).
async fn emulator_video(em: &Emulator, id: &str) -> serde_json::Value {
    let resp = reqwest::get(format!("{}/_emulator/videos/{id}", em.url))
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

fn req(path: &Path, range: Option<ChunkRange>, video_id: Option<&str>) -> UploadRequest {
    UploadRequest {
        path: path.to_owned(),
        file_name: path.file_name().unwrap().to_string_lossy().into_owned(),
        range,
        whole_len: None,
        video_id: video_id.map(str::to_owned),
        observer: None,
        file: None,
    }
}

/// Uploads every chunk in order, carrying the first answer's `videoId` on the later ones.
async fn upload_chunked(
    client: &Client,
    token: &Secret,
    path: &Path,
    chunk_size: u64,
) -> UploadResponse {
    let total = std::fs::metadata(path).unwrap().len();
    let mut video_id: Option<String> = None;
    let mut last = None;
    for c in plan_chunks(total, chunk_size) {
        let r = client
            .upload(token, req(path, Some(c), video_id.as_deref()))
            .await
            .unwrap_or_else(|e| panic!("chunk {c}: {e}"));
        if let Some(id) = &video_id {
            assert_eq!(&r.video_id, id, "chunk {c} landed in another video");
        }
        assert_eq!(r.video.is_some(), c.is_last(), "chunk {c}: {r:?}");
        video_id = Some(r.video_id.clone());
        last = Some(r);
    }
    last.unwrap()
}

#[tokio::test]
async fn token_crud_through_the_client() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Basic);
    let t = c.create_upload_token(60).await.unwrap();
    assert_eq!(t.ttl, 60);
    assert!(t.expires_at.is_some());
    let forever = c.create_upload_token(0).await.unwrap();
    assert_eq!(forever.expires_at, None);
    let page = c
        .list_upload_tokens(&TokenListQuery::default())
        .await
        .unwrap();
    assert!(page.data.iter().any(|x| x.token == t.token));
    assert_eq!(c.get_upload_token(&t.token).await.unwrap().token, t.token);
    c.delete_upload_token(&t.token).await.unwrap();
    let gone = c.get_upload_token(&t.token).await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
    assert_eq!(gone.class(), ErrorClass::Permanent);
    assert_eq!(gone.slug(), Some("resource-not-found"));
}

#[tokio::test]
async fn bearer_auth_works_against_the_endpoint() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Bearer);
    let t = c.create_upload_token(0).await.unwrap();
    assert_eq!(c.get_upload_token(&t.token).await.unwrap(), t);
}

#[tokio::test]
async fn wrong_api_key_is_rejected() {
    let em = Emulator::start();
    for mode in [AuthMode::Basic, AuthMode::Bearer] {
        let c = Client::new(ClientOptions::new(em.url.parse().unwrap()))
            .unwrap()
            .with_api_key(Secret::new("notTheKeyNotTheKey123"), mode);
        let e = c.create_upload_token(0).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::ApiKeyRejected, "{mode:?}: {e}");
        assert!(!format!("{e} {e:?}").contains("notTheKeyNotTheKey123"));
    }
}

#[tokio::test]
async fn chunked_upload_assembles_the_file() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Basic);
    let token = Secret::new(c.create_upload_token(0).await.unwrap().token);
    let dir = tempfile::tempdir().unwrap();
    // Three full 5 MiB chunks and a short last one.
    let path = sample_file(dir.path(), "take-01.mp4", 3 * 5 * MIB + 1234567);
    let done = upload_chunked(&c, &token, &path, 5 * MIB).await;
    let video = done.video.unwrap();
    assert_eq!(video.title.as_deref(), Some("take-01.mp4"));

    let seen = emulator_video(&em, &done.video_id).await;
    assert_eq!(
        seen["sha256"].as_str(),
        Some(sha256_file(&path).as_str()),
        "{seen}"
    );
    assert_eq!(
        c.get_video(&done.video_id).await.unwrap().title.as_deref(),
        Some("take-01.mp4")
    );

    // Re-sending the completing chunk: the service already has the whole source.
    let total = std::fs::metadata(&path).unwrap().len();
    let last = chunk_at(15 * MIB, total, 5 * MIB);
    let again = c
        .upload(&token, req(&path, Some(last), Some(&done.video_id)))
        .await
        .unwrap_err();
    assert_eq!(again.class(), ErrorClass::Permanent, "{again}");
    assert!(
        matches!(
            again.slug(),
            Some("video-source-already-uploaded" | "video-content-range-by-bytes-range-overlap")
        ),
        "{again}"
    );
}

/// A file handed over open is read through that handle for every chunk, never by its path:
/// here the path is gone (renamed away) before the first request.
#[tokio::test]
async fn chunks_read_the_handed_over_open_file_not_the_path() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Basic);
    let token = Secret::new(c.create_upload_token(0).await.unwrap().token);
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path(), "take-02.mp4", 2 * 5 * MIB + 4321);
    let expected = sha256_file(&path);
    let total = std::fs::metadata(&path).unwrap().len();
    let open = OpenFile::open(&path).unwrap();
    std::fs::rename(&path, dir.path().join("elsewhere.bin")).unwrap();
    let mut video_id: Option<String> = None;
    for chunk in plan_chunks(total, 5 * MIB) {
        let mut r = req(&path, Some(chunk), video_id.as_deref());
        r.file = Some(open.clone());
        let resp = c
            .upload(&token, r)
            .await
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        video_id = Some(resp.video_id);
    }
    let seen = emulator_video(&em, video_id.as_deref().unwrap()).await;
    assert_eq!(seen["sha256"].as_str(), Some(expected.as_str()), "{seen}");
}

#[tokio::test]
async fn resent_chunk_is_an_overlap_and_resume_completes() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Basic);
    let token = Secret::new(c.create_upload_token(0).await.unwrap().token);
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path(), "resume.mov", 2 * 5 * MIB + 10);
    let total = std::fs::metadata(&path).unwrap().len();
    let first = c
        .upload(&token, req(&path, Some(chunk_at(0, total, 5 * MIB)), None))
        .await
        .unwrap();
    assert!(first.video.is_none());
    let id = first.video_id;
    // A crash after the chunk was acknowledged but before the offset was committed: re-send it.
    let dup = c
        .upload(
            &token,
            req(&path, Some(chunk_at(0, total, 5 * MIB)), Some(&id)),
        )
        .await
        .unwrap_err();
    assert_eq!(dup.class(), ErrorClass::Permanent);
    assert_eq!(
        dup.slug(),
        Some("video-content-range-by-bytes-range-overlap"),
        "{dup}"
    );
    // Resume from the committed offset.
    let mut offset = 5 * MIB;
    while offset < total {
        let ch = chunk_at(offset, total, 5 * MIB);
        c.upload(&token, req(&path, Some(ch), Some(&id)))
            .await
            .unwrap();
        offset = ch.end();
    }
    let seen = emulator_video(&em, &id).await;
    assert_eq!(
        seen["sha256"].as_str(),
        Some(sha256_file(&path).as_str()),
        "{seen}"
    );
    let status = c.video_status(&id).await.unwrap();
    let received = status.ingest.unwrap().received_bytes;
    assert_eq!(
        received.iter().map(|r| r.to - r.from + 1).sum::<u64>(),
        total
    );
}

#[tokio::test]
async fn single_request_upload_into_a_precreated_video() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Basic);
    let token = Secret::new(c.create_upload_token(0).await.unwrap().token);
    let video = c
        .create_video(&VideoCreation {
            title: "Morning show".into(),
            tags: vec!["ingestd".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path(), "small.mp4", 300_000);
    let r = c
        .upload(&token, req(&path, None, Some(&video.video_id)))
        .await
        .unwrap();
    assert_eq!(r.video_id, video.video_id);
    let full = r.video.unwrap();
    assert_eq!(full.title.as_deref(), Some("Morning show"));
    let seen = emulator_video(&em, &r.video_id).await;
    assert_eq!(
        seen["sha256"].as_str(),
        Some(sha256_file(&path).as_str()),
        "{seen}"
    );
}

#[tokio::test]
async fn deleted_or_unknown_token_is_token_rejected() {
    let em = Emulator::start();
    let c = client(&em, AuthMode::Basic);
    let t = c.create_upload_token(0).await.unwrap();
    c.delete_upload_token(&t.token).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path(), "x.mp4", 1000);
    for token in [t.token.as_str(), "to0000000000000000000000"] {
        let e = c
            .upload(&Secret::new(token), req(&path, None, None))
            .await
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::TokenRejected, "{e}");
        assert_eq!(e.slug(), Some("authentication-invalid-upload-token"), "{e}");
        assert!(!format!("{e} {e:?}").contains(token));
    }
}
