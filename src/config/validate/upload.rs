//! `[upload]`: workers, chunk size range, rate, after_upload/move_to, backoff, title template, hash.

use crate::escape::Show as _;
use std::time::Duration;

use super::{R, absolute, choice, duration, size, span_of};
use crate::config::errors::Ctx;
use crate::config::raw::{RawUpload, SizeValue};
use crate::config::timetable::RateTable;
use crate::config::units::format_size;
use crate::config::{AfterUpload, HashAlgorithm, UploadConfig, defaults};

const KIB: u64 = 1 << 10;

pub(super) fn upload(raw: &RawUpload, cx: Ctx<'_>, warnings: &mut Vec<String>) -> R<UploadConfig> {
    let workers = match &raw.workers {
        Some(v) => {
            let n = *v.get_ref();
            if !(1..=32).contains(&n) {
                return Err(cx.at(
                    span_of(v),
                    format!("`workers` in [upload] is {n}; write a number from 1 to 32, such as `workers = 2`"),
                ));
            }
            // 1..=32 was checked just above: fits any usize.
            #[allow(clippy::cast_possible_truncation)]
            let n = n as usize;
            n
        }
        None => defaults::WORKERS,
    };
    let lanes_per_file = count(
        raw.lanes_per_file.as_ref(),
        "lanes_per_file",
        16,
        defaults::LANES_PER_FILE,
        cx,
    )?;
    let max_connections = count(
        raw.max_connections.as_ref(),
        "max_connections",
        64,
        defaults::MAX_CONNECTIONS,
        cx,
    )?;
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
        Some(v) => max_rate(v, cx)?,
        None => RateTable::flat(0),
    };
    let move_to = match &raw.move_to {
        Some(v) => {
            let dir = absolute(v, "move_to", "[upload]", "/srv/uploaded", cx)?;
            // A missing directory is created at the first move; an existing file never works.
            if std::fs::metadata(&dir).is_ok_and(|m| !m.is_dir()) {
                return Err(cx.at(
                    span_of(v),
                    format!(
                        "`move_to` in [upload] is \"{}\", which is not a directory; name the directory uploaded files are moved into, such as \"/srv/uploaded\"",
                        dir.shown()
                    ),
                ));
            }
            Some(dir)
        }
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
    let hash = match &raw.hash {
        None => HashAlgorithm::default(),
        Some(v) => match choice(v, "hash", "[upload]", &["blake3", "sha256"], cx)? {
            "sha256" => HashAlgorithm::Sha256,
            _ => HashAlgorithm::Blake3,
        },
    };
    let config = UploadConfig {
        workers,
        lanes_per_file,
        max_connections,
        chunk_size,
        max_rate,
        after_upload,
        retry_max,
        shutdown_timeout,
        title_template,
        hash,
    };
    lane_warnings(&config, warnings);
    Ok(config)
}

/// api.video's limit on upload requests (PROTOCOL §4): 100 a minute per account.
pub const UPLOAD_REQUESTS_PER_MINUTE: u64 = 100;

/// A whole number from 1 to `max` for `key` in [upload], or `default`.
fn count(
    v: Option<&toml::Spanned<i64>>,
    key: &str,
    max: i64,
    default: usize,
    cx: Ctx<'_>,
) -> R<usize> {
    let Some(v) = v else {
        return Ok(default);
    };
    let n = *v.get_ref();
    if !(1..=max).contains(&n) {
        return Err(cx.at(
            span_of(v),
            format!("`{key}` in [upload] is {n}; write a number from 1 to {max}, such as `{key} = {default}`"),
        ));
    }
    // 1..=max (at most 64) was checked just above: fits any usize.
    #[allow(clippy::cast_possible_truncation)]
    let n = n as usize;
    Ok(n)
}

/// Warns when lanes are capped by `max_connections`, and when the expected throughput would
/// need more than api.video's 100 upload requests a minute at this chunk size (429s would pace
/// the uploads): throughput = the highest `max_rate` in force, or, unlimited with lanes, the
/// throughput at which the limit is reached.
fn lane_warnings(c: &UploadConfig, warnings: &mut Vec<String>) {
    let lanes = c.lanes();
    if lanes < c.lanes_per_file {
        warnings.push(format!(
            "`lanes_per_file` in [upload] is {}, but {} workers × {} lanes would exceed `max_connections` = {}: each file uses {lanes} lanes",
            c.lanes_per_file, c.workers, c.lanes_per_file, c.max_connections
        ));
    }
    let ceiling = c.chunk_size.saturating_mul(UPLOAD_REQUESTS_PER_MINUTE) / 60;
    let highest = c.max_rate.slots().iter().map(|s| s.rate).max().unwrap_or(0);
    let unlimited = c.max_rate.slots().iter().any(|s| s.rate == 0);
    if !unlimited && highest > ceiling {
        warnings.push(format!(
            "`max_rate` in [upload] allows {}/s, but at chunk_size {} that is {} upload requests a minute, above api.video's {UPLOAD_REQUESTS_PER_MINUTE} per account (429s will pace the uploads): raise `chunk_size` or lower `max_rate`",
            format_size(highest),
            format_size(c.chunk_size),
            highest.saturating_mul(60) / c.chunk_size.max(1),
        ));
    } else if unlimited && lanes > 1 {
        warnings.push(format!(
            "with {lanes} lanes per file and no `max_rate`, uploads faster than {}/s in total exceed api.video's {UPLOAD_REQUESTS_PER_MINUTE} upload requests a minute per account at chunk_size {} (429s will pace them): raise `chunk_size` or set `max_rate`",
            format_size(ceiling),
            format_size(c.chunk_size),
        ));
    }
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

/// `max_rate`: one rate in ingestd's units, or a timetable in rclone's `--bwlimit` syntax.
fn max_rate(v: &serde_spanned::Spanned<SizeValue>, cx: Ctx<'_>) -> R<RateTable> {
    if let SizeValue::Text(t) = v.get_ref() {
        if t.trim().eq_ignore_ascii_case("off") {
            return Ok(RateTable::flat(0));
        }
        if RateTable::is_timetable_text(t) {
            return RateTable::parse(t, KIB).map_err(|e| {
                let at = cx.inside_string(span_of(v), t, e.offset);
                cx.at(
                    at..at,
                    format!(
                        "`max_rate` in [upload]: {}; a timetable is rclone's --bwlimit syntax, such as \"08:00,512k 18:00,10M 23:00,off\"",
                        e.message
                    ),
                )
            });
        }
    }
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
    Ok(RateTable::flat(r))
}
