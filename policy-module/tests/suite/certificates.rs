//! The certificate inventory searched and paged, and revoked by hand with a reason through the
//! outbox (issue 18), on the store and over the admin API.

use policy_module::admin_certs::CertQuery;
use policy_module::error::AdminError;
use policy_module::model::CertStatus;
use policy_module::store::{Assignment, CertSearch};
use serde_json::{Value, json};

use crate::api::{ADMIN, start};
use crate::both;
use crate::fake_ca::{FakeCa, Mode};
use crate::harness::{Harness, enrolled, profile_spec};
use crate::lifecycle::{issue_all, statuses, worker};

both!(
    search_finds_by_serial_device_and_status_and_pages,
    manual_revocation_is_queued_audited_and_delivered_with_its_reason,
    certificate_routes_search_and_revoke_over_http,
    search_finds_by_subject_case_insensitively_and_backfills_old_rows,
    a_subject_search_reads_a_bounded_window_and_goes_on_from_it,
);

fn query(serial: Option<&str>, device: Option<&str>, status: Option<&str>) -> CertQuery {
    CertQuery {
        serial: serial.map(Into::into),
        device: device.map(Into::into),
        status: status.map(Into::into),
        ..CertQuery::default()
    }
}

async fn serials(h: &Harness, q: CertQuery) -> Vec<String> {
    let page = h
        .svc
        .search_certificates(&q.parse().unwrap())
        .await
        .unwrap();
    page.certificates
        .into_iter()
        .map(|c| c.serial_hex)
        .collect()
}

/// Three certificates: two of d1 (two profiles), one of d2.
async fn three(h: &Harness) -> (Vec<String>, Vec<String>) {
    enrolled(h, "d1").await;
    enrolled(h, "d2").await;
    h.svc.create_profile("p2", profile_spec()).await.unwrap();
    let d1 = Assignment {
        kind: "device".into(),
        id: "d1".into(),
    };
    h.svc.assign("p2", d1).await.unwrap();
    (issue_all(h, "d1").await, issue_all(h, "d2").await)
}

async fn search_finds_by_serial_device_and_status_and_pages(h: Harness) {
    let (d1, d2) = three(&h).await;
    assert_eq!(d1.len(), 2);
    // By serial, in any case and with colons.
    let upper = d1[0].to_uppercase();
    assert_eq!(
        serials(&h, query(Some(&upper), None, None)).await,
        [d1[0].clone()]
    );
    // By device.
    let mut got = serials(&h, query(None, Some("d1"), None)).await;
    got.sort();
    let mut want = d1.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(serials(&h, query(None, Some("d2"), None)).await, d2);
    // By status, after revoking d2's.
    h.svc
        .revoke_certificate(&d2[0], "keyCompromise")
        .await
        .unwrap();
    assert_eq!(serials(&h, query(None, None, Some("revoking"))).await, d2);
    assert_eq!(
        serials(&h, query(None, None, Some("issued"))).await.len(),
        2
    );
    assert!(
        serials(&h, query(None, Some("d2"), Some("issued")))
            .await
            .is_empty()
    );
    // Paged: two pages of two and one, no serial twice, the last page says so.
    let mut q = CertQuery {
        limit: Some(2),
        ..CertQuery::default()
    };
    let first = h
        .svc
        .search_certificates(&q.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(first.certificates.len(), 2);
    q.before = first.next_before.clone();
    assert!(q.before.is_some());
    let second = h
        .svc
        .search_certificates(&q.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(second.certificates.len(), 1);
    assert_eq!(second.next_before, None);
    let mut all: Vec<String> = first
        .certificates
        .iter()
        .chain(&second.certificates)
        .map(|c| c.serial_hex.clone())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3);
    // Bad filters are named 400s.
    for bad in [
        query(Some("xyz"), None, None),
        query(None, Some("a b"), None),
        query(None, None, Some("gone")),
        CertQuery {
            subject: Some("x".repeat(257)),
            ..CertQuery::default()
        },
        CertQuery {
            limit: Some(0),
            ..CertQuery::default()
        },
    ] {
        assert!(
            matches!(bad.parse(), Err(AdminError::Invalid(_))),
            "{bad:?}"
        );
    }
}

fn by_subject(subject: &str) -> CertQuery {
    CertQuery {
        subject: Some(subject.into()),
        ..CertQuery::default()
    }
}

/// Notify records the subject as issued (RFC 4514, last RDN first); the search matches a
/// case-insensitive substring, LIKE's wildcards taken literally, with the other filters and
/// paging; certificates recorded before the column existed are filled in from their DER when
/// the store opens.
async fn search_finds_by_subject_case_insensitively_and_backfills_old_rows(h: Harness) {
    let (d1, d2) = three(&h).await;
    let page = h
        .svc
        .search_certificates(&by_subject("laptop-D2").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(page.certificates.len(), 1);
    assert_eq!(page.certificates[0].serial_hex, d2[0]);
    assert_eq!(
        page.certificates[0].subject.as_deref(),
        Some("CN=LAPTOP-d2,O=Contoso")
    );
    let mut got = serials(&h, by_subject("cn=laptop-d1,o=CONTOSO")).await;
    got.sort();
    let mut want = d1.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(serials(&h, by_subject("contoso")).await.len(), 3);
    for literal in ["%", "_", "LAPTOP-d_", "\\"] {
        assert!(
            serials(&h, by_subject(literal)).await.is_empty(),
            "{literal}"
        );
    }
    // With another filter, and paged.
    let q = CertQuery {
        status: Some("issued".into()),
        ..by_subject("LAPTOP-d1")
    };
    assert_eq!(serials(&h, q).await.len(), 2);
    let mut q = CertQuery {
        limit: Some(1),
        ..by_subject("laptop-d1")
    };
    let first = h
        .svc
        .search_certificates(&q.parse().unwrap())
        .await
        .unwrap();
    q.before = first.next_before.clone();
    let second = h
        .svc
        .search_certificates(&q.parse().unwrap())
        .await
        .unwrap();
    let mut paged: Vec<String> = first
        .certificates
        .iter()
        .chain(&second.certificates)
        .map(|c| c.serial_hex.clone())
        .collect();
    paged.sort();
    assert_eq!(paged, want);

    // Rows from before the column: NULL until the store opens again, then filled in.
    h.ddl("UPDATE certificates SET subject = NULL").await;
    assert!(serials(&h, by_subject("contoso")).await.is_empty());
    let reopened = h.reopen().await;
    let page = reopened
        .search_certificates(&by_subject("LAPTOP-D2").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(page.certificates.len(), 1);
    assert_eq!(
        page.certificates[0].subject.as_deref(),
        Some("CN=LAPTOP-d2,O=Contoso")
    );
}

/// No index serves a substring, so one page reads at most `scan` certificates: a page may
/// hold fewer matches than asked (or none) and still name the next, and following the pages
/// finds every match once.
async fn a_subject_search_reads_a_bounded_window_and_goes_on_from_it(h: Harness) {
    let (d1, d2) = three(&h).await;
    let search = |subject: &str, before: Option<String>| CertSearch {
        subject: Some(subject.into()),
        scan: 1,
        before,
        limit: 50,
        ..CertSearch::default()
    };
    let mut found = Vec::new();
    let mut before = None;
    for _ in 0..5 {
        let page = h
            .svc
            .search_certificates(&search("contoso", before))
            .await
            .unwrap();
        assert!(page.certificates.len() <= 1);
        found.extend(page.certificates.into_iter().map(|c| c.serial_hex));
        before = page.next_before;
        if before.is_none() {
            break;
        }
    }
    assert!(before.is_none(), "the pages end");
    found.sort();
    let mut all = [d1, d2].concat();
    all.sort();
    assert_eq!(found, all);
    // Nothing matches in the first window, yet the search says where to go on.
    let page = h
        .svc
        .search_certificates(&search("nobody", None))
        .await
        .unwrap();
    assert!(page.certificates.is_empty());
    assert!(page.next_before.is_some());
    // The API's searches read a window of SUBJECT_SCAN.
    let q = by_subject("x").parse().unwrap();
    assert_eq!(q.scan, policy_module::admin_certs::SUBJECT_SCAN);
}

async fn manual_revocation_is_queued_audited_and_delivered_with_its_reason(h: Harness) {
    enrolled(&h, "d1").await;
    let serials = issue_all(&h, "d1").await;
    let svc = &h.svc;
    assert!(matches!(
        svc.revoke_certificate(&serials[0], "certificateHold").await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        svc.revoke_certificate(&serials[0], "nonsense").await,
        Err(AdminError::Invalid(_))
    ));
    assert!(matches!(
        svc.revoke_certificate("0badc0de", "keyCompromise").await,
        Err(AdminError::NotFound)
    ));
    assert_eq!(statuses(&h, "d1").await, [CertStatus::Issued]);
    svc.revoke_certificate(&serials[0], "keyCompromise")
        .await
        .unwrap();
    assert_eq!(statuses(&h, "d1").await, [CertStatus::Revoking]);
    // Queued once: a second request is a conflict, not a second outbox entry.
    assert!(matches!(
        svc.revoke_certificate(&serials[0], "superseded").await,
        Err(AdminError::Conflict(_))
    ));
    let audit = svc.store().list_audit(None, 100).await.unwrap();
    let queued: Vec<_> = audit
        .iter()
        .filter(|e| e.event == "revocation_queued")
        .collect();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].serial.as_deref(), Some(serials[0].as_str()));
    assert_eq!(queued[0].actor.as_deref(), Some("admin"));
    assert_eq!(queued[0].reason.as_deref(), Some("keyCompromise"));
    assert_eq!(queued[0].device_id.as_deref(), Some("d1"));
    let ca = FakeCa::new(Mode::Ok);
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 1);
    assert_eq!(
        ca.revoked(),
        [(serials[0].clone(), "keyCompromise".to_owned(), 1)]
    );
    assert_eq!(statuses(&h, "d1").await, [CertStatus::Revoked]);
    assert_eq!(worker(&h, &ca).run_once().await.unwrap(), 0);
}

async fn certificate_routes_search_and_revoke_over_http(h: Harness) {
    enrolled(&h, "d1").await;
    let serials = issue_all(&h, "d1").await;
    let s = start(&h).await;
    let get = |q: String| s.req("get", &format!("/api/v1/certificates{q}"), Some(ADMIN));
    let page: Value = get("?device=d1&status=issued".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["certificates"][0]["serial_hex"], json!(serials[0]));
    assert_eq!(page["next_before"], Value::Null);
    let r = get("?status=nope".into()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let path = format!("/api/v1/certificates/{}/revoke", serials[0]);
    let r = s
        .req("post", &path, None)
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(statuses(&h, "d1").await, [CertStatus::Issued]);
    let r = s
        .req("post", "/api/v1/certificates/zz/revoke", Some(ADMIN))
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .req("post", &path, Some(ADMIN))
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = s
        .req("post", &path, Some(ADMIN))
        .json(&json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let page: Value = get("?status=revoking".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["certificates"][0]["revocation_reason"],
        "keyCompromise"
    );
}
