//! A SCEP client nobody here wrote, against the whole lab: micromdm `scepclient` (driven by
//! `peers/client-micromdm.sh`) enrolls through ndes-proxy with an mscep_admin-style one-time
//! password from the policy module's `generate_challenge` for the device template. The
//! script accepts the certificate only if it verifies against the chain GetCACert returned;
//! the test checks ca-mock's record (template, subject), the policy module's audit (the
//! password verified then consumed), and that a second run with the same password is refused
//! without a new certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use policy_module::{ChallengeRequest, NdesPolicy};
use scep_lab_tests::*;

const CN: &str = "micromdm-lab-device";

async fn scepclient(url: &str, challenge: &str, out: &Path) -> (bool, String, String) {
    micromdm_scepclient(url, challenge, out, CN).await
}

fn enroll_line(results: &str) -> String {
    results
        .lines()
        .find(|l| l.split('\t').nth(1) == Some("enroll"))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micromdm_scepclient_enrolls_through_the_lab_with_an_admin_password() {
    if testkit::binary("scepclient").is_none() || testkit::binary("openssl").is_none() {
        return;
    }
    let lab = TestLab::start().await.unwrap();
    let issued = lab
        .policy()
        .generate_challenge(ChallengeRequest {
            template: TEMPLATE.into(),
            requester: "lab-admin@scep-lab.test".into(),
        })
        .await
        .unwrap();
    let password = issued.challenge.expose().to_owned();
    let before = lab.ca_records().await.unwrap();

    let first = lab.tmp().join("micromdm-1");
    let (ok, results, text) = scepclient(&lab.scep_url(), &password, &first).await;
    assert!(ok, "scepclient failed:\n{text}");
    assert!(enroll_line(&results).contains("\tPASS"), "{text}");

    // ca-mock recorded exactly one new certificate, under the device template, for the
    // subject scepclient asked for (mscep_admin: the CSR names itself).
    let after = lab.ca_records().await.unwrap();
    assert_eq!(after.len(), before.len() + 1, "{text}");
    let pem = std::fs::read(first.join("enroll/cert.pem")).unwrap();
    let cert = openssl::x509::X509::from_pem(&pem).unwrap();
    let serial = serial_of(&cert).unwrap();
    let record = lab.ca_record(&serial).await.unwrap();
    assert_eq!(record.template, TEMPLATE);
    assert_eq!(record.status, ca_mock::store::CertStatus::Good);
    // scepclient adds its own C/O/OU before the CN; the certificate carries what it asked.
    assert_eq!(
        name_values(cert.subject_name()).last().map(String::as_str),
        Some(CN)
    );
    let events: Vec<String> = lab
        .audit(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.transaction_id.as_deref() == Some(record.request_id.as_str()))
        .map(|e| e.event)
        .collect();
    assert!(
        events.contains(&"challenge_verified".to_owned())
            && events.contains(&"challenge_consumed".to_owned()),
        "{events:?}"
    );

    // The password was single use: a second scepclient run with it gets nothing.
    let second = lab.tmp().join("micromdm-2");
    let (ok, results, text) = scepclient(&lab.scep_url(), &password, &second).await;
    assert!(!ok, "a consumed password enrolled again:\n{text}");
    assert!(enroll_line(&results).contains("\tFAIL"), "{text}");
    assert_eq!(lab.ca_records().await.unwrap().len(), after.len());
    let rejected = lab
        .audit(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "request_rejected")
        .filter_map(|e| e.detail)
        .any(|d| d.starts_with("ChallengeAlreadyUsed"));
    assert!(rejected, "the second run was refused for the used password");

    lab.shutdown().await;
}
