//! In-process tests of [`run_with`]: notifications, reload with a broken config, shutdown.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixDatagram;

use super::*;
use crate::config::{AfterUpload, ApiConfig, JournalConfig, TokenSource, UploadConfig};

fn config(source: &Path) -> Config {
    Config {
        source: source.to_owned(),
        api: ApiConfig {
            endpoint: "http://127.0.0.1:1".parse().unwrap(),
            token: TokenSource::Inline(crate::secret::Secret::new("to1tcmSFHeYY5KzyhOqVKMKb")),
            api_key_file: None,
            allow_insecure_http: false,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            min_rate: 64 * 1024,
            request_timeout: Duration::from_secs(30),
        },
        journal: JournalConfig {
            path: source.with_file_name("journal.sqlite"),
            keep_done: None,
        },
        upload: UploadConfig {
            workers: 2,
            lanes_per_file: 1,
            max_connections: 8,
            chunk_size: 64 << 20,
            max_rate: crate::config::timetable::RateTable::flat(0),
            after_upload: AfterUpload::Keep,
            retry_max: Duration::from_secs(600),
            shutdown_timeout: Duration::from_secs(30),
            title_template: "{stem}".into(),
            hash: Default::default(),
        },
        watch: Vec::new(),
        metrics: None,
        warnings: Vec::new(),
    }
}

/// Receives datagrams until one starts with `prefix` (bounded, so a bug fails instead of hanging).
async fn expect(sock: &UnixDatagram, prefix: &str) -> String {
    let mut buf = vec![0u8; 4096];
    let wait = async {
        loop {
            let n = sock.recv(&mut buf).await.unwrap();
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.starts_with(prefix) {
                return msg;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no {prefix} notification"))
}

#[tokio::test]
async fn notifies_ready_status_survives_a_broken_reload_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // The config file does not exist, so a reload fails and must keep the running config.
    let cfg = config(&dir.path().join("missing.toml"));
    let shutdown = CancellationToken::new();
    let opts = RunOptions::quiet(Notifier::to_socket(&sock_path));
    let reload = opts.reloads.trigger();
    let daemon = tokio::spawn(run_with(cfg, shutdown.clone(), opts));

    assert_eq!(expect(&sock, "READY=1").await, "READY=1\n");
    assert_eq!(expect(&sock, "STATUS=").await, "STATUS=idle\n");

    reload.request();
    expect(&sock, "RELOADING=1").await;
    expect(&sock, "READY=1").await;
    assert!(
        !daemon.is_finished(),
        "a failed reload must not stop the daemon"
    );

    shutdown.cancel();
    assert_eq!(expect(&sock, "STOPPING=1").await, "STOPPING=1\n");
    let result = tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn watchdog_runs_when_configured_and_stops_with_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let shutdown = CancellationToken::new();
    let mut opts = RunOptions::quiet(Notifier::to_socket(&sock_path));
    opts.watchdog_interval = Some(Duration::from_millis(50));
    let daemon = tokio::spawn(run_with(
        config(&dir.path().join("c.toml")),
        shutdown.clone(),
        opts,
    ));
    expect(&sock, "WATCHDOG=1").await;
    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
}

#[test]
fn config_errors_exit_78() {
    let e = DaemonError::Config(ConfigError {
        file: "/etc/ingestd/config.toml".into(),
        position: Some((3, 1)),
        message: "bad".into(),
    });
    assert_eq!(e.exit_code(), 78);
    assert_eq!(e.to_string(), "/etc/ingestd/config.toml:3:1: bad");
}
