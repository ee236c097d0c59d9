//! The `ndes-proxy` binary: a configuration with every section starts a server on 127.0.0.1
//! (SCEP, approval API, mscep_admin, metrics, SQLite pending store) that stops cleanly on
//! SIGTERM. The CA and policy module are not needed for these endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki;

#[tokio::test]
async fn the_binary_serves_the_configured_endpoints_and_stops_on_sigterm() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("ra")).unwrap();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(d.join(name), bytes).unwrap();
    write("ra/signing.pem", p.ra_sign.to_pem().unwrap());
    write(
        "ra/signing.key",
        p.ra_sign_key.private_key_to_pem_pkcs8().unwrap(),
    );
    write("ra/encryption.pem", p.ra_enc.to_pem().unwrap());
    write(
        "ra/encryption.key",
        p.ra_enc_key.private_key_to_pem_pkcs8().unwrap(),
    );
    write("ra/chain.pem", p.ca.to_pem().unwrap());
    for (name, value) in [
        ("secrets/ca-ndes.token", "ca-token"),
        ("secrets/policy-ndes.token", "policy-token"),
        ("secrets/ndes-admin.token", "admin-token"),
        ("secrets/mscep-admin.users", "ndesadmin:pw"),
        ("secrets/mscep-admin.token", "script-token"),
    ] {
        write(name, format!("{value}\n").into_bytes());
    }
    let port = testkit::free_port().unwrap();
    let sample = include_str!("../ndes-proxy.sample.toml")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let config = d.join("ndes-proxy.toml");
    std::fs::write(&config, sample).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_ndes-proxy"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("ndes-proxy exited ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "ndes-proxy did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caps = http
        .get(format!(
            "{base}/certsrv/mscep/mscep.dll?operation=GetCACaps"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(caps.status(), 200);
    assert!(caps.text().await.unwrap().contains("POSTPKIOperation"));
    let pending = http
        .get(format!("{base}/admin/v1/pending"))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status(), 200);
    assert_eq!(pending.text().await.unwrap(), "[]");
    let anon = http
        .get(format!("{base}/admin/v1/pending"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let page = http
        .get(format!("{base}/certsrv/mscep_admin/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("operation=\"GetCACaps\"")
    );
    assert!(
        d.join("data/pending.db").exists(),
        "the SQLite store was created"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status}: {err}");
    for secret in [
        "admin-token",
        "script-token",
        "ca-token",
        "policy-token",
        "ndesadmin:pw",
    ] {
        assert!(!err.contains(secret), "{secret} in the log");
    }
}

/// Issue 17: `completion bash | head -1` never panics, and `--log-format json|text` logs
/// JSON objects or plain text (no ANSI codes when stderr is not a terminal).
#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ndes-proxy"));
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "ndes-proxy");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}
