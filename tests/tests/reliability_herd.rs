//! Reliability catalogue L5, the renewal herd, short version (the long one is
//! `bench/herd.sh`, 10,000 devices, in BENCHMARKS.md): a fleet enrolled together renews
//! together, all at once, against ndes-proxy with a tiny cap on PKIOperations in progress.
//! The excess is answered 503 with Retry-After, the devices back off (jitter, Retry-After) and
//! retry, and every device ends with a new certificate valid past the herd; the CA holds
//! every certificate once and the reconciler finds nothing.
//!
//! `SCEP_LAB_L5_DEVICES` (default 150) and `SCEP_LAB_L5_CAP` (default 2) change the sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use device_agent::mdm::SecretString;
use device_agent::{HttpTransport, KeySpec};
use device_fleet::{FleetMode, FleetOptions, HerdOptions};
use policy_module::model::Group;
use policy_module::store::Assignment;
use scep_lab_tests::{PROFILE, TestLab};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l5_a_renewal_herd_beyond_the_admission_cap_all_renews_after_503s() {
    let devices = knob("SCEP_LAB_L5_DEVICES", 150);
    let cap = knob("SCEP_LAB_L5_CAP", 2);
    let lab = TestLab::start_with(|o| {
        o.ndes_settings.max_concurrent_pki_operations = cap;
        o.ndes_settings.retry_after_secs = 1;
    })
    .await
    .unwrap();
    // Every certificate is in its renewal window from the start (the policy module refuses a
    // renewal before it); Retry-After alone paces the retries (no profile delay), ten tries.
    lab.profile(PROFILE, |s| {
        s.renewal_threshold_percent = 100;
        s.retry_count = 10;
        s.retry_delay_minutes = 0;
    })
    .await
    .unwrap();
    let group = Group {
        id: "herd".into(),
        name: "Herd".into(),
    };
    lab.policy().create_group(group).await.unwrap();
    let target = Assignment {
        kind: "group".into(),
        id: "herd".into(),
    };
    lab.policy().assign(PROFILE, target).await.unwrap();

    let options = FleetOptions {
        devices,
        // Enrolment stays within the cap; the herd is what goes beyond it.
        concurrency: cap,
        key: KeySpec::Rsa(2048),
        // Kept between runs in the test's target directory: key generation is not the point.
        key_pool: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("herd-key-pool")),
        state_root: lab.tmp().join("herd"),
        prefix: "herd".into(),
        mode: FleetMode::Mdm {
            mdm_url: lab.policy_url(),
            admin_token: SecretString::new(lab.tokens().policy_admin.expose()),
            group: "herd".into(),
            platform: "windows".into(),
        },
        herd: Some(HerdOptions {
            concurrency: devices,
            rounds: 10,
            round_pause: Duration::from_secs(1),
        }),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let scep = Arc::new(HttpTransport::with_client(http.clone()));
    let report = device_fleet::run(scep, http, &options, Arc::new(|_| {}))
        .await
        .unwrap();
    assert_eq!(report.succeeded, devices, "{:?}", report.failures);
    let herd = report.herd.unwrap();
    eprintln!(
        "figure L5 herd {devices} devices, cap {cap}: renewed {} in {} round(s) {:?}, \
         {:.1} s; {} PKIOperations, {} answered 503 ({} with Retry-After); \
         runs without a new certificate {:?}",
        herd.renewed,
        herd.renewed_per_round.len(),
        herd.renewed_per_round,
        herd.renew_phase_secs,
        herd.pki_operations,
        herd.answered_503,
        herd.retry_after,
        herd.ended_without_certificate
    );
    assert_eq!(herd.renewed, devices, "every device renewed");
    // Every round but the last left some devices without a certificate, and each such run
    // is counted once, with its reason.
    let mut left = devices;
    let mut runs_without = 0;
    for renewed in &herd.renewed_per_round {
        left -= renewed;
        runs_without += left;
    }
    assert_eq!(
        herd.ended_without_certificate.values().sum::<usize>(),
        runs_without,
        "{:?}",
        herd.ended_without_certificate
    );
    assert!(
        herd.answered_503 > 0,
        "the cap answered 503 to part of the herd"
    );
    assert_eq!(
        herd.retry_after, herd.answered_503,
        "every 503 said when to come back"
    );
    assert!(
        herd.pki_operations >= devices + herd.answered_503,
        "each refused request was retried"
    );
    assert!(
        herd.min_remaining_validity_secs > 0,
        "renewed before expiry"
    );
    // Every device's first and renewed certificate at the CA (plus the RA's two), once each.
    assert_eq!(lab.ca_records().await.unwrap().len(), 2 * devices + 2);
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

/// The herd's client-side failures were sends on keep-alive connections ndes-proxy was closing
/// at that moment (its header-read timeout also ends idle connections): the agent's pool drops
/// them first.
#[test]
fn agents_drop_idle_connections_before_ndes_proxy_closes_them() {
    let config = ndes_proxy::config::Config::from_toml(ndes_proxy::config::SAMPLE).unwrap();
    let server_idle_close = config.settings().header_read_timeout;
    assert!(
        device_agent::transport::POOL_IDLE_TIMEOUT < server_idle_close,
        "{:?} >= {server_idle_close:?}",
        device_agent::transport::POOL_IDLE_TIMEOUT
    );
}
