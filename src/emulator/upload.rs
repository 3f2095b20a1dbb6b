//! `POST /upload?token=` and `POST /videos/{id}/source`: the multipart body streams to a temp
//! file, then the chunk is checked against the video's state ([`super::range`]) and stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::disposition;
use super::errors::{ApiError, ApiResult, json_response};
use super::extract::{IdPath, Keyed};
use super::model::{Chunk, RequestLog, UploadState, VideoRec};
use super::paging::param;
use super::range::{self, ContentRange};
use super::state::Shared;
use super::store::fsync_dir;
use super::tokens::live_token;
use super::util::{new_id, now_ms, random_secret};

/// Longest `videoId` form value read.
const MAX_TEXT_FIELD: usize = 1024;

/// A received body file, removed on drop unless stored.
struct TmpFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The parsed multipart form.
struct Form {
    file: TmpFile,
    len: u64,
    filename: String,
    video_id: Option<String>,
}

fn file_err(slug: &'static str, title: &'static str) -> ApiError {
    ApiError::bad(slug, title).name("file")
}

fn no_file() -> ApiError {
    file_err(
        "uploaded-file-no-file",
        "There is no uploaded file in the request.",
    )
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!("cannot store a request body: {e}");
    ApiError::internal("cannot store the request body")
}

fn multipart_error(e: multer::Error) -> ApiError {
    ApiError::invalid_payload(format!("The multipart body is malformed: {e}"))
}

/// Streams the multipart body: exactly one part with a file name (any field name) goes to a temp
/// file (at most `cap` bytes written, all bytes counted); a `videoId` text part may come in any
/// order; other parts are ignored. A body that is not `multipart/form-data` has no uploaded file
/// (UNCONFIRMED: the service's answer to a non-multipart body is not documented).
async fn read_form(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
    cap: u64,
) -> Result<Form, ApiError> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(no_file)?;
    let mut mp = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut file: Option<(TmpFile, u64, String)> = None;
    let mut files = 0u32;
    let mut video_id = None;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        // A strict server refuses a part whose disposition is malformed (multer is lenient).
        let disposition = field.headers().get(header::CONTENT_DISPOSITION);
        if !disposition.is_some_and(|d| disposition::is_strict(d.as_bytes())) {
            return Err(ApiError::invalid_payload(
                "The multipart body is malformed: invalid Content-Disposition header".to_owned(),
            ));
        }
        let filename = field
            .file_name()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if let Some(filename) = filename {
            files += 1;
            if files > 1 {
                while field.chunk().await.map_err(multipart_error)?.is_some() {}
                continue;
            }
            let tmp = TmpFile {
                path: shared
                    .store
                    .tmp_dir()
                    .join(format!("{}.body", random_secret(16))),
                keep: false,
            };
            let f = tokio::fs::File::create(&tmp.path).await.map_err(io_error)?;
            let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, f);
            let mut len = 0u64;
            while let Some(bytes) = field.chunk().await.map_err(multipart_error)? {
                let n = bytes.len() as u64;
                if len + n <= cap {
                    w.write_all(&bytes).await.map_err(io_error)?;
                }
                len += n;
            }
            w.flush().await.map_err(io_error)?;
            w.into_inner().sync_all().await.map_err(io_error)?;
            file = Some((tmp, len, filename));
        } else if field.name() == Some("videoId") {
            let mut text = Vec::new();
            while let Some(bytes) = field.chunk().await.map_err(multipart_error)? {
                if text.len() + bytes.len() <= MAX_TEXT_FIELD {
                    text.extend_from_slice(&bytes);
                }
            }
            let text = String::from_utf8_lossy(&text).trim().to_owned();
            video_id = (!text.is_empty()).then_some(text);
        } else {
            while field.chunk().await.map_err(multipart_error)?.is_some() {}
        }
    }
    if files > 1 {
        return Err(file_err(
            "uploaded-file-multiple-files",
            "There is more than one uploaded file in the request.",
        ));
    }
    let (file, len, filename) = file.ok_or_else(no_file)?;
    if len == 0 {
        return Err(file_err(
            "uploaded-file-empty",
            "The uploaded file is empty.",
        ));
    }
    Ok(Form {
        file,
        len,
        filename,
        video_id,
    })
}

/// SHA-256 of the chunks in content order.
fn hash_chunks(dir: &Path, files: &[String]) -> std::io::Result<String> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    for name in files {
        let mut f = std::fs::File::open(dir.join(name))?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Where a request uploads to.
enum Target {
    /// `/upload?token=`: the form's `videoId`, or a new video.
    Token,
    /// `/videos/{id}/source`.
    Video(String),
}

/// `POST /upload?token=…`. The `Authorization` header is ignored (PROTOCOL §4).
pub async fn token_upload(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let token = param(&query, "token").unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication-missing-upload-token",
            "The upload token is missing.",
        )
        .name("token"));
    }
    if !live_token(&shared, token).await {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication-invalid-upload-token",
            "The upload token is invalid or expired.",
        )
        .name("token"));
    }
    receive(&shared, &headers, body, Target::Token).await
}

/// `POST /videos/{id}/source` (API key).
pub async fn source_upload(
    IdPath(id): IdPath,
    Keyed(shared): Keyed,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    if !shared.video_exists(&id) {
        return Err(ApiError::not_found("videoId"));
    }
    receive(&shared, &headers, body, Target::Video(id)).await
}

async fn receive(shared: &Shared, headers: &HeaderMap, body: Body, target: Target) -> ApiResult {
    let started_ms = now_ms();
    let cr_text = match headers.get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| range::malformed())?.to_owned()),
    };
    let cr: Option<ContentRange> = match &cr_text {
        None => None,
        Some(text) => {
            let cr = range::parse(text)?;
            range::check_header(&cr)?;
            Some(cr)
        }
    };
    let form = read_form(shared, headers, body, range::body_cap(cr.as_ref())).await?;
    let (route, video_id) = match target {
        Target::Token => ("POST /upload", form.video_id.clone()),
        // UNCONFIRMED (PROTOCOL §1.3): an unknown `videoId` on /upload answers 404 resource-not-found.
        Target::Video(id) => ("POST /videos/{id}/source", Some(id)),
    };
    let with_video_id = form.video_id.is_some();
    let arc = match video_id {
        Some(id) => shared
            .video(&id)
            .ok_or_else(|| ApiError::not_found("videoId"))?,
        None => {
            // No videoId: a new video titled with the file part's name (the real service's quirk,
            // PROTOCOL §1.3/§1.5), created only if the chunk is acceptable.
            range::check_upload(&UploadState::default(), cr.as_ref(), form.len)?;
            let video = VideoRec::new(
                new_id("vi"),
                form.filename.clone(),
                now_ms(),
                shared.next_seq(),
            );
            let snapshot = video.clone();
            shared.blocking(move |s| s.save_video(&snapshot)).await?;
            shared.insert_video(video)
        }
    };
    let mut v = arc.lock().await;
    if !shared.video_exists(&v.id) {
        return Err(ApiError::not_found("videoId"));
    }
    let now = now_ms();
    let mut log = RequestLog {
        route: route.to_owned(),
        content_range: cr_text.clone(),
        body_length: form.len,
        with_video_id,
        status: 201,
        error: None,
        received_ms: now,
        started_ms,
    };
    if let Err(e) = range::check_upload(&v.upload, cr.as_ref(), form.len) {
        log.status = e.status.as_u16();
        log.error = Some(e.slug.to_owned());
        v.requests.push(log);
        let snapshot = v.clone();
        shared.blocking(move |s| s.save_video(&snapshot)).await?;
        return Err(e);
    }
    let chunk_name = range::chunk_file(cr.as_ref());
    let chunks_dir = shared.store.chunks_dir(&v.id);
    let mut tmp = form.file;
    {
        let (from, dir, to) = (
            tmp.path.clone(),
            chunks_dir.clone(),
            chunks_dir.join(&chunk_name),
        );
        shared
            .blocking(move |_| {
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::rename(&from, &to))
                    .and_then(|()| fsync_dir(&dir))
                    .map_err(|source| super::EmulatorError::Io { path: to, source })
            })
            .await?;
        tmp.keep = true;
    }
    let chunk = Chunk {
        file: chunk_name,
        content_range: cr_text,
        from: None,
        to: None,
        part: None,
        length: form.len,
        with_video_id,
        received_ms: now,
    };
    // Applied to a copy, stored only once the SHA-256 is known: hashing a large upload takes
    // seconds, and a client that goes away meanwhile cancels this handler. Applied in place, the
    // video stayed complete in memory without its hash, and the client's resend of the last
    // chunk was answered "already uploaded" (`sha256: null` for good).
    let mut upload = v.upload.clone();
    let complete = range::apply(&mut upload, cr.as_ref(), chunk);
    if complete {
        let files: Vec<String> = upload.ordered().iter().map(|c| c.file.clone()).collect();
        let dir = chunks_dir.clone();
        let sha = shared
            .blocking(move |_| {
                // A slow hash (GiBs), for the test whose client gives up meanwhile.
                fail::fail_point!("emulator-before-hash");
                hash_chunks(&dir, &files)
                    .map_err(|source| super::EmulatorError::Io { path: dir, source })
            })
            .await?;
        upload.sha256 = Some(sha);
    }
    v.upload = upload;
    v.updated_ms = now;
    v.requests.push(log);
    let snapshot = v.clone();
    shared.blocking(move |s| s.save_video(&snapshot)).await?;
    tracing::info!(video = %v.id, complete, bytes = form.len, "chunk stored");
    let body = if complete {
        v.to_json()
    } else {
        json!({ "videoId": v.id })
    };
    Ok(json_response(StatusCode::CREATED, &body))
}
