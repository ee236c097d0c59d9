//! Durable PENDING over 127.0.0.1: manual approval through the admin API, CA outages with
//! the device polling, the retry task, a restart on the same SQLite file, and 503 when the
//! pending store itself is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Device, Server, failure, issued, pending, pki, poll_body};
use ndes_proxy::admin::PendingView;
use ndes_proxy::auth::BearerToken;
use ndes_proxy::pending::{PendingRecord, PendingState, StateKind, StoreError};
use ndes_proxy::{PendingStore, QueueSettings, Settings, SqlPendingStore};
use policy_api::Outcome;
use scep::{FailInfo, RequestBody};

const TOKEN: &str = "admin-token-for-tests";

fn approval_settings() -> Settings {
    Settings {
        approval_templates: ["DeviceTemplate".to_owned()].into(),
        ..Settings::default()
    }
}

async fn approval_server(challenges: &[&str]) -> Server {
    Server::start_configured(challenges, approval_settings(), |b| {
        b.admin_token(BearerToken::new(TOKEN).unwrap())
    })
    .await
}

async fn admin(s: &Server, method: reqwest::Method, path: &str) -> reqwest::Response {
    s.http
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn list(s: &Server, state: &str) -> Vec<PendingView> {
    let r = admin(
        s,
        reqwest::Method::GET,
        &format!("/admin/v1/pending?state={state}"),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn decide(s: &Server, id: &str, verb: &str) -> reqwest::Response {
    let id = id.replace('/', "%2F").replace('+', "%2B");
    admin(
        s,
        reqwest::Method::POST,
        &format!("/admin/v1/pending/{id}/{verb}"),
    )
    .await
}

#[tokio::test]
async fn manual_approval_answers_pending_then_cert_poll_gets_the_certificate() {
    let s = approval_server(&["c1"]).await;
    let d = Device::new(0, "needs-approval");
    let body = RequestBody::PkcsReq(d.csr(Some("c1")));
    pending(d.send(&s, &body).await);
    pending(d.send(&s, &body).await); // a retransmission is the same pending request
    pending(d.send(&s, &poll_body("needs-approval")).await);
    assert!(
        s.ca.issued.lock().unwrap().is_empty(),
        "nothing issued before approval"
    );

    // The admin API: anonymous and wrong-token calls are refused.
    let anon = s
        .http
        .get(format!("{}/admin/v1/pending", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let wrong = s
        .http
        .get(format!("{}/admin/v1/pending", s.url))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let waiting = list(&s, "awaiting_approval").await;
    assert_eq!(waiting.len(), 1);
    let view = &waiting[0];
    assert_eq!(view.transaction_id, d.tx.transaction_id.as_str());
    assert_eq!(view.template, "DeviceTemplate");
    assert_eq!(view.subject, "CN=needs-approval");
    assert_eq!(decide(&s, "no-such-request", "approve").await.status(), 404);

    let approved = decide(&s, &view.request_id, "approve").await;
    assert_eq!(approved.status(), 200);
    let approved: PendingView = approved.json().await.unwrap();
    assert_eq!(
        approved.state,
        StateKind::Issued,
        "the CA was up: issued on approval"
    );

    let cert = issued(d.send(&s, &poll_body("needs-approval")).await);
    assert!(cert.public_key().unwrap().public_eq(&d.key));
    assert!(cert.verify(&pki().ca.public_key().unwrap()).unwrap());
    assert_eq!(
        issued(d.send(&s, &body).await).to_der().unwrap(),
        cert.to_der().unwrap(),
        "a retransmitted PKCSReq gets the same certificate"
    );
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    let notes = s.policy.notifications.lock().unwrap().clone();
    assert!(
        matches!(&notes[..], [n] if matches!(&n.outcome, Outcome::Issued { certificate_der, .. } if *certificate_der == cert.to_der().unwrap())),
        "{notes:?}"
    );
    // Approving again is idempotent; denying an issued request is a conflict.
    let again = decide(&s, &view.request_id, "approve").await;
    assert_eq!(again.status(), 200);
    assert_eq!(decide(&s, &view.request_id, "deny").await.status(), 409);
}

#[tokio::test]
async fn a_denied_request_fails_with_bad_request() {
    let s = approval_server(&["c2"]).await;
    let d = Device::new(1, "to-deny");
    let body = RequestBody::PkcsReq(d.csr(Some("c2")));
    pending(d.send(&s, &body).await);
    let id = list(&s, "awaiting_approval").await[0].request_id.clone();
    let denied = decide(&s, &id, "deny").await;
    assert_eq!(denied.status(), 200);
    assert_eq!(
        denied.json::<PendingView>().await.unwrap().state,
        StateKind::Denied
    );
    assert_eq!(
        failure(d.send(&s, &poll_body("to-deny")).await),
        FailInfo::BadRequest
    );
    assert_eq!(failure(d.send(&s, &body).await), FailInfo::BadRequest);
    assert_eq!(decide(&s, &id, "approve").await.status(), 409);
    assert!(s.ca.issued.lock().unwrap().is_empty());
    let notes = s.policy.notifications.lock().unwrap().clone();
    assert!(matches!(&notes[..], [n] if matches!(n.outcome, Outcome::Failed { .. })));
}

#[tokio::test]
async fn a_poll_signed_by_another_key_is_bad_cert_id() {
    let s = approval_server(&["c3"]).await;
    let d = Device::new(0, "owner");
    pending(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("c3")))).await);
    let mut stranger = Device::new(1, "owner");
    stranger.tx = d.tx.clone();
    assert_eq!(
        failure(stranger.send(&s, &poll_body("owner")).await),
        FailInfo::BadCertId
    );
}

/// Issue 16 item 3: a client that signs with a throwaway self-signed identity key (as a Python
/// SCEP library does), not the CSR's key, polls with that same identity: its CertPoll finds
/// the request (PENDING, then SUCCESS after approval); a poll signed by another identity under
/// the same transactionID is still badCertID.
#[tokio::test]
async fn a_poll_signed_by_the_identity_that_sent_the_pkcs_req_finds_it() {
    let s = approval_server(&["c4"]).await;
    let cn = "py-identity";
    // The CSR is on key 0; the pkiMessages are signed by identity key 1.
    let csr = Device::new(0, cn).csr(Some("c4"));
    let identity = Device::new(1, cn);
    pending(identity.send(&s, &RequestBody::PkcsReq(csr)).await);
    pending(identity.send(&s, &poll_body(cn)).await);
    let mut stranger = Device::new(2, cn);
    stranger.tx = identity.tx.clone();
    assert_eq!(
        failure(stranger.send(&s, &poll_body(cn)).await),
        FailInfo::BadCertId
    );
    let id = list(&s, "awaiting_approval").await[0].request_id.clone();
    assert_eq!(decide(&s, &id, "approve").await.status(), 200);
    let cert = issued(identity.send(&s, &poll_body(cn)).await);
    assert!(cert.public_key().unwrap().public_eq(&pki().device_keys[0]));
    assert_eq!(
        failure(stranger.send(&s, &poll_body(cn)).await),
        FailInfo::BadCertId,
        "another identity gets nothing after issuance either"
    );
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn ca_down_then_up_with_the_device_polling() {
    // A long tick: only the device's polls drive the CA here.
    let settings = Settings {
        queue: QueueSettings {
            tick: Duration::from_secs(3600),
            ..QueueSettings::default()
        },
        ..Settings::default()
    };
    let s = Server::start_with(&["c4"], settings).await;
    let d = Device::new(2, "patient");
    let body = RequestBody::PkcsReq(d.csr(Some("c4")));
    s.ca.down.store(true, Ordering::SeqCst);
    pending(d.send(&s, &body).await);
    pending(d.send(&s, &poll_body("patient")).await);
    let row = s
        .state
        .pending()
        .get(d.tx.transaction_id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, PendingState::QueuedForCa);
    assert!(row.attempts >= 1, "the poll tried the CA: {row:?}");
    s.ca.down.store(false, Ordering::SeqCst);
    let cert = issued(d.send(&s, &poll_body("patient")).await);
    assert!(cert.public_key().unwrap().public_eq(&d.key));
    assert_eq!(
        issued(d.send(&s, &poll_body("patient")).await)
            .to_der()
            .unwrap(),
        cert.to_der().unwrap()
    );
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    let issued_notes = s
        .policy
        .notifications
        .lock()
        .unwrap()
        .iter()
        .filter(|n| matches!(n.outcome, Outcome::Issued { .. }))
        .count();
    assert_eq!(issued_notes, 1, "notified once");
}

#[tokio::test]
async fn the_retry_task_issues_queued_requests_without_a_poll() {
    let settings = Settings {
        queue: QueueSettings {
            tick: Duration::from_millis(20),
            backoff_base_secs: 0,
            ..QueueSettings::default()
        },
        ..Settings::default()
    };
    let s = Server::start_with(&["c5"], settings).await;
    let d = Device::new(3, "background");
    s.ca.down.store(true, Ordering::SeqCst);
    pending(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("c5")))).await);
    s.ca.down.store(false, Ordering::SeqCst);
    let id = d.tx.transaction_id.as_str().to_owned();
    let mut row = None;
    for _ in 0..500 {
        let r = s.state.pending().get(&id).await.unwrap().unwrap();
        if r.state.kind() == StateKind::Issued {
            row = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = row.expect("the retry task issued the queued request");
    assert_eq!(s.ca.issued.lock().unwrap().len(), 1);
    assert!(
        s.policy
            .notifications
            .lock()
            .unwrap()
            .iter()
            .any(|n| matches!(n.outcome, Outcome::Issued { .. }))
    );
    let PendingState::Issued { cert_der, .. } = row.state else {
        unreachable!()
    };
    assert_eq!(
        issued(d.send(&s, &poll_body("background")).await)
            .to_der()
            .unwrap(),
        cert_der
    );
}

#[tokio::test]
async fn a_restart_on_the_same_sqlite_file_keeps_the_pending_request() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pending.db").display());
    let d = Device::new(0, "survivor");
    let body = RequestBody::PkcsReq(d.csr(Some("c6")));
    {
        let store = SqlPendingStore::sqlite(&url).await.unwrap();
        let durability = store.sqlite_durability().await.unwrap().unwrap();
        let (mode, sync) = (durability.journal_mode, durability.synchronous);
        assert_eq!(mode.to_lowercase(), "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        let s = Server::start_configured(&["c6"], approval_settings(), |b| {
            b.pending_store(Arc::new(store.clone()))
        })
        .await;
        pending(d.send(&s, &body).await);
        s.shutdown().await;
        store.close().await;
    }
    let store = SqlPendingStore::sqlite(&url).await.unwrap();
    let s = Server::start_configured(&[], approval_settings(), |b| {
        b.pending_store(Arc::new(store))
            .admin_token(BearerToken::new(TOKEN).unwrap())
    })
    .await;
    // The new process has never seen the challenge: the poll is answered from the row.
    pending(d.send(&s, &poll_body("survivor")).await);
    let waiting = list(&s, "awaiting_approval").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        decide(&s, &waiting[0].request_id, "approve").await.status(),
        200
    );
    let cert = issued(d.send(&s, &poll_body("survivor")).await);
    assert!(cert.public_key().unwrap().public_eq(&d.key));
}

/// A pending store whose database is gone.
struct BrokenStore;

fn broken() -> StoreError {
    StoreError::Corrupt("database is gone".into())
}

#[async_trait::async_trait]
impl PendingStore for BrokenStore {
    async fn insert(&self, _: &PendingRecord) -> Result<PendingRecord, StoreError> {
        Err(broken())
    }
    async fn get(&self, _: &str) -> Result<Option<PendingRecord>, StoreError> {
        Ok(None)
    }
    async fn list(&self, _: Option<StateKind>, _: u32) -> Result<Vec<PendingRecord>, StoreError> {
        Err(broken())
    }
    async fn transition(
        &self,
        _: &str,
        _: StateKind,
        _: &PendingState,
        _: i64,
    ) -> Result<bool, StoreError> {
        Err(broken())
    }
    async fn reschedule(&self, _: &str, _: i64, _: i64) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn due(&self, _: i64, _: u32) -> Result<Vec<PendingRecord>, StoreError> {
        Err(broken())
    }
    async fn unnotified(&self, _: u32) -> Result<Vec<PendingRecord>, StoreError> {
        Err(broken())
    }
    async fn mark_notified(&self, _: &str, _: i64) -> Result<(), StoreError> {
        Err(broken())
    }
}

#[tokio::test]
async fn ca_down_and_store_down_is_503_never_pending() {
    let s = Server::start_configured(&["c7"], Settings::default(), |b| {
        b.pending_store(Arc::new(BrokenStore))
    })
    .await;
    let d = Device::new(1, "unlucky");
    let body = RequestBody::PkcsReq(d.csr(Some("c7")));
    s.ca.down.store(true, Ordering::SeqCst);
    let r = s
        .post("/scep?operation=PKIOperation", d.request(&body))
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    assert!(!r.text().await.unwrap().contains("gone"), "no internals");
    // The CA comes back: the same request completes (the store is not needed then).
    s.ca.down.store(false, Ordering::SeqCst);
    issued(d.send(&s, &body).await);
}

/// docs/decisions.md #12: the admin API's times are RFC 3339 UTC, each with its unix-seconds
/// twin `<name>_unix` naming the same instant, before and after a decision.
#[tokio::test]
async fn admin_api_times_are_rfc3339_with_agreeing_unix_twins() {
    let s = approval_server(&["c1"]).await;
    let d = Device::new(0, "times");
    pending(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("c1")))).await);
    let check = |v: &serde_json::Value| {
        for name in ["created_at", "updated_at"] {
            let text = v[name].as_str().unwrap_or_else(|| panic!("{name}: {v}"));
            assert!(text.ends_with('Z'), "{name} is not UTC: {text}");
            assert_eq!(
                foundation::time::parse_rfc3339(text),
                v[format!("{name}_unix")].as_i64(),
                "{name}: {v}"
            );
        }
    };
    let r = admin(
        &s,
        reqwest::Method::GET,
        "/admin/v1/pending?state=awaiting_approval",
    )
    .await;
    let waiting: serde_json::Value = r.json().await.unwrap();
    let view = &waiting.as_array().unwrap()[0];
    check(view);
    let id = view["request_id"].as_str().unwrap();
    let approved: serde_json::Value = decide(&s, id, "approve").await.json().await.unwrap();
    check(&approved);
    assert!(approved["updated_at_unix"].as_i64() >= view["created_at_unix"].as_i64());
}
