//! `POST /upload?token=…`: a whole file, or one chunk of it, streamed from disk.
//!
//! The file part's bytes are read 128 KiB at a time (open, seek, read at most `len`) and handed to
//! reqwest as a stream of known length; a chunk is never held in memory. A [`BodyObserver`] sees
//! every piece before it goes out (rate limiting, hashing, progress). If the file ends before
//! `len` bytes (truncated while uploading) the request is aborted and the error is
//! [`ApiError::FileTruncated`] (class Local): the server never sees a short body as complete.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use reqwest::header::CONTENT_RANGE;
use reqwest::multipart::{Form, Part};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::chunks::ChunkRange;
use super::client::Client;
use super::error::{ApiError, Credential};
use super::models::Video;
use crate::secret::Secret;

const OP: &str = "POST /upload";
/// Bytes read from the file per piece of the request body.
const PIECE: usize = 128 * 1024;

/// Watches the body of an upload as it streams out of the file.
pub trait BodyObserver: Send + Sync + 'static {
    /// Awaited before `n` bytes are handed to the connection (e.g. a token bucket).
    fn before_send(&self, n: usize) -> BoxFuture<'static, ()> {
        let _ = n;
        Box::pin(std::future::ready(()))
    }

    /// The bytes about to be sent, in file order (hashing, progress).
    fn on_bytes(&self, data: &[u8]);
}

/// One upload request. Cloning is cheap (the observer is shared), e.g. to retry it.
#[derive(Clone)]
pub struct UploadRequest {
    pub path: PathBuf,
    /// File name of the file part; the first request's one becomes the video title.
    pub file_name: String,
    /// The chunk to send; `None` sends the whole file without `Content-Range`.
    pub range: Option<ChunkRange>,
    /// The video to upload into (every chunk after the first, or a pre-created container).
    pub video_id: Option<String>,
    pub observer: Option<Arc<dyn BodyObserver>>,
}

impl fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadRequest")
            .field("path", &self.path)
            .field("file_name", &self.file_name)
            .field("range", &self.range)
            .field("video_id", &self.video_id)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// What a 2xx upload answer said.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadResponse {
    pub video_id: String,
    /// The full Video when the answer was one (the completing chunk or a single-request upload).
    pub video: Option<Video>,
}

/// Where the body stream records why it stopped early, so the request error can say so.
type Failure = Arc<Mutex<Option<ApiError>>>;

struct BodyState {
    file: tokio::fs::File,
    path: PathBuf,
    pos: u64,
    end: u64,
    observer: Option<Arc<dyn BodyObserver>>,
    failure: Failure,
}

fn record(failure: &Failure, err: ApiError) {
    if let Ok(mut slot) = failure.lock() {
        slot.get_or_insert(err);
    }
}

/// The file's bytes `[pos, end)` as a stream of pieces; fails if the file ends early.
fn body_stream(
    state: BodyState,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(state, |mut st| async move {
        if st.pos >= st.end {
            return Ok(None);
        }
        let want = PIECE.min(usize::try_from(st.end - st.pos).unwrap_or(PIECE));
        let mut buf = BytesMut::with_capacity(want);
        let read = (&mut st.file).take(want as u64).read_buf(&mut buf).await;
        let n = match read {
            Ok(0) => {
                record(
                    &st.failure,
                    ApiError::FileTruncated {
                        path: st.path.clone(),
                        at: st.pos,
                        expected_end: st.end,
                    },
                );
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file was truncated while uploading",
                ));
            }
            Ok(n) => n,
            Err(e) => {
                record(
                    &st.failure,
                    ApiError::File {
                        path: st.path.clone(),
                        source: io::Error::new(e.kind(), e.to_string()),
                    },
                );
                return Err(e);
            }
        };
        let data = buf.freeze();
        if let Some(observer) = &st.observer {
            observer.before_send(n).await;
            observer.on_bytes(&data);
        }
        st.pos += n as u64;
        Ok(Some((data, st)))
    })
}

/// Reads the 2xx body: it must be a JSON object with a non-empty `videoId`.
fn parse_upload_body(status: u16, body: &[u8]) -> Result<UploadResponse, ApiError> {
    let invalid = |reason: String| ApiError::InvalidResponse {
        op: OP,
        status,
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        invalid(format!("not JSON ({e}): {text:?}"))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    let video_id = object
        .get("videoId")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid("no videoId in the answer".into()))?
        .to_owned();
    // An intermediate chunk's answer is only `{"videoId": …}`; anything more is a full Video.
    let video = if object.len() > 1 {
        serde_json::from_value::<Video>(value.clone()).ok()
    } else {
        None
    };
    Ok(UploadResponse { video_id, video })
}

impl Client {
    /// Uploads the whole file or one chunk with a delegated upload token.
    pub async fn upload(
        &self,
        token: &Secret,
        req: UploadRequest,
    ) -> Result<UploadResponse, ApiError> {
        let file_error = |source: io::Error| ApiError::File {
            path: req.path.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&req.path).await.map_err(file_error)?;
        let (offset, len) = match req.range {
            Some(r) => (r.offset, r.len),
            None => (0, file.metadata().await.map_err(file_error)?.len()),
        };
        if offset > 0 {
            file.seek(io::SeekFrom::Start(offset))
                .await
                .map_err(file_error)?;
        }
        let failure: Failure = Arc::new(Mutex::new(None));
        let stream = body_stream(BodyState {
            file,
            path: req.path.clone(),
            pos: offset,
            end: offset.saturating_add(len),
            observer: req.observer.clone(),
            failure: failure.clone(),
        });
        let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
            .file_name(req.file_name.clone())
            .mime_str("application/octet-stream")
            .map_err(|e| ApiError::Setup(e.to_string()))?;
        let mut form = Form::new();
        if let Some(id) = &req.video_id {
            form = form.text("videoId", id.clone());
        }
        form = form.part("file", part);

        let mut url = self.url(&["upload"])?;
        url.query_pairs_mut().append_pair("token", token.expose());
        let mut request = self.http().post(url).multipart(form);
        if let Some(r) = req.range {
            request = request.header(CONTENT_RANGE, r.content_range());
        }
        let result = self
            .execute(
                OP,
                Credential::UploadToken,
                request,
                self.request_timeout(len),
            )
            .await;
        if let Some(local) = failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(local);
        }
        let (status, body) = result.map_err(|e| e.scrub(token))?;
        parse_upload_body(status, &body).map_err(|e| e.scrub(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_bodies() {
        let mid = parse_upload_body(201, br#"{"videoId":"vi1"}"#).unwrap();
        assert_eq!(
            mid,
            UploadResponse {
                video_id: "vi1".into(),
                video: None
            }
        );
        let full =
            parse_upload_body(201, br#"{"videoId":"vi1","title":"a.mp4","tags":[]}"#).unwrap();
        assert_eq!(full.video.unwrap().title.as_deref(), Some("a.mp4"));
        for bad in [
            &b"{}"[..],
            b"",
            b"<html>",
            b"[]",
            br#"{"videoId":""}"#,
            br#"{"videoId":5}"#,
        ] {
            let e = parse_upload_body(201, bad).unwrap_err();
            assert_eq!(e.class(), super::super::ErrorClass::Transient, "{e}");
        }
    }
}
