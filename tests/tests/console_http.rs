//! The web console's security rules over plain HTTP (issue 18), against the lab's console:
//! - pages need a session; sign-in sets an HttpOnly, SameSite=Strict cookie and never echoes
//!   the secret; logout (with its CSRF token) ends the session;
//! - a form posted without its CSRF token, or with another, is refused with nothing changed;
//! - the read-only role is refused actions server-side, not only shown no buttons;
//! - sign-in attempts are rate-limited per source;
//! - a request a browser labels as another site's is refused;
//! - bad ids are clear 4xx pages, and every visible control has a label;
//! - the device list is paged and searched, and what was searched is shown escaped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scep_lab_tests::console::{ConsoleClient, csrf_of};
use scep_lab_tests::*;

async fn signed_in(lab: &TestLab, token: &str) -> ConsoleClient {
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    let a = c.login("", token).await.unwrap();
    assert_eq!(a.status, 303, "{}", a.body);
    c
}

async fn device_state(lab: &TestLab, id: &str) -> String {
    lab.policy()
        .device_view(id)
        .await
        .unwrap()
        .device
        .state
        .as_str()
        .to_owned()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_cookie_pages_and_logout() {
    let lab = TestLab::start().await.unwrap();
    let token = lab.tokens().console_admin.expose().to_owned();
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();

    // No session: every page sends to the sign-in page.
    for path in ["/", "/devices", "/transactions/abc", "/certificates/01"] {
        let a = c.get(path).await.unwrap();
        assert_eq!((a.status, a.location()), (303, Some("/login")), "{path}");
    }
    let login = c.get("/login").await.unwrap();
    assert_eq!(login.status, 200);
    assert_labelled(&login.body);
    // Liveness needs no session, as on every service.
    let health = c.get("/healthz").await.unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    // A wrong secret: 401, no cookie, the secret not shown back.
    let wrong = c.login("", "not-the-token-xyz").await.unwrap();
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(!wrong.body.contains("not-the-token-xyz"));

    // The right one: a strict cookie, the overview with the CA's facts.
    let ok = c.login("", &token).await.unwrap();
    assert_eq!((ok.status, ok.location()), (303, Some("/")));
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let overview = c.get("/").await.unwrap();
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains(lab.root_fingerprint()));
    assert!(overview.body.contains(&lab.scep_url()));
    assert!(overview.body.contains(r#"id="crl-number""#));
    assert!(
        !overview.body.contains(&token),
        "the sign-in token on a page"
    );
    assert_labelled(&overview.body);
    let csp = overview.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(overview.headers["cache-control"], "no-store");

    // Bad ids are clear 4xx pages.
    let long = "a".repeat(129);
    assert_eq!(
        c.get(&format!("/transactions/{long}"))
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(c.get("/transactions/no-such-tx").await.unwrap().status, 404);
    assert_eq!(c.get("/devices/no-such-device").await.unwrap().status, 404);
    assert_eq!(c.get("/devices/x/explode").await.unwrap().status, 404);
    assert_eq!(c.get("/certificates/zz").await.unwrap().status, 400);
    assert_eq!(c.get("/certificates/0badc0de").await.unwrap().status, 404);

    // Logout needs the session's CSRF token; then the cookie is dead.
    let refused = c.post("/logout", &[]).await.unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(c.get("/").await.unwrap().status, 200, "still signed in");
    let csrf = csrf_of(&overview.body).unwrap();
    let out = c.post("/logout", &[("csrf", &csrf)]).await.unwrap();
    assert_eq!((out.status, out.location()), (303, Some("/login")));
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = c.get("/").await.unwrap();
    assert_eq!((after.status, after.location()), (303, Some("/login")));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let lab = TestLab::start().await.unwrap();
    let d = lab.device("CSRF-01").await.unwrap();
    let c = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let confirm = c.get(&format!("/devices/{}/retire", d.id)).await.unwrap();
    assert_eq!(confirm.status, 200);
    assert_labelled(&confirm.body);
    let csrf = csrf_of(&confirm.body).unwrap();
    let audit_before = lab.audit(Some(&d.id)).await.unwrap().len();

    let path = format!("/devices/{}/retire", d.id);
    for form in [vec![], vec![("csrf", "forged")], vec![("csrf", "")]] {
        let a = c.post(&path, &form).await.unwrap();
        assert_eq!(a.status, 403, "{form:?}");
        assert!(a.body.contains("Nothing was changed"));
    }
    // Another session's token is not this session's.
    let other = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let other_csrf = other.csrf("/").await.unwrap();
    assert_ne!(other_csrf, csrf);
    assert_eq!(
        c.post(&path, &[("csrf", &other_csrf)])
            .await
            .unwrap()
            .status,
        403
    );

    assert_eq!(device_state(&lab, &d.id).await, "active");
    assert_eq!(lab.audit(Some(&d.id)).await.unwrap().len(), audit_before);

    // With its token the same form acts (the refusal above was the token's doing).
    let done = c.post(&path, &[("csrf", &csrf)]).await.unwrap();
    assert_eq!(
        (done.status, done.location()),
        (303, Some(format!("/devices/{}", d.id).as_str()))
    );
    assert_eq!(device_state(&lab, &d.id).await, "retired");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_role_is_refused_actions_server_side() {
    let lab = TestLab::start().await.unwrap();
    let d = lab.device("READONLY-01").await.unwrap();
    let c = signed_in(&lab, lab.tokens().console_readonly.expose()).await;
    let page = c.get(&format!("/devices/{}", d.id)).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("(read-only)"));
    let csrf = csrf_of(&page.body).unwrap();
    for action in ["retire", "wipe", "block", "delete"] {
        let a = c
            .post(&format!("/devices/{}/{action}", d.id), &[("csrf", &csrf)])
            .await
            .unwrap();
        assert_eq!(a.status, 403, "{action}");
        assert!(a.body.contains("read-only"), "{}", a.body);
    }
    assert_eq!(device_state(&lab, &d.id).await, "active");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_rate_limited() {
    let lab = TestLab::start().await.unwrap();
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    let burst = scep_console::LOGIN_LIMIT.burst;
    for _ in 0..burst {
        assert_eq!(c.login("", "wrong").await.unwrap().status, 401);
    }
    // Past the burst even the right token waits: the limit comes before the check.
    let limited = c
        .login("", lab.tokens().console_admin.expose())
        .await
        .unwrap();
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.headers.get("set-cookie").is_none());
    assert!(c.cookie.is_none());
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_are_refused() {
    let lab = TestLab::start().await.unwrap();
    let token = lab.tokens().console_admin.expose().to_owned();
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    // Login CSRF: another site's form cannot sign a browser in.
    let a = c
        .post_with(
            "/login",
            &[("user", ""), ("secret", &token)],
            &[("origin", "https://evil.example")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 403);
    assert!(a.headers.get("set-cookie").is_none());
    // A signed-in browser's cross-site navigation or post is refused too.
    assert_eq!(c.login("", &token).await.unwrap().status, 303);
    let d = lab.device("XSITE-01").await.unwrap();
    let csrf = c.csrf("/").await.unwrap();
    let a = c
        .post_with(
            &format!("/devices/{}/block", d.id),
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 403);
    assert_eq!(device_state(&lab, &d.id).await, "active");
    let a = c
        .get_with("/", &[("sec-fetch-site", "same-site")])
        .await
        .unwrap();
    assert_eq!(a.status, 403);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_list_is_paged_and_searched() {
    use policy_module::model::{DeviceSpec, Platform};
    let lab = TestLab::start().await.unwrap();
    let per_page = 50;
    for i in 0..=per_page {
        lab.policy()
            .register_device(DeviceSpec {
                id: Some(format!("dev-{i:03}")),
                name: format!("LAPTOP-{i:03}"),
                platform: Platform::Windows,
                serial_number: None,
                owner_upn: Some(format!("user{i}@scep-lab.test")),
                owner_email: None,
                aad_device_id: None,
                user_name: None,
            })
            .await
            .unwrap();
    }
    let c = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let rows = |page: &str| page.matches(r#"<tr><td><a href="/devices/"#).count();
    let first = c.get("/devices").await.unwrap();
    assert_eq!(rows(&first.body), per_page);
    assert!(first.body.contains("Page 1 of 2"));
    assert!(first.body.contains(r#"rel="next""#));
    let second = c.get("/devices?page=2").await.unwrap();
    assert_eq!(rows(&second.body), 1);
    assert!(second.body.contains(r#"rel="prev""#));
    // Search by owner, case-insensitive; a page past the end shows the last one.
    let found = c.get("/devices?q=USER7%40&page=9").await.unwrap();
    assert_eq!(rows(&found.body), 1, "{}", found.body);
    assert!(found.body.contains("LAPTOP-007"));
    let none = c.get("/devices?q=%3Cscript%3E").await.unwrap();
    assert_eq!(rows(&none.body), 0);
    assert!(none.body.contains("&lt;script&gt;") && !none.body.contains("<script>"));
    lab.shutdown().await;
}

/// ndes-proxy's own view of the requests it holds, by its admin API.
async fn ndes_pending(lab: &TestLab) -> Vec<serde_json::Value> {
    let scep = lab.scep_url();
    let base = scep.trim_end_matches("/certsrv/mscep/mscep.dll");
    reqwest::Client::new()
        .get(format!("{base}/admin/v1/pending"))
        .bearer_auth(lab.tokens().ndes_admin.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_are_approved_and_denied_by_admins_only() {
    let lab = TestLab::start_with(|o| {
        o.ndes_settings
            .approval_templates
            .insert(TEMPLATE.to_owned());
    })
    .await
    .unwrap();
    lab.profile(PROFILE, |s| {
        s.retry_count = 0;
        s.retry_delay_minutes = 0;
    })
    .await
    .unwrap();
    for name in ["HELD-01", "HELD-02"] {
        let d = lab.targeted_device(name, PROFILE).await.unwrap();
        let summary = d.sync().await.unwrap();
        assert!(summary.installed.is_empty(), "{summary:?}");
    }
    let held = ndes_pending(&lab).await;
    assert_eq!(held.len(), 2, "{held:?}");
    let id = |i: usize| held[i]["request_id"].as_str().unwrap().to_owned();

    // Read-only: listed, but the decision is refused server-side.
    let ro = signed_in(&lab, lab.tokens().console_readonly.expose()).await;
    let page = ro.get("/pending").await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("CN=HELD-01") && page.body.contains("CN=HELD-02"));
    let csrf = csrf_of(&page.body).unwrap();
    let refused = ro
        .post(&format!("/pending/{}/approve", id(0)), &[("csrf", &csrf)])
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    // Admin without the token: refused too.
    let admin = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    let refused = admin
        .post(&format!("/pending/{}/deny", id(1)), &[])
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    let states: Vec<_> = ndes_pending(&lab)
        .await
        .iter()
        .map(|p| p["state"].clone())
        .collect();
    assert_eq!(states, ["awaiting_approval", "awaiting_approval"]);

    // Admin with the token: one approved (issued now), one denied.
    let csrf = admin.csrf("/pending").await.unwrap();
    for (i, decision) in [(0, "approve"), (1, "deny")] {
        let a = admin
            .post(
                &format!("/pending/{}/{decision}", id(i)),
                &[("csrf", &csrf)],
            )
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.location()),
            (303, Some("/pending")),
            "{}",
            a.body
        );
    }
    let after = ndes_pending(&lab).await;
    let state_of = |rid: &str| {
        after
            .iter()
            .find(|p| p["request_id"] == rid)
            .map(|p| p["state"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(state_of(&id(0)), "issued");
    assert_eq!(state_of(&id(1)), "denied");
    let page = admin.get("/pending").await.unwrap();
    assert!(page.body.contains("0 request(s)"), "{}", page.body);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_filtered_by_device_and_event() {
    let lab = TestLab::start().await.unwrap();
    let one = lab.device("AUDIT-01").await.unwrap();
    let two = lab.device("AUDIT-02").await.unwrap();
    let c = signed_in(&lab, lab.tokens().console_readonly.expose()).await;
    let all = c.get("/audit").await.unwrap();
    assert_eq!(all.status, 200);
    assert_labelled(&all.body);
    assert!(all.body.contains(&one.id) && all.body.contains(&two.id));
    let mine = c.get(&format!("/audit?device={}", one.id)).await.unwrap();
    assert!(mine.body.contains("device_registered"), "{}", mine.body);
    assert!(mine.body.contains(&one.id) && !mine.body.contains(&two.id));
    let none = c.get("/audit?event=%22%3E%3Cb%3Enothing").await.unwrap();
    assert!(!none.body.contains("device_registered"));
    assert!(none.body.contains("&quot;&gt;&lt;b&gt;nothing"));
    assert_eq!(c.get("/audit?device=..").await.unwrap().status, 400);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mscep_admin_challenge_is_shown_once_and_enrolls_once() {
    let lab = TestLab::start().await.unwrap();
    let ro = signed_in(&lab, lab.tokens().console_readonly.expose()).await;
    let ro_csrf = ro.csrf("/challenge").await.unwrap();
    assert_eq!(
        ro.post("/challenge", &[("csrf", &ro_csrf)])
            .await
            .unwrap()
            .status,
        403
    );
    let admin = signed_in(&lab, lab.tokens().console_admin.expose()).await;
    assert_eq!(admin.post("/challenge", &[]).await.unwrap().status, 403);
    let csrf = admin.csrf("/challenge").await.unwrap();
    let minted = admin.post("/challenge", &[("csrf", &csrf)]).await.unwrap();
    assert_eq!(minted.status, 200);
    assert_eq!(minted.headers["cache-control"], "no-store");
    let start = minted.body.find(r#"id="challenge">"#).unwrap() + r#"id="challenge">"#.len();
    let end = start + minted.body[start..].find('<').unwrap();
    let challenge = minted.body[start..end].to_owned();
    assert!(challenge.len() >= 16, "{challenge}");
    // Shown once: not on the form, the overview or the audit log.
    for path in ["/challenge", "/", "/audit"] {
        let page = admin.get(path).await.unwrap();
        assert!(
            !page.body.contains(&challenge),
            "the challenge again on {path}"
        );
    }
    // It is a real one-time password: a plain SCEP client enrolls with it, once.
    let client = RawScep::discover(&lab.scep_url(), lab.root_fingerprint())
        .await
        .unwrap();
    let csr = |key: &openssl::pkey::PKey<openssl::pkey::Private>| {
        let mut name = openssl::x509::X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "console-client-01")
            .unwrap();
        scep::csr::build(
            key,
            &name.build(),
            None,
            Some(&scep::csr::ChallengePassword::new(&challenge)),
            openssl::hash::MessageDigest::sha256(),
        )
        .unwrap()
    };
    let key = rsa_key(2048).unwrap();
    let (_, first) = client.pkcs_req(&csr(&key), &key).await.unwrap();
    assert!(
        matches!(first, scep::client::CertRep::Success(_)),
        "{first:?}"
    );
    let other = rsa_key(2048).unwrap();
    let (_, second) = client.pkcs_req(&csr(&other), &other).await.unwrap();
    assert!(
        matches!(second, scep::client::CertRep::Failure { .. }),
        "single use: {second:?}"
    );
    lab.shutdown().await;
}
