//! The binary: a plain-mode fleet with `--json` against micromdm `scepserver`, and
//! `completion`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with device-agent's own tests (micromdm `scepserver` on 127.0.0.1).
#[path = "../../device-agent/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::micromdm::Micromdm;

fn fleet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_device-fleet"))
        .args(args)
        .env_remove("DEVICE_AGENT_CHALLENGE")
        .output()
        .unwrap()
}

/// One device at a time: micromdm's `scepserver` loses requests under concurrency (its file
/// depot races; see BENCHMARKS.md), which made this CLI test fail about once in ten runs.
#[test]
fn fleet_prints_a_json_summary() {
    let Some(server) = Micromdm::start("f") else {
        return;
    };
    let out = fleet(&[
        "--devices",
        "4",
        "--concurrency",
        "1",
        "--url",
        &server.url,
        "--challenge",
        "f",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["succeeded"], 4);
    assert_eq!(report["failed"], 0);
    assert!(report["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_url_or_an_mdm_is_required() {
    let out = fleet(&["--devices", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url"));
}

#[test]
fn completion_scripts_are_generated() {
    let out = fleet(&["completion", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("device-fleet") && script.contains("--renew-herd"));
}

/// Issue 17: `completion bash | head -1` never panics, and `--log-format json|text` logs
/// JSON objects or plain text (no ANSI codes when stderr is not a terminal).
#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_device-fleet"));
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "device-fleet");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}
