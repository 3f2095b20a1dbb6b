//! API-key authentication: HTTP Basic (key as user name, empty password) or a Bearer access token
//! from `POST /auth/api-key`, refreshed with `POST /auth/refresh` shortly before it expires.
//!
//! The key, access and refresh tokens are [`Secret`]s; headers carrying them are marked sensitive
//! and every error from these calls is scrubbed of them.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::client::Client;
use super::error::{ApiError, Credential};
use crate::secret::Secret;

/// How the API key authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Basic base64("<key>:")` on every request.
    Basic,
    /// `POST /auth/api-key` once, then `Authorization: Bearer <access_token>`, refreshed before expiry.
    Bearer,
}

/// Renew a bearer token this long before it expires (at most half its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

struct BearerToken {
    access: Secret,
    refresh: Option<Secret>,
    /// When to stop using `access` (expiry minus the margin).
    renew_at: Instant,
}

/// The API key and, in Bearer mode, the current access token.
pub(crate) struct ApiKeyAuth {
    key: Secret,
    mode: AuthMode,
    bearer: Mutex<Option<BearerToken>>,
}

impl ApiKeyAuth {
    pub(crate) fn new(key: Secret, mode: AuthMode) -> Self {
        ApiKeyAuth {
            key,
            mode,
            bearer: Mutex::new(None),
        }
    }

    pub(crate) fn key(&self) -> &Secret {
        &self.key
    }

    pub(crate) fn mode(&self) -> AuthMode {
        self.mode
    }
}

/// `POST /auth/api-key` and `/auth/refresh` answer.
#[derive(Deserialize)]
struct AccessTokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

fn sensitive(value: &str) -> Result<HeaderValue, ApiError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        ApiError::Setup("the API key contains characters not allowed in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl Client {
    /// The `Authorization` header for an API-key request.
    pub(crate) async fn authorization(&self) -> Result<HeaderValue, ApiError> {
        let auth = self.api_key_auth().ok_or(ApiError::NoApiKey)?;
        match auth.mode() {
            AuthMode::Basic => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:", auth.key().expose()));
                sensitive(&format!("Basic {encoded}"))
            }
            AuthMode::Bearer => {
                let mut slot = auth.bearer.lock().await;
                let now = Instant::now();
                if let Some(current) = slot.as_ref().filter(|t| t.renew_at > now) {
                    return sensitive(&format!("Bearer {}", current.access.expose()));
                }
                let refreshed = match slot.as_ref().and_then(|t| t.refresh.clone()) {
                    Some(refresh) => match self.fetch_access_token(auth, Some(&refresh)).await {
                        Ok(t) => Some(t),
                        Err(e) if e.class() == super::ErrorClass::Transient => return Err(e),
                        // A rejected refresh token: start again from the API key.
                        Err(_) => None,
                    },
                    None => None,
                };
                let token = match refreshed {
                    Some(t) => t,
                    None => self.fetch_access_token(auth, None).await?,
                };
                let header = sensitive(&format!("Bearer {}", token.access.expose()));
                *slot = Some(token);
                header
            }
        }
    }

    /// Forgets the access token (after a 401), so the next request authenticates again.
    pub(crate) async fn invalidate_bearer(&self) {
        if let Some(auth) = self.api_key_auth() {
            *auth.bearer.lock().await = None;
        }
    }

    async fn fetch_access_token(
        &self,
        auth: &ApiKeyAuth,
        refresh: Option<&Secret>,
    ) -> Result<BearerToken, ApiError> {
        let (op, segment, body) = match refresh {
            Some(r) => (
                "POST /auth/refresh",
                "refresh",
                serde_json::json!({ "refreshToken": r.expose() }),
            ),
            None => (
                "POST /auth/api-key",
                "api-key",
                serde_json::json!({ "apiKey": auth.key().expose() }),
            ),
        };
        let url = self.url(&["auth", segment])?;
        let request = self.http().request(Method::POST, url).json(&body);
        let scrub = |e: ApiError| {
            let e = e.scrub(auth.key());
            match refresh {
                Some(r) => e.scrub(r),
                None => e,
            }
        };
        let timeout = self.base_timeout();
        let (status, body) = self
            .execute(op, Credential::ApiKey, request, timeout)
            .await
            .map_err(scrub)?;
        let parsed: AccessTokenResponse =
            serde_json::from_slice(&body).map_err(|e| ApiError::InvalidResponse {
                op,
                status,
                reason: format!("not an access token ({e})"),
            })?;
        let lifetime = Duration::from_secs(parsed.expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(BearerToken {
            access: Secret::new(parsed.access_token),
            refresh: parsed.refresh_token.map(Secret::new),
            renew_at: Instant::now() + lifetime - margin,
        })
    }
}
