//! F10 (reliability.md part 3 (c)): the CA's SQLite database runs out of space (forced with
//! `PRAGMA max_page_count`). Issuance fails closed (an error, no certificate without its
//! record), reads keep working (records, OCSP, the CRL), nothing is corrupted, and issuance
//! recovers once space returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ca_mock::keys::KeySpec;
use ca_mock::store::{CertStore, SqlStore};
use common::{call, csr, ec_key, issue_request};
use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspRequest, OcspResponse};
use openssl::x509::X509;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_sqlite_full_fails_closed_reads_keep_working_and_issuance_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.db");
    // Create and migrate, then reopen on one connection whose database may not grow.
    SqlStore::sqlite(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
        .close()
        .await;
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {}",
        pages + 4
    )))
    .execute(&pool)
    .await
    .unwrap();
    let store = SqlStore::on_migrated_pool(foundation::sql::Db::Sqlite(
        pool.clone(),
        Default::default(),
    ));
    let ca = common::start_with(dir, KeySpec::EcP256, store.clone()).await;

    // Issue until the database is full.
    let mut issued = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let req = issue_request(
            &format!("full-{i}"),
            "IPSECIntermediateOffline",
            &csr(&ec_key(), "x", false),
            &format!("dev-{i}"),
        );
        match ca.ca().issue("ndes-proxy", &call(&req)).await {
            Ok(r) => issued.push(r),
            Err(e) => {
                refused = Some((req, e));
                break;
            }
        }
    }
    let (req, err) = refused.expect("the database never filled up");
    assert!(
        !issued.is_empty(),
        "nothing fit before the database was full"
    );
    assert!(
        matches!(err, ca_mock::error::CaError::Store(_)),
        "full database gave {err:?}"
    );
    // Fail closed: the refused request left no record.
    assert!(
        store
            .get_by_request_id(&req.request_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count().await.unwrap(), issued.len() as i64);

    // Reads keep working: the records, OCSP and the CRL.
    let first = &issued[0];
    assert!(store.get(&first.serial.to_hex()).await.unwrap().is_some());
    let cert = X509::from_der(&first.der).unwrap();
    let issuer = ca.ca().material().issuing.clone();
    let id = || OcspCertId::from_cert(MessageDigest::sha1(), &cert, &issuer).unwrap();
    let mut ocsp = OcspRequest::new().unwrap();
    ocsp.add_id(id()).unwrap();
    let answer = ca.ca().ocsp(&ocsp.to_der().unwrap()).await;
    let basic = OcspResponse::from_der(&answer).unwrap().basic().unwrap();
    assert_eq!(
        basic.find_status(&id()).unwrap().status,
        OcspCertStatus::GOOD
    );
    assert!(!ca.ca().crl().await.unwrap().der.is_empty());

    // Space returns: the same request is issued, and the database is intact.
    sqlx::query("PRAGMA max_page_count = 1073741823")
        .execute(&pool)
        .await
        .unwrap();
    let retried = ca.ca().issue("ndes-proxy", &call(&req)).await.unwrap();
    assert!(!retried.replayed);
    assert_eq!(store.count().await.unwrap(), issued.len() as i64 + 1);
    assert!(store.integrity_check().await.unwrap().is_empty());
    ca.stop().await;
}
