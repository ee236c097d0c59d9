//! The Intune import/export routes over loopback, on SQLite and PostgreSQL: authentication,
//! bad input as a named 400, dry run storing nothing, import -> export -> import.

use serde_json::{Value, json};

use crate::api::{ADMIN, NDES, start};
use crate::both;
use crate::harness::Harness;

const IOS: &str = include_str!("../../testdata/intune/ios.json");
const WINDOWS: &str = include_str!("../../testdata/intune/windows.json");

fn body(doc: &str, id: &str) -> Value {
    json!({
        "id": id,
        "template": "IntuneSCEP",
        "ca_thumbprint": "cd".repeat(32),
        "intune": serde_json::from_str::<Value>(doc).unwrap(),
    })
}

both!(
    intune_routes_refuse_unauthenticated_calls,
    intune_import_refuses_bad_input_with_a_named_400,
    intune_dry_run_stores_nothing,
    intune_import_then_export_round_trips,
);

async fn intune_routes_refuse_unauthenticated_calls(h: Harness) {
    let s = start(&h).await;
    for token in [None, Some("wrong"), Some(NDES)] {
        let r = s
            .req("post", "/api/v1/profiles/import", token)
            .json(&body(IOS, "p-ios"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = s
            .req("get", "/api/v1/profiles/p-ios/export?platform=ios", token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert!(h.svc.store().list_profiles().await.unwrap().is_empty());
}

async fn intune_import_refuses_bad_input_with_a_named_400(h: Harness) {
    let s = start(&h).await;
    let post = |b: reqwest::RequestBuilder| async move {
        let r = b.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let path = "/api/v1/profiles/import";
    let (status, e) = post(
        s.req("post", path, Some(ADMIN))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid")));
    // Valid JSON, wrong shape: the missing field is named.
    let (status, e) = post(
        s.req("post", path, Some(ADMIN))
            .json(&json!({"intune": {}, "ca_thumbprint": "cd".repeat(32)})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("template"), "{e}");
    // An unknown variable is named.
    let mut b = body(WINDOWS, "p-win");
    b["intune"]["subjectNameFormatString"] = json!("CN={{DeviceName}},OU={{CostCentre}}");
    let (status, e) = post(s.req("post", path, Some(ADMIN)).json(&b)).await;
    assert_eq!(status, 400);
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("{{CostCentre}}") && m.contains("subjectNameFormatString"),
        "{m}"
    );
    let (status, _) = post(
        s.req("post", &format!("{path}?dry_run=perhaps"), Some(ADMIN))
            .json(&body(IOS, "p-ios")),
    )
    .await;
    assert_eq!(status, 400);
    assert!(h.svc.store().list_profiles().await.unwrap().is_empty());
    // Export: an unknown platform is a 400, an unknown profile a 404.
    let r = s
        .req(
            "get",
            "/api/v1/profiles/nope/export?platform=ios",
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .req(
            "get",
            "/api/v1/profiles/nope/export?platform=palm",
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn intune_dry_run_stores_nothing(h: Harness) {
    let s = start(&h).await;
    let r = s
        .req("post", "/api/v1/profiles/import?dry_run=true", Some(ADMIN))
        .json(&body(WINDOWS, "p-win"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["platform"], "windows");
    assert_eq!(v["profile"]["template"], "IntuneSCEP");
    let unmodelled: Vec<&str> = v["unmodelled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["property"].as_str().unwrap())
        .collect();
    assert!(unmodelled.contains(&"keyStorageProvider"), "{unmodelled:?}");
    assert!(h.svc.store().list_profiles().await.unwrap().is_empty());
    let r = s
        .req("get", "/api/v1/profiles/p-win", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

async fn intune_import_then_export_round_trips(h: Harness) {
    let s = start(&h).await;
    let r = s
        .req("post", "/api/v1/profiles/import", Some(ADMIN))
        .json(&body(IOS, "p-ios"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["profile"]["id"], "p-ios");
    assert_eq!(created["profile"]["version"], 1);
    let stored = h.svc.store().get_profile("p-ios").await.unwrap().unwrap();
    assert_eq!(stored.spec.name, "iOS device Wi-Fi");
    assert_eq!(stored.spec.validity_days, 180);
    // The same id again is a conflict, not a second version.
    let r = s
        .req("post", "/api/v1/profiles/import", Some(ADMIN))
        .json(&body(IOS, "p-ios"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let r = s
        .req(
            "get",
            "/api/v1/profiles/p-ios/export?platform=ios",
            Some(ADMIN),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exported: Value = r.json().await.unwrap();
    let fixture: Value = serde_json::from_str(IOS).unwrap();
    for (key, value) in exported["document"].as_object().unwrap() {
        assert_eq!(&fixture[key], value, "{key}");
    }
    let again = json!({
        "id": "p-ios-2",
        "template": "IntuneSCEP",
        "ca_thumbprint": "cd".repeat(32),
        "intune": exported["document"],
    });
    let r = s
        .req("post", "/api/v1/profiles/import?dry_run=true", Some(ADMIN))
        .json(&again)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let spec: policy_module::model::ProfileSpec =
        serde_json::from_value(v["profile"].clone()).unwrap();
    assert_eq!(spec, stored.spec);
    assert_eq!(v["unmodelled"], json!([]));
}
