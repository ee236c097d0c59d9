//! The HTTP contract: authentication, idempotency, concurrency, and clear 4xx on bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use ca_api::client::CaClient;
use ca_mock::keys::KeySpec;
use ca_mock::store::{CertStatus, RevocationReason};
use common::*;
use foundation::names::{NameAttr, San, SanKind, SubjectAttr};
use serde_json::{Value, json};

async fn raw(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut rb = http.request(method, url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.header("content-type", "application/json").body(b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_or_unentitled_issue_and_revoke_are_refused() {
    let ca = start(KeySpec::EcP256).await;
    let req = granted_request(
        "auth-1",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "dev-1",
    );
    let body = serde_json::to_vec(&req).unwrap();
    let issue_url = format!("{}/api/v1/certificates", ca.base);
    let revoke_url = format!("{}/api/v1/revocations", ca.base);
    let revoke_body =
        serde_json::to_vec(&json!({"serial": "0abc", "reason": "keyCompromise"})).unwrap();

    for token in [None, Some("wrong-token"), Some("")] {
        let (status, v) = raw(reqwest::Method::POST, &issue_url, token, Some(body.clone())).await;
        assert_eq!(status, 401, "{token:?}: {v}");
        assert_eq!(v["error"], "unauthorized");
        let (status, _) = raw(
            reqwest::Method::POST,
            &revoke_url,
            token,
            Some(revoke_body.clone()),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = raw(
            reqwest::Method::DELETE,
            &format!("{revoke_url}/0abc"),
            token,
            None,
        )
        .await;
        assert_eq!(status, 401);
    }
    // Authenticated but not entitled: the policy identity cannot issue, NDES cannot revoke.
    let (status, v) = raw(
        reqwest::Method::POST,
        &issue_url,
        Some(POLICY_TOKEN),
        Some(body.clone()),
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (403, Some("forbidden")));
    let (status, _) = raw(
        reqwest::Method::POST,
        &revoke_url,
        Some(NDES_TOKEN),
        Some(revoke_body),
    )
    .await;
    assert_eq!(status, 403);
    // Entitled to issue, but not under this template.
    let (status, _) = raw(
        reqwest::Method::POST,
        &issue_url,
        Some(NARROW_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        ca.ca().store().count().await.unwrap(),
        0,
        "nothing was issued"
    );

    // And the narrow identity may not revoke a certificate of a template it is not entitled to.
    let issued = ca.ndes.issue(&req).await.unwrap().response;
    let narrow = CaClient::new(&ca.base, Some(NARROW_TOKEN.into())).unwrap();
    let err = narrow
        .revoke(&issued.serial, RevocationReason::KeyCompromise)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    assert_eq!(
        ca.policy.get(&issued.serial).await.unwrap().status,
        CertStatus::Good
    );
    let err = ca.anonymous.get(&issued.serial).await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_request_id_returns_the_same_certificate_and_a_different_csr_conflicts() {
    let ca = start(KeySpec::EcP256).await;
    let key = ec_key();
    let req = granted_request(
        "tx-same",
        "IPSECIntermediateOffline",
        &csr(&key, "x", false),
        "dev-1",
    );
    let first = ca.ndes.issue(&req).await.unwrap();
    let second = ca.ndes.issue(&req).await.unwrap();
    assert!(first.created);
    assert!(!second.created, "a replay answers 200, not 201");
    assert_eq!(first.response, second.response);

    let other = granted_request(
        "tx-same",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "dev-1",
    );
    let err = ca.ndes.issue(&other).await.unwrap_err();
    assert_eq!(err.code(), Some("request_id_conflict"));
    assert!(matches!(
        err,
        ca_api::client::ClientError::Api { status: 409, .. }
    ));

    let found = ca.ndes.find_by_request_id("tx-same").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].serial, first.response.serial);
    assert_eq!(ca.ca().store().count().await.unwrap(), 1);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_issuances_get_unique_serials_and_are_all_recorded() {
    let ca = start(KeySpec::EcP256).await;
    let key = ec_key();
    let csr_der = csr(&key, "x", false);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..220 {
        let client = ca.ndes.clone();
        // 200 distinct request ids; 20 of them are sent a second time, at the same moment:
        // both copies must get the same certificate.
        let id = format!("conc-{}", if i >= 200 { (i - 200) * 10 } else { i });
        let req = granted_request(
            &id,
            "IPSECIntermediateOffline",
            &csr_der,
            &format!("dev-{i}"),
        );
        tasks.spawn(async move { (id, client.issue(&req).await) });
    }
    let mut by_id = std::collections::HashMap::new();
    let mut replays = 0;
    while let Some(r) = tasks.join_next().await {
        let (id, outcome) = r.unwrap();
        // Same CSR under one id: the second copy is a replay (200), never a conflict.
        let outcome = outcome.unwrap();
        if !outcome.created {
            replays += 1;
        }
        let outcome = outcome.response;
        if let Some(prev) = by_id.insert(id.clone(), outcome.serial.clone()) {
            assert_eq!(prev, outcome.serial, "{id} replay changed the certificate");
        }
    }
    assert_eq!(by_id.len(), 200);
    assert_eq!(
        replays, 20,
        "exactly one of each pair was issued, the other replayed"
    );
    let serials: HashSet<_> = by_id.values().cloned().collect();
    assert_eq!(serials.len(), 200, "no duplicate serials");
    assert_eq!(ca.ca().store().count().await.unwrap(), 200, "all recorded");
    for serial in serials.iter().take(20) {
        assert_eq!(ca.ndes.get(serial).await.unwrap().serial, *serial);
    }
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let ca = start(KeySpec::EcP256).await;
    let url = format!("{}/api/v1/certificates", ca.base);
    let good = granted_request(
        "bad-0",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "dev-1",
    );
    let mut cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (b"[]".to_vec(), 400, "invalid_json"),
        (serde_json::to_vec(&json!({"request_id": "a", "template": "IPSECIntermediateOffline", "csr": "AAAA", "extra": 1})).unwrap(), 400, "invalid_json"),
        (serde_json::to_vec(&json!({"request_id": "a", "template": "IPSECIntermediateOffline", "csr": "AAAA", "subject": [{"attr": "XX", "value": "v"}]})).unwrap(), 400, "invalid_json"),
        (vec![0xff; 70 * 1024], 413, "too_large"),
    ];
    let mut push =
        |f: &dyn Fn(&mut ca_api::wire::IssueRequest), status: u16, code: &'static str| {
            let mut r = good.clone();
            f(&mut r);
            // Granted as changed: the CA's own checks (the template caps) are what is tested.
            let r = granted(r);
            cases.push((serde_json::to_vec(&r).unwrap(), status, code));
        };
    push(&|r| r.csr = "%%%".into(), 400, "invalid_csr");
    push(&|r| r.csr = "AAAA".into(), 400, "invalid_csr");
    push(
        &|r| r.template = "NoSuchTemplate".into(),
        400,
        "unknown_template",
    );
    push(&|r| r.validity_days = Some(10_000), 400, "invalid_validity");
    push(&|r| r.validity_days = Some(0), 400, "invalid_validity");
    push(&|r| r.request_id = String::new(), 400, "invalid_request");
    push(&|r| r.request_id = "x".repeat(500), 400, "invalid_request");
    push(
        &|r| r.template = "EnrollmentAgentOffline".into(),
        400,
        "key_not_allowed",
    );
    push(
        &|r| {
            r.subject.push(NameAttr {
                attr: SubjectAttr::C,
                value: "Germany".into(),
            })
        },
        400,
        "subject_not_allowed",
    );
    push(
        &|r| {
            r.subject.push(NameAttr {
                attr: SubjectAttr::CN,
                value: "a\u{0}b".into(),
            })
        },
        400,
        "subject_not_allowed",
    );
    push(
        &|r| {
            r.sans.push(San {
                kind: SanKind::Ip,
                value: "not-an-ip".into(),
            })
        },
        400,
        "san_not_allowed",
    );
    // Issue 15 item 2: the device template is cut to the SAN kinds its callers use, so a
    // UPN or a URI (a SID's carrier) is not issued under it whatever a grant says.
    push(
        &|r| r.sans.push(San::new(SanKind::Upn, "admin@corp.test")),
        400,
        "san_not_allowed",
    );
    push(
        &|r| {
            r.sans.push(San::new(
                SanKind::Uri,
                "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500",
            ))
        },
        400,
        "san_not_allowed",
    );
    push(
        &|r| {
            r.sans = (0..11)
                .map(|i| San {
                    kind: SanKind::Dns,
                    value: format!("h{i}.example"),
                })
                .collect()
        },
        400,
        "san_not_allowed",
    );
    push(
        &|r| {
            r.subject.clear();
            r.sans.clear();
        },
        400,
        "subject_not_allowed",
    );
    // A CSR whose signature does not verify: flip a byte near the end (inside the signature).
    let mut tampered = csr(&ec_key(), "x", false);
    let n = tampered.len();
    tampered[n - 3] ^= 0x55;
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &tampered);
    push(&|r| r.csr = b64.clone(), 400, "invalid_csr");
    // An RSA key below the template's minimum.
    let weak = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        csr(&rsa_key(1024), "x", false),
    );
    push(&|r| r.csr = weak.clone(), 400, "key_not_allowed");

    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (got, v) = raw(reqwest::Method::POST, &url, Some(NDES_TOKEN), Some(body)).await;
        assert_eq!(got, status, "case {i}: {v}");
        if !code.is_empty() {
            assert_eq!(v["error"], code, "case {i}: {v}");
            let msg = v["message"].as_str().unwrap();
            assert!(!msg.is_empty() && msg.len() < 200, "case {i}: {msg}");
        }
    }
    assert_eq!(
        ca.ca().store().count().await.unwrap(),
        0,
        "nothing recorded"
    );

    let get = |serial: &str| format!("{}/api/v1/certificates/{serial}", ca.base);
    let (status, v) = raw(
        reqwest::Method::GET,
        &get("0123abcd"),
        Some(NDES_TOKEN),
        None,
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (404, Some("unknown_serial")));
    let (status, v) = raw(
        reqwest::Method::GET,
        &get("not-hex"),
        Some(NDES_TOKEN),
        None,
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_serial")));
    let err = ca
        .policy
        .revoke("0123abcd", RevocationReason::KeyCompromise)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("unknown_serial"));
    let (status, v) = raw(
        reqwest::Method::POST,
        &format!("{}/api/v1/revocations", ca.base),
        Some(POLICY_TOKEN),
        Some(br#"{"serial":"0abc","reason":"bored"}"#.to_vec()),
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_json")));
    let (status, _) = raw(
        reqwest::Method::GET,
        &format!("{}/nope", ca.base),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_idempotent_and_a_hold_can_be_upgraded_or_released() {
    let ca = start(KeySpec::EcP256).await;
    let mut serials = Vec::new();
    for i in 0..2 {
        let req = granted_request(
            &format!("rev-{i}"),
            "IPSECIntermediateOffline",
            &csr(&ec_key(), "x", false),
            "d",
        );
        serials.push(ca.ndes.issue(&req).await.unwrap().response.serial);
    }
    let (a, b) = (&serials[0], &serials[1]);

    let first = ca
        .policy
        .revoke(a, RevocationReason::CessationOfOperation)
        .await
        .unwrap();
    assert!(!first.already_revoked);
    let again = ca
        .policy
        .revoke(a, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert!(again.already_revoked);
    assert_eq!(
        again.reason,
        RevocationReason::CessationOfOperation,
        "the original record stands"
    );
    assert_eq!(again.revoked_at, first.revoked_at);
    let err = ca.policy.release(a).await.unwrap_err();
    assert_eq!(err.code(), Some("not_on_hold"));

    let hold = ca
        .policy
        .revoke(b, RevocationReason::CertificateHold)
        .await
        .unwrap();
    assert_eq!(ca.policy.get(b).await.unwrap().status, CertStatus::Hold);
    let released = ca.policy.release(b).await.unwrap();
    assert!(released.released);
    let info = ca.policy.get(b).await.unwrap();
    assert_eq!(
        (info.status, info.reason, info.revoked_at),
        (CertStatus::Good, None, None)
    );
    assert!(
        !ca.policy.release(b).await.unwrap().released,
        "releasing twice is harmless"
    );

    ca.policy
        .revoke(b, RevocationReason::CertificateHold)
        .await
        .unwrap();
    let upgraded = ca
        .policy
        .revoke(b, RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert!(!upgraded.already_revoked);
    assert_eq!(upgraded.reason, RevocationReason::KeyCompromise);
    assert!(upgraded.revoked_at_unix >= hold.revoked_at_unix);
    assert_eq!(ca.policy.get(b).await.unwrap().status, CertStatus::Revoked);

    // Serials are accepted in any hex spelling.
    let upper = format!("00{}", a.to_uppercase());
    assert_eq!(ca.policy.get(&upper).await.unwrap().serial, *a);

    let audit = ca.ca().store().audit(100).await.unwrap();
    let actions: Vec<_> = audit.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "issue", "issue", "revoke", "revoke", "release", "revoke", "revoke"
        ]
    );
    assert!(audit.iter().all(|e| e.request_id.starts_with("rev-")));
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_serve_ca_certificates_and_ocsp_over_get() {
    use openssl::ocsp::{OcspCertId, OcspRequest, OcspResponse, OcspResponseStatus};
    let ca = start(KeySpec::Rsa2048).await;
    let (issuing, root) = ca.anonymous.ca_certificates().await.unwrap();
    assert_eq!(issuing, ca.ca().material().issuing_der().unwrap());
    assert_eq!(root, ca.ca().material().root_der().unwrap());
    for path in ["/ca/issuing.pem", "/ca/root.pem", "/ca/chain.pem"] {
        let text = reqwest::get(format!("{}{path}", ca.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{path}");
    }
    assert_eq!(
        reqwest::get(format!("{}/healthz", ca.base))
            .await
            .unwrap()
            .status(),
        200
    );

    let req = granted_request(
        "get-ocsp",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "d",
    );
    let out = ca.ndes.issue(&req).await.unwrap().response;
    let leaf = openssl::x509::X509::from_der(&b64d(&out.certificate)).unwrap();
    let issuer = &ca.ca().material().issuing;
    let mut ocsp_req = OcspRequest::new().unwrap();
    let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), &leaf, issuer).unwrap();
    ocsp_req.add_id(id).unwrap();
    let der = ocsp_req.to_der().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".into(),
            '/' => "%2F".into(),
            '=' => "%3D".into(),
            c => c.to_string(),
        })
        .collect();
    let resp = reqwest::get(format!("{}/ocsp/{encoded}", ca.base))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/ocsp-response");
    let resp = OcspResponse::from_der(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(resp.status(), OcspResponseStatus::SUCCESSFUL);
    let basic = resp.basic().unwrap();
    let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), &leaf, issuer).unwrap();
    let status = basic.find_status(&id).unwrap();
    assert_eq!(status.status, openssl::ocsp::OcspCertStatus::GOOD);

    // A CertID naming another issuer (the root) is unknown, never good, even for our serial.
    let root = &ca.ca().material().root;
    let mut other = OcspRequest::new().unwrap();
    other
        .add_id(OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), &leaf, root).unwrap())
        .unwrap();
    let resp = OcspResponse::from_der(&ca.anonymous.ocsp(&other.to_der().unwrap()).await.unwrap())
        .unwrap();
    let id = OcspCertId::from_cert(openssl::hash::MessageDigest::sha1(), &leaf, root).unwrap();
    let basic = resp.basic().unwrap();
    let status = basic.find_status(&id).unwrap();
    assert_eq!(status.status, openssl::ocsp::OcspCertStatus::UNKNOWN);

    // Garbage gets an unsigned malformedRequest, not a 500.
    let bytes = ca.anonymous.ocsp(b"garbage").await.unwrap();
    let resp = OcspResponse::from_der(&bytes).unwrap();
    assert_eq!(resp.status(), OcspResponseStatus::MALFORMED_REQUEST);
    let resp = reqwest::get(format!("{}/ocsp/%%%%", ca.base))
        .await
        .unwrap();
    assert!(resp.status().is_client_error() || resp.status() == 200);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crl_is_also_regenerated_on_schedule_with_a_growing_number() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ca.db").display());
    let store = ca_mock::store::SqlStore::sqlite(&url).await.unwrap();
    let ca = start_refreshing(
        dir,
        KeySpec::EcP256,
        store,
        std::time::Duration::from_millis(300),
    )
    .await;
    let first = ca.ca().crl().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let later = ca.ca().crl().await.unwrap();
    assert!(
        later.number >= first.number + 2,
        "{} -> {}",
        first.number,
        later.number
    );
    assert!(later.this_update >= first.this_update);
    let crl = openssl::x509::X509Crl::from_der(&ca.anonymous.crl().await.unwrap()).unwrap();
    assert!(
        crl.verify(&ca.ca().material().issuing.public_key().unwrap())
            .unwrap()
    );
    ca.stop().await;
}

/// Asserts `v[name]` is RFC 3339 UTC text and `v[name_unix]` the same instant in unix seconds;
/// answers that instant.
fn rfc3339_with_twin(v: &Value, name: &str) -> i64 {
    let text = v[name].as_str().unwrap_or_else(|| panic!("{name}: {v}"));
    assert!(text.ends_with('Z'), "{name} is not UTC: {text}");
    let unix = v[format!("{name}_unix")].as_i64().unwrap();
    assert_eq!(foundation::time::parse_rfc3339(text), Some(unix), "{name}");
    unix
}

/// docs/decisions.md #12: every time the API answers is RFC 3339 UTC, with unix seconds beside
/// it under `<name>_unix` (issuance, lookup before and after a hold, revocation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_times_are_rfc3339_with_an_agreeing_unix_twin() {
    let ca = start(KeySpec::EcP256).await;
    let req = granted_request(
        "times-1",
        "IPSECIntermediateOffline",
        &csr(&ec_key(), "x", false),
        "dev-1",
    );
    let (status, issued) = raw(
        reqwest::Method::POST,
        &format!("{}/api/v1/certificates", ca.base),
        Some(NDES_TOKEN),
        Some(serde_json::to_vec(&req).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let cert =
        openssl::x509::X509::from_der(&b64d(issued["certificate"].as_str().unwrap())).unwrap();
    let unix = |t: &openssl::asn1::Asn1TimeRef| foundation::time::asn1_to_unix(t).unwrap();
    assert_eq!(
        rfc3339_with_twin(&issued, "not_before"),
        unix(cert.not_before())
    );
    assert_eq!(
        rfc3339_with_twin(&issued, "not_after"),
        unix(cert.not_after())
    );

    let serial = issued["serial"].as_str().unwrap();
    let url = format!("{}/api/v1/certificates/{serial}", ca.base);
    let (_, info) = raw(reqwest::Method::GET, &url, Some(POLICY_TOKEN), None).await;
    assert_eq!(
        rfc3339_with_twin(&info, "not_after"),
        unix(cert.not_after())
    );
    rfc3339_with_twin(&info, "not_before");
    assert!(info["revoked_at"].is_null() && info["revoked_at_unix"].is_null());

    let (status, revoked) = raw(
        reqwest::Method::POST,
        &format!("{}/api/v1/revocations", ca.base),
        Some(POLICY_TOKEN),
        Some(serde_json::to_vec(&json!({"serial": serial, "reason": "certificateHold"})).unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let at = rfc3339_with_twin(&revoked, "revoked_at");
    let (_, held) = raw(reqwest::Method::GET, &url, Some(POLICY_TOKEN), None).await;
    assert_eq!(rfc3339_with_twin(&held, "revoked_at"), at);
    ca.stop().await;
}
