//! The global invariant "bounded memory" of the reliability catalogue, measured on a real
//! `ndes-proxy` process (the multi-process harness, SQLite): flooded with bad input at its
//! limits, its peak resident set (`VmHWM` in `/proc/<pid>/status`) stays under
//! [`PEAK_RSS_BOUND_KIB`] and its growth over the warmed-up baseline under
//! [`GROWTH_BOUND_KIB`], and afterwards it still serves a valid enrollment.
//!
//! The floods, each bounded in count and in time (loopback only):
//! - PKIOperation POST bodies exactly at the size cap (256 KiB), 32 at a time, and bodies
//!   that declare one byte more (413 before reading them);
//! - deeply nested DER (tens of thousands of nested SEQUENCEs, definite and indefinite
//!   length) inside a CMS ContentInfo, at the size cap;
//! - 256 concurrent slow clients, half trickling their headers, half their body;
//! - bursts of real PKCSReqs (RSA decryption and signature each) far beyond the admission cap
//!   of PKIOperations in progress (4 here), which are answered 503 + Retry-After.
//!
//! This asserts memory, not time: the only clocks are the server's own timeouts and guards
//! against a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use scep::client::CertRep;
use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId};
use scep_lab_tests::remote::{Admin, Enrollment, RemoteDevice};
use scep_lab_tests::{
    PROFILE, RawScep, build_csr, random_transaction_id, rsa_key, standard_profile_spec, unix_now,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The documented bound on ndes-proxy's peak RSS through every flood (debug or release).
/// Measured 2026-11-23, debug build on a loaded 2-core machine: 26 MiB warmed up, 49 MiB
/// after every flood (tests/RELIABILITY.md, global invariants).
const PEAK_RSS_BOUND_KIB: u64 = 128 * 1024;
/// The documented bound on how much the floods may raise the peak over the warmed-up process
/// (32 bodies of 256 KiB in flight are 8 MiB of input; measured growth 23 MiB).
const GROWTH_BOUND_KIB: u64 = 64 * 1024;
/// ndes-proxy's default body cap (`max_body_bytes`).
const BODY_CAP: usize = 256 * 1024;
/// PKIOperations in progress at once, for this test.
const ADMISSION_CAP: usize = 4;

fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Rewrites ndes-proxy's configuration for the test: a small admission cap, loopback not
/// exempt, the per-source rate limit off (so the cap, not the limit, answers the bursts),
/// short header and request deadlines so slow clients are cut off within the test.
fn tighten(config: &std::path::Path) {
    let mut text = std::fs::read_to_string(config).unwrap();
    for (key, value) in [
        ("max_concurrent_pki_operations", ADMISSION_CAP.to_string()),
        ("header_read_timeout_secs", "2".into()),
        ("request_timeout_secs", "4".into()),
        ("pki_operations_per_minute", "0".into()),
        ("exempt_loopback", "false".into()),
        ("retry_after_secs", "7".into()),
    ] {
        let start = text
            .find(&format!("\n{key} = "))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            + 1;
        let end = start + text[start..].find('\n').unwrap();
        text.replace_range(start..end, &format!("{key} = {value}"));
    }
    std::fs::write(config, text).unwrap();
}

/// A DER length.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// A CMS ContentInfo (signedData OID) whose content is SEQUENCEs nested as deep as fits in
/// `size` bytes, built inside out in linear time.
fn nested_content_info(size: usize) -> Vec<u8> {
    let mut rev = vec![0x00, 0x05]; // NULL, reversed
    loop {
        let mut header = vec![0x30];
        der_len(rev.len(), &mut header);
        if rev.len() + header.len() + 32 > size {
            break;
        }
        rev.extend(header.iter().rev());
    }
    let mut inner: Vec<u8> = rev.into_iter().rev().collect();
    let mut explicit = vec![0xa0];
    der_len(inner.len(), &mut explicit);
    explicit.append(&mut inner);
    let oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    let mut body = oid.to_vec();
    body.append(&mut explicit);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.append(&mut body);
    out
}

async fn post_all(
    http: &reqwest::Client,
    url: &str,
    bodies: Vec<Vec<u8>>,
    at_once: usize,
) -> Vec<u16> {
    let sem = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let (http, url, sem) = (http.clone(), url.to_owned(), Arc::clone(&sem));
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            http.post(format!("{url}?operation=PKIOperation"))
                .header("content-type", "application/x-pki-message")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    statuses
}

/// A client that opens a connection and trickles a request, one byte every 200 ms, until
/// the server hangs up (or 20 s pass, which the assertions then report).
async fn slow_client(addr: String, body: bool) -> bool {
    let Ok(mut conn) = TcpStream::connect(&addr).await else {
        return false;
    };
    let head = if body {
        format!(
            "POST /certsrv/mscep/mscep.dll?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n\
             Content-Length: {BODY_CAP}\r\n\r\n"
        )
    } else {
        "GET /certsrv/mscep/mscep.dll?operation=GetCACaps HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .to_owned()
    };
    if conn.write_all(head.as_bytes()).await.is_err() {
        return true;
    }
    let mut buf = [0u8; 512];
    for _ in 0..100 {
        if conn.write_all(b"a").await.is_err() {
            return true;
        }
        // An error answer (408) counts as being cut off once the connection closes.
        let read = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndes_proxy_memory_stays_bounded_under_floods_of_bad_input_and_it_still_enrolls() {
    let mut cluster = Cluster::start(ClusterOptions::sqlite()).await.unwrap();
    let ndes = ServiceId::new(Role::Ndes, 0);
    cluster.kill(ndes).unwrap();
    tighten(&cluster.layout().ndes_configs[0].clone());
    cluster.restart(ndes).await.unwrap();
    let pid = cluster.pid(ndes).unwrap();
    let scep_url = cluster.scep_url(0);
    let addr = scep_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();

    let token = cluster.layout().secret("policy-admin.token").unwrap();
    let admin = Admin::new(&cluster.policy_url(0), token.expose()).unwrap();
    let root = cluster.layout().root_fingerprint.clone();
    let spec = standard_profile_spec("Bounded memory", vec![scep_url.clone()], &root);
    admin.create_profile(PROFILE, &spec).await.unwrap();
    let devices = tempfile::tempdir().unwrap();
    let raw = RawScep::discover(&scep_url, &root).await.unwrap();
    let enroll = |name: &'static str| {
        let (admin, devices, policy_url, raw) =
            (&admin, devices.path(), cluster.policy_url(0), &raw);
        let token = token.expose().to_owned();
        async move {
            let d = RemoteDevice::register(&policy_url, &token, name, devices)
                .await
                .unwrap();
            admin.assign_device(PROFILE, &d.id).await.unwrap();
            let profile = d.rendered(&policy_url, PROFILE).await.unwrap();
            let e = Enrollment::new(&profile).unwrap();
            (e.send(raw).await.unwrap(), profile)
        }
    };
    // Warm up: one enrollment, so the baseline includes the normal path's allocations.
    let (rep, profile) = enroll("warm-up").await;
    assert!(matches!(rep, CertRep::Success(_)), "{rep:?}");
    let baseline = peak_kib(pid);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // 1. Bodies at the cap (garbage, so 400) and one byte over it (413).
    let at_cap: Vec<Vec<u8>> = (0..96u8).map(|i| vec![0x30 ^ i; BODY_CAP]).collect();
    let statuses = post_all(&http, &scep_url, at_cap, 32).await;
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    let over: Vec<Vec<u8>> = (0..32).map(|_| vec![0x30; BODY_CAP + 1]).collect();
    let statuses = post_all(&http, &scep_url, over, 32).await;
    assert!(
        statuses.iter().all(|s| *s == 413 || *s == 0),
        "{statuses:?}"
    );

    // 2. Deep nesting at the cap: definite lengths, and indefinite-length SEQUENCEs.
    let definite = nested_content_info(BODY_CAP);
    assert!(definite.len() <= BODY_CAP);
    let mut indefinite = vec![0x30, 0x80, 0x06, 0x09];
    indefinite.extend([
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80,
    ]);
    while indefinite.len() + 2 <= BODY_CAP {
        indefinite.extend([0x30, 0x80]);
    }
    let mut bodies = vec![definite; 48];
    bodies.extend(vec![indefinite; 48]);
    let statuses = post_all(&http, &scep_url, bodies, 32).await;
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");

    // 3. Slow clients: 128 trickling headers, 128 trickling a body, all at once.
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..256 {
        slow.spawn(slow_client(addr.clone(), i % 2 == 1));
    }
    let mut cut_off = 0;
    while let Some(r) = slow.join_next().await {
        cut_off += usize::from(r.unwrap());
    }
    assert_eq!(
        cut_off, 256,
        "every slow client is cut off by the deadlines"
    );

    // 4. Bursts of real PKCSReqs (wrong challenge: full RSA work, then FAILURE) far beyond
    //    the admission cap: 503 + Retry-After for the excess, never a 5xx of another kind.
    let key = rsa_key(2048).unwrap();
    let csr = build_csr(&profile.enroll_config().unwrap().csr, &key, Some("wrong")).unwrap();
    let csr = scep::csr::Csr::from_der(&csr).unwrap();
    let now = unix_now();
    let subject = csr.subject_name().unwrap();
    let signer =
        scep::client::self_signed_certificate(&key, &subject, now - 3600, now + 86_400).unwrap();
    let (body, _) = raw
        .build(
            &scep::RequestBody::PkcsReq(csr),
            &key,
            &signer,
            &random_transaction_id().unwrap(),
        )
        .unwrap();
    let mut refused = 0;
    let mut served = 0;
    for _ in 0..4 {
        let statuses = post_all(&http, &scep_url, vec![body.clone(); 64], 64).await;
        for s in statuses {
            match s {
                200 => served += 1,
                503 => refused += 1,
                other => panic!("a burst got HTTP {other}"),
            }
        }
    }
    assert!(refused > 0, "the admission cap answered 503 to some");
    assert!(served > 0, "and served the others");

    let peak = peak_kib(pid);
    eprintln!(
        "figure bounded_memory ndes-proxy VmHWM baseline {baseline} KiB, after floods {peak} KiB; \
         PKIOperation bursts: {served} served, {refused} answered 503"
    );
    assert!(
        peak <= PEAK_RSS_BOUND_KIB,
        "peak RSS {peak} KiB over {PEAK_RSS_BOUND_KIB}"
    );
    assert!(
        peak - baseline <= GROWTH_BOUND_KIB,
        "peak RSS grew {} KiB (baseline {baseline})",
        peak - baseline
    );

    // Still serving: the same process enrolls a new device.
    assert_eq!(cluster.pid(ndes), Some(pid), "ndes-proxy was not restarted");
    let (rep, _) = enroll("after-floods").await;
    assert!(matches!(rep, CertRep::Success(_)), "{rep:?}");
    let report = cluster.reconcile().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}
