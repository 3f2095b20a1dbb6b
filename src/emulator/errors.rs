//! api.video problem bodies: every error is JSON with `type`, `title`, `status`, `name` and an
//! optional `detail` (PROTOCOL.md §5.1), sent as `application/json`.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The documentation base every `type` URL starts with.
pub const TYPE_BASE: &str = "https://docs.api.video/reference/";

/// One api.video error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: Cow<'static, str>,
    pub name: Cow<'static, str>,
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str) -> Self {
        ApiError {
            status,
            slug,
            title: Cow::Borrowed(title),
            name: Cow::Borrowed(""),
            detail: None,
        }
    }

    /// A 400 with the given slug and title.
    pub fn bad(slug: &'static str, title: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, title)
    }

    /// Sets the offending parameter (`name`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the extra explanation (`detail`).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 404 `resource-not-found` for the parameter `name`.
    // UNCONFIRMED (PROTOCOL §5.2): the SPEC examples say "was not found", the docs map "could not
    // be found"; we follow the SPEC examples.
    pub fn not_found(name: &'static str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource-not-found",
            "The requested resource was not found.",
        )
        .name(name)
    }

    pub fn unrecognized_url() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unrecognized-request-url",
            "Unrecognized request URL.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method is not allowed for this route.",
        )
    }

    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests.",
        )
    }

    pub fn invalid_payload(detail: impl Into<String>) -> Self {
        Self::bad("invalid-payload", "The payload is invalid.").detail(detail)
    }

    pub fn invalid_query(name: &'static str, detail: impl Into<String>) -> Self {
        Self::bad("invalid-query-parameter", "A query parameter is invalid.")
            .name(name)
            .detail(detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-server-error",
            "Server error",
        )
        .detail(detail)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut v = json!({
            "type": format!("{TYPE_BASE}{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "name": self.name,
        });
        if let (Some(detail), Some(obj)) = (&self.detail, v.as_object_mut()) {
            obj.insert("detail".into(), detail.clone().into());
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

/// A JSON response whose `Content-Type` is exactly `application/json` (NODE's client rejects
/// anything else, PROTOCOL §1.4).
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Handler result type.
pub type ApiResult = Result<Response, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_all_fields() {
        let e = ApiError::bad("uploaded-file-empty", "The uploaded file is empty.")
            .name("file")
            .detail("d");
        let b = e.body();
        assert_eq!(
            b["type"],
            "https://docs.api.video/reference/uploaded-file-empty"
        );
        assert_eq!(b["status"], 400);
        assert_eq!(b["name"], "file");
        assert_eq!(b["detail"], "d");
        let r = e.into_response();
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
