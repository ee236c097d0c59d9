//! Reliability P32: the challenge-minting APIs (`/internal/v1/challenges`, check-in) against
//! what a browser can be made to send from another site's page: form posts of the three
//! CORS-safe content types, with and without valid credentials, and plain GETs. Each is
//! refused (403 cross-site, 401, 405, 415) and no challenge is minted.

use serde_json::{Value, json};

use crate::api::{NDES, start};
use crate::harness::{Backend, Harness, enrolled};

async fn challenge_count(h: &Harness) -> i64 {
    let Backend::Sqlite { dir } = &h.backend else {
        panic!("SQLite harness expected");
    };
    let url = format!("sqlite://{}", dir.path().join("policy.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM challenges")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

const EVIL: &str = "https://evil.example";
const FORMS: [(&str, &str); 3] = [
    (
        "application/x-www-form-urlencoded",
        "template=IPSECIntermediateOffline&requester=x",
    ),
    (
        "multipart/form-data; boundary=b",
        "--b\r\nContent-Disposition: form-data; name=\"template\"\r\n\r\nT\r\n--b--\r\n",
    ),
    (
        "text/plain",
        "{\"template\": \"IPSECIntermediateOffline\", \"requester\": \"x\"}",
    ),
];

#[tokio::test]
async fn cross_site_form_posts_and_gets_mint_nothing() {
    let h = Harness::sqlite().await;
    let device = enrolled(&h, "d1").await;
    let credential = device.reg.credential.expose().to_string();
    let s = start(&h).await;
    let before = challenge_count(&h).await;
    let mint = "/internal/v1/challenges";
    let checkin = "/mdm/v1/devices/d1/checkin";

    for (content_type, body) in FORMS {
        for (path, token) in [
            (mint, None),
            (mint, Some(NDES)),
            (checkin, None),
            (checkin, Some(credential.as_str())),
        ] {
            // From another site's page: Origin on every POST, Sec-Fetch-Site on modern ones.
            for label in [("origin", EVIL), ("sec-fetch-site", "cross-site")] {
                let r = s
                    .req("post", path, token)
                    .header("content-type", content_type)
                    .header(label.0, label.1)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 403, "{path} {content_type} {label:?}");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"], "cross_site");
            }
            // The same form body from a non-browser client (no labels).
            let status = s
                .req("post", path, token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
                .status();
            let expected = if token.is_some() { 415 } else { 401 };
            assert_eq!(status, expected, "{path} {content_type} unlabelled");
        }
    }
    // A plain GET mints nothing: the routes are POST only.
    let r = s.req("get", mint, Some(NDES)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .req("get", checkin, Some(&credential))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .req("get", mint, None)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(challenge_count(&h).await, before, "nothing minted");

    // The honest calls, one labelled same-origin as a browser on this server would be.
    crate::harness::allow_admin_template(&h.svc, "IPSECIntermediateOffline").await;
    let r = s
        .req("post", mint, Some(NDES))
        .header("origin", s.base.as_str())
        .json(&json!({"template": "IPSECIntermediateOffline", "requester": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .req("post", checkin, Some(&credential))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(challenge_count(&h).await, before + 2);
}
