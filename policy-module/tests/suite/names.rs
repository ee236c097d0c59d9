//! Issue 15 item 2: the mscep_admin path issues only the names its template's name policy
//! permits (docs/decisions.md #7); AD CS's "supply in the request" (ESC1) only under the
//! explicit template flag, and audited as such.

use foundation::secret::Secret;
use policy_api::client::RemotePolicy;
use policy_module::model::{NameAttr, San, SanKind, SubjectAttr};
use policy_module::name_policy::NamePolicy;
use policy_module::store::AuditEvent;
use policy_module::{
    ChallengeError, ChallengeRequest, Grant, NdesPolicy, Notification, Outcome, PolicyService,
    Rejection, RequesterInfo, VerifyError, VerifyRequest,
};
use serde_json::{Value, json};

use crate::api::{ADMIN, NDES, start};
use crate::both;
use crate::harness::Harness;
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

both!(
    the_admin_path_refuses_the_four_observed_names_and_passes_permitted_ones,
    a_template_without_a_name_policy_serves_no_admin_challenge,
    enrollee_supplies_subject_passes_the_names_and_marks_esc1,
    name_policies_are_validated_and_served_over_the_admin_api,
);

const TEMPLATE: &str = "IPSECIntermediateOffline";
const SID_URI: &str =
    "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1004336348-1177238915-682003330-500";

fn policy(v: Value) -> NamePolicy {
    serde_json::from_value(v).unwrap()
}

async fn set(svc: &PolicyService, template: &str, v: Value) {
    svc.set_name_policy(template, &policy(v), false)
        .await
        .unwrap()
        .unwrap();
}

async fn mint(svc: &PolicyService, template: &str) -> Result<Secret, ChallengeError> {
    svc.generate_challenge(ChallengeRequest {
        template: template.into(),
        requester: "lab-admin".into(),
    })
    .await
    .map(|c| c.challenge)
}

fn request(der: Vec<u8>, tx: &str) -> VerifyRequest {
    VerifyRequest {
        facts: None,
        csr_der: der,
        challenge: None,
        transaction_id: tx.into(),
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo::default(),
    }
}

fn spec(challenge: &Secret, subject: &[(SubjectAttr, &str)], sans: &[(SanKind, &str)]) -> CsrSpec {
    CsrSpec {
        subject: subject.iter().map(|(a, v)| NameAttr::new(*a, *v)).collect(),
        sans: sans.iter().map(|(k, v)| San::new(*k, *v)).collect(),
        challenge: Some(challenge.expose().into()),
        ..CsrSpec::default()
    }
}

async fn audit(svc: &PolicyService) -> Vec<AuditEvent> {
    svc.store().list_audit(None, 500).await.unwrap()
}

/// The audit detail of the one `event` about `tx`.
async fn detail(svc: &PolicyService, event: &str, tx: &str) -> AuditEvent {
    let found: Vec<AuditEvent> = audit(svc)
        .await
        .into_iter()
        .filter(|e| e.event == event && e.transaction_id.as_deref() == Some(tx))
        .collect();
    assert_eq!(found.len(), 1, "{event} for {tx}: {found:?}");
    found.into_iter().next().unwrap()
}

async fn notify(h: &Harness, key: &openssl::pkey::PKey<openssl::pkey::Private>, tx: &str) {
    let (der, serial, thumb) = TestCa::new().issue(key, 365);
    h.svc
        .notify(Notification {
            transaction_id: tx.into(),
            outcome: Outcome::Issued {
                serial: foundation::Serial::from_hex(&serial).unwrap(),
                thumbprint_sha256: thumb,
                not_after: 0,
                certificate_der: der,
            },
        })
        .await
        .unwrap();
}

async fn the_admin_path_refuses_the_four_observed_names_and_passes_permitted_ones(h: Harness) {
    use SanKind::{Dns, Upn, Uri};
    use SubjectAttr::{CN, O};
    // Even a catch-all `uri` rule does not admit a SID: that is a kind of its own.
    set(
        &h.svc,
        TEMPLATE,
        json!({
            "subject": [{"attr": "CN", "pattern": "*", "required": true},
                        {"attr": "O", "pattern": "Contoso"}],
            "sans": [{"kind": "dns", "pattern": "*.devices.contoso.example"},
                     {"kind": "uri", "pattern": "*"}],
            "max_sans": 2,
        }),
    )
    .await;
    let c = mint(&h.svc, TEMPLATE).await.unwrap();
    let good_subject = [(CN, "router-1"), (O, "Contoso")];
    let good_dns = (Dns, "router-1.devices.contoso.example");
    let cases: Vec<(&str, CsrSpec, &str)> = vec![
        (
            "upn",
            spec(&c, &good_subject, &[good_dns, (Upn, "admin@corp.test")]),
            "SAN upn:admin@corp.test: the template's name policy does not permit this kind",
        ),
        (
            "dns",
            spec(&c, &good_subject, &[(Dns, "login.microsoft.com")]),
            "SAN dns:login.microsoft.com: the value matches no permitted pattern",
        ),
        (
            "sid",
            spec(&c, &good_subject, &[good_dns, (Uri, SID_URI)]),
            "SAN sid:tag:microsoft.com,2022-09-14:sid:S-1-5-21-",
        ),
        (
            "subject",
            spec(&c, &[(O, "Attacker"), (CN, "evil")], &[]),
            "subject O=Attacker: the value does not match the permitted pattern",
        ),
        (
            "no-cn",
            spec(&c, &[(O, "Contoso")], &[]),
            "subject CN: the template's name policy requires this attribute",
        ),
        (
            "ou",
            spec(
                &c,
                &[(CN, "r"), (SubjectAttr::OU, "Domain Controllers")],
                &[],
            ),
            "subject OU=Domain Controllers: the template's name policy does not permit",
        ),
        (
            "two-cn",
            spec(&c, &[(CN, "r"), (CN, "administrator")], &[]),
            "subject CN=administrator: the attribute appears more than once",
        ),
        (
            "wildcard",
            spec(&c, &good_subject, &[(Dns, "*.devices.contoso.example")]),
            "SAN dns:*.devices.contoso.example: the value matches no permitted pattern",
        ),
        (
            "too-many",
            spec(
                &c,
                &good_subject,
                &[
                    good_dns,
                    (Dns, "a.devices.contoso.example"),
                    (Uri, "https://x.test/"),
                ],
            ),
            "3 SANs: more SANs than the template's name policy permits",
        ),
    ];
    for (tx, s, why) in cases {
        let r = h.svc.verify_request(request(csr(&ec_key(), &s), tx)).await;
        assert_eq!(
            r,
            Err(VerifyError::Rejected(Rejection::NameNotPermitted)),
            "{tx}"
        );
        let refused = detail(&h.svc, "name_refused", tx).await;
        let text = refused.detail.unwrap();
        assert!(text.contains(why), "{tx}: {text}");
        assert!(text.contains(TEMPLATE), "{text}");
        assert!(!text.contains(c.expose()), "the challenge is never echoed");
        assert!(!refused.esc1_exposed);
        let rejected = detail(&h.svc, "request_rejected", tx).await;
        assert!(rejected.detail.unwrap().starts_with("NameNotPermitted"));
    }

    // Refusals reserve nothing: the same challenge serves a request within the policy, and
    // the grant carries exactly the CSR's names (DNS compared without case).
    let key = ec_key();
    let permitted = spec(
        &c,
        &good_subject,
        &[
            (Dns, "Router-1.Devices.Contoso.Example"),
            (Uri, "https://router-1.test/id"),
        ],
    );
    let grant: Grant = h
        .svc
        .verify_request(request(csr(&key, &permitted), "tx-ok"))
        .await
        .unwrap();
    assert_eq!(grant.template, TEMPLATE);
    assert_eq!(grant.subject, permitted.subject);
    assert_eq!(grant.subject_alternative_names.len(), 2);
    notify(&h, &key, "tx-ok").await;
    for event in ["challenge_verified", "challenge_consumed"] {
        assert!(
            !detail(&h.svc, event, "tx-ok").await.esc1_exposed,
            "{event}"
        );
    }
}

async fn a_template_without_a_name_policy_serves_no_admin_challenge(h: Harness) {
    assert_eq!(
        mint(&h.svc, "Routers").await.err(),
        Some(ChallengeError::InvalidTemplate)
    );
    let refused = audit(&h.svc)
        .await
        .into_iter()
        .find(|e| e.event == "challenge_refused")
        .unwrap();
    assert!(refused.detail.unwrap().contains("template=Routers"));

    set(
        &h.svc,
        "Routers",
        json!({"subject": [{"attr": "CN", "pattern": "*"}]}),
    )
    .await;
    let c = mint(&h.svc, "Routers").await.unwrap();
    // Another instance over the same store sees the same policy.
    assert!(mint(&h.reopen().await, "Routers").await.is_ok());

    // Removed after minting: the outstanding challenge no longer issues either.
    h.svc.delete_name_policy("Routers").await.unwrap();
    assert_eq!(
        mint(&h.svc, "Routers").await.err(),
        Some(ChallengeError::InvalidTemplate)
    );
    let s = spec(&c, &[(SubjectAttr::CN, "r1")], &[]);
    let r = h
        .svc
        .verify_request(request(csr(&ec_key(), &s), "tx-gone"))
        .await;
    assert_eq!(r, Err(VerifyError::Rejected(Rejection::NameNotPermitted)));
    let text = detail(&h.svc, "name_refused", "tx-gone")
        .await
        .detail
        .unwrap();
    assert!(text.contains("no admin-path name policy"), "{text}");
    assert!(matches!(
        h.svc.delete_name_policy("Routers").await,
        Err(policy_module::error::AdminError::NotFound)
    ));
}

async fn enrollee_supplies_subject_passes_the_names_and_marks_esc1(h: Harness) {
    use SanKind::{Dns, Upn, Uri};
    // The flag is off unless set.
    assert!(!policy(json!({})).enrollee_supplies_subject);
    set(&h.svc, TEMPLATE, json!({"enrollee_supplies_subject": true})).await;
    let set_event = audit(&h.svc)
        .await
        .into_iter()
        .find(|e| e.event == "name_policy_set")
        .unwrap();
    assert!(set_event.esc1_exposed, "turning ESC1 on is itself marked");

    let c = mint(&h.svc, TEMPLATE).await.unwrap();
    let key = ec_key();
    let attack = spec(
        &c,
        &[(SubjectAttr::O, "Attacker"), (SubjectAttr::CN, "evil")],
        &[
            (Upn, "admin@corp.test"),
            (Dns, "login.microsoft.com"),
            (Uri, SID_URI),
        ],
    );
    let grant = h
        .svc
        .verify_request(request(csr(&key, &attack), "tx-esc1"))
        .await
        .unwrap();
    assert_eq!(grant.subject, attack.subject);
    let mut sans = attack.sans.clone();
    sans.sort();
    assert_eq!(grant.subject_alternative_names, sans);
    notify(&h, &key, "tx-esc1").await;

    for event in ["challenge_verified", "challenge_consumed"] {
        let e = detail(&h.svc, event, "tx-esc1").await;
        assert!(e.esc1_exposed, "{event} is marked ESC1-exposed");
        let text = e.detail.unwrap();
        assert!(
            text.contains("esc1_exposed") && text.contains("upn:admin@corp.test"),
            "{event}: {text}"
        );
        assert!(text.contains("O=Attacker"), "{text}");
    }
}

async fn name_policies_are_validated_and_served_over_the_admin_api(h: Harness) {
    let s = start(&h).await;
    let put = |template: &str, body: String| {
        s.req(
            "put",
            &format!("/api/v1/name-policies/{template}"),
            Some(ADMIN),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
    };
    let long = "x".repeat(257);
    let seventeen: Vec<Value> = (0..17)
        .map(|i| json!({"kind": "dns", "pattern": format!("h{i}.example")}))
        .collect();
    let bad = [
        "{".to_owned(),
        json!({"sans": [{"kind": "othername", "pattern": "*"}]}).to_string(),
        json!({"subject": [{"attr": "XX", "pattern": "*"}]}).to_string(),
        json!({"regex": ".*"}).to_string(),
        json!({"subject": [{"attr": "CN", "pattern": ""}]}).to_string(),
        json!({"subject": [{"attr": "CN", "pattern": "*********"}]}).to_string(),
        json!({"subject": [{"attr": "CN", "pattern": long}]}).to_string(),
        json!({"subject": [{"attr": "CN", "pattern": "a\u{7}"}]}).to_string(),
        json!({"subject": [{"attr": "CN", "pattern": "*"}, {"attr": "CN", "pattern": "a"}]})
            .to_string(),
        json!({"sans": [{"kind": "dns", "pattern": "a b.example"}]}).to_string(),
        json!({"sans": [{"kind": "ip", "pattern": "10.0.0.x"}]}).to_string(),
        json!({"sans": seventeen}).to_string(),
        json!({"max_sans": 33}).to_string(),
        json!({"max_sans": 0, "sans": [{"kind": "dns", "pattern": "*.example"}]}).to_string(),
        json!({"enrollee_supplies_subject": "yes"}).to_string(),
    ];
    for body in bad {
        let r = put(TEMPLATE, body.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid", "{body}");
    }
    let r = put("bad template", json!({}).to_string()).await.unwrap();
    assert_eq!(r.status(), 400);
    let list: Value = s
        .req("get", "/api/v1/name-policies", Some(ADMIN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]), "nothing refused was stored");

    let good = json!({
        "subject": [{"attr": "CN", "pattern": "*", "required": true}],
        "sans": [{"kind": "dns", "pattern": "*.corp.test"}],
        "max_sans": 1,
    });
    let r = put(TEMPLATE, good.to_string()).await.unwrap();
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(stored["template"], TEMPLATE);
    assert_eq!(stored["enrollee_supplies_subject"], false);
    assert_eq!(stored["sans"], good["sans"]);
    let got: Value = s
        .req(
            "get",
            &format!("/api/v1/name-policies/{TEMPLATE}"),
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, stored);
    // The audit API carries the mark on every record.
    let events: Value = s
        .req("get", "/api/v1/audit", Some(ADMIN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let set_event = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "name_policy_set")
        .unwrap();
    assert_eq!(set_event["esc1_exposed"], false);

    // Over the NDES contract: a named refusal crosses the wire as itself.
    let remote = RemotePolicy::new(&s.base, Secret::new(NDES)).unwrap();
    let ask = |t: &str| ChallengeRequest {
        template: t.into(),
        requester: "ndes".into(),
    };
    assert_eq!(
        remote.generate_challenge(ask("Unlisted")).await.err(),
        Some(ChallengeError::InvalidTemplate)
    );
    let c = remote
        .generate_challenge(ask(TEMPLATE))
        .await
        .unwrap()
        .challenge;
    let upn = spec(
        &c,
        &[(SubjectAttr::CN, "r1")],
        &[(SanKind::Upn, "admin@corp.test")],
    );
    assert_eq!(
        remote
            .verify_request(request(csr(&ec_key(), &upn), "tx-remote"))
            .await,
        Err(VerifyError::Rejected(Rejection::NameNotPermitted))
    );

    let del = |t: &str| {
        s.req("delete", &format!("/api/v1/name-policies/{t}"), Some(ADMIN))
            .send()
    };
    assert_eq!(del(TEMPLATE).await.unwrap().status(), 204);
    assert_eq!(del(TEMPLATE).await.unwrap().status(), 404);
    let gone = s
        .req(
            "get",
            &format!("/api/v1/name-policies/{TEMPLATE}"),
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}
