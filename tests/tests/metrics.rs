//! Issue 17 item 2 through the lab over HTTP: one enrollment and one refusal (a consumed
//! challenge used again) move the counters of all three services' `/metrics` with the right
//! labels: the policy module's decision and named reason and its outbox gauges, the CA's
//! issuance, ndes-proxy's operation, messageType, pkiStatus and failInfo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scep::FailInfo;
use scep_lab_tests::*;

async fn scrape(base: &str) -> String {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        r.headers()
    );
    r.text().await.unwrap()
}

/// The value of the series named exactly `series` (name and labels); 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .next()
        .unwrap_or(0.0)
}

/// The sum over every series of `name` whose labels contain `label`.
fn sum_with(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next())
        .map(|v| v.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_and_a_refusal_move_all_three_services_counters() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let ndes = lab
        .scep_url()
        .trim_end_matches("/certsrv/mscep/mscep.dll")
        .to_owned();
    let before = (
        scrape(&lab.policy_url()).await,
        scrape(&lab.ca_url()).await,
        scrape(&ndes).await,
    );

    // One enrollment, then the consumed challenge again with another key: refused.
    let device = lab.targeted_device("METRICS-01", PROFILE).await.unwrap();
    let raw = lab.raw_scep().await.unwrap();
    let checkin = device.checkin().await.unwrap();
    let key = rsa_key(2048).unwrap();
    let (_, rep) = raw
        .pkcs_req(&profile_csr(&checkin, &key).unwrap(), &key)
        .await
        .unwrap();
    issued_cert(&rep, &key).unwrap();
    let other = rsa_key(2048).unwrap();
    let (tx, rep) = raw
        .pkcs_req(&profile_csr(&checkin, &other).unwrap(), &other)
        .await
        .unwrap();
    assert!(is_failure(&rep, FailInfo::BadRequest), "{rep:?}");
    assert_eq!(
        lab.rejection(tx.as_str()).await.unwrap().as_deref(),
        Some("ChallengeAlreadyUsed")
    );

    let policy = scrape(&lab.policy_url()).await;
    let moved =
        |after: &str, before: &str, series: &str| value(after, series) - value(before, series);
    assert_eq!(
        moved(
            &policy,
            &before.0,
            "policy_verify_decisions_total{decision=\"granted\",reason=\"challenge\"}"
        ),
        1.0,
        "{policy}"
    );
    assert_eq!(
        moved(
            &policy,
            &before.0,
            "policy_verify_decisions_total{decision=\"rejected\",reason=\"ChallengeAlreadyUsed\"}"
        ),
        1.0,
        "{policy}"
    );
    assert!(
        policy.contains("# TYPE policy_outbox_backlog gauge\npolicy_outbox_backlog "),
        "{policy}"
    );
    assert!(
        policy.contains("\npolicy_outbox_oldest_age_seconds "),
        "{policy}"
    );

    let ca = scrape(&lab.ca_url()).await;
    assert_eq!(
        sum_with(&ca, "ca_issued_total", "replayed=\"false\"")
            - sum_with(&before.1, "ca_issued_total", "replayed=\"false\""),
        1.0,
        "{ca}"
    );
    assert!(
        ca.contains("# TYPE ca_crl_publications_total counter"),
        "{ca}"
    );

    let scep = scrape(&ndes).await;
    let request = |status: &str, fail: &str| {
        format!(
            "ndes_scep_requests_total{{operation=\"PKIOperation\",message_type=\"PKCSReq\",pki_status=\"{status}\",fail_info=\"{fail}\",status=\"200\"}}"
        )
    };
    assert_eq!(
        moved(&scep, &before.2, &request("SUCCESS", "")),
        1.0,
        "{scep}"
    );
    assert_eq!(
        moved(&scep, &before.2, &request("FAILURE", "badRequest")),
        1.0,
        "{scep}"
    );
    assert_eq!(
        moved(
            &scep,
            &before.2,
            "ndes_policy_rejections_total{reason=\"ChallengeAlreadyUsed\"}"
        ),
        1.0,
        "{scep}"
    );
    lab.shutdown().await;
}
