//! docs/decisions.md #12: every time the policy module's APIs answer (admin, internal, MDM
//! check-in) is RFC 3339 UTC; a `<name>_unix` twin, where there is one, is the same instant.

use foundation::secret::Secret;
use foundation::time::parse_rfc3339;
use policy_api::client::RemotePolicy;
use policy_module::{NdesPolicy, Notification, Outcome, RequesterInfo, VerifyRequest};
use serde_json::{Value, json};

use crate::api::{ADMIN, NDES, start};
use crate::harness::{Harness, enrolled};
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

/// Asserts `v[name]` is RFC 3339 UTC text; answers the instant.
fn rfc3339(v: &Value, name: &str) -> i64 {
    let text = v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not text: {v}"));
    assert!(text.ends_with('Z'), "{name} is not UTC: {text}");
    parse_rfc3339(text).unwrap_or_else(|| panic!("{name} is not RFC 3339: {text}"))
}

#[tokio::test]
async fn api_times_are_rfc3339_and_unix_twins_agree() {
    let h = Harness::sqlite().await;
    let e = enrolled(&h, "d1").await;
    let s = start(&h).await;
    let get = |path: &str, token: &str| {
        let r = s.req("get", path, Some(token)).send();
        async move { r.await.unwrap().json::<Value>().await.unwrap() }
    };

    // An enrollment through the internal API, so the device has a certificate on record.
    let remote = RemotePolicy::new(&s.base, Secret::new(NDES)).unwrap();
    let key = ec_key();
    let der = csr(
        &key,
        &CsrSpec::matching(&e.profile().expected, &e.challenge()),
    );
    remote
        .verify_request(VerifyRequest {
            facts: None,
            csr_der: der,
            challenge: Some(Secret::new(e.challenge())),
            transaction_id: "tx-times".into(),
            template: Some("DeviceAuth".into()),
            signer_cert_der: None,
            requester: RequesterInfo::default(),
        })
        .await
        .unwrap();
    let (cert, serial, thumb) = TestCa::new().issue(&key, 30);
    let not_after =
        foundation::time::asn1_to_unix(openssl::x509::X509::from_der(&cert).unwrap().not_after())
            .unwrap();
    remote
        .notify(Notification {
            transaction_id: "tx-times".into(),
            outcome: Outcome::Issued {
                serial: foundation::Serial::from_hex(&serial).unwrap(),
                thumbprint_sha256: thumb.clone(),
                not_after,
                certificate_der: cert,
            },
        })
        .await
        .unwrap();

    // The check-in reports it installed and hands out the next challenge.
    let cred = e.reg.credential.expose().to_string();
    let checkin: Value = s
        .req("post", "/mdm/v1/devices/d1/checkin", Some(&cred))
        .json(&json!({"installed": [{"profile_id": "p1", "thumbprint_sha256": thumb}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rfc3339(&checkin["profiles"][0], "challenge_expires_at");

    let view = get("/api/v1/devices/d1", ADMIN).await;
    rfc3339(&view["device"], "created_at");
    rfc3339(&view["device"], "updated_at");
    let c = &view["certificates"][0];
    assert_eq!(rfc3339(c, "not_after"), not_after);
    let issued = rfc3339(c, "issued_at");
    assert!(rfc3339(c, "installed_at") >= issued);
    for d in get("/api/v1/devices", ADMIN).await.as_array().unwrap() {
        rfc3339(d, "created_at");
    }
    rfc3339(&get("/api/v1/profiles/p1", ADMIN).await, "updated_at");

    // ndes-proxy's admin page reads the twin; the text is what a person sees.
    crate::harness::allow_admin_template(&h.svc, "T").await;
    let minted: Value = s
        .req("post", "/internal/v1/challenges", Some(NDES))
        .json(&json!({"template": "T", "requester": "admin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        Some(rfc3339(&minted, "expires_at")),
        minted["expires_at_unix"].as_i64()
    );

    // Retiring queues a revocation: the outbox and the audit trail show their times too.
    s.req("post", "/api/v1/devices/d1/retire", Some(ADMIN))
        .send()
        .await
        .unwrap();
    let outbox = get("/api/v1/outbox", ADMIN).await;
    let entry = &outbox.as_array().unwrap()[0];
    rfc3339(entry, "created_at");
    rfc3339(entry, "next_attempt_at");
    assert!(entry["done_at"].is_null() || entry["done_at"].is_string());
    let audit = get("/api/v1/audit", ADMIN).await;
    assert!(!audit.as_array().unwrap().is_empty());
    for event in audit.as_array().unwrap() {
        rfc3339(event, "at");
    }
}
