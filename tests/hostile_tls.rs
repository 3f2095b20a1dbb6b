//! Bad input, TLS (issue 5 §6): an endpoint whose certificate the system does not trust is
//! refused — the file waits, visibly, with a message naming `[api] ca_file` — and the same
//! endpoint is accepted once `ca_file` points at the CA that signed it (applied by SIGHUP, no
//! restart). The endpoint is the real emulator behind a TLS-terminating proxy with a throwaway CA
//! (tests/common/tls_proxy.rs).
#![allow(clippy::disallowed_methods)] // `Path::display` builds expected text

mod common;
#[path = "common/tls_proxy.rs"]
mod tls_proxy;

use std::time::Duration;

use common::Emulator;
use common::daemon::{Opts, Setup, assert_uploaded_once, count, file_row, video_id};
use tls_proxy::TlsProxy;

const T: Duration = Duration::from_secs(60);

#[test]
fn untrusted_certificate_is_refused_and_ca_file_makes_it_trusted() {
    let em = Emulator::start();
    let proxy = TlsProxy::start(&em.addr());
    let mut setup = Setup::new(&em, Opts::default());
    setup.endpoint = proxy.url.clone();
    setup.write_config();
    let d = setup.start();
    let f = setup.drop_file("clip.mp4", 512 * 1024, 3);

    let s = setup.wait_for("the certificate refusal in status", T, |s| {
        file_row(s, &f).is_some_and(|r| r["last_error"].is_string())
    });
    let row = file_row(&s, &f).unwrap();
    let err = row["last_error"].as_str().unwrap();
    assert_eq!(
        row["state"], "queued",
        "waits for a retry, not failed: {row:#}"
    );
    assert!(err.contains("certificate"), "names the certificate: {err}");
    assert!(
        err.contains("[api] ca_file"),
        "says what to do (trust the CA with [api] ca_file): {err}"
    );
    assert!(
        proxy.handshake_failures() >= 1,
        "refused in the TLS handshake"
    );
    assert_eq!(count(&s, "failed"), 0);

    let ca = setup.dir.join("proxy-ca.pem");
    proxy.write_ca(&ca);
    let text = setup.config_text().replacen(
        "[api]\n",
        &format!("[api]\nca_file = \"{}\"\n", ca.display()),
        1,
    );
    std::fs::write(&setup.config, text).unwrap();
    d.signal(libc::SIGHUP);
    let s = setup.wait_done(1, T);
    let vid = video_id(&s, &f);
    assert_uploaded_once(&em, &f, &vid);
    assert!(!setup.log().contains(&setup.token), "no token in the log");
}
