//! Video containers: `POST /videos`, `GET /videos`, `GET|DELETE /videos/{id}`,
//! `GET /videos/{id}/status` (API key required).

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;

use super::errors::{ApiError, ApiResult, json_response};
use super::extract::{IdPath, Keyed, KeyedBody};
use super::model::{Metadata, VideoRec};
use super::paging::{Page, descending, param};
use super::state::Shared;
use super::util::{new_id, now_ms};

fn invalid(name: &'static str, detail: &str) -> ApiError {
    ApiError::bad("invalid-attribute", "An attribute is invalid.")
        .name(name)
        .detail(format!("The \"{name}\" attribute {detail}."))
}

fn opt_bool(
    obj: &serde_json::Map<String, Value>,
    name: &'static str,
    default: bool,
) -> Result<bool, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| invalid(name, "must be a boolean")),
    }
}

fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid_payload(e.to_string()))?;
    match v {
        Value::Object(obj) => Ok(obj),
        _ => Err(ApiError::invalid_payload(
            "The payload must be a JSON object.",
        )),
    }
}

/// Applies the fields of a `video-creation-payload` / `video-update-payload` that the emulator
/// keeps; other fields are accepted and ignored.
fn apply_fields(
    video: &mut VideoRec,
    obj: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    match obj.get("title") {
        None => {}
        Some(Value::String(s)) if !s.trim().is_empty() => video.title = s.clone(),
        Some(_) => return Err(invalid("title", "must be a non-empty string")),
    }
    match obj.get("description") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => video.description = s.clone(),
        Some(_) => return Err(invalid("description", "must be a string")),
    }
    video.public = opt_bool(obj, "public", video.public)?;
    video.panoramic = opt_bool(obj, "panoramic", video.panoramic)?;
    video.mp4_support = opt_bool(obj, "mp4Support", video.mp4_support)?;
    match obj.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            let mut out = Vec::with_capacity(tags.len());
            for t in tags {
                let t = t
                    .as_str()
                    .ok_or_else(|| invalid("tags", "must be a list of strings"))?;
                out.push(t.to_owned());
            }
            video.tags = out;
        }
        Some(_) => return Err(invalid("tags", "must be a list of strings")),
    }
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for m in items {
                let pair: Metadata = serde_json::from_value(m.clone())
                    .map_err(|_| invalid("metadata", "must be a list of {key, value} strings"))?;
                out.push(pair);
            }
            video.metadata = out;
        }
        Some(_) => {
            return Err(invalid(
                "metadata",
                "must be a list of {key, value} strings",
            ));
        }
    }
    Ok(())
}

/// Parses a `video-creation-payload` (`title` required).
fn parse_creation(body: &[u8], id: String, seq: u64) -> Result<VideoRec, ApiError> {
    let obj = json_object(body)?;
    if matches!(obj.get("title"), None | Some(Value::Null)) {
        return Err(
            ApiError::bad("attribute-required", "This attribute is required.").name("title"),
        );
    }
    let mut video = VideoRec::new(id, String::new(), now_ms(), seq);
    apply_fields(&mut video, &obj)?;
    Ok(video)
}

/// `PATCH /videos/{id}` (title, description, tags, metadata, public, panoramic, mp4Support) → 200 Video.
pub async fn update(IdPath(id): IdPath, KeyedBody(shared, body): KeyedBody) -> ApiResult {
    let obj = json_object(&body)?;
    let arc = shared
        .video(&id)
        .ok_or_else(|| ApiError::not_found("videoId"))?;
    let mut v = arc.lock().await;
    let mut updated = v.clone();
    apply_fields(&mut updated, &obj)?;
    updated.updated_ms = now_ms();
    let snapshot = updated.clone();
    shared.blocking(move |s| s.save_video(&snapshot)).await?;
    *v = updated;
    Ok(json_response(StatusCode::OK, &v.to_json()))
}

/// `POST /videos` → 201 Video.
pub async fn create(KeyedBody(shared, body): KeyedBody) -> ApiResult {
    let video = parse_creation(&body, new_id("vi"), shared.next_seq())?;
    let snapshot = video.clone();
    shared.blocking(move |s| s.save_video(&snapshot)).await?;
    let json = video.to_json();
    shared.insert_video(video);
    Ok(json_response(StatusCode::CREATED, &json))
}

/// Whether a video passes the list filters: `title` (substring), `tags[]` (all),
/// `metadata[key]=value` (all), `description` (substring).
fn matches(v: &VideoRec, query: &[(String, String)]) -> bool {
    query.iter().all(|(k, val)| match k.as_str() {
        "title" => v.title.contains(val.as_str()),
        "description" => v.description.contains(val.as_str()),
        "tags[]" | "tags" => v.tags.iter().any(|t| t == val),
        k if k.starts_with("metadata[") && k.ends_with(']') => {
            let key = &k["metadata[".len()..k.len() - 1];
            v.metadata.iter().any(|m| m.key == key && &m.value == val)
        }
        _ => true,
    })
}

/// `GET /videos?title=&tags[]=&metadata[k]=v&sortBy=&sortOrder=&currentPage=&pageSize=`.
pub async fn list(Query(query): Query<Vec<(String, String)>>, Keyed(shared): Keyed) -> ApiResult {
    let page = Page::from_query(&query)?;
    let sort_by = param(&query, "sortBy").unwrap_or("createdAt");
    if !["createdAt", "publishedAt", "updatedAt", "title"].contains(&sort_by) {
        return Err(ApiError::invalid_query(
            "sortBy",
            "\"sortBy\" must be one of: title, createdAt, publishedAt, updatedAt.",
        ));
    }
    let desc = descending(&query)?;
    let mut all: Vec<VideoRec> = shared
        .all_videos()
        .await
        .into_iter()
        .filter(|v| matches(v, &query))
        .collect();
    match sort_by {
        "title" => all.sort_by(|a, b| a.title.cmp(&b.title).then(a.seq.cmp(&b.seq))),
        "updatedAt" => all.sort_by_key(|v| (v.updated_ms, v.seq)),
        _ => {}
    }
    page.answer("/videos", all, desc, VideoRec::to_json, &query)
}

/// A snapshot of one video, or 404.
pub async fn snapshot(shared: &Shared, id: &str) -> Result<VideoRec, ApiError> {
    let arc = shared
        .video(id)
        .ok_or_else(|| ApiError::not_found("videoId"))?;
    let v = arc.lock().await.clone();
    Ok(v)
}

/// `GET /videos/{id}`.
pub async fn show(IdPath(id): IdPath, Keyed(shared): Keyed) -> ApiResult {
    let v = snapshot(&shared, &id).await?;
    Ok(json_response(StatusCode::OK, &v.to_json()))
}

/// `GET /videos/{id}/status`.
pub async fn status(IdPath(id): IdPath, Keyed(shared): Keyed) -> ApiResult {
    let v = snapshot(&shared, &id).await?;
    Ok(json_response(StatusCode::OK, &v.status_json()))
}

/// `DELETE /videos/{id}` → 204; its stored chunks are removed.
pub async fn delete(IdPath(id): IdPath, Keyed(shared): Keyed) -> ApiResult {
    let arc = shared
        .remove_video(&id)
        .ok_or_else(|| ApiError::not_found("videoId"))?;
    // Wait for an upload that is committing into this video to finish.
    let _guard = arc.lock().await;
    shared.blocking(move |s| s.delete_video(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
