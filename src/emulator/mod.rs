//! The local api.video-compatible endpoint (`ingestd emulator`).
//!
//! It speaks the wire protocol of /work/shared/apivideo/PROTOCOL.md (auth, upload tokens, videos,
//! token and API-key uploads with both `Content-Range` forms and every 400 rule), keeps its state
//! under a data directory across restarts, streams request bodies to disk, and offers test-only
//! extras under `/_emulator/` (records, statistics, a fault plan). See docs/EMULATOR.md.
//!
//! Layout (private modules): `conn` accept loop and connection aborts; `layer` middleware
//! (stats, rate limit, faults) and `tap` its body wrapper; `auth`, `tokens`, `videos`, `upload`
//! the API routes; `range` the `Content-Range` rules; `disposition` the strict multipart header check; `store` on-disk state; `extras` the
//! `/_emulator/` routes; `extract`, `errors`, `model`, `paging`, `state`, `util` helpers.

use crate::escape::Show as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::secret::Secret;

mod auth;
mod conn;
mod disposition;
mod errors;
mod extract;
mod extras;
mod faults;
mod layer;
mod model;
mod paging;
mod range;
mod state;
mod store;
mod tap;
mod tokens;
mod upload;
mod util;
mod videos;

pub use errors::ApiError;

/// How to run the endpoint.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where tokens, videos and chunks are stored.
    pub data_dir: PathBuf,
    /// The accepted API key; `None` accepts any non-empty key.
    pub api_key: Option<String>,
    /// Upload requests allowed per minute (429 beyond); 0 = no limit.
    pub upload_limit_per_minute: u32,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.shown())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid state file: {source}", path.shown())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A running endpoint; [`RunningEmulator::shutdown`] stops it (dropping it leaves it running
/// until the runtime ends).
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningEmulator {
    /// The bound address (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drops open connections and waits for the server task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/auth/api-key", post(auth::api_key))
        .route("/auth/refresh", post(auth::refresh))
        .route("/upload-tokens", post(tokens::create).get(tokens::list))
        .route(
            "/upload-tokens/{token}",
            get(tokens::show).delete(tokens::delete),
        )
        .route("/upload", post(upload::token_upload))
        .route("/videos", post(videos::create).get(videos::list))
        .route(
            "/videos/{id}",
            get(videos::show)
                .patch(videos::update)
                .delete(videos::delete),
        )
        .route("/videos/{id}/source", post(upload::source_upload))
        .route("/videos/{id}/status", get(videos::status))
        .route("/_emulator/videos", get(extras::videos))
        .route("/_emulator/videos/{id}", get(extras::video))
        .route(
            "/_emulator/stats",
            get(extras::stats).delete(extras::reset_stats),
        )
        .route(
            "/_emulator/faults",
            get(extras::get_faults)
                .post(extras::set_faults)
                .delete(extras::clear_faults),
        )
        .route(
            "/_emulator/auth",
            get(extras::get_auth).post(extras::set_auth),
        )
        .route(
            "/_emulator/limits",
            get(extras::get_limits).post(extras::set_limits),
        )
        .fallback(|| async { ApiError::unrecognized_url() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            layer::handle,
        ))
        .with_state(shared)
}

use state::Shared;

/// Loads the state under `opts.data_dir`, binds `listen` (e.g. `127.0.0.1:0`) and serves in the
/// background.
pub async fn start(opts: EmulatorOptions, listen: &str) -> Result<RunningEmulator, EmulatorError> {
    let store = store::Store::open(&opts.data_dir)?;
    let loaded = store.load()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared::new(
        store,
        opts.api_key.map(Secret::new).filter(|k| !k.is_empty()),
        opts.upload_limit_per_minute,
        loaded,
    ));
    let task = tokio::spawn(conn::serve(listener, router(shared), shutdown.clone()));
    Ok(RunningEmulator {
        addr,
        shutdown,
        task,
    })
}
