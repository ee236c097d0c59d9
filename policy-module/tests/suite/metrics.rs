//! `/metrics` (issue 17): after an enrollment and a refusal, the decision counters name the
//! decision and the reason; a retirement's revocation waiting in the outbox shows as backlog.
//! On SQLite and PostgreSQL.

use policy_module::admin::Lifecycle;
use policy_module::{NdesPolicy, Notification, Outcome, RequesterInfo, VerifyError, VerifyRequest};

use crate::api::start;
use crate::both;
use crate::harness::{Harness, enrolled};
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

fn request(csr_der: Vec<u8>, tx: &str) -> VerifyRequest {
    VerifyRequest {
        facts: None,
        csr_der,
        challenge: None,
        transaction_id: tx.to_string(),
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo::default(),
    }
}

both!(metrics_name_decisions_and_reasons_and_the_outbox_backlog);

async fn metrics_name_decisions_and_reasons_and_the_outbox_backlog(h: Harness) {
    let e = enrolled(&h, "d1").await;
    let spec = CsrSpec::matching(&e.profile().expected, &e.challenge());
    let key = ec_key();
    h.svc
        .verify_request(request(csr(&key, &spec), "tx-1"))
        .await
        .unwrap();
    let (der, serial, thumb) = TestCa::new().issue(&key, 365);
    h.svc
        .notify(Notification {
            transaction_id: "tx-1".into(),
            outcome: Outcome::Issued {
                serial: foundation::Serial::from_hex(&serial).unwrap(),
                thumbprint_sha256: thumb,
                not_after: 0,
                certificate_der: der,
            },
        })
        .await
        .unwrap();
    // The same challenge again, from another transaction: refused by name.
    let refused = match h
        .svc
        .verify_request(request(csr(&ec_key(), &spec), "tx-2"))
        .await
    {
        Err(VerifyError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    };
    h.svc.lifecycle("d1", Lifecycle::Retire).await.unwrap();

    let server = start(&h).await;
    let r = server.req("get", "/metrics", None).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for line in [
        "policy_verify_decisions_total{decision=\"granted\",reason=\"challenge\"} 1".to_owned(),
        format!("policy_verify_decisions_total{{decision=\"rejected\",reason=\"{refused}\"}} 1"),
        "policy_outbox_backlog 1".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("policy_outbox_oldest_age_seconds ")),
        "{text}"
    );
}
