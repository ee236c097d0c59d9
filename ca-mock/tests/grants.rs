//! docs/decisions.md #10: the CA issues only what the policy module granted. A caller's token
//! says who calls; only a grant signed by a trusted policy module, matching the call in every
//! field and bound to the CSR's key, says what may be issued. Plain mode has its own narrow
//! entitlement. Every refusal leaves the store as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ca_api::wire::IssueRequest;
use ca_api::{CaBackend, GrantKey, IssueCall};
use ca_mock::IssueRight;
use ca_mock::keys::KeySpec;
use common::*;
use foundation::names::{KeyUsage, NameAttr, San, SanKind, SubjectAttr};
use serde_json::Value;

async fn post(ca: &TestCa, token: &str, req: &IssueRequest) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/certificates", ca.base))
        .bearer_auth(token)
        .json(req)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A change to a granted request, named for the failure message.
type Edit = Box<dyn Fn(&mut IssueRequest)>;

fn assert_refused(got: (u16, Value), case: &str) {
    assert_eq!(got.0, 403, "{case}: {}", got.1);
    assert_eq!(got.1["error"], "grant_refused", "{case}: {}", got.1);
}

/// What was observed with ndes-proxy's token alone: an Enrollment Agent certificate for
/// CN=Administrator, and device certificates with UPN and SID SANs. Each is refused now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ndes_token_alone_issues_nothing() {
    let ca = start(KeySpec::EcP256).await;
    let key = rsa_key(2048);
    let mut admin = issue_request(
        "stolen-1",
        "EnrollmentAgentOffline",
        &csr(&key, "x", false),
        "x",
    );
    admin.subject = vec![NameAttr {
        attr: SubjectAttr::CN,
        value: "Administrator".into(),
    }];
    admin.sans.clear();
    let mut ipsec = issue_request(
        "stolen-2",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "evil",
    );
    ipsec.sans = vec![
        San {
            kind: SanKind::Upn,
            value: "admin@corp.test".into(),
        },
        San {
            kind: SanKind::Uri,
            value: "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500".into(),
        },
    ];
    for (case, req) in [("enrollment agent", &admin), ("upn and sid", &ipsec)] {
        assert_refused(post(&ca, NDES_TOKEN, req).await, case);
    }
    assert_eq!(ca.ca().store().count().await.unwrap(), 0);
    ca.stop().await;
}

/// A grant is for one call: any field changed, another key, a late grant, or a grant signed
/// by a key the CA does not trust, is refused; the exact call is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_differs_from_its_grant_is_refused() {
    let ca = start(KeySpec::EcP256).await;
    let device_key = ec_key();
    let good = granted(issue_request(
        "grant-1",
        "IPSECIntermediateOffline",
        &csr(&device_key, "x", false),
        "dev-1",
    ));
    let edits: Vec<(&str, Edit)> = vec![
        ("request id", Box::new(|r| r.request_id = "grant-2".into())),
        (
            "template",
            Box::new(|r| r.template = "CEPEncryption".into()),
        ),
        (
            "subject",
            Box::new(|r| r.subject[0].value = "Administrator".into()),
        ),
        (
            "sans",
            Box::new(|r| {
                r.sans.push(San {
                    kind: SanKind::Dns,
                    value: "login.microsoft.com".into(),
                })
            }),
        ),
        ("validity", Box::new(|r| r.validity_days = Some(365))),
        (
            "key usage",
            Box::new(|r| r.key_usage = vec![KeyUsage::KeyAgreement]),
        ),
        (
            "eku",
            Box::new(|r| r.extended_key_usages = vec!["serverAuth".into()]),
        ),
        (
            "another key",
            Box::new(|r| {
                r.csr = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    csr(&ec_key(), "x", false),
                )
            }),
        ),
        ("no grant", Box::new(|r| r.grant = None)),
    ];
    for (case, edit) in &edits {
        let mut r = good.clone();
        edit(&mut r);
        assert_refused(post(&ca, NDES_TOKEN, &r).await, case);
    }
    // Expired, and signed by a key the CA does not trust.
    let mut late = statement_for(&good);
    late.issued_at -= 600;
    late.expires_at -= 600;
    let mut expired = good.clone();
    expired.grant = Some(grant_key().sign(late).unwrap());
    assert_refused(post(&ca, NDES_TOKEN, &expired).await, "expired");
    let mut forged = good.clone();
    forged.grant = Some(
        GrantKey::generate()
            .unwrap()
            .sign(statement_for(&good))
            .unwrap(),
    );
    assert_refused(post(&ca, NDES_TOKEN, &forged).await, "untrusted key");
    assert_eq!(ca.ca().store().count().await.unwrap(), 0, "nothing stored");

    let (status, v) = post(&ca, NDES_TOKEN, &good).await;
    assert_eq!(status, 201, "{v}");
    // A replay of the same request needs its grant too.
    let mut replay = good.clone();
    replay.grant = None;
    assert_refused(post(&ca, NDES_TOKEN, &replay).await, "replay without grant");
    assert_eq!(post(&ca, NDES_TOKEN, &good).await.0, 200);
    assert_eq!(ca.ca().store().count().await.unwrap(), 1);
    ca.stop().await;
}

/// Plain mode (a static challenge, no policy module) issues without grants, but only under
/// its templates and never with SANs; an NDES caller's in-process CA checks grants as HTTP does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mode_is_narrow_and_in_process_issuance_needs_a_grant() {
    let ca = start(KeySpec::EcP256).await;
    let mut plain = issue_request(
        "plain-1",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "router-1",
    );
    let (status, v) = post(&ca, PLAIN_TOKEN, &plain).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    plain.sans.clear();
    let (status, v) = post(&ca, PLAIN_TOKEN, &plain).await;
    assert_eq!(status, 201, "{v}");
    let mut agent = plain.clone();
    agent.request_id = "plain-2".into();
    agent.template = "EnrollmentAgentOffline".into();
    let (status, v) = post(&ca, PLAIN_TOKEN, &agent).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );

    let in_process = ca_mock::InProcessCa::new(
        ca.state.ca.clone(),
        "ndes-proxy",
        ["IPSECIntermediateOffline".to_owned()],
        IssueRight::Granted,
    );
    let req = issue_request(
        "inproc-1",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "dev-2",
    );
    let mut ungranted: IssueCall = call(&req);
    ungranted.grant = None;
    let err = in_process.issue(&ungranted).await.unwrap_err();
    assert!(err.to_string().contains("no signed grant"), "{err}");
    let granted_call = call(&granted(req));
    let issued = in_process.issue(&granted_call).await.unwrap();
    assert!(!issued.replayed);
    assert_eq!(ca.ca().store().count().await.unwrap(), 2);
    ca.stop().await;
}
