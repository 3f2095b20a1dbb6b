//! Persisted records (upload tokens, access tokens, videos with their upload state) and their
//! api.video JSON views.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::util::atom;

/// A delegated upload token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadToken {
    pub token: String,
    pub ttl: u64,
    pub created_ms: i64,
    /// Creation order, to sort tokens created in the same millisecond.
    pub seq: u64,
}

impl UploadToken {
    pub fn expires_ms(&self) -> Option<i64> {
        (self.ttl > 0).then(|| {
            self.created_ms
                .saturating_add(i64::try_from(self.ttl).unwrap_or(i64::MAX / 2000) * 1000)
        })
    }

    pub fn expired_at(&self, now_ms: i64) -> bool {
        self.expires_ms().is_some_and(|e| now_ms >= e)
    }

    /// The API's JSON. `expiresAt` is omitted for ttl 0, as in every example
    /// (UNCONFIRMED, PROTOCOL §3: omitted vs `null`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "token": self.token,
            "ttl": self.ttl,
            "createdAt": atom(self.created_ms),
        });
        if let (Some(exp), Some(obj)) = (self.expires_ms(), v.as_object_mut()) {
            obj.insert("expiresAt".into(), atom(exp).into());
        }
        v
    }
}

/// A Bearer access token and its refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub access: String,
    pub refresh: String,
    pub expires_ms: i64,
}

/// How a video's source is being uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One request without `Content-Range`.
    Whole,
    /// `Content-Range: bytes FROM-TO/TOTAL`.
    Bytes,
    /// `Content-Range: part N/TOTAL` or `part N/*`.
    Part,
}

/// One accepted chunk, stored in `videos/<id>/chunks/<file>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunk {
    pub file: String,
    pub content_range: Option<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub part: Option<u32>,
    pub length: u64,
    pub with_video_id: bool,
    pub received_ms: i64,
}

/// One upload request that reached this video (accepted or rejected).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestLog {
    pub route: String,
    pub content_range: Option<String>,
    pub body_length: u64,
    pub with_video_id: bool,
    pub status: u16,
    pub error: Option<String>,
    pub received_ms: i64,
    /// When its headers arrived, before the body was read (0 in records of older versions).
    #[serde(default)]
    pub started_ms: i64,
}

/// Server-side upload state of one video.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UploadState {
    pub mode: Option<Mode>,
    /// `total_bytes` (bytes mode) or `total_parts` (part mode) once known.
    pub total: Option<u64>,
    pub chunks: Vec<Chunk>,
    pub complete: bool,
    pub sha256: Option<String>,
}

impl UploadState {
    pub fn received_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.length).sum()
    }

    /// Chunks in content order (by first byte, or part number).
    pub fn ordered(&self) -> Vec<&Chunk> {
        let mut v: Vec<&Chunk> = self.chunks.iter().collect();
        v.sort_by_key(|c| (c.part.unwrap_or(0), c.from.unwrap_or(0)));
        v
    }
}

/// A key/value metadata pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub key: String,
    pub value: String,
}

/// A video container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoRec {
    pub id: String,
    pub title: String,
    pub description: String,
    pub public: bool,
    pub panoramic: bool,
    pub mp4_support: bool,
    pub tags: Vec<String>,
    pub metadata: Vec<Metadata>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub seq: u64,
    pub upload: UploadState,
    pub requests: Vec<RequestLog>,
}

impl VideoRec {
    pub fn new(id: String, title: String, now: i64, seq: u64) -> Self {
        VideoRec {
            id,
            title,
            description: String::new(),
            public: true,
            panoramic: false,
            mp4_support: true,
            tags: Vec::new(),
            metadata: Vec::new(),
            created_ms: now,
            updated_ms: now,
            seq,
            upload: UploadState::default(),
            requests: Vec::new(),
        }
    }

    /// The api.video Video object (SPEC `video`). `language` is omitted (the Python client does not
    /// accept `null` there); `playerId` is omitted (no players here).
    pub fn to_json(&self) -> Value {
        let id = &self.id;
        json!({
            "videoId": id,
            "createdAt": atom(self.created_ms),
            "title": self.title,
            "description": self.description,
            "publishedAt": atom(self.created_ms),
            "updatedAt": atom(self.updated_ms),
            "discardedAt": null,
            "deletesAt": null,
            "discarded": false,
            "languageOrigin": null,
            "tags": self.tags,
            "metadata": self.metadata,
            "source": { "uri": format!("/videos/{id}/source") },
            "assets": {
                "iframe": format!("<iframe src=\"https://embed.api.video/vod/{id}\" width=\"100%\" height=\"100%\" frameborder=\"0\" scrolling=\"no\" allowfullscreen=\"\"></iframe>"),
                "player": format!("https://embed.api.video/vod/{id}"),
                "hls": format!("https://cdn.api.video/vod/{id}/hls/manifest.m3u8"),
                "thumbnail": format!("https://cdn.api.video/vod/{id}/thumbnail.jpg"),
                "mp4": format!("https://cdn.api.video/vod/{id}/mp4/source.mp4"),
            },
            "public": self.public,
            "panoramic": self.panoramic,
            "mp4Support": self.mp4_support,
        })
    }

    /// `GET /videos/{id}/status`. Status is `uploading` until complete, then `uploaded` (the
    /// emulator does no ingest/encoding; UNCONFIRMED what the service says before any upload).
    pub fn status_json(&self) -> Value {
        let up = &self.upload;
        let received_bytes: Vec<Value> = match up.mode {
            Some(Mode::Bytes) => up
                .ordered()
                .iter()
                .filter_map(|c| {
                    Some(json!({"from": c.from?, "to": c.to?, "total": up.total.unwrap_or(0)}))
                })
                .collect(),
            Some(Mode::Whole) => up
                .chunks
                .iter()
                .map(|c| json!({"from": 0, "to": c.length.saturating_sub(1), "total": c.length}))
                .collect(),
            _ => Vec::new(),
        };
        let parts: Vec<u32> = up.ordered().iter().filter_map(|c| c.part).collect();
        let parts_total = if up.mode == Some(Mode::Part) {
            up.total
        } else {
            None
        };
        let filesize = if up.complete {
            Some(up.received_bytes())
        } else if up.mode == Some(Mode::Bytes) {
            up.total
        } else {
            None
        };
        json!({
            "ingest": {
                "status": if up.complete { "uploaded" } else { "uploading" },
                "filesize": filesize,
                "receivedBytes": received_bytes,
                "receivedParts": { "parts": parts, "total": parts_total },
            },
            "encoding": {
                "playable": false,
                "qualities": [],
                "metadata": {
                    "width": null, "height": null, "bitrate": null, "duration": null,
                    "framerate": null, "samplerate": null, "videoCodec": null,
                    "audioCodec": null, "aspectRatio": null
                }
            }
        })
    }

    /// The `/_emulator/videos` view (documented in docs/EMULATOR.md).
    pub fn emulator_json(&self) -> Value {
        let up = &self.upload;
        let chunks: Vec<Value> = up
            .ordered()
            .iter()
            .map(|c| {
                json!({
                    "contentRange": c.content_range,
                    "from": c.from,
                    "to": c.to,
                    "part": c.part,
                    "length": c.length,
                    "withVideoId": c.with_video_id,
                    "receivedAt": atom(c.received_ms),
                })
            })
            .collect();
        let requests: Vec<Value> = self
            .requests
            .iter()
            .map(|r| {
                json!({
                    "route": r.route,
                    "contentRange": r.content_range,
                    "bodyLength": r.body_length,
                    "withVideoId": r.with_video_id,
                    "status": r.status,
                    "error": r.error,
                    "receivedAt": atom(r.received_ms),
                    "startedMs": r.started_ms,
                    "receivedMs": r.received_ms,
                })
            })
            .collect();
        json!({
            "videoId": self.id,
            "title": self.title,
            "createdAt": atom(self.created_ms),
            "complete": up.complete,
            "mode": up.mode,
            "total": up.total,
            "size": if up.complete { Some(up.received_bytes()) } else { None },
            "receivedBytes": up.received_bytes(),
            "chunkCount": up.chunks.len(),
            "chunks": chunks,
            "requests": requests,
            "sha256": up.sha256,
            "tags": self.tags,
            "metadata": self.metadata,
        })
    }
}
