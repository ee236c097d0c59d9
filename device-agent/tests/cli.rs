//! The binary: `enroll`, `status --json`, `renew --force`, `export` and `completion` against
//! micromdm `scepserver`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::micromdm::Micromdm;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_device-agent"))
        .args(args)
        .env_remove("DEVICE_AGENT_CHALLENGE")
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn enroll_status_renew_export_through_the_cli() {
    let Some(server) = Micromdm::start("cli-secret") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dev");
    let state = state.to_str().unwrap();
    let secret_file = tmp.path().join("challenge");
    std::fs::write(&secret_file, "cli-secret\n").unwrap();
    let secret = secret_file.to_str().unwrap();

    let enrolled = ok(&agent(&[
        "enroll",
        "--state",
        state,
        "--url",
        &server.url,
        "--cn",
        "cli-device",
        "--challenge-file",
        secret,
    ]));
    assert_eq!(enrolled["subject"], "CN=cli-device");

    let status = ok(&agent(&["status", "--state", state, "--json"]));
    assert_eq!(
        status["slots"][0]["certificate"]["serial_hex"],
        enrolled["serial_hex"]
    );
    assert!(status["slots"][0]["pending_transaction"].is_null());

    let renewed = ok(&agent(&[
        "renew",
        "--state",
        state,
        "--force",
        "--challenge-file",
        secret,
    ]));
    assert_eq!(renewed["outcome"], "renewed");
    assert_ne!(renewed["certificate"]["serial_hex"], enrolled["serial_hex"]);

    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "p12-pass").unwrap();
    let p12 = tmp.path().join("out/dev.p12");
    let out = agent(&[
        "export",
        "--state",
        state,
        "--out",
        p12.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = testkit::openssl(
        &[
            "pkcs12",
            "-in",
            p12.to_str().unwrap(),
            "-passin",
            "pass:p12-pass",
            "-noout",
            "-info",
        ],
        None,
    )
    .unwrap();
    assert!(info.success(), "{}", info.stderr_str());

    let wrong = agent(&[
        "enroll",
        "--state",
        state,
        "--slot",
        "other",
        "--url",
        &server.url,
        "--cn",
        "x",
        "--challenge",
        "not-the-secret",
    ]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("refused") && !stderr.contains("not-the-secret"),
        "{stderr}"
    );
}

/// `device-agent completion bash | head -1`: the reader goes away before the script is
/// written; the write ends quietly (exit 0), never a panic (exit 101).
#[test]
fn completion_into_a_closed_pipe_does_not_panic() {
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_device-agent"))
            .args(["completion", "bash"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completion_scripts_are_generated() {
    let out = agent(&["completion", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("device-agent"));
}

/// docs/decisions.md #12: `status` prints times a person can read (RFC 3339 and how far off,
/// never bare unix seconds), and `status --json` gives RFC 3339 with the `_unix` twin agreeing.
#[test]
fn status_prints_rfc3339_times_and_no_unix_seconds() {
    use device_agent::{DeviceDir, DeviceKey, KeySpec};
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dev");
    let slot = DeviceDir::open(&state).unwrap().slot("p1").unwrap();
    let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
    let mut name = openssl::x509::X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "times-device").unwrap();
    let now = foundation::clock::unix_now();
    let not_after = now + 30 * 86_400;
    let cert =
        scep::client::self_signed_certificate(key.pkey(), &name.build(), now, not_after).unwrap();
    std::fs::create_dir_all(slot.path()).unwrap();
    std::fs::write(slot.path().join("cert.pem"), cert.to_pem().unwrap()).unwrap();
    let key_file = slot.path().join("key.pem");
    std::fs::write(&key_file, key.pkey().private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = state.to_str().unwrap();

    let text = agent(&["status", "--state", state]);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).unwrap();
    let line = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line in {text}"))
            .trim_start()[label.len()..]
            .trim()
            .to_owned()
    };
    let shown = line("not after");
    let (time, hint) = shown.split_once(' ').unwrap();
    assert_eq!(
        foundation::time::parse_rfc3339(time),
        Some(not_after),
        "{shown}"
    );
    assert!(
        hint.starts_with("(in ") && hint.ends_with(" days)"),
        "{shown}"
    );
    let renew = line("renew at");
    assert!(
        foundation::time::parse_rfc3339(renew.split(' ').next().unwrap()).is_some(),
        "{renew}"
    );
    assert_no_unix_seconds(&text);

    let json = ok(&agent(&["status", "--state", state, "--json"]));
    let c = &json["slots"][0]["certificate"];
    assert_eq!(c["not_after_unix"], not_after);
    assert_eq!(
        foundation::time::parse_rfc3339(c["not_after"].as_str().unwrap()),
        Some(not_after)
    );
    assert_eq!(
        foundation::time::parse_rfc3339(c["not_before"].as_str().unwrap()),
        c["not_before_unix"].as_i64()
    );
    let renewal = &json["slots"][0]["renewal"];
    for name in ["opens_at", "renew_at", "not_after"] {
        assert!(
            foundation::time::parse_rfc3339(renewal[name].as_str().unwrap()).is_some(),
            "{renewal}"
        );
    }
}

/// No run of exactly ten digits starting with 1 (unix seconds from 2001 to 2286).
fn assert_no_unix_seconds(text: &str) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if run == 0 {
            i += 1;
            continue;
        }
        let word_before = i > 0 && bytes[i - 1].is_ascii_alphanumeric();
        let word_after = bytes.get(i + run).is_some_and(u8::is_ascii_alphanumeric);
        let unix_seconds = run == 10 && bytes[i] == b'1' && !word_before && !word_after;
        assert!(!unix_seconds, "unix seconds in: {text}");
        i += run;
    }
}

/// Issue 17: `completion bash | head -1` never panics, and `--log-format json|text` logs
/// JSON objects or plain text (no ANSI codes when stderr is not a terminal).
#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_device-agent"));
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "device-agent");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}
