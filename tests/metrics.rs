//! `/metrics` of the real `ingestd run` (with `[metrics] listen`) against the real emulator,
//! validated by the official Python `prometheus_client` parsers (OpenMetrics, strict, and the
//! Prometheus text format), with the values checked after real uploads: one done after a
//! transient 502 (a retry), one failed on a 400. Also: a taken port fails the start naming the
//! key `[metrics] listen`.
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;
mod metrics_support;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Emulator;
use metrics_support::{Daemon, get, request, setup, wait_for};
use serde_json::Value;

const MIB: usize = 1024 * 1024;

/// Parses the exposition text with `prometheus_client`'s OpenMetrics parser (which rejects
/// anything malformed) and its Prometheus text parser; returns
/// `{family: {"type", "unit", "samples": [[name, labels, value], …]}}`.
fn parse(text: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus
text = sys.stdin.read()
out = {}
for f in openmetrics(text):
    out[f.name] = {"type": f.type, "unit": f.unit,
                   "samples": [[s.name, s.labels, s.value] for s in f.samples]}
list(prometheus(text))
print(json.dumps(out))
"#;
    let mut child = Command::new(common::python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python (INGESTD_TEST_PYTHON with prometheus-client, see tests/python/requirements.txt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include every `(key, value)` of `labels`.
fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let f = &families[family];
    assert!(f.is_object(), "no family {family} in {families:#}");
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
        .and_then(|s| s[2].as_f64())
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {f:#}"))
}

fn faults(em: &Emulator, plan: &str) {
    let r = request(&em.addr(), "POST", "/_emulator/faults", Some(plan));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn metrics_parse_and_count_real_uploads() {
    let em = Emulator::start();
    let d = Daemon::start(&em);
    let inbox = d.inbox.display().to_string();

    // A chunked upload whose first request gets a 502: one transient retry, then done.
    faults(
        &em,
        r#"[{"path":"/upload","count":1,"action":"fail","status":502}]"#,
    );
    d.drop_file("one.mp4", 6 * MIB);
    wait_for("one.mp4 uploaded", || (d.files("done") == 1).then_some(()));

    // A 400 fails the next one for good.
    faults(
        &em,
        r#"[{"path":"/upload","count":1,"action":"fail","status":400}]"#,
    );
    d.drop_file("two.mp4", MIB);
    wait_for("two.mp4 failed", || (d.files("failed") == 1).then_some(()));

    let r = d.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    assert!(
        !r.body.contains(&d.token),
        "the upload token is in /metrics"
    );
    let m = parse(&r.body);

    // Types and units as documented in docs/OPERATIONS.md.
    for (family, kind, unit) in [
        ("ingestd_files", "gauge", ""),
        ("ingestd_backlog_bytes", "gauge", "bytes"),
        ("ingestd_oldest_pending_age_seconds", "gauge", "seconds"),
        ("ingestd_uploaded_bytes", "counter", "bytes"),
        ("ingestd_uploads", "counter", ""),
        ("ingestd_retries", "counter", ""),
        ("ingestd_token_state", "gauge", ""),
        ("ingestd_watch_root_healthy", "gauge", ""),
        ("ingestd_watch_root_watches", "gauge", ""),
        ("ingestd_root_free_bytes", "gauge", "bytes"),
        ("ingestd_root_size_bytes", "gauge", "bytes"),
        ("ingestd_inotify_watches", "gauge", ""),
        ("ingestd_inotify_watches_limit", "gauge", ""),
    ] {
        assert_eq!(m[family]["type"], kind, "{family}: {:#}", m[family]);
        assert_eq!(m[family]["unit"], unit, "{family}");
    }

    let files = |state| sample(&m, "ingestd_files", "ingestd_files", &[("state", state)]);
    assert_eq!(files("done"), 1.0);
    assert_eq!(files("failed"), 1.0);
    assert_eq!(
        files("queued") + files("uploading") + files("settling"),
        0.0
    );
    assert_eq!(
        sample(&m, "ingestd_backlog_bytes", "ingestd_backlog_bytes", &[]),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "ingestd_oldest_pending_age_seconds",
            "ingestd_oldest_pending_age_seconds",
            &[]
        ),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "ingestd_uploaded_bytes",
            "ingestd_uploaded_bytes_total",
            &[]
        ),
        (6 * MIB) as f64,
        "every acknowledged byte counted once"
    );
    let uploads = |o| {
        sample(
            &m,
            "ingestd_uploads",
            "ingestd_uploads_total",
            &[("outcome", o)],
        )
    };
    assert_eq!(
        (uploads("done"), uploads("failed"), uploads("abandoned")),
        (1.0, 1.0, 0.0)
    );
    let retries = |c| {
        sample(
            &m,
            "ingestd_retries",
            "ingestd_retries_total",
            &[("class", c)],
        )
    };
    assert_eq!(retries("transient"), 1.0, "the 502");
    assert_eq!(
        retries("rate_limited") + retries("token_rejected") + retries("local"),
        0.0
    );
    let token = |s| {
        sample(
            &m,
            "ingestd_token_state",
            "ingestd_token_state",
            &[("state", s)],
        )
    };
    assert_eq!(
        (token("ok"), token("unknown"), token("rejected")),
        (1.0, 0.0, 0.0)
    );
    assert_eq!(
        sample(
            &m,
            "ingestd_watch_root_healthy",
            "ingestd_watch_root_healthy",
            &[("root", &inbox), ("mode", "events")]
        ),
        1.0
    );
    assert!(
        sample(
            &m,
            "ingestd_watch_root_watches",
            "ingestd_watch_root_watches",
            &[("root", &inbox)]
        ) >= 1.0
    );
    let free = sample(
        &m,
        "ingestd_root_free_bytes",
        "ingestd_root_free_bytes",
        &[("root", &inbox)],
    );
    let size = sample(
        &m,
        "ingestd_root_size_bytes",
        "ingestd_root_size_bytes",
        &[("root", &inbox)],
    );
    assert!(free > 0.0 && free <= size, "free {free} of {size}");
    let used = sample(
        &m,
        "ingestd_inotify_watches",
        "ingestd_inotify_watches",
        &[],
    );
    let limit = sample(
        &m,
        "ingestd_inotify_watches_limit",
        "ingestd_inotify_watches_limit",
        &[],
    );
    let proc_limit: f64 = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(used >= 1.0 && limit == proc_limit, "{used} of {limit}");

    // The failed file's reason is what the status JSON shows for it.
    let status = d.status();
    let failed = status["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "failed")
        .unwrap_or_else(|| panic!("{status:#}"));
    assert!(failed["path"].as_str().unwrap().ends_with("two.mp4"));
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failed: fault-injected") && reason.contains("ingestd retry"),
        "{reason}"
    );
    assert!(!status.to_string().contains(&d.token));
}

#[test]
fn a_taken_port_fails_the_start_naming_the_key() {
    let em = Emulator::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_dir, config, token) = setup(&em, &addr);
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("`listen` in [metrics]")
            && stderr.contains("config.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains(&token));
}

/// `[metrics] listen` changed on SIGHUP: the new address serves, the old one is closed; an
/// address that cannot be bound keeps the listener where it was.
#[test]
fn sighup_moves_the_metrics_listener() {
    let em = Emulator::start();
    let d = Daemon::start(&em);
    let old = d.addr.clone();
    assert_eq!(d.get("/metrics").status, 200);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let new = free.local_addr().unwrap().to_string();
    drop(free);
    let text = std::fs::read_to_string(d.config()).unwrap();
    let relisten = |to: &str| {
        let t = text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{to}\""));
        assert_ne!(t, text);
        std::fs::write(d.config(), t).unwrap();
        d.signal(libc::SIGHUP);
    };

    // A taken address: logged, and the old listener keeps serving.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    relisten(&taken_addr);
    wait_for("the bind error in the log", || {
        let log = d.log.lock().unwrap();
        log.iter()
            .any(|l| l.contains(&format!("listen = \"{taken_addr}\": cannot listen there")))
            .then_some(())
    });
    assert_eq!(
        get(&old, "/metrics").status,
        200,
        "still on the old address"
    );

    relisten(&new);
    wait_for("the new address to serve", || {
        std::net::TcpStream::connect(&new).ok().map(|_| ())
    });
    assert_eq!(get(&new, "/metrics").status, 200);
    wait_for("the old address to close", || {
        std::net::TcpStream::connect(&old).err().map(|_| ())
    });
    drop(taken);
}
