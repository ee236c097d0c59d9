//! docs/decisions.md #10 through the whole lab: ndes-proxy's CA token alone issues nothing (what
//! issue 15 item 3 observed: an Enrollment Agent certificate for CN=Administrator, device
//! certificates with UPN and SID SANs), while the pipeline, whose grants the policy module
//! signs, enrolls as before; the reconciler stays clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use openssl::hash::MessageDigest;
use openssl::x509::X509ReqBuilder;
use scep_lab_tests::*;
use serde_json::{Value, json};

fn csr_der(cn: &str) -> Vec<u8> {
    let key = testkit::pki::rsa_key(2048);
    let mut b = X509ReqBuilder::new().unwrap();
    b.set_subject_name(&testkit::pki::name(cn)).unwrap();
    b.set_pubkey(&key).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ndes_token_alone_is_not_a_ca() {
    let lab = TestLab::start().await.unwrap();
    let url = format!("{}/api/v1/certificates", lab.ca_url());
    let token = lab.tokens().ca_ndes.expose().to_owned();
    let attempts = [
        (
            "enrollment agent for Administrator",
            json!({"request_id": "stolen-1", "template": "EnrollmentAgentOffline",
                   "csr": B64.encode(csr_der("Administrator")),
                   "subject": [{"attr": "CN", "value": "Administrator"}]}),
            "forbidden",
        ),
        (
            "device template with UPN and SID SANs",
            json!({"request_id": "stolen-2", "template": TEMPLATE,
                   "csr": B64.encode(csr_der("evil")),
                   "subject": [{"attr": "O", "value": "Attacker"}, {"attr": "CN", "value": "evil"}],
                   "sans": [{"kind": "upn", "value": "admin@corp.test"},
                            {"kind": "uri", "value": "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500"}],
                   "validity_days": 365}),
            "grant_refused",
        ),
        (
            "device template, plain name",
            json!({"request_id": "stolen-3", "template": TEMPLATE,
                   "csr": B64.encode(csr_der("laptop")),
                   "subject": [{"attr": "CN", "value": "laptop"}], "validity_days": 30}),
            "grant_refused",
        ),
    ];
    let http = reqwest::Client::new();
    for (case, body, code) in attempts {
        let resp = http
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, v["error"].as_str()),
            (403, Some(code)),
            "{case}: {v}"
        );
    }
    assert!(lab.ca_records().await.unwrap().is_empty(), "nothing issued");

    // The pipeline's grants are signed by the policy module: a device still enrolls.
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (_, cert) = lab.enrolled_device("GRANTED-01", PROFILE).await.unwrap();
    let record = lab.ca_record(&cert.serial_hex).await.unwrap();
    assert_eq!(record.template, TEMPLATE);
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
