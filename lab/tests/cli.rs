//! `scep-lab`'s command line as the other binaries' (issue 17): completions that survive a
//! closed pipe, `--log-format json|text`, and a banner on a full disk that is an error with a
//! message, not a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_scep-lab");

#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = Path::new(BIN);
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "scep-lab");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}

#[test]
fn serve_with_stdout_on_a_full_disk_stops_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<String> = (0..3)
        .map(|_| testkit::free_port().unwrap().to_string())
        .collect();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut serve = Command::new(BIN);
    serve
        .arg("serve")
        .arg("--data")
        .arg(dir.path().join("lab"))
        .arg("--ports")
        .args(&ports)
        .env("RUST_LOG", "error");
    // stdout is /dev/full: every write fails with ENOSPC (run_command would pipe it, so spawn).
    let mut child = serve
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scep-lab serve kept running with its banner unwritten");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("writing the banner to stdout") && stderr.contains("No space left"),
        "{stderr}"
    );
}

/// The OpenSSL in `--version` is the one linked in: the vendored 3.6, not the system's 3.0
/// (docs/decisions.md #21), which matters when checking a security fix.
#[test]
fn version_names_the_openssl_linked_in() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(concat!(
            "scep-lab ",
            env!("CARGO_PKG_VERSION"),
            " (OpenSSL 3.6."
        )),
        "{text}"
    );
}
