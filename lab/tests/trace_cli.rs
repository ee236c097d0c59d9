//! `scep-lab trace` as users run it: `scep-lab demo --data DIR` ends with the exact trace
//! command for its enrollment; with the lab serving DIR again that command prints the timeline
//! across the three services (`--json`: the policy module's answer as is), `--device` the
//! device's history; an unknown transactionID, a wrong admin token and a stopped lab each end
//! with a clear message and a non-zero exit, never the token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use policy_api::trace::{Source, TransactionTrace};

async fn scep_lab(args: Vec<String>) -> testkit::CmdOutput {
    tokio::task::spawn_blocking(move || {
        testkit::cmd::run(
            env!("CARGO_BIN_EXE_scep-lab"),
            &args,
            None,
            Duration::from_secs(120),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_trace_command_that_works_against_the_served_lab() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lab");
    let data_s = data.to_str().unwrap().to_owned();
    let demo = scep_lab(args(&["demo", "--data", &data_s])).await;
    assert!(demo.success(), "{}", demo.stderr_str());
    // The demo's last line: `scep-lab trace <txid> --data <dir>   (while ... runs)`.
    let out = demo.stdout_str();
    let last = out.lines().last().unwrap();
    let words: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(words[..2], ["scep-lab", "trace"], "{out}");
    assert_eq!(words[3..5], ["--data", data_s.as_str()], "{out}");
    let tx = words[2].to_owned();

    // The lab serves the demo's data again (new tokens, same stores).
    let lab = scep_lab::Lab::start(scep_lab::LabOptions::new(&data))
        .await
        .unwrap();
    let policy = lab.policy_url();
    let token = lab.tokens().policy_admin.expose().to_owned();
    let trace = |extra: &[&str]| {
        let mut a = args(&["trace", "--data", &data_s, "--policy-url", &policy]);
        a.extend(args(extra));
        scep_lab(a)
    };

    let text = trace(&[&tx]).await;
    assert!(text.success(), "{}", text.stderr_str());
    let stdout = text.stdout_str();
    assert!(
        stdout.starts_with(&format!("transaction {tx}: device ")),
        "{stdout}"
    );
    for (source, event) in [
        ("policy-module", "challenge_issued"),
        ("ndes-proxy", "request_received"),
        ("policy-module", "request_granted"),
        ("ca-mock", "issued"),
        ("policy-module", "revocation_queued"),
        ("ca-mock", "revoked"),
    ] {
        assert!(
            stdout.lines().any(|l| {
                let w: Vec<_> = l.split_whitespace().collect();
                w.get(1) == Some(&source) && w.get(2) == Some(&event)
            }),
            "no {source} {event} in\n{stdout}"
        );
    }
    assert!(
        stdout.contains("outcome: issued, certificate serial ")
            && stdout.contains("; later revoked (cessationOfOperation)"),
        "{stdout}"
    );

    // --json is the policy module's answer, as is.
    let json = trace(&[&tx, "--json"]).await;
    assert!(json.success(), "{}", json.stderr_str());
    let parsed: TransactionTrace = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed.transaction_id, tx);
    assert!(parsed.events.iter().any(|e| e.source == Source::CaMock));
    assert!(parsed.unavailable.is_empty());

    // The device's history, newest first.
    let device = parsed
        .events
        .iter()
        .find_map(|e| e.device_id.clone())
        .unwrap();
    let history = trace(&["--device", &device]).await;
    assert!(history.success(), "{}", history.stderr_str());
    let h = history.stdout_str();
    assert!(
        h.starts_with(&format!("device {device}: ")) && h.contains("newest first"),
        "{h}"
    );
    assert!(h.contains(&format!("tx {tx}")), "{h}");

    // Unknown transaction, unknown device: a clear message, exit 1.
    let unknown = trace(&["NOT-A-TRANSACTION"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        unknown
            .stderr_str()
            .contains("no transaction \"NOT-A-TRANSACTION\" is known to the policy module"),
        "{}",
        unknown.stderr_str()
    );
    let nobody = trace(&["--device", "no-such-device"]).await;
    assert_eq!(nobody.status.code(), Some(1));
    assert!(nobody.stderr_str().contains("no device \"no-such-device\""));

    // A wrong token is named as such.
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let refused = trace(&[&tx, "--admin-token-file", wrong.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        refused.stderr_str().contains("refused the admin token"),
        "{}",
        refused.stderr_str()
    );

    // The lab stopped: the policy module cannot be reached, and the message says so.
    lab.shutdown().await;
    let down = trace(&[&tx]).await;
    assert_eq!(down.status.code(), Some(1));
    assert!(
        down.stderr_str()
            .contains("cannot reach the policy module at")
            && down.stderr_str().contains("is the lab running"),
        "{}",
        down.stderr_str()
    );
    for o in [&text, &json, &history, &unknown, &refused, &down] {
        assert!(!o.stdout_str().contains(&token) && !o.stderr_str().contains(&token));
    }
}
