//! `[[watch]]`: each root's globs, mode and intervals; roots that overlap each other, the journal
//! or `move_to`.

use crate::escape::Show as _;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::{R, absolute, choice, duration, span_of};
use crate::config::errors::Ctx;
use crate::config::raw::{RawConfig, RawWatch};
use crate::config::{
    AfterUpload, DEFAULT_EXCLUDE, DEFAULT_INCLUDE, UploadConfig, WatchConfig, WatchMode, defaults,
    paths,
};

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

pub(super) fn watch(raw: &RawWatch, cx: Ctx<'_>, warnings: &mut Vec<String>) -> R<WatchConfig> {
    let path = absolute(&raw.path, "path", "[[watch]]", "/srv/recordings", cx)?;
    match std::fs::metadata(&path) {
        Ok(m) if !m.is_dir() => {
            return Err(cx.at(
                span_of(&raw.path),
                format!("`path` in [[watch]] names `{}`, which is not a directory; point it at the folder to watch", path.shown()),
            ));
        }
        Ok(_) => {}
        Err(_) => warnings.push(format!(
            "watch root {} does not exist (yet); it is watched once it appears",
            path.shown()
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
        follow_symlinks_outside: raw.follow_symlinks_outside.unwrap_or(false),
        check_container: raw.check_container.unwrap_or(true),
        incomplete_after: duration(
            raw.incomplete_after.as_ref(),
            "incomplete_after",
            "[[watch]]",
            defaults::INCOMPLETE_AFTER,
            second,
            cx,
        )?,
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
pub(super) fn check_roots(
    raw: &RawConfig,
    watch: &[WatchConfig],
    journal: &Path,
    upload: &UploadConfig,
    cx: Ctx<'_>,
) -> R<()> {
    for (j, b) in watch.iter().enumerate() {
        for (i, a) in watch.iter().enumerate().take(j) {
            let line = cx.line_of(raw.watch[i].path.span().start);
            let (pa, pb) = (a.path.shown(), b.path.shown());
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
                journal.shown(),
                w.path.shown(),
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
                    dir.shown(),
                    w.path.shown()
                )
            } else if paths::is_within(&w.path, dir) {
                format!(
                    "`move_to` \"{}\" contains the watch root \"{}\" (line {root_line}); choose a directory outside every root, such as \"/srv/uploaded\"",
                    dir.shown(),
                    w.path.shown()
                )
            } else {
                continue;
            };
            return Err(cx.at(move_span.span(), msg));
        }
    }
    Ok(())
}
