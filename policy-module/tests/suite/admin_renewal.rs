//! Renewal of admin-path (mscep_admin) certificates without a challenge (docs/decisions.md #5,
//! issue 16 item 3): signed by a current certificate of ours for the same subject and template,
//! inside `admin_renewal_window_percent` of its lifetime.

use foundation::secret::Secret;
use openssl::pkey::{PKey, Private};
use policy_module::model::{NameAttr, San, SanKind, SubjectAttr};
use policy_module::{
    ChallengeRequest, NdesPolicy, Notification, Outcome, PolicyService, Rejection, RequesterInfo,
    ServiceConfig, VerifyError, VerifyRequest,
};

use crate::both;
use crate::harness::{Harness, allow_admin_template};
use crate::pki::{CsrSpec, TestCa, csr, rsa_key};

const TEMPLATE: &str = "IPSECIntermediateOffline";

both!(
    an_admin_certificate_renews_inside_the_window_for_its_own_subject_only,
    the_admin_renewal_window_is_the_configured_one,
);

fn subject(cn: &str) -> Vec<NameAttr> {
    vec![
        NameAttr {
            attr: SubjectAttr::CN,
            value: cn.into(),
        },
        NameAttr {
            attr: SubjectAttr::O,
            value: "Lab".into(),
        },
    ]
}

fn request(csr_der: Vec<u8>, tx: &str, signer: Option<Vec<u8>>) -> VerifyRequest {
    VerifyRequest {
        facts: None,
        csr_der,
        challenge: None,
        transaction_id: tx.into(),
        template: None,
        signer_cert_der: signer,
        requester: RequesterInfo::default(),
    }
}

/// A renewal request for `cn` on a new key (or `key`), signed by `signer`.
fn renewal(tx: &str, cn: &str, signer: &[u8], key: Option<&PKey<Private>>) -> VerifyRequest {
    let spec = CsrSpec {
        subject: subject(cn),
        ..CsrSpec::default()
    };
    let fresh = rsa_key(2048);
    request(csr(key.unwrap_or(&fresh), &spec), tx, Some(signer.to_vec()))
}

async fn reject(svc: &PolicyService, req: VerifyRequest) -> Rejection {
    match svc.verify_request(req).await {
        Err(VerifyError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn notify_issued(svc: &PolicyService, ca: &TestCa, key: &PKey<Private>, tx: &str) -> Vec<u8> {
    let (der, serial, thumb) = ca.issue(key, 365);
    svc.notify(Notification {
        transaction_id: tx.into(),
        outcome: Outcome::Issued {
            serial: foundation::Serial::from_hex(&serial).unwrap(),
            thumbprint_sha256: thumb,
            not_after: 0,
            certificate_der: der.clone(),
        },
    })
    .await
    .unwrap();
    der
}

/// An admin-path certificate for CN=`cn`, O=Lab under [`TEMPLATE`]: its key and DER.
async fn admin_certificate(h: &Harness, ca: &TestCa, cn: &str) -> (PKey<Private>, Vec<u8>) {
    allow_admin_template(&h.svc, TEMPLATE).await;
    let issued = h
        .svc
        .generate_challenge(ChallengeRequest {
            template: TEMPLATE.into(),
            requester: "CONTOSO\\admin".into(),
        })
        .await
        .unwrap();
    let key = rsa_key(2048);
    let spec = CsrSpec {
        subject: subject(cn),
        challenge: Some(issued.challenge.expose().into()),
        ..CsrSpec::default()
    };
    let tx = format!("tx-enrol-{cn}");
    let grant = h
        .svc
        .verify_request(request(csr(&key, &spec), &tx, None))
        .await
        .unwrap();
    assert!(!grant.renewal && grant.device_id.is_none());
    let der = notify_issued(&h.svc, ca, &key, &tx).await;
    (key, der)
}

async fn an_admin_certificate_renews_inside_the_window_for_its_own_subject_only(h: Harness) {
    let ca = TestCa::new();
    let (key, cert) = admin_certificate(&h, &ca, "router-7").await;

    // Just issued: outside the default window (the last 20 % of the lifetime); the audit says
    // why, with the window and the time it opens.
    assert_eq!(
        reject(&h.svc, renewal("tx-early", "router-7", &cert, None)).await,
        Rejection::RenewalNotAllowed
    );
    let audit = h.svc.store().list_audit(None, 20).await.unwrap();
    let refused = audit
        .iter()
        .find(|e| e.event == "renewal_refused")
        .expect("a renewal_refused record");
    assert_eq!(refused.transaction_id.as_deref(), Some("tx-early"));
    let detail = refused.detail.as_deref().unwrap();
    assert!(
        detail.contains("too early")
            && detail.contains("admin_renewal_window_percent=20%")
            && detail.contains("renewable_from=20")
            && detail.contains("renewable_from_unix="),
        "{detail}"
    );

    // Inside the window: granted without a challenge, same template and subject, a renewal.
    h.advance(300 * 86_400).await;
    let grant = h
        .svc
        .verify_request(renewal("tx-renew", "router-7", &cert, Some(&key)))
        .await
        .unwrap();
    assert!(grant.renewal);
    assert_eq!(grant.template, TEMPLATE);
    assert_eq!(grant.subject, subject("router-7"));
    assert_eq!(grant.device_id, None);
    assert!(grant.signed.is_none(), "no grant key in this service");

    // Another subject, or a SAN outside the template's name policy, or another template.
    assert_eq!(
        reject(&h.svc, renewal("tx-other", "router-8", &cert, None)).await,
        Rejection::SubjectNameMismatch
    );
    let with_san = CsrSpec {
        subject: subject("router-7"),
        sans: vec![San {
            kind: SanKind::Dns,
            value: "router-7.example".into(),
        }],
        ..CsrSpec::default()
    };
    let san_req = request(csr(&rsa_key(2048), &with_san), "tx-san", Some(cert.clone()));
    assert_eq!(reject(&h.svc, san_req).await, Rejection::NameNotPermitted);
    let mut cross = renewal("tx-cross", "router-7", &cert, None);
    cross.template = Some("DeviceAuth".into());
    assert_eq!(reject(&h.svc, cross).await, Rejection::TemplateMismatch);
    // A challenge in the CSR does not make a signed renewal a challenge request.
    let mut with_challenge = renewal("tx-chal", "router-7", &cert, None);
    with_challenge.challenge = Some(Secret::new("0".repeat(40)));
    assert!(h.svc.verify_request(with_challenge).await.is_ok());

    // The renewed certificate is recorded like the first and renews in its turn.
    let renewed = notify_issued(&h.svc, &ca, &key, "tx-renew").await;
    assert_eq!(
        reject(&h.svc, renewal("tx-renew-2", "router-7", &renewed, None)).await,
        Rejection::RenewalNotAllowed,
        "its own window counts from its own issuance"
    );

    // Expired: no renewal at all.
    h.advance(70 * 86_400).await;
    assert_eq!(
        reject(&h.svc, renewal("tx-late", "router-7", &cert, None)).await,
        Rejection::RenewalNotAllowed
    );
}

async fn the_admin_renewal_window_is_the_configured_one(h: Harness) {
    let ca = TestCa::new();
    let (_key, cert) = admin_certificate(&h, &ca, "router-9").await;
    assert_eq!(
        reject(&h.svc, renewal("tx-default", "router-9", &cert, None)).await,
        Rejection::RenewalNotAllowed
    );
    // The whole lifetime as the window: a certificate issued a moment ago renews.
    let wide = PolicyService::new(
        h.svc.store().clone(),
        ServiceConfig {
            admin_renewal_window_percent: 100,
            ..ServiceConfig::default()
        },
    );
    let grant = wide
        .verify_request(renewal("tx-wide", "router-9", &cert, None))
        .await
        .unwrap();
    assert!(grant.renewal);
    assert_eq!(grant.subject, subject("router-9"));
}
