//! The `ca-mock` binary end to end: init (with an encrypted key), issue, list, revoke, crl,
//! audit, completion, and serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ca-mock");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn init_ca(dir: &Path, port: u16) -> String {
    let pass = dir.join("pass.txt");
    std::fs::write(&pass, "very secret passphrase\n").unwrap();
    let ca = dir.join("ca");
    let text = ok(&run(
        &[
            "init",
            "--dir",
            ca.to_str().unwrap(),
            "--key",
            "ec-p256",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    ));
    assert!(
        !text.contains("very secret"),
        "the passphrase is never printed"
    );
    text
}

#[test]
fn init_issue_revoke_crl_and_audit_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = init_ca(dir.path(), 8180);
    let ca = dir.path().join("ca");
    for f in [
        "root.crt.pem",
        "root.key.pem",
        "issuing.crt.pem",
        "issuing.key.pem",
        "ca-mock.toml",
        "secrets/ca-ndes.token",
        "templates/CEPEncryption.toml",
    ] {
        assert!(
            text.contains(&ca.join(f).display().to_string()),
            "{f} not reported: {text}"
        );
    }
    let fp_line = text
        .lines()
        .find(|l| l.starts_with("root fingerprint (SHA-256): "))
        .unwrap();
    assert_eq!(fp_line.rsplit(' ').next().unwrap().len(), 64);
    #[cfg(unix)]
    for f in ["root.key.pem", "issuing.key.pem", "secrets/ca-ndes.token"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(ca.join(f)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f}"
        );
    }
    assert!(
        std::fs::read_to_string(ca.join("issuing.key.pem"))
            .unwrap()
            .contains("ENCRYPTED")
    );
    // Refuses to overwrite.
    assert!(
        !run(&["init", "--dir", ca.to_str().unwrap()], &[])
            .status
            .success()
    );

    let config = ca.join("ca-mock.toml");
    let cfg = config.to_str().unwrap();
    let csr_path = dir.path().join("dev.csr");
    std::fs::write(&csr_path, csr(&ec_key(), "ignored", true)).unwrap();
    let leaf = dir.path().join("dev.pem");
    let text = ok(&run(
        &[
            "issue",
            "--config",
            cfg,
            "--template",
            "IPSECIntermediateOffline",
            "--csr",
            csr_path.to_str().unwrap(),
            "--request-id",
            "cli-1",
            "--subject",
            "CN=dev-1,O=Contoso",
            "--san",
            "dns:dev-1.example.com",
            "--san",
            "email:dev1@contoso.com",
            "--out",
            leaf.to_str().unwrap(),
        ],
        &[],
    ));
    let serial = text
        .lines()
        .find_map(|l| l.strip_prefix("serial "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let cert = openssl::x509::X509::from_pem(&std::fs::read(&leaf).unwrap()).unwrap();
    let issuer_cn = cert
        .issuer_name()
        .entries()
        .last()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(issuer_cn, "scep-lab Issuing CA");
    let subject_cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap();
    assert_eq!(subject_cn.data().to_string().unwrap(), "dev-1");
    let sans = cert.subject_alt_names().unwrap();
    assert_eq!(
        sans.len(),
        2,
        "dns and email from the command line, none from the CSR"
    );
    assert_eq!(
        sans.iter().find_map(|g| g.dnsname()),
        Some("dev-1.example.com")
    );

    let crl_file = ca.join("issuing.crl");
    let crl_before = std::fs::read(&crl_file).unwrap();
    let list = ok(&run(&["list", "--config", cfg], &[]));
    assert!(
        list.contains(&serial) && list.contains("good") && list.contains("cli-1"),
        "{list}"
    );
    // A read command changes nothing: no new CRL (number or file) under a running server.
    ok(&run(&["list", "--config", cfg], &[]));
    assert_eq!(
        std::fs::read(&crl_file).unwrap(),
        crl_before,
        "list published a CRL"
    );

    let text = ok(&run(
        &[
            "revoke",
            "--config",
            cfg,
            "--serial",
            &serial,
            "--reason",
            "keyCompromise",
        ],
        &[],
    ));
    assert!(text.contains("\"already_revoked\": false"), "{text}");
    // The records, read offline: issuance and revocation with their request id and reason;
    // a read publishes nothing, and a bad time is refused with the reason.
    let crl_before = std::fs::read(&crl_file).unwrap();
    let records = ok(&run(
        &["records", "--config", cfg, "--request-id", "cli-1"],
        &[],
    ));
    let lines: Vec<_> = records.lines().filter(|l| l.contains(&serial)).collect();
    assert_eq!(lines.len(), 2, "{records}");
    assert!(
        lines[0].contains("issued") && lines[0].contains(&serial) && lines[0].contains("cli-1"),
        "{records}"
    );
    assert!(
        lines[1].contains("revoked") && lines[1].contains("reason=keyCompromise"),
        "{records}"
    );
    let out = run(
        &["records", "--config", cfg, "--serial", &serial, "--json"],
        &[],
    );
    ok(&out);
    let list: ca_api::wire::RecordList = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.records.len(), 2);
    assert_eq!(
        std::fs::read(&crl_file).unwrap(),
        crl_before,
        "records wrote a CRL"
    );
    let out = run(&["records", "--config", cfg, "--since", "yesterday"], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("since is not an RFC 3339 time"),
        "{out:?}"
    );

    let crl_out = dir.path().join("out.crl");
    let text = ok(&run(
        &["crl", "--config", cfg, "--out", crl_out.to_str().unwrap()],
        &[],
    ));
    assert!(text.contains("with 1 entries"), "{text}");
    let crl = openssl::x509::X509Crl::from_der(&std::fs::read(&crl_out).unwrap()).unwrap();
    assert_eq!(crl.get_revoked().unwrap().len(), 1);
    // The configured CRL file is kept up to date too.
    assert!(ca.join("issuing.crl").exists());

    let text = ok(&run(&["audit", "--config", cfg], &[]));
    assert!(
        text.contains("1 certificates, 1 revoked or held") && text.contains("audit OK"),
        "{text}"
    );

    // A wrong passphrase fails cleanly, without echoing it.
    std::fs::write(dir.path().join("pass.txt"), "wrong\n").unwrap();
    let out = run(&["list", "--config", cfg], &[]);
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && text.contains("passphrase") && !text.contains("wrong\n"),
        "{text}"
    );

    let out = ok(&run(&["completion", "bash"], &[]));
    assert!(
        out.contains("ca-mock") && out.contains("complete"),
        "completion script"
    );
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"tok\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ca_mock::auth::hash_token("tok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_with_tokens_from_the_generated_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port().unwrap();
    init_ca(dir.path(), port);
    let ca = dir.path().join("ca");
    // The policy module's public key, where the sample's [grants] public_keys names it.
    std::fs::write(
        ca.join("grant-signing.pub.pem"),
        grant_key().public_pem().unwrap(),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            ca.join("ca-mock.toml").to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut healthy = false;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = async {
        assert!(healthy, "server did not come up");
        let token = std::fs::read_to_string(ca.join("secrets/ca-ndes.token")).unwrap();
        let client = ca_api::client::CaClient::new(&base, Some(token.trim().into())).unwrap();
        let req = granted_request(
            "serve-1",
            "IPSECIntermediateOffline",
            &csr(&ec_key(), "x", false),
            "dev-1",
        );
        let out = client.issue(&req).await.unwrap();
        assert!(out.created);
        let policy = std::fs::read_to_string(ca.join("secrets/ca-policy.token")).unwrap();
        let policy = ca_api::client::CaClient::new(&base, Some(policy.trim().into())).unwrap();
        assert!(
            policy.issue(&req).await.is_err(),
            "the policy identity may not issue"
        );
        let crl = client.crl().await.unwrap();
        assert!(openssl::x509::X509Crl::from_der(&crl).is_ok());
        out.response.serial
    }
    .await;
    // SIGKILL: no graceful shutdown. What was acknowledged must still be in the store.
    child.kill().unwrap();
    let _ = child.wait();
    let list = ok(&run(
        &[
            "list",
            "--config",
            ca.join("ca-mock.toml").to_str().unwrap(),
        ],
        &[],
    ));
    assert!(list.contains(&result) && list.contains("serve-1"), "{list}");
}

/// Issue 17: `completion bash | head -1` never panics, and `--log-format json|text` logs
/// JSON objects or plain text (no ANSI codes when stderr is not a terminal).
#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = Path::new(env!("CARGO_BIN_EXE_ca-mock"));
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "ca-mock");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}
