//! `scep-lab services --ports` and `scep-lab payload --data` as users run them (issue 17 item 3):
//! the ports chosen reach every configuration written, the fingerprint printed is labelled as
//! the root's (what clients pin), and `payload` finds a lab by its data directory and URLs
//! rather than assuming port 8280 and `./scep-lab-data`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

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

/// The root fingerprint a command printed on its labelled line.
fn pinned_root(stdout: &str) -> String {
    let root = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("root CA SHA-256 (pin this): "))
        .unwrap_or_else(|| panic!("no labelled root fingerprint in\n{stdout}"));
    assert_eq!(root.len(), 64, "{root}");
    assert!(root.chars().all(|c| c.is_ascii_hexdigit()), "{root}");
    root.to_owned()
}

#[tokio::test]
async fn services_writes_the_ports_it_is_given_and_labels_the_root_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = scep_lab(args(&[
        "services",
        "--dir",
        run.to_str().unwrap(),
        "--ports",
        "18181",
        "18281",
        "18081",
    ]))
    .await;
    assert!(out.success(), "{}", out.stderr_str());
    pinned_root(&out.stdout_str());
    // Only the root is named: no other certificate's digest beside it.
    assert_eq!(out.stdout_str().matches("SHA-256").count(), 1);

    let read = |f: &str| std::fs::read_to_string(run.join(f)).unwrap();
    let ca = read("ca-mock.toml");
    assert!(ca.contains("listen = \"127.0.0.1:18181\""), "{ca}");
    let policy = read("policy-module-1.toml");
    assert!(policy.contains("listen = \"127.0.0.1:18281\""), "{policy}");
    assert!(
        policy.contains("url = \"https://127.0.0.1:18181\""),
        "{policy}"
    );
    let ndes = read("ndes-proxy-1.toml");
    assert!(ndes.contains("listen = \"127.0.0.1:18081\""), "{ndes}");
    assert!(ndes.contains("url = \"https://127.0.0.1:18281\""), "{ndes}");
    assert!(ndes.contains("url = \"https://127.0.0.1:18181\""), "{ndes}");
    // The printed commands name the chosen policy port (TLS is on by default for services).
    assert!(out.stdout_str().contains("https://127.0.0.1:18281"));

    // A wrong count of ports is a usage error, not a layout on half-chosen ports.
    let two = scep_lab(args(&[
        "services",
        "--dir",
        dir.path().join("two").to_str().unwrap(),
        "--ports",
        "1",
        "2",
    ]))
    .await;
    assert_eq!(two.status.code(), Some(2), "{}", two.stderr_str());
    assert!(!dir.path().join("two").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_finds_the_lab_by_its_data_directory_and_urls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lab");
    let lab = scep_lab::Lab::start(scep_lab::LabOptions::new(&data))
        .await
        .unwrap();
    let payload = |extra: &[&str]| {
        let mut a = args(&[
            "payload",
            "--data",
            data.to_str().unwrap(),
            "--policy-url",
            &lab.policy_url(),
            "--ca-url",
            &lab.ca_url(),
            "--scep-url",
            &lab.scep_url(),
            "--format",
            "json",
        ]);
        a.extend(args(extra));
        scep_lab(a)
    };
    let out = payload(&["--device", "PORTS-01"]).await;
    assert!(out.success(), "{}", out.stderr_str());
    let json: serde_json::Value = serde_json::from_str(&out.stdout_str()).unwrap();
    let text = json.to_string();
    assert!(text.contains(&lab.scep_url()), "{text}");
    assert!(text.contains(lab.root_fingerprint()), "{text}");

    // A directory without the lab's token: a message naming the file, not a guess at ./.
    let elsewhere = dir.path().join("elsewhere");
    let mut a = args(&["payload", "--data", elsewhere.to_str().unwrap()]);
    a.extend(args(&["--policy-url", &lab.policy_url(), "--device", "X"]));
    let missing = scep_lab(a).await;
    assert!(!missing.success());
    let err = missing.stderr_str();
    assert!(err.contains("secrets/policy-admin.token"), "{err}");
    assert!(!err.contains(lab.tokens().policy_admin.expose()), "{err}");
    lab.shutdown().await;
}

/// `scep-lab serve`'s banner names one fingerprint, the root's, labelled as what clients pin.
#[test]
fn the_serve_banner_labels_its_one_fingerprint_as_the_root_to_pin() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<String> = (0..4)
        .map(|_| testkit::free_port().unwrap().to_string())
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scep-lab"))
        .arg("serve")
        .arg("--data")
        .arg(dir.path().join("lab"))
        .arg("--ports")
        .args(&ports[..3])
        .arg("--console-port")
        .arg(&ports[3])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("serving;");
            banner.push_str(&line);
            banner.push('\n');
            if done {
                break;
            }
        }
        let _ = tx.send(banner);
    });
    // A hang guard, not a timing assertion.
    let banner = rx.recv_timeout(Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let banner = banner.unwrap();
    assert!(banner.contains("serving; Ctrl-C stops"), "{banner}");
    pinned_root(&banner);
    assert_eq!(banner.matches("SHA-256").count(), 1, "{banner}");
}
