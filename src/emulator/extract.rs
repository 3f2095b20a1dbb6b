//! Extractors whose rejections are api.video JSON problems: [`SmallBody`] for JSON request
//! bodies (at most 1 MiB buffered; more, or an unreadable body, is 400 `invalid-payload`) and
//! [`IdPath`] for the `{id}`/`{token}` path segment (undecodable → 404 `resource-not-found`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;

use super::errors::ApiError;

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// A request body of at most [`MAX_JSON_BODY`] bytes.
pub struct SmallBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for SmallBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map(SmallBody)
            .map_err(|_| {
                ApiError::invalid_payload("The payload is larger than 1 MiB or could not be read.")
            })
    }
}

/// The single path parameter of a route (`/videos/{id}`, `/upload-tokens/{token}`).
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdPath(id))
            .map_err(|_| ApiError::not_found(""))
    }
}
