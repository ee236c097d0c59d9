//! Admin-path renewal through the full pipeline (docs/decisions.md #5, issue 16 item 3):
//! micromdm `scepclient` enrolls with an mscep_admin password, then renews with a RenewalReq
//! signed by its certificate (same key, no usable challenge), as NDES lets plain SCEP clients
//! and routers do.
//! - just issued, default window (the last 20 % of the lifetime): refused, badRequest,
//!   `RenewalNotAllowed` in the audit with a `renewal_refused` record naming the window;
//! - window 100 % (a policy setting, no sleeping): renewed, same subject and template, a new
//!   certificate recorded at the CA and verified by the policy module (`renewal_verified`);
//! - another subject: refused (`SubjectNameMismatch`), nothing issued;
//! - signed by a certificate revoked at the CA: refused, nothing issued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ca_mock::store::{CertStatus as CaStatus, RevocationReason};
use openssl::x509::X509;
use policy_module::store::AuditEvent;
use policy_module::{ChallengeRequest, NdesPolicy};
use scep_lab_tests::*;

const CN: &str = "micromdm-admin-renewal";

/// One `scepclient` run on the key and certificate in `dir` (it sends a RenewalReq signed by
/// that certificate, with the same key); whether it exited 0, and its output.
async fn scepclient_renew(url: &str, challenge: &str, dir: &Path, cn: &str) -> (bool, String) {
    let mut command = tokio::process::Command::new("scepclient");
    command
        .args([
            "-server-url",
            url,
            "-challenge",
            challenge,
            "-cn",
            cn,
            "-debug",
        ])
        .arg("-private-key")
        .arg(dir.join("key.pem"))
        .arg("-certificate")
        .arg(dir.join("cert.pem"))
        .kill_on_drop(true);
    match tokio::time::timeout(testkit::peers::SCEPCLIENT_TIMEOUT, command.output()).await {
        Ok(Ok(o)) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Ok(Err(e)) => (false, format!("scepclient did not run: {e}")),
        Err(_) => (false, "scepclient timed out".into()),
    }
}

/// `enroll`'s key and certificate copied into a fresh directory `name`.
fn renewal_dir(lab: &TestLab, from: &Path, name: &str) -> std::path::PathBuf {
    let dir = lab.tmp().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(from.join("key.pem"), dir.join("key.pem")).unwrap();
    std::fs::copy(from.join("cert.pem"), dir.join("cert.pem")).unwrap();
    dir
}

fn cert_in(dir: &Path) -> X509 {
    X509::from_pem(&std::fs::read(dir.join("cert.pem")).unwrap()).unwrap()
}

/// The audit records written after the first `skip`.
async fn audit_since(lab: &TestLab, skip: usize) -> Vec<AuditEvent> {
    lab.audit(None)
        .await
        .unwrap()
        .into_iter()
        .skip(skip)
        .collect()
}

fn rejected_for(events: &[AuditEvent], reason: &str) -> bool {
    events.iter().any(|e| {
        e.event == "request_rejected" && e.detail.as_deref().is_some_and(|d| d.starts_with(reason))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micromdm_scepclient_renews_an_admin_path_certificate_inside_the_window() {
    if testkit::binary("scepclient").is_none() || testkit::binary("openssl").is_none() {
        return;
    }
    let lab = TestLab::start().await.unwrap();
    let password = lab
        .policy()
        .generate_challenge(ChallengeRequest {
            template: TEMPLATE.into(),
            requester: "lab-admin@scep-lab.test".into(),
        })
        .await
        .unwrap()
        .challenge
        .expose()
        .to_owned();

    // Enrollment, then at once scepclient's RenewalReq: too early under the default window.
    let out = lab.tmp().join("micromdm");
    let audit_before = lab.audit(None).await.unwrap().len();
    let run = testkit::peers::micromdm_scepclient(
        &lab.scep_url(),
        &password,
        &out,
        CN,
        &[("MICROMDM_SELECT", "all"), ("MICROMDM_RENEW", "1")],
    )
    .await;
    assert!(run.step("enroll").contains("\tPASS"), "{}", run.report);
    assert!(run.step("renew").contains("\tFAIL"), "{}", run.report);
    let enrolled = cert_in(&out.join("enroll"));
    let issued = lab.ca_records().await.unwrap().len();
    let events = audit_since(&lab, audit_before).await;
    assert!(rejected_for(&events, "RenewalNotAllowed"), "{events:?}");
    let refused = events
        .iter()
        .find(|e| e.event == "renewal_refused")
        .and_then(|e| e.detail.clone())
        .unwrap_or_default();
    assert!(
        refused.contains("too early") && refused.contains("admin_renewal_window_percent=20%"),
        "{refused}"
    );

    // The window as the whole lifetime (a policy setting): the same RenewalReq renews.
    let lab = lab
        .restart(|o| o.admin_renewal_window_percent = 100)
        .await
        .unwrap();
    let dir = renewal_dir(&lab, &out.join("enroll"), "renew-in-window");
    let (ok, text) = scepclient_renew(&lab.scep_url(), &password, &dir, CN).await;
    assert!(ok, "scepclient renewal failed:\n{text}");
    let renewed = cert_in(&dir);
    let serial = serial_of(&renewed).unwrap();
    assert_ne!(serial, serial_of(&enrolled).unwrap(), "a new certificate");
    assert_eq!(
        name_values(renewed.subject_name()),
        name_values(enrolled.subject_name())
    );
    assert!(
        renewed
            .public_key()
            .unwrap()
            .public_eq(&enrolled.public_key().unwrap()),
        "scepclient keeps its key"
    );
    let issuing = lab.ca().material().issuing.public_key().unwrap();
    assert!(renewed.verify(&issuing).unwrap());
    assert_eq!(lab.ca_records().await.unwrap().len(), issued + 1);
    let record = lab.ca_record(&serial).await.unwrap();
    assert_eq!(record.template, TEMPLATE);
    let verified: Vec<String> = lab
        .audit(None)
        .await
        .unwrap()
        .into_iter()
        // Keyed by the client's transactionID, the request id beside it (docs/decisions.md #12).
        .filter(|e| e.request_id.as_deref() == Some(record.request_id.as_str()))
        .map(|e| e.event)
        .collect();
    assert!(
        verified.contains(&"renewal_verified".to_owned()),
        "{verified:?}"
    );

    // Another subject, signed by the renewed certificate: refused, nothing issued.
    let audit_before = lab.audit(None).await.unwrap().len();
    let other = renewal_dir(&lab, &dir, "renew-other-subject");
    let (ok, text) = scepclient_renew(&lab.scep_url(), &password, &other, "someone-else").await;
    assert!(!ok, "renewed for another subject:\n{text}");
    assert_eq!(lab.ca_records().await.unwrap().len(), issued + 1);
    let events = audit_since(&lab, audit_before).await;
    assert!(rejected_for(&events, "SubjectNameMismatch"), "{events:?}");

    // Signed by a certificate revoked at the CA: refused, nothing issued.
    let ca = ca_api::client::CaClient::new(
        &lab.ca_url(),
        Some(lab.tokens().ca_policy.expose().to_owned()),
    )
    .unwrap();
    ca.revoke(&serial, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(
        lab.ca_record(&serial).await.unwrap().status,
        CaStatus::Revoked
    );
    let revoked = renewal_dir(&lab, &dir, "renew-revoked");
    let (ok, text) = scepclient_renew(&lab.scep_url(), &password, &revoked, CN).await;
    assert!(!ok, "renewed with a revoked signer:\n{text}");
    assert_eq!(lab.ca_records().await.unwrap().len(), issued + 1);
    assert!(
        cert_in(&revoked).to_der().unwrap() == renewed.to_der().unwrap(),
        "the client keeps its certificate"
    );
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
