//! The command runner, the openssl oracle and the skip-or-fail helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use testkit::cmd::{self, CmdError};

#[test]
fn openssl_runs_with_stdin_and_reports_failure_as_output() {
    let out = testkit::openssl(&["base64", "-A"], Some(b"scep-lab")).unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_str(), "c2NlcC1sYWI=");

    let out = testkit::openssl(
        &["x509", "-noout", "-inform", "DER"],
        Some(b"not a certificate"),
    )
    .unwrap();
    assert!(!out.success());
    assert!(!out.stderr.is_empty());
}

#[test]
fn large_output_does_not_deadlock() {
    // 1 MiB through stdin and back out: more than any pipe buffer.
    let input = vec![b'x'; 1 << 20];
    let out = cmd::run("cat", &[] as &[&str], Some(&input), Duration::from_secs(20)).unwrap();
    assert_eq!(out.stdout.len(), input.len());
}

#[test]
fn a_stuck_program_is_killed_at_the_deadline() {
    let start = Instant::now();
    let err = cmd::run("sleep", &["30"], None, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, CmdError::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_program_is_an_error_not_a_panic() {
    let err = cmd::run(
        "testkit-no-such-program",
        &["x"],
        None,
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(matches!(err, CmdError::Spawn { .. }), "{err}");
}

#[test]
fn binary_finds_programs_and_skips_or_fails_on_missing_ones() {
    assert!(testkit::binary("sh").is_some_and(|p| p.is_absolute()));
    let missing = std::panic::catch_unwind(|| testkit::binary("testkit-no-such-program"));
    if testkit::ci() {
        assert!(
            missing.is_err(),
            "under CI=true a missing binary must panic"
        );
    } else {
        assert_eq!(missing.ok(), Some(None));
    }
}
