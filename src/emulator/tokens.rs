//! Upload-token CRUD (`/upload-tokens`), API key required (PROTOCOL.md §3).

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::errors::{ApiError, ApiResult, json_response};
use super::extract::{IdPath, Keyed, KeyedBody};
use super::model::UploadToken;
use super::paging::{Page, descending, param};
use super::state::Shared;
use super::util::{new_id, now_ms};

const MAX_TTL: u64 = 2_147_483_647;

/// Looks up a live (not expired) token; used by `/upload`.
pub async fn live_token(shared: &Shared, token: &str) -> bool {
    let now = now_ms();
    shared
        .tokens
        .lock()
        .await
        .iter()
        .any(|t| t.token == token && !t.expired_at(now))
}

/// `POST /upload-tokens` `{"ttl": seconds}` → 200 UploadToken.
pub async fn create(KeyedBody(shared, body): KeyedBody) -> ApiResult {
    let ttl = if body.iter().all(u8::is_ascii_whitespace) {
        0
    } else {
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::invalid_payload(e.to_string()))?;
        match v.get("ttl") {
            None | Some(serde_json::Value::Null) => 0,
            Some(t) => t.as_u64().filter(|t| *t <= MAX_TTL).ok_or_else(|| {
                ApiError::bad("invalid-attribute", "An attribute is invalid.")
                    .name("ttl")
                    .detail("\"ttl\" must be an integer between 0 and 2147483647.")
            })?,
        }
    };
    let token = UploadToken {
        token: new_id("to"),
        ttl,
        created_ms: now_ms(),
        seq: shared.next_seq(),
    };
    let mut all = shared.tokens.lock().await;
    let now = now_ms();
    all.retain(|t| !t.expired_at(now));
    all.push(token.clone());
    let snapshot = all.clone();
    shared.blocking(move |s| s.save_tokens(&snapshot)).await?;
    drop(all);
    tracing::info!(token = %crate::secret::redact(&token.token), ttl, "upload token created");
    Ok(json_response(StatusCode::OK, &token.to_json()))
}

/// `GET /upload-tokens?sortBy=createdAt|ttl&sortOrder=asc|desc&currentPage&pageSize`.
/// Default order: `createdAt` ascending (UNCONFIRMED: the service's default is not documented).
pub async fn list(Query(query): Query<Vec<(String, String)>>, Keyed(shared): Keyed) -> ApiResult {
    let page = Page::from_query(&query)?;
    let by_ttl = match param(&query, "sortBy") {
        None | Some("createdAt") => false,
        Some("ttl") => true,
        Some(_) => {
            return Err(ApiError::invalid_query(
                "sortBy",
                "\"sortBy\" must be one of: createdAt, ttl.",
            ));
        }
    };
    let desc = descending(&query)?;
    let now = now_ms();
    let mut live: Vec<UploadToken> = shared
        .tokens
        .lock()
        .await
        .iter()
        .filter(|t| !t.expired_at(now))
        .cloned()
        .collect();
    live.sort_by_key(|t| {
        if by_ttl {
            (t.ttl as i64, t.created_ms, t.seq)
        } else {
            (t.created_ms, 0, t.seq)
        }
    });
    page.answer("/upload-tokens", live, desc, UploadToken::to_json, &query)
}

/// `GET /upload-tokens/{token}` → 200, or 404 (unknown, deleted or expired).
pub async fn show(IdPath(id): IdPath, Keyed(shared): Keyed) -> ApiResult {
    let now = now_ms();
    let all = shared.tokens.lock().await;
    let t = all
        .iter()
        .find(|t| t.token == id && !t.expired_at(now))
        .ok_or_else(|| ApiError::not_found("uploadToken"))?;
    Ok(json_response(StatusCode::OK, &t.to_json()))
}

/// `DELETE /upload-tokens/{token}` → 204; the token stops working at once.
pub async fn delete(IdPath(id): IdPath, Keyed(shared): Keyed) -> ApiResult {
    let now = now_ms();
    let mut all = shared.tokens.lock().await;
    let before = all.len();
    let found = all.iter().any(|t| t.token == id && !t.expired_at(now));
    all.retain(|t| t.token != id && !t.expired_at(now));
    if !found {
        return Err(ApiError::not_found("uploadToken"));
    }
    if all.len() != before {
        let snapshot = all.clone();
        shared.blocking(move |s| s.save_tokens(&snapshot)).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
