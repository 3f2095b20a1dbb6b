//! The middleware every request goes through: statistics, the per-minute rate limit and its
//! `X-RateLimit-*` headers (on every response), the fault plan, and draining of the request body
//! so every answer is sent after the whole request was read.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};

use super::conn::{ConnCtl, ConnHandle};
use super::errors::ApiError;
use super::faults::Action;
use super::state::{RateInfo, Shared, lock};

/// The stats key of a request: method and route template, e.g. `POST /videos/{id}/source`.
pub fn route_key(method: &Method, path: &str) -> String {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let template = match segs.as_slice() {
        ["upload"] => "/upload",
        ["upload-tokens"] => "/upload-tokens",
        ["upload-tokens", _] => "/upload-tokens/{token}",
        ["videos"] => "/videos",
        ["videos", _] => "/videos/{id}",
        ["videos", _, "source"] => "/videos/{id}/source",
        ["videos", _, "status"] => "/videos/{id}/status",
        ["auth", "api-key"] => "/auth/api-key",
        ["auth", "refresh"] => "/auth/refresh",
        ["_emulator", "videos", _] => "/_emulator/videos/{id}",
        ["_emulator", ..] => path,
        _ => "other",
    };
    format!("{method} {template}")
}

/// Whether this is an upload request (counted against the upload limit).
pub fn is_upload(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segs.as_slice(), ["upload"] | ["videos", _, "source"])
}

/// Wraps the request body: counts bytes, resets the connection after K bytes, throttles.
struct Tap {
    inner: BodyDataStream,
    counter: Option<Arc<AtomicU64>>,
    seen: u64,
    reset_after: Option<u64>,
    ctl: Option<Arc<ConnCtl>>,
    bytes_per_sec: Option<u64>,
    started: Option<Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: bool,
}

impl Tap {
    fn stall_with_reset(&mut self) -> Poll<Option<Result<Bytes, axum::Error>>> {
        self.stalled = true;
        if let Some(ctl) = &self.ctl {
            ctl.abort(true);
        }
        Poll::Pending
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, axum::Error>>> {
        if self.stalled {
            return Poll::Pending;
        }
        if let Some(s) = &mut self.sleep {
            ready!(s.as_mut().poll(cx));
            self.sleep = None;
        }
        if let Some(k) = self.reset_after
            && self.seen >= k
        {
            return self.stall_with_reset();
        }
        match ready!(self.inner.poll_next_unpin(cx)) {
            Some(Ok(mut bytes)) => {
                if let Some(k) = self.reset_after {
                    let left = usize::try_from(k - self.seen).unwrap_or(usize::MAX);
                    bytes.truncate(left);
                }
                let n = bytes.len() as u64;
                self.seen += n;
                if let Some(c) = &self.counter {
                    c.fetch_add(n, Ordering::Relaxed);
                }
                if let Some(rate) = self.bytes_per_sec {
                    let started = *self.started.get_or_insert_with(Instant::now);
                    let due =
                        started + Duration::from_secs_f64(self.seen as f64 / rate.max(1) as f64);
                    if due > Instant::now() {
                        self.sleep = Some(Box::pin(tokio::time::sleep_until(due.into())));
                    }
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None if self.reset_after.is_some() => self.stall_with_reset(),
            None => Poll::Ready(None),
        }
    }
}

/// A shared handle on the tapped body: one goes to the handler, one stays here to drain.
#[derive(Clone)]
struct TapHandle(Arc<Mutex<Tap>>);

impl Stream for TapHandle {
    type Item = Result<Bytes, axum::Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.0).poll_next(cx)
    }
}

async fn drain(handle: &mut TapHandle) {
    while let Some(item) = handle.next().await {
        if item.is_err() {
            break;
        }
    }
}

/// Never completes; the connection task drops it when the connection is aborted or on shutdown.
async fn hang(ctl: Option<&Arc<ConnCtl>>, reset: Option<bool>) -> Response {
    if let (Some(ctl), Some(reset)) = (ctl, reset) {
        ctl.abort(reset);
    }
    std::future::pending::<Response>().await
}

fn set_header(resp: &mut Response, name: &'static str, value: u64) {
    resp.headers_mut()
        .insert(HeaderName::from_static(name), HeaderValue::from(value));
}

fn rate_headers(resp: &mut Response, info: RateInfo) {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", u64::from(info.limit)),
        ("x-ratelimit-remaining", u64::from(info.remaining)),
        ("x-ratelimit-retry-after", info.retry_after),
    ] {
        let name = HeaderName::from_static(name);
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from(value));
        }
    }
}

/// The default JSON problem for a failure status set by a fault.
fn default_problem(status: StatusCode) -> ApiError {
    match status.as_u16() {
        429 => ApiError::too_many_requests(),
        401 => ApiError::new(
            status,
            "authentication-invalid-upload-token",
            "The upload token is invalid or expired.",
        ),
        404 => ApiError::not_found(""),
        s if s >= 500 => ApiError::new(status, "internal-server-error", "Server error"),
        _ => ApiError::new(status, "fault-injected", "Fault injected by the emulator."),
    }
}

fn fault_response(
    status: u16,
    body: Option<String>,
    content_type: Option<String>,
    retry_after: Option<u64>,
    garbage: bool,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match (body, garbage) {
        (None, false) => default_problem(status).into_response(),
        (body, _) => {
            let body = body.unwrap_or_else(|| "{\"videoId\":\"vi".to_owned());
            let ct = content_type.clone().unwrap_or_else(|| {
                if garbage && body.trim_start().starts_with('{') {
                    "application/json".to_owned()
                } else if body.trim_start().starts_with('<') {
                    "text/html; charset=UTF-8".to_owned()
                } else {
                    "text/plain; charset=UTF-8".to_owned()
                }
            });
            let mut r = (status, body).into_response();
            if let Ok(v) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
    };
    if let Some(content_type) = content_type
        && let Ok(v) = HeaderValue::from_str(&content_type)
    {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(secs) = retry_after {
        set_header(&mut resp, "x-ratelimit-retry-after", secs);
        set_header(&mut resp, "retry-after", secs);
    }
    resp
}

/// The middleware (installed with `axum::middleware::from_fn_with_state`).
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let emulator_route = path == "/_emulator" || path.starts_with("/_emulator/");
    let upload = is_upload(&method, &path);
    *lock(&shared.stats)
        .requests
        .entry(route_key(&method, &path))
        .or_default() += 1;
    let ctl = req.extensions().get::<ConnHandle>().map(|h| h.0.clone());
    let action = if emulator_route {
        None
    } else {
        lock(&shared.faults).take(method.as_str(), &path)
    };
    if let Some(a) = &action {
        tracing::info!(%method, %path, ?a, "fault injected");
    }

    let (parts, body) = req.into_parts();
    let mut tap = TapHandle(Arc::new(Mutex::new(Tap {
        inner: body.into_data_stream(),
        counter: upload.then(|| shared.upload_body_bytes.clone()),
        seen: 0,
        reset_after: match action {
            Some(Action::Reset { after_bytes }) => Some(after_bytes),
            _ => None,
        },
        ctl: ctl.clone(),
        bytes_per_sec: match action {
            Some(Action::Throttle { bytes_per_sec }) => Some(bytes_per_sec),
            _ => None,
        },
        started: None,
        sleep: None,
        stalled: false,
    })));
    let req = Request::from_parts(parts, Body::from_stream(tap.clone()));

    let rate = lock(&shared.limiter).take(upload);
    let mut resp = match rate {
        Err(info) => {
            drain(&mut tap).await;
            let mut r = ApiError::too_many_requests().into_response();
            set_header(&mut r, "retry-after", info.retry_after);
            r
        }
        Ok(_) => match action {
            None | Some(Action::Throttle { .. }) => {
                let r = next.run(req).await;
                drain(&mut tap).await;
                r
            }
            Some(Action::Reset { .. }) => {
                let _ = next.run(req).await;
                drain(&mut tap).await;
                // The body ended before K bytes: reset before answering.
                hang(ctl.as_ref(), Some(true)).await
            }
            Some(Action::Fail {
                status,
                body,
                content_type,
                retry_after,
                store,
            }) => {
                if store {
                    let _ = next.run(req).await;
                }
                drain(&mut tap).await;
                fault_response(status, body, content_type, retry_after, false)
            }
            Some(Action::Garbage {
                status,
                body,
                content_type,
                store,
            }) => {
                if store {
                    let _ = next.run(req).await;
                }
                drain(&mut tap).await;
                fault_response(status, body, content_type, None, true)
            }
            Some(Action::Drop) => {
                let _ = next.run(req).await;
                drain(&mut tap).await;
                hang(ctl.as_ref(), Some(false)).await
            }
            Some(Action::Delay { ms }) => {
                let r = next.run(req).await;
                drain(&mut tap).await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                r
            }
            Some(Action::Blackhole { store }) => {
                if store {
                    let _ = next.run(req).await;
                    drain(&mut tap).await;
                }
                hang(None, None).await
            }
        },
    };
    rate_headers(&mut resp, rate.unwrap_or_else(|e| e));
    *lock(&shared.stats)
        .statuses
        .entry(resp.status().as_u16().to_string())
        .or_default() += 1;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys() {
        assert_eq!(route_key(&Method::POST, "/upload"), "POST /upload");
        assert_eq!(
            route_key(&Method::POST, "/videos/vi1/source"),
            "POST /videos/{id}/source"
        );
        assert_eq!(route_key(&Method::GET, "/nope/x"), "GET other");
        assert!(is_upload(&Method::POST, "/videos/vi1/source"));
        assert!(!is_upload(&Method::GET, "/upload"));
    }
}
