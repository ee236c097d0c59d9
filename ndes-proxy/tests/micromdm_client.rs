//! A SCEP client nobody here wrote: micromdm `scepclient` (Debian package `scep`, driven by
//! `peers/client-micromdm.sh`) enrolls and renews against ndes-proxy on 127.0.0.1, through
//! NDES's path and micromdm's, encrypting to every GetCACert certificate and to the RA alone.
//! The script accepts the certificate only if it verifies against the chain GetCACert returned.
//!
//! With `-ca-fingerprint` (MICROMDM_SELECT=ra) scepclient encrypts to the pinned certificate
//! *and* verifies the CertRep against it alone, so pinning the RA works when one RA
//! certificate both signs and encrypts; with NDES's split signing/encryption pair, pin
//! nothing (encrypt to all) or pin the CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::Server;

async fn run_scepclient(
    server: &Server,
    path: &str,
    select: &str,
    challenge: &str,
) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/client-micromdm.sh");
    let out = tempfile::tempdir().unwrap();
    let url = format!("{}{path}", server.url);
    let run = tokio::process::Command::new("bash")
        .arg(&script)
        .args([
            url.as_str(),
            challenge,
            out.path().to_str().unwrap(),
            "micromdm-device",
        ])
        .env("MICROMDM_SELECT", select)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("scepclient timed out")
        .unwrap();
    let results = std::fs::read_to_string(out.path().join("results.tsv")).unwrap_or_default();
    let log = std::fs::read_to_string(out.path().join("log.txt")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(25).collect();
    let text = format!(
        "{}\n{}\n{results}\nscepclient log (last lines):\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    if output.status.success() {
        (true, results)
    } else {
        (false, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micromdm_scepclient_enrolls_and_renews() {
    if testkit::binary("scepclient").is_none() {
        return;
    }
    let cases = [
        ("/certsrv/mscep/mscep.dll", "all", false),
        ("/scep", "all", false),
        ("/certsrv/mscep/mscep.dll", "ra", true),
        ("/scep", "ra", true),
    ];
    let challenges: Vec<String> = (0..cases.len())
        .map(|i| format!("micromdm-challenge-{i}"))
        .collect();
    let refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
    let split = Server::start(&refs).await;
    let combined =
        Server::start_with_identity(common::combined_ra_identity(), &refs, Default::default())
            .await;
    for (i, (path, select, single_ra)) in cases.iter().enumerate() {
        let server = if *single_ra { &combined } else { &split };
        let (ok, results) = run_scepclient(server, path, select, &challenges[i]).await;
        assert!(
            ok,
            "scepclient against {path} (MICROMDM_SELECT={select}) failed:\n{results}"
        );
        let line = |op: &str| {
            results
                .lines()
                .find(|l| l.split('\t').nth(1) == Some(op))
                .unwrap_or("")
                .to_owned()
        };
        assert!(
            line("enroll").contains("\tPASS"),
            "{path} {select}: {results}"
        );
        assert!(
            line("renew").contains("\tPASS"),
            "renewal {path} {select}: {results}"
        );
    }
    // Each case: one enrollment and one renewal, each a distinct certificate.
    assert_eq!(split.ca.issued.lock().unwrap().len(), 4);
    assert_eq!(combined.ca.issued.lock().unwrap().len(), 4);
}
