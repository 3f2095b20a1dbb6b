//! `[api]`: endpoint scheme and host rules, the upload token source, secret and CA files.

use crate::escape::Show as _;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::{R, absolute, duration, size, span_of};
use crate::config::errors::Ctx;
use crate::config::raw::RawApi;
use crate::config::units::format_size;
use crate::config::{ApiConfig, LoadOptions, TokenSource, defaults, token};
use crate::secret::Secret;

const KIB: u64 = 1 << 10;

/// The line that starts every certificate in a PEM file.
const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";

pub(super) fn api(
    raw: &RawApi,
    cx: Ctx<'_>,
    opts: &LoadOptions,
    warnings: &mut Vec<String>,
) -> R<ApiConfig> {
    let allow_insecure_http = raw.allow_insecure_http.unwrap_or(false);
    let endpoint = endpoint(raw.endpoint.as_ref(), allow_insecure_http, cx, warnings)?;
    let token = token_source(raw, cx, opts, warnings)?;
    let api_key_file = match &raw.api_key_file {
        Some(v) => {
            let p = absolute(v, "api_key_file", "[api]", "/etc/ingestd/api-key", cx)?;
            if opts.check_files {
                token::check_secret_file(&p, "api_key_file", false, warnings)
                    .map_err(|m| cx.at(span_of(v), m))?;
            }
            Some(p)
        }
        None => None,
    };
    let ca_file = match &raw.ca_file {
        Some(v) => {
            let p = absolute(v, "ca_file", "[api]", "/etc/ingestd/proxy-ca.pem", cx)?;
            if opts.check_files {
                let pem = std::fs::read(&p).map_err(|e| {
                    cx.at(
                        span_of(v),
                        format!(
                            "`ca_file` names `{}`, which cannot be read: {e}; point it at a PEM certificate file",
                            p.shown()
                        ),
                    )
                })?;
                if !pem
                    .windows(PEM_BEGIN.len())
                    .any(|w| w == PEM_BEGIN.as_bytes())
                {
                    return Err(cx.at(
                        span_of(v),
                        format!(
                            "`ca_file` names `{}`, which holds no PEM certificate (no `{PEM_BEGIN}` line); point it at the CA certificate in PEM form (convert a DER one with `openssl x509 -inform der -in ca.der -out ca.pem`)",
                            p.shown()
                        ),
                    ));
                }
            }
            Some(p)
        }
        None => None,
    };
    let connect_timeout = duration(
        raw.connect_timeout.as_ref(),
        "connect_timeout",
        "[api]",
        defaults::CONNECT_TIMEOUT,
        Duration::from_millis(100),
        cx,
    )?;
    let min_rate = match &raw.min_rate {
        Some(v) => {
            let r = size(v, "min_rate", "[api]", true, cx)?;
            if r < KIB {
                return Err(cx.at(
                    span_of(v),
                    format!(
                        "`min_rate` in [api] is {}, below 1 KiB; request timeouts are request_timeout + length / min_rate, so write a rate such as \"64 KiB\"",
                        format_size(r)
                    ),
                ));
            }
            r
        }
        None => defaults::MIN_RATE,
    };
    let request_timeout = duration(
        raw.request_timeout.as_ref(),
        "request_timeout",
        "[api]",
        defaults::REQUEST_TIMEOUT,
        Duration::from_secs(1),
        cx,
    )?;
    Ok(ApiConfig {
        endpoint,
        token,
        api_key_file,
        allow_insecure_http,
        ca_file,
        connect_timeout,
        min_rate,
        request_timeout,
    })
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let d = host.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost" || d.ends_with(".localhost")
}

fn endpoint(
    v: Option<&Spanned<String>>,
    allow_insecure_http: bool,
    cx: Ctx<'_>,
    warnings: &mut Vec<String>,
) -> R<reqwest::Url> {
    let Some(v) = v else {
        return reqwest::Url::parse(defaults::ENDPOINT).map_err(|e| cx.whole(e.to_string()));
    };
    let s = v.get_ref().trim();
    let example = "write for example endpoint = \"https://ws.api.video\" (sandbox: \"https://sandbox.api.video\")";
    let mut url = reqwest::Url::parse(s).map_err(|e| {
        cx.at(
            span_of(v),
            format!("`endpoint` in [api] is \"{s}\", which is not a URL ({e}); {example}"),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" if allow_insecure_http => warnings.push(format!(
            "endpoint {s} uses plain http:// to another machine: the upload token travels unencrypted (allow_insecure_http = true)"
        )),
        "http" => {
            return Err(cx.at(
                span_of(v),
                format!(
                    "`endpoint` in [api] uses plain http:// to `{}`, which is not this machine, so the upload token would travel unencrypted; use https://, or set `allow_insecure_http = true` in [api] if that is really meant",
                    url.host_str().unwrap_or("")
                ),
            ));
        }
        other => {
            return Err(cx.at(
                span_of(v),
                format!("`endpoint` in [api] has the scheme `{other}:`; it must be https:// (or http:// to this machine); {example}"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(cx.at(
            span_of(v),
            format!("`endpoint` in [api] has no host; {example}"),
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(cx.at(
            span_of(v),
            format!(
                "`endpoint` in [api] must be a base URL without user, query or fragment; {example}"
            ),
        ));
    }
    // Always end the path with `/`, so that `endpoint.join("upload")` keeps a path prefix.
    if !url.path().ends_with('/') {
        let with_slash = format!("{}/", url.path());
        url.set_path(&with_slash);
    }
    Ok(url)
}

fn token_source(
    raw: &RawApi,
    cx: Ctx<'_>,
    opts: &LoadOptions,
    warnings: &mut Vec<String>,
) -> R<TokenSource> {
    match (&raw.upload_token, &raw.upload_token_file) {
        (Some(_), Some(file)) => Err(cx.at(
            span_of(file),
            "both `upload_token` and `upload_token_file` are set in [api]; keep only one (the file keeps the token out of the configuration)",
        )),
        (Some(inline), None) => {
            let secret = Secret::new(inline.get_ref().as_str());
            // Checked with the files (not by `status`, which never uses the token).
            let problem = opts
                .check_files
                .then(|| token::token_shape_problem(secret.expose().as_bytes()))
                .flatten();
            if let Some(problem) = problem {
                return Err(cx.at(
                    span_of(inline),
                    format!("`upload_token` in [api] {problem}; write the delegated upload token (it starts with `to`), or remove the key"),
                ));
            }
            if config_readable_by_others(cx.file) {
                warnings.push(format!(
                    "{} holds upload_token and can be read by other users; run `chmod 600 {}` or move the token to upload_token_file",
                    cx.file.shown(),
                    cx.file.shown()
                ));
            }
            Ok(TokenSource::Inline(secret))
        }
        (None, Some(file)) => {
            let p = absolute(file, "upload_token_file", "[api]", "/etc/ingestd/upload-token", cx)?;
            if opts.check_files {
                token::check_secret_file(&p, "upload_token_file", true, warnings)
                    .map_err(|m| cx.at(span_of(file), m))?;
            }
            Ok(TokenSource::File(p))
        }
        (None, None) => match token::credential(opts.credentials_directory.as_deref()) {
            Some(p) => {
                // `run` would refuse a credential that holds no token: say so here
                // (ExecStartPre) already. Read only when files are checked; never shown.
                let problem = opts
                    .check_files
                    .then(|| std::fs::read(&p).ok())
                    .flatten()
                    .and_then(|bytes| token::token_shape_problem(&bytes));
                if let Some(problem) = problem {
                    return Err(cx.whole(format!(
                        "the systemd credential `upload-token` ({}) {problem}, and the configuration sets no token; write the upload token into the file the unit's LoadCredential= names (/etc/ingestd/upload-token), then `systemctl restart ingestd`",
                        p.shown()
                    )));
                }
                Ok(TokenSource::Credential(p))
            }
            None => {
                warnings.push(
                    "no upload token is configured (upload_token_file, upload_token or the systemd credential `upload-token`): `run` and `upload` will refuse to start".into(),
                );
                Ok(TokenSource::None)
            }
        },
    }
}

fn config_readable_by_others(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}
