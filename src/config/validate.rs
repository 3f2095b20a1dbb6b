//! [`RawConfig`] → [`Config`]: defaults, ranges, absolute paths, overlaps between the journal, the
//! watched roots and `move_to`, the endpoint's scheme, the token source. Each error points at the
//! value it is about and says what to write instead.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::errors::Ctx;
use super::raw::{RawApi, RawConfig, RawUpload, RawWatch, SizeValue};
use super::units::{format_size, parse_duration, parse_rate, parse_size};
use super::{
    AfterUpload, ApiConfig, Config, ConfigError, DEFAULT_EXCLUDE, DEFAULT_INCLUDE, JournalConfig,
    LoadOptions, MetricsConfig, TokenSource, UploadConfig, WatchConfig, WatchMode, defaults, paths,
    token,
};
use crate::secret::Secret;

type R<T> = Result<T, ConfigError>;

const KIB: u64 = 1 << 10;

pub fn validate(raw: RawConfig, cx: Ctx<'_>, opts: &LoadOptions) -> R<Config> {
    let mut warnings = Vec::new();
    let api = api(&raw.api, cx, opts, &mut warnings)?;
    let journal_path = match &raw.journal.path {
        Some(p) => absolute(p, "path", "[journal]", defaults::JOURNAL_PATH, cx)?,
        None => PathBuf::from(defaults::JOURNAL_PATH),
    };
    let upload = upload(&raw.upload, cx, &mut warnings)?;
    let watch = raw
        .watch
        .iter()
        .map(|w| watch(w, cx, &mut warnings))
        .collect::<R<Vec<_>>>()?;
    check_roots(&raw, &watch, &journal_path, &upload, cx)?;
    let metrics = match &raw.metrics {
        Some(m) => Some(metrics(&m.listen, cx, &mut warnings)?),
        None => None,
    };
    Ok(Config {
        source: cx.file.to_owned(),
        api,
        journal: JournalConfig { path: journal_path },
        upload,
        watch,
        metrics,
        warnings,
    })
}

// ---------------------------------------------------------------- helpers

fn span_of<T>(v: &Spanned<T>) -> Range<usize> {
    v.span()
}

/// An absolute path, or an error saying which one to write.
fn absolute(
    v: &Spanned<String>,
    key: &str,
    section: &str,
    example: &str,
    cx: Ctx<'_>,
) -> R<PathBuf> {
    let s = v.get_ref();
    if s.trim().is_empty() {
        return Err(cx.at(
            span_of(v),
            format!("`{key}` in {section} is empty; write an absolute path such as \"{example}\""),
        ));
    }
    let p = Path::new(s);
    if !p.is_absolute() {
        let tilde = if s.starts_with('~') {
            " (`~` is not expanded)"
        } else {
            ""
        };
        return Err(cx.at(
            span_of(v),
            format!(
                "`{key}` in {section} is the relative path \"{s}\"{tilde}; write an absolute path such as \"{example}\""
            ),
        ));
    }
    Ok(paths::lexical(p))
}

fn duration(
    v: Option<&Spanned<String>>,
    key: &str,
    section: &str,
    default: Duration,
    min: Duration,
    cx: Ctx<'_>,
) -> R<Duration> {
    let Some(v) = v else { return Ok(default) };
    let d = parse_duration(v.get_ref()).map_err(|e| {
        cx.at(
            span_of(v),
            format!(
                "`{key}` in {section}: {e}; write a duration with a unit such as \"{}\", \"2 min\" or \"1h\"",
                humantime::format_duration(default)
            ),
        )
    })?;
    if d < min {
        return Err(cx.at(
            span_of(v),
            format!(
                "`{key}` in {section} is {}, below the minimum of {}; write for example `{key} = \"{}\"`",
                humantime::format_duration(d),
                humantime::format_duration(min),
                humantime::format_duration(default)
            ),
        ));
    }
    Ok(d)
}

fn size(v: &Spanned<SizeValue>, key: &str, section: &str, rate: bool, cx: Ctx<'_>) -> R<u64> {
    let example = if rate { "10 MiB" } else { "64 MiB" };
    match v.get_ref() {
        SizeValue::Int(n) => u64::try_from(*n).map_err(|_| {
            cx.at(
                span_of(v),
                format!("`{key}` in {section} is negative; write a size such as \"{example}\""),
            )
        }),
        SizeValue::Text(t) => {
            let parsed = if rate { parse_rate(t) } else { parse_size(t) };
            parsed.map_err(|e| {
                cx.at(
                    span_of(v),
                    format!("`{key}` in {section}: {e}; write a size such as \"{example}\""),
                )
            })
        }
    }
}

/// One of `choices`, or an error listing them (with the closest one first).
fn choice<'c>(
    v: &Spanned<String>,
    key: &str,
    section: &str,
    choices: &[&'c str],
    cx: Ctx<'_>,
) -> R<&'c str> {
    let s = v.get_ref().trim();
    if let Some(c) = choices.iter().find(|c| c.eq_ignore_ascii_case(s)) {
        return Ok(c);
    }
    let listed = choices
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = choices
        .iter()
        .map(|c| (strsim::jaro_winkler(&s.to_ascii_lowercase(), c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default();
    Err(cx.at(
        span_of(v),
        format!("`{key}` in {section} is \"{s}\", which is not one of {listed}{hint}"),
    ))
}

// ---------------------------------------------------------------- [api]

fn api(raw: &RawApi, cx: Ctx<'_>, opts: &LoadOptions, warnings: &mut Vec<String>) -> R<ApiConfig> {
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
                std::fs::File::open(&p).map_err(|e| {
                    cx.at(
                        span_of(v),
                        format!(
                            "`ca_file` names `{}`, which cannot be read: {e}; point it at a PEM certificate file",
                            p.display()
                        ),
                    )
                })?;
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
                        "`min_rate` in [api] is {}, below 1 KiB; request timeouts are 30 s + length / min_rate, so write a rate such as \"64 KiB\"",
                        format_size(r)
                    ),
                ));
            }
            r
        }
        None => defaults::MIN_RATE,
    };
    Ok(ApiConfig {
        endpoint,
        token,
        api_key_file,
        allow_insecure_http,
        ca_file,
        connect_timeout,
        min_rate,
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
            if secret.is_empty() {
                return Err(cx.at(
                    span_of(inline),
                    "`upload_token` in [api] is empty; write the delegated upload token (it starts with `to`), or remove the key",
                ));
            }
            if config_readable_by_others(cx.file) {
                warnings.push(format!(
                    "{} holds upload_token and can be read by other users; run `chmod 600 {}` or move the token to upload_token_file",
                    cx.file.display(),
                    cx.file.display()
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
            Some(p) => Ok(TokenSource::Credential(p)),
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

// ---------------------------------------------------------------- [upload]

fn upload(raw: &RawUpload, cx: Ctx<'_>, warnings: &mut Vec<String>) -> R<UploadConfig> {
    let workers = match &raw.workers {
        Some(v) => {
            let n = *v.get_ref();
            if !(1..=32).contains(&n) {
                return Err(cx.at(
                    span_of(v),
                    format!("`workers` in [upload] is {n}; write a number from 1 to 32, such as `workers = 2`"),
                ));
            }
            n as usize
        }
        None => defaults::WORKERS,
    };
    let chunk_size = match &raw.chunk_size {
        Some(v) => {
            let c = size(v, "chunk_size", "[upload]", false, cx)?;
            if !(defaults::MIN_CHUNK..=defaults::MAX_CHUNK).contains(&c) {
                return Err(cx.at(
                    span_of(v),
                    format!(
                        "`chunk_size` in [upload] is {}; write a size from 5 MiB to 128 MiB, such as \"64 MiB\" (api.video needs every chunk but the last to be at least 5 MiB and accepts at most 200 MiB per request; 128 MiB is the official clients' maximum)",
                        format_size(c)
                    ),
                ));
            }
            c
        }
        None => defaults::CHUNK_SIZE,
    };
    let max_rate = match &raw.max_rate {
        Some(v) => {
            let r = size(v, "max_rate", "[upload]", true, cx)?;
            if r != 0 && r < KIB {
                return Err(cx.at(
                    span_of(v),
                    format!(
                        "`max_rate` in [upload] is {}; write 0 for unlimited or a rate of at least 1 KiB per second, such as \"10 MiB\"",
                        format_size(r)
                    ),
                ));
            }
            r
        }
        None => 0,
    };
    let move_to = match &raw.move_to {
        Some(v) => Some(absolute(v, "move_to", "[upload]", "/srv/uploaded", cx)?),
        None => None,
    };
    let after_upload = match &raw.after_upload {
        None => AfterUpload::Keep,
        Some(v) => match choice(
            v,
            "after_upload",
            "[upload]",
            &["keep", "delete", "move"],
            cx,
        )? {
            "delete" => AfterUpload::Delete,
            "move" => match &move_to {
                Some(dir) => AfterUpload::Move(dir.clone()),
                None => {
                    return Err(cx.at(
                        span_of(v),
                        "`after_upload = \"move\"` needs `move_to`, the directory uploaded files are moved into; add for example `move_to = \"/srv/uploaded\"` to [upload]",
                    ));
                }
            },
            _ => AfterUpload::Keep,
        },
    };
    if move_to.is_some() && !matches!(after_upload, AfterUpload::Move(_)) {
        warnings.push("`move_to` in [upload] is ignored: after_upload is not \"move\"".into());
    }
    let retry_max = duration(
        raw.retry_max.as_ref(),
        "retry_max",
        "[upload]",
        defaults::RETRY_MAX,
        Duration::from_secs(1),
        cx,
    )?;
    let shutdown_timeout = duration(
        raw.shutdown_timeout.as_ref(),
        "shutdown_timeout",
        "[upload]",
        defaults::SHUTDOWN_TIMEOUT,
        Duration::ZERO,
        cx,
    )?;
    let title_template = match &raw.title_template {
        Some(v) => {
            check_template(v.get_ref()).map_err(|m| cx.at(span_of(v), m))?;
            v.get_ref().clone()
        }
        None => defaults::TITLE_TEMPLATE.to_owned(),
    };
    Ok(UploadConfig {
        workers,
        chunk_size,
        max_rate,
        after_upload,
        retry_max,
        shutdown_timeout,
        title_template,
    })
}

/// Only `{stem}`, `{name}` and `{relpath}`, and at least one character of title.
fn check_template(t: &str) -> Result<(), String> {
    let valid = "use {stem}, {name} or {relpath}, e.g. title_template = \"{stem}\"";
    if t.trim().is_empty() {
        return Err(format!("`title_template` in [upload] is empty; {valid}"));
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!(
                "`title_template` in [upload] has a `{{` without `}}`; {valid}"
            ));
        };
        let name = &after[..close];
        if !["stem", "name", "relpath"].contains(&name) {
            return Err(format!(
                "`title_template` in [upload] uses the unknown placeholder {{{name}}}; {valid}"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

// ---------------------------------------------------------------- [[watch]]

fn globs(
    v: Option<&Spanned<Vec<Spanned<String>>>>,
    key: &str,
    defaults: &[&str],
    cx: Ctx<'_>,
) -> R<Vec<String>> {
    let Some(v) = v else {
        return Ok(defaults.iter().map(|s| (*s).to_owned()).collect());
    };
    if key == "include" && v.get_ref().is_empty() {
        return Err(cx.at(
            span_of(v),
            "`include = []` in [[watch]] matches no file; list patterns such as [\"*.mp4\", \"*.mov\"], or remove the key to use the defaults",
        ));
    }
    let mut out = Vec::new();
    for p in v.get_ref() {
        let pattern = p.get_ref();
        if pattern.is_empty() {
            return Err(cx.at(
                span_of(p),
                format!("`{key}` in [[watch]] has an empty pattern; write one such as \"*.mp4\""),
            ));
        }
        globset::GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                cx.at(
                    span_of(p),
                    format!(
                        "`{key}` pattern \"{pattern}\" in [[watch]] is not a valid glob ({}); write one such as \"*.mp4\"",
                        e.kind()
                    ),
                )
            })?;
        out.push(pattern.clone());
    }
    Ok(out)
}

fn watch(raw: &RawWatch, cx: Ctx<'_>, warnings: &mut Vec<String>) -> R<WatchConfig> {
    let path = absolute(&raw.path, "path", "[[watch]]", "/srv/recordings", cx)?;
    match std::fs::metadata(&path) {
        Ok(m) if !m.is_dir() => {
            return Err(cx.at(
                span_of(&raw.path),
                format!("`path` in [[watch]] names `{}`, which is not a directory; point it at the folder to watch", path.display()),
            ));
        }
        Ok(_) => {}
        Err(_) => warnings.push(format!(
            "watch root {} does not exist (yet); it is watched once it appears",
            path.display()
        )),
    }
    let mode = match &raw.mode {
        None => WatchMode::Auto,
        Some(v) => match choice(v, "mode", "[[watch]]", &["auto", "events", "poll"], cx)? {
            "events" => WatchMode::Events,
            "poll" => WatchMode::Poll,
            _ => WatchMode::Auto,
        },
    };
    let second = Duration::from_secs(1);
    Ok(WatchConfig {
        recursive: raw.recursive.unwrap_or(true),
        include: globs(raw.include.as_ref(), "include", DEFAULT_INCLUDE, cx)?,
        exclude: globs(raw.exclude.as_ref(), "exclude", DEFAULT_EXCLUDE, cx)?,
        settle: duration(
            raw.settle.as_ref(),
            "settle",
            "[[watch]]",
            defaults::SETTLE,
            second,
            cx,
        )?,
        mode,
        poll_interval: duration(
            raw.poll_interval.as_ref(),
            "poll_interval",
            "[[watch]]",
            defaults::POLL_INTERVAL,
            second,
            cx,
        )?,
        rescan_interval: duration(
            raw.rescan_interval.as_ref(),
            "rescan_interval",
            "[[watch]]",
            defaults::RESCAN_INTERVAL,
            second,
            cx,
        )?,
        follow_symlinks: raw.follow_symlinks.unwrap_or(false),
        tags: raw.tags.clone().unwrap_or_default(),
        metadata: raw
            .metadata
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        path,
    })
}

/// Roots must not overlap each other; the journal and `move_to` must be outside every root, and
/// no root may be inside `move_to`.
fn check_roots(
    raw: &RawConfig,
    watch: &[WatchConfig],
    journal: &Path,
    upload: &UploadConfig,
    cx: Ctx<'_>,
) -> R<()> {
    for (j, b) in watch.iter().enumerate() {
        for (i, a) in watch.iter().enumerate().take(j) {
            let line = cx.line_of(raw.watch[i].path.span().start);
            let (pa, pb) = (a.path.display(), b.path.display());
            let msg = if paths::resolve(&a.path) == paths::resolve(&b.path) {
                format!(
                    "`path` \"{pb}\" is already watched by the [[watch]] at line {line}; remove one of the two [[watch]] sections"
                )
            } else if paths::is_within(&b.path, &a.path) {
                format!(
                    "watch root \"{pb}\" is inside the watch root \"{pa}\" (line {line}); roots must not overlap: remove one, or use recursive = false and exclude patterns"
                )
            } else if paths::is_within(&a.path, &b.path) {
                format!(
                    "watch root \"{pb}\" contains the watch root \"{pa}\" (line {line}); roots must not overlap: remove one, or use recursive = false and exclude patterns"
                )
            } else {
                continue;
            };
            return Err(cx.at(raw.watch[j].path.span(), msg));
        }
    }
    for (i, w) in watch.iter().enumerate() {
        let root_span = raw.watch[i].path.span();
        let root_line = cx.line_of(root_span.start);
        if paths::is_within(journal, &w.path) {
            let msg = format!(
                "the journal \"{}\" is inside the watch root \"{}\" (line {root_line}); put it outside every root, such as path = \"{}\" in [journal]",
                journal.display(),
                w.path.display(),
                defaults::JOURNAL_PATH
            );
            return Err(match &raw.journal.path {
                Some(p) => cx.at(p.span(), msg),
                None => cx.at(root_span, msg),
            });
        }
        if let (AfterUpload::Move(dir), Some(move_span)) =
            (&upload.after_upload, raw.upload.move_to.as_ref())
        {
            let msg = if paths::is_within(dir, &w.path) {
                format!(
                    "`move_to` \"{}\" is inside the watch root \"{}\" (line {root_line}), so moved files would be found again; choose a directory outside every root, such as \"/srv/uploaded\"",
                    dir.display(),
                    w.path.display()
                )
            } else if paths::is_within(&w.path, dir) {
                format!(
                    "`move_to` \"{}\" contains the watch root \"{}\" (line {root_line}); choose a directory outside every root, such as \"/srv/uploaded\"",
                    dir.display(),
                    w.path.display()
                )
            } else {
                continue;
            };
            return Err(cx.at(move_span.span(), msg));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- [metrics]

fn metrics(v: &Spanned<String>, cx: Ctx<'_>, warnings: &mut Vec<String>) -> R<MetricsConfig> {
    let s = v.get_ref().trim();
    let listen: SocketAddr = s.parse().map_err(|_| {
        cx.at(
            span_of(v),
            format!("`listen` in [metrics] is \"{s}\", which is not an IP address and port; write for example listen = \"127.0.0.1:9184\""),
        )
    })?;
    if !listen.ip().is_loopback() {
        warnings.push(format!(
            "[metrics] listens on {listen}, reachable from other machines: the status page shows file names"
        ));
    }
    Ok(MetricsConfig { listen })
}
