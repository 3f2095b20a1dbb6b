//! `ingestd token create|list|show|delete`: manage delegated upload tokens with the API key.
//!
//! The API key comes from env `APIVIDEO_API_KEY`, else from `api.api_key_file`. The config file is
//! read only if it exists (an invalid one exits 78); without one, `--endpoint` and the env variable
//! are enough. Output is a table by default, the API's JSON with `--json`; `create` with its
//! output redirected prints the token alone (`ingestd token create > FILE` writes a token file).
//! The API key is never printed; a rejected key is one line on stderr and exit 1.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Url;

use super::{Cli, Exit, TokenCommand, TokenCommon};
use crate::api::{
    ApiError, AuthMode, Client, ClientOptions, ErrorClass, Page, SortOrder, TokenListQuery,
    TokenSortBy, UploadToken,
};
use crate::config::{self, Config};
use crate::secret::Secret;

/// Env variable holding the API key.
const KEY_ENV: &str = "APIVIDEO_API_KEY";
/// Used when neither `--endpoint` nor a config file names one.
const DEFAULT_ENDPOINT: &str = "https://ws.api.video";

pub async fn run(cli: &Cli, cmd: &TokenCommand) -> anyhow::Result<ExitCode> {
    let common = match cmd {
        TokenCommand::Create { common, .. }
        | TokenCommand::List { common, .. }
        | TokenCommand::Show { common, .. }
        | TokenCommand::Delete { common, .. } => common,
    };
    let (client, key_source) = connect(&cli.config, common)?;
    let key_source = KeySource {
        key: key_source,
        endpoint: client.endpoint().to_string(),
        from_flag: common.endpoint.is_some(),
    };
    let rejected = |e: ApiError| api_failure(e, &key_source);
    match cmd {
        TokenCommand::Create { ttl, json, .. } => {
            let token = client.create_upload_token(*ttl).await.map_err(rejected)?;
            if !*json && !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Redirected (`… > /etc/ingestd/upload-token`): the token alone, so the file
                // holds exactly what `upload_token_file` expects.
                println!("{}", token.token);
            } else {
                print_tokens(std::slice::from_ref(&token), *json, &token)?;
            }
        }
        TokenCommand::List {
            sort_by,
            sort_order,
            page,
            page_size,
            json,
            ..
        } => {
            let query = TokenListQuery {
                sort_by: sort_by.map(|s| match s {
                    super::SortBy::CreatedAt => TokenSortBy::CreatedAt,
                    super::SortBy::Ttl => TokenSortBy::Ttl,
                }),
                sort_order: sort_order.map(|o| match o {
                    super::SortOrder::Asc => SortOrder::Asc,
                    super::SortOrder::Desc => SortOrder::Desc,
                }),
                current_page: *page,
                page_size: *page_size,
            };
            let page = client.list_upload_tokens(&query).await.map_err(rejected)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", list_table(&page));
            }
        }
        TokenCommand::Show { id, json, .. } => {
            let token = client
                .get_upload_token(id)
                .await
                .map_err(|e| lookup_failure(e, id, &key_source))?;
            print_tokens(std::slice::from_ref(&token), *json, &token)?;
        }
        TokenCommand::Delete { id, .. } => {
            client
                .delete_upload_token(id)
                .await
                .map_err(|e| lookup_failure(e, id, &key_source))?;
            println!("deleted upload token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the client from `--endpoint`, the config file (if it exists) and the API key.
fn connect(config_path: &Path, common: &TokenCommon) -> anyhow::Result<(Client, String)> {
    let config: Option<Config> = if config_path.exists() {
        // Lenient: `ingestd token create > /etc/ingestd/upload-token` empties the token file
        // before we start, and token management does not need the upload token anyway.
        Some(Config::load_lenient(config_path).map_err(|e| super::Exit {
            code: crate::config::EXIT_CONFIG,
            message: e.to_string(),
        })?)
    } else {
        None
    };
    let allow_insecure = config.as_ref().is_some_and(|c| c.api.allow_insecure_http);
    let mut opts = match &config {
        Some(c) => ClientOptions::from_config(&c.api),
        None => ClientOptions::new(parse_endpoint(DEFAULT_ENDPOINT, true)?),
    };
    if let Some(endpoint) = &common.endpoint {
        opts.endpoint = parse_endpoint(endpoint, allow_insecure)?;
    }
    let (key, source) = api_key(config.as_ref())?;
    let client = Client::new(opts)
        .map_err(|e| Exit {
            code: config::EXIT_CONFIG,
            message: e.to_string(),
        })?
        .with_api_key(key, AuthMode::Basic);
    Ok((client, source))
}

/// `--endpoint`: an http(s) URL; plain http only to loopback unless the config allows it.
fn parse_endpoint(text: &str, allow_insecure: bool) -> anyhow::Result<Url> {
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

/// The API key and where it came from (for messages; never the key itself).
fn api_key(config: Option<&Config>) -> anyhow::Result<(Secret, String)> {
    if let Some(value) = std::env::var_os(KEY_ENV) {
        let key = Secret::new(value.to_string_lossy());
        if !key.is_empty() {
            return Ok((key, KEY_ENV.to_owned()));
        }
    }
    if let Some(path) = config.and_then(|c| c.api.api_key_file.as_ref()) {
        let text = std::fs::read_to_string(path).map_err(|e| Exit {
            code: config::EXIT_CONFIG,
            message: format!("cannot read api.api_key_file {}: {e}", path.display()),
        })?;
        let key = Secret::new(text);
        if key.is_empty() {
            return Err(Exit {
                code: config::EXIT_CONFIG,
                message: format!("api.api_key_file {} is empty", path.display()),
            }
            .into());
        }
        return Ok((key, format!("api.api_key_file ({})", path.display())));
    }
    Err(Exit {
        code: config::EXIT_CONFIG,
        message: format!(
            "no API key: set {KEY_ENV} or api.api_key_file in the configuration (upload tokens are managed with the account's API key)"
        ),
    }
    .into())
}

/// Where the key and the endpoint came from, for messages (never the key itself).
struct KeySource {
    /// `APIVIDEO_API_KEY` or `api.api_key_file (PATH)`.
    key: String,
    endpoint: String,
    /// The endpoint came from `--endpoint` rather than the configuration.
    from_flag: bool,
}

/// One line for a rejected key or an endpoint that cannot be reached; other errors as they are.
fn api_failure(e: ApiError, source: &KeySource) -> anyhow::Error {
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

/// A 404 on show/delete names the token that was not found.
fn lookup_failure(e: ApiError, id: &str, source: &KeySource) -> anyhow::Error {
    if e.status() != Some(404) {
        return api_failure(e, source);
    }
    Exit {
        code: 1,
        message: format!(
            "no upload token {id} ({}): deleted, expired or never created; `ingestd token list` shows the live ones",
            e.slug().unwrap_or("not found")
        ),
    }
    .into()
}

fn print_tokens(rows: &[UploadToken], json: bool, one: &UploadToken) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(one).context("cannot format the token as JSON")?
        );
    } else {
        print!("{}", table(rows));
    }
    Ok(())
}

fn ttl_text(ttl: u64) -> String {
    if ttl == 0 {
        "never".to_owned()
    } else {
        humantime::format_duration(std::time::Duration::from_secs(ttl)).to_string()
    }
}

/// `TOKEN  TTL  CREATED  EXPIRES` with aligned columns.
fn table(rows: &[UploadToken]) -> String {
    let mut cells: Vec<[String; 4]> = vec![[
        "TOKEN".into(),
        "TTL".into(),
        "CREATED".into(),
        "EXPIRES".into(),
    ]];
    for t in rows {
        cells.push([
            t.token.clone(),
            ttl_text(t.ttl),
            t.created_at.clone().unwrap_or_else(|| "-".into()),
            t.expires_at.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table and `page 1 of 3, 57 tokens`.
fn list_table(page: &Page<UploadToken>) -> String {
    let p = &page.pagination;
    if page.data.is_empty() && p.items_total == 0 {
        return "no upload tokens\n".to_owned();
    }
    if page.data.is_empty() {
        let pages = if p.pages_total == 1 {
            "is 1 page".to_owned()
        } else {
            format!("are {} pages", p.pages_total)
        };
        return format!(
            "no upload tokens on page {}: there {pages} of {} ({} tokens); try --page {}\n",
            p.current_page, p.page_size, p.items_total, p.pages_total
        );
    }
    let noun = if p.items_total == 1 {
        "token"
    } else {
        "tokens"
    };
    format!(
        "{}page {} of {}, {} {noun}\n",
        table(&page.data),
        p.current_page,
        p.pages_total,
        p.items_total
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Pagination;

    fn token(t: &str, ttl: u64, expires: Option<&str>) -> UploadToken {
        UploadToken {
            token: t.into(),
            ttl,
            created_at: Some("2020-12-02T10:13:19+00:00".into()),
            expires_at: expires.map(Into::into),
        }
    }

    #[test]
    fn table_and_footer() {
        let page = Page {
            data: vec![
                token(
                    "to1tcmSFHeYY5KzyhOqVKMKb",
                    3600,
                    Some("2020-12-02T11:13:19+00:00"),
                ),
                token("to1W3ZS9PdUBZWzzTEZr1B79", 0, None),
            ],
            pagination: Pagination {
                current_page: 1,
                current_page_items: 2,
                page_size: 2,
                pages_total: 29,
                items_total: 57,
                links: vec![],
            },
        };
        let text = list_table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "TOKEN                     TTL    CREATED                    EXPIRES",
                "to1tcmSFHeYY5KzyhOqVKMKb  1h     2020-12-02T10:13:19+00:00  2020-12-02T11:13:19+00:00",
                "to1W3ZS9PdUBZWzzTEZr1B79  never  2020-12-02T10:13:19+00:00  never",
                "page 1 of 29, 57 tokens",
            ]
        );
        let empty = Page {
            data: vec![],
            pagination: Pagination::default(),
        };
        assert_eq!(list_table(&empty), "no upload tokens\n");
        let past_the_end = Page {
            data: vec![],
            pagination: Pagination {
                current_page: 9,
                current_page_items: 0,
                page_size: 2,
                pages_total: 3,
                items_total: 5,
                links: vec![],
            },
        };
        assert_eq!(
            list_table(&past_the_end),
            "no upload tokens on page 9: there are 3 pages of 2 (5 tokens); try --page 3\n"
        );
    }

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
