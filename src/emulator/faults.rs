//! The fault plan: rules set at run time through `/_emulator/faults` that make matching requests
//! misbehave (docs/EMULATOR.md documents the JSON).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::errors::ApiError;

/// What a matching request suffers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Answer `status` with `body` (default: an api.video JSON problem for that status).
    Fail {
        status: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        content_type: Option<String>,
        /// Seconds, sent as `X-RateLimit-Retry-After` and `Retry-After`.
        #[serde(default)]
        retry_after: Option<u64>,
        /// Process the request normally first (the chunk is stored), then answer the failure.
        #[serde(default)]
        store: bool,
    },
    /// Answer `status` (default 200) with a body that is not the JSON a client expects
    /// (default: the truncated JSON `{"videoId":"vi`).
    Garbage {
        #[serde(default = "default_ok")]
        status: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        store: bool,
    },
    /// Reset the TCP connection (RST) once `after_bytes` body bytes were read; nothing is stored.
    Reset { after_bytes: u64 },
    /// Process the request normally (the chunk is stored), then close the connection without answering.
    Drop,
    /// Process the request normally, then wait `ms` milliseconds before answering.
    Delay { ms: u64 },
    /// Read the request body at `bytes_per_sec`.
    Throttle { bytes_per_sec: u64 },
    /// From this request on, read its whole TCP connection (this request and the next ones on
    /// it) at most at `bytes_per_sec`; the request is otherwise served normally. A per-stream
    /// ceiling: parallel connections each get the rate. `0` lifts the cap.
    ConnRateBps { bytes_per_sec: u64 },
    /// Never answer (the connection stays open until the client gives up or the endpoint stops).
    Blackhole {
        #[serde(default)]
        store: bool,
    },
}

fn default_ok() -> u16 {
    200
}

fn default_count() -> u64 {
    1
}

/// One rule: the first `count` requests whose path starts with `path` (and whose method is
/// `method`, if given), after letting `skip` of them through, get `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub path: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default = "default_count")]
    pub count: u64,
    #[serde(default)]
    pub skip: u64,
    #[serde(flatten)]
    pub action: Action,
}

/// The request body of `POST /_emulator/faults`: a list of rules, or `{"rules": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PlanInput {
    List(Vec<Rule>),
    Object { rules: Vec<Rule> },
}

impl PlanInput {
    pub fn into_rules(self) -> Vec<Rule> {
        match self {
            PlanInput::List(r) | PlanInput::Object { rules: r } => r,
        }
    }
}

/// Rules with what is left of their `count`/`skip`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FaultPlan {
    pub rules: Vec<Rule>,
    /// How many requests got a fault since the plan was set.
    pub fired: u64,
}

impl FaultPlan {
    pub fn set(&mut self, rules: Vec<Rule>) {
        self.rules = rules;
        self.fired = 0;
    }

    /// The action for this request, if a rule matches (consuming one of its count).
    pub fn take(&mut self, method: &str, path: &str) -> Option<Action> {
        for rule in &mut self.rules {
            if rule.count == 0 || !path.starts_with(&rule.path) {
                continue;
            }
            if rule
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            rule.count -= 1;
            self.fired += 1;
            return Some(rule.action.clone());
        }
        None
    }
}

/// The default JSON problem for a failure status set by a fault.
fn default_problem(status: StatusCode) -> ApiError {
    match status.as_u16() {
        429 => ApiError::too_many_requests(),
        401 => ApiError::new(
            status,
            "authentication-invalid-upload-token",
            "The upload token is invalid or expired.",
        ),
        404 => ApiError::not_found(""),
        s if s >= 500 => ApiError::new(status, "internal-server-error", "Server error"),
        _ => ApiError::new(status, "fault-injected", "Fault injected by the emulator."),
    }
}

pub fn fault_response(
    status: u16,
    body: Option<String>,
    content_type: Option<String>,
    retry_after: Option<u64>,
    garbage: bool,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match (body, garbage) {
        (None, false) => default_problem(status).into_response(),
        (body, _) => {
            let body = body.unwrap_or_else(|| "{\"videoId\":\"vi".to_owned());
            let ct = content_type.clone().unwrap_or_else(|| {
                if garbage && body.trim_start().starts_with('{') {
                    "application/json".to_owned()
                } else if body.trim_start().starts_with('<') {
                    "text/html; charset=UTF-8".to_owned()
                } else {
                    "text/plain; charset=UTF-8".to_owned()
                }
            });
            let mut r = (status, body).into_response();
            if let Ok(v) = HeaderValue::from_str(&ct) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
    };
    if let Some(content_type) = content_type
        && let Ok(v) = HeaderValue::from_str(&content_type)
    {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(secs) = retry_after {
        set_header(&mut resp, "x-ratelimit-retry-after", secs);
        set_header(&mut resp, "retry-after", secs);
    }
    resp
}

/// Sets a numeric header.
pub fn set_header(resp: &mut Response, name: &'static str, value: u64) {
    resp.headers_mut()
        .insert(HeaderName::from_static(name), HeaderValue::from(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        let input: PlanInput = serde_json::from_str(
            r#"[{"path":"/upload","count":2,"skip":1,"action":"fail","status":502,"body":"<html>bad gateway</html>"},
                {"path":"/videos","method":"GET","action":"delay","ms":5}]"#,
        )
        .unwrap();
        let mut plan = FaultPlan::default();
        plan.set(input.into_rules());
        assert_eq!(plan.take("POST", "/upload"), None);
        assert!(matches!(
            plan.take("POST", "/upload"),
            Some(Action::Fail { status: 502, .. })
        ));
        assert!(matches!(
            plan.take("POST", "/upload"),
            Some(Action::Fail { .. })
        ));
        assert_eq!(plan.take("POST", "/upload"), None);
        assert_eq!(plan.take("POST", "/videos"), None);
        assert_eq!(
            plan.take("GET", "/videos/vi1"),
            Some(Action::Delay { ms: 5 })
        );
        assert_eq!(plan.fired, 3);
    }

    #[test]
    fn rejects_unknown_actions() {
        assert!(serde_json::from_str::<PlanInput>(r#"[{"path":"/","action":"explode"}]"#).is_err());
        let r: PlanInput =
            serde_json::from_str(r#"{"rules":[{"path":"/upload","action":"drop"}]}"#).unwrap();
        assert_eq!(r.into_rules()[0].action, Action::Drop);
    }
}
