//! The console's Certificates pages (issue 18), against the lab's console over HTTP:
//! - the inventory is found by serial, device, subject (any case, a part of it) and status,
//!   and each row shows the subject as issued (RFC 4514);
//! - the certificate's page shows its chain with fingerprints and its OCSP status;
//! - an admin revokes with a reason: the CA shows it revoked with that reason once the outbox
//!   has delivered, and OCSP says so;
//! - the read-only role and a form without its CSRF token are refused with nothing changed;
//! - a bad serial is a clear 400 or 404 page, never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_mock::store::CertStatus as CaStatus;
use policy_module::model::CertStatus;
use scep_lab_tests::console::{ConsoleClient, csrf_of};
use scep_lab_tests::*;

async fn signed_in(lab: &TestLab, token: &str) -> ConsoleClient {
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    let a = c.login("", token).await.unwrap();
    assert_eq!(a.status, 303, "{}", a.body);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_searched_revoked_with_a_reason_and_guarded() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, cert) = lab.enrolled_device("CERTS-01", PROFILE).await.unwrap();
    let serial = normalize_serial(&cert.serial_hex);
    let admin = signed_in(&lab, lab.tokens().console_admin.expose()).await;

    // Search by each field finds it; a search for something else does not.
    let row = format!(r#"<a href="/certificates/{serial}">"#);
    for q in [
        format!("serial={}", serial.to_uppercase()),
        format!("device={}", d.id),
        "subject=cn%3Dcerts-01".to_owned(),
        "subject=OU%3Ddevices&status=issued".to_owned(),
        "status=issued".to_owned(),
        String::new(),
    ] {
        let page = admin.get(&format!("/certificates?{q}")).await.unwrap();
        assert_eq!(page.status, 200, "{q}");
        assert!(page.body.contains(&row), "{q}: {}", page.body);
        assert!(
            page.body
                .contains("<td>O=scep-lab,OU=Devices,CN=CERTS-01</td>"),
            "{q}: {}",
            page.body
        );
    }
    let other = admin
        .get("/certificates?subject=CN%3DCERTS-02")
        .await
        .unwrap();
    assert_eq!(other.status, 200);
    assert!(!other.body.contains(&row) && other.body.contains("no-certificates"));
    assert!(
        other.body.contains(r#"value="CN=CERTS-02""#),
        "{}",
        other.body
    );
    let none = admin.get("/certificates?status=revoked").await.unwrap();
    assert!(!none.body.contains(&row) && none.body.contains("no-certificates"));
    assert!(
        none.body
            .contains(r#"<a href="/certificates">Certificates</a>"#)
    );
    assert_eq!(
        admin
            .get("/certificates?status=bogus")
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        admin.get("/certificates?serial=xyz").await.unwrap().status,
        400
    );

    // The detail: subject, chain with fingerprints, OCSP good and verified.
    let detail = admin.get(&format!("/certificates/{serial}")).await.unwrap();
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("Issuing CA") && detail.body.contains("Root CA"));
    assert!(
        detail.body.contains(lab.root_fingerprint()),
        "{}",
        detail.body
    );
    assert!(
        detail
            .body
            .contains("OCSP reachable: good; signature verified"),
        "{}",
        detail.body
    );

    // Read-only: refused server-side, nothing queued.
    let reader = signed_in(&lab, lab.tokens().console_readonly.expose()).await;
    let confirm = reader
        .get(&format!("/certificates/{serial}/revoke"))
        .await
        .unwrap();
    let csrf = csrf_of(&confirm.body).unwrap();
    let path = format!("/certificates/{serial}/revoke");
    let refused = reader
        .post(&path, &[("csrf", &csrf), ("reason", "keyCompromise")])
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    // Admin without the CSRF token, and with another session's: refused too.
    let no_token = admin
        .post(&path, &[("reason", "keyCompromise")])
        .await
        .unwrap();
    assert_eq!(no_token.status, 403);
    let other = admin
        .post(&path, &[("csrf", &csrf), ("reason", "keyCompromise")])
        .await
        .unwrap();
    assert_eq!(other.status, 403);
    assert_eq!(
        lab.inventory_cert(&d.id, &serial).await.unwrap().status,
        CertStatus::Issued
    );
    assert_eq!(lab.ca_record(&serial).await.unwrap().status, CaStatus::Good);

    // Bad serials: clear 4xx pages.
    assert_eq!(
        admin.get("/certificates/zz/revoke").await.unwrap().status,
        400
    );
    let confirm = admin.get(&path).await.unwrap();
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains(r#"<label for="reason">"#));
    let csrf = csrf_of(&confirm.body).unwrap();
    let unknown = admin
        .post(
            "/certificates/0badc0de/revoke",
            &[("csrf", &csrf), ("reason", "keyCompromise")],
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    let bad_reason = admin
        .post(&path, &[("csrf", &csrf), ("reason", "certificateHold")])
        .await
        .unwrap();
    assert_eq!(bad_reason.status, 400);

    // The admin revokes with a reason: the outbox delivers it to the CA with that reason.
    let done = admin
        .post(&path, &[("csrf", &csrf), ("reason", "keyCompromise")])
        .await
        .unwrap();
    assert_eq!(done.status, 303, "{}", done.body);
    let info = lab.wait_revoked(&serial).await.unwrap();
    assert_eq!(info.reason.map(|r| r.as_str()), Some("keyCompromise"));
    lab.wait_inventory(&d.id, std::slice::from_ref(&serial), CertStatus::Revoked)
        .await
        .unwrap();
    let after = admin.get(&format!("/certificates/{serial}")).await.unwrap();
    assert!(
        after
            .body
            .contains("OCSP reachable: revoked (keyCompromise)"),
        "{}",
        after.body
    );
    let again = admin
        .post(&path, &[("csrf", &csrf), ("reason", "keyCompromise")])
        .await
        .unwrap();
    assert_eq!(again.status, 409);
    lab.shutdown().await;
}
