//! The `policy-module` binary: serve on a free loopback port with a SQLite file, administer it
//! with the `admin` subcommands, stop it with SIGTERM; completion scripts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_policy-module");
const ADMIN: &str = "cli-admin-token-0123456789";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn admin(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["admin", "--server", url])
        .args(args)
        .env("POLICY_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn serve_administer_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // The committed sample, with a free port and its secrets written where it names them.
    let d = dir.path();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    for (file, value) in [
        ("policy-admin.token", ADMIN),
        ("policy-ndes.token", "cli-ndes-token-0123456789"),
        ("ca-policy.token", "cli-ca-token-0123456789"),
    ] {
        std::fs::write(d.join("secrets").join(file), format!("{value}\n")).unwrap();
    }
    // The grant key pair the sample names, written by the binary's own command, which never
    // overwrites a key in use.
    let key = d.join("secrets/grant-signing.key");
    let public = d.join("grant-signing.pub.pem");
    for expect_ok in [true, false] {
        let out = Command::new(BIN)
            .arg("grant-key")
            .args([&key, &public])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), expect_ok, "{out:?}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read(&public).unwrap();
    assert!(ca_api::GrantVerifier::from_pems([pem.as_slice()], 900).is_ok());
    let config = d.join("policy-module.toml");
    let text = policy_module::config::SAMPLE
        .replace("127.0.0.1:8280", &format!("127.0.0.1:{port}"))
        .replace("http://127.0.0.1:8180", "http://127.0.0.1:9");
    std::fs::write(&config, text).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "policy-module did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let profile = serde_json::json!({
        "id": "wifi",
        "name": "Wi-Fi",
        "certificate_type": "device",
        "subject_name_format": "CN={{DeviceName}},O=Contoso",
        "key_usage": ["digitalSignature"],
        "key_algorithm": "rsa",
        "key_size": 2048,
        "hash_algorithm": "sha256",
        "validity_days": 365,
        "renewal_threshold_percent": 20,
        "template": "IPSECIntermediateOffline",
        "scep_server_urls": ["http://127.0.0.1:8080/certsrv/mscep/mscep.dll"],
        "ca_thumbprint": "00".repeat(32),
    });
    let file = dir.path().join("profile.json");
    std::fs::write(&file, profile.to_string()).unwrap();
    let (ok, out) = admin(&url, &["create-profile", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("\"version\":1"), "{out}");

    let device = dir.path().join("device.json");
    std::fs::write(
        &device,
        r#"{"id":"laptop-1","name":"LAPTOP-1","platform":"windows"}"#,
    )
    .unwrap();
    let (ok, out) = admin(&url, &["register-device", device.to_str().unwrap()]);
    assert!(ok && out.contains("credential"), "{out}");
    let (ok, out) = admin(&url, &["assign", "wifi", "device", "laptop-1"]);
    assert!(ok, "{out}");
    let (ok, out) = admin(&url, &["get", "/api/v1/devices/laptop-1"]);
    assert!(ok && out.contains("wifi"), "the device is targeted: {out}");
    let (ok, out) = admin(&url, &["lifecycle", "laptop-1", "retire"]);
    assert!(ok, "{out}");
    let (ok, out) = admin(&url, &["lifecycle", "laptop-1", "retire"]);
    assert!(!ok, "retiring twice is refused: {out}");
    let (ok, out) = admin(&url, &["get", "/api/v1/devices/nobody"]);
    assert!(!ok && out.contains("404"), "{out}");
    // The admin page's template gets the sample name policy from the command line, as
    // `scep-lab services` prints it; a malformed one is refused.
    let policy = dir.path().join("name-policy.json");
    std::fs::write(&policy, policy_module::name_policy::SAMPLE).unwrap();
    let (ok, out) = admin(
        &url,
        &[
            "set-name-policy",
            "IPSECIntermediateOffline",
            policy.to_str().unwrap(),
        ],
    );
    assert!(
        ok && out.contains("\"template\":\"IPSECIntermediateOffline\""),
        "{out}"
    );
    let (ok, out) = admin(&url, &["get", "/api/v1/name-policies"]);
    assert!(ok && out.contains("scep-client"), "{out}");
    std::fs::write(&policy, r#"{"sans":[{"kind":"othername","pattern":"*"}]}"#).unwrap();
    let (ok, out) = admin(&url, &["set-name-policy", "T2", policy.to_str().unwrap()]);
    assert!(!ok && out.contains("400"), "{out}");
    let (ok, out) = admin(&url, &["delete-name-policy", "IPSECIntermediateOffline"]);
    assert!(ok, "{out}");
    let (ok, out) = admin(&url, &["delete-name-policy", "IPSECIntermediateOffline"]);
    assert!(!ok && out.contains("404"), "{out}");
    // A wrong token is refused without echoing it.
    let bad = Command::new(BIN)
        .args(["admin", "--server", &url, "get", "/api/v1/devices"])
        .env("POLICY_ADMIN_TOKEN", "wrong-token-value")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(!String::from_utf8_lossy(&bad.stdout).contains("wrong-token-value"));

    // SIGTERM stops it cleanly, and the data survives for the next start.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "policy-module ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    for secret in [
        ADMIN,
        "cli-ndes-token-0123456789",
        "cli-ca-token-0123456789",
    ] {
        assert!(!stderr.contains(secret), "a token appeared in the log");
    }
}

#[test]
fn prints_completion_scripts() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("policy-module"));
    }
}

/// Issue 17: `completion bash | head -1` never panics, and `--log-format json|text` logs
/// JSON objects or plain text (no ANSI codes when stderr is not a terminal).
#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_policy-module"));
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "policy-module");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}
