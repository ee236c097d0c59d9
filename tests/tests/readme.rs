//! Every command in the README's `sh` blocks is exercised: run here when cheap (`--help`,
//! `scep-lab services`), or named in `.ci/run`, or run by a named test (checked to exist). A
//! command added to the README without an entry in [`COVERAGE`] fails this test, and so does an
//! entry whose command left the README. The README's Rust example is the body of
//! `lab/examples/in_your_tests.rs`, which is run here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use scep_lab_tests::processes::binaries;

/// How a README command is exercised.
enum Check {
    /// `.ci/run` runs this line (modulo `--locked`).
    Ci(&'static str),
    /// This test runs it (binary paths mapped to the build under test).
    Here,
    /// A test runs the same thing: the file and the test function.
    Test(&'static str, &'static str),
}

const COVERAGE: &[(&str, Check)] = &[
    (
        "cargo run -q -p scep-console -- sample-config > console.toml",
        Check::Test(
            "console/tests/cli.rs",
            "sample_config_hash_password_and_serve_as_the_readme_shows",
        ),
    ),
    (
        "echo 'a long password' | cargo run -q -p scep-console -- hash-password",
        Check::Test(
            "console/tests/cli.rs",
            "sample_config_hash_password_and_serve_as_the_readme_shows",
        ),
    ),
    (
        "cargo run -q -p scep-console -- serve --config console.toml",
        Check::Test(
            "console/tests/cli.rs",
            "sample_config_hash_password_and_serve_as_the_readme_shows",
        ),
    ),
    ("./lab.sh", Check::Ci("./lab.sh")),
    ("./test.sh", Check::Ci("./test.sh")),
    (
        "./lab.sh demo --data scep-lab-data",
        Check::Test(
            "lab/tests/trace_cli.rs",
            "the_demo_prints_a_trace_command_that_works_against_the_served_lab",
        ),
    ),
    (
        "./lab.sh trace <transactionID> --data scep-lab-data",
        Check::Test(
            "lab/tests/trace_cli.rs",
            "the_demo_prints_a_trace_command_that_works_against_the_served_lab",
        ),
    ),
    (
        "./lab.sh trace --device <deviceID> --data scep-lab-data",
        Check::Test(
            "lab/tests/trace_cli.rs",
            "the_demo_prints_a_trace_command_that_works_against_the_served_lab",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- sample-config > lab.toml",
        Check::Test(
            "lab/tests/serve_config.rs",
            "the_sample_config_is_printed_and_serves_with_flags_over_it",
        ),
    ),
    (
        "./lab.sh serve --config lab.toml",
        Check::Test(
            "lab/tests/serve_config.rs",
            "the_sample_config_is_printed_and_serves_with_flags_over_it",
        ),
    ),
    (
        "./lab.sh serve --tls --data scep-lab-data",
        Check::Test(
            "lab/tests/tls_cli.rs",
            "serve_tls_prints_https_urls_and_the_root_curl_pins",
        ),
    ),
    (
        "./lab.sh serve --postgres --data scep-lab-pg",
        Check::Test(
            "lab/tests/serve_config.rs",
            "throwaway_postgres_script_serves_the_lab_and_is_removed_on_ctrl_c",
        ),
    ),
    (
        "./lab.sh serve --data scep-lab-data",
        Check::Test(
            "tests/tests/serve_mode.rs",
            "serve_prints_its_urls_hands_out_challenges_and_payloads_and_stops_on_ctrl_c",
        ),
    ),
    (
        "curl -H \"Authorization: Bearer $(cat scep-lab-data/secrets/mscep-admin.token)\" \"http://127.0.0.1:8080/certsrv/mscep_admin/?format=json\"",
        Check::Test(
            "tests/tests/serve_mode.rs",
            "serve_prints_its_urls_hands_out_challenges_and_payloads_and_stops_on_ctrl_c",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- payload --device LAB-PHONE-01 --format mobileconfig --out LAB-PHONE-01.mobileconfig",
        Check::Test(
            "tests/tests/serve_mode.rs",
            "serve_prints_its_urls_hands_out_challenges_and_payloads_and_stops_on_ctrl_c",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- profile import policy-module/testdata/intune/windows.json",
        Check::Test(
            "lab/tests/profile_cli.rs",
            "profile_import_and_export_against_a_running_lab",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- profile export windows-user-scep --platform windows --out windows-user-scep.json",
        Check::Test(
            "lab/tests/profile_cli.rs",
            "profile_import_and_export_against_a_running_lab",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- profile import policy-module/testdata/intune/ios.json",
        Check::Test(
            "lab/tests/profile_test.rs",
            "an_imported_profile_in_a_running_lab_is_tested_by_id_and_left_unchanged",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- profile test ios-device-wi-fi --lab http://127.0.0.1:8280",
        Check::Test(
            "lab/tests/profile_test.rs",
            "an_imported_profile_in_a_running_lab_is_tested_by_id_and_left_unchanged",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- profile test policy-module/testdata/intune/ios.json --require 802.1x --require ikev2 --json report.json --html report.html",
        Check::Test(
            "lab/tests/profile_test.rs",
            "an_intune_export_is_imported_and_tested",
        ),
    ),
    (
        "cargo run -q -p scep-lab -- profile test policy-module/testdata/intune/ios.json --fail-on medium",
        Check::Test(
            "lab/tests/profile_test.rs",
            "an_intune_export_is_imported_and_tested",
        ),
    ),
    (
        "cargo build --release -p ca-mock -p policy-module -p ndes-proxy -p scep-lab",
        Check::Ci("cargo build --release -p ca-mock -p policy-module -p ndes-proxy -p scep-lab"),
    ),
    ("target/release/scep-lab services --dir run", Check::Here),
    (
        "target/release/ca-mock serve --config run/ca-mock.toml",
        Check::Test("tests/tests/deployments.rs", "separate_processes"),
    ),
    (
        "target/release/policy-module serve --config run/policy-module-1.toml",
        Check::Test("tests/tests/deployments.rs", "separate_processes"),
    ),
    (
        "target/release/ndes-proxy serve --config run/ndes-proxy-1.toml",
        Check::Test("tests/tests/deployments.rs", "separate_processes"),
    ),
    (
        "POLICY_ADMIN_TOKEN=$(cat run/secrets/policy-admin.token) target/release/policy-module admin --server https://127.0.0.1:8280 --ca-file run/tls/root.pem set-name-policy IPSECIntermediateOffline run/name-policy.json",
        Check::Test("tests/tests/deployments.rs", "separate_processes"),
    ),
    (
        "target/release/scep-lab services --dir run --postgres-url-file pg.url --instances 2",
        Check::Test(
            "tests/tests/deployments.rs",
            "two_ndes_and_two_policy_on_postgres",
        ),
    ),
    (
        "target/release/policy-module serve --config run/policy-module-2.toml",
        Check::Test(
            "tests/tests/deployments.rs",
            "two_ndes_and_two_policy_on_postgres",
        ),
    ),
    (
        "target/release/ndes-proxy serve --config run/ndes-proxy-2.toml",
        Check::Test(
            "tests/tests/deployments.rs",
            "two_ndes_and_two_policy_on_postgres",
        ),
    ),
    ("target/release/ca-mock --help", Check::Here),
    ("target/release/policy-module serve --help", Check::Here),
    ("target/release/ndes-proxy serve --help", Check::Here),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The commands of every ```sh block: one a line, `#` comments and blank lines dropped.
fn sh_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            in_sh = !in_sh && lang.trim() == "sh";
            continue;
        }
        if in_sh {
            let command = match line.find("  #") {
                Some(i) => &line[..i],
                None => line,
            };
            let command = command.trim();
            if !command.is_empty() && !command.starts_with('#') {
                out.push(command.to_owned());
            }
        }
    }
    out
}

/// The lines of the README's ```rust block.
fn rust_block(readme: &str) -> Vec<String> {
    let start = readme.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].lines().map(str::to_owned).collect()
}

/// Runs a README command line (no quoting in these) in `cwd`, with `target/release/X` mapped
/// to the binary under test; its stdout.
fn run_here(command: &str, cwd: &Path) -> String {
    let bins = binaries().unwrap();
    let mut words = command.split_whitespace();
    let program = match words.next().unwrap() {
        "target/release/scep-lab" => &bins.scep_lab,
        "target/release/ca-mock" => &bins.ca_mock,
        "target/release/policy-module" => &bins.policy_module,
        "target/release/ndes-proxy" => &bins.ndes_proxy,
        other => panic!("no binary for {other}"),
    };
    let out = Command::new(program)
        .args(words)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_readme_command_is_exercised() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let commands = sh_commands(&readme);
    assert!(commands.len() >= COVERAGE.len(), "{commands:#?}");
    for command in &commands {
        assert!(
            COVERAGE.iter().any(|(c, _)| c == command),
            "README command not exercised by any test or .ci/run; add it to COVERAGE: {command}"
        );
    }
    let cwd = tempfile::tempdir().unwrap();
    for (command, check) in COVERAGE {
        assert!(
            commands.iter().any(|c| c == command),
            "COVERAGE names a command the README no longer has: {command}"
        );
        match check {
            Check::Ci(line) => assert!(
                ci.lines()
                    .any(|l| l.replace(" --locked", "").trim() == *line),
                ".ci/run does not run {line:?}"
            ),
            Check::Test(file, test) => {
                let text = std::fs::read_to_string(root().join(file)).unwrap();
                assert!(
                    text.contains(&format!("fn {test}(")),
                    "{file} has no test {test}"
                );
            }
            Check::Here => {
                let stdout = run_here(command, cwd.path());
                if command.ends_with("--help") {
                    assert!(stdout.contains("Usage:"), "{command}:\n{stdout}");
                    if command.contains(" serve ") {
                        assert!(stdout.contains("--config"), "{command}:\n{stdout}");
                    }
                }
                if command.contains("services --dir run") {
                    // It prints exactly the service commands the README gives next (the
                    // console's own `cargo run ... serve --config` is a separate section).
                    for serve in commands.iter().filter(|c| {
                        // (the second instances are the `--instances 2` shape's)
                        c.starts_with("target/release/")
                            && c.contains(" serve --config ")
                            && !c.ends_with("-2.toml")
                    }) {
                        let printed = serve.trim_start_matches("target/release/");
                        assert!(stdout.contains(printed), "{printed:?} not in:\n{stdout}");
                    }
                    for file in ["ca-mock.toml", "policy-module-1.toml", "ndes-proxy-1.toml"] {
                        assert!(cwd.path().join("run").join(file).is_file(), "{file}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_readme_rust_example_is_the_example_that_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = std::fs::read_to_string(root().join("lab/examples/in_your_tests.rs")).unwrap();
    let begin = example.find("// README begin\n").unwrap() + "// README begin\n".len();
    let end = example.find("    // README end").unwrap();
    let quoted: Vec<String> = example[begin..end].lines().map(str::to_owned).collect();
    assert_eq!(
        rust_block(&readme),
        quoted,
        "the README quotes the example verbatim"
    );
    let bins = binaries().unwrap();
    let out = Command::new(&bins.lab_example).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SCEP at http://127.0.0.1:"), "{stdout}");
}
