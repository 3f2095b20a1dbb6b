//! What every answer of the listener checks and carries: the `Host` header must name the address
//! the listener is bound to (an IP literal, `localhost` on loopback, or this machine's host name,
//! with the bound port), which defeats DNS rebinding: a page from another site cannot make a
//! browser read the status page through a name it controls. Every answer carries
//! `X-Content-Type-Options: nosniff`, a `Content-Security-Policy` that allows only the page's
//! own inline style and script (by hash) and requests to itself, and `Cache-Control: no-store`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The `Host` values the listener answers.
#[derive(Debug, Clone)]
pub struct Hosts {
    addr: SocketAddr,
    hostname: Option<String>,
}

impl Hosts {
    /// For a listener bound to `addr` (the real address, not a configured port 0).
    pub fn new(addr: SocketAddr) -> Hosts {
        Hosts {
            addr,
            hostname: crate::upload::adopt::host_name(),
        }
    }

    /// Whether `value` (a `Host` header) names this listener.
    pub fn allows(&self, value: &str) -> bool {
        let Some((host, port)) = split_host(value.trim()) else {
            return false;
        };
        if port.unwrap_or(80) != self.addr.port() {
            return false;
        }
        let ip = self.addr.ip();
        if let Ok(h) = host.parse::<IpAddr>() {
            return ip.is_unspecified() || h == ip;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host == "localhost" {
            return ip.is_loopback() || ip.is_unspecified();
        }
        self.hostname.as_deref().is_some_and(|n| n == host)
    }
}

/// `host[:port]` or `[v6][:port]` → (host without brackets, port).
fn split_host(v: &str) -> Option<(&str, Option<u16>)> {
    let (host, rest) = if let Some(inner) = v.strip_prefix('[') {
        let (h, rest) = inner.split_once(']')?;
        (h, rest)
    } else {
        match v.rsplit_once(':') {
            Some((h, _)) => (h, &v[h.len()..]),
            None => (v, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match rest {
        "" => None,
        p => Some(p.strip_prefix(':')?.parse().ok()?),
    };
    Some((host, port))
}

/// The middleware: refuses a foreign `Host` (421), adds the security headers to every answer.
pub async fn guard(State(hosts): State<Arc<Hosts>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let mut resp = match host {
        Some(h) if hosts.allows(h) => next.run(req).await,
        _ => (
            StatusCode::MISDIRECTED_REQUEST,
            "ingestd answers only requests addressed to its listen address (Host header)\n",
        )
            .into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&super::page::content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(addr: &str) -> Hosts {
        Hosts {
            addr: addr.parse().unwrap(),
            hostname: Some("nas".into()),
        }
    }

    #[test]
    fn loopback_listener_answers_its_address_and_localhost_only() {
        let h = hosts("127.0.0.1:9184");
        assert!(h.allows("127.0.0.1:9184"));
        assert!(h.allows("localhost:9184"));
        assert!(h.allows("LOCALHOST.:9184"));
        assert!(h.allows("nas:9184"));
        assert!(!h.allows("evil.example:9184"), "DNS rebinding");
        assert!(!h.allows("127.0.0.1:80"));
        assert!(!h.allows("127.0.0.1"));
        assert!(!h.allows("127.0.0.2:9184"));
        assert!(!h.allows(""));
        assert!(!h.allows(":9184"));
        assert!(!h.allows("127.0.0.1:x"));
    }

    #[test]
    fn ipv6_and_wildcard_listeners() {
        let h = hosts("[::1]:9184");
        assert!(h.allows("[::1]:9184"));
        assert!(h.allows("localhost:9184"));
        assert!(!h.allows("[::2]:9184"));
        let any = hosts("0.0.0.0:80");
        assert!(any.allows("192.0.2.7"));
        assert!(any.allows("192.0.2.7:80"));
        assert!(any.allows("[2001:db8::1]"));
        assert!(!any.allows("attacker.example"));
    }
}
