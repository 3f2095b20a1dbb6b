//! One error type for every api.video call, with a [`ErrorClass`] that tells the caller what to do.
//!
//! Error bodies are api.video's JSON problems (`type`, `title`, `status`, `name`, `detail`); the
//! `type` URL's last path segment is the slug callers act on (e.g.
//! `video-content-range-by-bytes-range-overlap`). Classification (DESIGN §4):
//! network, timeout, 408 and 5xx → [`ErrorClass::Transient`]; 429 → [`ErrorClass::RateLimited`]
//! (with `X-RateLimit-Retry-After` or `Retry-After`; a 503 carrying one keeps it too); 401 on
//! `/upload` → [`ErrorClass::TokenRejected`]; 401 with the API key, or bad credentials on `/auth/*`
//! → [`ErrorClass::ApiKeyRejected`]; other 4xx → [`ErrorClass::Permanent`]. A body that is not
//! api.video's JSON (an HTML 502 from a proxy) is transient and quoted by its first line; a 2xx
//! that cannot be understood is transient too. Nothing here ever holds a token or key: URLs are
//! stripped from transport errors and server-provided text is scrubbed of the secret in use.

use crate::escape::Show as _;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::secret::{Secret, redact};

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Network error, timeout, 5xx, a non-api.video answer: retry with backoff.
    Transient,
    /// 429: wait [`ApiError::retry_after`] (or back off when absent).
    RateLimited,
    /// 401 on `/upload`: the upload token is missing, unknown, expired or deleted. Pause the queue.
    TokenRejected,
    /// 401 on an API-key endpoint (or bad credentials on `/auth/*`): the API key is wrong.
    ApiKeyRejected,
    /// Any other 4xx: this request will never succeed as is; see [`ApiError::slug`].
    Permanent,
    /// A local problem: the file could not be read or changed while it was read; a bad setup.
    Local,
}

impl ErrorClass {
    /// Lower-case name for logs and `status` output.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::TokenRejected => "token-rejected",
            ErrorClass::ApiKeyRejected => "api-key-rejected",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Local => "local",
        }
    }
}

/// api.video's JSON error body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// `https://docs.api.video/reference/<slug>`.
    #[serde(default, rename = "type")]
    pub type_url: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// The offending parameter (may be empty).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Problem {
    /// The last path segment of `type`, e.g. `authentication-invalid-upload-token`.
    pub fn slug(&self) -> Option<&str> {
        let url = self.type_url.as_deref()?;
        let seg = url.trim_end_matches('/').rsplit('/').next()?;
        (!seg.is_empty()).then_some(seg)
    }
}

/// Which credential a request carried; decides what a 401 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential {
    UploadToken,
    ApiKey,
}

/// An error from the api.video client. `Display` and `Debug` never contain a token or API key.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("{}", http_message(op, *status, problem.as_deref(), body_line.as_deref()))]
    Http {
        op: &'static str,
        status: u16,
        class: ErrorClass,
        /// api.video's JSON problem, when the body was one.
        problem: Option<Box<Problem>>,
        /// First line of a body that was not api.video's JSON.
        body_line: Option<String>,
        retry_after: Option<Duration>,
    },
    /// A 3xx: api.video never redirects; a captive portal or misconfigured proxy does.
    #[error(
        "{op}: unexpected redirect ({status}) to {location}; api.video never redirects (captive portal or proxy?)"
    )]
    Redirect {
        op: &'static str,
        status: u16,
        location: String,
    },
    /// A success status whose body is not what the endpoint returns.
    #[error("{op}: api.video answered {status} with an unusable body: {reason}")]
    InvalidResponse {
        op: &'static str,
        status: u16,
        reason: String,
    },
    /// No complete answer within the request's timeout.
    #[error("{op}: no answer within {} s", after.as_secs())]
    Timeout { op: &'static str, after: Duration },
    /// Connection refused, reset, DNS, TLS…
    #[error("{op}: {message}{}", hint.map(|h| format!("; {h}")).unwrap_or_default())]
    Network {
        op: &'static str,
        /// The transport's words.
        message: String,
        /// What to do about it (`api::hint`, chosen by error type), shown after the message.
        hint: Option<&'static str>,
        /// The connection was never established (DNS, refused, TLS handshake): no byte of the
        /// request reached the endpoint.
        connect: bool,
    },
    /// The file to upload could not be opened or read.
    #[error("{}: {source}", path.shown())]
    File { path: PathBuf, source: io::Error },
    /// The file ended before the bytes the request announced: it was truncated while uploading.
    #[error(
        "{}: the file ended at byte {at} but {expected_end} bytes were expected (truncated while uploading)",
        path.shown()
    )]
    FileTruncated {
        path: PathBuf,
        at: u64,
        expected_end: u64,
    },
    /// The caller stopped the upload before the last piece of its body left (its observer
    /// refused it, e.g. the journal could not record it).
    #[error("upload stopped before its last byte: {reason}")]
    Stopped { reason: String },
    /// An API-key call on a client built without [`Client::with_api_key`](super::Client::with_api_key).
    #[error("no API key: set APIVIDEO_API_KEY or api.api_key_file")]
    NoApiKey,
    /// The client could not be built (unreadable CA file, endpoint that cannot take a path…).
    #[error("api client setup: {0}")]
    Setup(String),
}

fn http_message(
    op: &str,
    status: u16,
    problem: Option<&Problem>,
    body_line: Option<&str>,
) -> String {
    match problem {
        Some(p) => {
            let mut s = format!("{op}: api.video answered {status}");
            if let Some(slug) = p.slug() {
                s.push_str(&format!(" {slug}"));
            }
            if let Some(title) = p.title.as_deref().filter(|t| !t.is_empty()) {
                s.push_str(&format!(": {title}"));
            }
            if let Some(detail) = p.detail.as_deref().filter(|t| !t.is_empty()) {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        None => format!(
            "{op}: HTTP {status} that is not from api.video (proxy?): {}",
            body_line
                .filter(|l| !l.is_empty())
                .unwrap_or("<empty body>")
        ),
    }
}

impl ApiError {
    /// What the caller should do.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Http { class, .. } => *class,
            ApiError::Redirect { .. }
            | ApiError::InvalidResponse { .. }
            | ApiError::Timeout { .. }
            | ApiError::Network { .. } => ErrorClass::Transient,
            ApiError::File { .. }
            | ApiError::FileTruncated { .. }
            | ApiError::Stopped { .. }
            | ApiError::Setup(_) => ErrorClass::Local,
            ApiError::NoApiKey => ErrorClass::ApiKeyRejected,
        }
    }

    fn problem(&self) -> Option<&Problem> {
        match self {
            ApiError::Http { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    /// The api.video error slug, e.g. `video-source-already-uploaded`.
    pub fn slug(&self) -> Option<&str> {
        self.problem().and_then(Problem::slug)
    }

    /// True when the request certainly never reached the endpoint (the connection could not be
    /// made: DNS, refused, TLS handshake), so it cannot have created anything there.
    pub fn nothing_sent(&self) -> bool {
        matches!(self, ApiError::Network { connect: true, .. })
    }

    /// True when the endpoint turned the request down (a 4xx answer, or a redirect not
    /// followed), so it created no video: a first request that ends this way leaves no possible
    /// orphan. A 5xx or an unreadable 2xx answer may come after the video was stored: false.
    pub fn created_nothing(&self) -> bool {
        self.nothing_sent()
            || matches!(self, ApiError::Http { status, .. } if (400..500).contains(status))
            || matches!(self, ApiError::Redirect { .. })
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. }
            | ApiError::Redirect { status, .. }
            | ApiError::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the server asked to wait (429, or a 503 carrying a retry header).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// api.video's human message (`title`).
    pub fn title(&self) -> Option<&str> {
        self.problem().and_then(|p| p.title.as_deref())
    }

    /// api.video's extra information (`detail`).
    pub fn detail(&self) -> Option<&str> {
        self.problem().and_then(|p| p.detail.as_deref())
    }

    /// The offending parameter (`name`).
    pub fn name(&self) -> Option<&str> {
        self.problem().and_then(|p| p.name.as_deref())
    }

    /// Replaces every occurrence of `secret` in server-provided text by its redacted form.
    pub(crate) fn scrub(mut self, secret: &Secret) -> Self {
        let raw = secret.expose();
        if raw.is_empty() {
            return self;
        }
        let red = redact(raw);
        let fix = |s: &mut String| {
            if s.contains(raw) {
                *s = s.replace(raw, &red);
            }
        };
        let fix_opt = |s: &mut Option<String>| {
            if let Some(s) = s {
                fix(s);
            }
        };
        match &mut self {
            ApiError::Http {
                problem, body_line, ..
            } => {
                fix_opt(body_line);
                if let Some(p) = problem {
                    fix_opt(&mut p.type_url);
                    fix_opt(&mut p.title);
                    fix_opt(&mut p.name);
                    fix_opt(&mut p.detail);
                }
            }
            ApiError::Redirect { location, .. } => fix(location),
            ApiError::InvalidResponse { reason, .. } => fix(reason),
            ApiError::Network { message, .. } => fix(message),
            _ => {}
        }
        self
    }

    /// A transport error from reqwest, without its URL (which may carry `?token=`).
    pub(crate) fn from_reqwest(op: &'static str, err: reqwest::Error, timeout: Duration) -> Self {
        if err.is_timeout() {
            return ApiError::Timeout { op, after: timeout };
        }
        let err = err.without_url();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        let connect = err.is_connect();
        let hint = super::hint::hint(&err, &message, connect);
        ApiError::Network {
            op,
            message,
            hint,
            connect,
        }
    }
}

/// Seconds from `X-RateLimit-Retry-After` (api.video) or `Retry-After` (standard, seconds form).
pub(crate) fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    ["x-ratelimit-retry-after", "retry-after"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .find(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// First non-blank line of a body, trimmed and cut to 200 characters.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Builds the error for a non-2xx answer.
pub(crate) fn from_response(
    op: &'static str,
    credential: Credential,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiError {
    if (300..400).contains(&status) {
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(location_host)
            .unwrap_or_else(|| "nowhere".to_owned());
        return ApiError::Redirect {
            op,
            status,
            location,
        };
    }
    let problem = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .and_then(|v| serde_json::from_value::<Problem>(v).ok())
        .map(Box::new);
    let slug = problem.as_deref().and_then(Problem::slug);
    let class = match status {
        429 => ErrorClass::RateLimited,
        401 => match credential {
            Credential::UploadToken => ErrorClass::TokenRejected,
            Credential::ApiKey => ErrorClass::ApiKeyRejected,
        },
        400 if slug == Some("authentication-invalid-user-credentials") => {
            ErrorClass::ApiKeyRejected
        }
        408 => ErrorClass::Transient,
        400..=499 if problem.is_some() => ErrorClass::Permanent,
        // An error page not from api.video (proxy, load balancer, captive portal): retry later.
        _ => ErrorClass::Transient,
    };
    let retry_after = match status {
        429 | 503 => retry_after_header(headers),
        _ => None,
    };
    let body_line = problem.is_none().then(|| first_line(body));
    ApiError::Http {
        op,
        status,
        class,
        problem,
        body_line,
        retry_after,
    }
}

/// Scheme and host of a redirect target (its path and query may carry anything, even the token).
fn location_host(location: &str) -> String {
    match reqwest::Url::parse(location) {
        Ok(url) => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?")),
        Err(_) => "a relative location".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    const TOKEN: &str = "to1tcmSFHeYY5KzyhOqVKMKb";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn problem(slug: &str, status: u16) -> String {
        format!(
            r#"{{"type":"https://docs.api.video/reference/{slug}","title":"T {slug}","status":{status},"name":"file","detail":"D"}}"#
        )
    }

    struct Case {
        status: u16,
        cred: Credential,
        body: String,
        headers: Vec<(&'static str, &'static str)>,
        class: ErrorClass,
        slug: Option<&'static str>,
        retry_after: Option<u64>,
    }

    fn case(status: u16, cred: Credential, body: &str, class: ErrorClass) -> Case {
        Case {
            status,
            cred,
            body: body.to_owned(),
            headers: vec![],
            class,
            slug: None,
            retry_after: None,
        }
    }

    #[test]
    fn classification_table() {
        use Credential::*;
        use ErrorClass::*;
        let html = "\n<html>\r\n<head><title>502 Bad Gateway</title></head></html>";
        let cases = vec![
            Case {
                slug: Some("video-content-range-by-bytes-range-overlap"),
                ..case(
                    400,
                    UploadToken,
                    &problem("video-content-range-by-bytes-range-overlap", 400),
                    Permanent,
                )
            },
            Case {
                slug: Some("video-source-already-uploaded"),
                ..case(
                    400,
                    UploadToken,
                    &problem("video-source-already-uploaded", 400),
                    Permanent,
                )
            },
            Case {
                slug: Some("authentication-invalid-upload-token"),
                ..case(
                    401,
                    UploadToken,
                    &problem("authentication-invalid-upload-token", 401),
                    TokenRejected,
                )
            },
            case(401, UploadToken, "", TokenRejected),
            Case {
                slug: Some("authentication-invalid-api-key"),
                ..case(
                    401,
                    ApiKey,
                    &problem("authentication-invalid-api-key", 401),
                    ApiKeyRejected,
                )
            },
            Case {
                slug: Some("authentication-invalid-user-credentials"),
                ..case(
                    400,
                    ApiKey,
                    &problem("authentication-invalid-user-credentials", 400),
                    ApiKeyRejected,
                )
            },
            Case {
                slug: Some("resource-not-found"),
                ..case(404, ApiKey, &problem("resource-not-found", 404), Permanent)
            },
            Case {
                slug: Some("authorization-suspended-account"),
                ..case(
                    403,
                    ApiKey,
                    &problem("authorization-suspended-account", 403),
                    Permanent,
                )
            },
            Case {
                slug: Some("too-many-requests"),
                headers: vec![
                    ("x-ratelimit-retry-after", "42"),
                    ("x-ratelimit-limit", "100"),
                ],
                retry_after: Some(42),
                ..case(
                    429,
                    UploadToken,
                    &problem("too-many-requests", 429),
                    RateLimited,
                )
            },
            Case {
                headers: vec![("retry-after", "7")],
                retry_after: Some(7),
                ..case(429, UploadToken, "", RateLimited)
            },
            Case {
                headers: vec![("x-ratelimit-retry-after", "3"), ("retry-after", "9")],
                retry_after: Some(3),
                ..case(429, ApiKey, "{}", RateLimited)
            },
            case(429, UploadToken, "{}", RateLimited),
            Case {
                headers: vec![("retry-after", "5")],
                retry_after: Some(5),
                ..case(503, UploadToken, html, Transient)
            },
            Case {
                // Every api.video response carries X-RateLimit-Retry-After; only 429/503 mean "wait".
                headers: vec![("x-ratelimit-retry-after", "60")],
                ..case(
                    500,
                    UploadToken,
                    r#"{"title":"Server error","status":500}"#,
                    Transient,
                )
            },
            case(502, UploadToken, html, Transient),
            case(504, ApiKey, "", Transient),
            case(408, UploadToken, "", Transient),
            case(404, UploadToken, "<html>not found</html>", Transient),
            case(400, UploadToken, "[1,2]", Transient),
            Case {
                slug: None,
                ..case(400, UploadToken, r#"{"title":"no type"}"#, Permanent)
            },
            Case {
                slug: Some("x"),
                ..case(
                    422,
                    UploadToken,
                    r#"{"type":"https://docs.api.video/reference/x/"}"#,
                    Permanent,
                )
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let h = headers(&c.headers);
            let e = from_response("POST /x", c.cred, c.status, &h, c.body.as_bytes());
            assert_eq!(e.class(), c.class, "case {i}: {e}");
            assert_eq!(e.slug(), c.slug, "case {i}: {e}");
            assert_eq!(e.status(), Some(c.status), "case {i}");
            assert_eq!(
                e.retry_after(),
                c.retry_after.map(Duration::from_secs),
                "case {i}: {e}"
            );
        }
    }

    #[test]
    fn html_error_quotes_first_line() {
        let body = "\n\n  <html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body>";
        let e = from_response(
            "POST /upload",
            Credential::UploadToken,
            502,
            &HeaderMap::new(),
            body.as_bytes(),
        );
        assert_eq!(
            e.to_string(),
            "POST /upload: HTTP 502 that is not from api.video (proxy?): <html><head><title>502 Bad Gateway</title></head>"
        );
        let empty = from_response("GET /x", Credential::ApiKey, 500, &HeaderMap::new(), b"");
        assert!(empty.to_string().ends_with("<empty body>"), "{empty}");
        let binary = from_response(
            "GET /x",
            Credential::ApiKey,
            500,
            &HeaderMap::new(),
            &[0xff, 0xfe, 0, 1],
        );
        assert_eq!(binary.class(), ErrorClass::Transient);
    }

    #[test]
    fn problem_message_and_accessors() {
        let e = from_response(
            "POST /upload",
            Credential::UploadToken,
            400,
            &HeaderMap::new(),
            problem("uploaded-file-empty", 400).as_bytes(),
        );
        assert_eq!(
            e.to_string(),
            "POST /upload: api.video answered 400 uploaded-file-empty: T uploaded-file-empty (D)"
        );
        assert_eq!(e.title(), Some("T uploaded-file-empty"));
        assert_eq!(e.detail(), Some("D"));
        assert_eq!(e.name(), Some("file"));
    }

    #[test]
    fn redirect_shows_only_scheme_and_host() {
        let h = headers(&[(
            "location",
            "http://portal.example/login?next=/upload%3Ftoken%3Dto1tcmSFHeYY5KzyhOqVKMKb",
        )]);
        let e = from_response("POST /upload", Credential::UploadToken, 302, &h, b"");
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.to_string().contains("http://portal.example"), "{e}");
        assert!(!e.to_string().contains("to1t"), "{e}");
    }

    #[test]
    fn server_text_is_scrubbed_of_the_secret() {
        let secret = Secret::new(TOKEN);
        let body = format!(
            r#"{{"type":"https://docs.api.video/reference/authentication-invalid-upload-token","title":"token {TOKEN} is invalid","status":401,"name":"{TOKEN}","detail":"see {TOKEN}"}}"#
        );
        let errors = vec![
            from_response(
                "POST /upload",
                Credential::UploadToken,
                401,
                &HeaderMap::new(),
                body.as_bytes(),
            ),
            from_response(
                "POST /upload",
                Credential::UploadToken,
                502,
                &HeaderMap::new(),
                format!("bad {TOKEN}").as_bytes(),
            ),
            ApiError::InvalidResponse {
                op: "POST /upload",
                status: 201,
                reason: format!("got {TOKEN}"),
            },
            ApiError::Network {
                op: "POST /upload",
                message: format!("reset {TOKEN}"),
                hint: None,
                connect: false,
            },
            ApiError::Redirect {
                op: "POST /upload",
                status: 302,
                location: TOKEN.to_owned(),
            },
        ];
        for e in errors {
            let e = e.scrub(&secret);
            let text = format!("{e} {e:?}");
            assert!(!text.contains(TOKEN), "{text}");
            assert!(text.contains("to1t…"), "{text}");
        }
    }

    #[test]
    fn no_error_variant_carries_secrets_of_its_own() {
        // Variants built locally hold only op names, statuses, paths and counts.
        let local = [
            ApiError::NoApiKey,
            ApiError::Timeout {
                op: "POST /upload",
                after: Duration::from_secs(31),
            },
            ApiError::FileTruncated {
                path: "/v/a.mp4".into(),
                at: 10,
                expected_end: 20,
            },
            ApiError::Setup("bad CA".into()),
        ];
        for e in local {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(TOKEN), "{text}");
        }
    }

    async fn get(url: &str) -> ApiError {
        let err = reqwest::Client::new().get(url).send().await.unwrap_err();
        ApiError::from_reqwest("GET /", err, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_refused_connection_sent_nothing_a_closed_one_may_have() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let refused = get(&url).await;
        assert!(refused.nothing_sent(), "{refused:?}");

        // Accepted, then closed without an answer: the request may have been read.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
        });
        let closed = get(&url).await;
        t.join().unwrap();
        assert!(!closed.nothing_sent(), "{closed:?}");
        assert_eq!(closed.class(), ErrorClass::Transient);
    }

    #[tokio::test]
    async fn an_unresolvable_host_sent_nothing() {
        let err = get("http://no-such-host.invalid/").await;
        assert!(err.nothing_sent(), "{err:?}");
    }

    #[test]
    fn slug_edge_cases() {
        let p = |t: &str| Problem {
            type_url: Some(t.to_owned()),
            ..Problem::default()
        };
        assert_eq!(
            p("https://docs.api.video/reference/a-b").slug(),
            Some("a-b")
        );
        assert_eq!(p("a-b").slug(), Some("a-b"));
        assert_eq!(p("").slug(), None);
        assert_eq!(Problem::default().slug(), None);
    }
}
