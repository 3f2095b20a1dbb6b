//! [`RawConfig`] → [`Config`]: defaults, ranges, absolute paths, overlaps between the journal, the
//! watched roots and `move_to`, the endpoint's scheme, the token source. Each error points at the
//! value it is about and says what to write instead.

use crate::escape::Show as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::errors::Ctx;
use super::raw::{RawConfig, SizeValue};
use super::units::{parse_duration, parse_rate, parse_size};
use super::{Config, ConfigError, JournalConfig, LoadOptions, MetricsConfig, defaults, paths};

mod api;
mod upload;
mod watch;

type R<T> = Result<T, ConfigError>;

pub fn validate(raw: RawConfig, cx: Ctx<'_>, opts: &LoadOptions) -> R<Config> {
    let mut warnings = Vec::new();
    let api = api::api(&raw.api, cx, opts, &mut warnings)?;
    let journal_path = match &raw.journal.path {
        Some(p) => {
            let path = absolute(p, "path", "[journal]", defaults::JOURNAL_PATH, cx)?;
            if path.is_dir() {
                return Err(cx.at(
                    span_of(p),
                    format!(
                        "`path` in [journal] names the directory \"{}\"; write the path of the journal file, such as \"{}/journal.sqlite\"",
                        path.shown(),
                        path.shown()
                    ),
                ));
            }
            path
        }
        None => PathBuf::from(defaults::JOURNAL_PATH),
    };
    // At least an hour: pruning runs hourly, and a done row is what stops a second upload.
    let keep_done = match &raw.journal.keep_done {
        Some(v) => Some(duration(
            Some(v),
            "keep_done",
            "[journal]",
            Duration::from_secs(90 * 86_400),
            Duration::from_secs(3600),
            cx,
        )?),
        None => None,
    };
    let upload = upload::upload(&raw.upload, cx, &mut warnings)?;
    let watch = raw
        .watch
        .iter()
        .map(|w| watch::watch(w, cx, &mut warnings))
        .collect::<R<Vec<_>>>()?;
    watch::check_roots(&raw, &watch, &journal_path, &upload, cx)?;
    let metrics = match &raw.metrics {
        Some(m) => Some(metrics(&m.listen, cx, &mut warnings)?),
        None => None,
    };
    Ok(Config {
        source: cx.file.to_owned(),
        api,
        journal: JournalConfig {
            path: journal_path,
            keep_done,
        },
        upload,
        watch,
        metrics,
        warnings,
    })
}

pub(super) fn span_of<T>(v: &Spanned<T>) -> Range<usize> {
    v.span()
}

/// An absolute path, or an error saying which one to write.
pub(super) fn absolute(
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

pub(super) fn duration(
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

pub(super) fn size(
    v: &Spanned<SizeValue>,
    key: &str,
    section: &str,
    rate: bool,
    cx: Ctx<'_>,
) -> R<u64> {
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
pub(super) fn choice<'c>(
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
        .unwrap_or_else(|| {
            let first = choices.first().copied().unwrap_or_default();
            format!("; write one of them, for example `{key} = \"{first}\"`")
        });
    Err(cx.at(
        span_of(v),
        format!("`{key}` in {section} is \"{s}\", which is not one of {listed}{hint}"),
    ))
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
