//! TLS where credentials travel (issue 17 item 4): with `LabOptions.tls` on, every non-SCEP
//! listener serves HTTPS with a certificate from the lab's own CA, which `curl --cacert` and
//! `openssl s_client -verify_return_error` accept; the services call each other over HTTPS
//! with that root pinned, so an enrollment and a revocation go through; plain HTTP to an
//! admin listener is never served; SCEP answers on plain HTTP and on its HTTPS port; the
//! console's cookie is Secure; and each server certificate is re-issued and reloaded when a
//! third of its lifetime is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use policy_module::admin::Lifecycle;
use scep_lab::TlsOptions;
use scep_lab_tests::console::ConsoleClient;
use scep_lab_tests::*;

async fn tls_lab(edit: impl FnOnce(&mut LabOptions)) -> TestLab {
    TestLab::start_with(|o| {
        o.tls = Some(TlsOptions::default());
        edit(o);
    })
    .await
    .unwrap()
}

/// Every HTTPS base URL of the lab with a page it serves to anyone: ca-mock, policy-module,
/// the console (its sign-in page), ndes-proxy's HTTPS listener.
fn https_pages(lab: &TestLab) -> Vec<(String, &'static str)> {
    let scep = lab.scep_https_url().unwrap();
    let ndes = scep.trim_end_matches("/certsrv/mscep/mscep.dll").to_owned();
    vec![
        (lab.ca_url(), "/healthz"),
        (lab.policy_url(), "/healthz"),
        (lab.console_url(), "/login"),
        (ndes, "/healthz"),
    ]
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_owned()
}

fn run(program: &str, args: &[&str]) -> testkit::cmd::CmdOutput {
    testkit::cmd::run(program, args, None, testkit::cmd::OPENSSL_TIMEOUT).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_verify_every_https_listener_against_the_lab_root() {
    let lab = tls_lab(|_| {}).await;
    let root = lab.tls_root_path().unwrap();
    let root = root.to_str().unwrap();
    for (base, page) in https_pages(&lab) {
        assert!(base.starts_with("https://127.0.0.1:"), "{base}");
        let url = format!("{base}{page}");
        let ok = run(
            "curl",
            &["-sS", "-f", "--max-time", "20", "--cacert", root, &url],
        );
        assert!(ok.success(), "curl --cacert {url}: {ok:?}");
        // Without the lab's root, the system's roots do not vouch for it.
        let refused = run("curl", &["-sS", "-f", "--max-time", "20", &url]);
        assert!(!refused.success(), "curl without the root: {refused:?}");
        let connect = format!("127.0.0.1:{}", port_of(&base));
        let s = run(
            "openssl",
            &[
                "s_client",
                "-connect",
                &connect,
                "-CAfile",
                root,
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
                "-brief",
            ],
        );
        assert!(s.success(), "openssl s_client {connect}: {s:?}");
        assert!(
            s.stderr_str().contains("Verification: OK"),
            "openssl s_client {connect}: {s:?}"
        );
    }
    // SCEP over HTTPS answers as over plain HTTP.
    let caps = format!("{}?operation=GetCACaps", lab.scep_https_url().unwrap());
    let ok = run(
        "curl",
        &["-sS", "-f", "--max-time", "20", "--cacert", root, &caps],
    );
    assert!(ok.stdout_str().contains("SHA-256"), "{ok:?}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_admin_listeners_is_refused_with_tls_on() {
    let lab = tls_lab(|_| {}).await;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let token = lab.tokens().policy_admin.expose().to_owned();
    // The policy module's admin API, ca-mock and the console over http://: never served.
    for base in [lab.policy_url(), lab.ca_url(), lab.console_url()] {
        let url = format!("{}/api/v1/devices", base.replacen("https://", "http://", 1));
        match plain.get(&url).bearer_auth(&token).send().await {
            Err(_) => {}
            Ok(r) => assert!(!r.status().is_success(), "{url} served over plain HTTP"),
        }
    }
    // ndes-proxy's plain listener: SCEP yes, the admin side no, with a 403 naming HTTPS.
    let scep = lab.scep_url();
    assert!(scep.starts_with("http://"), "{scep}");
    let caps = plain
        .get(format!("{scep}?operation=GetCACaps"))
        .send()
        .await
        .unwrap();
    assert_eq!(caps.status(), 200);
    let plain_base = scep.trim_end_matches("/certsrv/mscep/mscep.dll");
    let https_admin = lab.mscep_admin_url();
    assert!(https_admin.starts_with("https://"), "{https_admin}");
    for path in ["/certsrv/mscep_admin/", "/admin/v1/pending"] {
        let r = plain
            .get(format!("{plain_base}{path}"))
            .bearer_auth(lab.tokens().mscep_admin.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body = r.text().await.unwrap();
        let https_base = https_admin.trim_end_matches("/certsrv/mscep_admin/");
        assert!(body.contains(&format!("{https_base}{path}")), "{body}");
    }
    // Over HTTPS with the root pinned, the admin page mints a challenge.
    let pinned = lab_http(&lab)
        .unwrap()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let minted = pinned
        .get(format!("{https_admin}?format=json"))
        .bearer_auth(lab.tokens().mscep_admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 200);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_and_a_revocation_go_through_services_talking_over_tls() {
    let lab = tls_lab(|_| {}).await;
    assert!(lab.ca_url().starts_with("https://"));
    // Saving the profile asks the CA for its template (policy-module -> ca-mock over HTTPS).
    lab.profile(PROFILE, |_| {}).await.unwrap();
    // ndes-proxy -> ca-mock over HTTPS issues; the device checks in over HTTPS.
    let (d, cert) = lab.enrolled_device("TLS-01", PROFILE).await.unwrap();
    assert_eq!(
        lab.ca_record(&cert.serial_hex).await.unwrap().template,
        DEVICE_TEMPLATES[0]
    );
    // The outbox revokes at ca-mock over HTTPS.
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Block)
        .await
        .unwrap();
    lab.wait_revoked(&cert.serial_hex).await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_session_cookie_is_secure_over_tls() {
    let lab = tls_lab(|_| {}).await;
    let mut c = ConsoleClient::new(&lab.console_url()).unwrap();
    c.http = lab_http(&lab)
        .unwrap()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ok = c
        .login("", lab.tokens().console_admin.expose())
        .await
        .unwrap();
    assert_eq!(ok.status, 303);
    let cookie = ok.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    // Its pages read the services over HTTPS.
    let overview = c.get("/").await.unwrap();
    assert_eq!(overview.status, 200, "{}", overview.body);
    lab.shutdown().await;
}

/// The serial of the certificate `url`'s listener presents to a new connection. Verification is
/// off here only: after the clock jump the new certificate is not yet valid in real time.
async fn presented_serial(url: &str) -> String {
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = client.get(format!("{url}/healthz")).send().await.unwrap();
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    let cert = openssl::x509::X509::from_der(info.peer_certificate().unwrap()).unwrap();
    hex::encode(cert.serial_number().to_bn().unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificates_are_renewed_when_a_third_of_their_lifetime_is_left() {
    let clock = Arc::new(foundation::ManualClock::at_system_now());
    let c = clock.clone();
    let lab = tls_lab(move |o| o.clock = c).await;
    let url = lab.policy_url();
    let before = presented_serial(&url).await;
    // Fresh certificates (90 days) are not due.
    assert!(lab.renew_tls_due().await.unwrap().is_empty());
    clock.advance(59 * 86_400);
    assert!(lab.renew_tls_due().await.unwrap().is_empty());
    assert_eq!(presented_serial(&url).await, before);
    // Past 60 days (a third, 30 days, left): every certificate is re-issued and served.
    clock.advance(2 * 86_400);
    let mut renewed = lab.renew_tls_due().await.unwrap();
    renewed.sort_unstable();
    assert_eq!(
        renewed,
        ["ca-mock", "ndes-proxy", "policy-module", "scep-console"]
    );
    let after = presented_serial(&url).await;
    assert_ne!(after, before);
    let on_disk = std::fs::read(lab.tls().unwrap().cert_path("policy-module")).unwrap();
    let on_disk = openssl::x509::X509::from_pem(&on_disk).unwrap();
    assert_eq!(
        hex::encode(on_disk.serial_number().to_bn().unwrap().to_vec()),
        after
    );
    // The key stays the owner's only.
    let key = lab.data_dir().join("tls/policy-module.key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    lab.shutdown().await;
}
