//! ca-mock throughput: issuances/s, OCSP responses/s, and CRL generation time and size for
//! 100k and 1M revoked entries. Run in release:
//!
//! ```text
//! cargo bench -p ca-mock --bench ca_throughput            # full run (1M CRL included)
//! cargo bench -p ca-mock --bench ca_throughput -- --quick # smaller counts, no 1M CRL
//! cargo bench -p ca-mock --bench ca_throughput -- --scale 1000000  # a store of 1M issued
//! cargo bench -p ca-mock --bench ca_throughput -- --ocsp-during-crl 1000000  # L8
//! ```
//!
//! `--ocsp-during-crl N` (also part of the full run at 100k): OCSP latency, one request at a
//! time, on an idle CA and while a CRL with N revoked entries is regenerated (catalogue L8).
//! The full run also times the RFC 5280 profile lint every issuance runs (P35).
//!
//! `--scale N` fills a store with N issued certificates (10% of them revoked; ~800-byte
//! certificate blobs, bulk SQL), then measures on it: issuance rate against an empty store
//! (alternating runs), the store's status lookup and a full OCSP response one at a time
//! (p50/p99), and the CRL regeneration.
//!
//! Everything runs in-process against a durable SQLite store (WAL, synchronous=FULL) in a temp
//! directory, with an RSA-2048 issuing CA; a second pass measures issuance over HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use ca_api::{GrantKey, GrantStatement, GrantVerifier, IssueCall};
use ca_mock::keys::KeySpec;
use ca_mock::store::SqlStore;
use ca_mock::template::Template;
use ca_mock::{CaMaterial, CaSettings, CertificateAuthority, InitSource};
use foundation::clock::SystemClock;
use foundation::names::{NameAttr, SubjectAttr};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ocsp::{OcspCertId, OcspRequest};
use openssl::pkey::PKey;
use openssl::x509::{X509, X509NameBuilder, X509ReqBuilder};

fn csr_der(cn: &str) -> Vec<u8> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut b = X509ReqBuilder::new().unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    b.set_subject_name(&n.build()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

fn request(i: usize, csr: &[u8]) -> IssueCall {
    IssueCall {
        request_id: format!("bench-{i}"),
        template: "IPSECIntermediateOffline".into(),
        csr_der: csr.to_vec(),
        subject: vec![NameAttr {
            attr: SubjectAttr::CN,
            value: format!("dev-{i}"),
        }],
        sans: vec![],
        validity_days: None,
        ..IssueCall::default()
    }
}

/// The policy module's grant key, as the CA trusts it (docs/decisions.md #10).
fn grant_key() -> &'static GrantKey {
    static KEY: std::sync::OnceLock<GrantKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| GrantKey::generate().unwrap())
}

/// The same request as the HTTP API's JSON body, with the grant the policy module would sign
/// for exactly it (an API caller issues nothing without one).
fn wire(call: &IssueCall) -> ca_api::wire::IssueRequest {
    let validity_days = call.validity_days.unwrap_or(30);
    let spki = openssl::x509::X509Req::from_der(&call.csr_der)
        .and_then(|req| req.public_key())
        .and_then(|key| key.public_key_to_der())
        .unwrap();
    let now = foundation::clock::unix_now();
    let statement = GrantStatement {
        v: 0,
        key_id: String::new(),
        request_id: call.request_id.clone(),
        spki_sha256: hex::encode(openssl::sha::sha256(&spki)),
        template: call.template.clone(),
        subject: call.subject.clone(),
        sans: call.sans.clone(),
        key_usage: vec![],
        extended_key_usages: vec![],
        validity_days,
        issued_at: now,
        expires_at: now + 600,
    };
    ca_api::wire::IssueRequest {
        request_id: call.request_id.clone(),
        template: call.template.clone(),
        csr: base64::engine::general_purpose::STANDARD.encode(&call.csr_der),
        subject: call.subject.clone(),
        sans: call.sans.clone(),
        validity_days: Some(validity_days),
        grant: Some(grant_key().sign(statement).unwrap()),
        ..Default::default()
    }
}

async fn new_ca(dir: &std::path::Path, db: &str) -> Arc<CertificateAuthority> {
    let pki = dir.join("pki");
    if !pki.exists() {
        let source = InitSource::Generate {
            key: KeySpec::Rsa2048,
            root_cn: "Bench Root".into(),
            issuing_cn: "Bench Issuing".into(),
            org: None,
            root_days: 3650,
            issuing_days: 1825,
        };
        ca_mock::init(&pki, &source, None).unwrap();
    }
    let store = SqlStore::sqlite(&format!("sqlite://{}", dir.join(db).display()))
        .await
        .unwrap();
    let mut settings = CaSettings::new("http://127.0.0.1:8180");
    settings.crl_path = Some(dir.join(format!("{db}.crl")));
    settings.grants = GrantVerifier::of_key(grant_key(), 600).unwrap();
    Arc::new(
        CertificateAuthority::new(
            CaMaterial::load(&pki, None).unwrap(),
            Template::builtin().unwrap(),
            Arc::new(store),
            Arc::new(SystemClock),
            settings,
        )
        .unwrap(),
    )
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{n} in {:.2} s = {:.0}/s",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    )
}

async fn bench_issuance(
    ca: &Arc<CertificateAuthority>,
    n: usize,
    concurrency: usize,
) -> Vec<String> {
    let csrs: Vec<Vec<u8>> = (0..64).map(|i| csr_der(&format!("k{i}"))).collect();
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (ca, next, csrs) = (Arc::clone(ca), Arc::clone(&next), csrs.clone());
        tasks.spawn(async move {
            let mut serials = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break serials;
                }
                let out = ca
                    .issue("bench", &request(i, &csrs[i % csrs.len()]))
                    .await
                    .unwrap();
                serials.push(out.serial.to_hex());
            }
        });
    }
    let mut serials = Vec::new();
    while let Some(r) = tasks.join_next().await {
        serials.extend(r.unwrap());
    }
    let elapsed = start.elapsed();
    assert_eq!(serials.len(), n);
    println!(
        "issuance (in-process, SQLite FULL, concurrency {concurrency}): {}",
        rate(n, elapsed)
    );
    serials
}

async fn bench_http_issuance(ca: Arc<CertificateAuthority>, n: usize, concurrency: usize) {
    use ca_mock::auth::{Caller, Callers, Operation, hash_token};
    let callers = Callers::new(vec![
        Caller::new(
            "bench",
            &hash_token("bench-token"),
            vec!["*".into()],
            vec![Operation::Issue],
        )
        .unwrap(),
    ])
    .unwrap();
    let state = ca_mock::AppState {
        ca,
        callers: Arc::new(callers),
        crl_refresh: Duration::from_secs(3600),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ca_mock::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let client = ca_api::client::CaClient::new(&base, Some("bench-token".into())).unwrap();
    let csrs: Vec<Vec<u8>> = (0..64).map(|i| csr_der(&format!("h{i}"))).collect();
    // Requests and their grants are built before the window: the policy module's work.
    let requests: Arc<Vec<_>> = Arc::new(
        (0..n)
            .map(|i| wire(&request(1_000_000 + i, &csrs[i % csrs.len()])))
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, requests) = (client.clone(), Arc::clone(&next), Arc::clone(&requests));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let out = client.issue(&requests[i]).await.unwrap();
                assert!(out.created);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    println!(
        "issuance (HTTP loopback, SQLite FULL, concurrency {concurrency}): {}",
        rate(n, start.elapsed())
    );
    let _ = stop.send(());
    let _ = server.await;
}

async fn bench_ocsp(
    ca: &Arc<CertificateAuthority>,
    serials: &[String],
    n: usize,
    concurrency: usize,
) {
    let issuer = ca.material().issuing.clone();
    let mut requests = Vec::new();
    for s in serials.iter().take(64) {
        let rec = ca.store().get(s).await.unwrap().unwrap();
        let leaf = X509::from_der(&rec.cert.der).unwrap();
        let mut req = OcspRequest::new().unwrap();
        req.add_id(OcspCertId::from_cert(MessageDigest::sha1(), &leaf, &issuer).unwrap())
            .unwrap();
        requests.push(req.to_der().unwrap());
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (ca, next, requests) = (Arc::clone(ca), Arc::clone(&next), requests.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let resp = ca.ocsp(&requests[i % requests.len()]).await;
                assert!(resp.len() > 100);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    println!(
        "OCSP responses (in-process, RSA-2048 signed, concurrency {concurrency}): {}",
        rate(n, start.elapsed())
    );
}

/// Bulk-inserts `n` revoked certificates into `pool` (one transaction per 500 rows).
async fn fill_revoked(pool: &sqlx::SqlitePool, n: usize) {
    let reasons = [
        "keyCompromise",
        "cessationOfOperation",
        "superseded",
        "affiliationChanged",
    ];
    let batch = 500;
    for chunk in 0..n.div_ceil(batch) {
        let mut tx = pool.begin().await.unwrap();
        let mut sql = String::from(
            "INSERT INTO certificates (serial, request_id, csr_sha256, template, subject, sans, \
             public_key_sha256, der, not_before, not_after, issued_at, issued_to, status, revoked_at, reason) VALUES ",
        );
        let rows = (chunk * batch..((chunk + 1) * batch).min(n)).collect::<Vec<_>>();
        for (j, &i) in rows.iter().enumerate() {
            let serial = foundation::Serial::random().unwrap().to_hex();
            let reason = reasons[i % reasons.len()];
            if j > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('{serial}','crl-{i}','x','IPSECIntermediateOffline','CN=x','[]','x',x'30',0,0,0,'bench','revoked',{},'{reason}')",
                1_750_000_000 + i as i64
            ));
        }
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

/// Fills a fresh store with `n` revoked certificates (bulk SQL, one transaction per batch),
/// then times a full CRL build: DB read, DER encoding, signature and atomic file write.
async fn bench_crl(dir: &std::path::Path, n: usize) {
    let db = format!("crl-{n}.db");
    let ca = new_ca(dir, &db).await;
    let foundation::sql::Db::Sqlite(pool, _) =
        SqlStore::sqlite(&format!("sqlite://{}", dir.join(&db).display()))
            .await
            .unwrap()
            .db()
            .clone()
    else {
        unreachable!()
    };
    let fill = Instant::now();
    fill_revoked(&pool, n).await;
    println!(
        "CRL {n}: filled store in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let read = Instant::now();
    let rows = ca.store().revoked().await.unwrap().len();
    let read = read.elapsed();
    assert_eq!(rows, n);
    let start = Instant::now();
    let snap = ca.regenerate_crl().await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(snap.entries, n);
    println!(
        "CRL generation with {n} revoked entries: {:.2} s, {} bytes ({:.1} MB, {:.1} bytes/entry)",
        elapsed.as_secs_f64(),
        snap.der.len(),
        snap.der.len() as f64 / 1e6,
        snap.der.len() as f64 / n as f64
    );
    println!(
        "  (of which reading the {n} rows from SQLite: about {:.2} s)",
        read.as_secs_f64()
    );
    let parse = Instant::now();
    let crl = openssl::x509::X509Crl::from_der(&snap.der).unwrap();
    assert!(
        crl.verify(&ca.material().issuing.public_key().unwrap())
            .unwrap()
    );
    assert_eq!(crl.get_revoked().unwrap().len(), n);
    println!(
        "  (OpenSSL parse + verify of that CRL: {:.2} s)",
        parse.elapsed().as_secs_f64()
    );
}

/// Reliability catalogue L8: OCSP latency while a CRL of `n` revoked entries is regenerated.
/// One client asks OCSP for real certificates one request at a time: first on an idle CA,
/// then while `regenerate_crl` reads, encodes, signs and writes the large CRL.
async fn bench_ocsp_during_crl(dir: &std::path::Path, n: usize) {
    let db = format!("ocsp-crl-{n}.db");
    let ca = new_ca(dir, &db).await;
    let foundation::sql::Db::Sqlite(pool, _) =
        SqlStore::sqlite(&format!("sqlite://{}", dir.join(&db).display()))
            .await
            .unwrap()
            .db()
            .clone()
    else {
        unreachable!()
    };
    fill_revoked(&pool, n).await;
    let serials = bench_issuance(&ca, 64, 8).await;
    let issuer = ca.material().issuing.clone();
    let mut requests = Vec::new();
    for s in &serials {
        let rec = ca.store().get(s).await.unwrap().unwrap();
        let leaf = X509::from_der(&rec.cert.der).unwrap();
        let mut req = OcspRequest::new().unwrap();
        req.add_id(OcspCertId::from_cert(MessageDigest::sha1(), &leaf, &issuer).unwrap())
            .unwrap();
        requests.push(req.to_der().unwrap());
    }
    let ask = |i: usize| {
        let (ca, req) = (Arc::clone(&ca), requests[i % requests.len()].clone());
        async move {
            let t = Instant::now();
            let resp = ca.ocsp(&req).await;
            assert!(resp.len() > 100);
            t.elapsed().as_secs_f64() * 1000.0
        }
    };
    let mut idle = Vec::new();
    for i in 0..1000 {
        idle.push(ask(i).await);
    }
    idle.sort_by(f64::total_cmp);
    let regen = {
        let ca = Arc::clone(&ca);
        tokio::spawn(async move {
            let t = Instant::now();
            let snap = ca.regenerate_crl().await.unwrap();
            (snap.entries, t.elapsed())
        })
    };
    let mut during = Vec::new();
    let mut i = 0;
    while !regen.is_finished() {
        during.push(ask(i).await);
        i += 1;
    }
    let (entries, took) = regen.await.unwrap();
    assert_eq!(entries, n);
    during.sort_by(f64::total_cmp);
    let show = |v: &[f64]| {
        if v.is_empty() {
            return "no request finished".to_owned();
        }
        format!(
            "{} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            percentile(v, 50.0),
            percentile(v, 99.0),
            v.last().copied().unwrap_or(0.0)
        )
    };
    println!("OCSP one at a time, idle CA: {}", show(&idle));
    println!(
        "OCSP one at a time while a CRL of {n} revoked entries is regenerated ({:.2} s): {}",
        took.as_secs_f64(),
        show(&during)
    );
}

/// P35: what the RFC 5280 profile lint costs per certificate (it runs on every issuance).
async fn bench_lint(dir: &std::path::Path, n: usize) {
    let ca = new_ca(dir, "lint.db").await;
    let serials = bench_issuance(&ca, 16, 4).await;
    let mut ders = Vec::new();
    for s in &serials {
        let r = ca.store().get(s).await.unwrap().unwrap();
        ders.push((r.cert.der, r.cert.issued_at));
    }
    let start = Instant::now();
    for i in 0..n {
        let (der, at) = &ders[i % ders.len()];
        assert!(ca.lint(der, *at).is_empty());
    }
    let took = start.elapsed();
    println!(
        "P35 lint of an issued certificate: {:.1} us each ({n} runs, one core)",
        took.as_secs_f64() * 1e6 / n as f64
    );
}

/// Bulk-fills `pool` with `n` issued certificates, every tenth revoked; returns some serials.
async fn fill_issued(pool: &sqlx::SqlitePool, n: usize) -> Vec<String> {
    let mut sample = Vec::new();
    let batch = 500;
    for chunk in 0..n.div_ceil(batch) {
        let mut tx = pool.begin().await.unwrap();
        let mut sql = String::from(
            "INSERT INTO certificates (serial, request_id, csr_sha256, template, subject, sans, \
             public_key_sha256, der, not_before, not_after, issued_at, issued_to, status, revoked_at, reason) VALUES ",
        );
        for (j, i) in (chunk * batch..((chunk + 1) * batch).min(n)).enumerate() {
            let serial = foundation::Serial::random().unwrap().to_hex();
            if i % 997 == 0 {
                sample.push(serial.clone());
            }
            let (status, at, reason) = if i % 10 == 0 {
                (
                    "revoked",
                    (1_750_000_000 + i as i64).to_string(),
                    "'superseded'",
                )
            } else {
                ("good", "NULL".to_owned(), "NULL")
            };
            if j > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('{serial}','seed-{i}',hex(randomblob(32)),'IPSECIntermediateOffline','CN=dev-{i}','[]',\
                 hex(randomblob(32)),randomblob(800),0,2000000000,0,'bench','{status}',{at},{reason})"
            ));
        }
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    sample
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Lookups one at a time: the store's status row (what OCSP reads), then a whole signed OCSP
/// response; p50/p99 in milliseconds.
async fn bench_lookups(ca: &Arc<CertificateAuthority>, serials: &[String], issued: &[String]) {
    let mut status_ms = Vec::new();
    for s in serials.iter().cycle().take(5000) {
        let t = Instant::now();
        assert!(ca.store().status(s).await.unwrap().is_some());
        status_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    status_ms.sort_by(f64::total_cmp);
    println!(
        "  store status lookup ({} lookups of seeded serials): p50 {:.3} ms, p99 {:.3} ms",
        status_ms.len(),
        percentile(&status_ms, 50.0),
        percentile(&status_ms, 99.0)
    );
    let issuer = ca.material().issuing.clone();
    let mut requests = Vec::new();
    for s in issued.iter().take(200) {
        let rec = ca.store().get(s).await.unwrap().unwrap();
        let leaf = X509::from_der(&rec.cert.der).unwrap();
        let mut req = OcspRequest::new().unwrap();
        req.add_id(OcspCertId::from_cert(MessageDigest::sha1(), &leaf, &issuer).unwrap())
            .unwrap();
        requests.push(req.to_der().unwrap());
    }
    let mut ocsp_ms = Vec::new();
    for r in requests.iter().cycle().take(1000) {
        let t = Instant::now();
        assert!(ca.ocsp(r).await.len() > 100);
        ocsp_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ocsp_ms.sort_by(f64::total_cmp);
    println!(
        "  OCSP response, one at a time ({} requests): p50 {:.2} ms, p99 {:.2} ms",
        ocsp_ms.len(),
        percentile(&ocsp_ms, 50.0),
        percentile(&ocsp_ms, 99.0)
    );
}

/// A store of `n` issued certificates against an empty one.
async fn bench_scale(dir: &std::path::Path, n: usize) {
    let big = new_ca(dir, "scale.db").await;
    let foundation::sql::Db::Sqlite(pool, _) =
        SqlStore::sqlite(&format!("sqlite://{}", dir.join("scale.db").display()))
            .await
            .unwrap()
            .db()
            .clone()
    else {
        unreachable!()
    };
    let fill = Instant::now();
    let seeded = fill_issued(&pool, n).await;
    println!(
        "scale: filled a store with {n} issued certificates (10% revoked) in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let per_run = 1000;
    let mut issued = Vec::new();
    for round in 0..2 {
        let empty = new_ca(dir, &format!("empty-{round}.db")).await;
        print!("  empty store, round {round}: ");
        bench_issuance(&empty, per_run, 32).await;
        print!("  {n}-row store, round {round}: ");
        issued = bench_issuance(&big, per_run, 32).await;
        // Request ids must stay unique in the big store: move on past this round's ids.
        sqlx::query(
            "UPDATE certificates SET request_id = 'r' || serial WHERE request_id LIKE 'bench-%'",
        )
        .execute(&pool)
        .await
        .unwrap();
    }
    bench_lookups(&big, &seeded, &issued).await;
    let start = Instant::now();
    let snap = big.regenerate_crl().await.unwrap();
    println!(
        "  CRL regeneration with {} revoked entries in a {n}-row store: {:.2} s ({:.1} MB)",
        snap.entries,
        start.elapsed().as_secs_f64(),
        snap.der.len() as f64 / 1e6
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--crl-only N`: just the CRL measurement for N entries (for profiling).
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = args
        .iter()
        .position(|a| a == "--crl-only")
        .and_then(|i| args.get(i + 1))
    {
        let dir = tempfile::tempdir().unwrap();
        bench_crl(dir.path(), n.parse().unwrap()).await;
        return;
    }
    if let Some(n) = args
        .iter()
        .position(|a| a == "--scale")
        .and_then(|i| args.get(i + 1))
    {
        let dir = tempfile::tempdir().unwrap();
        bench_scale(dir.path(), n.parse().unwrap()).await;
        return;
    }
    // `--ocsp-during-crl N`: OCSP latency while a CRL of N entries is regenerated (L8).
    if let Some(n) = args
        .iter()
        .position(|a| a == "--ocsp-during-crl")
        .and_then(|i| args.get(i + 1))
    {
        let dir = tempfile::tempdir().unwrap();
        bench_ocsp_during_crl(dir.path(), n.parse().unwrap()).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!(
        "ca-mock benchmark ({} mode), {} CPUs",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let ca = new_ca(dir.path(), "issue.db").await;
    let n = if quick { 500 } else { 5000 };
    let serials = bench_issuance(&ca, n, 32).await;
    bench_http_issuance(Arc::clone(&ca), n / 2, 32).await;
    bench_ocsp(&ca, &serials, n * 2, 32).await;
    bench_lint(dir.path(), if quick { 2_000 } else { 20_000 }).await;
    bench_crl(dir.path(), if quick { 10_000 } else { 100_000 }).await;
    bench_ocsp_during_crl(dir.path(), if quick { 10_000 } else { 100_000 }).await;
    if !quick {
        bench_crl(dir.path(), 1_000_000).await;
    }
}
