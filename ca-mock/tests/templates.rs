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
        ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.8.2.2"]
    );
    assert_eq!(ipsec.keys.rsa_min_bits, Some(2048));
    assert_eq!(ipsec.keys.ec_curves, [Curve::P256, Curve::P384]);
    assert!(ipsec.san_allowed.contains(&SanKind::Upn));
    assert_eq!(ipsec.san_max, 10);
    assert_eq!(ipsec.usages, UsageSource::Template, "the default");
    assert!(ca.policy.template("NoSuchTemplate").await.unwrap().is_none());

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
    let refused = narrow.template("IPSECIntermediateOffline").await.unwrap_err();
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
