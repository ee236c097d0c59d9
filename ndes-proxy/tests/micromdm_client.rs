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

use common::Server;

async fn run_scepclient(
    server: &Server,
    path: &str,
    select: &str,
    challenge: &str,
) -> testkit::peers::ScepclientRun {
    let out = tempfile::tempdir().unwrap();
    let url = format!("{}{path}", server.url);
    let env = [("MICROMDM_SELECT", select)];
    testkit::peers::micromdm_scepclient(&url, challenge, out.path(), "micromdm-device", &env).await
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
        let run = run_scepclient(server, path, select, &challenges[i]).await;
        assert!(
            run.success,
            "scepclient against {path} (MICROMDM_SELECT={select}) failed:\n{}",
            run.report
        );
        assert!(
            run.step("enroll").contains("\tPASS"),
            "{path} {select}: {}",
            run.results
        );
        assert!(
            run.step("renew").contains("\tPASS"),
            "renewal {path} {select}: {}",
            run.results
        );
    }
    // Each case: one enrollment and one renewal, each a distinct certificate.
    assert_eq!(split.ca.issued.lock().unwrap().len(), 4);
    assert_eq!(combined.ca.issued.lock().unwrap().len(), 4);
}

/// scepclient (Go) reads a FAILURE whether its eContent is empty (the default) or absent
/// (`absent_reply_content`): it reports the failInfo, not a parse error (issue 16 item 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micromdm_scepclient_reads_a_failure_in_both_forms() {
    if testkit::binary("scepclient").is_none() {
        return;
    }
    use scep::server::NoEnvelopeContent;
    for form in [NoEnvelopeContent::Empty, NoEnvelopeContent::Absent] {
        let settings = ndes_proxy::Settings {
            no_envelope_content: form,
            ..Default::default()
        };
        let server = Server::start_with(&["the-right-one"], settings).await;
        let run = run_scepclient(&server, "/scep", "all", "a-wrong-one").await;
        assert!(
            run.step("enroll").contains("failInfo: badRequest"),
            "{form:?}: {}",
            run.report
        );
        assert!(server.ca.issued.lock().unwrap().is_empty());
    }
}
