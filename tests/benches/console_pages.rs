//! The console's pages with 10,000 devices and 100,000 certificates (issue 18): render times
//! as a browser sees them (HTTP on loopback, signed in), median and p99 over N requests each.
//!
//! The lab starts as the tests start it (SQLite stores in a temp directory), one device enrolls
//! through the real path (its certificate and transaction are the ones the detail pages open),
//! then the stores are filled with bulk SQL that clones that device's rows under new ids: the
//! policy store's devices, certificates (every tenth revoked) and audit records, and the CA's
//! certificates and issuance records (neither store has a bulk API; 100,000 HTTP enrollments
//! would take hours). The query plans behind the pages are printed after the figures (copies of
//! the statements the stores run, with literals; policy-module's `lookup_plans` checks the
//! point lookups themselves).
//!
//! `cargo bench -p scep-lab-tests --bench console_pages` (release), or
//! `cargo test -p scep-lab-tests --bench console_pages` (debug);
//! after `--`: `--devices N --certs N --requests N` (10,000, 100,000, 50 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use scep_lab_tests::console::ConsoleClient;
use scep_lab_tests::*;
use sqlx::SqlitePool;

struct Args {
    devices: i64,
    certs: i64,
    requests: usize,
}

fn args() -> Args {
    let mut a = Args {
        devices: 10_000,
        certs: 100_000,
        requests: 50,
    };
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        match w[0].as_str() {
            "--devices" => a.devices = w[1].parse().expect("--devices N"),
            "--certs" => a.certs = w[1].parse().expect("--certs N"),
            "--requests" => a.requests = w[1].parse().expect("--requests N"),
            _ => {}
        }
    }
    a
}

async fn pool(path: &Path) -> SqlitePool {
    SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// Runs one seeding statement with `n` rows of `seq(i)` (1..=n) in scope.
async fn seed(pool: &SqlitePool, n: i64, insert: &str) {
    let sql = format!(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) {insert}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
}

/// Devices `bench-00001`.., certificates `7f..<i>` (device `i % devices`, every tenth revoked),
/// one `challenge_consumed` audit record per certificate; all cloned from `template`'s rows.
async fn seed_policy(path: &Path, template: &str, serial: &str, devices: i64, certs: i64) {
    let pool = pool(path).await;
    seed(
        &pool,
        devices,
        &format!(
            "INSERT INTO devices (id, body, state, credential_hash, created_at, updated_at) \
             SELECT printf('bench-%05d', i), json_set(body, '$.id', printf('bench-%05d', i), \
             '$.name', printf('BENCH-%05d', i), '$.serial_number', printf('SN-%05d', i), \
             '$.owner_upn', printf('user%05d@contoso.example', i)), state, randomblob(32), \
             created_at - i, updated_at - i FROM devices, seq WHERE devices.id = '{template}'"
        ),
    )
    .await;
    seed(
        &pool,
        certs,
        &format!(
            "INSERT INTO certificates (serial, thumbprint, device_id, profile_id, \
             profile_version, transaction_id, not_after, der, status, revocation_reason, \
             issued_at, revoked_at, installed_at, spki_hash, subject) \
             SELECT printf('7f%030x', i), lower(hex(randomblob(32))), \
             printf('bench-%05d', i % {devices} + 1), profile_id, profile_version, \
             printf('bench-tx-%06d', i), not_after, der, \
             CASE WHEN i % 10 = 0 THEN 'revoked' ELSE 'issued' END, \
             CASE WHEN i % 10 = 0 THEN 'superseded' END, issued_at - {certs} - 1 + i, \
             CASE WHEN i % 10 = 0 THEN issued_at END, installed_at, randomblob(32), \
             printf('O=scep-lab,OU=Devices,CN=BENCH-%05d', i % {devices} + 1) \
             FROM certificates, seq WHERE certificates.serial = '{serial}'"
        ),
    )
    .await;
    seed(
        &pool,
        certs,
        &format!(
            "INSERT INTO audit (at, event, device_id, profile_id, transaction_id, serial, \
             profile_version, esc1_exposed) \
             SELECT {at}, 'challenge_consumed', printf('bench-%05d', i % {devices} + 1), \
             'bench-profile', printf('bench-tx-%06d', i), printf('7f%030x', i), 1, FALSE \
             FROM seq",
            at = foundation::clock::unix_now() - 86_400,
        ),
    )
    .await;
    pool.close().await;
}

/// The CA's side of the same certificates: its rows (cloned from the enrolled one) and one
/// `issued` record each.
async fn seed_ca(path: &Path, serial: &str, certs: i64) {
    let pool = pool(path).await;
    seed(
        &pool,
        certs,
        &format!(
            "INSERT INTO certificates (serial, request_id, csr_sha256, template, subject, sans, \
             public_key_sha256, der, not_before, not_after, issued_at, issued_to, status, \
             revoked_at, reason, issued_under) \
             SELECT printf('7f%030x', i), printf('bench-req-%06d', i), csr_sha256, template, \
             printf('CN=BENCH-%05d', i), sans, lower(hex(randomblob(32))), der, not_before, \
             not_after, issued_at, issued_to, CASE WHEN i % 10 = 0 THEN 'revoked' ELSE 'good' END, \
             CASE WHEN i % 10 = 0 THEN issued_at END, CASE WHEN i % 10 = 0 THEN 'superseded' END, \
             issued_under FROM certificates, seq WHERE certificates.serial = '{serial}'"
        ),
    )
    .await;
    seed(
        &pool,
        certs,
        "INSERT INTO audit_log (at, action, serial, request_id, actor, detail) \
         SELECT 0, 'issued', printf('7f%030x', i), printf('bench-req-%06d', i), 'bench', '' \
         FROM seq",
    )
    .await;
    pool.close().await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Prints SQLite's plan for each statement (the ones the pages' API calls run).
async fn plans(path: &Path, statements: &[(&str, &str)]) {
    let pool = pool(path).await;
    for (name, sql) in statements {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&pool)
                .await
                .unwrap();
        let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        println!("  {name}: {}", plan.join(" / "));
    }
    pool.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, cert) = lab.enrolled_device("BENCH-REAL", PROFILE).await.unwrap();
    let serial = normalize_serial(&cert.serial_hex);
    let data = lab.data_dir().to_owned();
    let t = Instant::now();
    seed_policy(
        &data.join("policy/policy.db"),
        &d.id,
        &serial,
        a.devices,
        a.certs,
    )
    .await;
    seed_ca(&data.join("ca/ca.db"), &serial, a.certs).await;
    println!(
        "seeded {} devices and {} certificates (policy store, CA store, audit) in {:.1} s",
        a.devices,
        a.certs,
        t.elapsed().as_secs_f64()
    );

    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    assert_eq!(
        c.login("", lab.tokens().console_admin.expose())
            .await
            .unwrap()
            .status,
        303
    );
    let deep = (a.devices as usize).div_ceil(50).max(1);
    let mid = a.devices / 2 + 1;
    let dev = format!("bench-{mid:05}");
    let mid_serial = format!("7f{:030x}", a.certs / 2);
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/".into()),
        ("devices, page 1", "/devices".into()),
        ("devices, last page", format!("/devices?page={deep}")),
        (
            "devices, search by owner",
            format!("/devices?q=user{mid:05}"),
        ),
        ("device detail", format!("/devices/{dev}")),
        (
            "certificates, by serial",
            format!("/certificates?serial={mid_serial}"),
        ),
        (
            "certificates, by device",
            format!("/certificates?device={dev}"),
        ),
        (
            "certificates, by subject (recent match)",
            format!("/certificates?subject=cn%3Dbench-{:05}", a.devices),
        ),
        (
            "certificates, by subject (oldest match)",
            "/certificates?subject=cn%3Dbench-00002".into(),
        ),
        (
            "certificates, by subject (no match)",
            "/certificates?subject=nobody".into(),
        ),
        (
            "certificates, by status revoked",
            "/certificates?status=revoked".into(),
        ),
        ("certificates, unfiltered", "/certificates".into()),
        (
            "certificate detail (chain, OCSP)",
            format!("/certificates/{serial}"),
        ),
        (
            "transaction",
            format!("/transactions/{}", cert.transaction_id),
        ),
        ("audit", "/audit".into()),
        ("audit, one device", format!("/audit?device={dev}")),
        ("pending", "/pending".into()),
    ];
    println!("\n| page | path | median ms | p99 ms | bytes |\n|---|---|---:|---:|---:|");
    for (name, path) in &pages {
        let first = c.get(path).await.unwrap();
        assert_eq!(first.status, 200, "{path}: {}", first.body);
        let mut ms = Vec::with_capacity(a.requests);
        for _ in 0..a.requests {
            let t = Instant::now();
            let r = c.get(path).await.unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.status, 200, "{path}");
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "| {name} | `{path}` | {:.1} | {:.1} | {} |",
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            first.body.len()
        );
    }

    println!("\nquery plans (SQLite) behind the pages:");
    let cols = "serial, status, issued_at";
    plans(
        &data.join("policy/policy.db"),
        &[
            ("devices, one page by id", "SELECT body, state, created_at, updated_at FROM devices WHERE state <> 'deleted' ORDER BY id LIMIT 50 OFFSET 9950"),
            ("devices, count", "SELECT COUNT(*) FROM devices WHERE state <> 'deleted'"),
            ("devices, search", "SELECT body FROM devices WHERE state <> 'deleted' AND (id LIKE '%x%' ESCAPE '\\' OR json_extract(body, '$.name') LIKE '%x%' ESCAPE '\\' OR json_extract(body, '$.serial_number') LIKE '%x%' ESCAPE '\\' OR json_extract(body, '$.owner_upn') LIKE '%x%' ESCAPE '\\') ORDER BY id LIMIT 50 OFFSET 0"),
            ("device by id", "SELECT body FROM devices WHERE id = 'x'"),
            ("certificates of a device", "SELECT serial FROM certificates WHERE device_id = 'x' ORDER BY issued_at DESC, serial"),
            ("certificate search, unfiltered", &format!("SELECT {cols} FROM certificates ORDER BY issued_at DESC, serial DESC LIMIT 51")),
            ("certificate search, by status", &format!("SELECT {cols} FROM certificates WHERE status = 'revoked' ORDER BY issued_at DESC, serial DESC LIMIT 51")),
            ("certificate search, by device", &format!("SELECT {cols} FROM certificates WHERE device_id = 'x' ORDER BY issued_at DESC, serial DESC LIMIT 51")),
            ("certificate search, by serial", &format!("SELECT {cols} FROM certificates WHERE serial = 'x' ORDER BY issued_at DESC, serial DESC LIMIT 51")),
            ("certificate search, by subject (a window of 10,000)", &format!("SELECT {cols} FROM (SELECT {cols}, subject FROM certificates ORDER BY issued_at DESC, serial DESC LIMIT 10000) AS w WHERE subject LIKE '%x%' ESCAPE '\\' ORDER BY issued_at DESC, serial DESC LIMIT 51")),
            ("certificate search, by subject: end of the window", "SELECT serial FROM certificates ORDER BY issued_at DESC, serial DESC LIMIT 1 OFFSET 9999"),
            ("certificate search, next page", &format!("SELECT {cols} FROM certificates WHERE (issued_at < (SELECT issued_at FROM certificates WHERE serial = 'x') OR (issued_at = (SELECT issued_at FROM certificates WHERE serial = 'x') AND serial < 'x')) ORDER BY issued_at DESC, serial DESC LIMIT 51")),
            ("audit, latest", "SELECT id FROM audit ORDER BY id DESC LIMIT 300"),
            ("audit, one device", "SELECT id FROM audit WHERE device_id = 'x' ORDER BY id DESC LIMIT 300"),
            ("device history", "SELECT id FROM audit WHERE device_id = 'x' ORDER BY id DESC LIMIT 50"),
            ("outbox pending", "SELECT id FROM outbox WHERE state = 'pending' ORDER BY id"),
        ],
    )
    .await;
    plans(
        &data.join("ca/ca.db"),
        &[(
            "CA records, first page",
            "SELECT audit_log.id FROM audit_log LEFT JOIN certificates ON certificates.serial = audit_log.serial ORDER BY audit_log.id LIMIT 1000",
        ), (
            "CA certificate by serial",
            "SELECT der FROM certificates WHERE serial = 'x'",
        )],
    )
    .await;
}
