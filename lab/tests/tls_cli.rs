//! `scep-lab serve --tls` as a user runs it (issue 17 item 4): the banner gives https URLs, the
//! HTTPS SCEP URL and the root file to pin, with which `curl --cacert` reaches the services.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The value after `label` on the banner's line that starts with it.
fn line_value<'a>(banner: &'a str, label: &str) -> &'a str {
    banner
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {banner}"))
        .trim()
}

#[test]
fn serve_tls_prints_https_urls_and_the_root_curl_pins() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<String> = (0..5)
        .map(|_| testkit::free_port().unwrap().to_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scep-lab"))
        .arg("serve")
        .arg("--tls")
        .arg("--data")
        .arg(dir.path().join("lab"))
        .arg("--ports")
        .args(&ports[..3])
        .arg("--console-port")
        .arg(&ports[3])
        .arg("--scep-https-port")
        .arg(&ports[4])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("serving;");
            banner.push_str(&line);
            banner.push('\n');
            if done {
                break;
            }
        }
        let _ = tx.send(banner);
    });
    // A hang guard, not a timing assertion.
    let banner = rx.recv_timeout(Duration::from_secs(120));
    let curl = |root: &str, url: &str| {
        testkit::cmd::run(
            "curl",
            &["-sS", "-f", "--max-time", "20", "--cacert", root, url],
            None,
            Duration::from_secs(30),
        )
        .unwrap()
    };
    let checks = banner.map(|banner| {
        let root = line_value(&banner, "TLS root to pin:")
            .trim_end_matches("(curl --cacert)")
            .trim()
            .to_owned();
        let policy = line_value(&banner, "policy-module").to_owned();
        let scep_https = line_value(&banner, "SCEP (HTTPS)").to_owned();
        let health = curl(&root, &format!("{policy}/healthz"));
        let caps = curl(&root, &format!("{scep_https}?operation=GetCACaps"));
        (banner, policy, scep_https, health, caps)
    });
    let _ = child.kill();
    let _ = child.wait();
    let (banner, policy, scep_https, health, caps) = checks.unwrap();
    assert_eq!(
        policy,
        format!("https://127.0.0.1:{}", ports[1]),
        "{banner}"
    );
    assert_eq!(
        scep_https,
        format!("https://127.0.0.1:{}/certsrv/mscep/mscep.dll", ports[4]),
        "{banner}"
    );
    assert!(
        line_value(&banner, "mscep_admin").starts_with("https://"),
        "{banner}"
    );
    assert!(health.success(), "{health:?}");
    assert!(caps.stdout_str().contains("SHA-256"), "{caps:?}");
}
