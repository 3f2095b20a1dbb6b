//! Delegated upload tokens: create, list, show, delete (API key required).

use reqwest::Method;

use super::client::Client;
use super::error::ApiError;
use super::list::append_paging;
use super::models::{Page, TokenListQuery, TokenSortBy, UploadToken};

impl Client {
    /// `POST /upload-tokens` (`ttl` seconds; 0 = never expires).
    pub async fn create_upload_token(&self, ttl: u64) -> Result<UploadToken, ApiError> {
        let url = self.url(&["upload-tokens"])?;
        let body = serde_json::json!({ "ttl": ttl });
        self.api_json("POST /upload-tokens", Method::POST, url, Some(&body))
            .await
    }

    /// `GET /upload-tokens` with paging and sorting.
    pub async fn list_upload_tokens(
        &self,
        q: &TokenListQuery,
    ) -> Result<Page<UploadToken>, ApiError> {
        let mut url = self.url(&["upload-tokens"])?;
        let sort_by = q.sort_by.map(|s| match s {
            TokenSortBy::CreatedAt => "createdAt",
            TokenSortBy::Ttl => "ttl",
        });
        append_paging(&mut url, sort_by, q.sort_order, q.current_page, q.page_size);
        self.api_json("GET /upload-tokens", Method::GET, url, None)
            .await
    }

    /// `GET /upload-tokens/{token}`.
    pub async fn get_upload_token(&self, token: &str) -> Result<UploadToken, ApiError> {
        let url = self.url(&["upload-tokens", token])?;
        self.api_json("GET /upload-tokens/{token}", Method::GET, url, None)
            .await
    }

    /// `DELETE /upload-tokens/{token}` (204).
    pub async fn delete_upload_token(&self, token: &str) -> Result<(), ApiError> {
        let url = self.url(&["upload-tokens", token])?;
        self.api_call("DELETE /upload-tokens/{token}", Method::DELETE, url, None)
            .await
            .map(|_| ())
    }
}
