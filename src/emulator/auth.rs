//! Authentication: HTTP Basic with the API key as user name, Bearer access tokens from
//! `POST /auth/api-key`, refreshed with `POST /auth/refresh` (PROTOCOL.md §4).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::extract::SmallBody;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use serde_json::json;

use super::errors::{ApiError, ApiResult, json_response};
use super::model::AccessToken;
use super::state::Shared;
use super::util::{now_ms, random_secret};

/// Default lifetime of an access token, in seconds (settable through `/_emulator/auth`).
pub const ACCESS_TTL_SECS: u64 = 3600;
/// How long a refresh token stays usable after its access token expired (30 days).
const REFRESH_GRACE_MS: i64 = 30 * 24 * 3600 * 1000;

fn unauthorized(slug: &'static str, title: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, slug, title)
}

/// Checks the `Authorization` header of an API-key route.
pub async fn require_api_key(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "authentication-missing-authorization-header",
            "The \"Authorization\" header is missing.",
        ));
    };
    let invalid_value = || {
        unauthorized(
            "authentication-invalid-authorization-header-value",
            "The \"Authorization\" header value is invalid.",
        )
    };
    let value = value.to_str().map_err(|_| invalid_value())?.trim();
    let (scheme, cred) = value.split_once(' ').ok_or_else(invalid_value)?;
    let cred = cred.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cred)
            .map_err(|_| invalid_value())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid_value())?;
        let key = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        if shared.api_key_ok(key) {
            Ok(())
        } else {
            Err(unauthorized(
                "authentication-invalid-api-key",
                "The API key is invalid.",
            ))
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let now = now_ms();
        let ok = shared
            .access
            .lock()
            .await
            .iter()
            .any(|a| a.access == cred && a.expires_ms > now);
        if ok {
            Ok(())
        } else {
            Err(unauthorized(
                "authentication-invalid-access-token",
                "The access token is invalid or expired.",
            ))
        }
    } else {
        Err(invalid_value())
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::bad(
        "authentication-invalid-user-credentials",
        "The user credentials were incorrect.",
    )
}

async fn issue(shared: &Shared, replacing: Option<&str>) -> ApiResult {
    let now = now_ms();
    let ttl = shared.access_ttl_secs.load(Ordering::Relaxed);
    let token = AccessToken {
        access: random_secret(64),
        refresh: format!("def502{}", random_secret(58)),
        expires_ms: now.saturating_add(i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX)),
    };
    let mut all = shared.access.lock().await;
    // Refresh tokens outlive their access token by REFRESH_GRACE_MS.
    all.retain(|a| {
        a.expires_ms.saturating_add(REFRESH_GRACE_MS) > now && Some(a.refresh.as_str()) != replacing
    });
    all.push(token.clone());
    let snapshot = all.clone();
    shared.blocking(move |s| s.save_access(&snapshot)).await?;
    drop(all);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": ttl,
            "access_token": token.access,
            "refresh_token": token.refresh,
        }),
    ))
}

fn field(body: &[u8], name: &'static str) -> Result<String, ApiError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid_payload(e.to_string()))?;
    match v.get(name).and_then(|k| k.as_str()) {
        Some(s) => Ok(s.to_owned()),
        None => Err(ApiError::bad("attribute-required", "This attribute is required.").name(name)),
    }
}

/// `POST /auth/api-key` `{"apiKey": …}`.
pub async fn api_key(State(shared): State<Arc<Shared>>, SmallBody(body): SmallBody) -> ApiResult {
    let key = field(&body, "apiKey")?;
    if !shared.api_key_ok(&key) {
        return Err(invalid_credentials());
    }
    issue(&shared, None).await
}

/// `POST /auth/refresh` `{"refreshToken": …}`: a new pair; the old refresh token stops working.
pub async fn refresh(State(shared): State<Arc<Shared>>, SmallBody(body): SmallBody) -> ApiResult {
    let refresh = field(&body, "refreshToken")?;
    let known = shared
        .access
        .lock()
        .await
        .iter()
        .any(|a| a.refresh == refresh);
    if !known {
        return Err(invalid_credentials());
    }
    issue(&shared, Some(&refresh)).await
}
