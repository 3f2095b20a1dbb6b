//! The HTTP listener of `[metrics] listen`: `/metrics` (OpenMetrics text), `/` (the status
//! page), `/status/fragment` (what the page refreshes) and `/status.json`. Read-only: every
//! route is a GET and takes no parameters. Each request reads a fresh [`Snapshot`] off the
//! async runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::exposition::{self, CONTENT_TYPE};
use super::guard::{Hosts, guard};
use super::page::{self, FRAGMENT_PATH};
use super::snapshot::{Detail, Snapshot, Sources};

/// Binds the listener (so that a bad address fails the start, not a later scrape).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The routes, for [`spawn`] and tests.
pub fn router(sources: Sources) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(status_page))
        .route(FRAGMENT_PATH, get(fragment))
        .route("/status.json", get(json))
        .with_state(sources)
}

/// Serves until `shutdown` is cancelled, with the limits of [`super::listener`] and the `Host`
/// check and headers of [`super::guard`].
pub fn spawn(
    listener: TcpListener,
    sources: Sources,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let app = guarded(listener.local_addr(), sources);
    tokio::spawn(super::listener::serve(listener, app, shutdown))
}

/// [`router`] behind the `Host` check for a listener bound to `addr`.
pub fn guarded(addr: std::io::Result<SocketAddr>, sources: Sources) -> Router {
    let app = router(sources);
    match addr {
        Ok(addr) => app.layer(axum::middleware::from_fn_with_state(
            Arc::new(Hosts::new(addr)),
            guard,
        )),
        Err(e) => {
            tracing::error!("the metrics listener has no address ({e}): it answers nothing");
            Router::new().fallback(|| async { StatusCode::MISDIRECTED_REQUEST })
        }
    }
}

async fn snapshot(sources: Sources, detail: Detail) -> Result<Snapshot, Response> {
    match tokio::task::spawn_blocking(move || sources.snapshot(detail)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(error(e.to_string())),
        Err(e) => Err(error(e.to_string())),
    }
}

fn error(message: String) -> Response {
    tracing::warn!("metrics: {message}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CACHE_CONTROL, "no-store")],
        format!("ingestd cannot read its state: {message}\n"),
    )
        .into_response()
}

fn ok(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn metrics(State(sources): State<Sources>) -> Response {
    let counters = sources.counters.clone();
    match snapshot(sources, Detail::Metrics).await {
        Ok(s) => match exposition::encode(&s, &counters) {
            Ok(text) => ok(CONTENT_TYPE, text),
            Err(e) => error(e.to_string()),
        },
        Err(r) => r,
    }
}

async fn status_page(State(sources): State<Sources>) -> Response {
    match snapshot(sources, Detail::Page).await {
        Ok(s) => ok("text/html; charset=utf-8", page::page(&s)),
        Err(r) => r,
    }
}

async fn fragment(State(sources): State<Sources>) -> Response {
    match snapshot(sources, Detail::Page).await {
        Ok(s) => ok("text/html; charset=utf-8", page::fragment(&s)),
        Err(r) => r,
    }
}

async fn json(State(sources): State<Sources>) -> Response {
    match snapshot(sources, Detail::Page).await {
        Ok(s) => match serde_json::to_string_pretty(&s) {
            Ok(text) => ok("application/json", text),
            Err(e) => error(e.to_string()),
        },
        Err(r) => r,
    }
}
