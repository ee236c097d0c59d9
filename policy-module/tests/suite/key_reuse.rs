//! Reliability P10: a key certified to one device is refused to every other holder (a cloned
//! disk image), while the same device may certify it again; and the migration that records
//! each certificate's key fingerprint works on a database that already holds certificates.

use std::sync::Arc;

use foundation::clock::ManualClock;
use foundation::secret::sha256;
use openssl::pkey::{PKey, Private};
use policy_module::model::{NameAttr, SubjectAttr};
use policy_module::store::Store;
use policy_module::{
    ChallengeRequest, NdesPolicy, Notification, Outcome, PolicyService, Rejection, RequesterInfo,
    ServiceConfig, VerifyError, VerifyRequest,
};

use crate::both;
use crate::harness::{Backend, Harness, T0, enrolled};
use crate::pki::{CsrSpec, TestCa, csr, ec_key};

fn request(csr_der: Vec<u8>, tx: &str) -> VerifyRequest {
    VerifyRequest {
        facts: None,
        csr_der,
        challenge: None,
        transaction_id: tx.to_string(),
        template: None,
        signer_cert_der: None,
        requester: RequesterInfo::default(),
    }
}

async fn verdict(svc: &PolicyService, req: VerifyRequest) -> Result<(), Rejection> {
    match svc.verify_request(req).await {
        Ok(_) => Ok(()),
        Err(VerifyError::Rejected(r)) => Err(r),
        Err(e) => panic!("store failure: {e:?}"),
    }
}

async fn notify_issued(h: &Harness, ca: &TestCa, key: &PKey<Private>, tx: &str) -> Vec<u8> {
    let (der, serial, thumb) = ca.issue(key, 365);
    h.svc
        .notify(Notification {
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

both!(a_key_certified_to_one_device_is_refused_to_others_and_kept_by_its_own);

async fn a_key_certified_to_one_device_is_refused_to_others_and_kept_by_its_own(h: Harness) {
    let ca = TestCa::new();
    let d1 = enrolled(&h, "d1").await;
    let d2 = enrolled(&h, "d2").await;
    let key = ec_key();
    let spec =
        |e: &crate::harness::Enrolled| CsrSpec::matching(&e.profile().expected, &e.challenge());
    verdict(&h.svc, request(csr(&key, &spec(&d1)), "tx-d1"))
        .await
        .unwrap();
    let cert = notify_issued(&h, &ca, &key, "tx-d1").await;

    // d2 runs d1's cloned image: an honest request under its own challenge, d1's key.
    assert_eq!(
        verdict(&h.svc, request(csr(&key, &spec(&d2)), "tx-d2-clone")).await,
        Err(Rejection::KeyCertifiedToAnotherDevice)
    );
    // Nothing was reserved: d2's challenge still serves a request with its own key.
    verdict(&h.svc, request(csr(&ec_key(), &spec(&d2)), "tx-d2"))
        .await
        .unwrap();

    // An mscep_admin password does not launder the key either.
    crate::harness::allow_admin_template(&h.svc, "IPSECIntermediateOffline").await;
    let admin = h
        .svc
        .generate_challenge(ChallengeRequest {
            template: "IPSECIntermediateOffline".into(),
            requester: "admin".into(),
        })
        .await
        .unwrap();
    let router = CsrSpec {
        subject: vec![NameAttr {
            attr: SubjectAttr::CN,
            value: "router-1".into(),
        }],
        challenge: Some(admin.challenge.expose().into()),
        ..CsrSpec::default()
    };
    assert_eq!(
        verdict(&h.svc, request(csr(&key, &router), "tx-admin")).await,
        Err(Rejection::KeyCertifiedToAnotherDevice)
    );

    // d1 renewing with the same key (RFC 8894 allows it) is its own business.
    h.advance(300 * 86_400).await;
    let renewal_spec = CsrSpec {
        challenge: None,
        ..spec(&d1)
    };
    let mut renewal = request(csr(&key, &renewal_spec), "tx-d1-renew");
    renewal.signer_cert_der = Some(cert);
    let grant = h.svc.verify_request(renewal).await.unwrap();
    assert!(grant.renewal);
    assert_eq!(grant.device_id.as_deref(), Some("d1"));
}

/// The certificates table before migration 0002, with one certificate of `device` on the key
/// whose SPKI digest is `spki_hash` (and the request it was granted for).
const OLD_ROWS: [&str; 2] = [
    "INSERT INTO requests (transaction_id, csr_hash, spki_hash, challenge_hash, renewal_of, \
     grant_body, state, created_at, updated_at) VALUES ('tx-old', $1, $2, NULL, NULL, '{}', \
     'issued', 1, 1)",
    "INSERT INTO certificates (serial, thumbprint, device_id, profile_id, profile_version, \
     transaction_id, not_after, der, status, issued_at) VALUES ('0a1b', 'aa', 'old-device', \
     'p1', 1, 'tx-old', 4000000000, $1, 'issued', 1)",
];

/// A directory holding only the first migration: the schema of a database created before
/// key fingerprints were recorded.
fn first_migration_only(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend)
        .join("0001_init.sql");
    std::fs::copy(from, dir.path().join("0001_init.sql")).unwrap();
    dir
}

/// Inserts [`OLD_ROWS`] through any sqlx pool.
macro_rules! insert_old_rows {
    ($pool:expr, $spki_hash:expr) => {{
        sqlx::query(OLD_ROWS[0])
            .bind(vec![1u8; 32])
            .bind($spki_hash.to_vec())
            .execute($pool)
            .await
            .unwrap();
        sqlx::query(OLD_ROWS[1])
            .bind(vec![0x30u8, 0])
            .execute($pool)
            .await
            .unwrap();
    }};
}

/// Opens the migrated store as a harness, checks the backfilled holder and that a device's
/// request with that key is refused.
async fn check_migrated(h: Harness, key: &PKey<Private>, spki_hash: &[u8]) {
    assert_eq!(
        h.svc.store().key_holders(spki_hash).await.unwrap(),
        vec![Some("old-device".to_string())]
    );
    let d2 = enrolled(&h, "d2").await;
    let spec = CsrSpec::matching(&d2.profile().expected, &d2.challenge());
    assert_eq!(
        verdict(&h.svc, request(csr(key, &spec), "tx-new")).await,
        Err(Rejection::KeyCertifiedToAnotherDevice)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_fingerprint_migration_backfills_an_existing_sqlite_database() {
    let key = ec_key();
    let spki_hash = sha256(&key.public_key_to_der().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let old = first_migration_only("sqlite");
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        insert_old_rows!(&pool, spki_hash);
        pool.close().await;
    }
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::open_sqlite(&path, clock.clone()).await.unwrap();
    let h = Harness {
        svc: PolicyService::new(store, ServiceConfig::default()),
        clock,
        backend: Backend::Sqlite { dir },
    };
    check_migrated(h, &key, &spki_hash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_fingerprint_migration_backfills_an_existing_postgres_database() {
    let Some(cluster) = testkit::pg::shared().expect("PostgreSQL for tests") else {
        return;
    };
    let url = cluster.fresh_database().expect("fresh database");
    let key = ec_key();
    let spki_hash = sha256(&key.public_key_to_der().unwrap());
    {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let old = first_migration_only("postgres");
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        insert_old_rows!(&pool, spki_hash);
        pool.close().await;
    }
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::connect_postgres(&url, clock.clone()).await.unwrap();
    let h = Harness {
        svc: PolicyService::new(store, ServiceConfig::default()),
        clock,
        backend: Backend::Postgres { url },
    };
    check_migrated(h, &key, &spki_hash).await;
}
