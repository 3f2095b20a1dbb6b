//! The api.video client: auth (Basic / Bearer), upload tokens, videos, uploads with a delegated token.
//!
//! - [`client`]: options, construction, the single request path (timeouts, no redirects, origin header).
//! - [`auth`]: API key as HTTP Basic or as a refreshed Bearer token.
//! - [`tokens`], [`videos`]: API-key endpoints.
//! - [`upload`]: `POST /upload?token=…`, whole file or one chunk, streamed from disk.
//! - [`chunks`]: which byte ranges go in which request.
//! - [`error`]: [`ApiError`] and its [`ErrorClass`]; `hint`: what to do about a transport error.
//! - [`models`]: wire types.
//! - [`lane`]: a client on connections of its own per upload lane, kept for reuse.
//! - [`linger`]: upload connections close with a RST (`SO_LINGER {on, 0}`), never gracefully.
//! - [`abandon`]: a request given up ends with a body error (RST), never a cancel (FIN).
//! - [`drain`]: a first request's last bytes wait until the endpoint has read the rest (W3);
//!   [`tcp_info`]: the sockets a client opened and what `TCP_INFO` says of them.

pub mod abandon;
pub mod auth;
pub mod chunks;
pub mod client;
pub mod error;
mod hint;
pub(crate) use hint::open_hint;
pub mod drain;
pub mod lane;
pub mod linger;
mod list;
pub mod models;
mod pieces;
pub mod tcp_info;
pub mod tokens;
pub mod upload;
pub mod videos;

pub use auth::AuthMode;
pub use chunks::{ChunkRange, chunk_at, plan_chunks};
pub use client::{Client, ClientOptions, ORIGIN_CLIENT};
pub use error::{ApiError, ErrorClass, Problem};
pub use lane::LaneClient;
pub use models::{
    BytesRange, Encoding, Ingest, Metadata, Page, Pagination, PaginationLink, ReceivedParts,
    SortOrder, TokenListQuery, TokenSortBy, UploadToken, Video, VideoAssets, VideoCreation,
    VideoListQuery, VideoSortBy, VideoSource, VideoStatus, VideoUpdate,
};
pub use upload::{BodyObserver, OpenFile, UploadRequest, UploadResponse};
