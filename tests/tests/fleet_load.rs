//! The light load client of issue 19 (`device-fleet load`) against an in-process lab: in plain
//! mode (static challenge, CA in process) and through the full pipeline (one-time challenges
//! from mscep_admin, policy verify and notify, CA over HTTP), every request is counted as a
//! valid certificate and the CA issued exactly that many; a reply whose signature was tampered
//! with, or that answers another request, is counted invalid with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use device_fleet::load::{Challenges, LoadOptions, prepare_run, send, validate};
use foundation::secret::Secret;
use scep::csr::ChallengePassword;
use scep_lab_tests::*;

const PLAIN_CHALLENGE: &str = "load-test-static-challenge";

fn options(lab: &TestLab, requests: usize, challenges: Challenges) -> LoadOptions {
    LoadOptions {
        url: lab.scep_url(),
        requests,
        concurrency: 3,
        ca_thumbprint: Some(lab.root_fingerprint().to_owned()),
        key_pool: Some(lab.tmp().join("key-pool")),
        prefix: "load".into(),
        challenges,
        // The lab serves from this process.
        server_pid: Some(std::process::id()),
        timeout: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mode_counts_every_certificate_and_flags_tampered_replies() {
    let lab = TestLab::start_with(|o| {
        o.ca_in_process = true;
        o.plain_challenge = Some(Secret::new(PLAIN_CHALLENGE));
    })
    .await
    .unwrap();
    let before = lab.ca_records().await.unwrap().len();
    let statik = Challenges::Static(Arc::new(ChallengePassword::new(PLAIN_CHALLENGE)));
    let report = device_fleet::load::run(&options(&lab, 8, statik.clone()))
        .await
        .unwrap();
    assert_eq!(report.requests, 8);
    assert_eq!(report.certificates.valid, 8, "{:?}", report.certificates);
    assert!(report.certificates.invalid.is_empty());
    assert!(report.valid_per_sec > 0.0);
    assert!(report.latency.p50_ms <= report.latency.p99_ms);
    assert!(report.server_cpu_secs.is_some() && report.server_peak_rss_kib.is_some());
    assert_eq!(lab.ca_records().await.unwrap().len(), before + 8);

    // The phases by hand, with two replies spoiled between the window and the check: the
    // last byte of one (its RA signature) flipped, another replaced by a third's reply.
    let mut o = options(&lab, 3, statik);
    o.key_pool = None;
    o.prefix = "tamper".into();
    let mut ready = prepare_run(&o).await.unwrap();
    let bodies: Vec<Vec<u8>> = ready
        .prepared
        .iter_mut()
        .map(|p| std::mem::take(&mut p.der))
        .collect();
    let mut replies = send::send_all(&ready.http, &o.url, bodies, 2).await;
    let (_, body) = replies[1].outcome.as_mut().unwrap();
    *body.last_mut().unwrap() ^= 0x01;
    replies[2] = replies[0].clone();
    let (check, ok) = validate::validate(&ready.ca, &ready.prepared, &replies);
    assert_eq!(check.valid, 1);
    let expect: BTreeMap<String, usize> = [("reply_signature", 1), ("reply_mismatch", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(check.invalid, expect);
    assert_eq!(ok, [true, false, false]);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_with_one_time_challenges_counts_every_certificate() {
    let lab = TestLab::start().await.unwrap();
    let mut settings = lab.policy().challenge_settings().await.unwrap();
    settings.password_max = 10;
    lab.policy()
        .set_challenge_settings(&settings)
        .await
        .unwrap();
    let before = lab.ca_records().await.unwrap().len();
    let admin = Challenges::MscepAdmin {
        url: lab.mscep_admin_url(),
        token: lab.tokens().mscep_admin.clone(),
    };
    let report = device_fleet::load::run(&options(&lab, 6, admin))
        .await
        .unwrap();
    assert_eq!(report.certificates.valid, 6, "{:?}", report.certificates);
    assert!(report.certificates.invalid.is_empty());
    assert_eq!(lab.ca_records().await.unwrap().len(), before + 6);
    // Each request spent its own one-time challenge.
    let consumed = lab
        .audit(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "challenge_consumed")
        .count();
    assert_eq!(consumed, 6);
    lab.shutdown().await;
}
