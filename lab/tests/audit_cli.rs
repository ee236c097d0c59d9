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

/// docs/decisions.md #12: the demo's lines give times as RFC 3339 ("valid until", "installed
/// at"), never as bare unix seconds.
#[test]
fn demo_prints_rfc3339_times_and_no_unix_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lab");
    let demo = scep_lab(&["demo", "--data", data.to_str().unwrap()]);
    assert!(demo.success(), "{}", demo.stderr_str());
    let out = demo.stdout_str();
    let after = |label: &str| {
        let rest = &out[out
            .find(label)
            .unwrap_or_else(|| panic!("no {label:?}: {out}"))..];
        let word = rest[label.len()..].split_whitespace().next().unwrap();
        word.trim_end_matches([',', '.', ';']).to_owned()
    };
    for label in ["valid until ", "installed at "] {
        let time = after(label);
        assert!(
            time.ends_with('Z') && foundation::time::parse_rfc3339(&time).is_some(),
            "{label}{time}"
        );
    }
    let bytes = out.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if run == 0 {
            i += 1;
            continue;
        }
        let bounded = (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && !bytes.get(i + run).is_some_and(u8::is_ascii_alphanumeric);
        let unix_seconds = bounded && run == 10 && bytes[i] == b'1';
        assert!(!unix_seconds, "unix seconds in the demo's output: {out}");
        i += run;
    }
}
