//! The in-process API used by `ingestd demo` and tests: start, serve, shut down, restart on the
//! same data directory.

use ingestd::emulator::{EmulatorOptions, start};

#[tokio::test]
async fn start_serve_shutdown_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EmulatorOptions {
        data_dir: tmp.path().join("data"),
        api_key: None,
        upload_limit_per_minute: 0,
    };
    let em = start(opts.clone(), "127.0.0.1:0").await.unwrap();
    assert_ne!(em.addr().port(), 0);
    assert_eq!(em.url(), format!("http://{}", em.addr()));
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/upload-tokens", em.url()))
        .basic_auth("any-key", Some(""))
        .json(&serde_json::json!({"ttl": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    em.shutdown().await;

    let em = start(opts, "127.0.0.1:0").await.unwrap();
    let r = client
        .get(format!("{}/upload-tokens/{token}", em.url()))
        .basic_auth("any-key", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let empty_key = client
        .get(format!("{}/upload-tokens", em.url()))
        .basic_auth("", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(empty_key.status(), 401);
    em.shutdown().await;
}

#[tokio::test]
async fn bind_error_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EmulatorOptions {
        data_dir: tmp.path().to_owned(),
        api_key: Some("k".into()),
        upload_limit_per_minute: 0,
    };
    let err = start(opts, "256.0.0.1:1").await.unwrap_err();
    assert!(
        err.to_string().contains("cannot listen on 256.0.0.1:1"),
        "{err}"
    );
}
