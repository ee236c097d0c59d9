//! `scep-lab audit` as users run it: after `scep-lab demo` (an enrolment and a retirement) it
//! reports no violation and exits 0; with the published CRL torn it names the violation and
//! exits 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

fn scep_lab(args: &[&str]) -> testkit::CmdOutput {
    testkit::cmd::run(
        env!("CARGO_BIN_EXE_scep-lab"),
        args,
        None,
        Duration::from_secs(120),
    )
    .unwrap()
}

#[test]
fn audit_passes_after_the_demo_and_fails_on_a_torn_crl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lab");
    let data = data.to_str().unwrap();
    let demo = scep_lab(&["demo", "--data", data]);
    assert!(demo.success(), "{}", demo.stderr_str());

    let ok = scep_lab(&["audit", "--data", data]);
    assert!(ok.success(), "{}\n{}", ok.stdout_str(), ok.stderr_str());
    assert!(
        ok.stdout_str().contains("reconcile OK"),
        "{}",
        ok.stdout_str()
    );

    let crl = dir.path().join("lab/ca/issuing.crl");
    let bytes = std::fs::read(&crl).unwrap();
    std::fs::write(&crl, &bytes[..bytes.len() - 7]).unwrap();
    let bad = scep_lab(&["audit", "--data", data]);
    assert_eq!(bad.status.code(), Some(1), "{}", bad.stdout_str());
    let out = bad.stdout_str();
    assert!(out.contains("VIOLATION I8"), "{out}");
    assert!(out.contains("reconcile FAILED"), "{out}");
}
