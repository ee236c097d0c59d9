//! Issue 16 item 1 through the lab over HTTP: the policy module's
//! `GET /api/v1/transactions/{transactionID}` tells a real enrollment's story, the CA's own
//! `issued` record (read from ca-mock's `GET /api/v1/records`) included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scep_lab_tests::*;
use serde_json::Value;

async fn get(lab: &TestLab, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", lab.policy_url()))
        .bearer_auth(lab.tokens().policy_admin.expose())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn events<'a>(trace: &'a Value, event: &str) -> Vec<&'a Value> {
    trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_enrollments_trace_spans_the_three_services() {
    let lab = TestLab::start().await.unwrap();
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, cert) = lab.enrolled_device("TRACE-01", PROFILE).await.unwrap();
    let tx = cert.transaction_id.clone();
    let path = format!("/api/v1/transactions/{tx}");
    // The CertRep report is sent in the background after the reply: wait for it.
    eventually("reply_sent in the trace", || async {
        let (_, t) = get(&lab, &path).await;
        Ok(!events(&t, "reply_sent").is_empty())
    })
    .await
    .unwrap();
    let (status, t) = get(&lab, &path).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["transaction_id"], tx.as_str());
    assert!(t.get("unavailable").is_none(), "{t:#}");
    let serial = normalize_serial(&cert.serial_hex);
    let issued = events(&t, "issued");
    assert_eq!(issued.len(), 1, "{t:#}");
    assert_eq!(issued[0]["source"], "ca-mock");
    assert_eq!(
        normalize_serial(issued[0]["serial"].as_str().unwrap()),
        serial
    );
    let received = events(&t, "request_received");
    assert_eq!(received[0]["source"], "ndes-proxy");
    assert_eq!(received[0]["detail"]["message_type"], "PKCSReq");
    assert_eq!(received[0]["detail"]["client_address"], "127.0.0.1");
    assert!(received[0]["detail"]["algorithms"]["content_encryption"].is_string());
    let granted = events(&t, "request_granted");
    assert_eq!(granted[0]["device_id"], d.id.as_str());
    assert_eq!(granted[0]["profile_id"], PROFILE);
    assert!(granted[0]["detail"]["grant_kid"].is_string(), "{t:#}");
    assert_eq!(
        events(&t, "reply_sent")[0]["detail"]["pki_status"],
        "SUCCESS"
    );
    let order: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let at = |n: &str| order.iter().position(|e| *e == n).unwrap();
    assert!(
        at("challenge_issued") < at("request_received")
            && at("request_received") < at("request_granted")
            && at("request_granted") < at("issued")
            && at("issued") < at("notified"),
        "{order:?}"
    );
    // The device's history, newest first, and the routes' authentication.
    let (status, h) = get(&lab, &format!("/api/v1/devices/{}/history", d.id)).await;
    assert_eq!(status, 200);
    assert!(!h["events"].as_array().unwrap().is_empty());
    assert_eq!(get(&lab, "/api/v1/devices/nope/history").await.0, 404);
    assert_eq!(get(&lab, "/api/v1/transactions/unknown-tx").await.0, 404);
    let anonymous = reqwest::Client::new()
        .get(format!("{}{path}", lab.policy_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    lab.shutdown().await;
}
