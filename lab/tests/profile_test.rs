//! `scep-lab profile test` as users run it: each run starts an ephemeral lab, enrols one
//! synthetic device under the profile (and a template of the test's own where one is given)
//! and reports. A clean profile passes; each finding class is produced by a profile or
//! template built to trigger it; the exit status follows `--fail-on`; the JSON parses; the
//! HTML is self-contained and escapes what the device named itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

fn scep_lab(args: &[&str]) -> testkit::CmdOutput {
    testkit::cmd::run(
        env!("CARGO_BIN_EXE_scep-lab"),
        args,
        None,
        Duration::from_secs(120),
    )
    .unwrap()
}

/// Profile settings (the URL and thumbprint are replaced by the ephemeral lab's).
fn profile(template: &str, changes: Value) -> Value {
    let mut p = json!({
        "name": "Device Wi-Fi",
        "certificate_type": "device",
        "subject_name_format": "CN={{DeviceName}},O=scep-lab",
        "subject_alternative_names": [{"kind": "dns", "value": "{{DeviceName}}.devices.scep-lab.test"}],
        "key_usage": ["digitalSignature", "keyEncipherment"],
        "extended_key_usages": ["1.3.6.1.5.5.7.3.2"],
        "key_algorithm": "rsa",
        "key_size": 2048,
        "hash_algorithm": "sha256",
        "validity_days": 365,
        "renewal_threshold_percent": 20,
        "template": template,
        "scep_server_urls": ["http://127.0.0.1:1/certsrv/mscep/mscep.dll"],
        "ca_thumbprint": "00".repeat(32),
    });
    for (k, v) in changes.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

/// A ca-mock template: client authentication only, DNS SANs, one year.
fn template(name: &str, extra: &str) -> String {
    let mut t = format!(
        "name = \"{name}\"\nvalidity_days = 365\nkey_usage = [\"digitalSignature\", \"keyEncipherment\"]\n"
    );
    if !extra.contains("extended_key_usage") {
        t.push_str("extended_key_usage = [\"clientAuth\"]\n");
    }
    t.push_str(extra);
    if !extra.contains("[keys]") {
        t.push_str("\n[keys]\nrsa_min_bits = 2048\nec_curves = [\"P-256\"]\n");
    }
    if !extra.contains("[subject]") {
        t.push_str("\n[subject]\nallowed = [\"CN\", \"O\"]\n");
    }
    if !extra.contains("[sans]") {
        t.push_str("\n[sans]\nallowed = [\"dns\"]\n");
    }
    t
}

struct Run {
    code: Option<i32>,
    stdout: String,
    report: Value,
    html: String,
}

/// Runs `profile test` under `profile` (and `template` text, when given) with `args`.
fn test(dir: &Path, profile: &Value, template: Option<&str>, args: &[&str]) -> Run {
    let file = |name: &str| -> PathBuf { dir.join(name) };
    std::fs::write(file("profile.json"), profile.to_string()).unwrap();
    let (json, html) = (file("report.json"), file("report.html"));
    let _ = std::fs::remove_file(&json);
    let mut all: Vec<String> = vec![
        "profile".into(),
        "test".into(),
        file("profile.json").to_str().unwrap().into(),
        "--json".into(),
        json.to_str().unwrap().into(),
        "--html".into(),
        html.to_str().unwrap().into(),
    ];
    if let Some(t) = template {
        std::fs::write(file("template.toml"), t).unwrap();
        all.push("--template-file".into());
        all.push(file("template.toml").to_str().unwrap().into());
    }
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = scep_lab(&refs);
    let stdout = out.stdout_str();
    let report = match std::fs::read_to_string(&json) {
        Ok(text) => serde_json::from_str(&text).expect("the JSON report parses"),
        Err(_) => panic!("no JSON report\n{stdout}\n{}", out.stderr_str()),
    };
    Run {
        code: out.status.code(),
        stdout,
        report,
        html: std::fs::read_to_string(&html).unwrap(),
    }
}

fn ids(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn has(run: &Run, id: &str, severity: &str) {
    assert!(
        ids(&run.report).contains(&(id.to_owned(), severity.to_owned())),
        "no {severity} {id} in\n{}",
        run.stdout
    );
}

#[test]
fn a_clean_profile_passes_with_its_certificate_chain_and_requirements() {
    let dir = tempfile::tempdir().unwrap();
    let run = test(
        dir.path(),
        &profile("DeviceWifi", json!({})),
        Some(&template("DeviceWifi", "")),
        &["--require", "802.1x", "--fail-on", "medium"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let r = &run.report;
    assert_eq!(r["verdict"], "pass");
    let worst: Vec<_> = ids(r)
        .into_iter()
        .filter(|(_, s)| s == "medium" || s == "high")
        .collect();
    assert!(worst.is_empty(), "{worst:?}");
    let cert = &r["certificate"]["cert"];
    assert_eq!(cert["subject_text"], "CN=PROFTEST-01, O=scep-lab");
    assert_eq!(
        r["rendering"]["sans"],
        json!(["dns:PROFTEST-01.devices.scep-lab.test"])
    );
    assert_eq!(cert["extended_key_usage"], json!(["1.3.6.1.5.5.7.3.2"]));
    assert_eq!(r["certificate"]["chain"].as_array().unwrap().len(), 2);
    assert_eq!(r["certificate"]["chain_verified"], "verified");
    assert_eq!(r["lint"], json!([]), "the CA's lint ran and found nothing");
    assert_eq!(r["requirements"][0]["met"], true);
    assert!(cert["not_after"].as_str().unwrap().ends_with('Z') && cert["not_after_unix"].is_i64());
    assert!(run.stdout.contains("verdict: PASS"), "{}", run.stdout);
}

#[test]
fn the_exit_status_follows_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in template adds serverAuth and IKE intermediate to what the profile asks:
    // a medium difference.
    let p = profile("IPSECIntermediateOffline", json!({}));
    let high = test(dir.path(), &p, None, &[]);
    assert_eq!(
        high.code,
        Some(0),
        "default --fail-on high\n{}",
        high.stdout
    );
    has(&high, "difference.eku_extra", "medium");
    let medium = test(dir.path(), &p, None, &["--fail-on", "medium"]);
    assert_eq!(medium.code, Some(1), "{}", medium.stdout);
    assert_eq!(medium.report["verdict"], "fail");

    let missing = dir.path().join("absent.json");
    let usage = scep_lab(&["profile", "test", missing.to_str().unwrap()]);
    assert_eq!(usage.status.code(), Some(2), "{}", usage.stderr_str());
    assert!(
        usage.stderr_str().contains("needs --lab"),
        "{}",
        usage.stderr_str()
    );
    let bad = scep_lab(&["profile", "test", "x.json", "--fail-on", "severe"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn template_exposures_are_named_ad_cs_style() {
    let dir = tempfile::tempdir().unwrap();
    // ESC1 and ESC3: UPN SANs from the request on an authentication certificate that also
    // makes its holder an enrollment agent; code signing beside it.
    let upn = profile(
        "AgentLogon",
        json!({"subject_alternative_names": [{"kind": "upn", "value": "{{UserPrincipalName}}"}]}),
    );
    let t = template(
        "AgentLogon",
        "extended_key_usage = [\"clientAuth\", \"1.3.6.1.4.1.311.20.2.1\", \"codeSigning\"]\n\
         [sans]\nallowed = [\"dns\", \"upn\"]\n",
    );
    let run = test(dir.path(), &upn, Some(&t), &[]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    has(&run, "esc1", "high");
    has(&run, "esc3", "high");
    has(&run, "template.signing_eku", "high");
    assert!(
        run.stdout.contains("upn:tester@scep-lab.test"),
        "{}",
        run.stdout
    );

    // ESC2 and ESC15: no EKU in the template, and the request's usages honoured.
    let t = template(
        "AnyPurpose",
        "extended_key_usage = []\nusages = \"request_within_template\"\n",
    );
    let run = test(
        dir.path(),
        &profile("AnyPurpose", json!({"extended_key_usages": []})),
        Some(&t),
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    has(&run, "esc2", "high");
    has(&run, "esc15", "high");
    assert!(
        run.stdout.contains("(no extension: any purpose)"),
        "{}",
        run.stdout
    );
}

#[test]
fn differences_strength_and_requirements_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A two-year template that signs with SHA-384, adds nonRepudiation and serverAuth, and
    // drops clientAuth; the profile asks for a two-year RSA 2048 client certificate.
    let t = template(
        "TwoYearServer",
        "validity_days = 730\nhash = \"sha384\"\n\
         key_usage = [\"digitalSignature\", \"keyEncipherment\", \"nonRepudiation\"]\n\
         extended_key_usage = [\"serverAuth\"]\n",
    )
    .replacen("validity_days = 365\n", "", 1)
    .replacen(
        "key_usage = [\"digitalSignature\", \"keyEncipherment\"]\n",
        "",
        1,
    );
    let run = test(
        dir.path(),
        &profile("TwoYearServer", json!({"validity_days": 730})),
        Some(&t),
        &["--require", "802.1x", "--require", "ikev2"],
    );
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    has(&run, "difference.eku_extra", "medium");
    has(&run, "difference.eku_missing", "medium");
    has(&run, "difference.key_usage_extra", "medium");
    has(&run, "difference.hash", "low");
    has(&run, "strength.rsa_long_validity", "medium");
    has(&run, "strength.long_validity", "low");
    has(&run, "template.long_validity", "low");
    has(&run, "require.802.1x", "high");
    has(&run, "require.ikev2", "high");
    assert_eq!(run.report["requirements"][0]["met"], false);
    assert!(
        run.stdout.contains("802.1x   NOT MET: no clientAuth EKU"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_html_page_is_self_contained_and_escapes_a_hostile_subject() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "<script>alert(1)</script><img src=\"https://evil.test/x\">";
    let run = test(
        dir.path(),
        &profile(
            "DeviceWifi",
            json!({"subject_name_format": "CN={{DeviceName}}", "subject_alternative_names": []}),
        ),
        Some(&template("DeviceWifi", "")),
        &["--device-name", hostile],
    );
    assert_eq!(
        run.report["certificate"]["cert"]["subject_text"],
        format!("CN={hostile}"),
        "the hostile name reached the certificate\n{}",
        run.stdout
    );
    let html = &run.html;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "unescaped script");
    assert!(!html.contains("<img"), "unescaped img");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for attr in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "url(http",
    ] {
        assert!(!html.contains(attr), "external asset: {attr}");
    }
    assert!(!html.contains("<link") && !html.contains("@import"));
}

/// The README's Intune file, from the workspace root.
macro_rules! ios {
    () => {
        "policy-module/testdata/intune/ios.json"
    };
}
const IOS: &str = ios!();

#[test]
fn an_intune_export_is_imported_and_tested() {
    // The README's commands, from the workspace root.
    let dir = tempfile::tempdir().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let (json, html) = (
        dir.path().join("report.json"),
        dir.path().join("report.html"),
    );
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scep-lab"));
        cmd.args(args).current_dir(root);
        testkit::cmd::run_command(&mut cmd, None, Duration::from_secs(120)).unwrap()
    };
    let out = run(&[
        "profile",
        "test",
        IOS,
        "--require",
        "802.1x",
        "--require",
        "ikev2",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let stdout = out.stdout_str();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", out.stderr_str());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["profile"]["source"], "Intune ios profile");
    assert!(!r["profile"]["unmodelled"].as_array().unwrap().is_empty());
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("iOS device Wi-Fi")
    );
    let run_ = Run {
        code: out.status.code(),
        stdout,
        report: r,
        html: String::new(),
    };
    has(&run_, "import.unmodelled", "info");
    has(&run_, "difference.eku_extra", "medium");
    assert_eq!(run_.report["requirements"][1]["met"], true);
    let subject = run_.report["certificate"]["cert"]["subject_text"]
        .as_str()
        .unwrap();
    assert!(subject.contains("SERIALNUMBER=PT-0001"), "{subject}");

    let gate = run(&["profile", "test", IOS, "--fail-on", "medium"]);
    assert_eq!(gate.status.code(), Some(1), "{}", gate.stdout_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_profile_in_a_running_lab_is_tested_by_id_and_left_unchanged() {
    // What `profile import` does (the policy API's import route), then `profile test ID --lab`.
    let dir = tempfile::tempdir().unwrap();
    let lab = scep_lab::Lab::start(scep_lab::LabOptions::new(&dir.path().join("lab")))
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../", ios!())).unwrap(),
    )
    .unwrap();
    let imported = reqwest::Client::new()
        .post(format!("{}/api/v1/profiles/import", lab.policy_url()))
        .bearer_auth(lab.tokens().policy_admin.expose())
        .json(&json!({
            "template": scep_lab::DEVICE_TEMPLATES[0],
            "ca_thumbprint": lab.root_fingerprint(),
            "intune": doc,
        }))
        .send()
        .await
        .unwrap();
    assert!(
        imported.status().is_success(),
        "{}",
        imported.text().await.unwrap()
    );
    let json = dir.path().join("report.json");
    let args: Vec<String> = vec![
        "profile".into(),
        "test".into(),
        "ios-device-wi-fi".into(),
        "--lab".into(),
        lab.policy_url(),
        "--ca-url".into(),
        lab.ca_url(),
        "--scep-url".into(),
        lab.scep_url(),
        "--secrets".into(),
        lab.data_dir().join("secrets").to_str().unwrap().into(),
        "--json".into(),
        json.to_str().unwrap().into(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        scep_lab(&refs)
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        out.stdout_str(),
        out.stderr_str()
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["profile"]["source"], "profile ios-device-wi-fi");
    assert_eq!(r["lab"], lab.policy_url());
    assert_eq!(r["certificate"]["chain_verified"], "verified");
    assert_eq!(
        r["lint"],
        json!([]),
        "the running CA's lint, read over its API"
    );
    let device = r["device"]["id"].as_str().unwrap();
    assert!(
        lab.policy().device_view(device).await.is_err(),
        "the test device is deleted afterwards"
    );
    let stored = lab
        .policy()
        .store()
        .get_profile("ios-device-wi-fi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, 1, "the stored profile is not changed");
    lab.shutdown().await;
}
