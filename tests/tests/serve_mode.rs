//! `scep-lab serve` as a user runs it (the binary, on free ports), used the way the README
//! tells users to point a real client or device at it:
//! - it prints each service's URL, the mscep_admin page and the root fingerprint, and the web
//!   console's URL with the token file to sign in with, which signs in;
//! - `/certsrv/mscep_admin/` with the bearer token in `secrets/mscep-admin.token` hands out a
//!   one-time password, and a plain SCEP client enrolls with it once;
//! - `scep-lab payload` mints an Apple `.mobileconfig` and a Windows SyncML for new devices,
//!   naming the lab's SCEP URL and carrying a challenge;
//! - Ctrl-C (SIGINT) stops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scep::client::CertRep;
use scep_lab_tests::processes::binaries;
use scep_lab_tests::{RawScep, rsa_key};

/// The serve process, killed if the test fails before it stops it.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_its_urls_hands_out_challenges_and_payloads_and_stops_on_ctrl_c() {
    let bins = binaries().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports: Vec<u16> = (0..4).map(|_| testkit::free_port().unwrap()).collect();
    let mut serve = Serve(
        Command::new(&bins.scep_lab)
            .arg("serve")
            .arg("--data")
            .arg(&data)
            .arg("--ports")
            .args(ports[..3].iter().map(u16::to_string))
            .arg("--console-port")
            .arg(ports[3].to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Its banner, up to "serving" (bounded: the process exits or prints it).
    let stdout = serve.0.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("serving");
            lines.push(line);
            if done {
                break;
            }
        }
        lines.join("\n")
    });
    let banner = tokio::time::timeout(Duration::from_secs(120), banner)
        .await
        .expect("scep-lab serve did not start")
        .unwrap();
    let [ca, policy, scep, console] = [ports[0], ports[1], ports[2], ports[3]];
    let scep_url = format!("http://127.0.0.1:{scep}/certsrv/mscep/mscep.dll");
    let admin_url = format!("http://127.0.0.1:{scep}/certsrv/mscep_admin/");
    for want in [
        format!("ca-mock        http://127.0.0.1:{ca}"),
        format!("policy-module  http://127.0.0.1:{policy}"),
        format!("ndes-proxy     {scep_url}"),
        format!("mscep_admin    {admin_url}"),
        format!("console        http://127.0.0.1:{console}"),
        "secrets/console-admin.token".to_owned(),
    ] {
        assert!(banner.contains(&want), "{want:?} missing:\n{banner}");
    }
    let root = banner
        .lines()
        .find_map(|l| l.strip_prefix("root CA SHA-256 (pin this): "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(root.len(), 64);

    // The console signs in with the token the banner names.
    let console_token = std::fs::read_to_string(data.join("secrets/console-admin.token")).unwrap();
    let mut browser =
        scep_lab_tests::console::ConsoleClient::new(&format!("http://127.0.0.1:{console}"))
            .unwrap();
    let signed_in = browser.login("", console_token.trim()).await.unwrap();
    assert_eq!(signed_in.status, 303);
    assert_eq!(browser.get("/").await.unwrap().status, 200);

    // mscep_admin: a one-time password for the bearer token in secrets/.
    let token = std::fs::read_to_string(data.join("secrets/mscep-admin.token")).unwrap();
    let http = reqwest::Client::new();
    let anonymous = http.get(&admin_url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let page: serde_json::Value = http
        .get(format!("{admin_url}?format=json"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let password = page["challenge"].as_str().unwrap().to_owned();
    // A SCEP client enrolls with it, once.
    let client = RawScep::discover(&scep_url, &root).await.unwrap();
    let csr = |key: &openssl::pkey::PKey<openssl::pkey::Private>| {
        let mut name = openssl::x509::X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "real-client-01").unwrap();
        scep::csr::build(
            key,
            &name.build(),
            None,
            Some(&scep::csr::ChallengePassword::new(&password)),
            openssl::hash::MessageDigest::sha256(),
        )
        .unwrap()
    };
    let key = rsa_key(2048).unwrap();
    let (_, first) = client.pkcs_req(&csr(&key), &key).await.unwrap();
    assert!(matches!(first, CertRep::Success(_)), "{first:?}");
    let other = rsa_key(2048).unwrap();
    let (_, second) = client.pkcs_req(&csr(&other), &other).await.unwrap();
    assert!(
        matches!(second, CertRep::Failure { .. }),
        "the password was single use: {second:?}"
    );

    // scep-lab payload: a device's mobileconfig and SyncML from the running lab.
    let payload = |device: &str, format: &str| {
        let out = dir.path().join(format!("{device}.{format}"));
        let run = Command::new(&bins.scep_lab)
            .args(["payload", "--device", device, "--format", format, "--out"])
            .arg(&out)
            .arg("--policy-url")
            .arg(format!("http://127.0.0.1:{policy}"))
            .arg("--ca-url")
            .arg(format!("http://127.0.0.1:{ca}"))
            .arg("--scep-url")
            .arg(&scep_url)
            .arg("--admin-token-file")
            .arg(data.join("secrets/policy-admin.token"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "payload failed: {stderr}");
        assert!(run.stdout.is_empty(), "written to --out, not stdout");
        (std::fs::read_to_string(out).unwrap(), stderr)
    };
    let (mobileconfig, log) = payload("LAB-PHONE-01", "mobileconfig");
    assert!(log.contains("created profile corp-device-cert"), "{log}");
    for want in [
        "com.apple.security.scep",
        &scep_url,
        "LAB-PHONE-01",
        "Challenge",
    ] {
        assert!(
            mobileconfig.contains(want),
            "{want} missing:\n{mobileconfig}"
        );
    }
    let (syncml, log) = payload("LAB-LAPTOP-02", "syncml");
    assert!(
        !log.contains("created profile"),
        "the profile is reused: {log}"
    );
    for want in ["ClientCertificateInstall/SCEP", &scep_url, "LAB-LAPTOP-02"] {
        assert!(syncml.contains(want), "{want} missing:\n{syncml}");
    }
    for secret in std::fs::read_dir(data.join("secrets")).unwrap() {
        let value = std::fs::read_to_string(secret.unwrap().path()).unwrap();
        assert!(!log.contains(value.trim()), "a token in payload's output");
    }

    // Ctrl-C stops it.
    let interrupt = Command::new("kill")
        .args(["-INT", &serve.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let status = serve.0.wait();
            (status, serve)
        }),
    )
    .await
    .expect("scep-lab serve did not stop on SIGINT")
    .unwrap()
    .0
    .unwrap();
    assert!(status.success(), "{status}");
}
