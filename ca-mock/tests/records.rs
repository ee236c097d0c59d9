//! `GET /api/v1/records` (issue 16 item 1): the CA's issuance, revocation, hold and release
//! records through its authenticated API, by serial, by request id, by time range, paged, on
//! SQLite and on PostgreSQL; clear 400s on bad queries; 401/403 for callers who may not read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ca_api::client::CaClient;
use ca_api::wire::{CaRecord, RecordQuery};
use ca_mock::keys::KeySpec;
use ca_mock::store::{RevocationReason, SqlStore};
use common::*;
use foundation::time::rfc3339;
use serde_json::Value;

const TEMPLATE: &str = "IPSECIntermediateOffline";

/// Three certificates: one revoked, one held and released, one held then retired.
async fn history(ca: &TestCa) -> [String; 3] {
    let mut serials = Vec::new();
    for i in 1..=3 {
        let req = granted_request(
            &format!("r-{i}"),
            TEMPLATE,
            &csr(&ec_key(), "x", false),
            &format!("dev-{i}"),
        );
        serials.push(ca.ndes.issue(&req).await.unwrap().response.serial);
    }
    let p = &ca.policy;
    p.revoke(&serials[0], RevocationReason::KeyCompromise)
        .await
        .unwrap();
    p.revoke(&serials[1], RevocationReason::CertificateHold)
        .await
        .unwrap();
    p.release(&serials[1]).await.unwrap();
    p.revoke(&serials[2], RevocationReason::CertificateHold)
        .await
        .unwrap();
    p.revoke(&serials[2], RevocationReason::CessationOfOperation)
        .await
        .unwrap();
    serials.try_into().unwrap()
}

fn actions(records: &[CaRecord]) -> Vec<(&str, &str)> {
    records
        .iter()
        .map(|r| (r.action.as_str(), r.request_id.as_str()))
        .collect()
}

async fn query(client: &CaClient, q: RecordQuery) -> Vec<CaRecord> {
    let list = client.records(&q).await.unwrap();
    assert_eq!(list.next_after, None, "{q:?} fits one page");
    list.records
}

async fn get(ca: &TestCa, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut rb = reqwest::Client::new().get(format!("{}/api/v1/records?{query}", ca.base));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn suite(ca: TestCa) {
    let serials = history(&ca).await;

    // Everything, oldest first, each with its template, times in both forms, detail by name.
    let all = query(&ca.policy, RecordQuery::default()).await;
    assert_eq!(
        actions(&all),
        [
            ("issued", "r-1"),
            ("issued", "r-2"),
            ("issued", "r-3"),
            ("revoked", "r-1"),
            ("held", "r-2"),
            ("released", "r-2"),
            ("held", "r-3"),
            ("revoked", "r-3"),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for r in &all {
        assert_eq!(r.template.as_deref(), Some(TEMPLATE), "{r:?}");
        assert_eq!(r.at, rfc3339(r.at_unix));
        let who = if r.action == "issued" {
            "ndes"
        } else {
            "policy"
        };
        assert_eq!(r.actor, who, "{r:?}");
    }
    let issued = &all[0];
    assert_eq!(issued.serial, serials[0]);
    assert!(
        issued.detail["issued_under"]
            .as_str()
            .unwrap()
            .starts_with("grant "),
        "{issued:?}"
    );
    assert!(issued.detail["subject"].as_str().unwrap().contains("dev-1"));
    assert_eq!(
        issued.detail["not_after"].as_str().unwrap(),
        rfc3339(issued.detail["not_after_unix"].as_i64().unwrap())
    );
    let reasons: Vec<_> = all[3..]
        .iter()
        .map(|r| r.detail.get("reason").and_then(Value::as_str))
        .collect();
    assert_eq!(
        reasons,
        [
            Some("keyCompromise"),
            Some("certificateHold"),
            None,
            Some("certificateHold"),
            Some("cessationOfOperation"),
        ]
    );

    // By serial, in any accepted spelling.
    let by_serial = query(
        &ca.ndes,
        RecordQuery {
            serial: Some(serials[1].to_uppercase()),
            ..RecordQuery::default()
        },
    )
    .await;
    assert_eq!(
        actions(&by_serial),
        [("issued", "r-2"), ("held", "r-2"), ("released", "r-2")]
    );
    assert!(by_serial.iter().all(|r| r.serial == serials[1]));

    // By request id (the SCEP transactionID).
    let by_request = query(
        &ca.policy,
        RecordQuery {
            request_id: Some("r-3".into()),
            ..RecordQuery::default()
        },
    )
    .await;
    assert_eq!(
        actions(&by_request),
        [("issued", "r-3"), ("held", "r-3"), ("revoked", "r-3")]
    );
    let none = RecordQuery {
        request_id: Some("r-9".into()),
        ..RecordQuery::default()
    };
    assert!(query(&ca.policy, none).await.is_empty());

    // By time range: `since` inclusive, `until` exclusive (exact bounds: see the store suite).
    let first = all[0].at_unix;
    let last = all[7].at_unix;
    let range = |since: i64, until: i64| RecordQuery {
        since: Some(rfc3339(since)),
        until: Some(rfc3339(until)),
        ..RecordQuery::default()
    };
    assert_eq!(query(&ca.policy, range(first, last + 1)).await, all);
    assert!(query(&ca.policy, range(first - 60, first)).await.is_empty());
    let since_last = RecordQuery {
        since: Some(rfc3339(last)),
        ..RecordQuery::default()
    };
    let expected: Vec<_> = all.iter().filter(|r| r.at_unix >= last).cloned().collect();
    assert_eq!(query(&ca.policy, since_last).await, expected);

    // Paging: full pages say where to go on; the pages add up to everything.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = ca
            .policy
            .records(&RecordQuery {
                after,
                limit: Some(3),
                ..RecordQuery::default()
            })
            .await
            .unwrap();
        assert!(page.records.len() <= 3);
        pages.extend(page.records);
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, all);
    // A limit above the cap is capped, not refused.
    let big = RecordQuery {
        limit: Some(1_000_000),
        ..RecordQuery::default()
    };
    assert_eq!(query(&ca.policy, big).await, all);

    // Only the records of templates the caller may use.
    let narrow = CaClient::new(&ca.base, Some(NARROW_TOKEN.into())).unwrap();
    assert!(query(&narrow, RecordQuery::default()).await.is_empty());

    // Bad queries: 400 with a code saying what is wrong.
    for (q, code) in [
        ("serial=xyz", "invalid_serial"),
        ("serial=", "invalid_serial"),
        ("since=yesterday", "invalid_time"),
        ("until=1796599009", "invalid_time"),
        ("limit=0", "invalid_limit"),
        (
            "since=2026-12-08T00:00:00Z&until=2026-12-07T00:00:00Z",
            "invalid_range",
        ),
        ("limit=abc", "invalid_query"),
        ("after=x", "invalid_query"),
        ("serail=0a", "invalid_query"),
    ] {
        let (status, body) = get(&ca, q, Some(POLICY_TOKEN)).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{q}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }

    // Authentication: none or unknown is 401; a caller without the read right is 403.
    for token in [None, Some("wrong-token")] {
        let (status, body) = get(&ca, "", token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    let (status, body) = get(&ca, "", Some(ISSUE_ONLY_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_api_on_sqlite() {
    suite(start(KeySpec::EcP256).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_api_on_postgres() {
    let Some(pg) = testkit::pg::shared().expect("PostgreSQL cluster") else {
        return;
    };
    let store = SqlStore::connect(&pg.fresh_database().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    suite(start_with(dir, KeySpec::EcP256, store).await).await;
}
