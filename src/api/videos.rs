//! Videos with the API key: create a container (`POST /videos`) and read its ingest status.

use reqwest::Method;

use super::client::Client;
use super::error::ApiError;
use super::models::{Video, VideoCreation, VideoStatus};

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
}
