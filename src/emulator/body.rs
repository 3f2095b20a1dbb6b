//! The extractor for small JSON request bodies (auth, tokens, videos, `/_emulator/`): at most
//! 1 MiB is buffered; more, or a body that cannot be read, is 400 `invalid-payload`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

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
