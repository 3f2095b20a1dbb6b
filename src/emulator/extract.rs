//! Extractors whose rejections are api.video JSON problems: [`SmallBody`] for JSON request
//! bodies (at most 1 MiB buffered; more, or an unreadable body, is 400 `invalid-payload`) and
//! [`IdPath`] for the `{id}`/`{token}` path segment (undecodable → 404 `resource-not-found`),
//! and [`Keyed`] / [`KeyedBody`] for the routes that need the API key (401 otherwise).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;

use super::auth::require_api_key;
use super::errors::ApiError;
use super::state::Shared;

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

/// The emulator's state on an API-key route; extracting it checks `Authorization`. Put it after
/// the other parts extractors ([`IdPath`], `Query`), so that their rejections come first.
pub struct Keyed(pub Arc<Shared>);

impl FromRequestParts<Arc<Shared>> for Keyed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        require_api_key(state, &parts.headers).await?;
        Ok(Keyed(Arc::clone(state)))
    }
}

/// [`Keyed`] with a [`SmallBody`]: the body is read first, so that an unreadable or too large
/// body answers 400 before a missing key answers 401.
pub struct KeyedBody(pub Arc<Shared>, pub Bytes);

impl FromRequest<Arc<Shared>> for KeyedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let SmallBody(body) = SmallBody::from_request(req, state).await?;
        require_api_key(state, &headers).await?;
        Ok(KeyedBody(Arc::clone(state), body))
    }
}
