//! The console's Profiles pages (issue 18), against the lab's console over plain HTTP:
//! - a profile with a variable subject is created through the form; an edit saves version 2
//!   and the history shows both; the preview renders the subject and SANs for a device;
//! - assignment to a device from the profile's page shows on the device's page, and
//!   unassignment removes it;
//! - a bad form comes back with the error at its field, what was typed kept, nothing stored;
//! - the read-only role and a missing CSRF token are refused server-side, nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use policy_module::model::Group;
use scep_lab_tests::console::{ConsoleClient, csrf_of};
use scep_lab_tests::*;

async fn signed_in(lab: &TestLab, token: &str) -> ConsoleClient {
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    let a = c.login("", token).await.unwrap();
    assert_eq!(a.status, 303, "{}", a.body);
    c
}

/// Each `<input>` that is not hidden has an id that a `<label for>` names.
fn assert_labelled(page: &str) {
    for input in page.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap()];
        if tag.contains(r#"type="hidden""#) {
            continue;
        }
        let id = tag
            .split(r#"id=""#)
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("input without id: {tag}"));
        assert!(
            page.contains(&format!(r#"<label for="{id}""#)),
            "input {id} has no label"
        );
    }
}

/// The profile form's fields for the lab's standard settings, with `subject` and
/// `validity_days` as given.
fn fields(lab: &TestLab, subject: &str, validity_days: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", "Console profile".into()),
        ("certificate_type", "device".into()),
        ("subject_name_format", subject.into()),
        ("subject_alternative_names", format!("dns:{SAN_FORMAT}")),
        ("key_usage", "digitalSignature, keyEncipherment".into()),
        ("extended_key_usages", "1.3.6.1.5.5.7.3.2".into()),
        ("key_algorithm", "rsa".into()),
        ("key_size", "2048".into()),
        ("hash_algorithm", "sha256".into()),
        ("validity_days", validity_days.into()),
        ("renewal_threshold_percent", "20".into()),
        ("template", TEMPLATE.into()),
        ("scep_server_urls", lab.scep_url()),
        ("ca_thumbprint", lab.root_fingerprint().into()),
        ("retry_count", "3".into()),
        ("retry_delay_minutes", "1".into()),
    ]
}

/// `fields` plus the id (when creating), the op and the CSRF token (when given).
async fn post_profile(
    c: &ConsoleClient,
    path: &str,
    id: Option<&str>,
    fields: &[(&'static str, String)],
    op: &str,
    csrf: Option<&str>,
) -> console::Answer {
    let mut pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Some(id) = id {
        pairs.push(("id", id));
    }
    pairs.push(("op", op));
    if let Some(t) = csrf {
        pairs.push(("csrf", t));
    }
    c.post(path, &pairs).await.unwrap()
}

const SUBJECT: &str = "CN={{DeviceName}},OU=Console,O=scep-lab";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_is_created_edited_previewed_and_assigned_from_the_console() {
    let lab = TestLab::start().await.unwrap();
    let d = lab.device("PROFILE-UI-01").await.unwrap();
    let c = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let csrf = c.csrf("/profiles/new").await.unwrap();

    // Create with a variable subject.
    let created = post_profile(
        &c,
        "/profiles",
        Some("ui-prof"),
        &fields(&lab, SUBJECT, "365"),
        "save",
        Some(&csrf),
    )
    .await;
    assert_eq!(
        (created.status, created.location()),
        (303, Some("/profiles/ui-prof")),
        "{}",
        created.body
    );
    let list = c.get("/profiles").await.unwrap();
    assert!(
        list.body
            .contains(r#"<a href="/profiles/ui-prof">ui-prof</a>"#),
        "{}",
        list.body
    );
    assert!(list.body.contains("{{DeviceName}}"));

    // The edit page is filled with version 1; saving it changed makes version 2.
    let edit = c.get("/profiles/ui-prof/edit").await.unwrap();
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains(r#"value="365""#), "{}", edit.body);
    let saved = post_profile(
        &c,
        "/profiles/ui-prof/edit",
        None,
        &fields(&lab, SUBJECT, "200"),
        "save",
        Some(&csrf),
    )
    .await;
    assert_eq!(
        (saved.status, saved.location()),
        (303, Some("/profiles/ui-prof")),
        "{}",
        saved.body
    );
    let page = c.get("/profiles/ui-prof").await.unwrap();
    assert!(
        page.body.contains(r#"<dd id="profile-version">2</dd>"#),
        "{}",
        page.body
    );
    let history = page.body.split(r#"<table id="versions">"#).nth(1).unwrap();
    assert!(
        history.contains("<tr><td>2</td>") && history.contains("<tr><td>1</td>"),
        "{history}"
    );
    assert!(history.contains("200 days") && history.contains("365 days"));

    // Preview for the device: its name in the subject and the SAN, and the template.
    let preview = c
        .get(&format!("/profiles/ui-prof?device={}", d.id))
        .await
        .unwrap();
    assert_eq!(preview.status, 200);
    assert!(
        preview.body.contains(
            r#"<dd class="mono" id="preview-subject">CN=PROFILE-UI-01, OU=Console, O=scep-lab</dd>"#
        ),
        "{}",
        preview.body
    );
    assert!(
        preview
            .body
            .contains("dns:PROFILE-UI-01.devices.scep-lab.test")
    );
    assert!(
        preview
            .body
            .contains(&format!(r#"<dd id="preview-template">{TEMPLATE}</dd>"#))
    );
    // The form's Preview button renders what was typed, saving nothing.
    let mut typed = fields(&lab, "CN={{SerialNumber}}", "100");
    typed.push(("preview_device", d.id.clone()));
    let unsaved = post_profile(
        &c,
        "/profiles/ui-prof/edit",
        None,
        &typed,
        "preview",
        Some(&csrf),
    )
    .await;
    assert_eq!(unsaved.status, 200, "{}", unsaved.body);
    assert!(
        unsaved.body.contains("CN=SN-PROFILE-UI-01"),
        "{}",
        unsaved.body
    );
    assert!(
        c.get("/profiles/ui-prof")
            .await
            .unwrap()
            .body
            .contains(r#"<dd id="profile-version">2</dd>"#)
    );

    // Assign to the device: its page lists the profile; unassign: it does not.
    let a = c
        .post(
            "/profiles/ui-prof/assign",
            &[("csrf", &csrf), ("kind", "device"), ("target", &d.id)],
        )
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.location()),
        (303, Some("/profiles/ui-prof")),
        "{}",
        a.body
    );
    let device_page = c.get(&format!("/devices/{}", d.id)).await.unwrap();
    assert!(
        device_page
            .body
            .contains(r#"<a href="/profiles/ui-prof">ui-prof</a>"#),
        "{}",
        device_page.body
    );
    assert_eq!(
        lab.policy().device_view(&d.id).await.unwrap().profiles,
        vec!["ui-prof".to_owned()]
    );
    let u = c
        .post(
            "/profiles/ui-prof/unassign",
            &[("csrf", &csrf), ("kind", "device"), ("target", &d.id)],
        )
        .await
        .unwrap();
    assert_eq!(u.status, 303, "{}", u.body);
    assert!(
        lab.policy()
            .device_view(&d.id)
            .await
            .unwrap()
            .profiles
            .is_empty()
    );

    // Assign to a group: listed on the profile's page, whose controls are all labelled.
    let group = Group {
        id: "ui-group".into(),
        name: "UI group".into(),
    };
    lab.policy().create_group(group).await.unwrap();
    // The assignment form offers the groups to pick from.
    let page = c.get("/profiles/ui-prof").await.unwrap();
    assert!(
        page.body.contains(r#"list="assign-groups""#)
            && page
                .body
                .contains(r#"<option value="ui-group" label="group: UI group"></option>"#),
        "{}",
        page.body
    );
    let g = c
        .post(
            "/profiles/ui-prof/assign",
            &[("csrf", &csrf), ("kind", "group"), ("target", "ui-group")],
        )
        .await
        .unwrap();
    assert_eq!(g.status, 303, "{}", g.body);
    let page = c.get("/profiles/ui-prof").await.unwrap();
    let assigned = page
        .body
        .split(r#"<table id="assignments">"#)
        .nth(1)
        .unwrap();
    let assigned = assigned.split("</table>").next().unwrap();
    assert!(
        assigned.contains("<td>group</td>") && assigned.contains(r#"value="ui-group""#),
        "{assigned}"
    );
    assert_labelled(&page.body);
    assert_labelled(&edit.body);
    assert_labelled(&c.get("/profiles/new").await.unwrap().body);

    // The nav bar and the overview link here.
    let overview = c.get("/").await.unwrap();
    assert!(
        overview
            .body
            .contains(r#"<a href="/profiles">Profiles</a>"#)
    );
    assert!(overview.body.contains(r#"id="overview-profiles""#));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_profile_form_shows_the_field_error_and_stores_nothing() {
    let lab = TestLab::start().await.unwrap();
    let c = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let csrf = c.csrf("/profiles/new").await.unwrap();

    // The policy module refuses the validity: its message at that field, the typed form kept.
    let bad = post_profile(
        &c,
        "/profiles",
        Some("bad-prof"),
        &fields(&lab, SUBJECT, "9999"),
        "save",
        Some(&csrf),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body
            .contains(r#"id="error-validity_days">validity_days: 1..=730</span>"#),
        "{}",
        bad.body
    );
    assert!(
        bad.body
            .contains(r#"name="validity_days" value="9999" aria-invalid="true""#)
    );
    assert!(bad.body.contains(r#"name="id" value="bad-prof""#));
    assert!(bad.body.contains("OU=Console"));

    // Not a number: refused by the console at its field before any call.
    let mut typed = fields(&lab, SUBJECT, "365");
    typed[7].1 = "lots".into();
    let nan = post_profile(
        &c,
        "/profiles",
        Some("bad-prof"),
        &typed,
        "save",
        Some(&csrf),
    )
    .await;
    assert_eq!(nan.status, 400);
    assert!(nan.body.contains(r#"id="error-key_size""#), "{}", nan.body);

    // A message naming no field goes at the top.
    let mut typed = fields(&lab, SUBJECT, "365");
    typed[14].1 = "99".into();
    let top = post_profile(
        &c,
        "/profiles",
        Some("bad-prof"),
        &typed,
        "save",
        Some(&csrf),
    )
    .await;
    assert_eq!(top.status, 400);
    assert!(
        top.body.contains(r#"id="form-error">retry_count"#),
        "{}",
        top.body
    );

    // Nothing was stored.
    assert_eq!(c.get("/profiles/bad-prof").await.unwrap().status, 404);
    assert!(!c.get("/profiles").await.unwrap().body.contains("bad-prof"));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_changes_need_the_admin_role_and_the_csrf_token() {
    let lab = TestLab::start().await.unwrap();
    let d = lab.device("PROFILE-UI-02").await.unwrap();
    lab.profile("kept", |_| {}).await.unwrap();
    let admin = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let reader = signed_in(&lab, lab.tokens().console_readonly.expose()).await;
    let reader_csrf = csrf_of(&reader.get("/profiles/kept").await.unwrap().body).unwrap();
    let f = fields(&lab, SUBJECT, "100");
    let assign = |csrf: Option<String>| {
        let mut p = vec![("kind", "device".to_owned()), ("target", d.id.clone())];
        p.extend(csrf.map(|t| ("csrf", t)));
        p
    };
    let pairs =
        |p: &[(&'static str, String)]| p.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();

    // The read-only role may look, not change.
    assert_eq!(reader.get("/profiles/kept").await.unwrap().status, 200);
    for (path, id) in [("/profiles", Some("ro-new")), ("/profiles/kept/edit", None)] {
        let r = post_profile(&reader, path, id, &f, "save", Some(&reader_csrf)).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.body.contains("read-only"));
    }
    for path in ["/profiles/kept/assign", "/profiles/kept/unassign"] {
        let p = pairs(&assign(Some(reader_csrf.clone())));
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(reader.post(path, &p).await.unwrap().status, 403, "{path}");
    }

    // An admin's form without its token is refused.
    for (path, id) in [
        ("/profiles", Some("no-csrf")),
        ("/profiles/kept/edit", None),
    ] {
        let r = post_profile(&admin, path, id, &f, "save", None).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.body.contains("Nothing was changed"));
    }
    let p = pairs(&assign(None));
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        admin
            .post("/profiles/kept/assign", &p)
            .await
            .unwrap()
            .status,
        403
    );

    // Nothing changed: no new profile, still version 1, no assignment.
    assert_eq!(admin.get("/profiles/no-csrf").await.unwrap().status, 404);
    assert_eq!(admin.get("/profiles/ro-new").await.unwrap().status, 404);
    let page = admin.get("/profiles/kept").await.unwrap();
    assert!(
        page.body.contains(r#"<dd id="profile-version">1</dd>"#),
        "{}",
        page.body
    );
    assert!(
        lab.policy()
            .device_view(&d.id)
            .await
            .unwrap()
            .profiles
            .is_empty()
    );
    lab.shutdown().await;
}
