//! The HTTP client: options, construction, URL building, and the one place requests are sent.
//!
//! Redirects are never followed (api.video does not redirect; a captive portal does). Every
//! request carries `AV-Origin-Client: ingestd:<version>`. Connect timeout and per-request timeout
//! are separate: a request may take `base_timeout + len / min_rate`.

use crate::escape::Show as _;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;

use super::auth::{ApiKeyAuth, AuthMode};
use super::error::{self, ApiError, Credential};
use super::tcp_info::ConnSlot;
use crate::config::ApiConfig;
use crate::secret::Secret;

/// Value of the `AV-Origin-Client` header.
pub const ORIGIN_CLIENT: &str = concat!("ingestd:", env!("CARGO_PKG_VERSION"));

/// Success bodies larger than this are refused (no api.video answer comes close).
const MAX_BODY: usize = 8 << 20;
/// Error bodies are read up to this much (enough for the first line and the JSON problem).
const MAX_ERROR_BODY: usize = 64 << 10;

/// How to reach api.video.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL, e.g. `https://ws.api.video`; a path prefix is kept.
    pub endpoint: Url,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Slowest upload rate (bytes/s) still considered alive; scales request timeouts. Time spent
    /// in [`BodyObserver::before_send`](super::BodyObserver::before_send) counts, so a rate limit
    /// per request must stay above this.
    pub min_rate: u64,
    /// Extra CA certificates (PEM) to trust besides the platform's.
    pub ca_file: Option<PathBuf>,
    /// Appended to the `User-Agent` (`ingestd/<version> <extra>`).
    pub user_agent_extra: Option<String>,
    /// Fixed part of every request timeout (default 30 s): timeout = base_timeout + len / min_rate.
    pub base_timeout: Duration,
}

impl ClientOptions {
    /// Defaults: 10 s connect timeout, 64 KiB/s minimum rate, 30 s base timeout.
    pub fn new(endpoint: Url) -> Self {
        ClientOptions {
            endpoint,
            connect_timeout: Duration::from_secs(10),
            min_rate: 64 * 1024,
            ca_file: None,
            user_agent_extra: None,
            base_timeout: Duration::from_secs(30),
        }
    }

    /// From the validated `[api]` section.
    pub fn from_config(api: &ApiConfig) -> Self {
        ClientOptions {
            connect_timeout: api.connect_timeout,
            min_rate: api.min_rate,
            ca_file: api.ca_file.clone(),
            base_timeout: api.request_timeout,
            ..ClientOptions::new(api.endpoint.clone())
        }
    }
}

/// The api.video client. Cheap to clone; clones share connections and the bearer token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// What `http` was built from (for [`Client::own_connections`]).
    opts: ClientOptions,
    /// Idle lane clients, each on its own connections ([`super::lane`]).
    spare_lanes: super::lane::Spare,
    /// The connections opened last, on a client with a pool of its own ([`super::drain`]).
    conn: Option<Arc<ConnSlot>>,
    endpoint: Url,
    min_rate: u64,
    base_timeout: Duration,
    auth: Option<ApiKeyAuth>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("api_key", &self.inner.auth.as_ref().map(|a| a.key()))
            .finish()
    }
}

impl Client {
    /// Builds the client; fails only on a bad setup (unreadable CA file, unusable endpoint).
    pub fn new(opts: ClientOptions) -> Result<Client, ApiError> {
        if opts.endpoint.cannot_be_a_base() || !matches!(opts.endpoint.scheme(), "http" | "https") {
            return Err(ApiError::Setup(format!(
                "endpoint {} is not an http(s) base URL",
                opts.endpoint
            )));
        }
        let http = build_http(&opts, None)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                conn: None,
                endpoint: opts.endpoint.clone(),
                min_rate: opts.min_rate.max(1),
                base_timeout: opts.base_timeout,
                opts,
                spare_lanes: Default::default(),
                auth: None,
            }),
        })
    }

    /// This client with an API key, for token management and `POST /videos`.
    pub fn with_api_key(self, key: Secret, mode: AuthMode) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                opts: self.inner.opts.clone(),
                spare_lanes: self.inner.spare_lanes.clone(),
                conn: self.inner.conn.clone(),
                endpoint: self.inner.endpoint.clone(),
                min_rate: self.inner.min_rate,
                base_timeout: self.inner.base_timeout,
                auth: Some(ApiKeyAuth::new(key, mode)),
            }),
        }
    }

    /// The same client (endpoint, timeouts, CA file; no API key: uploads carry the upload
    /// token) on a connection pool of its own:
    /// requests sent through it while others go through `self` travel on separate TCP
    /// connections, even over HTTP/2 (one pool would multiplex them on one connection, one
    /// window). Upload lanes and first requests each use one, one request at a time, so the
    /// connections it opened are where a request is ([`super::drain`]).
    pub fn own_connections(&self) -> Result<Client, ApiError> {
        let slot = Arc::new(ConnSlot::default());
        let http = build_http(&self.inner.opts, Some(slot.clone()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                conn: Some(slot),
                opts: self.inner.opts.clone(),
                spare_lanes: Default::default(),
                endpoint: self.inner.endpoint.clone(),
                min_rate: self.inner.min_rate,
                base_timeout: self.inner.base_timeout,
                auth: None,
            }),
        })
    }

    /// Where this client records the connections it opens, if it has a pool of its own.
    pub(crate) fn conn_slot(&self) -> Option<&Arc<ConnSlot>> {
        self.inner.conn.as_ref()
    }

    /// The pool of idle lane clients (shared by clones of this client).
    pub(super) fn spare_lanes(&self) -> &super::lane::Spare {
        &self.inner.spare_lanes
    }

    /// Whether an API key is configured.
    pub fn has_api_key(&self) -> bool {
        self.inner.auth.is_some()
    }

    /// The base URL.
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn api_key_auth(&self) -> Option<&ApiKeyAuth> {
        self.inner.auth.as_ref()
    }

    pub(crate) fn base_timeout(&self) -> Duration {
        self.inner.base_timeout
    }

    /// Timeout of a request that sends `len` body bytes.
    pub fn request_timeout(&self, len: u64) -> Duration {
        self.inner.base_timeout + Duration::from_secs(len / self.inner.min_rate)
    }

    /// The endpoint with `segments` appended (each percent-encoded as one path segment).
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, ApiError> {
        let mut url = self.inner.endpoint.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| ApiError::Setup("the endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends `request` with `timeout`; returns status and body of a 2xx, an [`ApiError`] otherwise.
    pub(crate) async fn execute(
        &self,
        op: &'static str,
        credential: Credential,
        request: RequestBuilder,
        timeout: Duration,
    ) -> Result<(u16, Bytes), ApiError> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ApiError::from_reqwest(op, e, timeout))?;
        read_answer(op, credential, response, timeout).await
    }

    /// [`Self::execute`] for a request whose body reads through `gate`: given up (dropped, or past
    /// `timeout`), its body fails instead of its answer being cancelled, so its connection is
    /// reset, never shut down gracefully ([`super::abandon`]).
    pub(crate) async fn execute_gated<T: Send + 'static>(
        &self,
        op: &'static str,
        credential: Credential,
        request: RequestBuilder,
        timeout: Duration,
        gate: super::abandon::Gate<T>,
    ) -> Result<(u16, Bytes), ApiError> {
        let answer = async {
            let response = super::abandon::Sending::new(request.send(), gate)
                .await
                .map_err(|e| ApiError::from_reqwest(op, e, timeout))?;
            read_answer(op, credential, response, timeout).await
        };
        tokio::time::timeout(timeout, answer)
            .await
            .unwrap_or(Err(ApiError::Timeout { op, after: timeout }))
    }

    /// An API-key request with an optional JSON body; a 401 in Bearer mode re-authenticates once.
    pub(crate) async fn api_call(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), ApiError> {
        let auth = self.api_key_auth().ok_or(ApiError::NoApiKey)?;
        let mut retried = false;
        loop {
            let mut request = self.http().request(method.clone(), url.clone());
            if let Some(body) = json {
                request = request.json(body);
            }
            let request = request.header(AUTHORIZATION, self.authorization().await?);
            let result = self
                .execute(op, Credential::ApiKey, request, self.base_timeout())
                .await;
            match result {
                Err(e)
                    if e.status() == Some(401) && auth.mode() == AuthMode::Bearer && !retried =>
                {
                    self.invalidate_bearer().await;
                    retried = true;
                }
                other => return other.map_err(|e| e.scrub(auth.key())),
            }
        }
    }

    /// [`Client::api_call`], then parses the 2xx body as `T`.
    pub(crate) async fn api_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
    ) -> Result<T, ApiError> {
        let (status, body) = self.api_call(op, method, url, json).await?;
        parse_json(op, status, &body)
    }
}

/// The reqwest client of `opts`: its own connection pool, abortive close on drop; each new
/// connection recorded in `slot`.
fn build_http(
    opts: &ClientOptions,
    slot: Option<Arc<ConnSlot>>,
) -> Result<reqwest::Client, ApiError> {
    let mut headers = HeaderMap::new();
    headers.insert("av-origin-client", HeaderValue::from_static(ORIGIN_CLIENT));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let user_agent = match opts.user_agent_extra.as_deref() {
        Some(extra) if !extra.is_empty() => {
            format!("ingestd/{} {extra}", env!("CARGO_PKG_VERSION"))
        }
        _ => format!("ingestd/{}", env!("CARGO_PKG_VERSION")),
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .default_headers(headers)
        .connect_timeout(opts.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_keepalive(Duration::from_secs(30))
        // Dropped connections close with a RST: bytes of an abandoned upload body still in
        // the kernel's buffers must never complete a request (api::linger).
        .connector_layer(super::linger::AbortiveCloseLayer { slot });
    if let Some(path) = &opts.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| ApiError::Setup(format!("cannot read CA file {}: {e}", path.shown())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ApiError::Setup(format!("CA file {} is not PEM: {e}", path.shown())))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| ApiError::Setup(format!("cannot build the HTTP client: {e}")))
}

/// Parses a success body, turning garbage into a transient [`ApiError::InvalidResponse`].
pub(crate) fn parse_json<T: DeserializeOwned>(
    op: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidResponse {
        op,
        status,
        reason: format!("{e}"),
    })
}

/// Reads an answer: its status and body (at most `MAX_BODY`, or `MAX_ERROR_BODY` for an error,
/// which becomes the [`ApiError`] it says).
async fn read_answer(
    op: &'static str,
    credential: Credential,
    mut response: reqwest::Response,
    timeout: Duration,
) -> Result<(u16, Bytes), ApiError> {
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let success = response.status().is_success();
    let limit = if success { MAX_BODY } else { MAX_ERROR_BODY };
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    if success {
                        return Err(ApiError::InvalidResponse {
                            op,
                            status,
                            reason: format!("body larger than {limit} bytes"),
                        });
                    }
                    break;
                }
            }
            Ok(None) => break,
            // A broken error body still tells the status; a broken success body does not.
            Err(_) if !success => break,
            Err(e) => return Err(ApiError::from_reqwest(op, e, timeout)),
        }
    }
    tracing::debug!(op, status, "api.video answered");
    if success {
        Ok((status, body.freeze()))
    } else {
        Err(error::from_response(
            op, credential, status, &headers, &body,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: &str) -> Client {
        Client::new(ClientOptions::new(Url::parse(endpoint).unwrap())).unwrap()
    }

    #[test]
    fn urls_keep_a_path_prefix_and_encode_segments() {
        assert_eq!(
            client("https://ws.api.video")
                .url(&["upload"])
                .unwrap()
                .as_str(),
            "https://ws.api.video/upload"
        );
        assert_eq!(
            client("http://127.0.0.1:9/prefix/")
                .url(&["upload-tokens", "to/x y"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/prefix/upload-tokens/to%2Fx%20y"
        );
    }

    #[test]
    fn timeout_scales_with_length() {
        let c = client("https://ws.api.video");
        assert_eq!(c.request_timeout(0), Duration::from_secs(30));
        assert_eq!(c.request_timeout(64 << 20), Duration::from_secs(30 + 1024));
    }

    #[test]
    fn bad_setups_are_local_errors() {
        let bad = Client::new(ClientOptions::new(Url::parse("mailto:x@y").unwrap())).unwrap_err();
        assert_eq!(bad.class(), super::super::ErrorClass::Local);
        let mut opts = ClientOptions::new(Url::parse("https://ws.api.video").unwrap());
        opts.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(
            Client::new(opts)
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/ca.pem")
        );
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = client("https://ws.api.video")
            .with_api_key(Secret::new("abcdefghijklmnopqrstuvwxyz"), AuthMode::Basic);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("abcdefghijklmnopqrstuvwxyz"), "{dbg}");
    }
}
