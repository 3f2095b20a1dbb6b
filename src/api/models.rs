//! Typed request and response bodies of the api.video endpoints ingestd uses.
//!
//! Field names follow the wire format (camelCase). Responses ignore unknown fields and tolerate
//! missing optional ones; they serialize back to the same JSON shape (`ingestd token … --json`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::secret::redact;

/// A delegated upload token (`GET /upload-tokens/{token}`). `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadToken {
    /// `to` + 22 characters.
    pub token: String,
    /// Lifetime in seconds; 0 = never expires.
    #[serde(default)]
    pub ttl: u64,
    /// RFC 3339 (`2020-12-02T10:13:19+00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Absent or null when `ttl` is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl fmt::Debug for UploadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadToken")
            .field("token", &redact(&self.token))
            .field("ttl", &self.ttl)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A page of a list endpoint: `{data, pagination}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

/// The `pagination` object of list responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    #[serde(default)]
    pub current_page: u64,
    #[serde(default)]
    pub current_page_items: u64,
    #[serde(default)]
    pub page_size: u64,
    #[serde(default)]
    pub pages_total: u64,
    #[serde(default)]
    pub items_total: u64,
    #[serde(default)]
    pub links: Vec<PaginationLink>,
}

/// `{rel, uri}`, `rel` ∈ self/first/previous/next/last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaginationLink {
    pub rel: String,
    pub uri: String,
}

/// `sortBy` of `GET /upload-tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenSortBy {
    #[serde(rename = "createdAt")]
    CreatedAt,
    #[serde(rename = "ttl")]
    Ttl,
}

/// `sortOrder` of list endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Query of `GET /upload-tokens`; `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenListQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<TokenSortBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
    /// From 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_page: Option<u32>,
    /// 1–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// `{key, value}` video metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub key: String,
    pub value: String,
}

/// Body of `POST /videos` (create a container to upload into).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoCreation {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<Metadata>,
    /// api.video's default is `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

/// `sortBy` of `GET /videos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoSortBy {
    #[serde(rename = "title")]
    Title,
    #[serde(rename = "createdAt")]
    CreatedAt,
    #[serde(rename = "publishedAt")]
    PublishedAt,
    #[serde(rename = "updatedAt")]
    UpdatedAt,
}

impl VideoSortBy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoSortBy::Title => "title",
            VideoSortBy::CreatedAt => "createdAt",
            VideoSortBy::PublishedAt => "publishedAt",
            VideoSortBy::UpdatedAt => "updatedAt",
        }
    }
}

/// Query of `GET /videos`: filters (all must match), sorting and paging; `None`/empty leaves
/// the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VideoListQuery {
    /// `title`: api.video matches part of the title.
    pub title: Option<String>,
    /// `tags[]`, repeated.
    pub tags: Vec<String>,
    /// `metadata[KEY]=VALUE`, repeated.
    pub metadata: Vec<(String, String)>,
    pub sort_by: Option<VideoSortBy>,
    pub sort_order: Option<SortOrder>,
    /// From 1.
    pub current_page: Option<u32>,
    /// 1–100.
    pub page_size: Option<u32>,
}

/// Body of `PATCH /videos/{id}`: only the fields that are `Some` change (`tags` and `metadata`
/// replace the whole list).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Vec<Metadata>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
}

impl VideoUpdate {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &VideoUpdate::default()
    }
}

/// A video. Only `videoId` is guaranteed; the rest is present on full Video bodies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Video {
    pub video_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: Vec<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<VideoSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<VideoAssets>,
}

/// `source` of a Video.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `assets` of a Video.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoAssets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iframe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp4: Option<String>,
}

/// `GET /videos/{id}/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoStatus {
    #[serde(default)]
    pub ingest: Option<Ingest>,
    #[serde(default)]
    pub encoding: Option<Encoding>,
}

impl VideoStatus {
    /// The service has the whole source (`uploaded`, `ingesting` or `ingested`).
    pub fn is_complete(&self) -> bool {
        self.ingest
            .as_ref()
            .and_then(|i| i.status.as_deref())
            .is_some_and(|s| matches!(s, "uploaded" | "ingesting" | "ingested"))
    }

    /// Bytes received so far (the sum of the received ranges, or the size once complete).
    pub fn received(&self) -> u64 {
        let Some(ingest) = &self.ingest else {
            return 0;
        };
        let ranges: u64 = ingest
            .received_bytes
            .iter()
            .map(|r| r.to.saturating_sub(r.from).saturating_add(1))
            .sum();
        match ingest.filesize {
            Some(size) if self.is_complete() => size.max(ranges),
            _ => ranges,
        }
    }
}

/// `ingest` of a video status: what the service has received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingest {
    /// `uploading` | `uploaded` | `ingesting` | `ingested`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub filesize: Option<u64>,
    #[serde(default)]
    pub received_bytes: Vec<BytesRange>,
    #[serde(default)]
    pub received_parts: Option<ReceivedParts>,
}

/// One received byte range, `to` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytesRange {
    pub from: u64,
    pub to: u64,
    pub total: u64,
}

/// Received parts of a `part N/TOTAL` upload; `total` is null until known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedParts {
    #[serde(default)]
    pub parts: Vec<u64>,
    #[serde(default)]
    pub total: Option<u64>,
}

/// `encoding` of a video status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    #[serde(default)]
    pub playable: Option<bool>,
    #[serde(default)]
    pub qualities: Vec<serde_json::Value>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_roundtrips_and_debug_redacts() {
        let text = r#"{"token":"to1tcmSFHeYY5KzyhOqVKMKb","ttl":0,"createdAt":"2020-12-02T10:13:19+00:00"}"#;
        let t: UploadToken = serde_json::from_str(text).unwrap();
        assert_eq!(t.expires_at, None);
        assert_eq!(serde_json::to_string(&t).unwrap(), text);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("to1tcmSFHeYY5KzyhOqVKMKb"), "{dbg}");
        let null: UploadToken =
            serde_json::from_str(r#"{"token":"to1","ttl":0,"expiresAt":null}"#).unwrap();
        assert_eq!(null.expires_at, None);
    }

    #[test]
    fn list_query_uses_wire_names() {
        let q = TokenListQuery {
            sort_by: Some(TokenSortBy::CreatedAt),
            sort_order: Some(SortOrder::Desc),
            current_page: Some(2),
            page_size: None,
        };
        assert_eq!(
            serde_json::to_value(&q).unwrap(),
            serde_json::json!({"sortBy": "createdAt", "sortOrder": "desc", "currentPage": 2})
        );
    }

    #[test]
    fn status_example_parses() {
        let s: VideoStatus = serde_json::from_str(
            r#"{"ingest":{"status":"uploaded","filesize":10,"receivedBytes":[{"to":9,"from":0,"total":10}]},
                "encoding":{"playable":true,"qualities":[],"metadata":{"width":424}}}"#,
        )
        .unwrap();
        let ingest = s.ingest.unwrap();
        assert_eq!(
            ingest.received_bytes[0],
            BytesRange {
                from: 0,
                to: 9,
                total: 10
            }
        );
        assert_eq!(ingest.received_parts, None);
    }
}
