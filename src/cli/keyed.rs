//! The API key and the endpoint of the `token`, `videos` and `orphans` commands, and how their
//! API failures are told (one line, never the key).
//!
//! The API key comes from env `APIVIDEO_API_KEY`, else from `api.api_key_file`. The config file is
//! read only if it exists (an invalid one exits 78); without one, `--endpoint` and the env variable
//! are enough. `--endpoint` overrides `api.endpoint`; plain http only to loopback unless the
//! configuration allows it.

use crate::escape::Show as _;
use std::path::Path;

use reqwest::Url;

use super::Exit;
use crate::api::{ApiError, AuthMode, Client, ClientOptions, ErrorClass};
use crate::config::{self, Config};
use crate::secret::Secret;

/// Env variable holding the API key.
pub const KEY_ENV: &str = "APIVIDEO_API_KEY";
/// Used when neither `--endpoint` nor a config file names one.
const DEFAULT_ENDPOINT: &str = "https://ws.api.video";

/// A client that authenticates with the API key, and where key and endpoint came from.
pub struct Keyed {
    pub client: Client,
    pub source: KeySource,
}

/// Where the key and the endpoint came from, for messages (never the key itself).
pub struct KeySource {
    /// `APIVIDEO_API_KEY` or `api.api_key_file (PATH)`.
    pub key: String,
    pub endpoint: String,
    /// The endpoint came from `--endpoint` rather than the configuration.
    pub from_flag: bool,
}

/// Reads the config file if it exists, leniently: `ingestd token create > /etc/ingestd/upload-token`
/// empties the token file before we start, and API-key commands do not need the upload token.
pub fn lenient_config(config_path: &Path) -> anyhow::Result<Option<Config>> {
    if !config_path.exists() {
        return Ok(None);
    }
    Config::load_lenient(config_path).map(Some).map_err(|e| {
        Exit {
            code: config::EXIT_CONFIG,
            message: e.to_string(),
        }
        .into()
    })
}

/// Builds the client from `--endpoint`, the config file (if it exists) and the API key; exit 78
/// without a key.
pub fn connect(config_path: &Path, endpoint: Option<&str>) -> anyhow::Result<Keyed> {
    let config = lenient_config(config_path)?;
    connect_with(config.as_ref(), endpoint)?.ok_or_else(|| {
        Exit {
            code: config::EXIT_CONFIG,
            message: format!(
                "no API key: set {KEY_ENV} or api.api_key_file in the configuration (this command uses the account's API key)"
            ),
        }
        .into()
    })
}

/// Like [`connect`] with a loaded configuration; `None` when no API key is set.
pub fn connect_with(
    config: Option<&Config>,
    endpoint: Option<&str>,
) -> anyhow::Result<Option<Keyed>> {
    let allow_insecure = config.is_some_and(|c| c.api.allow_insecure_http);
    let mut opts = match config {
        Some(c) => ClientOptions::from_config(&c.api),
        None => ClientOptions::new(parse_endpoint(DEFAULT_ENDPOINT, true)?),
    };
    if let Some(endpoint) = endpoint {
        opts.endpoint = parse_endpoint(endpoint, allow_insecure)?;
    }
    let Some((key, key_source)) = api_key(config)? else {
        return Ok(None);
    };
    let client = Client::new(opts)
        .map_err(|e| Exit {
            code: config::EXIT_CONFIG,
            message: e.to_string(),
        })?
        .with_api_key(key, AuthMode::Basic);
    let source = KeySource {
        key: key_source,
        endpoint: client.endpoint().to_string(),
        from_flag: endpoint.is_some(),
    };
    Ok(Some(Keyed { client, source }))
}

/// `--endpoint`: an http(s) URL; plain http only to loopback unless the config allows it.
pub fn parse_endpoint(text: &str, allow_insecure: bool) -> anyhow::Result<Url> {
    let usage = |message: String| Exit { code: 2, message };
    let url = Url::parse(text).map_err(|e| {
        usage(format!(
            "--endpoint {text:?} is not a URL ({e}); use e.g. https://ws.api.video or https://sandbox.api.video"
        ))
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure || is_loopback(&url) => Ok(url),
        "http" => Err(usage(format!(
            "--endpoint {text}: plain http is allowed only to a loopback address (set api.allow_insecure_http = true to override)"
        ))
        .into()),
        other => Err(usage(format!(
            "--endpoint {text}: scheme {other:?} is not http or https"
        ))
        .into()),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// The API key and where it came from (for messages; never the key itself); `None` if unset.
fn api_key(config: Option<&Config>) -> anyhow::Result<Option<(Secret, String)>> {
    if let Some(value) = std::env::var_os(KEY_ENV) {
        let key = Secret::new(value.to_string_lossy());
        if !key.is_empty() {
            return Ok(Some((key, KEY_ENV.to_owned())));
        }
    }
    if let Some(path) = config.and_then(|c| c.api.api_key_file.as_ref()) {
        let text = std::fs::read_to_string(path).map_err(|e| Exit {
            code: config::EXIT_CONFIG,
            message: format!("cannot read api.api_key_file {}: {e}", path.shown()),
        })?;
        let key = Secret::new(text);
        if key.is_empty() {
            return Err(Exit {
                code: config::EXIT_CONFIG,
                message: format!("api.api_key_file {} is empty", path.shown()),
            }
            .into());
        }
        return Ok(Some((key, format!("api.api_key_file ({})", path.shown()))));
    }
    Ok(None)
}

/// One line for a rejected key or an endpoint that cannot be reached; other errors as they are.
pub fn api_failure(e: ApiError, source: &KeySource) -> anyhow::Error {
    if e.class() == ErrorClass::ApiKeyRejected {
        let slug = e.slug().unwrap_or("no reason given");
        return Exit {
            code: 1,
            message: format!(
                "api.video rejected the API key ({slug}); check {}",
                source.key
            ),
        }
        .into();
    }
    if let ApiError::Network {
        op,
        message: cause,
        connect: true,
        ..
    } = &e
    {
        // The transport's words without the daemon's hint (which names [api] and retries).
        let which = if source.from_flag {
            "--endpoint"
        } else {
            "`endpoint` in [api] (or --endpoint)"
        };
        return Exit {
            code: 1,
            message: format!(
                "cannot reach {} ({op}): {cause}; check {which} and the network",
                source.endpoint
            ),
        }
        .into();
    }
    anyhow::Error::new(e)
}

/// A 404 becomes `WHAT (slug): HINT`, exit 1; other errors go through [`api_failure`].
pub fn not_found(e: ApiError, source: &KeySource, what: String, hint: &str) -> anyhow::Error {
    if e.status() != Some(404) {
        return api_failure(e, source);
    }
    Exit {
        code: 1,
        message: format!("{what} ({}): {hint}", e.slug().unwrap_or("not found")),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_endpoint_names_it_without_the_daemon_hint() {
        let e = ApiError::Network {
            op: "GET /upload-tokens",
            message: "error sending request: tcp connect error: Connection refused (os error 111)"
                .into(),
            hint: Some(
                "cannot connect to `endpoint` in [api]: check the address and the network (the upload is retried)",
            ),
            connect: true,
        };
        let source = KeySource {
            key: KEY_ENV.into(),
            endpoint: "http://127.0.0.1:1/".into(),
            from_flag: true,
        };
        let err = api_failure(e, &source);
        assert_eq!(
            err.downcast_ref::<Exit>().unwrap().message,
            "cannot reach http://127.0.0.1:1/ (GET /upload-tokens): error sending request: tcp connect error: Connection refused (os error 111); check --endpoint and the network"
        );
    }

    #[test]
    fn endpoints() {
        assert!(parse_endpoint("https://sandbox.api.video", false).is_ok());
        assert!(parse_endpoint("http://127.0.0.1:8089", false).is_ok());
        assert!(parse_endpoint("http://[::1]:8089", false).is_ok());
        assert!(parse_endpoint("http://localhost:8089", false).is_ok());
        assert!(parse_endpoint("http://example.com", false).is_err());
        assert!(parse_endpoint("http://example.com", true).is_ok());
        assert!(parse_endpoint("ftp://example.com", true).is_err());
        assert!(parse_endpoint("not a url", true).is_err());
    }

    #[test]
    fn rejected_key_is_one_line_without_the_key() {
        let e = ApiError::Http {
            op: "POST /upload-tokens",
            status: 401,
            class: ErrorClass::ApiKeyRejected,
            problem: Some(Box::new(crate::api::Problem {
                type_url: Some(
                    "https://docs.api.video/reference/authentication-invalid-api-key".into(),
                ),
                ..Default::default()
            })),
            body_line: None,
            retry_after: None,
        };
        let source = KeySource {
            key: KEY_ENV.into(),
            endpoint: "https://ws.api.video/".into(),
            from_flag: false,
        };
        let err = api_failure(e, &source);
        let exit = err.downcast_ref::<Exit>().unwrap();
        assert_eq!(exit.code, 1);
        assert_eq!(
            exit.message,
            "api.video rejected the API key (authentication-invalid-api-key); check APIVIDEO_API_KEY"
        );
    }
}
