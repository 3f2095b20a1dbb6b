//! The middleware every request goes through: statistics, the per-minute rate limit and its
//! `X-RateLimit-*` headers (on every response), the fault plan, and draining of the request body
//! so every answer is sent after the whole request was read.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::conn::{ConnCtl, ConnHandle};
use super::errors::ApiError;
use super::faults::{Action, fault_response, set_header};
use super::state::{RateInfo, Shared, lock};
use super::tap::{TapHandle, drain};

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

/// Never completes; the connection task drops it when the connection is aborted or on shutdown.
async fn hang(ctl: Option<&Arc<ConnCtl>>, reset: Option<bool>) -> Response {
    if let (Some(ctl), Some(reset)) = (ctl, reset) {
        ctl.abort(reset);
    }
    std::future::pending::<Response>().await
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
    if let (Some(Action::ConnRateBps { bytes_per_sec }), Some(ctl)) = (&action, &ctl) {
        ctl.cap_read_rate(*bytes_per_sec);
    }

    let (parts, body) = req.into_parts();
    let mut tap = TapHandle::new(
        body,
        upload.then(|| shared.upload_body_bytes.clone()),
        match action {
            Some(Action::Reset { after_bytes }) => Some(after_bytes),
            _ => None,
        },
        ctl.clone(),
        match action {
            Some(Action::Throttle { bytes_per_sec }) => Some(bytes_per_sec),
            _ => None,
        },
    );
    let req = Request::from_parts(parts, tap.body());

    let rate = lock(&shared.limiter).take(upload);
    let mut resp = match rate {
        Err(info) => {
            drain(&mut tap).await;
            let mut r = ApiError::too_many_requests().into_response();
            set_header(&mut r, "retry-after", info.retry_after);
            r
        }
        Ok(_) => match action {
            None | Some(Action::Throttle { .. }) | Some(Action::ConnRateBps { .. }) => {
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
