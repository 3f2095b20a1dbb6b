//! Delegated upload tokens: create, list, show, delete (API key required).

use reqwest::Method;

use super::client::Client;
use super::error::ApiError;
use super::models::{Page, SortOrder, TokenListQuery, TokenSortBy, UploadToken};

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
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(s) = q.sort_by {
                pairs.append_pair(
                    "sortBy",
                    match s {
                        TokenSortBy::CreatedAt => "createdAt",
                        TokenSortBy::Ttl => "ttl",
                    },
                );
            }
            if let Some(o) = q.sort_order {
                pairs.append_pair(
                    "sortOrder",
                    match o {
                        SortOrder::Asc => "asc",
                        SortOrder::Desc => "desc",
                    },
                );
            }
            if let Some(p) = q.current_page {
                pairs.append_pair("currentPage", &p.to_string());
            }
            if let Some(s) = q.page_size {
                pairs.append_pair("pageSize", &s.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
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
