//! Pending approval and polling (issue 6 "poll after pending", issue 7 "pending approval"):
//! an ndes-proxy whose device template needs manual approval, in front of the lab's policy
//! module and ca-mock. The device's PKCSReq is answered PENDING, device-agent polls
//! (CertPoll) up to the profile's retry count and keeps its transaction; nothing is issued
//! until the admin approves through the approval API; the device's next run resumes the same
//! transaction, gets the certificate, and the policy module records it as for any enrollment.
//!
//! The `Lab` harness does not expose ndes-proxy's settings, so this second ndes-proxy is
//! composed here from the lab's RA certificates and keys, policy module and CA URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ndes_proxy::ra::{KeyPair, RaIdentity};
use openssl::pkey::PKey;
use openssl::x509::X509;
use policy_module::model::CertStatus;
use scep::{MessageType, RequestBody};
use scep_lab_tests::*;

const ADMIN: &str = "approval-admin-token-for-this-test";

fn pair(lab: &TestLab, name: &str) -> KeyPair {
    let dir = lab.data_dir().join("ndes");
    KeyPair {
        cert: X509::from_pem(&std::fs::read(dir.join(format!("{name}.crt.pem"))).unwrap()).unwrap(),
        key: PKey::private_key_from_pem(
            &std::fs::read(dir.join(format!("{name}.key.pem"))).unwrap(),
        )
        .unwrap(),
    }
}

/// An approving ndes-proxy on a free loopback port; its SCEP URL and a stop handle.
async fn approving_ndes(lab: &TestLab) -> (String, String, tokio::sync::oneshot::Sender<()>) {
    let m = lab.ca().material();
    let ra = RaIdentity::new(
        pair(lab, "ra-signing"),
        pair(lab, "ra-encryption"),
        vec![m.issuing.clone(), m.root.clone()],
    )
    .unwrap();
    let ca = ca_api::client::CaClient::new(
        &lab.ca_url(),
        Some(lab.tokens().ca_ndes.expose().to_owned()),
    )
    .unwrap();
    let mut settings = ndes_proxy::Settings::default();
    settings.approval_templates.insert(TEMPLATE.to_owned());
    let state = ndes_proxy::AppState::builder(
        ra,
        Arc::new(lab.policy().clone()),
        Arc::new(ca_api::HttpCa::new(ca)),
        settings,
        Arc::new(foundation::SystemClock),
    )
    .admin_token(ndes_proxy::auth::BearerToken::new(ADMIN).unwrap())
    .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ndes_proxy::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (format!("{base}/certsrv/mscep/mscep.dll"), base, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_until_approved_then_the_device_polls_its_certificate() {
    let lab = TestLab::start().await.unwrap();
    let (scep_url, base, stop) = approving_ndes(&lab).await;
    lab.profile(PROFILE, |s| {
        s.scep_server_urls = vec![scep_url.clone()];
        s.retry_count = 2;
        s.retry_delay_minutes = 0;
    })
    .await
    .unwrap();
    let d = lab.targeted_device("PENDING-01", PROFILE).await.unwrap();
    let before = lab.ca_records().await.unwrap().len();

    // First run: PENDING, two CertPolls, still pending; the transaction is kept.
    let summary = d.sync().await.unwrap();
    assert!(summary.installed.is_empty(), "{summary:?}");
    assert_eq!(summary.errors.len(), 1);
    assert!(
        summary.errors[0].message.contains("pending"),
        "{:?}",
        summary.errors
    );
    let slot = d.dir.slot(PROFILE).unwrap();
    assert!(slot.path().join("transaction.json").exists());
    assert!(d.installed(PROFILE).unwrap().is_none());
    let (ra_cert, ra_key) = lab.ra_decryption().await.unwrap();
    let types: Vec<MessageType> = pki_operations(&d.traffic.requests())
        .iter()
        .map(|b| open_request(b, &ra_cert, &ra_key).unwrap().0.message_type())
        .collect();
    assert_eq!(
        types,
        [
            MessageType::PkcsReq,
            MessageType::CertPoll,
            MessageType::CertPoll
        ]
    );
    assert_eq!(
        lab.ca_records().await.unwrap().len(),
        before,
        "nothing issued yet"
    );

    // The admin sees it awaiting approval, bound to the device and profile, and approves.
    let http = reqwest::Client::new();
    let list: Vec<serde_json::Value> = http
        .get(format!("{base}/admin/v1/pending?state=awaiting_approval"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["device_id"], d.id.as_str());
    assert_eq!(list[0]["profile_id"], PROFILE);
    let request_id = list[0]["request_id"].as_str().unwrap().to_owned();
    let unauthenticated = http
        .post(format!("{base}/admin/v1/pending/{request_id}/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    http.post(format!("{base}/admin/v1/pending/{request_id}/approve"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    // Second run: resumes the same transaction with CertPoll and installs the certificate.
    d.traffic.clear();
    let summary = d.sync().await.unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let (_, enrolled) = summary.installed.first().expect("installed after approval");
    assert_eq!(enrolled.transaction_id, request_id);
    assert!(
        enrolled.polls >= 3,
        "polls counted across runs: {}",
        enrolled.polls
    );
    let ops = pki_operations(&d.traffic.requests());
    assert!(!ops.is_empty());
    for b in &ops {
        let (body, _) = open_request(b, &ra_cert, &ra_key).unwrap();
        assert!(
            matches!(body, RequestBody::CertPoll(_)),
            "the resumed run only polls"
        );
    }
    assert!(!slot.path().join("transaction.json").exists());
    let cert = d.certificate(PROFILE).unwrap();
    let serial = serial_of(&cert).unwrap();
    assert_eq!(lab.ca_records().await.unwrap().len(), before + 1);
    assert_eq!(lab.ca_record(&serial).await.unwrap().request_id, request_id);
    let inv = lab.inventory_cert(&d.id, &serial).await.unwrap();
    assert_eq!(inv.status, CertStatus::Issued);
    assert!(inv.installed_at.is_some());

    let _ = stop.send(());
    lab.shutdown().await;
}

/// Issue 16 item 3: a client that signs with a throwaway self-signed identity key, not its
/// CSR's key (as a Python SCEP library does), enrolls through the lab's admin path under a
/// template that needs approval: its PKCSReq and its CertPolls, signed by that identity, get
/// PENDING, then SUCCESS after approval; a CertPoll under the same transactionID signed by
/// another identity gets badCertID before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_identity_polls_its_request_pending_then_issued() {
    use policy_module::NdesPolicy;
    use scep::client::{CertRep, self_signed_certificate};
    let lab = TestLab::start_with(|o| {
        o.ndes_settings
            .approval_templates
            .insert(TEMPLATE.to_owned());
    })
    .await
    .unwrap();
    let password = lab
        .policy()
        .generate_challenge(policy_module::ChallengeRequest {
            template: TEMPLATE.into(),
            requester: "lab-admin@scep-lab.test".into(),
        })
        .await
        .unwrap()
        .challenge
        .expose()
        .to_owned();
    let mut name = openssl::x509::X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "throwaway-identity-client")
        .unwrap();
    let name = name.build();
    let key = rsa_key(2048).unwrap();
    let challenge = scep::csr::ChallengePassword::new(&password);
    let csr = scep::csr::build(
        &key,
        &name,
        None,
        Some(&challenge),
        openssl::hash::MessageDigest::sha256(),
    )
    .unwrap();
    let csr = scep::csr::Csr::from_der(&csr).unwrap();
    let now = unix_now();
    let identity = |k: &PKey<openssl::pkey::Private>| {
        self_signed_certificate(k, &name, now - 3600, now + 86_400).unwrap()
    };
    let (id_key, stranger_key) = (rsa_key(2048).unwrap(), rsa_key(2048).unwrap());
    let (id_cert, stranger_cert) = (identity(&id_key), identity(&stranger_key));
    let raw = lab.raw_scep().await.unwrap();
    let tx = random_transaction_id().unwrap();
    let poll = RequestBody::CertPoll(
        scep::IssuerAndSubject::new(&lab.ca().material().issuing, &name).unwrap(),
    );
    let rep = raw
        .send(&RequestBody::PkcsReq(csr), &id_key, &id_cert, &tx)
        .await
        .unwrap();
    assert!(matches!(rep, CertRep::Pending), "{rep:?}");
    let rep = raw.send(&poll, &id_key, &id_cert, &tx).await.unwrap();
    assert!(matches!(rep, CertRep::Pending), "{rep:?}");
    let stranger = raw
        .send(&poll, &stranger_key, &stranger_cert, &tx)
        .await
        .unwrap();
    assert!(
        is_failure(&stranger, scep::FailInfo::BadCertId),
        "{stranger:?}"
    );

    let base = lab.scep_url().replace("/certsrv/mscep/mscep.dll", "");
    let admin = lab.tokens().ndes_admin.expose().to_owned();
    let http = reqwest::Client::new();
    let list: Vec<serde_json::Value> = http
        .get(format!("{base}/admin/v1/pending?state=awaiting_approval"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["request_id"], tx.as_str());
    http.post(format!("{base}/admin/v1/pending/{}/approve", tx.as_str()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    let cert = match raw.send(&poll, &id_key, &id_cert, &tx).await.unwrap() {
        CertRep::Success(p) => p.certificates.into_iter().next().unwrap(),
        other => panic!("expected SUCCESS, got {other:?}"),
    };
    assert!(cert.public_key().unwrap().public_eq(&key), "the CSR's key");
    let record = lab.ca_record(&serial_of(&cert).unwrap()).await.unwrap();
    assert_eq!(record.request_id, tx.as_str());
    assert_eq!(record.template, TEMPLATE);
    let stranger = raw
        .send(&poll, &stranger_key, &stranger_cert, &tx)
        .await
        .unwrap();
    assert!(
        is_failure(&stranger, scep::FailInfo::BadCertId),
        "{stranger:?}"
    );
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
