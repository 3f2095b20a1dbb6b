//! Videos with the API key: create a container (`POST /videos`), list with filters, show,
//! update (`PATCH`), delete, and read a video's ingest status.

use reqwest::Method;

use super::client::Client;
use super::error::ApiError;
use super::list::append_paging;
use super::models::{Page, Video, VideoCreation, VideoListQuery, VideoStatus, VideoUpdate};

impl Client {
    /// `POST /videos`: an empty video (title, tags, metadata) that a token upload then fills.
    pub async fn create_video(&self, v: &VideoCreation) -> Result<Video, ApiError> {
        let url = self.url(&["videos"])?;
        let body = serde_json::to_value(v).map_err(|e| ApiError::Setup(e.to_string()))?;
        let video: Video = self
            .api_json("POST /videos", Method::POST, url, Some(&body))
            .await?;
        if video.video_id.is_empty() {
            return Err(ApiError::InvalidResponse {
                op: "POST /videos",
                status: 201,
                reason: "empty videoId".into(),
            });
        }
        Ok(video)
    }

    /// `GET /videos/{id}`.
    pub async fn get_video(&self, id: &str) -> Result<Video, ApiError> {
        let url = self.url(&["videos", id])?;
        self.api_json("GET /videos/{id}", Method::GET, url, None)
            .await
    }

    /// `GET /videos/{id}/status`: what the service has received (`ingest.receivedBytes`).
    pub async fn video_status(&self, id: &str) -> Result<VideoStatus, ApiError> {
        let url = self.url(&["videos", id, "status"])?;
        self.api_json("GET /videos/{id}/status", Method::GET, url, None)
            .await
    }

    /// `GET /videos` with filters (`title`, `tags[]`, `metadata[KEY]`), sorting and paging.
    pub async fn list_videos(&self, q: &VideoListQuery) -> Result<Page<Video>, ApiError> {
        let mut url = self.url(&["videos"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(t) = &q.title {
                pairs.append_pair("title", t);
            }
            for t in &q.tags {
                pairs.append_pair("tags[]", t);
            }
            for (k, v) in &q.metadata {
                pairs.append_pair(&format!("metadata[{k}]"), v);
            }
        }
        append_paging(
            &mut url,
            q.sort_by.map(|s| s.as_str()),
            q.sort_order,
            q.current_page,
            q.page_size,
        );
        self.api_json("GET /videos", Method::GET, url, None).await
    }

    /// `PATCH /videos/{id}`: changes the fields that are set; returns the updated video.
    pub async fn update_video(&self, id: &str, update: &VideoUpdate) -> Result<Video, ApiError> {
        let url = self.url(&["videos", id])?;
        let body = serde_json::to_value(update).map_err(|e| ApiError::Setup(e.to_string()))?;
        self.api_json("PATCH /videos/{id}", Method::PATCH, url, Some(&body))
            .await
    }

    /// `DELETE /videos/{id}` (204): the video and its source are gone.
    pub async fn delete_video(&self, id: &str) -> Result<(), ApiError> {
        let url = self.url(&["videos", id])?;
        self.api_call("DELETE /videos/{id}", Method::DELETE, url, None)
            .await
            .map(|_| ())
    }
}
