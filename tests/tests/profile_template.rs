//! Issue 15 item 5 end to end: the policy module's warnings about a profile, computed from the
//! lab's own ca-mock template, say what the enrolled certificate then carries; with the device
//! template set to narrow usages to the grant (docs/decisions.md #7), the certificate carries
//! exactly the profile's key usage and EKU and the profile gets no warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ca_api::UsageSource;
use policy_module::model::KeyUsage;
use policy_module::template_check::Consequence;
use scep_lab_tests::*;
use x509_parser::extensions::ParsedExtension;

/// (digitalSignature, keyEncipherment) and the EKUs (names for the two TLS ones, else OIDs).
fn usages(cert: &openssl::x509::X509) -> ((bool, bool), Vec<String>) {
    let der = cert.to_der().unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let ku = parsed.key_usage().unwrap().unwrap().value;
    let mut ekus = Vec::new();
    for e in parsed.extensions() {
        if let ParsedExtension::ExtendedKeyUsage(eku) = e.parsed_extension() {
            if eku.client_auth {
                ekus.push("clientAuth".to_owned());
            }
            if eku.server_auth {
                ekus.push("serverAuth".to_owned());
            }
            ekus.extend(eku.other.iter().map(|o| o.to_id_string()));
        }
    }
    ((ku.digital_signature(), ku.key_encipherment()), ekus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warning_says_what_the_template_adds_and_the_certificate_carries_it() {
    let lab = TestLab::start().await.unwrap();
    let spec = lab.spec();
    assert_eq!(spec.extended_key_usages, ["1.3.6.1.5.5.7.3.2"]);
    let warnings = lab.policy().profile_warnings(&spec).await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].field, "extended_key_usages");
    assert_eq!(warnings[0].consequence, Consequence::Differs);
    assert_eq!(
        warnings[0].effect,
        "the certificate will carry serverAuth, ipsecIKEIntermediate too"
    );
    lab.profile(PROFILE, |_| {}).await.unwrap();
    let (d, _) = lab.enrolled_device("TEMPLATE-01", PROFILE).await.unwrap();
    let cert = d.certificate(PROFILE).unwrap();
    assert_eq!(
        usages(&cert),
        (
            (true, true),
            vec![
                "clientAuth".to_owned(),
                "serverAuth".to_owned(),
                "1.3.6.1.5.5.8.2.2".to_owned()
            ]
        )
    );
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_narrows_to_the_grant_issues_exactly_the_profiles_usages() {
    let lab =
        TestLab::start_with(|o| o.device_template_usages = UsageSource::RequestWithinTemplate)
            .await
            .unwrap();
    let mut spec = lab.spec();
    spec.key_usage = vec![KeyUsage::DigitalSignature];
    assert_eq!(lab.policy().profile_warnings(&spec).await, []);
    lab.profile(PROFILE, |s| s.key_usage = vec![KeyUsage::DigitalSignature])
        .await
        .unwrap();
    let (d, _) = lab.enrolled_device("TEMPLATE-02", PROFILE).await.unwrap();
    let cert = d.certificate(PROFILE).unwrap();
    assert_eq!(
        usages(&cert),
        ((true, false), vec!["clientAuth".to_owned()])
    );
    lab.assert_reconciled().await.unwrap();
    lab.shutdown().await;
}
