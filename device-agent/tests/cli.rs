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

/// Issue 17: `completion bash | head -1` never panics, and `--log-format json|text` logs
/// JSON objects or plain text (no ANSI codes when stderr is not a terminal).
#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_device-agent"));
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "device-agent");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}
