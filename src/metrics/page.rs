//! The status page: one read-only HTML document with inline CSS and a few lines of inline
//! JavaScript, no external assets. The server renders the content (so the page is complete on
//! first load, even without JavaScript); the script re-fetches the rendered fragment every 2 s.
//!
//! Never shows a token: the [`Snapshot`] holds none (the token gate's reject reason is
//! scrubbed), and only what it holds is rendered.

use std::fmt::Write;

use super::format::{duration_secs, size};
use super::snapshot::Snapshot;

/// Where the script fetches the fragment from.
pub const FRAGMENT_PATH: &str = "/status/fragment";

/// Escapes text for HTML element content and double-quoted attributes; control characters and
/// bidi overrides are shown as escapes (`\u{202e}`), as `status` shows them ([`crate::escape`]),
/// so that a file name cannot reorder what the page shows.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if crate::escape::is_unsafe(c) => {
                out.push_str(&crate::escape::human(c.encode_utf8(&mut [0; 4])));
            }
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{background:#f0f0f0;font-weight:600}td.num{text-align:right;white-space:nowrap}
.path{font-family:ui-monospace,monospace;word-break:break-all}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600}
.ok{background:#d8f3dc;color:#1b4332}.bad{background:#ffd6d6;color:#7a0000}
.unknown{background:#e9ecef;color:#333}
progress{width:14em;height:1em;vertical-align:middle}
.muted{color:#777}.summary span{margin-right:1.5em}
"#;

const SCRIPT: &str = r#"
(function(){
  var main=document.getElementById('status');
  function refresh(){
    fetch('/status/fragment',{cache:'no-store'})
      .then(function(r){if(!r.ok)throw new Error(r.status);return r.text();})
      .then(function(html){main.innerHTML=html;document.getElementById('stale').hidden=true;})
      .catch(function(){document.getElementById('stale').hidden=false;});
  }
  setInterval(refresh,2000);
})();
"#;

/// The `Content-Security-Policy` of every answer: nothing but the page's own inline style and
/// script (by SHA-256) and requests to the listener itself.
pub fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s));
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(SCRIPT),
        hash(STYLE)
    )
}

/// The whole page.
pub fn page(s: &Snapshot) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>ingestd status</title><style>{STYLE}</style></head><body>\
         <h1>ingestd</h1><p id=\"stale\" class=\"bad\" hidden>The daemon did not answer the \
         last refresh; showing older data.</p>\
         <main id=\"status\">{}</main><script>{SCRIPT}</script></body></html>\n",
        fragment(s)
    )
}

/// The refreshed part of the page.
pub fn fragment(s: &Snapshot) -> String {
    let mut h = String::new();
    // Writing to a String cannot fail.
    let _ = write_fragment(&mut h, s);
    h
}

/// `Upload rate: 2 MiB/s until …, then 20 MiB/s` (timetable, SIGUSR2).
fn write_rate(h: &mut String, r: &super::snapshot::RateView) -> std::fmt::Result {
    let rate = |n: u64| crate::config::timetable::format_rate(n);
    h.push_str("<p id=\"rate\">Upload rate: ");
    if r.bypassed {
        write!(
            h,
            "<b>unlimited</b> (SIGUSR2 lifted the limit of {} until the next SIGUSR2)",
            rate(r.bytes_per_second)
        )?;
    } else {
        write!(h, "<b>{}</b>", rate(r.bytes_per_second))?;
    }
    if let (Some(at), Some(next)) = (&r.next_change_at, r.next_bytes_per_second) {
        write!(h, " until {}, then {}", esc(at), rate(next))?;
    }
    if let Some(t) = &r.timetable {
        write!(h, " <span class=\"muted\">(timetable {})</span>", esc(t))?;
    }
    h.push_str("</p>");
    Ok(())
}

fn write_fragment(h: &mut String, s: &Snapshot) -> std::fmt::Result {
    let class = match s.token.state {
        "ok" => "ok",
        "rejected" | "api_key_rejected" => "bad",
        _ => "unknown",
    };
    write!(
        h,
        "<p class=\"muted\">Updated {} · refreshes every 2 s · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/status.json\">json</a></p>",
        esc(&s.generated_at)
    )?;
    write!(
        h,
        "<p id=\"token\">Upload token: <span class=\"badge {class}\" data-state=\"{0}\">{0}</span>",
        s.token.state
    )?;
    if let Some(r) = &s.token.reason {
        write!(
            h,
            " — uploads are paused: {}. Write a new token to the token file, or fix the \
             configuration and reload.",
            esc(r)
        )?;
    }
    h.push_str("</p>");
    write_rate(h, &s.rate)?;
    if let Some(p) = &s.journal_problem {
        write!(
            h,
            "<p id=\"journal\" class=\"bad\">{}: uploads and scans wait and resume on their own \
             once the journal's disk accepts writes again.</p>",
            esc(p)
        )?;
    }

    h.push_str("<p class=\"summary\" id=\"summary\">");
    for c in &s.files {
        write!(h, "<span>{}: <b>{}</b></span>", c.state, c.files)?;
    }
    write!(
        h,
        "<span>backlog: <b>{}</b></span><span>oldest pending: <b>{}</b></span>\
         <span>uploaded since start: <b>{}</b></span></p>",
        size(s.backlog_bytes),
        s.oldest_pending_age_seconds
            .map(duration_secs)
            .unwrap_or_else(|| "none".into()),
        size(s.uploaded_bytes_total)
    )?;
    write!(
        h,
        "<p class=\"summary\" id=\"journal\"><span>orphans: <b>{}</b></span>\
         <span>journal: <b>{}</b></span><span>rows: <b>{}</b></span>\
         <span>tombstones: <b>{}</b></span><span>last prune: <b>{}</b></span></p>",
        s.orphans_total,
        size(s.journal.bytes),
        s.journal.rows,
        s.journal.tombstones,
        match (&s.journal.last_prune_at, s.journal.last_prune_rows) {
            (Some(at), Some(n)) => format!("{} ({n} rows)", esc(at)),
            _ => "never".into(),
        }
    )?;

    h.push_str(
        "<h2>Watch roots</h2><table id=\"roots\"><tr><th>Root</th><th>Mode</th><th>Health</th>\
         <th>inotify watches</th><th>Settling</th><th>Free space</th></tr>",
    );
    for r in &s.roots {
        write!(
            h,
            "<tr><td class=\"path\">{}</td><td>{}</td><td><span class=\"badge {}\">{}</span></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.path),
            esc(&r.mode),
            if r.healthy { "ok" } else { "bad" },
            esc(&r.health),
            r.watches,
            r.settling,
            match (r.free_bytes, r.size_bytes) {
                (Some(f), Some(t)) => format!("{} of {}", size(f), size(t)),
                _ => "?".into(),
            }
        )?;
    }
    if let Some(limit) = s.inotify_watch_limit {
        write!(
            h,
            "<tr><td colspan=\"6\" class=\"muted\">{} inotify watches used; the limit is {limit} \
             per user</td></tr>",
            s.inotify_watches
        )?;
    }
    h.push_str("</table>");

    list_section(
        h,
        "Uploading",
        "uploading",
        "Nothing is uploading.",
        &["File", "Progress", "Sent", "Rate"],
        &s.uploading,
        |h, u| {
            write!(
                h,
                "<tr data-id=\"{id}\"><td class=\"path\">{}</td><td><progress id=\"progress-{id}\" \
                 value=\"{}\" max=\"{}\"></progress> <span class=\"percent\">{:.1}%</span></td>\
                 <td class=\"num\">{} of {}</td><td class=\"num\">{}/s{}</td></tr>",
                esc(&u.path),
                u.sent,
                u.size.max(1),
                u.percent,
                size(u.sent),
                size(u.size),
                size(rate_u64(u.rate_bytes_per_sec)),
                if u.lanes > 1 {
                    format!(", {} lanes", u.lanes)
                } else {
                    String::new()
                },
                id = u.id,
            )
        },
    )?;
    list_section(
        h,
        "Waiting and failed",
        "pending",
        "No file is waiting.",
        &["#", "File", "State", "Size", "Reason"],
        &s.pending,
        |h, p| {
            write!(
                h,
                "<tr data-id=\"{}\" data-state=\"{}\"><td class=\"num\">{}</td>\
                 <td class=\"path\">{}</td><td><span class=\"badge {}\">{}</span></td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                p.id,
                p.state,
                p.id,
                esc(&p.path),
                if p.state == "failed" {
                    "bad"
                } else {
                    "unknown"
                },
                p.state,
                size(p.size),
                esc(&p.reason)
            )
        },
    )?;
    list_section(
        h,
        "Orphan videos",
        "orphans",
        "No orphans.",
        &["File", "Kind", "videoId", "Noted", "Reason"],
        &s.orphans,
        |h, o| {
            write!(
                h,
                "<tr data-id=\"{}\"><td class=\"path\">{}</td><td>{}</td>\
                 <td class=\"video-id\">{}</td><td>{}</td><td>{}</td></tr>",
                o.file_id,
                esc(&o.path),
                if o.kind == "orphan" {
                    "possible orphan"
                } else {
                    "abandoned"
                },
                esc(o.video_id.as_deref().unwrap_or("?")),
                esc(&o.at),
                esc(&o.reason)
            )
        },
    )?;
    list_section(
        h,
        "Recently uploaded",
        "recent",
        "Nothing uploaded yet.",
        &["File", "videoId", "Size", "Uploaded at"],
        &s.recent,
        |h, d| {
            write!(
                h,
                "<tr data-id=\"{}\"><td class=\"path\">{}</td><td class=\"video-id\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                d.id,
                esc(&d.path),
                esc(&d.video_id),
                size(d.size),
                esc(d.done_at.as_deref().unwrap_or(""))
            )
        },
    )
}

/// `<h2>title</h2>`, then the muted line `empty` (`id="ID-none"`) when there are no `items`, else
/// `<table id="ID">` with the header cells `head` and one `row` per item.
fn list_section<T>(
    h: &mut String,
    title: &str,
    id: &str,
    empty: &str,
    head: &[&str],
    items: &[T],
    row: impl Fn(&mut String, &T) -> std::fmt::Result,
) -> std::fmt::Result {
    write!(h, "<h2>{title}</h2>")?;
    if items.is_empty() {
        return write!(h, "<p class=\"muted\" id=\"{id}-none\">{empty}</p>");
    }
    write!(h, "<table id=\"{id}\"><tr>")?;
    for cell in head {
        write!(h, "<th>{cell}</th>")?;
    }
    h.push_str("</tr>");
    for item in items {
        row(h, item)?;
    }
    h.push_str("</table>");
    Ok(())
}

/// A rate in bytes per second, as a whole number of bytes for [`size`].
// `as` from f64 saturates (NaN is 0, negative is 0, +inf is u64::MAX): a display value only.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn rate_u64(rate: f64) -> u64 {
    rate.max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::{
        DoneView, InFlightView, PendingView, RootView, StateCount, TokenView,
    };

    fn snapshot() -> Snapshot {
        Snapshot {
            generated_at: "2026-01-01T00:00:00Z".into(),
            journal_problem: None,
            token: TokenView {
                state: "rejected",
                reason: Some("401 authentication-invalid-upload-token".into()),
            },
            files: vec![StateCount {
                state: "queued",
                files: 2,
            }],
            backlog_bytes: 2048,
            files_incomplete: 1,
            oldest_pending_age_seconds: Some(90.0),
            uploaded_bytes_total: 0,
            roots: vec![RootView {
                path: "/srv/<in>".into(),
                mode: "events".into(),
                health: "ok".into(),
                healthy: true,
                watches: 3,
                settling: 0,
                free_bytes: Some(1024),
                size_bytes: Some(4096),
            }],
            inotify_watches: 3,
            inotify_watch_limit: Some(8192),
            uploading: vec![InFlightView {
                id: 4,
                path: "/srv/a&b.mp4".into(),
                size: 200,
                sent: 50,
                percent: 25.0,
                rate_bytes_per_sec: 1024.0,
                lanes: 1,
            }],
            pending: vec![PendingView {
                id: 5,
                path: "/srv/c.mp4".into(),
                state: "failed",
                size: 10,
                bytes_uploaded: 0,
                reason: "failed: <script>".into(),
            }],
            recent: vec![DoneView {
                id: 1,
                path: "/srv/d.mp4".into(),
                video_id: "vi123".into(),
                size: 10,
                done_at: None,
            }],
            rate: Default::default(),
            orphans_total: 0,
            orphans: Vec::new(),
            journal: Default::default(),
        }
    }

    #[test]
    fn renders_every_section_escaped() {
        let html = page(&snapshot());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("/srv/&lt;in&gt;"), "root escaped");
        assert!(html.contains("/srv/a&amp;b.mp4"), "upload escaped");
        assert!(html.contains("<progress id=\"progress-4\" value=\"50\" max=\"200\">"));
        assert!(html.contains("25.0%"));
        assert!(html.contains("failed: &lt;script&gt;"), "reason escaped");
        assert!(html.contains("vi123"));
        assert!(html.contains("data-state=\"rejected\""));
        assert!(html.contains("1m 30s"), "oldest pending age");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
        assert_eq!(html.matches("<script>").count(), 1);
    }

    /// A name holding a bidi override (U+202E: `rlo\u{202e}4pm.exe` shows as `rlo exe.mp4`),
    /// a line break or ESC is shown escaped, as in `status` (issue 14 item 4; session 6 audit).
    #[test]
    fn control_characters_and_bidi_overrides_in_names_are_shown_escaped() {
        let mut s = snapshot();
        s.pending[0].path = "/srv/rlo\u{202e}4pm.exe".into();
        s.uploading[0].path = "/srv/esc\x1b]0;x\x07\nnext.mp4".into();
        let html = page(&s);
        assert!(!html.contains('\u{202e}') && !html.contains('\x1b') && !html.contains('\x07'));
        assert!(html.contains("/srv/rlo\\u{202e}4pm.exe"), "{html}");
        assert!(html.contains("/srv/esc\\x1b]0;x\\x07\\nnext.mp4"), "{html}");
    }

    #[test]
    fn shows_the_rate_in_force_and_its_next_change() {
        let mut s = snapshot();
        assert!(fragment(&s).contains("Upload rate: <b>unlimited</b></p>"));
        s.rate = crate::metrics::snapshot::RateView {
            bytes_per_second: 2 << 20,
            timetable: Some("08:00,2M 18:00,<off>".into()),
            next_change_at: Some("2026-12-04T18:00:00Z".into()),
            next_bytes_per_second: Some(0),
            ..Default::default()
        };
        let html = fragment(&s);
        assert!(
            html.contains("Upload rate: <b>2 MiB/s</b> until 2026-12-04T18:00:00Z, then unlimited"),
            "{html}"
        );
        assert!(
            html.contains("(timetable 08:00,2M 18:00,&lt;off&gt;)"),
            "{html}"
        );
        s.rate.bypassed = true;
        assert!(fragment(&s).contains("<b>unlimited</b> (SIGUSR2 lifted the limit of 2 MiB/s"));
    }

    #[test]
    fn empty_sections_say_so() {
        let mut s = snapshot();
        s.uploading.clear();
        s.pending.clear();
        s.recent.clear();
        let html = fragment(&s);
        assert!(html.contains("Nothing is uploading."));
        assert!(html.contains("No file is waiting."));
        assert!(html.contains("Nothing uploaded yet."));
    }

    #[test]
    fn orphans_and_the_journal_are_shown() {
        let mut s = snapshot();
        s.orphans_total = 1;
        s.orphans = vec![crate::metrics::snapshot::OrphanView {
            file_id: 7,
            path: "/srv/<a>.mp4".into(),
            kind: "orphan",
            video_id: None,
            reason: "the process stopped".into(),
            at: "2026-12-04T10:00:00Z".into(),
        }];
        s.journal.bytes = 3 << 20;
        s.journal.rows = 12;
        let html = fragment(&s);
        assert!(html.contains("orphans: <b>1</b>"), "{html}");
        assert!(html.contains("journal: <b>3.0 MiB</b>") && html.contains("rows: <b>12</b>"));
        assert!(html.contains("last prune: <b>never</b>"), "{html}");
        assert!(html.contains("<table id=\"orphans\">") && html.contains("/srv/&lt;a&gt;.mp4"));
        assert!(html.contains("possible orphan"));
        s.orphans.clear();
        assert!(fragment(&s).contains("id=\"orphans-none\""));
    }
}
