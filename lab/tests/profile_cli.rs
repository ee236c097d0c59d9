//! `scep-lab profile import` and `export` as users run them, against a lab started here: an
//! Intune profile imported and its unmodelled properties listed, an unknown variable refused
//! by name, the export given back as Graph JSON, a dry run storing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-module/testdata/intune")
        .join(name)
}

async fn scep_lab(args: Vec<String>) -> testkit::CmdOutput {
    tokio::task::spawn_blocking(move || {
        testkit::cmd::run(
            env!("CARGO_BIN_EXE_scep-lab"),
            &args,
            None,
            Duration::from_secs(60),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_import_and_export_against_a_running_lab() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lab");
    let lab = scep_lab::Lab::start(scep_lab::LabOptions::new(&data))
        .await
        .unwrap();
    let api = |mut args: Vec<&str>| {
        let mut v: Vec<String> = args.drain(..).map(str::to_owned).collect();
        v.extend([
            "--data".into(),
            data.to_str().unwrap().to_owned(),
            "--policy-url".into(),
            lab.policy_url(),
        ]);
        v
    };
    let windows = fixture("windows.json");
    let windows = windows.to_str().unwrap();
    let ca_url = lab.ca_url();

    let imported = scep_lab(api(vec!["profile", "import", windows, "--ca-url", &ca_url])).await;
    assert!(imported.success(), "{}", imported.stderr_str());
    let out = imported.stdout_str();
    assert!(
        out.contains("imported profile windows-user-scep v1 from a windows profile"),
        "{out}"
    );
    assert!(out.contains("not modelled"), "{out}");
    assert!(out.contains("  keyStorageProvider: "), "{out}");

    // An unknown variable: refused, named, nothing stored.
    let bad = dir.path().join("bad.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(windows).unwrap()).unwrap();
    doc["subjectNameFormatString"] = "CN={{CostCentre}}".into();
    std::fs::write(&bad, doc.to_string()).unwrap();
    let refused = scep_lab(api(vec![
        "profile",
        "import",
        bad.to_str().unwrap(),
        "--id",
        "bad",
        "--ca-url",
        &ca_url,
    ]))
    .await;
    assert!(!refused.success());
    let err = refused.stderr_str();
    assert!(
        err.contains("subjectNameFormatString") && err.contains("{{CostCentre}}"),
        "{err}"
    );

    let exported_file = dir.path().join("export.json");
    let exported = scep_lab(api(vec![
        "profile",
        "export",
        "windows-user-scep",
        "--platform",
        "windows",
        "--out",
        exported_file.to_str().unwrap(),
    ]))
    .await;
    assert!(exported.success(), "{}", exported.stderr_str());
    assert!(
        exported.stderr_str().contains("template: "),
        "{}",
        exported.stderr_str()
    );
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(&exported_file).unwrap()).unwrap();
    let fixture_doc: Value =
        serde_json::from_str(&std::fs::read_to_string(windows).unwrap()).unwrap();
    for (key, value) in document.as_object().unwrap() {
        assert_eq!(&fixture_doc[key], value, "{key}");
    }

    // The export imports again; a dry run stores nothing.
    let dry = scep_lab(api(vec![
        "profile",
        "import",
        exported_file.to_str().unwrap(),
        "--id",
        "again",
        "--dry-run",
        "--ca-thumbprint",
        &"ab".repeat(32),
    ]))
    .await;
    assert!(dry.success(), "{}", dry.stderr_str());
    assert!(
        dry.stdout_str().contains("dry run: profile again"),
        "{}",
        dry.stdout_str()
    );
    let missing = scep_lab(api(vec!["profile", "export", "again", "--platform", "ios"])).await;
    assert!(!missing.success());
    assert!(
        missing.stderr_str().contains("HTTP 404"),
        "{}",
        missing.stderr_str()
    );

    // A platform outside the schema's types is refused by the command line itself.
    let palm = scep_lab(api(vec!["profile", "export", "x", "--platform", "palm"])).await;
    assert!(!palm.success());
    lab.shutdown().await;
}
