//! Test-only routes under `/_emulator/` (no authentication; documented in docs/EMULATOR.md):
//! per-video upload records, request statistics, the fault plan and the upload limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::extract::{IdPath, SmallBody};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, json_response};
use super::faults::PlanInput;
use super::state::{Shared, lock};
use super::videos::snapshot;

/// `GET /_emulator/videos`.
pub async fn videos(State(shared): State<Arc<Shared>>) -> ApiResult {
    let data: Vec<Value> = shared
        .all_videos()
        .await
        .iter()
        .map(|v| v.emulator_json())
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "data": data })))
}

/// `GET /_emulator/videos/{id}`.
pub async fn video(State(shared): State<Arc<Shared>>, IdPath(id): IdPath) -> ApiResult {
    let v = snapshot(&shared, &id).await?;
    Ok(json_response(StatusCode::OK, &v.emulator_json()))
}

/// `GET /_emulator/stats`.
pub async fn stats(State(shared): State<Arc<Shared>>) -> ApiResult {
    let s = lock(&shared.stats);
    let body = json!({
        "requests": s.requests,
        "statuses": s.statuses,
        "uploadBodyBytes": shared.upload_body_bytes.load(Ordering::Relaxed),
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// `DELETE /_emulator/stats`: zero the counters.
pub async fn reset_stats(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut s = lock(&shared.stats);
    s.requests.clear();
    s.statuses.clear();
    shared.upload_body_bytes.store(0, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

fn plan_json(shared: &Shared) -> Value {
    serde_json::to_value(&*lock(&shared.faults)).unwrap_or(Value::Null)
}

/// `GET /_emulator/faults`: the rules with their remaining `count`/`skip`, and `fired`.
pub async fn get_faults(State(shared): State<Arc<Shared>>) -> ApiResult {
    Ok(json_response(StatusCode::OK, &plan_json(&shared)))
}

/// `POST /_emulator/faults`: replaces the plan.
pub async fn set_faults(
    State(shared): State<Arc<Shared>>,
    SmallBody(body): SmallBody,
) -> ApiResult {
    let input: PlanInput = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_payload(format!("Invalid fault plan: {e}")))?;
    lock(&shared.faults).set(input.into_rules());
    Ok(json_response(StatusCode::OK, &plan_json(&shared)))
}

/// `DELETE /_emulator/faults`: clears the plan.
pub async fn clear_faults(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    lock(&shared.faults).set(Vec::new());
    StatusCode::NO_CONTENT
}

fn limits_json(shared: &Shared) -> Value {
    json!({ "uploadsPerMinute": lock(&shared.limiter).upload_limit })
}

/// `GET /_emulator/limits`.
pub async fn get_limits(State(shared): State<Arc<Shared>>) -> ApiResult {
    Ok(json_response(StatusCode::OK, &limits_json(&shared)))
}

/// `POST /_emulator/limits` `{"uploadsPerMinute": N}` (0 = off); starts a new window.
pub async fn set_limits(
    State(shared): State<Arc<Shared>>,
    SmallBody(body): SmallBody,
) -> ApiResult {
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid_payload(e.to_string()))?;
    let n = v
        .get("uploadsPerMinute")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            ApiError::bad("invalid-attribute", "An attribute is invalid.")
                .name("uploadsPerMinute")
                .detail("\"uploadsPerMinute\" must be a non-negative integer.")
        })?;
    lock(&shared.limiter).set_upload_limit(n);
    Ok(json_response(StatusCode::OK, &limits_json(&shared)))
}

fn auth_json(shared: &Shared) -> Value {
    json!({ "accessTokenTtl": shared.access_ttl_secs.load(Ordering::Relaxed) })
}

/// `GET /_emulator/auth`.
pub async fn get_auth(State(shared): State<Arc<Shared>>) -> ApiResult {
    Ok(json_response(StatusCode::OK, &auth_json(&shared)))
}

/// `POST /_emulator/auth` `{"accessTokenTtl": seconds}`: lifetime of access tokens issued from now
/// on (to test refreshing before expiry).
pub async fn set_auth(State(shared): State<Arc<Shared>>, SmallBody(body): SmallBody) -> ApiResult {
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid_payload(e.to_string()))?;
    let ttl = v
        .get("accessTokenTtl")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .ok_or_else(|| {
            ApiError::bad("invalid-attribute", "An attribute is invalid.")
                .name("accessTokenTtl")
                .detail("\"accessTokenTtl\" must be a positive integer (seconds).")
        })?;
    shared.access_ttl_secs.store(ttl, Ordering::Relaxed);
    Ok(json_response(StatusCode::OK, &auth_json(&shared)))
}
