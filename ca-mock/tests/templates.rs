//! Templates over the API (`GET /api/v1/templates[/{name}]`, docs/decisions.md #7): what each
//! caller may see, in the contract's vocabulary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ca_api::client::CaClient;
use ca_api::template::{Curve, UsageSource};
use ca_mock::keys::KeySpec;
use common::*;
use foundation::names::{KeyUsage, SanKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_described_to_entitled_readers_only() {
    let ca = start(KeySpec::EcP256).await;
    let all = ca.policy.templates().await.unwrap();
    let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CEPEncryption",
            "EnrollmentAgentOffline",
            "IPSECIntermediateOffline"
        ]
    );
    let ipsec = ca
        .policy
        .template("IPSECIntermediateOffline")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ipsec.validity_days, 365);
    assert_eq!(
        ipsec.key_usage,
        [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
    );
    // EKUs as dotted OIDs, in certificate order.
    assert_eq!(
        ipsec.extended_key_usage,
        [
            "1.3.6.1.5.5.7.3.2",
            "1.3.6.1.5.5.7.3.1",
            "1.3.6.1.5.5.8.2.2"
        ]
    );
    assert_eq!(ipsec.keys.rsa_min_bits, Some(2048));
    assert_eq!(ipsec.keys.ec_curves, [Curve::P256, Curve::P384]);
    let loaded = ca.ca().template("IPSECIntermediateOffline").unwrap();
    assert_eq!(ipsec.san_allowed, loaded.sans.allowed);
    assert!(
        !ipsec.san_allowed.contains(&SanKind::Upn),
        "the sample refuses UPN SANs"
    );
    assert_eq!(ipsec.san_max, 10);
    assert_eq!(ipsec.usages, UsageSource::Template, "the default");
    assert!(
        ca.policy
            .template("NoSuchTemplate")
            .await
            .unwrap()
            .is_none()
    );

    // A caller sees only the templates it is entitled to.
    let narrow = CaClient::new(&ca.base, Some(NARROW_TOKEN.into())).unwrap();
    let names: Vec<_> = narrow
        .templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["CEPEncryption", "EnrollmentAgentOffline"]);
    let refused = narrow
        .template("IPSECIntermediateOffline")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"));
    // No token, or a wrong one: 401.
    for client in [
        ca.anonymous.clone(),
        CaClient::new(&ca.base, Some("wrong".into())).unwrap(),
    ] {
        assert_eq!(
            client.templates().await.unwrap_err().code(),
            Some("unauthorized")
        );
        assert_eq!(
            client
                .template("IPSECIntermediateOffline")
                .await
                .unwrap_err()
                .code(),
            Some("unauthorized")
        );
    }
    ca.stop().await;
}

/// The key usage bits (digitalSignature, keyEncipherment) and the EKU OIDs of a certificate.
fn usages(der: &[u8]) -> ((bool, bool), Vec<String>) {
    use der::Decode;
    use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage as Ku};
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    let exts = cert.tbs_certificate.extensions.unwrap();
    let value = |oid: &str| {
        exts.iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes().to_vec())
    };
    let ku = Ku::from_der(&value("2.5.29.15").unwrap()).unwrap();
    let eku = value("2.5.29.37")
        .map(|v| ExtendedKeyUsage::from_der(&v).unwrap().0)
        .unwrap_or_default();
    (
        (ku.digital_signature(), ku.key_encipherment()),
        eku.iter().map(ToString::to_string).collect(),
    )
}

const CLIENT: &str = "1.3.6.1.5.5.7.3.2";
const SERVER: &str = "1.3.6.1.5.5.7.3.1";
const IKE_INTERMEDIATE: &str = "1.3.6.1.5.5.8.2.2";

/// The CA's core issues (as at its console, so without the policy module's signed grant, which
/// binds the same key usage and EKU fields): what the option changes is what is built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowing_template_issues_the_granted_usages_within_its_own() {
    let mut templates = ca_mock::template::Template::builtin().unwrap();
    let mut narrowing = templates[0].clone();
    assert_eq!(narrowing.name, "IPSECIntermediateOffline");
    narrowing.name = "IPSECNarrowing".into();
    narrowing.usages = UsageSource::RequestWithinTemplate;
    templates.push(narrowing);
    let ca = start_with_templates(KeySpec::EcP256, templates).await;
    let key = rsa_key(2048);
    let issue = |id: &str, template: &str, ku: Vec<KeyUsage>, eku: &[&str]| {
        let mut r = issue_request(id, template, &csr(&key, id, false), "dev-1");
        r.key_usage = ku;
        r.extended_key_usages = eku.iter().map(|e| (*e).to_owned()).collect();
        let c = call(&r);
        let ca = ca.state.ca.clone();
        async move { ca.issue("test", &c).await }
    };
    let ds = || vec![KeyUsage::DigitalSignature];

    // The default template still decides: the grant's clientAuth gets all three EKUs.
    let c = issue("n-1", "IPSECIntermediateOffline", ds(), &[CLIENT])
        .await
        .unwrap();
    assert_eq!(
        usages(&c.der),
        (
            (true, true),
            vec![CLIENT.into(), SERVER.into(), IKE_INTERMEDIATE.into()]
        )
    );
    // The narrowing one issues exactly the grant's, names resolved to OIDs.
    let c = issue("n-2", "IPSECNarrowing", ds(), &["clientAuth"])
        .await
        .unwrap();
    assert_eq!(usages(&c.der), ((true, false), vec![CLIENT.into()]));
    // What the template does not list is dropped; nothing granted leaves the template's.
    let c = issue(
        "n-3",
        "IPSECNarrowing",
        vec![KeyUsage::KeyEncipherment, KeyUsage::NonRepudiation],
        &[SERVER, "emailProtection"],
    )
    .await
    .unwrap();
    assert_eq!(usages(&c.der), ((false, true), vec![SERVER.into()]));
    let c = issue("n-4", "IPSECNarrowing", ds(), &[]).await.unwrap();
    assert_eq!(usages(&c.der).1, [CLIENT, SERVER, IKE_INTERMEDIATE]);
    // A grant naming no usages at all (plain mode, the admin page): the template's.
    let c = issue("n-4b", "IPSECNarrowing", vec![], &[]).await.unwrap();
    assert_eq!(
        usages(&c.der),
        (
            (true, true),
            vec![CLIENT.into(), SERVER.into(), IKE_INTERMEDIATE.into()]
        )
    );
    // Nothing within the template: refused, and nothing is recorded.
    for (id, ku, eku) in [
        ("n-5", ds(), vec!["emailProtection"]),
        ("n-6", vec![KeyUsage::NonRepudiation], vec![CLIENT]),
        ("n-7", ds(), vec!["noSuchUsage"]),
    ] {
        let err = issue(id, "IPSECNarrowing", ku, &eku).await.unwrap_err();
        let wire = format!("{:?}", ca_mock::api::ApiError::from(err));
        let want = if id == "n-7" {
            "\"invalid_request\""
        } else {
            "\"usage_not_allowed\""
        };
        assert!(wire.contains(want), "{id}: {wire}");
        assert!(ca.policy.find_by_request_id(id).await.unwrap().is_empty());
    }
    ca.stop().await;
}
