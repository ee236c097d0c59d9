//! Issue 15 item 2 end to end, as it was observed: a challenge from `/certsrv/mscep_admin/`
//! (fetched with the page's bearer token) and PKCSReqs over loopback. Under the lab's sample
//! name policy the four names of the ESC1 report (a UPN of an admin, a foreign DNS name, a SID
//! URI, `O=Attacker,CN=evil`) each get a CertRep FAILURE badRequest, `NameNotPermitted` in the
//! audit and no certificate; the same challenge then enrolls a CSR the policy permits. With
//! the template's `enrollee_supplies_subject` flag on (ESC1 on purpose) the names pass the
//! policy module and the audit marks the grant and the issuance `esc1_exposed`; the CA's
//! template still refuses a UPN (its own, coarser fence). A restart keeps the administrator's
//! policy; without a policy the page refuses the template. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use device_agent::csr::{CsrSpec, NameAttr, San, SanKind, SubjectAttr};
use scep::FailInfo;
use scep::client::CertRep;
use scep_lab::Databases;
use scep_lab_tests::*;

const SID_URI: &str =
    "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1004336348-1177238915-682003330-500";

fn spec(subject: &[(SubjectAttr, &str)], sans: &[(SanKind, &str)]) -> CsrSpec {
    CsrSpec {
        subject: subject.iter().map(|(a, v)| NameAttr::new(*a, *v)).collect(),
        subject_alternative_names: sans.iter().map(|(k, v)| San::new(*k, *v)).collect(),
        ..CsrSpec::default()
    }
}

/// A one-time password from the admin page, as a script gets it.
async fn admin_page_challenge(lab: &TestLab) -> String {
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{}?format=json", lab.mscep_admin_url()))
        .bearer_auth(lab.tokens().mscep_admin.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["challenge"].as_str().unwrap().to_owned()
}

async fn audited(lab: &TestLab, event: &str, tx: &str) -> policy_module::store::AuditEvent {
    lab.audit(None)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event == event && e.transaction_id.as_deref() == Some(tx))
        .unwrap_or_else(|| panic!("no {event} for {tx}"))
}

async fn scenario(lab: TestLab) {
    use SubjectAttr::{C, CN, O, OU};
    let raw = lab.raw_scep().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let challenge = admin_page_challenge(&lab).await;
    let issued_before = lab.ca_records().await.unwrap().len();
    let attacks = [
        spec(&[(CN, "dev-9")], &[(SanKind::Upn, "admin@corp.test")]),
        spec(&[(CN, "dev-9")], &[(SanKind::Dns, "login.microsoft.com")]),
        spec(&[(CN, "dev-9")], &[(SanKind::Uri, SID_URI)]),
        spec(&[(O, "Attacker"), (CN, "evil")], &[]),
    ];
    for attack in &attacks {
        let csr = build_csr(attack, &key, Some(&challenge)).unwrap();
        let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
        assert!(
            is_failure(&rep, FailInfo::BadRequest),
            "{attack:?}: {rep:?}"
        );
        assert_eq!(
            lab.rejection(tx.as_str()).await.unwrap().as_deref(),
            Some("NameNotPermitted"),
            "{attack:?}"
        );
    }
    assert_eq!(lab.ca_records().await.unwrap().len(), issued_before);

    // The same password still enrolls what the policy permits (scepclient's subject).
    let honest = spec(
        &[
            (C, "US"),
            (O, "scep-client"),
            (OU, "MDM"),
            (CN, "admin-page-01"),
        ],
        &[],
    );
    let csr = build_csr(&honest, &key, Some(&challenge)).unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    let cert = issued_cert(&rep, &key).unwrap();
    assert_eq!(
        name_values(cert.subject_name()),
        ["US", "scep-client", "MDM", "admin-page-01"]
    );
    assert!(cert.subject_alt_names().is_none());
    assert!(
        !audited(&lab, "challenge_consumed", tx.as_str())
            .await
            .esc1_exposed
    );

    // ESC1 on purpose: the template lets the enrollee supply the subject.
    let esc1 =
        serde_json::from_value(serde_json::json!({"enrollee_supplies_subject": true})).unwrap();
    lab.policy()
        .set_name_policy(TEMPLATE, &esc1, false)
        .await
        .unwrap();
    let challenge = admin_page_challenge(&lab).await;
    let key = rsa_key(2048).unwrap();
    // The CA's template has no UPN among its SAN kinds: refused there, nothing issued.
    let upn = build_csr(&attacks[0], &key, Some(&challenge)).unwrap();
    let (_, rep) = raw.pkcs_req(&upn, &key).await.unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    let challenge = admin_page_challenge(&lab).await;
    let evil = spec(
        &[(O, "Attacker"), (CN, "evil")],
        &[(SanKind::Dns, "login.microsoft.com")],
    );
    let csr = build_csr(&evil, &key, Some(&challenge)).unwrap();
    let (tx, rep) = raw.pkcs_req(&csr, &key).await.unwrap();
    let cert = issued_cert(&rep, &key).unwrap();
    assert_eq!(name_values(cert.subject_name()), ["Attacker", "evil"]);
    for event in ["challenge_verified", "challenge_consumed"] {
        let e = audited(&lab, event, tx.as_str()).await;
        assert!(e.esc1_exposed, "{event} marked ESC1-exposed");
        assert!(e.detail.unwrap().contains("dns:login.microsoft.com"));
    }
    assert!(matches!(rep, CertRep::Success(_)));
    lab.assert_reconciled().await.unwrap();

    // A restart keeps the administrator's policy (the lab sets its sample only when none is
    // stored); without any policy the page refuses the template.
    let lab = lab.restart(|_| {}).await.unwrap();
    let kept = lab.policy().name_policy(TEMPLATE).await.unwrap().unwrap();
    assert!(kept.policy.enrollee_supplies_subject);
    lab.policy().delete_name_policy(TEMPLATE).await.unwrap();
    let page = reqwest::Client::new()
        .get(format!("{}?format=json", lab.mscep_admin_url()))
        .bearer_auth(lab.tokens().mscep_admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let body: serde_json::Value = page.json().await.unwrap();
    assert_eq!(body["error"], "template_not_permitted");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_challenges_issue_only_permitted_names_sqlite() {
    scenario(TestLab::start().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_challenges_issue_only_permitted_names_postgres() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    let databases = Databases::Postgres {
        ca: pg.fresh_database().unwrap(),
        policy: pg.fresh_database().unwrap(),
        pending: pg.fresh_database().unwrap(),
    };
    scenario(
        TestLab::start_with(|o| o.databases = databases)
            .await
            .unwrap(),
    )
    .await;
}
