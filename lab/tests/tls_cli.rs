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

/// A `scep-lab serve --tls` child on free ports, killed on drop.
struct Served {
    child: std::process::Child,
    /// CA, policy, NDES, console, SCEP over HTTPS, ca-mock's plain HTTP.
    ports: Vec<String>,
    /// The banner up to its `serving;` line; `None` when it did not come (hang guard).
    banner: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_tls(data: &std::path::Path) -> Served {
    let ports: Vec<String> = (0..6)
        .map(|_| testkit::free_port().unwrap().to_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scep-lab"))
        .arg("serve")
        .arg("--tls")
        .arg("--data")
        .arg(data)
        .arg("--ports")
        .args(&ports[..3])
        .arg("--console-port")
        .arg(&ports[3])
        .arg("--scep-https-port")
        .arg(&ports[4])
        .arg("--ca-plain-port")
        .arg(&ports[5])
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
    let banner = rx.recv_timeout(Duration::from_secs(120)).ok();
    Served {
        child,
        ports,
        banner,
    }
}

#[test]
fn serve_tls_prints_https_urls_and_the_root_curl_pins() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_tls(&dir.path().join("lab"));
    let ports = served.ports.clone();
    let banner = served.banner.clone().expect("the banner");
    let curl = |root: &str, url: &str| {
        testkit::cmd::run(
            "curl",
            &["-sS", "-f", "--max-time", "20", "--cacert", root, url],
            None,
            Duration::from_secs(30),
        )
        .unwrap()
    };
    let root = line_value(&banner, "TLS root to pin:")
        .trim_end_matches("(curl --cacert)")
        .trim()
        .to_owned();
    let policy = line_value(&banner, "policy-module").to_owned();
    let scep_https = line_value(&banner, "SCEP (HTTPS)").to_owned();
    let health = curl(&root, &format!("{policy}/healthz"));
    let caps = curl(&root, &format!("{scep_https}?operation=GetCACaps"));
    drop(served);
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
    assert_eq!(
        line_value(
            &banner,
            "CRL/OCSP/CA certificates (plain HTTP, as in certificates)"
        ),
        format!("http://127.0.0.1:{}", ports[5]),
        "{banner}"
    );
    assert!(health.success(), "{health:?}");
    assert!(caps.stdout_str().contains("SHA-256"), "{caps:?}");
}

/// `scep-lab payload`, `trace` and `profile` against a `serve --tls` lab: the root under
/// `<data>/tls/` is pinned by default, `--ca-file` names another, and a wrong one is refused.
#[test]
fn the_lab_tools_pin_the_lab_root_against_a_tls_lab() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lab");
    let served = serve_tls(&data);
    served.banner.as_ref().expect("the banner");
    let p = &served.ports;
    let (ca, policy) = (
        format!("https://127.0.0.1:{}", p[0]),
        format!("https://127.0.0.1:{}", p[1]),
    );
    let scep = format!("http://127.0.0.1:{}/certsrv/mscep/mscep.dll", p[2]);
    let lab = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_scep-lab"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .env("RUST_LOG", "error")
            .env_remove("SCEP_LAB_DATA")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    // payload: the root under <data>/tls/ by default (root fetch, profile, device, check-in).
    let (ok, out) = lab(&[
        "payload",
        "--device",
        "TLS-TOOL-01",
        "--format",
        "json",
        "--policy-url",
        &policy,
        "--ca-url",
        &ca,
        "--scep-url",
        &scep,
    ]);
    assert!(ok, "payload over https: {out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("device "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no device id in {out}"))
        .trim_end_matches(':')
        .to_owned();
    // trace and profile export with an explicit --ca-file.
    let root = data.join("tls/root.pem");
    let root = root.to_str().unwrap();
    let (ok, out) = lab(&[
        "trace",
        "--device",
        &id,
        "--policy-url",
        &policy,
        "--ca-file",
        root,
    ]);
    assert!(ok && out.contains(&id), "trace over https: {out}");
    let (ok, out) = lab(&[
        "profile",
        "export",
        "corp-device-cert",
        "--platform",
        "windows",
        "--policy-url",
        &policy,
        "--ca-file",
        root,
    ]);
    assert!(ok, "profile export over https: {out}");
    // A root that did not issue the lab's server certificates is refused.
    let other = dir.path().join("other.pem");
    let made = testkit::cmd::run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=not the lab",
            "-days",
            "1",
            "-keyout",
            dir.path().join("other.key").to_str().unwrap(),
            "-out",
            other.to_str().unwrap(),
        ],
        None,
        testkit::cmd::OPENSSL_TIMEOUT,
    )
    .unwrap();
    assert!(made.success(), "{made:?}");
    let (ok, out) = lab(&[
        "trace",
        "--device",
        &id,
        "--policy-url",
        &policy,
        "--ca-file",
        other.to_str().unwrap(),
    ]);
    assert!(!ok, "trace with a root that is not the lab's: {out}");
}
