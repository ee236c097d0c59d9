//! The HTTP layer over loopback: authentication, OpenAPI coverage, admin flow, remote client.

use foundation::rate_limit::RateLimit;
use foundation::secret::Secret;
use policy_api::client::RemotePolicy;
use policy_module::api::{ApiState, OPENAPI, ROUTES, serve};
use policy_module::{
    NdesPolicy, Notification, Outcome, PolicyService, Rejection, RequesterInfo, ServiceConfig,
    VerifyError, VerifyRequest,
};
use serde_json::{Value, json};

use crate::harness::{Harness, enrolled, profile_spec};
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

pub(crate) const ADMIN: &str = "admin-token-for-tests";
pub(crate) const NDES: &str = "ndes-token-for-tests";

pub(crate) struct Server {
    pub(crate) base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn start(h: &Harness) -> Server {
    start_service(h.svc.clone()).await
}

pub(crate) async fn start_service(service: PolicyService) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = ApiState {
        service,
        admin_token: Secret::new(ADMIN),
        ndes_token: Secret::new(NDES),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Server {
    pub(crate) fn req(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = self.http.request(m, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "x1")
        .replace("{kind}", "device")
        .replace("{target}", "t")
        .replace("{device}", "d")
        .replace("{action}", "retire")
        .replace("{template}", "T1")
        .replace("{serial}", "0a1b")
}

#[tokio::test]
async fn openapi_lists_every_route_and_every_route_is_routed() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document has operations that are not routes"
    );
    for (method, path) in ROUTES {
        assert!(
            paths[*path][*method].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    let h = Harness::sqlite().await;
    let s = start(&h).await;
    for (method, path) in ROUTES {
        let status = s
            .req(method, &concrete(path), None)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let public = ["/openapi.json", "/healthz", "/readyz", "/metrics"].contains(path);
        assert_eq!(status, if public { 200 } else { 401 }, "{method} {path}");
    }
    let doc_served: Value = s
        .req("get", "/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc_served, doc);
}

#[tokio::test]
async fn admin_internal_and_checkin_refuse_unauthenticated_and_wrong_device_calls() {
    let h = Harness::sqlite().await;
    let a = enrolled(&h, "d1").await;
    let b = enrolled(&h, "d2").await;
    let s = start(&h).await;
    for token in [None, Some("wrong"), Some(NDES)] {
        let r = s.req("get", "/api/v1/devices", token).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    for token in [None, Some("wrong"), Some(ADMIN)] {
        let r = s
            .req("post", "/internal/v1/challenges", token)
            .json(&json!({"template": "T", "requester": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let cred_a = a.reg.credential.expose().to_string();
    let checkin = |id: &str, token: Option<&str>| {
        s.req("post", &format!("/mdm/v1/devices/{id}/checkin"), token)
            .send()
    };
    assert_eq!(checkin("d1", None).await.unwrap().status(), 401);
    assert_eq!(checkin("d1", Some(ADMIN)).await.unwrap().status(), 401);
    assert_eq!(checkin("d2", Some(&cred_a)).await.unwrap().status(), 403);
    // A status report about another device's certificate is refused too.
    let report = json!({"installed": [{"profile_id": "p1", "thumbprint_sha256": "ab".repeat(32)}]});
    let r = s
        .req("post", "/mdm/v1/devices/d1/checkin", Some(&cred_a))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let ok: Value = checkin("d1", Some(&cred_a))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["device_id"], "d1");
    assert_eq!(ok["profiles"][0]["challenge"].as_str().unwrap().len(), 40);
    assert_ne!(
        ok["profiles"][0]["challenge"].as_str().unwrap(),
        b.challenge()
    );
}

#[tokio::test]
async fn admin_api_drives_profiles_devices_lifecycle_and_settings() {
    let h = Harness::sqlite().await;
    let s = start(&h).await;
    let admin = |m: &str, p: &str| s.req(m, p, Some(ADMIN));
    let mut body = serde_json::to_value(profile_spec()).unwrap();
    body["id"] = json!("wifi");
    assert_eq!(
        admin("post", "/api/v1/profiles")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        admin("post", "/api/v1/profiles")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    let mut bad = body.clone();
    bad["key_size"] = json!(1024);
    let r = admin("post", "/api/v1/profiles")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("key_size"));
    let mut unknown = body.clone();
    unknown["surprise"] = json!(1);
    assert!(
        admin("post", "/api/v1/profiles")
            .json(&unknown)
            .send()
            .await
            .unwrap()
            .status()
            .is_client_error()
    );
    let garbage = admin("post", "/api/v1/profiles")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(garbage.status().is_client_error());
    let mut v2 = serde_json::to_value(profile_spec()).unwrap();
    v2["validity_days"] = json!(90);
    let updated: Value = admin("put", "/api/v1/profiles/wifi")
        .json(&v2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["version"], 2);
    let versions: Value = admin("get", "/api/v1/profiles/wifi/versions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);

    let dev = json!({"id": "mac-1", "name": "MacBook", "platform": "macos", "owner_upn": "bob@contoso.example"});
    let reg: Value = admin("post", "/api/v1/devices")
        .json(&dev)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cred = reg["credential"].as_str().unwrap().to_string();
    assert_eq!(
        admin("post", "/api/v1/profiles/wifi/assignments")
            .json(&json!({"kind": "device", "id": "mac-1"}))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        admin("post", "/api/v1/profiles/wifi/assignments")
            .json(&json!({"kind": "device", "id": "ghost"}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let mc = s
        .req(
            "post",
            "/mdm/v1/devices/mac-1/checkin?format=mobileconfig",
            Some(&cred),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        mc.headers()["content-type"],
        "application/x-apple-aspen-config"
    );
    assert!(mc.text().await.unwrap().contains("com.apple.security.scep"));
    let bad_format = s
        .req(
            "post",
            "/mdm/v1/devices/mac-1/checkin?format=pdf",
            Some(&cred),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad_format.status(), 400);

    assert_eq!(
        admin("post", "/api/v1/devices/mac-1/explode")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        admin("post", "/api/v1/devices/mac-1/retire")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        admin("post", "/api/v1/devices/mac-1/retire")
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    assert_eq!(
        admin("post", "/api/v1/devices/nobody/block")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let view: Value = admin("get", "/api/v1/devices/mac-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["device"]["state"], "retired");

    let settings = json!({"password_max": 7, "password_validity_minutes": 30, "profile_challenge_validity_minutes": 60, "admin_validity_days": 90});
    assert_eq!(
        admin("put", "/api/v1/settings/challenges")
            .json(&settings)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let got: Value = admin("get", "/api/v1/settings/challenges")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, settings);
    let mut out_of_range = settings.clone();
    out_of_range["password_max"] = json!(0);
    assert_eq!(
        admin("put", "/api/v1/settings/challenges")
            .json(&out_of_range)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let audit: Value = admin("get", "/api/v1/audit?device_id=mac-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"device_retired") && events.contains(&"challenge_issued"),
        "{events:?}"
    );
}

#[tokio::test]
async fn remote_policy_client_speaks_the_contract_over_http() {
    let h = Harness::sqlite().await;
    let e = enrolled(&h, "d1").await;
    let s = start(&h).await;
    let remote = RemotePolicy::new(&s.base, Secret::new(NDES)).unwrap();
    assert!(!format!("{remote:?}").contains(NDES));
    let key = ec_key();
    let der = csr(
        &key,
        &CsrSpec::matching(&e.profile().expected, &e.challenge()),
    );
    let req = |tx: &str, der: Vec<u8>| VerifyRequest {
        facts: None,
        csr_der: der,
        challenge: Some(Secret::new(e.challenge())),
        transaction_id: tx.into(),
        template: Some("DeviceAuth".into()),
        signer_cert_der: None,
        requester: RequesterInfo {
            remote_addr: Some("127.0.0.1".into()),
            ..RequesterInfo::default()
        },
    };
    let grant = remote
        .verify_request(req("tx-1", der.clone()))
        .await
        .unwrap();
    assert_eq!(grant.device_id.as_deref(), Some("d1"));
    let other = csr(
        &ec_key(),
        &CsrSpec::matching(&e.profile().expected, &e.challenge()),
    );
    assert_eq!(
        remote.verify_request(req("tx-2", other)).await,
        Err(VerifyError::Rejected(Rejection::ChallengeAlreadyUsed))
    );
    let (cert, serial, thumb) = TestCa::new().issue(&key, 30);
    let n = Notification {
        transaction_id: "tx-1".into(),
        outcome: Outcome::Issued {
            serial: foundation::Serial::from_hex(&serial).unwrap(),
            thumbprint_sha256: thumb,
            not_after: 0,
            certificate_der: cert,
        },
    };
    remote.notify(n.clone()).await.unwrap();
    remote.notify(n).await.unwrap();
    let missing = Notification {
        transaction_id: "nope".into(),
        outcome: Outcome::Failed { reason: "x".into() },
    };
    assert_eq!(
        remote.notify(missing).await,
        Err(policy_module::NotifyError::UnknownTransaction)
    );
    crate::harness::allow_admin_template(&h.svc, "T").await;
    let c = remote
        .generate_challenge(policy_module::ChallengeRequest {
            template: "T".into(),
            requester: "admin".into(),
        })
        .await
        .unwrap();
    assert!(c.challenge.is_challenge_shaped());
    // Wrong token and unreachable servers are Unavailable: ndes-proxy fails closed.
    let wrong = RemotePolicy::new(&s.base, Secret::new("nope")).unwrap();
    assert_eq!(
        wrong.verify_request(req("tx-3", der.clone())).await,
        Err(VerifyError::Unavailable)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = RemotePolicy::new(&format!("http://127.0.0.1:{port}"), Secret::new(NDES)).unwrap();
    assert_eq!(
        gone.verify_request(req("tx-4", der)).await,
        Err(VerifyError::Unavailable)
    );
    let _ = profile_spec();
}

#[tokio::test]
async fn challenge_minting_beyond_a_sources_burst_gets_429_with_retry_after() {
    let h = Harness::sqlite().await;
    let d = enrolled(&h, "d1").await;
    let config = ServiceConfig {
        challenge_mint_limit: RateLimit {
            per_minute: 1,
            burst: 2,
            exempt_loopback: false,
        },
        ..ServiceConfig::default()
    };
    let s = start_service(PolicyService::new(h.svc.store().clone(), config)).await;
    let cred = d.reg.credential.expose().to_string();
    let checkin = || {
        s.req("post", "/mdm/v1/devices/d1/checkin", Some(&cred))
            .send()
    };
    let mint = |token: &'static str| {
        s.req("post", "/internal/v1/challenges", Some(token))
            .json(&json!({"template": "IPSECIntermediateOffline", "requester": "x"}))
            .send()
    };
    // Unauthenticated calls are refused before they can spend the source's tokens.
    assert_eq!(mint("wrong").await.unwrap().status(), 401);
    assert_ne!(mint(NDES).await.unwrap().status(), 429);
    assert_eq!(checkin().await.unwrap().status(), 200);
    // Both minting routes share the source's bucket (2), now empty.
    for r in [checkin().await.unwrap(), mint(NDES).await.unwrap()] {
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "60");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "rate_limited");
    }
    // Other routes are not limited.
    let r = s.req("get", "/api/v1/devices", Some(ADMIN)).send().await;
    assert_eq!(r.unwrap().status(), 200);
}
