//! Connection limits and observability over 127.0.0.1: slowloris clients are cut off, the
//! connection cap makes extra clients wait, `/metrics` counts requests by operation,
//! messageType, pkiStatus and failInfo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Device, Server, failure, issued};
use foundation::rate_limit::RateLimit;
use ndes_proxy::Settings;
use scep::{FailInfo, RequestBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let settings = Settings {
        header_read_timeout: Duration::from_millis(500),
        ..Settings::default()
    };
    let s = Server::start_with(&[], settings).await;
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // One byte of a header value every 100 ms (far below any header size or count limit),
    // never the end of the headers: up to 60 s of trickling unless the server hangs up first.
    let mut cut_off = false;
    let mut buf = [0u8; 256];
    let mut answer = Vec::new();
    for _ in 0..600 {
        if conn.write_all(b"a").await.is_err() {
            cut_off = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                cut_off = true;
                break;
            }
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {} // nothing yet: keep trickling
        }
    }
    assert!(cut_off, "the server kept a slowloris connection open");
    let head = String::from_utf8_lossy(&answer);
    assert!(
        !head.contains(" 200 "),
        "no answer to unfinished headers: {head}"
    );
    // The server itself is fine.
    assert_eq!(s.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn beyond_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let settings = Settings {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        ..Settings::default()
    };
    let s = Server::start_with(&[], settings).await;
    // Two idle connections take both slots (one byte each, so they are surely accepted).
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        c.write_all(b"G").await.unwrap();
        idle.push(c);
    }
    let url = format!("{}/healthz", s.url);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let third = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond the cap"
    );
    drop(idle.pop());
    let status = third.await.unwrap().unwrap();
    assert_eq!(status, 200, "served once a slot was free");
}

#[tokio::test]
async fn metrics_count_requests_by_operation_message_type_status_and_fail_info() {
    let s = Server::start(&["m1"]).await;
    assert_eq!(s.get("/scep?operation=GetCACaps").await.status(), 200);
    assert_eq!(s.get("/scep?operation=GetCACert").await.status(), 200);
    assert_eq!(
        s.get("/scep?operation=PKIOperation&message=!!!")
            .await
            .status(),
        400
    );
    assert_eq!(s.get("/scep?operation=Nope").await.status(), 400);
    let d = Device::new(0, "metered");
    assert_eq!(
        failure(
            d.send(&s, &RequestBody::PkcsReq(d.csr(Some("wrong"))))
                .await
        ),
        FailInfo::BadRequest
    );
    issued(d.send(&s, &RequestBody::PkcsReq(d.csr(Some("m1")))).await);
    let r = s.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    for line in [
        r#"ndes_scep_requests_total{operation="GetCACaps",message_type="",pki_status="",fail_info="",status="200"} 1"#,
        r#"ndes_scep_requests_total{operation="GetCACert",message_type="",pki_status="",fail_info="",status="200"} 1"#,
        r#"ndes_scep_requests_total{operation="PKIOperation",message_type="",pki_status="",fail_info="",status="400"} 1"#,
        r#"ndes_scep_requests_total{operation="invalid",message_type="",pki_status="",fail_info="",status="400"} 1"#,
        r#"ndes_scep_requests_total{operation="PKIOperation",message_type="PKCSReq",pki_status="FAILURE",fail_info="badRequest",status="200"} 1"#,
        r#"ndes_scep_requests_total{operation="PKIOperation",message_type="PKCSReq",pki_status="SUCCESS",fail_info="",status="200"} 1"#,
        r#"ndes_scep_request_duration_seconds_count{operation="PKIOperation"} 3"#,
        r#"ndes_scep_request_duration_seconds_bucket{operation="PKIOperation",le="+Inf"} 3"#,
        // The policy's named reason behind the wire's badRequest (issue 17).
        r#"ndes_policy_rejections_total{reason="ChallengeUnknown"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("m1"), "no challenge in metrics");
}

fn limited_from_loopback(burst: u32) -> Settings {
    Settings {
        pki_rate_limit: RateLimit {
            per_minute: 1,
            burst,
            exempt_loopback: false,
        },
        ..Settings::default()
    }
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn pki_operations_beyond_a_sources_burst_get_429_with_retry_after_and_change_nothing() {
    let s = Server::start_with(&["r1"], limited_from_loopback(3)).await;
    for _ in 0..3 {
        let r = s
            .post("/scep?operation=PKIOperation", b"not a pkiMessage".to_vec())
            .await;
        assert_eq!(r.status(), 400, "within the burst: decoded (and refused)");
    }
    // A valid request beyond the burst is refused before anything is decoded or asked.
    let d = Device::new(0, "limited");
    let r = s
        .post(
            "/scep?operation=PKIOperation",
            d.request(&RequestBody::PkcsReq(d.csr(Some("r1")))),
        )
        .await;
    assert_eq!(r.status(), 429);
    // One token a minute, none left: a full minute to wait.
    assert_eq!(retry_after(&r), 60);
    let encoded = scep::http::encode_get_message(&d.request(&RequestBody::PkcsReq(d.csr(None))));
    let get = s
        .get(&format!("/scep?operation=PKIOperation&message={encoded}"))
        .await;
    assert_eq!(get.status(), 429, "GET PKIOperation shares the bucket");
    assert!(s.policy.challenges.lock().unwrap()["r1"].is_none());
    assert!(s.policy.rejections.lock().unwrap().is_empty());
    assert!(s.ca.issued.lock().unwrap().is_empty());
    // The informational operations are not limited.
    assert_eq!(s.get("/scep?operation=GetCACaps").await.status(), 200);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"operation="PKIOperation",message_type="",pki_status="",fail_info="",status="429"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn loopback_is_exempt_from_the_default_rate_limit() {
    let settings = Settings {
        pki_rate_limit: RateLimit {
            burst: 2,
            ..Settings::default().pki_rate_limit
        },
        ..Settings::default()
    };
    assert!(settings.pki_rate_limit.exempt_loopback);
    let s = Server::start_with(&[], settings).await;
    for _ in 0..6 {
        let r = s
            .post("/scep?operation=PKIOperation", b"junk".to_vec())
            .await;
        assert_eq!(r.status(), 400);
    }
}

#[tokio::test]
async fn beyond_the_cap_on_operations_in_progress_a_pki_operation_gets_503_at_once() {
    let settings = Settings {
        max_concurrent_pki_operations: 1,
        ..Settings::default()
    };
    let s = Server::start_with(&["c1", "c2"], settings).await;
    // Hold the policy so the first request stays in progress, holding the only permit.
    let gate = s.policy.verify_gate.write().await;
    let first = Device::new(0, "first");
    let body = first.request(&RequestBody::PkcsReq(first.csr(Some("c1"))));
    let url = format!("{}/scep?operation=PKIOperation", s.url);
    let http = s.http.clone();
    let in_progress = tokio::spawn(async move { http.post(url).body(body).send().await });
    let mut waited = 0;
    while s.state.pki_permits().available_permits() > 0 {
        assert!(waited < 200, "the first request never reached the policy");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let second = Device::new(1, "second");
    let r = s
        .post(
            "/scep?operation=PKIOperation",
            second.request(&RequestBody::PkcsReq(second.csr(Some("c2")))),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(retry_after(&r), 30);
    assert!(
        s.policy.challenges.lock().unwrap()["c2"].is_none(),
        "refused before the policy saw it"
    );
    assert_eq!(s.get("/scep?operation=GetCACert").await.status(), 200);
    drop(gate);
    let r = in_progress.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    issued(first.open(&r.bytes().await.unwrap()));
    // The permit is back: the refused device succeeds on its retry.
    issued(
        second
            .send(&s, &RequestBody::PkcsReq(second.csr(Some("c2"))))
            .await,
    );
}

#[tokio::test]
async fn admitted_operations_beyond_the_workers_wait_their_turn_instead_of_failing() {
    let settings = Settings {
        max_concurrent_pki_operations: 8,
        pki_workers: 1,
        ..Settings::default()
    };
    let s = Server::start_with(&["c1", "c2"], settings).await;
    // The first request holds the only turn, waiting on the policy.
    let gate = s.policy.verify_gate.write().await;
    let send = |device: &Device, challenge: &str| {
        let body = device.request(&RequestBody::PkcsReq(device.csr(Some(challenge))));
        let (http, url) = (
            s.http.clone(),
            format!("{}/scep?operation=PKIOperation", s.url),
        );
        tokio::spawn(async move { http.post(url).body(body).send().await })
    };
    let (first, second) = (Device::new(0, "first"), Device::new(1, "second"));
    let first_reply = send(&first, "c1");
    let mut waited = 0;
    while s.state.pki_workers().available_permits() > 0 {
        assert!(waited < 200, "the first request never took its turn");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // The second is admitted (no 503) and waits for a turn, not yet at the policy.
    let second_reply = send(&second, "c2");
    waited = 0;
    while s.state.pki_permits().available_permits() > 6 {
        assert!(waited < 200, "the second request was never admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        s.policy.challenges.lock().unwrap()["c2"].is_none(),
        "the second request ran beside the first"
    );
    drop(gate);
    let r = first_reply.await.unwrap().unwrap();
    issued(first.open(&r.bytes().await.unwrap()));
    let r = second_reply.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    issued(second.open(&r.bytes().await.unwrap()));
    assert_eq!(s.state.pki_workers().available_permits(), 1);
    assert_eq!(s.state.pki_permits().available_permits(), 8);
}
