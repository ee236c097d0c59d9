//! Mutual TLS between the lab's services (issue 17 item 4; docs/decisions.md #18): with
//! `TlsOptions.mutual`, each calling service presents a client certificate from the lab's CA
//! (CN = its caller name, clientAuth) instead of a bearer token. An enrollment (ndes-proxy ->
//! ca-mock) and a revocation (the outbox -> ca-mock) go through; the right bearer token without
//! a certificate is refused by ca-mock and by the policy module's internal API; a certificate
//! from another CA fails the handshake; one from the lab's CA with an unknown name, or with a
//! caller's name but not the certificate the lab gave that caller, is 403.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ca_api::IssueCall;
use foundation::names::{NameAttr, SubjectAttr};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage};
use openssl::x509::{X509, X509Builder, X509Name, X509ReqBuilder};
use policy_module::admin::Lifecycle;
use scep_lab::TlsOptions;
use scep_lab_tests::*;

async fn mutual_lab() -> TestLab {
    TestLab::start_with(|o| {
        o.tls = Some(TlsOptions {
            mutual: true,
            scep_https_port: 0,
        });
    })
    .await
    .unwrap()
}

/// A client pinned to the lab's root, presenting `identity` (chain PEM, key PEM) if given.
fn client(lab: &TestLab, identity: Option<(&[u8], &[u8])>) -> reqwest::Client {
    let mut tls = lab.tls().unwrap().pin().clone();
    if let Some((chain, key)) = identity {
        tls = tls.with_identity(chain, key).unwrap();
    }
    tls.builder()
        .unwrap()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The lab's client certificate and key of `caller`, as written under `<data>/tls/`.
fn lab_identity(lab: &TestLab, caller: &str) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = lab.tls().unwrap().client_paths(caller);
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

fn rsa() -> PKey<Private> {
    PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
}

fn cn(name: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("CN", name).unwrap();
    n.build()
}

/// `GET /api/v1/templates` at ca-mock (a Read) with `token`: the status.
async fn ca_read(lab: &TestLab, http: &reqwest::Client, token: Option<&str>) -> u16 {
    let mut req = http.get(format!("{}/api/v1/templates", lab.ca_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// `POST /internal/v1/verify` at the policy module with `token` and an empty JSON object.
async fn policy_internal(lab: &TestLab, http: &reqwest::Client, token: Option<&str>) -> u16 {
    let mut req = http
        .post(format!("{}/internal/v1/verify", lab.policy_url()))
        .header("content-type", "application/json")
        .body("{}");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_and_a_revocation_go_through_services_authenticating_with_client_certificates()
 {
    let lab = mutual_lab().await;
    // Each caller's certificate: CN = its caller name, clientAuth, key 0600.
    for caller in ["ndes-proxy", "policy-module", "scep-console"] {
        let (cert, key) = lab.tls().unwrap().client_paths(caller);
        let x = X509::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let name = x.subject_name().entries().next().unwrap();
        assert_eq!(name.data().as_slice(), caller.as_bytes());
        let text = String::from_utf8(x.to_text().unwrap()).unwrap();
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    // Saving the profile reads the CA's template (policy-module -> ca-mock, its certificate).
    lab.profile(PROFILE, |_| {}).await.unwrap();
    // ndes-proxy -> ca-mock issues with ndes-proxy's certificate.
    let (d, cert) = lab.enrolled_device("MTLS-01", PROFILE).await.unwrap();
    assert_eq!(
        lab.ca_record(&cert.serial_hex).await.unwrap().template,
        DEVICE_TEMPLATES[0]
    );
    // The outbox revokes at ca-mock with the policy module's certificate.
    lab.policy()
        .lifecycle(&d.id, Lifecycle::Block)
        .await
        .unwrap();
    lab.wait_revoked(&cert.serial_hex).await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_without_a_client_certificate_is_refused_with_mutual_on() {
    let lab = mutual_lab().await;
    let tokens = lab.tokens();
    let bare = client(&lab, None);
    // ca-mock: the caller's right token, no certificate: 401, no fallback.
    for token in [&tokens.ca_ndes, &tokens.ca_policy, &tokens.ca_console] {
        assert_eq!(ca_read(&lab, &bare, Some(token.expose())).await, 401);
    }
    // The same call with the caller's certificate (and no token) is served.
    let (chain, key) = lab_identity(&lab, "scep-console");
    let console = client(&lab, Some((&chain, &key)));
    assert_eq!(ca_read(&lab, &console, None).await, 200);
    // The policy module's internal API: ndes-proxy's token alone is 401 ...
    let ndes_token = Some(tokens.policy_ndes.expose());
    assert_eq!(policy_internal(&lab, &bare, ndes_token).await, 401);
    // ... another service's certificate is 403 ...
    assert_eq!(policy_internal(&lab, &console, ndes_token).await, 403);
    // ... and ndes-proxy's certificate gets past authentication to the body's validation.
    let (chain, key) = lab_identity(&lab, "ndes-proxy");
    let ndes = client(&lab, Some((&chain, &key)));
    let status = policy_internal(&lab, &ndes, None).await;
    assert!(![401, 403].contains(&status), "{status}");
    // The admin API keeps its bearer token.
    let admin = bare
        .get(format!("{}/api/v1/devices", lab.policy_url()))
        .bearer_auth(tokens.policy_admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let lab = mutual_lab().await;
    // Another CA, and a clientAuth certificate named like a configured caller.
    let ca_key = rsa();
    let serial = BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&cn("another CA")).unwrap();
    b.set_issuer_name(&cn("another CA")).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let other_ca = b.build();
    let key = rsa();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&cn("ndes-proxy")).unwrap();
    b.set_issuer_name(other_ca.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let mut chain = b.build().to_pem().unwrap();
    chain.extend(other_ca.to_pem().unwrap());
    let key = key.private_key_to_pem_pkcs8().unwrap();
    let foreign = client(&lab, Some((&chain, &key)));
    let tokens = lab.tokens();
    let ca = foreign
        .get(format!("{}/api/v1/templates", lab.ca_url()))
        .bearer_auth(tokens.ca_ndes.expose())
        .send()
        .await;
    assert!(ca.is_err(), "ca-mock served it: {ca:?}");
    let policy = foreign
        .post(format!("{}/internal/v1/verify", lab.policy_url()))
        .bearer_auth(tokens.policy_ndes.expose())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await;
    assert!(policy.is_err(), "policy-module served it: {policy:?}");
    // The lab's own client still gets through afterwards.
    let (chain, key) = lab_identity(&lab, "ndes-proxy");
    assert_eq!(
        ca_read(&lab, &client(&lab, Some((&chain, &key))), None).await,
        200
    );
    lab.shutdown().await;
}

/// A client certificate from the lab's own CA and client template, named `name`, that the
/// lab did not give to any service: (chain PEM, key PEM).
async fn lab_ca_certificate(lab: &TestLab, name: &str) -> (Vec<u8>, Vec<u8>) {
    let key = rsa();
    let mut req = X509ReqBuilder::new().unwrap();
    req.set_subject_name(&cn(name)).unwrap();
    req.set_pubkey(&key).unwrap();
    req.sign(&key, MessageDigest::sha256()).unwrap();
    let call = IssueCall {
        request_id: format!("mtls-test-{name}"),
        template: scep_lab::tls::CLIENT_TEMPLATE_NAME.into(),
        csr_der: req.build().to_der().unwrap(),
        subject: vec![NameAttr {
            attr: SubjectAttr::CN,
            value: name.into(),
        }],
        ..IssueCall::default()
    };
    let issued = lab.ca().issue("scep-lab", &call).await.unwrap();
    let mut chain = X509::from_der(&issued.der).unwrap().to_pem().unwrap();
    chain.extend(lab.ca().material().issuing.to_pem().unwrap());
    (chain, key.private_key_to_pem_pkcs8().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_with_an_unknown_name_or_not_the_callers_own_is_refused_403() {
    let lab = mutual_lab().await;
    let tokens = lab.tokens();
    // Verified, but no caller is named "intruder"; and one named "ndes-proxy" that is not the
    // certificate the lab gave ndes-proxy (a device's could carry that name): 403 both, even
    // with a right token beside it.
    for name in ["intruder", "ndes-proxy"] {
        let (chain, key) = lab_ca_certificate(&lab, name).await;
        let impostor = client(&lab, Some((&chain, &key)));
        assert_eq!(
            ca_read(&lab, &impostor, Some(tokens.ca_ndes.expose())).await,
            403,
            "{name}"
        );
        assert_eq!(
            policy_internal(&lab, &impostor, Some(tokens.policy_ndes.expose())).await,
            403,
            "{name}"
        );
    }
    lab.shutdown().await;
}
