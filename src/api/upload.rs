//! `POST /upload?token=…`: a whole file, or one chunk of it, streamed from disk.
//!
//! The file part's bytes are read `PIECE` bytes at a time with positioned reads (`pread`) on
//! tokio's blocking pool, straight into the buffer that goes to the socket (no second copy).
//! While the connection writes one piece, the next is already being read: one piece of
//! read-ahead, so a chunk is never held in memory; piece buffers are reused
//! (`api/pieces.rs`). A [`BodyObserver`] sees every piece: it is
//! awaited before the piece goes out (rate limiting), and it is shown the bytes right after they
//! are read, on the blocking thread while they are hot in the cache (hashing, progress).
//! Once [`Client::upload`] returns, the observer is never called again for that request, even if
//! the connection still holds the body (a closed [`Gate`]), so a failed chunk can be rolled back
//! safely; a request given up (dropped, timed out) fails at its body's next piece, so its
//! connection is reset rather than shut down ([`super::abandon`]), and its last piece never goes.
//! If the file ends before `len` bytes (truncated while uploading) the request is aborted and the
//! error is [`ApiError::FileTruncated`] (class Local): the server never sees a short body as
//! complete.
//!
//! The last bytes of a first request (no `videoId`) wait, on a client with its own pool, until
//! the endpoint has read the rest ([`drain`]): the window in which a kill leaves a video nobody
//! knows of is then only their transit and the endpoint's own work.
//!
//! The caller may hand over the file already open ([`OpenFile`], e.g. the handle it opened to check
//! the file is readable): then every chunk of an upload reads that one handle, never the path
//! again.

use crate::escape::Show as _;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use reqwest::header::CONTENT_RANGE;
use reqwest::multipart::{Form, Part};
use tokio::task::JoinHandle;
use tracing::debug;

use super::abandon::Gate;
use super::chunks::ChunkRange;
use super::client::Client;
use super::drain::{self, Drain, Step};
use super::error::{ApiError, Credential};
use super::models::Video;
use super::tcp_info::ConnSlot;
use crate::secret::Secret;

const OP: &str = "POST /upload";
/// Bytes read from the file per piece of the request body (512 KiB: few syscalls and thread
/// hand-offs per GiB; at most two pieces per request are in memory at once).
const PIECE: usize = 512 * 1024;
/// The last piece of a body is at most this long (split off the piece before it): the journal
/// records a first request's body as sent just before its last piece goes, so a small last piece
/// keeps that record close to the moment the body really completes.
const LAST_PIECE: u64 = 64 * 1024;

/// Watches the body of an upload as it streams out of the file.
pub trait BodyObserver: Send + Sync + 'static {
    /// Awaited before `n` bytes are handed to the connection (e.g. a token bucket).
    fn before_send(&self, n: usize) -> BoxFuture<'static, ()> {
        let _ = n;
        Box::pin(std::future::ready(()))
    }

    /// The bytes about to be sent, in file order (hashing, progress). Called on a blocking
    /// thread, never after [`Client::upload`] has returned.
    fn on_bytes(&self, data: &[u8]);

    /// Awaited just before the last piece of the body is handed to the connection: until then
    /// the endpoint cannot complete the request (an aborted connection closes with a RST). An
    /// error stops the request before that piece; it then fails with [`ApiError::Stopped`].
    fn before_last_piece(&self) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// One upload request. Cloning is cheap (the observer is shared), e.g. to retry it.
#[derive(Clone)]
pub struct UploadRequest {
    pub path: PathBuf,
    /// File name of the file part; the first request's one becomes the video title.
    pub file_name: String,
    /// The chunk to send; `None` sends the whole file without `Content-Range`.
    pub range: Option<ChunkRange>,
    /// With `range: None`: the size the file must have (the journal's). Exactly that many bytes
    /// are sent, so a file rewritten between the caller's check and the open cannot slip a
    /// different length into the request (a shorter file fails as truncated). `None`: the size
    /// at open.
    pub whole_len: Option<u64>,
    /// The video to upload into (every chunk after the first, or a pre-created container).
    pub video_id: Option<String>,
    pub observer: Option<Arc<dyn BodyObserver>>,
    /// `path`, already open: read instead of opening `path` (the worker opens a file once per
    /// attempt, for all its chunks). `None`: `path` is opened for this request.
    pub file: Option<OpenFile>,
}

/// An open file shared by the requests of one upload. Pieces are read with positioned reads
/// (`pread`): no shared file position, so a read-ahead left running by an aborted request never
/// disturbs the next request's read, and no lock is needed.
#[derive(Clone, Debug)]
pub struct OpenFile(Arc<File>);

impl From<File> for OpenFile {
    fn from(file: File) -> OpenFile {
        OpenFile(Arc::new(file))
    }
}

impl OpenFile {
    /// Opens `path` for reading.
    pub fn open(path: &std::path::Path) -> io::Result<OpenFile> {
        File::open(path).map(OpenFile::from)
    }

    /// The open file itself (for positioned reads elsewhere, e.g. resume hashing).
    pub fn file(&self) -> &File {
        &self.0
    }

    /// The open file's metadata (`fstat`).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.0.metadata()
    }

    /// Reads up to `want` bytes at `pos` into `buf`'s spare capacity (fewer only at end of
    /// file), without zeroing it first (a memset per piece is ~7 % of an upload's CPU).
    fn read_at_into(&self, buf: &mut Vec<u8>, pos: u64, want: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        while buf.len() < want {
            let (len, room) = (buf.len(), want - buf.len());
            let spare = &mut buf.spare_capacity_mut()[..room];
            // SAFETY: `read_at` only writes into the slice; the bytes it reports as read are
            // initialised, and only those are exposed by `set_len` below.
            let slice = unsafe {
                std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), spare.len())
            };
            match self.0.read_at(slice, pos + len as u64) {
                Ok(0) => break,
                // SAFETY: `n` bytes past `len` were just written by `read_at`.
                Ok(n) => unsafe { buf.set_len(len + n) },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadRequest")
            .field("path", &self.path)
            .field("file_name", &self.file_name)
            .field("range", &self.range)
            .field("whole_len", &self.whole_len)
            .field("video_id", &self.video_id)
            .field("observer", &self.observer.is_some())
            .field("file", &self.file.is_some())
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

fn record(failure: &Failure, err: ApiError) {
    if let Ok(mut slot) = failure.lock() {
        slot.get_or_insert(err);
    }
}

/// The part of the body reader that moves to the blocking thread for each piece.
#[derive(Clone)]
struct Reader {
    file: OpenFile,
    /// The observer, while the request is live.
    gate: Gate<Option<Arc<dyn BodyObserver>>>,
}

/// How one piece read ended.
enum Piece {
    Data(Bytes),
    /// The file ended before the range did.
    Eof,
    Failed(io::Error),
    /// The request is over; nobody wants this piece.
    Closed,
}

impl Reader {
    /// Reads `want` bytes at `pos` (fewer only at end of file) and shows them to the observer.
    fn read(&self, pos: u64, want: usize) -> Piece {
        let mut buf = super::pieces::PieceBuf::take(PIECE);
        if let Err(e) = self.file.read_at_into(buf.vec(), pos, want) {
            return Piece::Failed(e);
        }
        if buf.vec().is_empty() {
            return Piece::Eof;
        }
        let data = buf.into_bytes();
        let shown = self.gate.run(|observer| {
            if let Some(observer) = observer {
                observer.on_bytes(&data);
            }
        });
        if shown.is_some() {
            Piece::Data(data)
        } else {
            Piece::Closed
        }
    }

    /// The observer, unless the request is over.
    fn observer(&self) -> Option<Arc<dyn BodyObserver>> {
        self.gate.run(Option::clone).flatten()
    }

    /// Starts reading the piece at `pos` on the blocking pool.
    fn spawn(&self, pos: u64, end: u64) -> JoinHandle<Piece> {
        let left = end - pos;
        let left = if left > LAST_PIECE && left <= PIECE as u64 + LAST_PIECE {
            left - LAST_PIECE // the next piece is the last one, LAST_PIECE long
        } else {
            left
        };
        let want = PIECE.min(usize::try_from(left).unwrap_or(PIECE));
        let reader = self.clone();
        tokio::task::spawn_blocking(move || reader.read(pos, want))
    }
}

struct BodyState {
    reader: Reader,
    path: PathBuf,
    pos: u64,
    end: u64,
    /// The read of the piece at `pos`, already started (read-ahead).
    next: Option<JoinHandle<Piece>>,
    failure: Failure,
    /// A first request on a client with its own pool: where its connection is recorded.
    drain_on: Option<Arc<ConnSlot>>,
    /// The wait before the last bytes ([`drain`]), once the connection is known.
    drain: Option<Drain>,
    /// The last bytes, held back until the endpoint has read the rest.
    held: Option<Bytes>,
}

impl BodyState {
    fn fail(&self, err: ApiError, io: io::Error) -> Result<Option<(Bytes, BodyState)>, io::Error> {
        record(&self.failure, err);
        Err(io)
    }
}

/// The file's bytes `[pos, end)` as a stream of pieces; fails if the file ends early.
fn body_stream(
    state: BodyState,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(state, |mut st| async move {
        if st.held.is_some() {
            return release_held(st).await;
        }
        if st.pos >= st.end {
            return Ok(None);
        }
        let pending = match st.next.take() {
            Some(handle) => handle,
            None => st.reader.spawn(st.pos, st.end),
        };
        let piece = pending
            .await
            .unwrap_or_else(|e| Piece::Failed(io::Error::other(e.to_string())));
        let data = match piece {
            Piece::Data(data) => data,
            Piece::Eof => {
                let err = ApiError::FileTruncated {
                    path: st.path.clone(),
                    at: st.pos,
                    expected_end: st.end,
                };
                let io = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file was truncated while uploading",
                );
                return st.fail(err, io);
            }
            Piece::Failed(e) => {
                let err = ApiError::File {
                    path: st.path.clone(),
                    source: io::Error::new(e.kind(), e.to_string()),
                };
                return st.fail(err, e);
            }
            Piece::Closed => {
                return Err(io::Error::other("the upload request is over"));
            }
        };
        st.pos += data.len() as u64;
        if st.pos < st.end {
            st.next = Some(st.reader.spawn(st.pos, st.end));
        }
        if let Some(slot) = st.drain_on.take() {
            // The first piece: the connection is up, and recorded.
            st.drain = Drain::new(slot.get());
        }
        if let Some(drain) = &mut st.drain {
            drain.observe();
        }
        if let Some(observer) = st.reader.observer() {
            observer.before_send(data.len()).await;
        }
        if st.pos < st.end {
            return Ok(Some((data, st)));
        }
        if st.drain.is_some() && data.len() > 1 {
            let keep = data.len().min(drain::HOLD);
            let head = data.slice(..data.len() - keep);
            st.held = Some(data.slice(data.len() - keep..));
            if !head.is_empty() {
                return Ok(Some((head, st)));
            }
            return release_held(st).await;
        }
        last_piece(st, data).await
    })
}

/// The held last bytes of a first request: a one-byte probe while the endpoint still reads what
/// it holds, else the rest ([`drain`]).
async fn release_held(mut st: BodyState) -> Result<Option<(Bytes, BodyState)>, io::Error> {
    let Some(held) = st.held.take() else {
        return Ok(None);
    };
    if st.reader.gate.is_closed() {
        // The request is over (answered early, or dropped): nothing more goes.
        return Err(io::Error::other("the upload request is over"));
    }
    if let Some(drain) = &mut st.drain {
        if drain.next().await == Step::Probe && held.len() > 1 {
            st.held = Some(held.slice(1..));
            return Ok(Some((held.slice(..1), st)));
        }
        debug!(
            path = %st.path.shown(),
            outcome = ?drain.outcome,
            probes = drain.probes(),
            waited_ms = u64::try_from(drain.waited().as_millis()).unwrap_or(u64::MAX),
            "first request: the endpoint has drained the body but its last bytes"
        );
        st.drain = None;
    }
    last_piece(st, held).await
}

/// Hands over the body's last piece, once the observer agrees.
async fn last_piece(st: BodyState, data: Bytes) -> Result<Option<(Bytes, BodyState)>, io::Error> {
    let Some(observer) = st.reader.gate.run(Option::clone) else {
        return Err(io::Error::other("the upload request is over"));
    };
    if let Some(observer) = observer
        && let Err(reason) = observer.before_last_piece().await
    {
        let io = io::Error::other(reason.clone());
        return st.fail(ApiError::Stopped { reason }, io);
    }
    // Given up while the observer recorded the body as sent (a journal write): the request runs
    // on only to meet this error, so the body must never complete now.
    if st.reader.gate.is_closed() {
        return Err(io::Error::other("the upload request is over"));
    }
    Ok(Some((data, st)))
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
        let file = match req.file.clone() {
            Some(file) => file,
            None => {
                let path = req.path.clone();
                tokio::task::spawn_blocking(move || OpenFile::open(&path))
                    .await
                    .map_err(|e| file_error(io::Error::other(e.to_string())))?
                    .map_err(file_error)?
            }
        };
        let (offset, len) = match req.range {
            Some(r) => (r.offset, r.len),
            None => match req.whole_len {
                Some(len) => (0, len),
                None => (0, file.metadata().map_err(file_error)?.len()),
            },
        };
        let failure: Failure = Arc::new(Mutex::new(None));
        let gate = Gate::open(req.observer.clone());
        let stream = body_stream(BodyState {
            reader: Reader {
                file,
                gate: gate.clone(),
            },
            path: req.path.clone(),
            pos: offset,
            end: offset.saturating_add(len),
            next: None,
            failure: failure.clone(),
            // Only a first request (no `videoId`) can leave a video nobody knows of.
            drain_on: (req.video_id.is_none() && len >= drain::MIN_BODY)
                .then(|| self.conn_slot().cloned())
                .flatten(),
            drain: None,
            held: None,
        });
        let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
            .file_name(safe_file_name(&req.file_name))
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
        // Answered, given up or timed out, the gate is closed: from then on the observer sees
        // nothing more of this request (a retry rolls it back), and the body fails at its next piece.
        let result = self
            .execute_gated(
                OP,
                Credential::UploadToken,
                request,
                self.request_timeout(len),
                gate,
            )
            .await;
        if let Some(local) = failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(local);
        }
        let (status, body) = result.map_err(|e| e.scrub(token))?;
        parse_upload_body(status, &body).map_err(|e| e.scrub(token))
    }
}

/// The multipart `filename` sent for `name` (with the token alone, the video's title): control
/// characters, bidi overrides and backslashes replaced by `_`. reqwest writes CR and LF into the
/// part's headers almost raw (a backslash before them), which a strict server refuses as a
/// malformed body. It sends a backslash as `\\` (a quoted-string escape), which servers that read
/// the header as browsers write it (multer, PHP's parser: no escapes but `\"`) keep doubled, so
/// `back\slash.mp4` would be titled `back\\slash.mp4` there. A quote is safe: `\"` reads as `"`
/// either way. The file itself is not renamed, and with an API key the title keeps the real name.
pub fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if crate::escape::is_unsafe(c) || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_name_without_control_characters() {
        assert_eq!(
            safe_file_name("a\r\nb\u{1b}[2J\u{202e}.mp4"),
            "a__b_[2J_.mp4"
        );
        assert_eq!(safe_file_name("été \"x\".mp4"), "été \"x\".mp4");
        assert_eq!(safe_file_name("back\\slash.mp4"), "back_slash.mp4");
    }

    use super::*;

    #[test]
    fn positioned_reads_share_one_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = OpenFile::open(&path).unwrap();
        let other = file.clone();
        let mut a = Vec::with_capacity(1000);
        file.read_at_into(&mut a, 5000, 1000).unwrap();
        let mut b = Vec::with_capacity(10);
        other.read_at_into(&mut b, 17, 10).unwrap();
        assert_eq!(a, &data[5000..6000]);
        assert_eq!(b, &data[17..27]);
        let mut tail = Vec::with_capacity(500);
        file.read_at_into(&mut tail, 99_800, 500).unwrap();
        assert_eq!(tail, &data[99_800..], "short only at end of file");
    }

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
