//! Issue 15 item 5: saving, reading and previewing a profile tell, field by field, how a
//! certificate issued under its CA template will differ from it (docs/decisions.md #7). The
//! CA is a stand-in serving `GET /api/v1/templates/{name}` on 127.0.0.1.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use ca_api::template::{Curve, TemplateInfo, TemplateKeys, UsageSource};
use foundation::names::{KeyUsage, SanKind, SubjectAttr};
use foundation::secret::Secret;
use policy_module::template_source::CaTemplates;
use serde_json::{Value, json};

use crate::api::{ADMIN, start_service};
use crate::fake_ca::CA_TOKEN;
use crate::harness::{Harness, device_spec, profile_spec};

/// The harness profile's template, shaped like the lab's IPSECIntermediateOffline.
fn device_auth(usages: UsageSource) -> TemplateInfo {
    TemplateInfo {
        name: "DeviceAuth".into(),
        description: String::new(),
        validity_days: 365,
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
        extended_key_usage: vec![
            "1.3.6.1.5.5.7.3.2".into(),
            "1.3.6.1.5.5.7.3.1".into(),
            "1.3.6.1.5.5.8.2.2".into(),
        ],
        keys: TemplateKeys {
            rsa_min_bits: Some(2048),
            ec_curves: vec![Curve::P256, Curve::P384],
        },
        subject_required: vec![],
        subject_allowed: vec![SubjectAttr::CN, SubjectAttr::OU, SubjectAttr::O],
        san_allowed: vec![SanKind::Dns, SanKind::Upn],
        san_max: 10,
        usages,
    }
}

/// Serves the one template (and 404 `unknown_template` for others) to the CA token only.
async fn template_ca(usages: UsageSource) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/api/v1/templates/{name}",
        get(
            move |headers: HeaderMap, Path(name): Path<String>| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if auth != Some(&format!("Bearer {CA_TOKEN}")) {
                    let body = json!({"error": "unauthorized", "message": "no"});
                    return (StatusCode::UNAUTHORIZED, Json(body));
                }
                if name != "DeviceAuth" {
                    let body = json!({"error": "unknown_template", "message": "no template"});
                    return (StatusCode::NOT_FOUND, Json(body));
                }
                (StatusCode::OK, Json(json!(device_auth(usages))))
            },
        ),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn templates_at(base: &str) -> Arc<CaTemplates> {
    Arc::new(CaTemplates::new(base, &Secret::new(CA_TOKEN)).unwrap())
}

fn field<'a>(body: &'a Value, name: &str) -> Vec<&'a Value> {
    body["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings in {body}"))
        .iter()
        .filter(|w| w["field"] == name)
        .collect()
}

async fn saving_and_reading_a_profile_report_the_templates_differences(h: Harness) {
    let ca = template_ca(UsageSource::Template).await;
    let s = start_service(h.svc.clone().with_templates(templates_at(&ca))).await;
    let admin = |m: &str, p: &str| s.req(m, p, Some(ADMIN));
    let mut body = serde_json::to_value(profile_spec()).unwrap();
    body["id"] = json!("wifi");
    let r = admin("post", "/api/v1/profiles")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(
        (created["id"].clone(), created["version"].clone()),
        (json!("wifi"), json!(1))
    );
    // clientAuth asked, the template gives three: the one warning, on the EKUs.
    assert_eq!(
        created["warnings"].as_array().unwrap().len(),
        1,
        "{created}"
    );
    let eku = field(&created, "extended_key_usages")[0];
    assert_eq!(eku["consequence"], "differs");
    assert_eq!(eku["profile"], "clientAuth");
    assert_eq!(
        eku["template"],
        "clientAuth, serverAuth, ipsecIKEIntermediate"
    );
    assert_eq!(
        eku["effect"],
        "the certificate will carry serverAuth, ipsecIKEIntermediate too"
    );
    // Shown wherever the profile is: one, and the list.
    let one: Value = admin("get", "/api/v1/profiles/wifi")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["warnings"], created["warnings"]);
    let all: Value = admin("get", "/api/v1/profiles")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all[0]["warnings"], created["warnings"]);

    // An update that asks more than the template gives is saved and says enrollment will fail.
    let mut v2 = serde_json::to_value(profile_spec()).unwrap();
    v2["validity_days"] = json!(730);
    v2["subject_alternative_names"] = json!([{"kind": "email", "value": "{{EmailAddress}}"}]);
    let r = admin("put", "/api/v1/profiles/wifi")
        .json(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["version"], 2);
    let validity = field(&updated, "validity_days")[0];
    assert_eq!(validity["consequence"], "refused");
    assert_eq!(
        (validity["profile"].clone(), validity["template"].clone()),
        (json!("730"), json!("365"))
    );
    let sans = field(&updated, "subject_alternative_names")[0];
    assert_eq!(sans["consequence"], "refused");
    assert!(
        sans["effect"]
            .as_str()
            .unwrap()
            .contains("email not allowed"),
        "{sans}"
    );

    // A template the CA does not have: saved, and told.
    let mut unknown = body.clone();
    unknown["id"] = json!("other");
    unknown["template"] = json!("NoSuchTemplate");
    let r = admin("post", "/api/v1/profiles")
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let other: Value = r.json().await.unwrap();
    let t = field(&other, "template")[0];
    assert_eq!(
        (t["consequence"].clone(), t["template"].clone()),
        (json!("refused"), json!("absent"))
    );
}

async fn a_ca_that_cannot_be_asked_is_a_warning_not_a_failed_save(h: Harness) {
    // A port nothing listens on (bound, then closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for (base, token) in [
        (closed, CA_TOKEN),
        (template_ca(UsageSource::Template).await, "wrong"),
    ] {
        let source = Arc::new(CaTemplates::new(&base, &Secret::new(token)).unwrap());
        let s = start_service(h.reopen().await.with_templates(source)).await;
        let mut body = serde_json::to_value(profile_spec()).unwrap();
        body["id"] = json!(format!("p-{token}"));
        let r = s
            .req("post", "/api/v1/profiles", Some(ADMIN))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.unwrap();
        let t = field(&created, "template");
        assert_eq!(t.len(), 1, "{created}");
        assert_eq!(t[0]["consequence"], "not_compared");
        let effect = t[0]["effect"].as_str().unwrap();
        assert!(
            !effect.contains(CA_TOKEN) && !effect.contains("wrong"),
            "{effect}"
        );
    }
}

async fn a_narrowing_template_warns_only_about_what_it_drops(h: Harness) {
    let ca = template_ca(UsageSource::RequestWithinTemplate).await;
    let s = start_service(h.svc.clone().with_templates(templates_at(&ca))).await;
    let mut body = serde_json::to_value(profile_spec()).unwrap();
    body["id"] = json!("exact");
    let created: Value = s
        .req("post", "/api/v1/profiles", Some(ADMIN))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        created["warnings"],
        json!([]),
        "exactly the profile's usages"
    );
}

async fn preview_renders_for_a_device_and_warns_without_saving(h: Harness) {
    let ca = template_ca(UsageSource::Template).await;
    let s = start_service(h.svc.clone().with_templates(templates_at(&ca))).await;
    h.svc.register_device(device_spec("d1")).await.unwrap();
    let preview = |body: Value| {
        s.req("post", "/api/v1/profiles/preview", Some(ADMIN))
            .json(&body)
            .send()
    };
    let spec = serde_json::to_value(profile_spec()).unwrap();
    let r = preview(json!({"profile": spec, "device_id": "d1"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(field(&p, "extended_key_usages").len(), 1, "{p}");
    assert_eq!(
        p["rendered"]["subject"][0],
        json!({"attr": "CN", "value": "LAPTOP-d1"})
    );
    assert_eq!(p["render_error"], Value::Null);
    // Without a device: the warnings only.
    let p: Value = preview(json!({"profile": spec}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            p["rendered"].clone(),
            field(&p, "extended_key_usages").len()
        ),
        (Value::Null, 1)
    );
    // A device lacking a variable: told, not an error.
    let mut needs_email = spec.clone();
    needs_email["subject_name_format"] = json!("CN={{EmailAddress}}");
    let mut bare = device_spec("d2");
    bare.owner_email = None;
    h.svc.register_device(bare).await.unwrap();
    let p: Value = preview(json!({"profile": needs_email, "device_id": "d2"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        p["render_error"].as_str().unwrap().contains("EmailAddress"),
        "{p}"
    );
    // Invalid settings and unknown devices are 400s, as a save would be.
    let mut bad = spec.clone();
    bad["key_size"] = json!(1024);
    assert_eq!(
        preview(json!({"profile": bad})).await.unwrap().status(),
        400
    );
    let r = preview(json!({"profile": spec, "device_id": "nobody"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        h.svc.store().list_profiles().await.unwrap().is_empty(),
        "nothing saved"
    );
}

crate::both!(
    saving_and_reading_a_profile_report_the_templates_differences,
    a_ca_that_cannot_be_asked_is_a_warning_not_a_failed_save,
    a_narrowing_template_warns_only_about_what_it_drops,
    preview_renders_for_a_device_and_warns_without_saving,
);
