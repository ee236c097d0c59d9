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
    let stolen: Vec<_> = lab
        .ca_records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.request_id.starts_with("stolen-"))
        .collect();
    assert!(stolen.is_empty(), "issued: {stolen:?}");

    // The pipeline's grants are signed by the policy module: a device still enrolls.
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (_, cert) = lab.enrolled_device("GRANTED-01", PROFILE).await.unwrap();
    let record = lab.ca_record(&cert.serial_hex).await.unwrap();
    assert_eq!(record.template, TEMPLATE);
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

/// The reconciler's I9: a certificate the CA issued under a valid signature but for a request
/// the policy module never granted (what a stolen grant key together with an NDES token could
/// do) is reported; the pipeline's own issuances are recorded under their grant and pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_reports_an_issuance_the_policy_never_granted() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (_, cert) = lab.enrolled_device("GRANTED-02", PROFILE).await.unwrap();
    let record = lab
        .ca()
        .record(&foundation::Serial::from_hex(&cert.serial_hex).unwrap())
        .await
        .unwrap();
    assert!(
        record.cert.issued_under.starts_with("grant "),
        "{}",
        record.cert.issued_under
    );
    lab.assert_reconciled().await.unwrap();

    let key = ca_api::GrantKey::load(&lab.data_dir().join("secrets/grant-signing.key")).unwrap();
    let csr = csr_der("rogue");
    let spki = openssl::x509::X509Req::from_der(&csr)
        .unwrap()
        .public_key()
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let now = foundation::clock::unix_now();
    let subject = vec![foundation::names::NameAttr {
        attr: foundation::names::SubjectAttr::CN,
        value: "rogue".into(),
    }];
    let grant = key
        .sign(ca_api::GrantStatement {
            v: 0,
            key_id: String::new(),
            request_id: "never-granted".into(),
            spki_sha256: hex::encode(openssl::sha::sha256(&spki)),
            template: TEMPLATE.into(),
            subject: subject.clone(),
            sans: Vec::new(),
            key_usage: Vec::new(),
            extended_key_usages: Vec::new(),
            validity_days: 30,
            issued_at: now,
            expires_at: now + 60,
        })
        .unwrap();
    let body = ca_api::wire::IssueRequest {
        request_id: "never-granted".into(),
        template: TEMPLATE.into(),
        csr: B64.encode(&csr),
        subject,
        validity_days: Some(30),
        grant: Some(grant),
        ..Default::default()
    };
    let client = ca_api::CaClient::new(
        &lab.ca_url(),
        Some(lab.tokens().ca_ndes.expose().to_owned()),
    )
    .unwrap();
    let issued = client.issue(&body).await.unwrap().response;
    let report = lab.reconcile().await.unwrap();
    let i9: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.invariant == scep_lab::reconcile::Invariant::I9)
        .collect();
    assert_eq!(i9.len(), 1, "{report:?}");
    assert_eq!(i9[0].subject, issued.serial);
    assert!(i9[0].detail.contains("never granted"), "{}", i9[0].detail);
    lab.shutdown().await;
}
